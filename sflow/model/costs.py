"""Costs measured on real runs, and how they replace the guesses of an environment and a job.

``sflow calibrate`` (:mod:`sflow.delegator.calibrate`) turns run traces into
:class:`MeasuredCosts`, which ``costs.json`` holds (:func:`sflow.jsonio.load_costs` reads it).
:class:`CostModel` resolves them for one (environment, job) pair: the execution time of every task
on every vCPU and the time every edge's data takes between two vCPUs. The scheduling
:class:`~sflow.sched.problem.Problem`, the simulator and the validator all ask it.

**Which measured function is this task.** A measured function carries its job id and task id and a
*content key* (:func:`function_key`): the SHA-256 of its Docker image and its command with the
predecessor numbers of ``$F^<id>`` / ``$V^<id>`` left out. A task takes the samples of

1. the functions with its job id and task id whose content key is its own (or unknown: calibrated
   without the job file) — the same function in another run of the same job;
2. otherwise every function with its content key, whatever their ids — the same command in a
   renumbered or regenerated job, or in another job (identical commands pool their samples).

A function whose command or image changed under the same ids is a different function: its old
times are not used. The numbers are left out of the key because they are only ids: a renumbered job
runs the same programs on the same kinds of input.

**Hosts.** Measurements are per host, a host being a node (the address the trace records). A VM of
the environment is the host at its address (any port when the VM gives none); a VM whose address
was never measured — the local cluster of ``sflow run`` gets new ports on every run — is the host(s)
that ran one of its vCPU ids.

**Execution time** of task t on vCPU v: the median of t's samples on v's host; measured only on
other hosts, the median over those hosts of their median scaled by speed (their vCPUs' MIPS over
v's, for hosts of the environment); never measured, workload / MIPS.

**Transfers** between two hosts cost ``latency + MB × seconds-per-MB``. A measured pair whose sizes
varied has its own least-squares line (latency and bandwidth). A pair measured at one size only
cannot tell latency from bandwidth: the environment's bandwidth is kept and the latency is what
remains of the measured mean (``mean seconds − mean MB / bandwidth``, at least 0), which predicts
the measured size exactly. A pair never measured takes the median latency of the measured pairs
(but no less than the hand-off measured at either end) and the slower of the environment's
bandwidth and their median bandwidth. Within one host, the measured hand-off latency (an input
ready on the node → the function started) and no bandwidth.
**Edge sizes** are the bytes measured for the edge's files (``MB = bytes / 10^6``), the job's
declared sizes for files never measured.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sflow.model.infra import Environment, VcpuId, VmId
from sflow.model.paths import UnsafePath, job_relative
from sflow.model.workflow import Job, Task, TaskId

#: digits of the content key kept (128 bits)
KEY_HEX_LEN = 32
_PRED_REF = re.compile(r"\$([FV])\^\d+")


@dataclass(frozen=True, slots=True)
class FunctionCosts:
    """What the runs measured of one function."""

    job_id: int
    task_id: int
    #: :func:`function_key`, or None when calibrated without the job file
    key: str | None
    #: the command's program, for people reading the file
    label: str
    #: host → execution seconds measured there, one per run
    seconds: Mapping[str, tuple[float, ...]]
    #: job-relative output path → bytes, for the files that crossed between hosts
    outputs: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HostCosts:
    """A node that ran measured functions: its address and the vCPU ids it ran them on."""

    name: str
    vcpus: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LinkCosts:
    """Transfers from host ``src`` to host ``dst`` (the same host: the hand-off latency).

    ``latency`` (s) and ``bandwidth`` (MB/s) come from a least-squares line when the sizes varied;
    with one size only ``bandwidth`` is None and ``latency`` None between hosts (see the module
    docstring); within one host ``latency`` is the median hand-off and ``bandwidth`` None.
    """

    src: str
    dst: str
    samples: int
    latency: float | None
    bandwidth: float | None
    mean_mb: float
    mean_seconds: float


@dataclass(frozen=True, slots=True)
class MeasuredCosts:
    """The content of a costs file."""

    functions: tuple[FunctionCosts, ...]
    hosts: tuple[HostCosts, ...]
    links: tuple[LinkCosts, ...]
    #: the runs measured ("job 101 run a0595a89"), for the record
    runs: tuple[str, ...] = ()


def function_key(task: Task) -> str:
    """The content key of a function (see the module docstring)."""
    canonical = {"cmd": _PRED_REF.sub(r"$\1^", task.cmd), "image": task.docker_image}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(b"sflow-cost-v1\0" + text.encode("ascii")).hexdigest()[:KEY_HEX_LEN]


def program_of(cmd: str) -> str:
    """The first word of a command, without its directory: a readable label."""
    words = cmd.split()
    return words[0].rsplit("/", 1)[-1] if words else ""


def normal_path(path: str) -> str:
    """A job path in the form the job and the traces are compared in (``./out/a`` → ``out/a``)."""
    try:
        return job_relative(path)
    except UnsafePath:
        return path


def _median(values: Iterable[float]) -> float:
    return float(statistics.median(values))


class CostModel:
    """Measured costs resolved for one environment and job (rules in the module docstring)."""

    def __init__(self, env: Environment, job: Job, costs: MeasuredCosts) -> None:
        self.env = env
        self.job = job
        self.costs = costs
        self._vcpus = env.schedulable
        self._hosts_of_vm = self._match_hosts(env, costs)
        self._vm_of_host: dict[str, VmId] = {}
        for vm, names in self._hosts_of_vm.items():
            for name in names:
                self._vm_of_host.setdefault(name, vm)
        by_id: dict[tuple[int, int], list[FunctionCosts]] = {}
        by_key: dict[str, list[FunctionCosts]] = {}
        for f in costs.functions:
            by_id.setdefault((f.job_id, f.task_id), []).append(f)
            if f.key is not None:
                by_key.setdefault(f.key, []).append(f)
        self._measured: dict[TaskId, list[FunctionCosts]] = {}
        #: what a task's samples are pooled under: its own ids, or its content key (shared)
        self._pool: dict[TaskId, str] = {}
        for task in job.tasks:
            key = function_key(task)
            same = [f for f in by_id.get((job.id, int(task.id)), []) if f.key is None or f.key == key]
            chosen = same or by_key.get(key, [])
            if chosen:
                self._measured[task.id] = chosen
                self._pool[task.id] = f"task {task.id}" if same else f"key {key}"
        self._links: dict[tuple[str, str], LinkCosts] = {(lk.src, lk.dst): lk for lk in costs.links}
        self._on_vm_cache: dict[tuple[TaskId, VmId], float | None] = {}
        self._elsewhere_cache: dict[tuple[TaskId, float], float] = {}
        self._outputs_cache: dict[TaskId, tuple[dict[str, float], dict[str, float]]] = {}
        self._samples_cache: dict[str, dict[str, list[float]]] = {}
        self._sizes_cache: dict[str, dict[str, float]] = {}
        self._mips_cache: dict[str, float | None] = {}
        self._pair_cache: dict[tuple[VmId, VmId], tuple[float, float]] = {}

    # -- hosts -----------------------------------------------------------------------------------

    @staticmethod
    def _match_hosts(env: Environment, costs: MeasuredCosts) -> dict[VmId, frozenset[str]]:
        """Each VM's measured hosts: by address, else by the vCPU ids they ran functions on."""
        out: dict[VmId, frozenset[str]] = {}
        for vm in env.vms.values():
            by_address = [h.name for h in costs.hosts if _same_address(h.name, vm.address.host, vm.address.port)]
            if not by_address:
                mine = set(vm.vcpus)
                by_address = [h.name for h in costs.hosts if mine.intersection(h.vcpus)]
            if by_address:
                out[vm.id] = frozenset(by_address)
        return out

    def hosts_of(self, vcpu: VcpuId) -> frozenset[str]:
        """The measured hosts a vCPU's VM is (empty when it was never measured)."""
        return self._hosts_of_vm.get(self.env.vm_of_vcpu[vcpu], frozenset())

    def _host_mips(self, name: str) -> float | None:
        if name not in self._mips_cache:
            vm = self._vm_of_host.get(name)
            speeds = [self.env.vcpus[v].mips for v in self.env.vms[vm].vcpus] if vm is not None else []
            self._mips_cache[name] = sum(speeds) / len(speeds) if speeds else None
        return self._mips_cache[name]

    # -- execution -------------------------------------------------------------------------------

    def is_measured(self, task: TaskId) -> bool:
        return task in self._measured

    def exec_time(self, task: TaskId, vcpu: VcpuId) -> float:
        """Seconds ``task`` runs on ``vcpu``."""
        mips = self.env.vcpus[vcpu].mips
        if task not in self._measured:
            return self.job.by_id[task].workload / mips
        vm = self.env.vm_of_vcpu[vcpu]
        if (task, vm) not in self._on_vm_cache:
            self._on_vm_cache[(task, vm)] = self._measured_on(task, vm)
        on_vm = self._on_vm_cache[(task, vm)]
        if on_vm is not None:
            return on_vm
        elsewhere = self._elsewhere_cache.get((task, mips))
        if elsewhere is None:
            # Measured somewhere (the task is in _measured), so there is an estimate.
            elsewhere = self._elsewhere_cache[(task, mips)] = self._measured_elsewhere(task, mips) or 0.0
        return elsewhere

    def _samples(self, task: TaskId) -> dict[str, list[float]]:
        # Tasks with the same content key share one list of measured functions: merge it once.
        pool = self._pool.get(task, "")
        out = self._samples_cache.get(pool)
        if out is None:
            out = self._samples_cache[pool] = {}
            for f in self._measured.get(task, ()):
                for host, values in f.seconds.items():
                    out.setdefault(host, []).extend(values)
        return out

    def _measured_on(self, task: TaskId, vm: VmId) -> float | None:
        names = self._hosts_of_vm.get(vm, frozenset())
        values = [v for host, vs in self._samples(task).items() if host in names for v in vs]
        return _median(values) if values else None

    def _measured_elsewhere(self, task: TaskId, mips: float) -> float | None:
        estimates = []
        for host, values in sorted(self._samples(task).items()):
            if not values:
                continue
            speed = self._host_mips(host)
            scale = speed / mips if speed is not None and mips > 0 else 1.0
            estimates.append(_median(values) * scale)
        return _median(estimates) if estimates else None

    # -- data ------------------------------------------------------------------------------------

    def edge_mb(self, src: TaskId, dst: TaskId) -> float:
        """The MB that flow on edge ``src → dst``: measured file sizes, declared ones otherwise."""
        edge = self.job.edges[(src, dst)]
        measured, declared = self._outputs(src)
        total = 0.0
        for path in edge.files:
            p = normal_path(path)
            total += measured[p] if p in measured else declared.get(p, 0.0)
        value = self.job.by_id[src].out_value
        if edge.value and value is not None:
            total += value.size
        return total

    def _outputs(self, src: TaskId) -> tuple[dict[str, float], dict[str, float]]:
        """(measured MB, declared MB) of ``src``'s output files by normalised path."""
        cached = self._outputs_cache.get(src)
        if cached is None:
            pool = self._pool.get(src, "")
            measured = self._sizes_cache.get(pool)
            if measured is None:
                sizes: dict[str, list[int]] = {}
                for f in self._measured.get(src, ()):
                    for path, size in f.outputs.items():
                        sizes.setdefault(normal_path(path), []).append(size)
                measured = self._sizes_cache[pool] = {p: _median(v) / 1e6 for p, v in sizes.items()}
            declared = {normal_path(o.path): o.size for o in self.job.by_id[src].out_files}
            cached = self._outputs_cache[src] = (measured, declared)
        return cached

    def link(self, a: VcpuId, b: VcpuId) -> tuple[float, float]:
        """``(latency seconds, seconds per MB)`` from vCPU ``a`` to vCPU ``b``."""
        # Every vCPU of a VM is on the VM's host: the answer is the same for the whole VM pair.
        key = (self.env.vm_of_vcpu[a], self.env.vm_of_vcpu[b])
        cached = self._pair_cache.get(key)
        if cached is None:
            cached = self._pair_cache[key] = self._resolve_link(a, b)
        return cached

    def _hand_off(self, hosts: frozenset[str]) -> float | None:
        gaps = [(lk.latency, lk.samples) for (s, d), lk in self._links.items()
                if s == d and s in hosts and lk.latency is not None]
        return _weighted([(g, w) for g, w in gaps if g is not None]) if gaps else None

    def _resolve_link(self, a: VcpuId, b: VcpuId) -> tuple[float, float]:
        env_spm = self.env.transfer_time(1.0, a, b)
        vm_a, vm_b = self.env.vm_of_vcpu[a], self.env.vm_of_vcpu[b]
        src, dst = self._hosts_of_vm.get(vm_a, frozenset()), self._hosts_of_vm.get(vm_b, frozenset())
        if vm_a == vm_b:
            gap = self._hand_off(src)
            return (gap, 0.0) if gap is not None else (0.0, env_spm)
        measured = [lk for (s, d), lk in self._links.items() if s != d and s in src and d in dst]
        if measured:
            terms = [_link_terms(lk, env_spm) for lk in measured]
            weights = [lk.samples for lk in measured]
            return (_weighted([(t[0], w) for t, w in zip(terms, weights)]),
                    _weighted([(t[1], w) for t, w in zip(terms, weights)]))
        # Never measured: what the measured pairs took, and never less than a hand-off at either
        # end (crossing to another node includes what handing over within one node costs).
        others = [_link_terms(lk, env_spm) for (s, d), lk in sorted(self._links.items()) if s != d]
        latency = _median(t[0] for t in others) if others else 0.0
        for gap in (self._hand_off(src), self._hand_off(dst)):
            if gap is not None and gap > latency:
                latency = gap
        fitted = [1.0 / lk.bandwidth for lk in self._links.values() if lk.src != lk.dst and lk.bandwidth]
        spm = max(env_spm, _median(fitted)) if fitted else env_spm
        return latency, spm

    def transfer_time(self, src: TaskId, dst: TaskId, a: VcpuId, b: VcpuId) -> float:
        """Seconds the data of edge ``src → dst`` takes from vCPU ``a`` to vCPU ``b``."""
        latency, spm = self.link(a, b)
        return latency + self.edge_mb(src, dst) * spm


def _link_terms(link: LinkCosts, env_spm: float) -> tuple[float, float]:
    """``(latency, seconds per MB)`` of a measured pair of distinct hosts."""
    if link.bandwidth is not None and link.bandwidth > 0:
        return (link.latency or 0.0), 1.0 / link.bandwidth
    if link.latency is not None:
        return link.latency, env_spm
    return max(0.0, link.mean_seconds - link.mean_mb * env_spm), env_spm


def _weighted(pairs: list[tuple[float, int]]) -> float:
    total = sum(w for _, w in pairs)
    if total <= 0:
        return _median(v for v, _ in pairs)
    return sum(v * w for v, w in pairs) / total


def _same_address(name: str, host: str, port: int | None) -> bool:
    """Whether the trace's node ``name`` (``host:port``, ``[v6]:port``) is this address."""
    if name.startswith("["):
        end = name.find("]")
        n_host, rest = name[1:end], name[end + 1 :]
        n_port = rest[1:] if rest.startswith(":") else ""
    elif name.count(":") == 1:
        n_host, n_port = name.split(":")
    else:
        n_host, n_port = name, ""
    if n_host != host:
        return False
    return port is None or n_port == str(port)
