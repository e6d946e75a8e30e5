"""A real SSH/SFTP server on loopback, built with paramiko's server classes, serving one directory
read-only. Used as the file server and the image repository in integration tests (no sshd needed).
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import paramiko


class _Auth(paramiko.ServerInterface):
    def __init__(self, user: str, password: str, client_key: paramiko.PKey | None) -> None:
        self.user = user
        self.password = password
        self.client_key = client_key

    def get_allowed_auths(self, username: str) -> str:
        return "password,publickey"

    def check_auth_password(self, username: str, password: str) -> int:
        ok = username == self.user and bool(self.password) and password == self.password
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == self.user and self.client_key is not None and key == self.client_key
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _Handle(paramiko.SFTPHandle):
    def stat(self) -> Any:
        return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))


class _ReadOnlyTree(paramiko.SFTPServerInterface):
    def __init__(self, server: Any, root: Path) -> None:
        super().__init__(server)
        self.root = root.resolve()

    def _real(self, path: str) -> Path:
        real = (self.root / self.canonicalize(path).lstrip("/")).resolve()
        if not real.is_relative_to(self.root):
            raise PermissionError(path)
        return real

    def open(self, path: str, flags: int, attr: Any) -> Any:
        if flags & (os.O_WRONLY | os.O_RDWR):
            return paramiko.SFTP_PERMISSION_DENIED
        try:
            f = self._real(path).open("rb")
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 13)
        handle = _Handle(flags)
        handle.filename = path
        handle.readfile = f
        return handle

    def stat(self, path: str) -> Any:
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(self._real(path)))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 13)

    lstat = stat

    def list_folder(self, path: str) -> Any:
        try:
            real = self._real(path)
            return [paramiko.SFTPAttributes.from_stat(os.stat(p), p.name) for p in real.iterdir()]
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 13)


class SftpServer:
    """``with SftpServer(root, user="u", password="p") as s:`` serves ``root`` at ``s.port``;
    ``s.write_known_hosts(path)`` writes a known_hosts line for it."""

    def __init__(
        self,
        root: Path,
        *,
        user: str,
        password: str = "",
        client_key: paramiko.PKey | None = None,
        host_key: paramiko.PKey,
    ) -> None:
        self.root = root
        self.user = user
        self.password = password
        self.client_key = client_key
        self.host_key = host_key
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._accept, name="test-sftp", daemon=True)
        self.connections = 0

    def __enter__(self) -> SftpServer:
        self._sock.listen(8)
        self._thread.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass  # not every platform allows shutting down a listening socket; close() follows
        self._sock.close()
        for transport in self._transports:
            transport.close()
        self._thread.join(timeout=5)

    def write_known_hosts(self, path: Path) -> Path:
        path.write_text(f"[127.0.0.1]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}\n")
        return path

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # the listening socket was closed
            self.connections += 1
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _ReadOnlyTree, self.root)
            self._transports.append(transport)
            try:
                transport.start_server(server=_Auth(self.user, self.password, self.client_key))
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()  # the client went away during the handshake (a refused host key)
