"""SSH connections with one host-key policy, shared by the cluster operations and the fetchers.

Host keys are checked against a known_hosts file (``~/.ssh/known_hosts`` by default). A host whose
key is not recorded is refused unless ``accept_new_host_keys`` is set, in which case its key is
recorded (trust on first use); a host whose key CHANGED is always refused. Errors are
:class:`SshError` with a message that names the host and never a password.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko

from sflow.errors import SflowError

log = logging.getLogger(__name__)

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"



class _TransportTracebacks(logging.Filter):
    """paramiko's transport thread logs every failed connection at ERROR, a record per traceback
    line; the caller reports the failure in words. The records are demoted to INFO, so that they
    are in the log at -v and not on the terminal otherwise."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return logging.getLogger(record.name).isEnabledFor(record.levelno)


for _name in ("paramiko.transport", "paramiko.transport.sftp"):
    logging.getLogger(_name).addFilter(_TransportTracebacks())

# One lock for every known_hosts file this process appends to (connections run in threads).
_KNOWN_HOSTS_LOCK = threading.Lock()


class SshError(SflowError):
    """An SSH connection could not be made (refused, timed out, unknown or changed host key, auth).
    ``reason`` is the message without the target, for callers that name the host themselves."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class HostKeyError(SshError):
    """The host's key is unknown (and new keys are not accepted) or has changed."""


@dataclass(frozen=True, slots=True)
class SshOptions:
    known_hosts: str | os.PathLike[str] = DEFAULT_KNOWN_HOSTS
    accept_new_host_keys: bool = False
    identity: str | None = None
    connect_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class SshTarget:
    """Where to connect and as whom. ``password`` and ``key_file`` are optional."""

    host: str
    port: int = 22
    user: str | None = None
    password: str | None = None
    key_file: str | None = None

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, known_hosts: Path) -> None:
        self._known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyError(
            f"host key of {hostname} ({key.get_name()} {key.fingerprint}) is not in the known_hosts file {self._known_hosts}; "
            "check it and add it (ssh-keyscan), or pass --accept-new-host-keys (security.accept_new_host_keys)"
        )


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """Trust on first use: record the new key in known_hosts."""

    def __init__(self, known_hosts: Path) -> None:
        self._known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _KNOWN_HOSTS_LOCK:
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


def connect(target: SshTarget, options: SshOptions) -> paramiko.SSHClient:
    """An authenticated client for ``target``, or :class:`SshError` saying why not."""
    known_hosts = Path(options.known_hosts).expanduser()
    client = paramiko.SSHClient()
    if known_hosts.exists():
        try:
            client.get_host_keys().load(str(known_hosts))
        except (OSError, paramiko.SSHException) as exc:
            raise SshError(f"cannot read known_hosts {known_hosts}: {exc}") from None
    policy = _AcceptNew(known_hosts) if options.accept_new_host_keys else _RefuseUnknown(known_hosts)
    client.set_missing_host_key_policy(policy)
    key_file = target.key_file or options.identity
    key_file = os.path.expanduser(key_file) if key_file else None
    timeout = options.connect_timeout
    try:
        client.connect(
            target.host,
            port=target.port,
            username=target.user or None,
            password=target.password or None,
            key_filename=key_file,
            look_for_keys=key_file is None and not target.password,
            allow_agent=not target.password,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyError(
            f"host key of {target.host} CHANGED: it offers {exc.key.get_name()} {exc.key.fingerprint}, "
            f"{known_hosts} records {exc.expected_key.get_name()} {exc.expected_key.fingerprint}; "
            "refusing to connect (possible man-in-the-middle; fix known_hosts if the host was rebuilt)"
        ) from None
    except paramiko.AuthenticationException:
        client.close()
        method = "key" if key_file or not target.password else "password"
        raise SshError(f"authentication as {target.user} failed ({method})") from None
    except SshError:
        client.close()
        raise
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        reason = describe(exc)
        raise SshError(f"cannot connect to {target}: {reason}", reason) from None
    return client


# paramiko's words for a peer that is not (or not yet) an SSH server, said for a user.
_SSH_REASONS = {
    "Error reading SSH protocol banner": "not an SSH server (no SSH banner)",
    "No existing session": "SSH handshake timed out",
}


def describe(exc: BaseException) -> str:
    """A short reason for a network or SSH failure, in words, without secrets."""
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    for known, words in _SSH_REASONS.items():
        if text.startswith(known):
            return words
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
