"""The experiment spec (TOML): what to run, on which cluster, with which faults.

.. code-block:: toml

    name = "modes"
    seed = 1                        # seeds link losses and generated jobs (default 1)
    costs = "costs.json"            # optional: measured costs (`sflow calibrate`) for the schedulers
    [cluster]
    nodes = 3                       # local nodes on loopback, as `sflow run` starts them
    vcpus = 1                       # per local node (default: this machine's cores / nodes)
    # topology = "grid.toml"        # or: an emulated topology (its nodes, vCPUs, MIPS and links)
    # hosts = "hosts.toml"          # or: real hosts (an inventory as `sflow cluster` reads; deployed
    # secret = "cluster.secret"     #     there first); their secret (default: security.secret_file)
    [matrix]
    jobs = ["../jobs/fork-join.json",             # job files, WfCommons instances (imported),
            {random = {tasks = 20, seed = 3}}]    # or random DAGs
    modes = ["ip", "icn", "auto"]
    algorithms = ["sf-cuv", "heft"]
    cache = ["cold", "warm"]        # warm: after one unrecorded run on the same nodes
    repetitions = 3
    timeout_s = 600                 # per run
    [settings]                      # sflow settings for the nodes and the delegator, as in sflow.toml
    node = {function_timeout = 60}
    [[fault]]                       # optional, applied in every run
    at_s = 2.0                      # or: when = "function 3 starts"
    kill = "node-2"                 # or: restart = "node-2", stop = "node-2", link_down = ["a", "b"]
                                    # (nodes: node-i, the topology's names, or the hosts' names)
    duration_s = 1.0                # stop and link_down only: undone after this long

Paths are relative to the spec file. Every error names the key at fault (exit status 2).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sflow.cluster.inventory import Inventory, load_inventory
from sflow.config import MODES, SECTIONS
from sflow.errors import InputError
from sflow.experiment.topology import Topology, check_keys, full_mesh, load_topology
from sflow.jsonio import JsonReader, load_costs
from sflow.model.costs import MeasuredCosts

CACHES = ("cold", "warm")
FAULT_KINDS = ("kill", "restart", "stop", "link_down")
_WHEN = re.compile(r"^\s*function\s+(\d+)\s+starts\s*$")


@dataclass(frozen=True, slots=True)
class JobSource:
    """A job to run: a job file, a WfCommons instance (imported), or a random DAG."""

    name: str
    path: Path | None = None
    wfcommons: bool = False
    random_tasks: int = 0
    random_seed: int = 0
    random_file_kb: int = 0


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    #: a node name, or for link_down the two ends
    target: tuple[str, ...]
    at_s: float | None
    when_task: int | None
    duration_s: float | None

    @property
    def trigger(self) -> str:
        return f"at {self.at_s:g} s" if self.at_s is not None else f"when function {self.when_task} starts"

    @property
    def label(self) -> str:
        what = "link_down " + "–".join(self.target) if self.kind == "link_down" else f"{self.kind} {self.target[0]}"
        return f"{what} {self.trigger}"


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    path: Path
    sha256: str
    text: str
    seed: int
    #: the nodes: a topology (emulated links) or a plain local cluster of ``nodes`` nodes
    topology: Topology | None
    topology_path: Path | None
    nodes: int
    vcpus: int
    jobs: tuple[JobSource, ...]
    modes: tuple[str, ...]
    algorithms: tuple[str, ...]
    cache: tuple[str, ...]
    repetitions: int
    timeout_s: float
    settings: Mapping[str, Mapping[str, Any]]
    faults: tuple[Fault, ...]
    #: or: nodes on real hosts (an inventory, as the cluster commands read), with the cluster's secret
    hosts: Inventory | None = None
    hosts_path: Path | None = None
    secret_file: Path | None = None
    #: measured costs (``sflow calibrate``) the schedulers use, instead of workload / MIPS
    costs_path: Path | None = None
    costs: MeasuredCosts | None = None

    @property
    def node_names(self) -> tuple[str, ...]:
        if self.hosts is not None:
            return self.hosts.labels()
        return self.topology.names if self.topology is not None else tuple(f"node-{i}" for i in range(self.nodes))

    @property
    def emulated(self) -> bool:
        """Whether the nodes run behind emulated links: with a topology, or when a fault takes a
        link down (a plain cluster is then a full mesh of links without delay)."""
        return self.hosts is None and (self.topology is not None or any(f.kind == "link_down" for f in self.faults))

    def links_topology(self) -> Topology | None:
        if self.topology is not None:
            return self.topology
        return full_mesh(self.nodes) if self.emulated else None


def load_spec(path: str | Path) -> Spec:
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(source, "", "no such spec file") from None
    except OSError as exc:
        raise InputError(source, "", f"cannot read it: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(source, "", f"not valid TOML: {exc}") from None
    return spec_from_dict(data, Path(path), text, hashlib.sha256(raw).hexdigest())


def _strings(r: JsonReader, d: Mapping[str, Any], key: str, where: str, allowed: tuple[str, ...] | None,
             default: tuple[str, ...]) -> tuple[str, ...]:
    if key not in d:
        return default
    value = d[key]
    if not isinstance(value, list) or not value:
        r.fail(f"{where}.{key}", f"expected a non-empty list of strings, found {value!r}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            r.fail(f"{where}.{key}[{i}]", f"expected a string, found {item!r}")
        if allowed is not None and item not in allowed:
            r.fail(f"{where}.{key}[{i}]", f"unknown {key[:-1] if key.endswith('s') else key} {item!r}; "
                                          f"choose from {', '.join(allowed)}")
    if len(set(value)) != len(value):
        r.fail(f"{where}.{key}", f"an entry is listed twice: {value!r}")
    return tuple(value)


def spec_from_dict(data: dict[str, Any], path: Path, text: str = "", sha256: str = "") -> Spec:
    from sflow.sched.registry import names as scheduler_names

    source = str(path)
    base = path.parent
    r = JsonReader(source)
    check_keys(r, data, ("name", "seed", "costs", "cluster", "matrix", "settings", "fault"), "$")
    name = r.string(data, "name", "$", required=False, default=path.stem)
    seed = r.integer(data, "seed", "$", required=False, default=1)
    costs_path = costs = None
    if "costs" in data:
        costs_path = base / r.string(data, "costs", "$")
        try:
            costs = load_costs(costs_path)
        except InputError as exc:
            r.fail("$.costs", str(exc))

    cluster = r.obj(data.get("cluster", {}), "$.cluster")
    check_keys(r, cluster, ("nodes", "vcpus", "topology", "hosts", "secret"), "$.cluster")
    hosts = hosts_path = secret_file = None
    if "hosts" in cluster:
        if "nodes" in cluster or "topology" in cluster:
            r.fail("$.cluster", "give one of hosts (real hosts), topology (emulated) and nodes (local), not several")
        hosts_path = base / r.string(cluster, "hosts", "$.cluster")
        try:
            hosts = load_inventory(hosts_path)
        except InputError as exc:
            r.fail("$.cluster.hosts", str(exc))
    if "secret" in cluster:
        if hosts is None:
            r.fail("$.cluster.secret", "the secret of a cluster of real hosts (with hosts = FILE); local nodes get "
                                       "one of the experiment's own")
        secret_file = base / r.string(cluster, "secret", "$.cluster")
    topology = None
    topology_path = None
    if "topology" in cluster:
        if "nodes" in cluster or "vcpus" in cluster:
            r.fail("$.cluster", "give either topology (whose nodes have their vCPUs) or nodes and vcpus, not both")
        topology_path = base / r.string(cluster, "topology", "$.cluster")
        topology = load_topology(topology_path)
    if hosts is not None:
        nodes = len(hosts.hosts)
    else:
        nodes = len(topology.nodes) if topology is not None else r.integer(cluster, "nodes", "$.cluster",
                                                                            required=False, default=3)
    if nodes < 1:
        r.fail("$.cluster.nodes", f"need at least one node, found {nodes}")
    vcpus = r.integer(cluster, "vcpus", "$.cluster", required=False, default=0)
    if vcpus < 0:
        r.fail("$.cluster.vcpus", f"expected a positive number of vCPUs (0: cores / nodes), found {vcpus}")

    if "matrix" not in data:
        r.fail("$", "missing required table 'matrix' (jobs, modes, algorithms, cache, repetitions)")
    matrix = r.obj(data["matrix"], "$.matrix")
    check_keys(r, matrix, ("jobs", "modes", "algorithms", "cache", "repetitions", "timeout_s"), "$.matrix")
    jobs = _jobs(r, matrix, base)
    modes = _strings(r, matrix, "modes", "$.matrix", MODES, ("ip",))
    algorithms = _strings(r, matrix, "algorithms", "$.matrix", scheduler_names(), ("sf-cuv",))
    cache = _strings(r, matrix, "cache", "$.matrix", CACHES, ("cold",))
    repetitions = r.integer(matrix, "repetitions", "$.matrix", required=False, default=1)
    if repetitions < 1:
        r.fail("$.matrix.repetitions", f"expected at least 1, found {repetitions}")
    timeout_s = r.number(matrix, "timeout_s", "$.matrix", required=False, default=600.0, positive=True)

    settings = r.obj(data.get("settings", {}), "$.settings")
    for section, values in settings.items():
        if section not in SECTIONS:
            r.fail(f"$.settings.{section}", f"unknown settings section; known: {', '.join(SECTIONS)}")
        r.obj(values, f"$.settings.{section}")

    if hosts is not None:
        names = hosts.labels()
    else:
        names = topology.names if topology is not None else tuple(f"node-{i}" for i in range(nodes))
    faults = tuple(_fault(r, raw, i, names, topology) for i, raw in enumerate(r.array(data, "fault", "$", required=False)))
    if hosts is not None:
        for i, fault in enumerate(faults):
            if fault.kind == "link_down":
                r.fail(f"$.fault[{i}].link_down", "links of real hosts are not cut by sflow (cut them on the hosts, or "
                                                  "use an emulated topology)")
    return Spec(name, path, sha256, text, seed, topology, topology_path, nodes, vcpus, jobs, modes, algorithms, cache,
                repetitions, timeout_s, settings, faults, hosts, hosts_path, secret_file, costs_path, costs)


def _jobs(r: JsonReader, matrix: dict[str, Any], base: Path) -> tuple[JobSource, ...]:
    raw = r.array(matrix, "jobs", "$.matrix")
    if not raw:
        r.fail("$.matrix.jobs", "list at least one job")
    out: list[JobSource] = []
    for i, item in enumerate(raw):
        where = f"$.matrix.jobs[{i}]"
        if isinstance(item, str):
            path = base / item
            if not path.is_file():
                r.fail(where, f"no such job file: {path}")
            out.append(JobSource(path.stem, path, wfcommons=_is_wfcommons(path)))
            continue
        table = r.obj(item, where)
        check_keys(r, table, ("random", "name"), where)
        if "random" not in table:
            r.fail(where, "expected a job file name or a table {random = {tasks = N, seed = S}}")
        rnd = r.obj(table["random"], f"{where}.random")
        check_keys(r, rnd, ("tasks", "seed", "file_kb"), f"{where}.random")
        tasks = r.integer(rnd, "tasks", f"{where}.random")
        if not 1 <= tasks <= 10000:
            r.fail(f"{where}.random.tasks", f"expected 1 to 10000 tasks, found {tasks}")
        seed = r.integer(rnd, "seed", f"{where}.random", required=False, default=1)
        file_kb = r.integer(rnd, "file_kb", f"{where}.random", required=False, default=64)
        name = r.string(table, "name", where, required=False, default=f"random-{tasks}-s{seed}")
        out.append(JobSource(name, None, random_tasks=tasks, random_seed=seed, random_file_kb=file_kb))
    names = [j.name for j in out]
    for i, n in enumerate(names):
        if names.index(n) != i:
            r.fail(f"$.matrix.jobs[{i}]", f"two jobs are both called {n!r}; give one a name")
    return tuple(out)


def _is_wfcommons(path: Path) -> bool:
    """A WfCommons instance (a ``workflow`` object) rather than an sflow job (a ``task_list``)."""
    from sflow.jsonio import read_json

    data = read_json(path)
    return isinstance(data, dict) and "workflow" in data and "task_list" not in data


def _fault(r: JsonReader, raw: Any, i: int, names: tuple[str, ...], topology: Topology | None) -> Fault:
    where = f"$.fault[{i}]"
    f = r.obj(raw, where)
    check_keys(r, f, ("at_s", "when", "duration_s") + FAULT_KINDS, where)
    kinds = [k for k in FAULT_KINDS if k in f]
    if len(kinds) != 1:
        r.fail(where, f"give exactly one of {', '.join(FAULT_KINDS)}, found {kinds or 'none'}")
    kind = kinds[0]
    if kind == "link_down":
        ends = f[kind]
        if not (isinstance(ends, list) and len(ends) == 2 and all(isinstance(x, str) for x in ends)):
            r.fail(f"{where}.link_down", f"expected the two ends of a link, found {ends!r}")
        target = tuple(ends)
        if topology is not None and topology.link(*target) is None:
            r.fail(f"{where}.link_down", f"the topology has no link between {target[0]!r} and {target[1]!r}")
    else:
        target = (r.string(f, kind, where),)
    for node in target:
        if node not in names:
            r.fail(f"{where}.{kind}", f"unknown node {node!r}; the nodes are {', '.join(names)}")
    if ("at_s" in f) == ("when" in f):
        r.fail(where, "give exactly one of at_s (seconds after the run starts) and when (\"function N starts\")")
    at_s = r.number(f, "at_s", where) if "at_s" in f else None
    when_task = None
    if "when" in f:
        m = _WHEN.match(str(f["when"]))
        if not m:
            r.fail(f"{where}.when", f"expected \"function N starts\", found {f['when']!r}")
        when_task = int(m.group(1))
    duration = r.number(f, "duration_s", where, positive=True) if "duration_s" in f else None
    if duration is not None and kind not in ("stop", "link_down"):
        r.fail(f"{where}.duration_s", f"duration_s undoes a stop or a link_down; a {kind} cannot be undone")
    return Fault(kind, target, at_s, when_task, duration)
