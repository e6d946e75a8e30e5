"""The local default cluster: several ``sflow node`` processes on loopback, and an environment
describing them, so that ``sflow run JOB`` works on one machine with nothing set up.

Each node is a separate process (``python -m sflow node --listen 127.0.0.1:0``) with its own
working directory and log file; its readiness line gives its port. Each asks the kernel to stop it
when this process dies (``--exit-with-parent``), so that no node outlives the run, even one
killed with SIGKILL. The environment has one host
per node (so that files between nodes really cross a connection) and splits this machine's CPUs
among them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from sflow.errors import ExecutionError, NodeStartError
from sflow.jsonio import parse_address
from sflow.model.infra import Core, Cpu, DataCentre, Environment, Host, HostId, Vcpu, VcpuId, Vm, VmId
from sflow.node.readiness import parse_readiness
from sflow.proctree import descendants, kill_all

log = logging.getLogger(__name__)

LOCAL_MIPS = 1000.0
LOCAL_BW = 1000.0


def local_environment(addresses: Sequence[str], vcpus_per_node: int | Sequence[int]) -> Environment:
    """One DC, one host per node address (``127.0.0.1:PORT``), ``vcpus_per_node`` vCPUs each (or
    one count per node)."""
    counts = [vcpus_per_node] * len(addresses) if isinstance(vcpus_per_node, int) else list(vcpus_per_node)
    hosts = []
    for i, text in enumerate(addresses):
        address = parse_address(text)
        hid = HostId(f"local{i}")
        vcpus = tuple(
            Vcpu(VcpuId(f"0^{i}^0^0^{k}"), LOCAL_MIPS, hid, 0, f"{hid}-cpu0", f"{hid}-core0")
            for k in range(counts[i])
        )
        core = Core(f"{hid}-core0", LOCAL_MIPS, 100.0, vcpus)
        vm = Vm(VmId(f"node{i}"), address, 0.0, tuple(v.id for v in vcpus), hid)
        hosts.append(Host(hid, f"node{i}", address.host, LOCAL_BW, 0.0, (Cpu(f"{hid}-cpu0", LOCAL_MIPS, (core,)),), (vm,)))
    return Environment((DataCentre(0, LOCAL_BW, tuple(hosts)),))


#: how much of a local node's standard error is kept for the error when it exits before it is ready
STDERR_TAIL = 4096


class _NodeProcess(ProcessProtocol):
    def __init__(self, index: int, listen: str, origin: str, log_file: Path) -> None:
        self.index = index
        self.listen = listen
        self.origin = origin
        self.log_file = log_file
        self.ready: defer.Deferred[str] = defer.Deferred()
        #: the embedded forwarder's address from the readiness line (--mode icn|auto)
        self.icn: str | None = None
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.exit_reason = ""
        self._buf = b""
        self._stderr = b""

    def outReceived(self, data: bytes) -> None:
        self._buf += data
        while b"\n" in self._buf and not self.ready.called:
            line, _, self._buf = self._buf.partition(b"\n")
            ready = parse_readiness(line.decode("utf-8", "replace") + "\n")
            if ready is not None:
                self.icn = ready.icn
                self.ready.callback(ready.listen)

    def errReceived(self, data: bytes) -> None:
        self._stderr = (self._stderr + data)[-STDERR_TAIL:]

    def processEnded(self, reason: Failure) -> None:
        self.exit_reason = reason.getErrorMessage()
        if not self.ready.called:
            self.ready.errback(self._start_error(getattr(reason.value, "exitCode", None)))
        self.ended.callback(None)

    def _start_error(self, code: int | None) -> NodeStartError:
        """Why the node did not start, in its own words (its ``sflow: error:`` line), with its exit
        status: 2 for a taken address or bad settings, as the node itself exits with."""
        said = self._stderr.decode("utf-8", "replace").strip()
        errors = [line.removeprefix("sflow: error: ") for line in said.splitlines() if line.startswith("sflow: error: ")]
        detail = errors[-1] if errors else (said.splitlines()[-1] if said else self.exit_reason)
        where = "any free port" if self.listen.endswith(":0") else self.listen
        if self.origin:
            where += f", {self.origin}"
        status = f"exit status {code}" if code is not None else "killed"
        return NodeStartError(
            f"local node {self.index} ({where}) exited before it was ready ({status}): {detail}; log: {self.log_file}",
            code if code == 2 else 1,
        )


class LocalCluster:
    """Starts and stops one node per ``listens`` address (``127.0.0.1:0``: any free port), with
    work directories ``base/node-<i>/`` and logs ``base/node-<i>.log``. ``origins`` says where an
    address came from (``VM node-a in envs/local.json``), for errors.

    Per node, optionally: ``vcpus`` (else ``vcpus_per_node``), extra environment variables
    (``node_env``: settings such as ``SFLOW_NODE_LINKS``) and, in auto mode, which other nodes are
    its neighbours (``neighbours``, by index; default: all). Once started, a node keeps its
    addresses: :meth:`restart` brings it back where it was."""

    def __init__(
        self,
        reactor: Any,
        listens: Sequence[str],
        base: Path,
        secret_file: Path,
        config_file: str | None = None,
        vcpus_per_node: int = 1,
        mode: str = "ip",
        origins: Mapping[str, str] | None = None,
        *,
        vcpus: Sequence[int] | None = None,
        node_env: Sequence[Mapping[str, str]] | None = None,
        neighbours: Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.reactor = reactor
        self.origins = dict(origins or {})
        self.listens = tuple(listens)
        self.base = base
        self.secret_file = secret_file
        self.config_file = config_file
        self.vcpus = tuple(vcpus) if vcpus is not None else (vcpus_per_node,) * len(self.listens)
        self.node_env = tuple(node_env) if node_env is not None else ({},) * len(self.listens)
        self.neighbours = neighbours
        self.mode = mode
        self._procs: list[tuple[_NodeProcess, Any]] = []
        self._argv: list[list[str]] = []
        self.addresses: list[str] = []

    @property
    def pids(self) -> list[int]:
        """The node processes' ids, in start order."""
        return [transport.pid for _, transport in self._procs]

    def running(self, index: int) -> bool:
        return not self._procs[index][0].ended.called

    def start(self, timeout: float | None = None) -> defer.Deferred[list[str]]:
        """Spawn the nodes; fires with their addresses once every readiness line has arrived
        (within ``timeout`` seconds; default 30 s and 2 s more per node, since the nodes start
        side by side on this machine's cores)."""
        if timeout is None:
            timeout = 30.0 + 2.0 * len(self.listens)
        self.base.mkdir(parents=True, exist_ok=True)
        hello_ports = [free_ports(1, socket.SOCK_DGRAM, _host(listen))[0] for listen in self.listens] if self.mode == "auto" else []
        for i, listen in enumerate(self.listens):
            argv = [sys.executable, "-m", "sflow", "node", "--listen", listen]
            argv += ["--workdir", str(self.base / f"node-{i}"), "--log-file", str(self.base / f"node-{i}.log")]
            if self.mode != "ip":
                # Each local node has its own forwarder port and result store (kept across runs).
                argv += ["--mode", self.mode, "--icn-listen", f"{_host(listen)}:0"]
                argv += ["--result-store", str(self.base / f"node-{i}-results")]
            if hello_ports:
                argv += ["--hello-port", str(hello_ports[i])]
                peers = self.neighbours[i] if self.neighbours is not None else range(len(hello_ports))
                for j in peers:
                    if j != i:
                        argv += ["--neighbour", f"{_host(self.listens[j])}:{hello_ports[j]}"]
            argv += ["--secret-file", str(self.secret_file), "--exit-with-parent", str(os.getpid())]
            if self.config_file:
                argv += ["--config", self.config_file]
            self._argv.append(argv)
            self._procs.append(self._spawn(i))
        d = defer.gatherResults([p.ready for p, _ in self._procs], consumeErrors=True)
        d.addTimeout(timeout, self.reactor)

        def ready(addresses: list[str]) -> list[str]:
            self.addresses = addresses
            for i, address in enumerate(addresses):
                # A restarted node comes back at the same addresses (plans and routes name them).
                _set_flag(self._argv[i], "--listen", address)
                icn = self._procs[i][0].icn
                if icn:
                    _set_flag(self._argv[i], "--icn-listen", icn)
            log.info("event=local_cluster_ready nodes=%s", ",".join(addresses))
            return addresses

        def failed(failure: Failure) -> Failure:
            if failure.check(defer.FirstError):
                failure = failure.value.subFailure
            if failure.check(defer.TimeoutError, defer.CancelledError):
                return Failure(ExecutionError(f"local nodes were not ready within {timeout:g} s; see {self.base}/node-*.log"))
            return failure

        d.addCallbacks(ready, failed)
        return d

    def _spawn(self, i: int) -> tuple[_NodeProcess, Any]:
        env = dict(os.environ, SFLOW_NODE_VCPUS=str(self.vcpus[i]), **self.node_env[i])
        listen = self.listens[i]
        proto = _NodeProcess(i, listen, self.origins.get(listen, ""), self.base / f"node-{i}.log")
        transport = self.reactor.spawnProcess(proto, sys.executable, self._argv[i], env=env)
        return proto, transport

    def signal(self, index: int, sig: str) -> bool:
        """Send ``sig`` (``KILL``, ``STOP``, ``CONT``, ``HUP``…) to node ``index``; False when it has
        exited already."""
        proto, transport = self._procs[index]
        if proto.ended.called:
            return False
        _signal(transport, sig)
        return True

    def restart(self, index: int, timeout: float = 30.0) -> defer.Deferred[str]:
        """Kill node ``index`` (SIGKILL) if it runs, and start it again at the same addresses; fires
        with its address once it is ready again."""
        proto, transport = self._procs[index]
        if not proto.ended.called:
            _signal(transport, "KILL")
        d: defer.Deferred[Any] = proto.ended

        def spawn(_: Any) -> defer.Deferred[str]:
            self._procs[index] = self._spawn(index)
            ready = self._procs[index][0].ready
            ready.addTimeout(timeout, self.reactor)
            return ready

        return d.addCallback(spawn)

    def stop(self, timeout: float = 15.0) -> defer.Deferred[None]:
        """SIGTERM every node, wait for them to exit (SIGKILL after ``timeout``). A stopped node
        (SIGSTOP) is continued first, so that it can act on the SIGTERM. A node killed takes with
        it the processes that were below it when it was asked to stop (its function spawner and
        functions): they would keep its output pipes open, and so its end from being seen."""
        waits = []
        below: dict[int, list[int]] = {}
        for proto, transport in self._procs:
            if not proto.ended.called:
                below[proto.index] = descendants(transport.pid) if transport.pid else []
                _signal(transport, "CONT")
                _signal(transport, "TERM")
                waits.append(proto.ended)
        d: defer.Deferred[Any] = defer.gatherResults(waits, consumeErrors=True)

        def kill() -> None:
            for proto, transport in self._procs:
                if not proto.ended.called:
                    log.warning("event=node_kill index=%d after_s=%g", proto.index, timeout)
                    _signal(transport, "KILL")
                    kill_all(below.get(proto.index, []))

        timer = self.reactor.callLater(timeout, kill)

        def done(_: Any) -> None:
            if timer.active():
                timer.cancel()

        d.addBoth(done)
        return d


def _host(listen: str) -> str:
    return listen.rpartition(":")[0]


def _set_flag(argv: list[str], flag: str, value: str) -> None:
    argv[argv.index(flag) + 1] = value


def free_ports(count: int, kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> list[int]:
    """``count`` ports of ``host`` (a loopback address by default) free right now for ``kind`` (TCP
    by default; ``socket.SOCK_DGRAM`` for UDP): for local nodes that bind them a moment later."""
    sockets = [socket.socket(socket.AF_INET, kind) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _signal(transport: Any, sig: str) -> None:
    """Send signal ``sig`` by name (``TERM``, ``KILL``, ``STOP``, ``CONT``, ``HUP``…)."""
    try:
        # Twisted takes KILL, TERM and INT by name, any other signal by number.
        transport.signalProcess(sig if sig in ("KILL", "TERM", "INT") else int(signal.Signals[f"SIG{sig}"]))
    except ProcessExitedAlready:
        log.debug("event=signal_skipped signal=%s reason=already_exited", sig)
