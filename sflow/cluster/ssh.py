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
import os
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

log = logging.getLogger(__name__)

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
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


@dataclass(frozen=True, slots=True)
class SshOptions:
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    accept_new_host_keys: bool = False
    identity: str | None = None
    connect_timeout: float = 10.0


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, known_hosts: Path) -> None:
        self._known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise ClusterError(
            f"host key of {hostname} ({key.get_name()} {key.fingerprint}) is not in {self._known_hosts}; "
            "check it and add it (ssh-keyscan), or pass --accept-new-host-keys"
        )


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """Trust on first use: record the new key in known_hosts. Threads share one lock per file."""

    def __init__(self, known_hosts: Path, lock: threading.Lock) -> None:
        self._known_hosts = known_hosts
        self._lock = lock

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with self._lock:
            self._known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("ascii"))
            finally:
                os.close(fd)
        log.warning(
            "event=host_key_added host=%s key_type=%s fingerprint=%s known_hosts=%s",
            hostname,
            key.get_name(),
            key.fingerprint,
            self._known_hosts,
        )


@dataclass(slots=True)
class ParamikoConnector:
    """Opens :class:`ParamikoHost` connections with the host-key policy of ``options``."""

    options: SshOptions = field(default_factory=SshOptions)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def connect(self, host: HostSpec) -> RemoteHost:
        known_hosts = Path(self.options.known_hosts).expanduser()
        client = paramiko.SSHClient()
        if known_hosts.exists():
            try:
                client.get_host_keys().load(str(known_hosts))
            except (OSError, paramiko.SSHException) as exc:
                raise ClusterError(f"cannot read known_hosts {known_hosts}: {exc}") from None
        policy: paramiko.MissingHostKeyPolicy = (
            _AcceptNew(known_hosts, self._lock) if self.options.accept_new_host_keys else _RefuseUnknown(known_hosts)
        )
        client.set_missing_host_key_policy(policy)
        key_file = host.key_file or self.options.identity
        try:
            client.connect(
                host.address,
                port=host.port,
                username=host.user,
                password=host.password,
                key_filename=key_file,
                look_for_keys=key_file is None and host.password is None,
                allow_agent=host.password is None,
                timeout=self.options.connect_timeout,
                banner_timeout=self.options.connect_timeout,
                auth_timeout=self.options.connect_timeout,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise ClusterError(
                f"host key of {host.name} CHANGED: it offers {exc.key.get_name()} {exc.key.fingerprint}, "
                f"{known_hosts} records {exc.expected_key.get_name()} {exc.expected_key.fingerprint}; "
                "refusing to connect (possible man-in-the-middle; fix known_hosts if the host was rebuilt)"
            ) from None
        except paramiko.AuthenticationException:
            client.close()
            method = "key" if key_file or host.password is None else "password"
            raise ClusterError(f"authentication as {host.user} failed ({method})") from None
        except ClusterError:
            client.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise ClusterError(f"cannot connect to {host.name}: {_describe(exc)}") from None
        return ParamikoHost(host, client)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
