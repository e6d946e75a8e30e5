"""A small real FTP server on loopback (RFC 959 subset: USER, PASS, TYPE, PASV, EPSV, RETR,
QUIT), serving one directory read-only, so that the FTP file server path is tested end to end
without a system FTP daemon."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import TracebackType


class FtpServer:
    def __init__(self, root: Path, *, user: str, password: str) -> None:
        self.root = root.resolve()
        self.user = user
        self.password = password
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="test-ftp", daemon=True)
        self.commands: list[str] = []

    def __enter__(self) -> FtpServer:
        self._thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # close() follows
        self._sock.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            def reply(text: str) -> None:
                conn.sendall(text.encode() + b"\r\n")

            reply("220 test server")
            user = ""
            logged_in = False
            data: socket.socket | None = None
            for raw in lines:
                command, _, arg = raw.decode().strip().partition(" ")
                command = command.upper()
                self.commands.append(command)
                if command == "USER":
                    user = arg
                    reply("331 password please")
                elif command == "PASS":
                    logged_in = user == self.user and arg == self.password
                    reply("230 logged in" if logged_in else "530 login incorrect")
                elif not logged_in and command != "QUIT":
                    reply("530 log in first")
                elif command == "TYPE":
                    reply("200 type set")
                elif command in ("PASV", "EPSV"):
                    data = socket.create_server(("127.0.0.1", 0))
                    port = data.getsockname()[1]
                    if command == "EPSV":
                        reply(f"229 Entering Extended Passive Mode (|||{port}|)")
                    else:
                        reply(f"227 Entering Passive Mode (127,0,0,1,{port >> 8},{port & 255})")
                elif command == "RETR" and data is not None:
                    path = (self.root / arg.lstrip("/")).resolve()
                    if not path.is_relative_to(self.root) or not path.is_file():
                        reply("550 no such file")
                        data.close()
                        data = None
                        continue
                    reply("150 sending")
                    channel, _ = data.accept()
                    with channel:
                        channel.sendall(path.read_bytes())
                    data.close()
                    data = None
                    reply("226 done")
                elif command == "QUIT":
                    reply("221 bye")
                    return
                else:
                    reply("502 not implemented")
