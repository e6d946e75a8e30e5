"""SSH and SFTP to the hosts of an inventory, over paramiko.

Host keys are checked against a known_hosts file. An unknown host is refused unless
``accept_new_host_keys`` is set, in which case its key is appended to the file; a host whose key
differs from the recorded one is always refused. Passwords and other secrets travel only inside the
SSH protocol, over stdin or SFTP; :func:`redact` removes them from any text that is shown or logged.

:class:`Connector` and :class:`RemoteHost` are the seam the operations use, so that tests can replace
SSH with a fake.
"""

from __future__ import annotations

import logging
import posixpath
import secrets as _secrets
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import paramiko

from sflow.cluster.inventory import HostSpec
from sflow.errors import ClusterError
from sflow.ssh import DEFAULT_KNOWN_HOSTS, SshError, SshOptions, SshTarget
from sflow.ssh import connect as ssh_connect
from sflow.ssh import describe as _describe

__all__ = ["DEFAULT_KNOWN_HOSTS", "SshOptions", "ParamikoConnector", "ParamikoHost", "redact"]

log = logging.getLogger(__name__)

REDACTED = "********"


def redact(text: str, secrets: Iterable[str | bytes]) -> str:
    """``text`` with every occurrence of each secret replaced (longest first, so that a secret that
    contains another is hidden whole). A bytes secret (a key) is matched as its hex text."""
    needles = {secret.hex() if isinstance(secret, bytes) else secret.strip() for secret in secrets}
    for needle in sorted((n for n in needles if n), key=len, reverse=True):
        text = text.replace(needle, REDACTED)
    return text


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class RemoteHost(Protocol):
    """An open connection to one host."""

    def run(self, command: str, *, stdin: bytes = b"", timeout: float = 60.0) -> CommandResult:
        """Run ``command`` (a shell command line; quote every value in it) and wait for it."""
        ...

    def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None:
        """Write ``data`` to ``remote_path`` atomically, with ``mode`` set before any byte is written."""
        ...

    def put_file(self, local_path: Path, remote_path: str, *, mode: int = 0o644) -> None: ...

    def get_file(self, remote_path: str, local_path: Path) -> None: ...

    def close(self) -> None: ...


class Connector(Protocol):
    def connect(self, host: HostSpec) -> RemoteHost:
        """Open a connection or raise :class:`ClusterError` saying why not."""
        ...


@dataclass(slots=True)
class ParamikoConnector:
    """Opens :class:`ParamikoHost` connections with the host-key policy of ``options``."""

    options: SshOptions = field(default_factory=SshOptions)

    def connect(self, host: HostSpec) -> RemoteHost:
        target = SshTarget(host.address, host.port, host.user, host.password, host.key_file)
        try:
            client = ssh_connect(target, self.options)
        except SshError as exc:
            raise ClusterError(exc.reason) from None
        return ParamikoHost(host, client)


class ParamikoHost:
    """A connected host: commands over exec channels, files over one lazily opened SFTP session."""

    def __init__(self, host: HostSpec, client: paramiko.SSHClient) -> None:
        self.host = host
        self._client = client
        self._sftp: paramiko.SFTPClient | None = None

    def run(self, command: str, *, stdin: bytes = b"", timeout: float = 60.0) -> CommandResult:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise ClusterError(f"connection to {self.host.name} is closed")
        channel = transport.open_session(timeout=timeout)
        try:
            channel.settimeout(timeout)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            # stderr is drained on its own thread: an unread stream stalls the channel's window.
            err_chunks: list[bytes] = []
            err_reader = threading.Thread(target=_drain, args=(channel.makefile_stderr("rb"), err_chunks), daemon=True)
            err_reader.start()
            out = channel.makefile("rb").read()
            err_reader.join(timeout)
            status = channel.recv_exit_status()
        except (socket.timeout, TimeoutError):
            raise ClusterError(f"command on {self.host.name} did not finish within {timeout:g} s") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ClusterError(f"command on {self.host.name} failed: {_describe(exc)}") from None
        finally:
            channel.close()
        return CommandResult(status, out, b"".join(err_chunks))

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self._client.open_sftp()
            except (paramiko.SSHException, OSError) as exc:
                raise ClusterError(f"cannot open SFTP to {self.host.name}: {_describe(exc)}") from None
        return self._sftp

    def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None:
        sftp = self._sftp_client()
        tmp = posixpath.join(posixpath.dirname(remote_path), f".{posixpath.basename(remote_path)}.{_secrets.token_hex(4)}.tmp")
        try:
            with sftp.open(tmp, "wb") as handle:
                handle.chmod(mode)  # before the first byte, so a secret is never readable by others
                handle.write(data)
            sftp.posix_rename(tmp, remote_path)
        except (OSError, paramiko.SSHException) as exc:
            raise ClusterError(f"cannot write {remote_path} on {self.host.name}: {_describe(exc)}") from None

    def put_file(self, local_path: Path, remote_path: str, *, mode: int = 0o644) -> None:
        try:
            self._sftp_client().put(str(local_path), remote_path)
            self._sftp_client().chmod(remote_path, mode)
        except (OSError, paramiko.SSHException) as exc:
            raise ClusterError(f"cannot copy {local_path} to {remote_path} on {self.host.name}: {_describe(exc)}") from None

    def get_file(self, remote_path: str, local_path: Path) -> None:
        try:
            self._sftp_client().get(remote_path, str(local_path))
        except FileNotFoundError:
            local_path.unlink(missing_ok=True)  # paramiko creates the local file before it opens the remote one
            raise ClusterError(f"{remote_path} does not exist on {self.host.name}") from None
        except (OSError, paramiko.SSHException) as exc:
            local_path.unlink(missing_ok=True)
            raise ClusterError(f"cannot fetch {remote_path} from {self.host.name}: {_describe(exc)}") from None

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self._client.close()


def _drain(stream: IO[bytes], into: list[bytes]) -> None:
    try:
        into.append(stream.read())
    except (OSError, paramiko.SSHException) as exc:
        # The main reader reports the channel's failure; this only notes why stderr is short.
        log.debug("event=stderr_read_failed error=%s", type(exc).__name__)
