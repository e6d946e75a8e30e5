"""The host-side half of ``sflow cluster``: run on each host, in its directory, by the venv's python.

``python -m sflow.cluster.agent start|stop|status`` starts the node daemon detached and waits for its
readiness line, stops exactly the process it started (by the pid file, after checking that the
pid's command line is this node), or asks the running node for its status. Each prints one JSON
object on stdout and exits 0 when it succeeded, 1 otherwise, so that the delegator side gets a
structured answer over a single SSH command.

Files in the host directory (:class:`NodeFiles`): ``sflow.toml`` and ``cluster.secret`` (written by
deploy), ``sflow-node.pid``, ``sflow-node.ready`` (the node's stdout: its readiness line),
``sflow-node.log`` (its log; one writer, appended), and ``work/`` (job working directories).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sflow
from sflow.config import MODES
from sflow.durable import write_durably
from sflow.node.readiness import Readiness, parse_readiness

POLL_INTERVAL = 0.05
LOG_TAIL_BYTES = 2000


@dataclass(frozen=True, slots=True)
class NodeFiles:
    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "sflow.toml"

    @property
    def secret(self) -> Path:
        return self.directory / "cluster.secret"

    @property
    def pid(self) -> Path:
        return self.directory / "sflow-node.pid"

    @property
    def ready(self) -> Path:
        return self.directory / "sflow-node.ready"

    @property
    def log(self) -> Path:
        return self.directory / "sflow-node.log"

    @property
    def workdir(self) -> Path:
        return self.directory / "work"


def node_command(
    files: NodeFiles,
    python: str,
    *,
    listen: str | None,
    mode: str | None,
    advertise: str | None = None,
    neighbours: Sequence[str] = (),
    result_store: Path | None = None,
) -> list[str]:
    """The node's argv. It names the pid file, which is how :func:`is_node_of` recognises it."""
    argv = [python, "-m", "sflow", "node", "--config", str(files.config), "--pid-file", str(files.pid)]
    argv += ["--workdir", str(files.workdir)]
    if listen:
        argv += ["--listen", listen]
    if mode:
        argv += ["--mode", mode]
    if advertise:
        argv += ["--advertise", advertise]
    for neighbour in neighbours:
        argv += ["--neighbour", neighbour]
    if result_store is not None:
        argv += ["--result-store", str(result_store)]
    return argv


def is_node_of(cmdline: Sequence[str], files: NodeFiles) -> bool:
    """Whether a process's argv is an sflow node started for this directory (it names our pid file)."""
    if "node" not in cmdline or str(files.pid) not in cmdline:
        return False
    return any(Path(arg).name == "sflow" for arg in cmdline) or any(
        a == "-m" and b == "sflow" for a, b in zip(cmdline, cmdline[1:])
    )


