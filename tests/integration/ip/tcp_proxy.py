"""A TCP proxy on the path between a delegator and a node, for the channel attack tests: it records
every byte in each direction and can flip one byte of the client's stream."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from sflow.node.protocol import HEADER


@dataclass
class Session:
    """The bytes of one proxied connection: ``up`` from the client, ``down`` from the server."""

    up: bytearray = field(default_factory=bytearray)
    down: bytearray = field(default_factory=bytearray)
    flipped_at: int | None = None


class Proxy:
    """Listens on loopback and forwards each connection to ``target``. With ``flip_frame=k``, one
    bit of the k-th frame (0-based) the client sends (``upstream``) or the server sends is flipped
    on its way."""

    def __init__(self, target: str, flip_frame: int | None = None, upstream: bool = True) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.flip_frame = flip_frame
        self.flip_upstream = upstream
        self.sessions: list[Session] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            session = Session()
            with self._lock:
                self.sessions.append(session)
            threading.Thread(target=self._pump, args=(client, server, session, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, session, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, session: Session, upstream: bool) -> None:
        record = session.up if upstream else session.down
        try:
            while data := src.recv(65536):
                start = len(record)
                record += data
                if upstream == self.flip_upstream and self.flip_frame is not None and session.flipped_at is None:
                    at = _inside_frame(record, self.flip_frame)
                    if at is not None and start <= at < len(record):
                        session.flipped_at = at
                        data = bytearray(data)
                        data[at - start] ^= 0x10
                        data = bytes(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def _inside_frame(stream: bytes | bytearray, index: int) -> int | None:
    """The offset of a byte in the middle of the body of frame ``index``, once its header arrived."""
    at = 0
    for _ in range(index):
        if len(stream) < at + HEADER.size:
            return None
        (length,) = HEADER.unpack_from(stream, at)
        at += HEADER.size + length
    if len(stream) < at + HEADER.size:
        return None
    (length,) = HEADER.unpack_from(stream, at)
    return at + HEADER.size + length // 2
