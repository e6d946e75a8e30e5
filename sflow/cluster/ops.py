"""The per-host operations behind ``sflow cluster``: deploy, start, stop, status, logs.

Every operation runs on all hosts at once (a thread per host, up to ``parallel``) and gives one
:class:`HostResult` per host, in inventory order. A host that cannot be reached, or on which the
operation fails, is reported; the others carry on. On the hosts, start/stop/status are done by
:mod:`sflow.cluster.agent`, run by the venv that deploy installs, so each is one SSH command with a
JSON answer. Every value put into a remote command line is quoted; secrets go over SFTP only, and
every detail shown is passed through :func:`~sflow.cluster.ssh.redact`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from sflow import __version__
from sflow.cluster import bootstrap
from sflow.cluster.agent import NodeFiles
from sflow.cluster.inventory import HostSpec, Inventory, neighbours
from sflow.cluster.package import Wheel, wheel_metadata
from sflow.cluster.ssh import Connector, RemoteHost, redact
from sflow.cluster.target import HostPython, no_python, too_old, unsuitable
from sflow.cluster.timeline import merge_logs
from sflow.cluster.wheelhouse import DependencyWheels, WheelCache, WheelFile, Wheelhouse, file_sha256, requirements_for, sync_plan
from sflow.config import Config, config_to_dict
from sflow.errors import ClusterError
from sflow.model.infra import Address

log = logging.getLogger(__name__)

VENV = "venv"
_AGENT = f"{VENV}/bin/python"
_NO_DIR, _NOT_DEPLOYED = 97, 98
_FILES = NodeFiles(Path("."))  # names only; paths on hosts are relative to the host directory
MERGED_LOG = "merged.log"


@dataclass(frozen=True, slots=True)
class HostResult:
    """What happened on one host. ``result`` is one word (deployed, started, up, down, failed...)."""

    host: str
    ok: bool
    result: str
    detail: str = ""
    facts: tuple[tuple[str, str], ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "ok": self.ok, "result": self.result, "detail": self.detail, **dict(self.facts)}


@dataclass(frozen=True, slots=True)
class Cluster:
    """An inventory and how to reach it. ``secrets`` are hidden from every detail reported."""

    inventory: Inventory
    connector: Connector
    secrets: tuple[str | bytes, ...] = ()
    parallel: int = 16

    def labels(self) -> tuple[str, ...]:
        """One unique label per host (see :meth:`Inventory.labels`)."""
        return self.inventory.labels()

    def for_each_host(self, action: Callable[[HostSpec, RemoteHost], HostResult], what: str) -> list[HostResult]:
        """Run ``action`` on every host in parallel; connection failures become results."""
        hosts = self.inventory.hosts
        labels = self.labels()
        hidden = self.secrets + self.inventory.secrets

        def one(index: int) -> HostResult:
            host, label = hosts[index], labels[index]
            try:
                remote = self.connector.connect(host)
            except ClusterError as exc:
                return HostResult(label, False, "unreachable", redact(str(exc), hidden))
            try:
                result = action(host, remote)
            except ClusterError as exc:
                result = HostResult(label, False, "failed", str(exc))
            finally:
                remote.close()
            return dataclasses.replace(result, host=label, detail=redact(result.detail, hidden))

        with ThreadPoolExecutor(max_workers=max(1, min(self.parallel, len(hosts))), thread_name_prefix="sflow-ssh") as pool:
            results = list(pool.map(one, range(len(hosts))))
        for result in results:
            log.info("event=host_%s host=%s ok=%s result=%s detail=%r", what, result.host, result.ok, result.result, result.detail)
        return results


def _q(value: str) -> str:
    return shlex.quote(value)


def _agent(remote: RemoteHost, host: HostSpec, args: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run the agent in the host directory and return its JSON answer."""
    d = _q(host.dir)
    command = (
        f"cd -- {d} 2>/dev/null || exit {_NO_DIR}; "
        f"[ -x {_AGENT} ] || exit {_NOT_DEPLOYED}; "
        f"exec {_AGENT} -m sflow.cluster.agent {' '.join(_q(a) for a in args)}"
    )
    done = remote.run(command, timeout=timeout)
    if done.exit_status == _NO_DIR:
        raise ClusterError(f"directory {host.dir} does not exist; run `sflow cluster deploy` first")
    if done.exit_status == _NOT_DEPLOYED:
        raise ClusterError(f"sflow is not deployed in {host.dir}; run `sflow cluster deploy` first")
    return _json_answer(done.stdout, done.stderr, done.exit_status, "agent")