def process_cmdline(pid: int) -> list[str] | None:
    """argv of a live (not zombie) process, or None when there is no such process."""
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text(encoding="utf-8", errors="replace")
        raw = (proc / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The state follows the parenthesised command name, which may itself contain spaces or ')'.
    state = stat[stat.rfind(")") + 2 :][:1]
    if state in ("Z", "X"):
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def read_pid(files: NodeFiles) -> int | None:
    try:
        text = files.pid.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _write_pid(files: NodeFiles, pid: int) -> None:
    write_durably(files.pid, f"{pid}\n")


def _log_tail(files: NodeFiles) -> str:
    try:
        with files.log.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace").strip()
    except FileNotFoundError:
        return ""


def start(
    files: NodeFiles,
    *,
    mode: str,
    timeout: float,
    listen: str | None = None,
    advertise: str | None = None,
    neighbours: Sequence[str] = (),
    result_store: str | None = None,
    fresh_store: bool = False,
    python: str = sys.executable,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Start the node detached (own session, stdio to files) unless it already runs; wait for its
    readiness line until ``timeout`` seconds pass or it exits. ``result_store`` is a directory
    inside the host directory (emptied first with ``fresh_store``)."""
    running = _our_running_pid(files)
    if running is not None:
        ready = _read_readiness(files)
        return {"ok": True, "already": True, "pid": running, **_readiness_fields(ready)}
    if not files.config.exists():
        return {"ok": False, "error": f"{files.config} is missing; run `sflow cluster deploy` first"}
    store = None
    if result_store:
        store = (files.directory / result_store).resolve()
        if not store.is_relative_to(files.directory):
            return {"ok": False, "error": f"--result-store {result_store!r} is outside the host directory"}
        if fresh_store:
            shutil.rmtree(store, ignore_errors=True)
    argv = node_command(files, python, listen=listen, mode=mode, advertise=advertise, neighbours=neighbours,
                        result_store=store)
    files.workdir.mkdir(mode=0o700, exist_ok=True)
    with files.ready.open("wb") as ready_out, files.log.open("ab") as log_out:
        proc = subprocess.Popen(
            argv,
            cwd=files.directory,
            stdin=subprocess.DEVNULL,
            stdout=ready_out,
            stderr=log_out,
            start_new_session=True,  # outlives the SSH session and its SIGHUP
        )
    _write_pid(files, proc.pid)
    deadline = clock() + timeout
    while True:
        ready = _read_readiness(files)
        if ready is not None:
            return {"ok": True, "already": False, "pid": proc.pid, **_readiness_fields(ready)}
        status = proc.poll()
        if status is not None:
            files.pid.unlink(missing_ok=True)
            return {"ok": False, "error": f"sflow node exited with status {status} before it was ready", "log_tail": _log_tail(files)}
        if clock() >= deadline:
            return {
                "ok": False,
                "pid": proc.pid,
                "error": f"sflow node (pid {proc.pid}) printed no readiness line within {timeout:g} s; it is still running",
                "log_tail": _log_tail(files),
            }
        time.sleep(POLL_INTERVAL)


def _read_readiness(files: NodeFiles) -> Readiness | None:
    try:
        return parse_readiness(files.ready.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return None


def _readiness_fields(ready: Readiness | None) -> dict[str, Any]:
    if ready is None:
        return {}
    return {"listen": ready.listen, "version": ready.version, **({"icn": ready.icn} if ready.icn else {})}


def _our_running_pid(files: NodeFiles) -> int | None:
    pid = read_pid(files)
    if pid is None:
        return None
    cmdline = process_cmdline(pid)
    return pid if cmdline is not None and is_node_of(cmdline, files) else None


def stop(files: NodeFiles, *, grace: float, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Stop the node named by the pid file: SIGTERM, then SIGKILL after ``grace`` seconds. A pid
    whose command line is not this directory's node is never signalled."""
    pid = read_pid(files)
    if pid is None:
        return {"ok": True, "stopped": False, "detail": "not running (no pid file)"}
    handle = _open_process(pid)
    try:
        result = _stop_pid(files, pid, handle, grace, clock)
    finally:
        if handle is not None:
            os.close(handle)
    if result["ok"]:  # the pid is gone or not ours: the pid file names nothing to stop any more
        files.pid.unlink(missing_ok=True)
    return result


def _stop_pid(files: NodeFiles, pid: int, handle: int | None, grace: float, clock: Callable[[], float]) -> dict[str, Any]:
    cmdline = process_cmdline(pid)
    if cmdline is None:
        return {"ok": True, "stopped": False, "detail": f"not running (pid {pid} has exited)"}
    if not is_node_of(cmdline, files):
        return {"ok": True, "stopped": False, "detail": f"not running (pid {pid} now belongs to another program; not signalled)"}
    _signal(handle, pid, signal.SIGTERM)
    if _wait_gone(handle, pid, grace, clock):
        return {"ok": True, "stopped": True, "pid": pid, "signal": "SIGTERM"}
    _signal(handle, pid, signal.SIGKILL)
    if _wait_gone(handle, pid, grace, clock):
        return {"ok": True, "stopped": True, "pid": pid, "signal": "SIGKILL", "detail": f"ignored SIGTERM for {grace:g} s"}
    return {"ok": False, "pid": pid, "error": f"pid {pid} survived SIGKILL for {grace:g} s"}


def _open_process(pid: int) -> int | None:
    """A pidfd, so that the process checked is the process signalled even if the pid is reused."""
    try:
        return os.pidfd_open(pid)
    except (ProcessLookupError, AttributeError, OSError):
        return None


def _signal(handle: int | None, pid: int, signum: int) -> None:
    try:
        if handle is not None:
            signal.pidfd_send_signal(handle, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass  # it exited between the check and the signal: what we wanted


def _wait_gone(handle: int | None, pid: int, timeout: float, clock: Callable[[], float]) -> bool:
    deadline = clock() + timeout
    while process_cmdline(pid) is not None:
        remaining = deadline - clock()
        if remaining <= 0:
            return False
        if handle is not None:
            # A pidfd becomes readable when the process exits.
            select.select([handle], [], [], min(remaining, 1.0))
        else:
            time.sleep(min(remaining, POLL_INTERVAL))
    return True


def status(files: NodeFiles, *, timeout: float, python: str = sys.executable) -> dict[str, Any]:
    """Whether the node runs, and what it says about itself (``sflow status --json``)."""
    pid = _our_running_pid(files)
    if pid is None:
        return {"ok": False, "state": "down", "error": "sflow node is not running"}
    ready = _read_readiness(files)
    if ready is None:
        return {"ok": False, "state": "starting", "pid": pid, "error": "sflow node has not printed its readiness line"}
    up = {"state": "up", "pid": pid, "listen": ready.listen}
    argv = [python, "-m", "sflow", "status", "--config", str(files.config), "--connect", local_address(ready.listen), "--json"]
    try:
        done = subprocess.run(argv, cwd=files.directory, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, **up, "error": f"sflow status timed out after {timeout:g} s"}
    if done.returncode != 0:
        error = done.stderr.decode("utf-8", "replace").strip()[-LOG_TAIL_BYTES:]
        return {"ok": False, **up, "error": error or f"sflow status exited {done.returncode}"}
    try:
        node = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"ok": False, **up, "error": "sflow status --json printed no JSON"}
    return {"ok": True, **up, "node": node}


def local_address(listen: str) -> str:
    """Where a client on the same host reaches a node listening on ``listen`` (wildcards → loopback)."""
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "", "*"):
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    return f"{host}:{port}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sflow.cluster.agent", description=__doc__)
    parser.add_argument("--dir", default=".", help="the host directory (default: the current one)")
    sub = parser.add_subparsers(dest="action", required=True)
    p_start = sub.add_parser("start")
    p_start.add_argument("--mode", choices=MODES, default="ip")
    p_start.add_argument("--timeout", type=float, default=30.0)
    p_start.add_argument("--listen", default=None)
    p_start.add_argument("--advertise", default=None)
    p_start.add_argument("--neighbour", action="append", default=[])
    p_start.add_argument("--result-store", default=None)
    p_start.add_argument("--fresh-store", action="store_true")
    p_stop = sub.add_parser("stop")
    p_stop.add_argument("--grace", type=float, default=10.0)
    p_status = sub.add_parser("status")
    p_status.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    files = NodeFiles(Path(args.dir).resolve())
    if args.action == "start":
        result = start(files, mode=args.mode, timeout=args.timeout, listen=args.listen, advertise=args.advertise,
                       neighbours=args.neighbour, result_store=args.result_store, fresh_store=args.fresh_store)
    elif args.action == "stop":
        result = stop(files, grace=args.grace)
    else:
        result = status(files, timeout=args.timeout)
    result["agent_version"] = sflow.__version__
    print(json.dumps(result, sort_keys=True))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
