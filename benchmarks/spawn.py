"""Starting a native function in the node, against a bare process started by a user, in one run.

Each round starts, one after another: ``/bin/sh -c true`` with ``subprocess.run`` (the floor; and
the same from a thread pinned to the CPU the pinned functions use), the
same function ``true`` through the node's :class:`~sflow.node.runners.native.NativeRunner` under
the real reactor (unpinned, then pinned to one CPU), from the call to ``start`` until its result
fires (output pipes read to the end, exit reaped). Rounds interleave the methods, so that load
from other processes falls on all of them alike. Target: sflow ≤ 1.5 × the floor, pinned or not.

Run as root, it also times what a root node does for every function: start it as ``node.run_as``
(``sflow-fn`` unless ``--user`` says otherwise) through the node's resident spawner (a process
that already runs as that user: one request and one report over a Unix socket per function),
unpinned and pinned, beside the same floors.

``--alternatives`` also times the ways of starting a pinned shell that were considered (each a
bare spawn and wait, outside the reactor): the former Python launcher, an exec chain through
``taskset``, and a shell held on a pipe while its mask is set from outside (sflow's former way;
sflow now pins the spawning thread for the moment of the spawn, so that the child inherits its
mask); as root, the ways of changing user that were considered: ``nsenter -S -G -w`` before every shell (the node's
former way), ``setpriv`` (with the job directory entered through an inherited descriptor) and
``subprocess`` with ``user=`` (a ``fork`` of this process); and what the spawner's socket alone
costs: one request and its answer to a resident process of that user that spawns nothing.

    .venv/bin/python benchmarks/spawn.py [--rounds 300] [--alternatives] [--user NAME] [--json OUT]
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from report import BARE, emit, load, parser, ratio
from twisted.internet import defer

from sflow.node.blocking import run_until
from sflow.node.function_user import SWITCH_USER, FunctionUser, resolve_function_user
from sflow.node.runners.native import NativeRunner, reap_through_pidfds_only
from sflow.node.runners.spawner_link import spawner_interpreter

_LAUNCHER = (
    "import os,sys\n"
    "os.setsid()\n"
    "if sys.argv[1]:\n"
    "    os.sched_setaffinity(0, [int(c) for c in sys.argv[1].split(',')])\n"
    "os.execv('/bin/sh', ['/bin/sh', '-c', sys.argv[2]])\n"
)


def _spawn_wait(path: str, argv: list[str]) -> None:
    pid = os.posix_spawn(path, argv, os.environ, setsid=True)
    os.waitpid(pid, 0)


def alternatives(cpu: int, workdir: str) -> dict[str, Callable[[], object]]:
    def launcher() -> None:
        subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, str(cpu), "true"], cwd=workdir, check=True)

    def taskset() -> None:
        _spawn_wait("/usr/bin/taskset", ["taskset", "-c", str(cpu), "/bin/sh", "-c", f"cd {workdir}; true"])

    def held() -> None:
        # the former way: the shell waits for a line on fd 3 while its mask is set from outside
        hold, release = os.pipe2(os.O_CLOEXEC)
        try:
            pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", f"read -r _ <&3 || exit 126; exec 3<&-; cd {workdir}; true"],
                                 os.environ, setsid=True, file_actions=[(os.POSIX_SPAWN_DUP2, hold, 3)])
            os.sched_setaffinity(pid, {cpu})
            os.write(release, b"\n")
        finally:
            os.close(hold)
            os.close(release)
        os.waitpid(pid, 0)

    return {"python launcher (former runner)": launcher, "taskset exec chain": taskset,
            "held shell pinned from outside (former way)": held}


def user_alternatives(user: FunctionUser, workdir: str) -> dict[str, Callable[[], object]]:
    """Other ways of starting ``/bin/sh -c true`` as ``user`` in ``workdir`` (bare spawn and wait)."""
    def setpriv() -> None:
        fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            pid = os.posix_spawn("/usr/bin/setpriv", [
                "setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups", "--no-new-privs", "--",
                "/bin/sh", "-c", "cd -P /proc/self/fd/4 || exit 126; exec 4<&-; true",
            ], user.environment(dict(os.environ)), file_actions=[(os.POSIX_SPAWN_DUP2, fd, 4)], setsid=True)
        finally:
            os.close(fd)
        os.waitpid(pid, 0)

    def fork() -> None:
        subprocess.run(["/bin/sh", "-c", "true"], user=user.uid, group=user.gid, extra_groups=[], cwd=workdir,
                       start_new_session=True, check=True)

    def nsenter() -> None:
        _spawn_wait(SWITCH_USER, [SWITCH_USER, "-S", str(user.uid), "-G", str(user.gid), f"-w{workdir}", "--",
                                  "/bin/sh", "-c", "true"])

    return {"as user: nsenter exec chain": nsenter, "as user: setpriv exec chain": setpriv,
            "as user: subprocess user= (fork)": fork}


_ECHO = (
    "import socket\n"
    "s = socket.socket(fileno=3)\n"
    "while (m := s.recv(256)):\n"
    "    s.send(m)\n"
)


class RoundTrip:
    """A resident process of ``user`` that answers every packet at once: the cost of the spawner's
    request and report without a spawn."""

    def __init__(self, user: FunctionUser) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.posix_spawn(SWITCH_USER, [
            SWITCH_USER, "-S", str(user.uid), "-G", str(user.gid), "-w/", "--",
            spawner_interpreter(user, os.environ.get("PATH", os.defpath)), "-I", "-S", "-c", _ECHO,
        ], {}, file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)], setsid=True)
        theirs.close()
        self.sock = ours

    def __call__(self) -> None:
        self.sock.send(b"x" * 64)
        self.sock.recv(256)

    def close(self) -> None:
        self.sock.close()
        os.waitpid(self.pid, 0)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--alternatives", action="store_true", help="also time the alternatives considered")
    p.add_argument("--user", default="sflow-fn", help="the function user a root node starts functions as")
    args = p.parse_args()
    cpu = max(os.sched_getaffinity(0))
    times: dict[str, list[float]] = {}
    user = resolve_function_user(args.user)  # None unless root

    with tempfile.TemporaryDirectory(prefix="sflow-bench-spawn-") as tmp:
        workdir = Path(tmp)
        others = alternatives(cpu, tmp) if args.alternatives else {}
        round_trip: RoundTrip | None = None
        if user is not None:
            os.chown(tmp, user.uid, user.gid)
            if args.alternatives:
                others.update(user_alternatives(user, tmp))
                round_trip = RoundTrip(user)
                others["as user: socket round trip only"] = round_trip

        async def rounds(reactor: Any) -> None:
            runner = NativeRunner(reactor)
            as_user = NativeRunner(reactor, user=user) if user is not None else None
            mask = os.sched_getaffinity(0)
            for _ in range(args.rounds):
                began = time.perf_counter()
                subprocess.run(BARE, check=True)
                times.setdefault("bare", []).append(time.perf_counter() - began)
                # the same, pinned to the same CPU (subprocess.run from a thread pinned there)
                os.sched_setaffinity(0, {cpu})
                try:
                    began = time.perf_counter()
                    subprocess.run(BARE, check=True)
                    times.setdefault("bare pinned", []).append(time.perf_counter() - began)
                finally:
                    os.sched_setaffinity(0, mask)
                methods = [("sflow", runner, None), ("sflow pinned", runner, (cpu,))]
                if as_user is not None:
                    methods += [(f"sflow as {args.user}", as_user, None), (f"sflow as {args.user} pinned", as_user, (cpu,))]
                for label, starter, cpus in methods:
                    began = time.perf_counter()
                    outcome = await starter.start("true", workdir, cpus).done
                    times.setdefault(label, []).append(time.perf_counter() - began)
                    if outcome.exit_status != 0:
                        raise SystemExit(f"{label}: true failed: {outcome}")
                for label, fn in others.items():
                    began = time.perf_counter()
                    fn()
                    times.setdefault(label, []).append(time.perf_counter() - began)

        def main(reactor: Any) -> defer.Deferred[None]:
            reap_through_pidfds_only(reactor)  # as the node does
            return defer.Deferred.fromCoroutine(rounds(reactor))

        run_until(main)
        if round_trip is not None:
            round_trip.close()

    floor = statistics.median(times["bare"])
    pinned_floor = statistics.median(times["bare pinned"])
    print(f"starting /bin/sh -c true, {args.rounds} rounds, interleaved; load {load()['loadavg_1m']:.2f} "
          f"on {os.cpu_count()} CPUs (pinned to CPU {cpu})")
    print(f"  {'method':<34} {'median ms':>9} {'mean ms':>8} {'x bare':>7}")
    figures: dict[str, Any] = {"rounds": args.rounds, "methods": {}}
    for label, values in times.items():
        m = statistics.median(values)
        figures["methods"][label] = {"median_ms": m * 1000, "mean_ms": statistics.fmean(values) * 1000,
                                     "ratio_to_bare": ratio(m, floor)}
        print(f"  {label:<34} {m * 1000:>9.3f} {statistics.fmean(values) * 1000:>8.3f} {ratio(m, floor):>7.2f}")
    pinned = statistics.median(times["sflow pinned"])
    figures["sflow_pinned_ratio_to_bare_pinned"] = ratio(pinned, pinned_floor)
    print(f"  sflow pinned / bare pinned: {ratio(pinned, pinned_floor):.2f}")
    if user is not None:
        user_pinned = statistics.median(times[f"sflow as {args.user} pinned"])
        figures["sflow_as_user_pinned_ratio_to_bare_pinned"] = ratio(user_pinned, pinned_floor)
        print(f"  sflow as {args.user} pinned / bare pinned: {ratio(user_pinned, pinned_floor):.2f}")
    print("  target: sflow and sflow pinned <= 1.5 x bare, as root (as the function user) too (a pinned"
          " process waits for its own CPU when the machine is busy: compare pinned with bare pinned)")
    emit(args, "spawn", figures)


if __name__ == "__main__":
    main()
