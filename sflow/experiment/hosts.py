"""An experiment's nodes on real hosts (``[cluster] hosts = "hosts.toml"``): started for each run
with the cluster commands' agent over SSH (``sflow cluster start`` in the run's mode, with a result
store of the experiment's own that a run starts empty) and stopped after it (``sflow cluster
stop``). sflow must have been deployed there first (``sflow cluster deploy``), with the secret the
experiment uses.

While the run goes on, one thread reads each node's new log lines and its ``/proc/PID/stat``
over a connection kept open per host (every :data:`POLL_INTERVAL` seconds): the log lines go to
a local file (``nodes/node-<i>.log`` of the run, where "function N starts" triggers are watched
for, as for local nodes) and the stat gives the resource samples. Faults are signals sent over
SSH; a crash kills the node and the process groups of its functions."""

from __future__ import annotations

import logging
import shlex
import threading
from pathlib import Path
from typing import Any

from twisted.internet import defer, threads

from sflow.cluster import ops
from sflow.cluster.inventory import HostSpec
from sflow.cluster.ssh import RemoteHost
from sflow.errors import ClusterError, ExecutionError, SflowError
from sflow.experiment import procstat
from sflow.model.infra import Address
from sflow.node.status import query_status

log = logging.getLogger(__name__)

#: the result store of an experiment's nodes, in each host directory (emptied when a run starts)
EXPERIMENT_STORE = "experiment-results"
#: seconds between reads of the nodes' logs and stats
POLL_INTERVAL = 0.25
#: seconds a node may take to print its readiness line
START_TIMEOUT = 30.0
STATUS_TIMEOUT = 10.0
_LOG = "sflow-node.log"
_SEPARATOR = b"--sflow-experiment-log--\n"


