"""Emulated topologies, in the manner of Mini-NDN's topology files, written in TOML:

.. code-block:: toml

    [defaults]                 # optional: for nodes and links that do not say
    vcpus = 1
    mips = 1000
    delay_ms = 5
    bandwidth_mbps = 100       # 0: unlimited
    loss = 0.0                 # a fraction (0.01 = 1 %)

    [nodes.a]
    vcpus = 2
    [nodes.b]
    mips = 2000

    [[links]]
    between = ["a", "b"]
    delay_ms = 10

Every node runs as a local process with its own loopback address (``127.0.1.k``, k from 1 in
declaration order). Traffic between two nodes follows the shortest path of the topology (by the
sum of delays, then by hop count): its delays add up, its narrowest link limits it and its losses
compound. A link taken down (a fault) is left out of the paths; nodes with no path left cannot
reach each other. The topology also yields the environment the schedulers see: one host per
node with its vCPUs and MIPS, and the transfer cost between two nodes from their path.

Pure: no I/O besides reading the file.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from sflow.errors import InputError
from sflow.experiment.links import LinkProps, LinksFile, PeerRoute
from sflow.jsonio import JsonReader
from sflow.model.infra import Address, Core, Cpu, DataCentre, Environment, Host, HostId, Vcpu, VcpuId, Vm, VmId

#: node k of a topology listens on 127.0.1.(k+1)
ADDRESS_PREFIX = "127.0.1."
MAX_NODES = 254
NODE_KEYS = ("vcpus", "mips")
LINK_KEYS = ("delay_ms", "bandwidth_mbps", "loss")


@dataclass(frozen=True, slots=True)
class TopoNode:
    name: str
    vcpus: int
    mips: float


@dataclass(frozen=True, slots=True)
class TopoLink:
    a: str
    b: str
    delay_ms: float
    bandwidth_mbps: float
    loss: float

    @property
    def key(self) -> frozenset[str]:
        return frozenset((self.a, self.b))

    def props(self) -> LinkProps:
        return LinkProps.from_topology(self.delay_ms, self.bandwidth_mbps, self.loss)


def link_id(src: str, dst: str) -> str:
    """The id of the direction ``src`` → ``dst`` of a link (per-link bytes are counted by it)."""
    return f"{src}>{dst}"


@dataclass(frozen=True, slots=True)
class Topology:
    name: str
    nodes: tuple[TopoNode, ...]
    links: tuple[TopoLink, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def address(self, name: str) -> str:
        """The node's own loopback address."""
        return f"{ADDRESS_PREFIX}{self.names.index(name) + 1}"

    def neighbours(self, name: str) -> tuple[str, ...]:
        out = [link.b for link in self.links if link.a == name] + [link.a for link in self.links if link.b == name]
        return tuple(dict.fromkeys(out))

    def link(self, a: str, b: str) -> TopoLink | None:
        key = frozenset((a, b))
        return next((link for link in self.links if link.key == key), None)

    def _graph(self, down: Iterable[frozenset[str]]) -> nx.Graph:
        cut = set(down)
        g = nx.Graph()
        g.add_nodes_from(self.names)
        for link in self.links:
            if link.key not in cut:
                # Shortest by delay; among equal delays the fewer hops (a tiny cost per hop).
                g.add_edge(link.a, link.b, weight=link.delay_ms + 1e-6)
        return g

    def paths(self, down: Iterable[frozenset[str]] = ()) -> dict[tuple[str, str], tuple[str, ...] | None]:
        """The node sequence from each node to each other one (None: unreachable)."""
        g = self._graph(down)
        out: dict[tuple[str, str], tuple[str, ...] | None] = {}
        for src, targets in nx.all_pairs_dijkstra_path(g, weight="weight"):
            for dst in self.names:
                if dst != src:
                    path = targets.get(dst)
                    out[(src, dst)] = tuple(path) if path is not None else None
        return out

    def links_file(self, name: str, seed: int, down: Iterable[frozenset[str]] = ()) -> LinksFile:
        """What node ``name`` is told: its routes to every other node, by their addresses."""
        props: dict[str, LinkProps] = {}
        for link in self.links:
            props[link_id(link.a, link.b)] = link.props()
            props[link_id(link.b, link.a)] = link.props()
        peers = {}
        for (src, dst), path in self.paths(down).items():
            if src != name:
                continue
            hops = None if path is None else tuple(link_id(x, y) for x, y in zip(path, path[1:]))
            peers[self.address(dst)] = PeerRoute(dst, hops)
        return LinksFile(name, self.address(name), seed, props, peers)

    def transfer_cost(self, src: str, dst: str) -> tuple[float, float]:
        """(seconds of delay, seconds per MB) from ``src`` to ``dst`` over the shortest path;
        (inf, inf) when there is none."""
        if src == dst:
            return 0.0, 0.0
        path = self.paths().get((src, dst))
        if path is None:
            return math.inf, math.inf
        delay = 0.0
        rate = math.inf
        for x, y in zip(path, path[1:]):
            link = self.link(x, y)
            assert link is not None
            delay += link.delay_ms / 1000.0
            rate = min(rate, link.props().rate)
        return delay, (1e6 / rate if math.isfinite(rate) else 0.0)

    def environment(self, ports: Mapping[str, int]) -> Environment:
        """One data centre, one host per node (its vCPUs and MIPS), each VM at the node's address
        and ``ports[name]``."""
        hosts = []
        for i, node in enumerate(self.nodes):
            hid = HostId(node.name)
            vcpus = tuple(
                Vcpu(VcpuId(f"0^{i}^0^0^{k}"), node.mips, hid, 0, f"{hid}-cpu0", f"{hid}-core0")
                for k in range(node.vcpus)
            )
            core = Core(f"{hid}-core0", node.mips, 100.0, vcpus)
            address = Address(self.address(node.name), ports[node.name])
            vm = Vm(VmId(node.name), address, 0.0, tuple(v.id for v in vcpus), hid)
            bw = max((link.bandwidth_mbps / 8 for link in self.links if node.name in link.key), default=0.0)
            hosts.append(Host(hid, node.name, address.host, bw or 1e6, 0.0, (Cpu(f"{hid}-cpu0", node.mips, (core,)),), (vm,)))
        return Environment((DataCentre(0, 1e6, tuple(hosts)),))


