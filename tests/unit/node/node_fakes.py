"""Fakes for the node's tests: channel handlers, a connected pair of channels over
StringTransport, and an executor that records requests and lets the test finish them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sflow.node.channel import Channel
from sflow.node.execution import ExecRequest, ExecResult
from sflow.node.protocol import Message
from sflow.node.transfer import FileSink

SECRET = b"k" * 32
MAX_READ = 1024 * 1024


class RecordingHandler:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self.ready: list[Channel] = []
        self.messages: list[Message] = []
        self.files: list[tuple[Message, Path]] = []
        self.failures: list[str] = []
        self.closed: list[tuple[str, bool]] = []

    def channel_ready(self, channel: Channel) -> None:
        self.ready.append(channel)

    def message_received(self, channel: Channel, msg: Message) -> None:
        self.messages.append(msg)

    def open_sink(self, channel: Channel, begin: Message) -> FileSink:
        assert self.root is not None
        return FileSink(self.root, begin["path"], begin["size"])

    def file_received(self, channel: Channel, begin: Message, path: Path) -> None:
        self.files.append((begin, path))

    def file_failed(self, channel: Channel, begin: Message, reason: str) -> None:
        self.failures.append(reason)

    def channel_closed(self, channel: Channel, reason: str, authenticated: bool) -> None:
        self.closed.append((reason, authenticated))


class Pipe:
    """Two protocols joined by StringTransports; ``pump`` moves bytes until both are quiet,
    holding back bytes for a side that paused its transport (as a real socket would)."""

    def __init__(self, left: Any, right: Any) -> None:
        self.left, self.right = left, right
        self.lt, self.rt = StringTransport(), StringTransport()
        left.makeConnection(self.lt)
        right.makeConnection(self.rt)

    def pump(self, rounds: int = 1000) -> None:
        for _ in range(rounds):
            moved = False
            for src, dst, dst_proto, src_proto in (
                (self.lt, self.rt, self.right, self.left),
                (self.rt, self.lt, self.left, self.right),
            ):
                data = src.value()
                if data and dst.producerState != "paused":  # a paused transport reads nothing
                    piece = data[:MAX_READ]  # a socket read returns at most this much
                    src.clear()
                    src.write(data[MAX_READ:])
                    dst_proto.dataReceived(piece)
                    moved = True
                if src.disconnecting and not src.value() and not getattr(src_proto, "_lost", False):
                    src_proto._lost = True
                    src_proto.connectionLost()
                    if not getattr(dst_proto, "_lost", False):
                        dst_proto._lost = True
                        dst_proto.connectionLost()
                    moved = True
                if src.producer is not None and src.streaming:
                    src.producer.resumeProducing()
                    moved = moved or bool(src.value())
            if not moved:
                return


class SilentPeer:
    """A raw protocol that never speaks: the other end of a Pipe for a peer that does not
    authenticate (the test writes its bytes straight to ``pipe.lt``)."""

    def makeConnection(self, transport: object) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self) -> None:
        pass


def channel_pair(
    clock: Clock, client_secret: bytes = SECRET, server_secret: bytes = SECRET, root: Path | None = None,
    client_sealed: bool = True, server_sealed: bool = True,
) -> tuple[Channel, RecordingHandler, Channel, RecordingHandler, Pipe]:
    ch_handler, sv_handler = RecordingHandler(root), RecordingHandler(root)
    client = Channel("client", client_secret, ch_handler, clock, "client", sealed=client_sealed)
    server = Channel("server", server_secret, sv_handler, clock, "server", sealed=server_sealed)
    pipe = Pipe(client, server)
    return client, ch_handler, server, sv_handler, pipe


class FakeExecutor:
    def __init__(self) -> None:
        self.requests: list[ExecRequest] = []
        self.pending: dict[int, defer.Deferred[ExecResult]] = {}
        self.cancelled: list[str] = []
        self.stopped = False

    def run(self, request: ExecRequest) -> defer.Deferred[ExecResult]:
        self.requests.append(request)
        d: defer.Deferred[ExecResult] = defer.Deferred()
        self.pending[request.task_id] = d
        return d

    def finish(self, task_id: int, ok: bool = True, exit_status: int | None = 0, stderr: str = "") -> None:
        reason = "" if ok else f"exit status {exit_status}"
        self.pending.pop(task_id).callback(ExecResult(ok, exit_status, reason, stderr, "", "native", 1.0, 2.0))

    def cancel_run(self, run_key: str) -> None:
        self.cancelled.append(run_key)

    def shutdown(self) -> defer.Deferred[None]:
        self.stopped = True
        return defer.succeed(None)

    def prepare_directory(self, directory: Path) -> None:
        """Nothing to hand over: functions of a fake run as nobody."""