class HostNodes:
    """The nodes of one run on the hosts of ``cluster`` (see the module docstring); ``base`` is the
    run's local directory for their logs. ``vcpus`` 0: as many as each node says it has."""

    sample_interval = 0.5

    def __init__(self, reactor: Any, cluster: ops.Cluster, mode: str, base: Path, secret: bytes, *,
                 vcpus: int = 0, hello_port: int = 15454, sealed: bool = True) -> None:
        self.reactor = reactor
        self.cluster = cluster
        self.mode = mode
        self.base = base
        self.secret = secret
        self.hello_port = hello_port
        self.sealed = sealed
        self.hosts: tuple[HostSpec, ...] = cluster.inventory.hosts
        n = len(self.hosts)
        self.vcpus: tuple[int, ...] = (vcpus,) * n if vcpus else ()
        self.addresses: list[str] = []
        self._pids = [0] * n
        self._up = [False] * n
        self._remotes: list[RemoteHost | None] = [None] * n
        self._locks = [threading.Lock() for _ in range(n)]
        self._offsets = [0] * n
        self._usage: list[procstat.Usage | None] = [None] * n
        self._quit = threading.Event()
        self._poller: threading.Thread | None = None

    # -- start and stop ----------------------------------------------------------------------------

    def start(self) -> defer.Deferred[list[str]]:
        self.base.mkdir(parents=True, exist_ok=True)
        d: defer.Deferred[list[str]] = self._in_thread(self._start_blocking)
        d.addCallback(lambda addresses: defer.Deferred.fromCoroutine(self._learn_vcpus(addresses)))
        return d

    def _start_blocking(self) -> list[str]:
        for i, host in enumerate(self.hosts):
            remote = self.cluster.connector.connect(host)
            self._remotes[i] = remote
            size = remote.run(f"stat -c %s {self._log_path(host)} 2>/dev/null || echo 0", timeout=30)
            self._offsets[i] = int(size.stdout.strip() or b"0") if size.ok else 0
        results = self._start_hosts(fresh=True)
        if any(r.ok and r.result == "running" for r in results):
            # nodes someone started before: stopped, and started again in this run's mode and store
            ops.stop(self.cluster, grace=5.0)
            results = self._start_hosts(fresh=True)
        failed = [r for r in results if not r.ok]
        if failed:
            ops.stop(self.cluster, grace=5.0)
            self._close()
            raise ExecutionError("the nodes did not start on every host: "
                                 + "; ".join(f"{r.host}: {r.result}: {r.detail}" for r in failed))
        self.addresses = [self._started(i, r) for i, r in enumerate(results)]
        self._quit.clear()
        self._poller = threading.Thread(target=self._poll, name="sflow-experiment-hosts", daemon=True)
        self._poller.start()
        return self.addresses

    def _start_hosts(self, fresh: bool, only: tuple[HostSpec, ...] | None = None) -> list[ops.HostResult]:
        return ops.start(self.cluster, mode=self.mode, timeout=START_TIMEOUT, hello_port=self.hello_port,
                         result_store=EXPERIMENT_STORE, fresh_store=fresh, only=only)

    def _started(self, i: int, result: ops.HostResult) -> str:
        facts = dict(result.facts)
        self._pids[i] = int(facts["pid"])
        self._up[i] = True
        port = int(facts["listen"].rpartition(":")[2])
        return str(Address(self.hosts[i].address, port))

    async def _learn_vcpus(self, addresses: list[str]) -> list[str]:
        if not self.vcpus:
            found = []
            for address in addresses:
                status = await query_status(self.reactor, address, self.secret, STATUS_TIMEOUT, sealed=self.sealed)
                found.append(int(status.get("vcpus", 1)))
            self.vcpus = tuple(found)
        return addresses

    def stop(self) -> defer.Deferred[None]:
        return self._in_thread(self._stop_blocking)

    def _stop_blocking(self) -> None:
        self._quit.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None
        self._poll_once()  # the last lines of the logs
        for result in ops.stop(self.cluster, grace=5.0):
            if not result.ok:
                log.warning("event=experiment_node_not_stopped host=%s detail=%s", result.host, result.detail)
        self._up = [False] * len(self.hosts)
        self._close()

    def _close(self) -> None:
        for i, remote in enumerate(self._remotes):
            if remote is not None:
                remote.close()
                self._remotes[i] = None

    # -- faults ------------------------------------------------------------------------------------

    def running(self, i: int) -> bool:
        return self._up[i]

    def pid(self, i: int) -> int:
        return self._pids[i]

    def signal(self, i: int, sig: str) -> bool:
        if not self._up[i]:
            return False
        self._command_later(i, f"kill -s {shlex.quote(sig)} {self._pids[i]}")
        return True

    def crash(self, i: int) -> bool:
        if not self._up[i]:
            return False
        self._up[i] = False
        self._command_later(i, _crash_command(self._pids[i]))
        return True

    def restart(self, i: int) -> defer.Deferred[str]:
        pid, was_up = self._pids[i], self._up[i]
        self._up[i] = False

        def again() -> str:
            if was_up:
                try:
                    self._command(i, _crash_command(pid))
                except ClusterError as exc:  # gone already: started again all the same
                    log.info("event=experiment_restart_kill host=%s error=%s", self.hosts[i].name, exc)
            (result,) = self._start_hosts(fresh=False, only=(self.hosts[i],))
            if not result.ok:
                raise ExecutionError(f"{result.host}: {result.result}: {result.detail}")
            return self._started(i, result)

        return self._in_thread(again)

    def _command_later(self, i: int, command: str) -> None:
        d = self._in_thread(self._command, i, command)
        d.addErrback(lambda f: log.warning("event=experiment_host_command_failed host=%s command=%r error=%s",
                                           self.hosts[i].name, command, f.getErrorMessage()))

    def _command(self, i: int, command: str) -> None:
        with self._locks[i]:
            remote = self._remotes[i]
            if remote is None:
                raise ClusterError(f"{self.hosts[i].name}: not connected")
            done = remote.run(command, timeout=30)
        if not done.ok:
            raise ClusterError(f"{self.hosts[i].name}: {command!r} exited with {done.exit_status}: "
                               f"{done.stderr.decode(errors='replace').strip()[-300:]}")

    # -- usage and logs ----------------------------------------------------------------------------

    def usage(self, i: int) -> procstat.Usage | None:
        return self._usage[i] if self._up[i] else None

    def log_file(self, i: int) -> Path:
        return self.base / f"node-{i}.log"

    def _poll(self) -> None:
        while not self._quit.wait(POLL_INTERVAL):
            self._poll_once()

    def _poll_once(self) -> None:
        for i, host in enumerate(self.hosts):
            with self._locks[i]:
                remote = self._remotes[i]
                if remote is None:
                    continue
                command = (f"cat /proc/{self._pids[i]}/stat 2>/dev/null; printf %s {shlex.quote(_SEPARATOR.decode())}; "
                           f"tail -c +{self._offsets[i] + 1} {self._log_path(host)} 2>/dev/null")
                try:
                    done = remote.run(command, timeout=30)
                except (SflowError, OSError) as exc:
                    log.info("event=experiment_poll_failed host=%s error=%s", host.name, exc)
                    continue
            stat, _, lines = done.stdout.partition(_SEPARATOR)
            self._usage[i] = procstat.own_usage(stat.decode(errors="replace")) if stat else None
            whole = lines[:lines.rfind(b"\n") + 1]  # a line being written comes whole next time
            if whole:
                with self.log_file(i).open("ab") as f:
                    f.write(whole)
                self._offsets[i] += len(whole)

    def _log_path(self, host: HostSpec) -> str:
        return shlex.quote(f"{host.dir}/{_LOG}")

    def _in_thread(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), fn, *args)


def _crash_command(pid: int) -> str:
    """SIGKILL to the node, then to the session of each of its children, as a machine that fails
    takes them all: a node that is not root starts each function in a session of its own; a root
    node's child is its function spawner, whose session holds every function it started. The node
    goes first, so that it cannot report its functions as killed."""
    return (f"c=$(cat /proc/{pid}/task/*/children 2>/dev/null); kill -s KILL {pid} || exit 1; "
            f"for s in $c; do pkill -KILL -s $s; done; exit 0")