def full_mesh(count: int) -> Topology:
    """``count`` local nodes (``node-0``…) pairwise linked without delay, rate limit or loss: the
    topology of a plain local cluster whose links a fault may take down."""
    names = [f"node-{i}" for i in range(count)]
    nodes = tuple(TopoNode(n, 1, 1000.0) for n in names)
    links = tuple(TopoLink(a, b, 0.0, 0.0, 0.0) for i, a in enumerate(names) for b in names[i + 1:])
    return Topology("full mesh", nodes, links)


def load_topology(path: str | Path) -> Topology:
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(source, "", "no such topology file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(source, "", f"not valid TOML: {exc}") from None
    return topology_from_dict(data, source)


def check_keys(r: JsonReader, d: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """An unknown key in a TOML table (a spec's or a topology's) is an error that names it."""
    known = tuple(allowed)
    for key in d:
        if key not in known:
            r.fail(f"{where}.{key}", f"unknown key; known keys here: {', '.join(known)}")


def topology_from_dict(data: dict[str, Any], source: str) -> Topology:
    r = JsonReader(source)
    check_keys(r, data, ("name", "defaults", "nodes", "links"), "$")
    defaults = r.obj(data.get("defaults", {}), "$.defaults")
    check_keys(r, defaults, NODE_KEYS + LINK_KEYS, "$.defaults")
    d_vcpus = r.integer(defaults, "vcpus", "$.defaults", required=False, default=1)
    d_mips = r.number(defaults, "mips", "$.defaults", required=False, default=1000.0, positive=True)
    d_delay = r.number(defaults, "delay_ms", "$.defaults", required=False, default=0.0)
    d_bw = r.number(defaults, "bandwidth_mbps", "$.defaults", required=False, default=0.0)
    d_loss = r.number(defaults, "loss", "$.defaults", required=False, default=0.0)
    raw_nodes = r.obj(data.get("nodes"), "$.nodes") if "nodes" in data else r.fail("$", "missing required table 'nodes'")
    if not raw_nodes:
        r.fail("$.nodes", "a topology needs at least one node")
    if len(raw_nodes) > MAX_NODES:
        r.fail("$.nodes", f"at most {MAX_NODES} nodes (one loopback address each), found {len(raw_nodes)}")
    nodes = []
    for name, raw in raw_nodes.items():
        where = f"$.nodes.{name}"
        n = r.obj(raw, where)
        check_keys(r, n, NODE_KEYS, where)
        vcpus = r.integer(n, "vcpus", where, required=False, default=d_vcpus)
        if vcpus < 1:
            r.fail(f"{where}.vcpus", f"a node needs at least one vCPU, found {vcpus}")
        nodes.append(TopoNode(name, vcpus, r.number(n, "mips", where, required=False, default=d_mips, positive=True)))
    names = {n.name for n in nodes}
    links: list[TopoLink] = []
    seen: dict[frozenset[str], int] = {}
    for i, raw in enumerate(r.array(data, "links", "$", required=False)):
        where = f"$.links[{i}]"
        link = r.obj(raw, where)
        check_keys(r, link, ("between",) + LINK_KEYS, where)
        between = link.get("between")
        if not (isinstance(between, list) and len(between) == 2 and all(isinstance(x, str) for x in between)):
            r.fail(f"{where}.between", f"expected two node names, found {between!r}")
        a, b = between
        for x in (a, b):
            if x not in names:
                r.fail(f"{where}.between", f"node {x!r} is not in [nodes] (nodes: {', '.join(sorted(names))})")
        if a == b:
            r.fail(f"{where}.between", f"a link joins two different nodes, found {a!r} twice")
        key = frozenset((a, b))
        if key in seen:
            r.fail(f"{where}.between", f"nodes {a!r} and {b!r} are already linked by links[{seen[key]}]")
        seen[key] = i
        loss = r.number(link, "loss", where, required=False, default=d_loss)
        if loss >= 1.0:
            r.fail(f"{where}.loss", f"loss is a fraction below 1 (0.01 = 1 %), found {loss}")
        links.append(TopoLink(a, b, r.number(link, "delay_ms", where, required=False, default=d_delay),
                              r.number(link, "bandwidth_mbps", where, required=False, default=d_bw), loss))
    name = r.string(data, "name", "$", required=False, default=Path(source).stem)
    return Topology(name, tuple(nodes), tuple(links))
