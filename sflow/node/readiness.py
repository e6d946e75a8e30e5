"""The line a node prints on standard output once it listens, and its parser.

``sflow-node ready listen=HOST:PORT [icn=HOST:PORT] pid=PID version=VERSION``: one line, flushed,
printed once. ``sflow run``, ``sflow cluster start`` and the tests wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "sflow-node ready "


@dataclass(frozen=True, slots=True)
class Readiness:
    listen: str
    pid: int
    version: str
    icn: str | None = None  # the embedded forwarder's address (--mode icn|auto)


def format_readiness(ready: Readiness) -> str:
    icn = f" icn={ready.icn}" if ready.icn else ""
    return f"{PREFIX}listen={ready.listen}{icn} pid={ready.pid} version={ready.version}"


def parse_readiness(text: str) -> Readiness | None:
    """The readiness line in ``text`` (a node's standard output so far), if a complete one (ended by
    a newline) is there."""
    for line in text.split("\n")[:-1]:
        line = line.rstrip("\r")
        if not line.startswith(PREFIX):
            continue
        fields = dict(f.split("=", 1) for f in line[len(PREFIX) :].split() if "=" in f)
        pid, listen, version = fields.get("pid", ""), fields.get("listen"), fields.get("version")
        if listen and version and pid.isdigit():
            return Readiness(listen, int(pid), version, fields.get("icn"))
    return None