def _json_answer(stdout: bytes, stderr: bytes, status: int, what: str) -> dict[str, Any]:
    lines = stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise ClusterError(f"{what} exited {status} without an answer: {_last_lines(stderr, 3)}")
    return answer


def _last_lines(output: bytes, count: int = 2) -> str:
    """The end of a program's error output, which names the error (a traceback's last line)."""
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "no error output"


def _failure(answer: Mapping[str, Any]) -> str:
    detail = str(answer.get("error", "failed"))
    tail = str(answer.get("log_tail", "")).strip().splitlines()[-3:]
    return detail + (" | log: " + " / ".join(tail) if tail else "")


# --- deploy ------------------------------------------------------------------------------------


def host_config(config: Config, host_dir: str) -> str:
    """The settings file for a host: the given config, with the secret, pid file and work
    directory in the host directory."""
    files = NodeFiles(Path(host_dir))
    node = dataclasses.replace(config.node, workdir=str(files.workdir), pid_file=str(files.pid), log_file="")
    security = dataclasses.replace(config.security, secret_file=str(files.secret))
    text = tomli_w.dumps(config_to_dict(dataclasses.replace(config, node=node, security=security)))
    return f"# Written by `sflow cluster deploy` (sflow {__version__}).\n{text}"


def deploy(
    cluster: Cluster, wheel: Wheel, config: Config, secret: bytes, *, cache: DependencyWheels | None = None, timeout: float = 600.0
) -> list[HostResult]:
    """Install sflow on every host without any package index there: read the host's Python, get
    sflow's dependencies as wheels for it on this machine (``cache``), send the wheels the host
    does not hold yet, install them into an isolated ``<dir>/venv`` (kept when it already holds
    this wheelhouse), and write the settings and the cluster secret (mode 0600)."""
    script = Path(bootstrap.__file__).read_bytes()
    metadata = wheel_metadata(wheel.path)
    wheels = cache or WheelCache()
    sflow_wheel = WheelFile(wheel.path, file_sha256(wheel.path))

    def action(host: HostSpec, remote: RemoteHost) -> HostResult:
        python, answer = _probe(remote, host, script, metadata.requires_python or "")
        problem = unsuitable(python, metadata.requires_python, host.name)
        if problem:
            raise ClusterError(problem)
        host_dir = str(answer["dir"])
        requirements = requirements_for(metadata.requires_dist, python.marker_environment())
        house = Wheelhouse(python.key, sflow_wheel, wheels.dependencies(python, requirements))
        held = answer.get("wheels")
        send, sent_bytes = _send_wheels(remote, host_dir, house, held if isinstance(held, dict) else {})
        done = remote.run(f"cd -- {_q(host_dir)} && exec {_q(host.python)} - install", stdin=script, timeout=timeout)
        installed = _json_answer(done.stdout, done.stderr, done.exit_status, f"installing with {host.python}")
        if not installed.get("ok"):
            raise ClusterError(f"install failed: {installed.get('error', '')}")
        remote.put_bytes(host_config(config, host_dir).encode("utf-8"), f"{host_dir}/{_FILES.config.name}", mode=0o600)
        remote.put_bytes(secret, f"{host_dir}/{_FILES.secret.name}", mode=0o600)
        check = remote.run(f"cd -- {_q(host_dir)} && {_AGENT} -m sflow --version", timeout=60)
        version = check.stdout.decode("utf-8", "replace").strip()
        if not check.ok or not version:
            raise ClusterError(f"installed sflow does not run: {_last_lines(check.stderr)}")
        reused = bool(installed.get("reused"))
        up_to_date = reused and not send
        shipped = "nothing sent" if not send else f"sent {len(send)} of {len(house.wheels)} wheels, {sent_bytes / 1e6:.1f} MB"
        return HostResult(
            host.name,
            True,
            "up to date" if up_to_date else "deployed",
            f"{version} for {python.key} in {host_dir}; {shipped}" + ("; venv reused" if reused else ""),
            (
                ("dir", host_dir),
                ("build", wheel.build),
                ("python", python.version_text),
                ("tags", python.key),
                ("wheels_sent", str(len(send))),
                ("bytes_sent", str(sent_bytes)),
            ),
        )

    return cluster.for_each_host(action, "deploy")


