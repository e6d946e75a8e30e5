"""The ICN side of a node daemon (``sflow node --mode icn|auto``): an embedded forwarder listening
on TCP, the :class:`~sflow.sfc.service.SfcService` on it, the on-disk result store, and in
autonomous mode the hello protocol and the placer that uses it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError

from sflow.config import Config, parse_host_port
from sflow.errors import ListenError
from sflow.icn.face.base import Face
from sflow.icn.face.stream import connect_stream
from sflow.icn.forwarder import ForwarderConfig
from sflow.icn.server import ForwarderServer
from sflow.model.infra import Address
from sflow.sfc.auto import Advert, NeighbourTable
from sflow.sfc.consumer import cluster_signer
from sflow.sfc.hello import AutoPlacer, HelloProtocol
from sflow.sfc.service import FunctionExecutor, SfcService
from sflow.sfc.store import ResultStore

log = logging.getLogger(__name__)


class IcnNode:
    """Starts listening at once; ``address`` is the forwarder's ``host:port``."""

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
    ) -> None:
        self.reactor = reactor
        self.mode = mode
        icn = config.icn
        self.server = ForwarderServer(
            reactor, ForwarderConfig(cs_capacity=icn.cs_capacity_packets, cs_capacity_bytes=icn.cs_capacity_bytes)
        )
        try:
            uri = self.server.listen_tcp(host, port)
        except ListenError as exc:
            raise exc.for_setting("--icn-listen, icn.port") from None
        self.address = str(Address(host, uri.port))
        self._connect_timeout = icn.connect_timeout_ms / 1000.0
        self._speed = icn.speed
        self._bandwidth = icn.bandwidth
        store = ResultStore(
            Path(icn.result_store).expanduser(), icn.result_store_bytes, cluster_signer(secret), icn.freshness_ms
        )
        self.table = NeighbourTable(ttl=3 * icn.hello_interval, max_neighbours=icn.max_neighbours)
        self.placer: AutoPlacer | None = None
        if mode == "auto":
            self.placer = AutoPlacer(reactor, self.table, self.advert, lambda: self.service.functions(),
                                     lambda: self.service.generation)
        self.service = SfcService(
            reactor, self.server.forwarder, config, secret, executor, workdir, store,
            name=self.address, connect_peer=self._connect, vcpus=vcpus, placer=self.placer,
        )
        self.hello_port: int | None = None
        if mode == "auto":
            targets = [parse_host_port(n, "icn.neighbours") for n in icn.neighbours]
            if icn.broadcast_address:
                targets.append((icn.broadcast_address, icn.hello_port))
            hello = HelloProtocol(
                reactor, secret, self.table, self.advert, targets, icn.hello_interval,
                on_neighbour=self.placer.heard if self.placer is not None else None,
            )
            interface = "" if icn.broadcast_address else host
            try:
                listening = reactor.listenUDP(icn.hello_port, hello, interface=interface)
            except CannotListenError as exc:
                raise ListenError(f"UDP {Address(interface or '0.0.0.0', icn.hello_port)} for hellos", exc,
                                  "--hello-port, icn.hello_port") from None
            self.hello_port = listening.getHost().port
        log.info("event=icn_node_ready mode=%s address=%s hello_port=%s", mode, self.address, self.hello_port)

    def advert(self) -> Advert:
        s = self.service
        return Advert(self.address, s.slots.count, s.slots.free, s.producer.queued() + s.slots.waiting, self._speed,
                      self._bandwidth)

    def _connect(self, address: str) -> Deferred[Face]:
        d: Deferred[Face] = connect_stream(self.reactor, f"tcp://{address}")  # type: ignore[assignment]
        return d.addTimeout(self._connect_timeout, self.reactor)

    def status(self) -> dict[str, Any]:
        out = self.service.status()
        out["mode"] = self.mode
        out["neighbours"] = [a.node for a in self.table.fresh(self.reactor.seconds())]
        return out

    def stop(self) -> Deferred[Any]:
        return self.server.stop()
