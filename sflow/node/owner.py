"""What a node leaves behind when it dies, and how the next node on the same machine finds it.

A node that is killed (SIGKILL, a crash, a power cut) cannot clean up: its jobs' working
directories stay, a function it ran natively may still run, and the Docker engine keeps its
containers. Everything a node makes is therefore marked with its :class:`Owner` — the host, the
boot, the pid and the pid's start time, which together name one process for ever — and a node
starting up removes what belongs to owners that are no longer alive on this machine:

* a job directory ``WORKDIR/<job>`` has a marker ``WORKDIR/.active/<job>`` holding its owner's
  token while the job runs (removed when the job ends, so a directory kept with
  ``--keep-workdirs`` is never taken for an orphan); the functions still running in an orphaned
  directory (their working directory is inside it) are killed with it;
* ICN executions happen under ``WORKDIR/icn/sfc/<owner>/``;
* containers carry the label ``sflow.owner`` (:data:`OWNER_LABEL`);
  :meth:`sflow.node.runners.docker.DockerRunner.remove_orphans` removes those of dead owners.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sflow.durable import write_durably

log = logging.getLogger(__name__)

OWNER_LABEL = "sflow.owner"
ACTIVE = ".active"


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = raw[raw.rindex(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "-"


@dataclass(frozen=True, slots=True)
class Owner:
    host: str
    boot: str
    pid: int
    start: int

    @property
    def token(self) -> str:
        return f"{self.host}/{self.boot}/{self.pid}-{self.start}"

    @property
    def local_token(self) -> str:
        """A name for this owner's directories on this machine (no slashes)."""
        return f"{self.pid}-{self.start}"

    @classmethod
    def parse(cls, token: str) -> Owner | None:
        try:
            host, boot, rest = token.strip().split("/")
            pid, start = rest.split("-")
            return cls(host, boot, int(pid), int(start))
        except ValueError:
            return None

    def here(self) -> bool:
        """Whether this owner ran on this machine since it booted (else nothing can be said)."""
        return self.host == socket.gethostname() and self.boot == _boot_id()

    def alive(self) -> bool:
        return self.here() and _start_time(self.pid) == self.start


@cache
def current_owner() -> Owner:
    """This process."""
    pid = os.getpid()
    return Owner(socket.gethostname(), _boot_id(), pid, _start_time(pid) or 0)


def _local_alive(local_token: str) -> bool:
    pid, _, start = local_token.partition("-")
    return pid.isdigit() and start.isdigit() and _start_time(int(pid)) == int(start)


def mark_job(workdir: Path, key: str) -> None:
    """``WORKDIR/<key>`` is in use by this node (until :func:`unmark_job`)."""
    write_durably(workdir / ACTIVE / key, current_owner().token + "\n")


def unmark_job(workdir: Path, key: str) -> None:
    (workdir / ACTIVE / key).unlink(missing_ok=True)
    try:
        (workdir / ACTIVE).rmdir()  # the last one: a node's idle workdir holds only kept job directories
    except OSError:
        pass  # other jobs are running


def clean_orphans(workdir: Path) -> list[Path]:
    """Remove the job directories and ICN execution directories of dead owners (killing the
    functions still running in them); returns the directories removed."""
    removed: list[Path] = []
    markers = workdir / ACTIVE
    if markers.is_dir():
        for marker in sorted(markers.iterdir()):
            try:
                owner = Owner.parse(marker.read_text())
            except OSError:
                continue
            if owner is None or not owner.here() or owner.alive():
                continue
            removed.append(workdir / marker.name)
            marker.unlink(missing_ok=True)
        try:
            markers.rmdir()
        except OSError:
            pass  # jobs of live nodes sharing this directory
    sfc = workdir / "icn" / "sfc"
    if sfc.is_dir():
        removed += [d for d in sorted(sfc.iterdir()) if d.is_dir() and not _local_alive(d.name)]
    if removed:
        _kill_processes_in(removed)
    for directory in removed:
        shutil.rmtree(directory, ignore_errors=True)
        log.info("event=orphan_removed dir=%s", directory)
    return removed


def _kill_processes_in(directories: list[Path]) -> None:
    """SIGKILL the process group of every process whose working directory is in ``directories``
    (functions a dead node left running: each leads its own process group)."""
    roots = [d.resolve() for d in directories]
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue  # gone, or another user's
        if any(cwd == root or root in cwd.parents for root in roots):
            pid = int(entry.name)
            try:
                group = os.getpgid(pid)
                if group == os.getpgrp():
                    continue  # never this node's own group
                os.killpg(group, signal.SIGKILL)
                log.info("event=orphan_function_killed pid=%d cwd=%s", pid, cwd)
            except OSError:
                pass  # already gone
