"""One authenticated, framed connection between sflow peers (node ⇄ node, delegator ⇄ node).

The Twisted protocol only frames bytes, runs the challenge-response of :mod:`sflow.node.auth` and
moves file streams; every other message goes to a :class:`ChannelHandler` (the node's or the
delegator's logic). Until the peer has proved it holds the cluster secret, frames are limited to
:data:`~sflow.node.protocol.MAX_FRAME_UNAUTHENTICATED` bytes and any message other than the next
handshake step closes the connection; nothing reaches the handler. After the handshake every
frame is sealed with the session's keys (:mod:`sflow.node.seal`; ``security.channel_encryption``):
a frame that fails its integrity check closes the connection before anything acts on it.

A file's bytes arrive in data frames (:class:`~sflow.node.protocol.Data`); they are opened (when
sealed), counted and written on the channel's disk thread, in order, while the reactor reads on.
A message that follows data frames is acted on only once every one of them has opened: nothing
after a changed byte is ever acted on. A file being sent is read and sealed on the channel's send
thread, a few chunks ahead, while the reactor writes; every frame written meanwhile queues behind
them in the outbox (and is sealed there too), so the sequence numbers follow the write order.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol as TypingProtocol

from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from sflow import __version__
from sflow.errors import AuthenticationError, ProtocolError, SflowError
from sflow.jsonio import parse_address
from sflow.node import auth, seal
from sflow.node.liveness import Heartbeat, Liveness, Lost, Ping
from sflow.node.protocol import (
    HEADER,
    MAX_CHUNK,
    MAX_FRAME,
    MAX_FRAME_UNAUTHENTICATED,
    Data,
    FrameDecoder,
    Message,
    data_header,
    encode_body,
)
from sflow.node.transfer import AlreadyHave, FileSender, FileSink, Sent, TransferError, open_beneath

log = logging.getLogger(__name__)

AUTH_TIMEOUT = 10.0
#: Transport read size and write-buffer bound once a peer is authenticated.
TRUSTED_BUFFER = 1024 * 1024
#: Received bytes waiting for the disk thread above which reading pauses, and below which it resumes.
DISK_HIGH = 8 * 1024 * 1024
DISK_LOW = 2 * 1024 * 1024


class ChannelHandler(TypingProtocol):
    """What a channel's owner does with an authenticated peer's messages."""

    def channel_ready(self, channel: Channel) -> None: ...

    def message_received(self, channel: Channel, msg: Message) -> None: ...

    def open_sink(self, channel: Channel, begin: Message) -> FileSink:
        """Where an announced file goes; raise SflowError to refuse it."""
        ...

    def file_received(self, channel: Channel, begin: Message, path: Path) -> None: ...

    def file_failed(self, channel: Channel, begin: Message, reason: str) -> None: ...

    def channel_closed(self, channel: Channel, reason: str, authenticated: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class Delivered:
    """A file the peer received and verified."""

    size: int
    started: float
    finished: float


class _Outgoing:
    __slots__ = ("header", "path", "beneath", "done", "stream")

    def __init__(self, header: Mapping[str, Any], path: Path, stream: int, beneath: Path | None = None) -> None:
        self.header = header
        self.path = path
        self.beneath = beneath
        self.stream = stream
        self.done: defer.Deferred[Delivered] = defer.Deferred()


class _Worker:
    """One thread that runs calls in the order given and hands each outcome back on the reactor,
    in the same order: ``done(result, error)``. Outcomes that finish while the reactor is busy are
    handed back together (one wake-up of the reactor for several). Without a threaded reactor (a
    test clock) each call runs at once."""

    def __init__(self, clock: Any, name: str) -> None:
        self._clock = clock
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._outcomes: deque[tuple[Callable[[Any, BaseException | None], None], Any, BaseException | None]] = deque()
        self._wake_pending = False

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...], done: Callable[[Any, BaseException | None], None]) -> None:
        if not hasattr(self._clock, "callFromThread"):
            try:
                result = fn(*args)
            except (SflowError, OSError, ValueError) as exc:
                done(None, exc)
                return
            done(result, None)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        self._pool.submit(self._call, fn, args, done)

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], done: Callable[[Any, BaseException | None], None]) -> None:
        try:
            result, error = fn(*args), None
        except BaseException as exc:  # handed to ``done`` on the reactor
            result, error = None, exc
        with self._lock:
            self._outcomes.append((done, result, error))
            if self._wake_pending:
                return
            self._wake_pending = True
        self._clock.callFromThread(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            outcomes = list(self._outcomes)
            self._outcomes.clear()
            self._wake_pending = False
        for done, result, error in outcomes:
            done(result, error)

    def shutdown(self) -> None:
        """No new calls; those queued still run (a file's abort after its writes)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)


class _Pending:
    """A frame in the outbox: written once made (``parts``; None: nothing to write)."""

    __slots__ = ("parts", "then", "error", "ready")

    def __init__(self, parts: list[bytes] | None, then: Callable[[BaseException | None], None] | None = None) -> None:
        self.parts = parts
        self.then = then
        self.error: BaseException | None = None
        self.ready = parts is not None

    def made(self, parts: list[bytes] | None, error: BaseException | None) -> None:
        self.parts, self.error, self.ready = parts, error, True

    def settle(self, error: BaseException | None) -> None:
        """Tell whoever waits for this frame (once): written, or ``error``."""
        then, self.then = self.then, None
        if then is not None:
            then(error)


class Channel(Protocol):
    """``role`` is ``"client"`` (opens the handshake) or ``"server"``. ``name`` is how this side
    introduces itself in ``ready`` (a node's listen address, or ``delegator``). ``sealed``: whether
    frames after the handshake are encrypted and authenticated (both ends must agree)."""

    def __init__(
        self,
        role: str,
        secret: bytes,
        handler: ChannelHandler,
        clock: Any,
        name: str,
        chunk_size: int = 262144,
        heartbeat: Heartbeat | None = None,
        sealed: bool = True,
    ) -> None:
        self.role = role
        self._secret = secret
        self.handler = handler
        self._clock = clock
        self.name = name
        self.peer_name = ""
        self._chunk = max(1, min(chunk_size, MAX_CHUNK))
        self._decoder = FrameDecoder(MAX_FRAME_UNAUTHENTICATED)
        self._my_nonce = auth.new_nonce()
        self._their_nonce = b""
        self._sealed = sealed
        self._exchange: seal.Exchange | None = seal.new_exchange()  # dropped once the keys are derived
        self._my_kx = seal.public_bytes(self._exchange)
        self._their_kx = b""
        self._sealer: seal.Sealer | None = None
        self.authenticated = False
        self.closed = False
        self._close_reason = "connection closed"
        self._timer: Any = None
        self.ready: defer.Deferred[Channel] = defer.Deferred()
        self._sinks: dict[int, tuple[Message, FileSink]] = {}
        self._refused: dict[int, str] = {}
        #: the stream the peer's data frames belong to (its latest file_begin not yet ended)
        self._incoming: int | None = None
        #: sealed data frames handed to the disk thread and not yet opened there
        self._unopened = 0
        #: a message read after data frames, acted on once they have all opened
        self._held: Message | None = None
        self._disk_thread = _Worker(clock, "sflow-disk")
        self._plain = bytearray()  # where the disk thread opens data frames (reused)
        #: frames being made off the reactor (a file's chunks, read and sealed on the send thread),
        #: and any frame after them: written in this order, each once made
        self._outbox: deque[_Pending] = deque()
        self._send_thread = _Worker(clock, "sflow-send")
        self._flushing = False
        self._disk_bytes = 0
        self._reading_paused = False
        self._queue: deque[_Outgoing] = deque()
        self._sending: _Outgoing | None = None
        self._awaiting_ack: dict[int, tuple[_Outgoing, float, int]] = {}
        self._streams = itertools.count(1)
        self._heartbeat = heartbeat if heartbeat is not None and heartbeat.enabled else None
        self._peer_heartbeat: float | None = None
        self.liveness: Liveness | None = None
        self._beat: Any = None

    # -- Twisted ---------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        # Messages are small and answered at once: Nagle's algorithm would hold one behind the
        # previous one's acknowledgement (files go in large chunks and lose nothing by it).
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        if self._heartbeat is not None:
            _keepalive(self.transport, self._heartbeat)
        self._timer = self._clock.callLater(AUTH_TIMEOUT, self._auth_expired)
        if self.role == "client":
            self._write("hello", {"nonce": self._my_nonce, "kx": self._my_kx, "sealed": self._sealed})

    def dataReceived(self, data: bytes) -> None:
        if self.closed:
            return
        if self.liveness is not None:
            self.liveness.heard(self._clock.seconds())
        self._decoder.feed(data)
        self._process()

    def _process(self) -> None:
        """Act on every whole frame buffered, unless reading is paused (the disk is behind) or a
        message waits for the data frames before it to open."""
        try:
            while not self.closed and not self._reading_paused:
                if self._held is not None:
                    if self._unopened:
                        return
                    msg, self._held = self._held, None
                    self._on_message(msg)
                    continue
                frame = self._decoder.next_frame()
                if frame is None:
                    return
                if isinstance(frame, Data):
                    self._data_received(frame)
                elif self._unopened:
                    self._held = frame
                else:
                    self._on_message(frame)
        except SflowError as exc:
            self.fail(str(exc))

    def connectionLost(self, reason: Failure = Failure(ConnectionError("lost"))) -> None:
        was_closed = self.closed
        self.closed = True
        if not was_closed:
            self._close_reason = reason.getErrorMessage() or "connection lost"
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self._beat is not None and self._beat.active():
            self._beat.cancel()
        for _, sink in self._sinks.values():
            self._disk(sink.abort, (), lambda _, error: None)
        self._sinks.clear()
        self._disk_thread.shutdown()
        self._send_thread.shutdown()
        unsent, self._outbox = self._outbox, deque()
        for frame in unsent:  # frames still being made are settled when made (_made)
            if frame.ready:
                frame.settle(ConnectionError("the connection closed before the frame was written"))
        error = ConnectionError(f"connection to {self.peer_name or 'peer'} closed: {self._close_reason}")
        pending = list(self._queue) + [entry[0] for entry in self._awaiting_ack.values()]
        if self._sending is not None:
            pending.append(self._sending)
        self._queue.clear()
        self._awaiting_ack.clear()
        self._sending = None
        for out in pending:
            if not out.done.called:
                out.done.errback(error)
        if not self.ready.called:
            self.ready.errback(AuthenticationError(f"handshake did not complete: {self._close_reason}"))
        self.handler.channel_closed(self, self._close_reason, self.authenticated)

    # -- sending ---------------------------------------------------------------------------------

    def send(self, msg_type: str, **fields: Any) -> None:
        """Send a message if the channel is open (messages to a closed peer are dropped)."""
        if self.closed or not self.authenticated:
            log.debug("event=drop type=%s peer=%s", msg_type, self.peer_name)
            return
        self._write(msg_type, fields)

    def send_file(self, header: Mapping[str, Any], path: Path, *, beneath: Path | None = None) -> defer.Deferred[Delivered]:
        """Queue a file: ``header`` holds the ``file_begin`` fields other than ``s`` and ``size``.
        Fires with :class:`Delivered` once the peer has verified it. With ``beneath`` (a job
        directory functions write), the file is sent only if what is opened is a regular file
        inside it (:func:`~sflow.node.transfer.open_beneath`)."""
        out = _Outgoing(header, path, next(self._streams), beneath)
        if self.closed:
            out.done.errback(ConnectionError(f"connection to {self.peer_name or 'peer'} is closed"))
            return out.done
        self._queue.append(out)
        self._next_file()
        return out.done

    def fail(self, reason: str) -> None:
        """Answer with an error frame and close; the handler learns it through channel_closed."""
        if self.closed:
            return
        log.warning("event=channel_error peer=%s authenticated=%s reason=%s", self._peer(), self.authenticated, reason)
        self._write("error", {"message": reason[:500]})
        self._close_reason = reason
        self.closed = True
        self._t.loseConnection()

    def close(self) -> None:
        if not self.closed and self._t is not None:
            self._close_reason = "closed by this side"
            self.closed = True
            self._t.loseConnection()

    # -- internals -------------------------------------------------------------------------------

    def _peer(self) -> str:
        if self.peer_name:
            return self.peer_name
        peer = self._t.getPeer() if self._t is not None else None
        return f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"

    @property
    def _t(self) -> Any:
        """The transport (typed loosely: Twisted's zope interfaces do not type-check as classes)."""
        return self.transport

    def _write(self, msg_type: str, fields: Mapping[str, Any]) -> None:
        body = encode_body(msg_type, fields)
        sealer = self._sealer
        if sealer is None:
            self._put([HEADER.pack(len(body)), body])
        elif not self._outbox:
            self._t.writeSequence(sealer.frame(body))
        else:
            # Frames are being sealed on the send thread: this one is sealed there too, after them
            # (the sealer numbers frames in the order it seals them, which is the order written).
            self._emit(lambda: sealer.frame(body), None)
        if self.liveness is not None:
            self.liveness.sent(self._clock.seconds())

    def _data_frame(self, data: bytes | memoryview) -> list[bytes]:
        """One data frame's wire parts: the next bytes of the file being sent (sealed: copied out
        of ``data`` as they are encrypted; in clear: ``data`` itself, so it must not change)."""
        if self._sealer is None:
            return [data_header(len(data)), data]  # type: ignore[list-item]
        return self._sealer.data_frame(data)

    def _write_data(self, data: bytes | memoryview) -> None:
        self._put(self._data_frame(data))

    def _put(self, parts: list[bytes]) -> None:
        """Write a frame now, or after the frames still being made."""
        if self._outbox:
            self._outbox.append(_Pending(parts))
        else:
            self._t.writeSequence(parts)

    def _emit(self, make: Callable[[], list[bytes] | None], then: Callable[[BaseException | None], None] | None) -> None:
        """Make a frame on the send thread (in order), write it in its turn, then ``then(error)``.
        Without a threaded reactor (a test clock) it is made at once."""
        pending = _Pending(None, then)
        self._outbox.append(pending)
        self._send_thread.run(make, (), lambda parts, error: self._made(pending, parts, error))

    def _made(self, pending: _Pending, parts: list[bytes] | None, error: BaseException | None) -> None:
        pending.made(parts, error)
        if self.closed:  # nothing more is written
            pending.settle(error or ConnectionError("the connection closed before the frame was written"))
            return
        self._flush()

    def _flush(self) -> None:
        """Write the frames made so far, in order, stopping at the first still being made."""
        if self._flushing:
            return  # called back from within a ``then``: the loop below goes on
        self._flushing = True
        try:
            outbox = self._outbox
            while outbox and outbox[0].ready and not self.closed:
                pending = outbox.popleft()
                if pending.parts and pending.error is None:
                    self._t.writeSequence(pending.parts)
                pending.settle(pending.error)
        finally:
            self._flushing = False

    def _announce(self) -> dict[str, Any]:
        """The heartbeat field of this side's auth or ready frame."""
        return {"heartbeat": self._heartbeat.interval} if self._heartbeat is not None else {}

    # liveness

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None:
            return
        self.liveness = Liveness(self._heartbeat, self._clock.seconds(), self._peer_heartbeat)
        self._beat = self._clock.callLater(self._heartbeat.interval, self._tick)

    def _tick(self) -> None:
        self._beat = None
        if self.closed or self.liveness is None or self._heartbeat is None:
            return
        for action in self.liveness.tick(self._clock.seconds()):
            if isinstance(action, Ping):
                self._write("ping", {})
            elif isinstance(action, Lost):
                self._peer_lost(action)
                return
        self._beat = self._clock.callLater(self._heartbeat.interval, self._tick)

    def _peer_lost(self, lost: Lost) -> None:
        """Silent too long: drop the connection at once (closing it cleanly would wait for the
        silent peer to take what is still buffered for it)."""
        self._close_reason = f"no heartbeat from {self._peer()} for {lost.silence:.1f} s (limit {lost.limit:g} s)"
        log.info("event=peer_silent peer=%s silence=%.1f limit=%g", self._peer(), lost.silence, lost.limit)
        self.closed = True
        self._t.abortConnection()

    def _auth_expired(self) -> None:
        self._timer = None
        if not self.authenticated:
            self.fail("authentication timed out")

    def _on_message(self, msg: Message) -> None:
        kind = msg["t"]
        if kind == "error":
            self._close_reason = f"peer reported: {msg['message']}"
            log.warning("event=peer_error peer=%s message=%s", self._peer(), msg["message"])
            self.closed = True
            self._t.loseConnection()
            return
        if not self.authenticated or not self.ready.called:
            self._handshake(msg)
            return
        if kind == "ping":
            return
        if kind == "file_begin":
            self._file_begin(msg)
        elif kind == "file_end":
            self._file_end(msg)
        elif kind == "file_ack":
            self._file_ack(msg)
        else:
            self.handler.message_received(self, msg)

    def _handshake(self, msg: Message) -> None:
        kind = msg["t"]
        if self.role == "server":
            if kind == "hello" and not self._their_nonce:
                auth.check_nonce(msg["nonce"])
                seal.check_kx(msg["kx"])
                auth.check_sealed(self._sealed, msg["sealed"], "the client")
                self._their_nonce, self._their_kx = msg["nonce"], msg["kx"]
                announced = {"sealed": self._sealed}
                proof = auth.server_proof(self._secret, self._their_nonce, self._my_nonce, self._their_kx, self._my_kx, announced)
                self._write("challenge", {"nonce": self._my_nonce, "kx": self._my_kx, "proof": proof, **announced})
                return
            if kind == "auth" and self._their_nonce:
                expected = auth.client_proof(
                    self._secret, self._their_nonce, self._my_nonce, self._their_kx, self._my_kx, auth.terms(msg)
                )
                auth.verify(expected, msg["proof"], "the client")
                auth.check_sealed(self._sealed, msg["sealed"], "the client")
                self._peer_heartbeat = msg.get("heartbeat")
                self._start_sealing(self._their_nonce, self._my_nonce, self._their_kx, self._my_kx)
                self._authenticated()
                self._write("ready", {"node": self.name, "version": __version__, **self._announce()})
                return
        else:
            if kind == "challenge" and not self._their_nonce:
                auth.check_nonce(msg["nonce"])
                seal.check_kx(msg["kx"])
                self._their_nonce, self._their_kx = msg["nonce"], msg["kx"]
                expected = auth.server_proof(
                    self._secret, self._my_nonce, self._their_nonce, self._my_kx, self._their_kx, auth.terms(msg)
                )
                auth.verify(expected, msg["proof"], "the server")
                auth.check_sealed(self._sealed, msg["sealed"], "the server")
                announced = {"sealed": self._sealed, **self._announce()}
                proof = auth.client_proof(self._secret, self._my_nonce, self._their_nonce, self._my_kx, self._their_kx, announced)
                self._write("auth", {"proof": proof, **announced})
                self._start_sealing(self._my_nonce, self._their_nonce, self._my_kx, self._their_kx)
                self.authenticated = True
                return
            if kind == "ready" and self.authenticated:
                self.peer_name = msg["node"]
                self._peer_heartbeat = msg.get("heartbeat")
                self._authenticated()
                return
        raise AuthenticationError(f"unexpected {kind!r} frame before authentication")

    def _start_sealing(self, client_nonce: bytes, server_nonce: bytes, client_kx: bytes, server_kx: bytes) -> None:
        """From the next frame on, both directions are sealed (unless sealing is off)."""
        exchange, self._exchange = self._exchange, None
        if not self._sealed:
            return
        if exchange is None:
            raise AuthenticationError("a second key exchange on one connection")
        keys = seal.session_keys(self.role, self._secret, exchange, client_nonce, server_nonce, client_kx, server_kx)
        self._sealer = seal.Sealer(keys.send)
        self._decoder.opener = seal.Opener(keys.receive)

    def _authenticated(self) -> None:
        self.authenticated = True
        self._decoder.limit = MAX_FRAME
        # Read (and buffer before pausing a file sender) in larger pieces once the peer is trusted:
        # fewer system calls and reactor turns per file, memory still bounded to a few chunks.
        if self._t is not None and hasattr(self._t, "bufferSize"):
            self._t.bufferSize = max(self._t.bufferSize, 2 * self._chunk, TRUSTED_BUFFER)
            self._t.SEND_LIMIT = self._t.bufferSize
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._start_heartbeat()
        log.debug("event=authenticated role=%s peer=%s", self.role, self._peer())
        self.handler.channel_ready(self)
        self.ready.callback(self)

    # receiving files

    def _stream(self, msg: Message) -> tuple[Message, FileSink]:
        entry = self._sinks.get(msg["s"])
        if entry is None:
            raise ProtocolError(f"{msg['t']} for unknown stream {msg['s']}")
        return entry

    def _file_begin(self, msg: Message) -> None:
        if msg["s"] in self._sinks or msg["s"] in self._refused:
            raise ProtocolError(f"stream {msg['s']} is already open")
        if self._incoming is not None:
            raise ProtocolError(f"file_begin of stream {msg['s']} before stream {self._incoming} ended")
        if msg["size"] < 0:
            raise ProtocolError("negative file size")
        self._incoming = msg["s"]
        try:
            sink = self.handler.open_sink(self, msg)
            if self._sealer is not None:
                sink.without_digest()
        except AlreadyHave as exc:
            # Its chunks are dropped; the ack says it is delivered (the receiver has it).
            self._refused[msg["s"]] = ""
            log.debug("event=file_already_here path=%s task=%s reason=%s", msg["path"], msg["task"], exc)
            return
        except (SflowError, OSError) as exc:
            # Refused (a stale job, an unexpected or unsafe path): its chunks are dropped and the
            # sender learns why from the ack; the connection, shared by other jobs, stays open.
            reason = f"refused {msg['path']!r} from task {msg['task']}: {exc}"
            self._refused[msg["s"]] = reason
            self.handler.file_failed(self, msg, reason)
            return
        self._sinks[msg["s"]] = (msg, sink)

    def _file_end(self, msg: Message) -> None:
        if msg["s"] != self._incoming:
            raise ProtocolError(f"file_end of stream {msg['s']}, which is not the open one")
        self._incoming = None
        refused = self._refused.pop(msg["s"], None)
        if refused is not None:
            self._write("file_ack", {"s": msg["s"], "ok": not refused, "error": refused})
            return
        begin, sink = self._stream(msg)
        del self._sinks[msg["s"]]
        self._disk(sink.finish, (msg["sha256"],), lambda path, error: self._file_done(begin, path, error))

    def _file_done(self, begin: Message, path: Path | None, error: BaseException | None) -> None:
        if self.closed:
            log.info("event=file_after_close path=%s ok=%s", begin["path"], error is None)
            return
        if error is not None or path is None:
            self._write("file_ack", {"s": begin["s"], "ok": False, "error": str(error)})
            self.handler.file_failed(self, begin, str(error))
            return
        self._write("file_ack", {"s": begin["s"], "ok": True, "error": ""})
        self.handler.file_received(self, begin, path)

    def _data_received(self, frame: Data) -> None:
        """The next bytes of the incoming file: opened (when sealed) and written on the disk
        thread, in order. A refused file's bytes are opened too, and dropped."""
        if not self.authenticated or not self.ready.called:
            raise AuthenticationError("a data frame before authentication")
        stream = self._incoming
        if stream is None:
            raise ProtocolError("a data frame outside a file")
        n = len(frame.body)
        entry = self._sinks.get(stream)
        if entry is None and stream not in self._refused:
            raise ProtocolError(f"a data frame for stream {stream}, which has no file")
        if entry is not None:
            entry[1].count(frame.size)
        elif frame.sequence is None:
            return
        if frame.sequence is not None:
            self._unopened += 1
        self._disk_bytes += n
        if self._disk_bytes > DISK_HIGH and not self._reading_paused:
            # The disk is behind: stop reading this connection (TCP then slows the sender).
            self._reading_paused = True
            self._t.pauseProducing()
            if self.liveness is not None:
                self.liveness.reading(True, self._clock.seconds())
        sink = entry[1] if entry is not None else None
        self._disk(self._store, (frame, sink), lambda _, error: self._data_stored(frame, n, error))

    def _store(self, frame: Data, sink: FileSink | None) -> None:
        """On the disk thread: open a sealed data frame, then write it (unless refused)."""
        data: bytes | memoryview = frame.body
        if frame.sequence is not None:
            assert self._decoder.opener is not None
            if len(self._plain) < frame.size:
                self._plain = bytearray(frame.size)
            data = self._decoder.opener.open_into(frame.sequence, frame.header, frame.body, self._plain)
        if sink is not None:
            sink.write(data)

    def _data_stored(self, frame: Data, n: int, error: BaseException | None) -> None:
        self._disk_bytes -= n
        if frame.sequence is not None:
            self._unopened -= 1
        if error is not None:
            self.fail(str(error) if isinstance(error, SflowError) else f"cannot store a file chunk: {error!r}")
            return
        if self.closed:
            return
        if self._reading_paused and self._disk_bytes < DISK_LOW:
            self._reading_paused = False
            self._t.resumeProducing()
            if self.liveness is not None:
                self.liveness.reading(False, self._clock.seconds())
            self._process()
        elif self._held is not None and not self._unopened:
            self._process()

    def _disk(self, fn: Callable[..., Any], args: tuple[Any, ...], done: Callable[[Any, BaseException | None], None]) -> None:
        """Run ``fn(*args)`` on the disk thread, in submission order, then ``done(result, error)``
        back on the reactor. Opening and writing a file then overlap with receiving the next
        chunks."""
        self._disk_thread.run(fn, args, done)

    # sending files

    def _next_file(self) -> None:
        if self._sending is not None or not self._queue or self.closed:
            return
        out = self._queue.popleft()
        try:
            source = open_beneath(out.beneath, out.path) if out.beneath is not None else open(out.path, "rb")  # noqa: SIM115 - FileSender closes it
            size = source.seek(0, 2)
            source.seek(0)
        except (OSError, TransferError) as exc:
            out.done.errback(TransferError(f"cannot read {out.path}: {exc}"))
            self._next_file()
            return
        self._sending = out
        started = self._clock.seconds()
        self._write("file_begin", {**out.header, "s": out.stream, "size": size})
        stream = out.stream

        def ended(sent: Sent) -> None:
            self._sending = None
            self._awaiting_ack[stream] = (out, started, sent.size)
            self._write("file_end", {"s": stream, "sha256": sent.sha256})
            self._next_file()

        def errored(exc: BaseException) -> None:
            self._sending = None
            if not out.done.called:
                out.done.errback(exc)
            self.fail(f"could not send {out.path.name}: {exc}")

        # Sealed: no digest (the receiver authenticates every frame), and the chunks are read
        # into one buffer, as sealing copies them out of it.
        sealed = self._sealer is not None
        FileSender(
            self._t, source, size, self._chunk, self._data_frame, self._emit, ended, errored, digest=not sealed, reuse=sealed
        ).begin()

    def _file_ack(self, msg: Message) -> None:
        entry = self._awaiting_ack.pop(msg["s"], None)
        if entry is None:
            raise ProtocolError(f"file_ack for unknown stream {msg['s']}")
        out, started, size = entry
        if msg["ok"]:
            out.done.callback(Delivered(size, started, self._clock.seconds()))
        else:
            out.done.errback(TransferError(f"peer {self.peer_name} refused {out.path.name}: {msg['error']}"))


def _keepalive(transport: Any, heartbeat: Heartbeat) -> None:
    """TCP keepalive (and a bound on unacknowledged data) on the connection's socket, as a second
    line behind heartbeats: the kernel then drops a connection whose peer host is gone even while
    the reactor is busy."""
    set_keepalive = getattr(transport, "setTcpKeepAlive", None)
    get_handle = getattr(transport, "getHandle", None)
    if set_keepalive is None or get_handle is None:
        return  # not a TCP transport (tests)
    set_keepalive(True)
    sock = get_handle()
    options = (
        ("TCP_KEEPIDLE", max(1, round(heartbeat.interval * heartbeat.misses))),
        ("TCP_KEEPINTVL", max(1, round(heartbeat.interval))),
        ("TCP_KEEPCNT", heartbeat.misses),
        ("TCP_USER_TIMEOUT", max(1000, round(heartbeat.bound * 1000))),
    )
    for name, value in options:
        option = getattr(socket, name, None)
        if option is None:
            continue
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
        except OSError as exc:
            log.debug("event=keepalive_unset option=%s error=%s", name, exc)


def connect(
    reactor: Any,
    address: str,
    secret: bytes,
    handler: ChannelHandler,
    name: str,
    chunk_size: int = 262144,
    timeout: float = 10.0,
    heartbeat: Heartbeat | None = None,
    sealed: bool = True,
) -> defer.Deferred[Channel]:
    """Open an authenticated client channel to ``host:port``; fires once the server said ``ready``."""
    try:
        addr = parse_address(address)
    except ValueError as exc:
        return defer.fail(ProtocolError(f"bad node address {address!r}: {exc}"))
    if addr.port is None:
        return defer.fail(ProtocolError(f"node address {address!r} has no port"))
    endpoint = HostnameEndpoint(reactor, addr.host, addr.port, timeout=timeout)
    channel = Channel("client", secret, handler, reactor, name, chunk_size, heartbeat, sealed)
    d = connectProtocol(endpoint, channel)
    d.addCallback(lambda _: channel.ready)
    return d
