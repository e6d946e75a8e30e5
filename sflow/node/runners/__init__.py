"""Runners start one function and report how it ended: natively (:mod:`.native`) or in a Docker
container (:mod:`.docker`). Both hand back a :class:`RunningFunction` at once, whose ``kill`` works
at any moment (before the process exists too), and whose ``done`` fires with an :class:`Outcome`
and never errbacks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from sflow.node.command import Expanded

TAIL_BYTES = 16384


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a function ended. ``error`` is set when it could not be run at all (then
    ``exit_status`` is None); ``signal`` when it was killed by one."""

    exit_status: int | None
    signal: int | None
    stdout_tail: str
    stderr_tail: str
    error: str = ""
    #: CPU seconds and peak resident memory (KiB) of the function, when the runner measures them
    cpu_s: float | None = None
    max_rss_kb: int | None = None


class RunningFunction(Protocol):
    done: Deferred[Outcome]

    def kill(self) -> None:
        """Stop the function (and everything it started); ``done`` fires when it is gone."""


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """A function to run in a container: the job directory is mounted at the same path and is the
    working directory; ``user`` is ``"uid:gid"``; ``labels`` mark the container as sflow's."""

    image: str
    tar: str | None
    command: Expanded
    workdir: Path
    user: str
    cpus: tuple[int, ...] | None
    labels: Mapping[str, str]


class NativeStarter(Protocol):
    def start(self, shell: str, workdir: Path, cpus: tuple[int, ...] | None = None) -> RunningFunction: ...

    def close(self) -> None:
        """Release what the starter keeps between functions (the node is going down)."""


class ContainerStarter(Protocol):
    def start(self, spec: ContainerSpec) -> RunningFunction: ...


class DelayedCall(Protocol):
    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class ReadDescriptor(Protocol):
    """What the reactor watches for reading (Twisted's ``IReadDescriptor``)."""

    def fileno(self) -> int: ...

    def doRead(self) -> object: ...

    def connectionLost(self, reason: Failure) -> None: ...

    def logPrefix(self) -> str: ...


class WriteDescriptor(Protocol):
    """What the reactor watches for writing (Twisted's ``IWriteDescriptor``)."""

    def fileno(self) -> int: ...

    def doWrite(self) -> object: ...

    def connectionLost(self, reason: Failure) -> None: ...

    def logPrefix(self) -> str: ...


class Reactor(Protocol):
    """The parts of the Twisted reactor the execution layer uses."""

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any) -> DelayedCall: ...

    def callFromThread(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> None: ...

    def addReader(self, reader: ReadDescriptor) -> None: ...

    def removeReader(self, reader: ReadDescriptor) -> None: ...

    def addWriter(self, writer: WriteDescriptor) -> None: ...

    def removeWriter(self, writer: WriteDescriptor) -> None: ...

    def addSystemEventTrigger(
        self, phase: str, eventType: str, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any: ...

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any, **kw: Any) -> Any: ...


class Tail:
    """The last ``limit`` bytes of a stream, whatever its length (memory stays bounded)."""

    __slots__ = ("limit", "total", "_buf")

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.limit = limit
        self.total = 0
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        self._buf += data
        # Trim in batches so that many small chunks do not cost a copy each.
        if len(self._buf) > 2 * self.limit:
            del self._buf[: len(self._buf) - self.limit]

    def text(self) -> str:
        start = max(0, len(self._buf) - self.limit)
        data = bytes(self._buf[start:])
        if self.total > len(data):
            # Drop the partial first line (unless the byte before the window ends a line); say
            # how much came before.
            if not (start > 0 and self._buf[start - 1] == 0x0A):
                cut = data.find(b"\n")
                if 0 <= cut < len(data) - 1:
                    data = data[cut + 1 :]
            dropped = self.total - len(data)
            return f"[{dropped} earlier bytes not kept]\n" + data.decode("utf-8", "replace")
        return data.decode("utf-8", "replace")