def _send_wheels(remote: RemoteHost, host_dir: str, house: Wheelhouse, held: Mapping[str, str]) -> tuple[list[str], int]:
    """Send the wheels the host does not hold (by SHA-256), then the manifest; (names, bytes) sent."""
    send, _ = sync_plan(house.digests(), held)  # the install step deletes what is no longer listed
    by_name = {w.name: w for w in house.wheels}
    sent_bytes = 0
    for name in send:
        remote.put_file(by_name[name].path, f"{host_dir}/{bootstrap.WHEELS}/{name}", mode=0o644)
        sent_bytes += by_name[name].path.stat().st_size
    remote.put_bytes(house.manifest(), f"{host_dir}/{bootstrap.WHEELS}/{bootstrap.MANIFEST}", mode=0o644)
    return send, sent_bytes


_NO_PYTHON, _OLD_PYTHON = 96, 95
_MIN_PROBE_PYTHON = (3, 7)  # the probe script's syntax; older interpreters only report their version


def _probe(remote: RemoteHost, host: HostSpec, script: bytes, requires_python: str) -> tuple[HostPython, dict[str, Any]]:
    """Make the host directory and read the host's Python and what the directory holds."""
    py, d = _q(host.python), _q(host.dir)
    version_check = (
        "import sys; print('python %d.%d.%d' % tuple(sys.version_info[:3])); "
        f"sys.exit(0 if sys.version_info >= {_MIN_PROBE_PYTHON!r} else {_OLD_PYTHON})"
    )
    command = (
        f"command -v {py} >/dev/null 2>&1 || exit {_NO_PYTHON}; "
        f"mkdir -p -m 700 -- {d} && cd -- {d} && mkdir -p -m 700 {bootstrap.WHEELS} && {py} -c {_q(version_check)} && exec {py} - probe"
    )
    done = remote.run(command, stdin=script, timeout=60)
    if done.exit_status == _NO_PYTHON:
        raise ClusterError(no_python(host.python, host.name))
    if done.exit_status == _OLD_PYTHON:
        found = done.stdout.decode("utf-8", "replace").split()
        raise ClusterError(too_old(found[1] if len(found) > 1 else "unknown", requires_python, host.name, host.python))
    if done.exit_status != 0 and not done.stdout.strip():
        raise ClusterError(f"cannot prepare {host.dir} with {host.python}: {_last_lines(done.stderr)}")
    answer = _json_answer(done.stdout, done.stderr, done.exit_status, f"reading {host.python}")
    if not answer.get("ok"):
        raise ClusterError(f"reading {host.python} failed: {answer.get('error', '')}")
    return HostPython.from_probe(answer), answer


# --- start / stop / status ----------------------------------------------------------------------


def start(
    cluster: Cluster, *, mode: str, timeout: float = 30.0, listen: str | None = None, hello_port: int = 15454,
    result_store: str | None = None, fresh_store: bool = False, only: Sequence[HostSpec] | None = None,
) -> list[HostResult]:
    """Start ``sflow node`` on every host and wait for each readiness line (``timeout`` each). In
    icn and auto modes each node advertises its host's inventory address; in auto mode it is given
    its neighbours' hello sockets (their addresses, ``hello_port``) from the inventory.
    ``result_store`` (relative to the host directory) replaces the node's ``icn.result_store``;
    with ``fresh_store`` it is emptied first (an experiment's cold run). ``only``: start these hosts
    alone (a node restarted), with their neighbours from the whole inventory."""
    args = ["start", "--mode", mode, "--timeout", f"{timeout:g}"] + (["--listen", listen] if listen else [])
    if result_store:
        args += ["--result-store", result_store] + (["--fresh-store"] if fresh_store else [])
    links = neighbours(cluster.inventory) if mode == "auto" else {}

    def node_args(host: HostSpec) -> list[str]:
        out = list(args)
        if mode != "ip":
            out += ["--advertise", host.address]
        for other in links.get(host, ()):
            out += ["--neighbour", str(Address(other.address, hello_port))]
        return out

    def action(host: HostSpec, remote: RemoteHost) -> HostResult:
        answer = _agent(remote, host, node_args(host), timeout + 30)
        if not answer.get("ok"):
            return HostResult(host.name, False, "failed", _failure(answer))
        facts: tuple[tuple[str, str], ...] = tuple(
            (k, str(answer[k])) for k in ("pid", "listen", "icn", "version") if k in answer
        )
        if host in links:
            facts += (("neighbours", str(len(links[host]))),)
        detail = " ".join(f"{k}={v}" for k, v in facts)
        return HostResult(
            host.name,
            True,
            "running" if answer.get("already") else "started",
            detail + (" (already running)" if answer.get("already") else ""),
            facts,
        )

    if only is not None:
        cluster = dataclasses.replace(cluster, inventory=Inventory(cluster.inventory.source, tuple(only)))
    return cluster.for_each_host(action, "start")


