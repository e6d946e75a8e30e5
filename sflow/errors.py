"""The error hierarchy: every error sflow raises on purpose is an :class:`SflowError`.

Messages name what is at fault (a file, a JSON path, an id) so that the CLI can print them as they
are, without a traceback.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass


class SflowError(Exception):
    """Root of sflow's errors. ``exit_status`` is what the CLI exits with."""

    exit_status = 1


class InputError(SflowError):
    """A user-supplied file or value is malformed: a JSON file, a config file, a flag.

    ``source`` names the file (or ``<flag>``), ``where`` the JSON path or key inside it.
    """

    exit_status = 2

    def __init__(self, source: str, where: str, message: str) -> None:
        self.source = source
        self.where = where
        self.message = message
        location = f"{source}: {where}" if where else source
        super().__init__(f"{location}: {message}")


class ConfigError(InputError):
    """A configuration file, environment variable or flag is wrong."""


class ListenError(SflowError):
    """An address to listen on cannot be had: another process holds it, this host has no such
    address, or the port is privileged. Exit status 2, as for other bad settings and flags.

    ``what`` names the socket (``TCP 127.0.0.1:6363``), ``setting`` the flag and key that chose it."""

    exit_status = 2

    _REASONS = {
        errno.EADDRINUSE: "the address is already in use (another process listens there; stop it or choose another port)",
        errno.EADDRNOTAVAIL: "no network interface of this host has that address",
        errno.EACCES: "permission denied (ports below 1024 need root)",
    }

    def __init__(self, what: str, cause: BaseException | str, setting: str = "") -> None:
        self.what = what
        self.setting = setting
        if isinstance(cause, str):
            reason = cause
        else:
            # Twisted's CannotListenError keeps the OSError as ``socketError``.
            code = getattr(getattr(cause, "socketError", cause), "errno", None)
            reason = self._REASONS.get(code, os.strerror(code)) if isinstance(code, int) and code else str(cause)
        self.reason = reason
        where = f" ({setting})" if setting else ""
        super().__init__(f"cannot listen on {what}{where}: {self.reason}")

    def for_setting(self, setting: str) -> ListenError:
        """The same error, naming the flag and setting that chose the address."""
        return ListenError(self.what, self.reason, setting)


class ScheduleError(SflowError):
    """A scheduler cannot produce a schedule (for example: no vCPU belongs to a VM)."""

    exit_status = 2


class ProtocolError(SflowError):
    """A peer sent something that does not follow the wire protocol."""


class AuthenticationError(ProtocolError):
    """A peer failed to prove it holds the cluster secret."""


class DecodeError(ProtocolError):
    """Bytes from the network could not be decoded into a packet or frame."""


class IntegrityError(ProtocolError):
    """A sealed frame failed its authentication tag: changed on the way, replayed, reordered or
    from another session."""


class ExecutionError(SflowError):
    """A function failed on a node, or a job could not complete."""


class NodeStartError(ExecutionError):
    """A node that sflow started itself (``sflow run``) exited before it was ready; the exit status
    is the node's (2 when its address or settings were at fault)."""

    def __init__(self, message: str, exit_status: int = 1) -> None:
        super().__init__(message)
        self.exit_status = exit_status


@dataclass(frozen=True, slots=True)
class FunctionFailure:
    """The function that failed a job: function ``task`` on ``node``, why, with its exit status
    when it ran and exited, and the end of its stderr (in traces and in ICN failure answers)."""

    task: int
    node: str
    reason: str
    exit_status: int | None = None
    stderr_tail: str = ""


class JobFailed(ExecutionError):
    """A job failed; the message names the function, node, exit status and end of stderr."""

    def __init__(
        self,
        task_id: int,
        node: str,
        reason: str,
        exit_status: int | None = None,
        stderr_tail: str = "",
    ) -> None:
        if exit_status is not None and reason == f"exit status {exit_status}":
            reason = "the command exited with an error"  # the status is added below
        self.task_id = task_id
        self.node = node
        self.reason = reason
        self.exit_code = exit_status
        self.stderr_tail = stderr_tail
        text = f"function {task_id} failed on node {node}: {reason}"
        if exit_status is not None:
            text += f" (exit status {exit_status})"
        if stderr_tail:
            text += "\n--- end of stderr ---\n" + stderr_tail.rstrip("\n")
        super().__init__(text)


class ClusterError(SflowError):
    """An SSH cluster operation failed on one or more hosts."""


class IcnError(SflowError):
    """An ICN (NDN) operation failed: a name could not be parsed, an Interest went unanswered."""


class InvalidNameError(IcnError):
    """A name or name component given as an NDN URI (or built from values) is not valid."""

    exit_status = 2


class InterestTimeout(IcnError):
    """An Interest was not answered within its lifetime (after all retransmissions)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Interest {name} timed out")


class InterestNacked(IcnError):
    """An Interest was answered with a network Nack; ``reason`` is the NackReason code."""

    def __init__(self, name: str, reason: int, reason_text: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"Interest {name} was Nacked: {reason_text}")


class RegistrationError(IcnError):
    """A prefix registration (rib/register) was refused or not answered."""


class FaceClosedError(IcnError):
    """The face an application used was closed before its request completed."""
