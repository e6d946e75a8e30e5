"""The ICN side of a node daemon (``sflow node --mode icn|auto``): an embedded forwarder listening
on TCP, the :class:`~sflow.sfc.service.SfcService` on it, the on-disk result store, and in
autonomous mode the hello protocol and the placer that uses it.

The node is known by its *advertised* address (``icn.advertise``; else the listen host when it is
not a wildcard; else the address this host reaches its first neighbour from; else the wildcard,
which neighbours replace by the address its hellos come from), and recognises itself in every other
form (:class:`~sflow.sfc.identity.Identity`): its listen host, wildcard and loopback forms, and the
addresses of its interfaces.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError

from sflow.config import Config, parse_host_port
from sflow.errors import ListenError
from sflow.icn.face.base import Face
from sflow.icn.face.stream import connect_stream
from sflow.icn.forwarder import ForwarderConfig
from sflow.icn.limits import ForwarderLimits
from sflow.icn.server import ForwarderServer
from sflow.model.infra import Address
from sflow.sfc.auto import NeighbourTable
from sflow.sfc.consumer import cluster_signer
from sflow.sfc.hello import HelloProtocol
from sflow.sfc.identity import WILDCARD, Identity, host_form, split_address
from sflow.sfc.placer import AutoPlacer
from sflow.sfc.service import FunctionExecutor, SfcService
from sflow.sfc.store import ResultStore

log = logging.getLogger(__name__)


def interface_addresses() -> set[str]:
    """The addresses of this host's interfaces (in this network namespace), and what its host
    name resolves to."""
    found: set[str] = set()
    try:
        last = ""
        for line in Path("/proc/net/fib_trie").read_text(encoding="ascii").splitlines():
            line = line.strip()
            if line.startswith("|--"):
                last = line[3:].strip()
            elif line.startswith("/32 host LOCAL") and last:
                found.add(last)
    except OSError:
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text(encoding="ascii").splitlines():
            found.add(str(ipaddress.IPv6Address(bytes.fromhex(line.split()[0]))))
    except (OSError, ValueError, IndexError):
        pass
    try:
        found.update(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        pass
    return found


def source_address(neighbour: str) -> str | None:
    """The address this host sends from toward ``neighbour`` (``HOST:PORT``); no packet is sent."""
    parsed = split_address(neighbour)
    if parsed is None:
        return None
    try:
        infos = socket.getaddrinfo(parsed[0], parsed[1], type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(sockaddr)
            return str(probe.getsockname()[0])
    except (OSError, IndexError):
        return None


def advertised_address(setting: str, listen_host: str, port: int, neighbours: list[str]) -> str:
    """The address this forwarder is known by (see the module docstring)."""
    if setting:
        parsed = split_address(setting)
        if parsed is not None:
            return str(Address(*parsed))
        return str(Address(setting.strip("[]"), port))
    if host_form(listen_host) != WILDCARD:
        return str(Address(listen_host, port))
    for neighbour in neighbours:
        source = source_address(neighbour)
        if source is not None:
            return str(Address(source, port))
    return str(Address(listen_host or "0.0.0.0", port))


def result_store_path(template: str, port: int) -> Path:
    """``icn.result_store`` with ``{host}`` (the host name) and ``{port}`` (the forwarder's)."""
    return Path(template.replace("{host}", socket.gethostname()).replace("{port}", str(port))).expanduser()


class IcnNode:
    """Starts listening at once; ``address`` is the forwarder's advertised ``host:port``."""

    def __init__(
        self,
        reactor: Any,
        config: Config,
        secret: bytes,
        executor: FunctionExecutor,
        workdir: Path,
        *,
        mode: str,
        host: str,
        port: int,
        vcpus: int,
        prepare_directory: Callable[[Path], None] | None = None,
    ) -> None:
        self.reactor = reactor
        self.mode = mode
        icn = config.icn
        self.server = ForwarderServer(
            reactor, ForwarderConfig(cs_capacity=icn.cs_capacity_packets, cs_capacity_bytes=icn.cs_capacity_bytes,
                                     limits=ForwarderLimits.from_settings(icn), management_key=secret,
                                     clock_skew=icn.clock_skew)
        )
        try:
            uri = self.server.listen_tcp(host, port)
        except ListenError as exc:
            raise exc.for_setting("--icn-listen, icn.port") from None
        self.listen = str(Address(host, uri.port))
        neighbours = list(icn.neighbours) if mode == "auto" else []
        self.address = advertised_address(icn.advertise, host, uri.port, neighbours)
        self.identity = Identity.of(self.address, [host, *interface_addresses()])
        self._connect_timeout = icn.connect_timeout_ms / 1000.0
        store = ResultStore(
            result_store_path(icn.result_store, uri.port), icn.result_store_bytes, cluster_signer(secret),
            icn.freshness_ms,
        )
        self.table = NeighbourTable(ttl=3 * icn.hello_interval, max_neighbours=icn.max_neighbours)
        self.placer: AutoPlacer | None = AutoPlacer(reactor, self.table) if mode == "auto" else None
        self.service = SfcService(
            reactor, self.server.forwarder, config, secret, executor, workdir, store,
            name=self.address, connect_peer=self._connect, vcpus=vcpus, placer=self.placer, identity=self.identity,
            prepare_directory=prepare_directory,
        )
        self.service.scratch.fill()  # the functions' directories, made off the reactor before the first run
        self.hello_port: int | None = None
        self.hello: HelloProtocol | None = None
        if self.placer is not None:
            self.placer.attach(self.service)
            self._start_hellos(config, host, neighbours)
        log.info("event=icn_node_ready mode=%s address=%s listen=%s hello_port=%s neighbours=%s store=%s", mode,
                 self.address, self.listen, self.hello_port, ",".join(neighbours) or "-", store.root)

    def _start_hellos(self, config: Config, host: str, neighbours: list[str]) -> None:
        icn = config.icn
        parsed = [(neighbour, parse_host_port(neighbour, "icn.neighbours")) for neighbour in neighbours]
        placer = self.placer
        targets: list[tuple[str, int]] = []
        hello = HelloProtocol(
            self.reactor, self.service.secret, self.table, self.service.advert, targets, icn.hello_interval,
            on_neighbour=placer.heard if placer is not None else None,
            is_me=self.identity.is_me, on_lost=self.service.neighbour_lost, skew=icn.clock_skew,
        )
        interface = "" if icn.broadcast_address else host
        try:
            listening = self.reactor.listenUDP(icn.hello_port, hello, interface=interface)
        except CannotListenError as exc:
            raise ListenError(f"UDP {Address(interface or '0.0.0.0', icn.hello_port)} for hellos", exc,
                              "--hello-port, icn.hello_port") from None
        self.hello_port = listening.getHost().port
        # This node may be in its own list (an inventory's every host): no hellos to itself.
        targets.extend(t for n, t in parsed if not self.identity.is_me(n, self.hello_port))
        if icn.broadcast_address:
            targets.append((icn.broadcast_address, self.hello_port))
        self.service.on_change = hello.soon
        self.hello = hello
        hello.soon()  # the first hello went out before the neighbours were known

    def _connect(self, address: str) -> Deferred[Face]:
        d: Deferred[Face] = connect_stream(self.reactor, f"tcp://{address}")  # type: ignore[assignment]
        return d.addTimeout(self._connect_timeout, self.reactor)

    def status(self) -> dict[str, Any]:
        out = self.service.status()
        out["mode"] = self.mode
        out["listen_icn"] = self.listen
        out["neighbours"] = [a.node for a in self.table.fresh(self.reactor.seconds())]
        return out

    def stop(self) -> Deferred[Any]:
        self.service.scratch.close()
        return self.server.stop()