def stop(cluster: Cluster, *, grace: float = 10.0) -> list[HostResult]:
    """Stop the node each host's pid file names (SIGTERM, SIGKILL after ``grace``)."""

    def action(host: HostSpec, remote: RemoteHost) -> HostResult:
        answer = _agent(remote, host, ["stop", "--grace", f"{grace:g}"], 2 * grace + 30)
        if not answer.get("ok"):
            return HostResult(host.name, False, "failed", _failure(answer))
        if answer.get("stopped"):
            detail = f"pid={answer.get('pid')} signal={answer.get('signal')}"
            if answer.get("detail"):
                detail += f" ({answer['detail']})"
            return HostResult(host.name, True, "stopped", detail)
        return HostResult(host.name, True, "not running", str(answer.get("detail", "")))

    return cluster.for_each_host(action, "stop")


_STATUS_KEYS = (
    ("version", ("version",)),
    ("vcpus", ("vcpus", "vcpu_count", "cpus")),
    ("running", ("running", "running_functions", "functions_running", "tasks_running")),
    ("uptime", ("uptime", "uptime_s", "uptime_seconds")),
)


def summarise_node_status(node: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """version, vCPUs, running functions and uptime from ``sflow status --json``."""
    facts: list[tuple[str, str]] = []
    for label, keys in _STATUS_KEYS:
        for key in keys:
            if key in node:
                value = node[key]
                if isinstance(value, (list, tuple)):
                    value = len(value)
                if label == "uptime" and isinstance(value, (int, float)):
                    value = f"{value:.0f}s"
                facts.append((label, str(value)))
                break
    return tuple(facts)


def status(cluster: Cluster, *, timeout: float = 10.0) -> list[HostResult]:
    """Up or down per host; for a node that is up, what it reports about itself."""

    def action(host: HostSpec, remote: RemoteHost) -> HostResult:
        answer = _agent(remote, host, ["status", "--timeout", f"{timeout:g}"], timeout + 30)
        state = str(answer.get("state", "down"))
        if not answer.get("ok"):
            return HostResult(host.name, False, state, _failure(answer))
        node = answer.get("node")
        facts: tuple[tuple[str, str], ...] = (("pid", str(answer.get("pid"))), ("listen", str(answer.get("listen"))))
        facts += summarise_node_status(node if isinstance(node, dict) else {})
        return HostResult(host.name, True, state, " ".join(f"{k}={v}" for k, v in facts), facts)

    return cluster.for_each_host(action, "status")


# --- logs ---------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def log_file_name(label: str) -> str:
    return _UNSAFE.sub("_", label).strip("_") + ".log"


def collect_logs(cluster: Cluster, out_dir: Path) -> list[HostResult]:
    """Fetch each host's ``sflow-node.log`` into ``out_dir/<host>.log`` and write ``merged.log``,
    all hosts' lines in time order, each prefixed by its host."""
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = dict(zip(cluster.inventory.hosts, cluster.labels()))

    def action(host: HostSpec, remote: RemoteHost) -> HostResult:
        target = out_dir / log_file_name(labels[host])
        remote.get_file(f"{host.dir}/{_FILES.log.name}", target)
        size = target.stat().st_size
        return HostResult(host.name, True, "collected", f"{size} bytes -> {target}", (("file", str(target)),))

    results = cluster.for_each_host(action, "logs")
    collected = [(r.host, Path(dict(r.facts)["file"])) for r in results if r.ok]
    handles = [path.open("r", encoding="utf-8", errors="replace") for _, path in collected]
    try:
        with (out_dir / MERGED_LOG).open("w", encoding="utf-8") as merged:
            for line in merge_logs((label, handle) for (label, _), handle in zip(collected, handles)):
                merged.write(line + "\n")
    finally:
        for handle in handles:
            handle.close()
    return results
