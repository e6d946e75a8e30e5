"""Environment, job, mapping and costs JSON ⇄ models. The only module where raw JSON dicts live.

Reads the original SFlow's files unchanged (reference §1) and reports every defect as an
:class:`~sflow.errors.InputError` naming the file, the JSON path (``$.task_list[3].workload``) and
the id at fault. Writes plain JSON; the mapping reader also accepts the original's double-encoded
form (the whole document as one JSON string literal).
"""

from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from sflow.durable import write_durably
from sflow.errors import InputError
from sflow.model.costs import FunctionCosts, HostCosts, LinkCosts, MeasuredCosts
from sflow.model.infra import Address, Core, Cpu, DataCentre, Environment, Host, HostId, Vcpu, VcpuId, Vm, VmId
from sflow.model.paths import PLAIN_PATH, UnsafePath, job_relative
from sflow.model.schedule import Placement, Schedule, Slot
from sflow.model.workflow import Job, OutFile, OutValue, Task, TaskId


_ABSENT = object()


class JsonReader:
    """Typed access to one JSON document, raising errors that name the file and JSON path.

    Every reader of a JSON format (env, job, mapping, WfCommons instances) goes through it."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> NoReturn:
        raise InputError(self.source, where, message)

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, f"expected an object, found {_kind(value)}")
        return value

    def array(self, d: dict[str, Any], key: str, where: str, *, required: bool = True) -> list[Any]:
        if key not in d:
            if required:
                self.fail(where, f"missing required field {key!r}")
            return []
        value = d[key]
        if not isinstance(value, list):
            self.fail(f"{where}.{key}", f"expected an array, found {_kind(value)}")
        return value

    def _field(self, d: dict[str, Any], key: str, where: str, required: bool, label: str) -> Any:
        """``d[key]``, or ``_ABSENT`` when it is missing (or null) and not required."""
        if d.get(key) is None:
            if required:
                self.fail(where, f"missing required field {key!r}{label}")
            return _ABSENT
        return d[key]

    def number(
        self,
        d: dict[str, Any],
        key: str,
        where: str,
        *,
        required: bool = True,
        default: float = 0.0,
        positive: bool = False,
        label: str = "",
    ) -> float:
        value = d.get(key)
        if (type(value) is float or type(value) is int) and value > 0 and math.isfinite(value):
            return float(value)  # the common case, checked at once
        value = self._field(d, key, where, required, label)
        if value is _ABSENT:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(f"{where}.{key}", f"expected a number, found {_show(value)}{label}")
        if value < 0 or (positive and value == 0):
            need = "a positive number" if positive else "a non-negative number"
            self.fail(f"{where}.{key}", f"{key} must be {need}, found {value}{label}")
        return float(value)

    def integer(
        self, d: dict[str, Any], key: str, where: str, *, required: bool = True, default: int = 0, label: str = ""
    ) -> int:
        value = self._field(d, key, where, required, label)
        if value is _ABSENT:
            return default
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{where}.{key}", f"expected an integer, found {_show(value)}{label}")
        return value

    def string(
        self, d: dict[str, Any], key: str, where: str, *, required: bool = True, default: str = "", label: str = ""
    ) -> str:
        value = self._field(d, key, where, required, label)
        if value is _ABSENT:
            return default
        if not isinstance(value, str):
            self.fail(f"{where}.{key}", f"expected a string, found {_show(value)}{label}")
        return value

    def identifier(self, d: dict[str, Any], key: str, where: str) -> str:
        """A required id given as a string or an integer, as text."""
        value = d.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
        if key not in d:
            self.fail(where, f"missing required field {key!r}")
        self.fail(f"{where}.{key}", f"expected a string or integer id, found {_show(value)}")

    def identifiers(self, d: dict[str, Any], key: str, where: str) -> list[str]:
        """An optional array of ids (strings or integers), as text."""
        out = []
        for k, v in enumerate(self.array(d, key, where, required=False)):
            if not isinstance(v, (str, int)) or isinstance(v, bool):
                self.fail(f"{where}.{key}[{k}]", f"expected a string or integer id, found {_show(v)}")
            out.append(str(v))
        return out

    def optional_string(self, d: dict[str, Any], key: str, where: str) -> str | None:
        if d.get(key) is None:
            return None
        return self.string(d, key, where)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


#: what each of sflow's JSON documents is called, and the field that tells it
_KINDS = {"environment": "dc_list", "job": "task_list", "mapping": "ip, vm_id and vcpu_id per task"}


def document_kind(data: Any) -> str | None:
    """Which of sflow's documents ``data`` looks like: "environment", "job", "mapping" (a job with
    placements), "trace", or None. For hints when a file is given where another was expected."""
    if not isinstance(data, dict):
        return None
    if "dc_list" in data:
        return "environment"
    tasks = data.get("task_list")
    if isinstance(tasks, list):
        placed = any(isinstance(t, dict) and {"ip", "vm_id", "vcpu_id"} & set(t) for t in tasks)
        return "mapping" if placed or "schedule" in data else "job"
    if {"run_id", "makespan", "tasks"} <= set(data):
        return "trace"
    return None


def _expect(doc: JsonReader, data: Any, expected: str) -> None:
    """Fail with a hint when ``data`` is another kind of document than ``expected`` (a job given
    where an environment belongs, arguments swapped)."""
    kind = document_kind(data)
    if kind is None or kind == expected or (expected == "job" and kind == "mapping"):
        return
    article = "an" if kind[0] in "aeiou" else "a"
    doc.fail("$", f"this is {article} {kind} file, not {'an' if expected[0] in 'aeiou' else 'a'} {expected} "
                  f"(which has {_KINDS[expected]}); were the file arguments swapped?")


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing file or invalid JSON is an InputError naming the file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(source, "", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, "", f"cannot read file: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, "", f"not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None


# ---------------------------------------------------------------------------------------------
# Environment


def parse_address(text: str, port: int | None = None) -> Address:
    """``"10.0.0.1"``, ``"10.0.0.1:7001"``, ``"[::1]:7001"`` or ``"::1"`` → Address. Raises ValueError."""
    host, embedded = text.strip(), None
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in address {text!r}")
        rest = host[end + 1 :]
        host = host[1:end]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"unexpected text after ']' in address {text!r}")
            embedded = rest[1:]
    elif host.count(":") == 1:
        host, embedded = host.split(":")
    if not host:
        raise ValueError(f"address {text!r} has no host")
    if embedded is not None:
        if not embedded.isdigit() or not 0 < int(embedded) < 65536:
            raise ValueError(f"bad port {embedded!r} in address {text!r}")
        if port is not None and port != int(embedded):
            raise ValueError(f"address {text!r} and port field {port} disagree")
        port = int(embedded)
    return Address(host, port)


def environment_from_dict(data: Any, source: str = "<env>") -> Environment:
    doc = JsonReader(source)
    root = doc.obj(data, "$")
    _expect(doc, root, "environment")
    dcs: list[DataCentre] = []
    seen_dc: dict[int, str] = {}
    seen_host: dict[str, str] = {}
    seen_vcpu: dict[str, str] = {}
    vcpu_host: dict[str, HostId] = {}
    pending_vms: list[tuple[int, int, HostId, list[Any], str]] = []
    dc_list = doc.array(root, "dc_list", "$")
    for i, raw_dc in enumerate(dc_list):
        w = f"$.dc_list[{i}]"
        d = doc.obj(raw_dc, w)
        dc_id = doc.integer(d, "dc_id", w)
        if dc_id in seen_dc:
            doc.fail(f"{w}.dc_id", f"duplicate dc_id {dc_id} (also at {seen_dc[dc_id]})")
        seen_dc[dc_id] = w
        dc_bw = doc.number(d, "bw", w, positive=True, label=f" (DC {dc_id})")
        hosts: list[Host] = []
        for j, raw_host in enumerate(doc.array(d, "host_list", w)):
            hw = f"{w}.host_list[{j}]"
            h = doc.obj(raw_host, hw)
            host_id = HostId(doc.string(h, "host_id", hw, required=False, default=f"{dc_id}^{j}"))
            if host_id in seen_host:
                doc.fail(f"{hw}.host_id", f"duplicate host_id {host_id!r} (also at {seen_host[host_id]})")
            seen_host[host_id] = hw
            label = f" (host {host_id})"
            host_bw = doc.number(h, "bw", hw, positive=True, label=label)
            cpus: list[Cpu] = []
            for k, raw_cpu in enumerate(doc.array(h, "cpu_list", hw)):
                cw = f"{hw}.cpu_list[{k}]"
                c = doc.obj(raw_cpu, cw)
                cpu_id = doc.string(c, "cpu_id", cw, required=False, default=f"{host_id}^{k}")
                cpu_mips = doc.number(c, "mips", cw, positive=True, label=f" (CPU {cpu_id})")
                cores: list[Core] = []
                for ci, raw_core in enumerate(doc.array(c, "core_list", cw)):
                    kw = f"{cw}.core_list[{ci}]"
                    core = doc.obj(raw_core, kw)
                    core_id = doc.string(core, "core_id", kw, required=False, default=f"{cpu_id}^{ci}")
                    core_mips = (
                        doc.number(core, "mips", kw, positive=True, label=f" (core {core_id})")
                        if core.get("mips") is not None
                        else None
                    )
                    maxusage = doc.number(core, "maxusage", kw, required=False, default=100.0)
                    vcpus: list[Vcpu] = []
                    for n, raw_vcpu in enumerate(doc.array(core, "vcpu_list", kw)):
                        vw = f"{kw}.vcpu_list[{n}]"
                        v = doc.obj(raw_vcpu, vw)
                        vid = doc.string(v, "vcpu_id", vw)
                        if vid in seen_vcpu:
                            doc.fail(f"{vw}.vcpu_id", f"duplicate vcpu_id {vid!r} (also at {seen_vcpu[vid]})")
                        seen_vcpu[vid] = vw
                        fallback = core_mips if core_mips is not None else cpu_mips
                        mips = doc.number(
                            v, "mips", vw, required=False, default=fallback, positive=True, label=f" (vCPU {vid})"
                        )
                        vcpus.append(Vcpu(VcpuId(vid), mips, host_id, dc_id, cpu_id, core_id))
                        vcpu_host[vid] = host_id
                    cores.append(Core(core_id, core_mips, maxusage, tuple(vcpus)))
                cpus.append(Cpu(cpu_id, cpu_mips, tuple(cores)))
            pending_vms.append((i, j, host_id, doc.array(h, "vm_list", hw, required=False), hw))
            hosts.append(
                Host(
                    host_id,
                    doc.string(h, "name", hw, required=False, default=""),
                    doc.string(h, "ip", hw, required=False, default=""),
                    host_bw,
                    doc.number(h, "ram", hw, required=False, default=0.0),
                    tuple(cpus),
                    (),
                )
            )
        dcs.append(DataCentre(dc_id, dc_bw, tuple(hosts)))

    # VMs name vCPUs that may be declared later in the file: a second pass once all are known.
    seen_vm: dict[str, tuple[str, dict[str, Any]]] = {}
    vm_at: dict[Address, str] = {}
    warnings: list[str] = []
    owner: dict[str, str] = {}
    vms_of: dict[HostId, list[Vm]] = {}
    for _, _, host_id, vm_list, hw in pending_vms:
        for p, raw_vm in enumerate(vm_list):
            mw = f"{hw}.vm_list[{p}]"
            m = doc.obj(raw_vm, mw)
            vm_id = doc.string(m, "vm_id", mw)
            if vm_id in seen_vm:
                first_where, first_raw = seen_vm[vm_id]
                if m == first_raw:
                    # The original's own env_ncl.json repeats VM 0^0^8 word for word; an identical
                    # repeat is harmless, so it is reported rather than refused.
                    warnings.append(f"{mw}: VM {vm_id!r} repeats {first_where} exactly; the repeat is ignored")
                    continue
                doc.fail(f"{mw}.vm_id", f"duplicate vm_id {vm_id!r} (also at {first_where}, with different content)")
            seen_vm[vm_id] = (mw, m)
            ip = doc.string(m, "ip", mw, label=f" (VM {vm_id})")
            port = None
            if m.get("port") is not None:
                port = doc.integer(m, "port", mw)
                if not 0 < port < 65536:
                    doc.fail(f"{mw}.port", f"port must be 1-65535, found {port} (VM {vm_id})")
            try:
                address = parse_address(ip, port)
            except ValueError as exc:
                doc.fail(f"{mw}.ip", f"{exc} (VM {vm_id})")
            if address in vm_at:
                # One address is one node: both VMs' functions would go to the same node daemon.
                shown = f"{address} (no port: both use node.listen's port)" if address.port is None else str(address)
                warnings.append(f"{mw}: VM {vm_id!r} has the same address as VM {vm_at[address]!r}, {shown}: they are "
                                f"one node; give each VM its own port (\"ip\": \"{Address(address.host, 7001)}\")")
            vm_at.setdefault(address, vm_id)
            vids: list[VcpuId] = []
            for q, raw_ref in enumerate(doc.array(m, "vcpu_list", mw)):
                rw = f"{mw}.vcpu_list[{q}]"
                ref = doc.obj(raw_ref, rw)
                vid = doc.string(ref, "vcpu_id", rw)
                if vid not in seen_vcpu:
                    doc.fail(f"{rw}.vcpu_id", f"VM {vm_id!r} names unknown vCPU {vid!r}")
                if vid in owner:
                    doc.fail(f"{rw}.vcpu_id", f"vCPU {vid!r} is listed in VM {owner[vid]!r} and in VM {vm_id!r}")
                if vcpu_host[vid] != host_id:
                    doc.fail(
                        f"{rw}.vcpu_id",
                        f"VM {vm_id!r} on host {host_id!r} names vCPU {vid!r} of host {vcpu_host[vid]!r}",
                    )
                owner[vid] = vm_id
                vids.append(VcpuId(vid))
            ram = doc.number(m, "ram", mw, required=False, default=0.0)
            vms_of.setdefault(host_id, []).append(Vm(VmId(vm_id), address, ram, tuple(vids), host_id))
    final = tuple(
        DataCentre(
            dc.id,
            dc.bw,
            tuple(
                Host(h.id, h.name, h.ip, h.bw, h.ram, h.cpus, tuple(vms_of.get(h.id, ()))) for h in dc.hosts
            ),
        )
        for dc in dcs
    )
    return Environment(final, tuple(warnings))


def load_environment(path: str | Path) -> Environment:
    return environment_from_dict(read_json(path), str(path))


def environment_to_dict(env: Environment) -> dict[str, Any]:
    return {
        "dc_list": [
            {
                "dc_id": dc.id,
                "bw": _num(dc.bw),
                "host_list": [
                    {
                        "host_id": h.id,
                        "name": h.name,
                        "ip": h.ip,
                        "ram": _num(h.ram),
                        "bw": _num(h.bw),
                        "cpu_list": [
                            {
                                "cpu_id": c.id,
                                "mips": _num(c.mips),
                                "core_list": [
                                    {
                                        "core_id": k.id,
                                        **({"mips": _num(k.mips)} if k.mips is not None else {}),
                                        "maxusage": _num(k.maxusage),
                                        "vcpu_list": [{"vcpu_id": v.id, "mips": _num(v.mips)} for v in k.vcpus],
                                    }
                                    for k in c.cores
                                ],
                            }
                            for c in h.cpus
                        ],
                        "vm_list": [
                            {
                                "vm_id": vm.id,
                                "ram": _num(vm.ram),
                                "ip": str(vm.address),
                                "vcpu_list": [{"vcpu_id": v} for v in vm.vcpus],
                            }
                            for vm in h.vms
                        ],
                    }
                    for h in dc.hosts
                ],
            }
            for dc in env.dcs
        ]
    }


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


# ---------------------------------------------------------------------------------------------
# Job


def _dest_list(doc: JsonReader, d: dict[str, Any], where: str, label: str) -> tuple[TaskId, ...]:
    raw = doc.array(d, "dest_task_id", where, required=False)
    if all(type(v) is int for v in raw):
        return tuple(raw)  # the common case, checked at once
    out: list[TaskId] = []
    for i, v in enumerate(raw):
        if isinstance(v, bool) or not isinstance(v, int):
            doc.fail(f"{where}.dest_task_id[{i}]", f"expected a task id (integer), found {_show(v)}{label}")
        out.append(TaskId(v))
    return tuple(out)


def _number_ok(value: Any) -> bool:
    """A JSON number the readers take as it is: an int or a float, finite and not negative."""
    return (type(value) is float or type(value) is int) and 0 <= value < _INF


_INF = float("inf")
#: a job path that is already plain (see :mod:`sflow.model.paths`), or None
_plain_path = PLAIN_PATH.fullmatch


def _task_fast(t: Any) -> Task | None:
    """The task of a task object in the usual shape, every field present with its usual type and
    a valid value; None for anything else, which :func:`_task_from_dict` reads (and explains)
    field by field. Jobs of 100,000 tasks are read several times faster this way: the checks are
    written out inline (a function call per number or list costs as much as the check)."""
    if type(t) is not dict:
        return None
    get: Callable[..., Any] = t.get
    tid, workload, cmd = get("task_id"), get("workload"), get("cmd")
    ttype, usage = get("type", 1), get("usage", 0.0)
    kind = type(workload)
    if not (type(tid) is int and type(cmd) is str and (kind is float or kind is int) and 0 <= workload < _INF
            and type(ttype) is int):
        return None
    if usage is not None:
        kind = type(usage)
        if not ((kind is float or kind is int) and 0 <= usage < _INF):
            return None
    files: tuple[OutFile, ...] = ()
    raw_files = get("out_file_list", ())
    if raw_files != ():
        if type(raw_files) is not list:
            return None
        out = []
        plain = _plain_path
        for f in raw_files:
            if type(f) is not dict:
                return None
            fget: Callable[..., Any] = f.get
            path, size, dests = fget("path"), fget("size"), fget("dest_task_id", ())
            kind = type(size)
            if type(path) is not str or not ((kind is float or kind is int) and 0 <= size < _INF):
                return None
            if type(dests) is list:
                for d in dests:
                    if type(d) is not int:
                        return None
            elif dests != ():
                return None
            if plain(path) is None:
                try:
                    job_relative(path)
                except UnsafePath:
                    return None
            out.append(OutFile(path, float(size), tuple(dests)))
        files = tuple(out)
    value = None
    raw_value = get("out_value")
    if raw_value is not None:
        if type(raw_value) is not dict:
            return None
        val, size, dests = raw_value.get("val"), raw_value.get("size", 0.0), raw_value.get("dest_task_id", ())
        if type(val) is not str or not (size is None or _number_ok(size)) or not (
                dests == () or (type(dests) is list and all(type(d) is int for d in dests))):
            return None
        value = OutValue(val, float(size or 0.0), tuple(dests))
    tar, image = get("docker-tarname"), get("docker-imagename")
    if not ((tar is None or type(tar) is str) and (image is None or type(image) is str)):
        return None
    return Task(TaskId(tid), float(workload), cmd, max(1, ttype), float(usage or 0.0), files, value, tar, image)


def _task_from_dict(doc: JsonReader, raw: Any, w: str) -> Task:
    fast = _task_fast(raw)
    if fast is not None:
        return fast
    t = doc.obj(raw, w)
    tid = doc.integer(t, "task_id", w)
    label = f" (task {tid})"
    workload = doc.number(t, "workload", w, label=label)
    cmd = doc.string(t, "cmd", w, label=label)
    ttype = doc.integer(t, "type", w, required=False, default=1, label=label)
    usage = doc.number(t, "usage", w, required=False, default=0.0, label=label)
    files: list[OutFile] = []
    for i, raw_f in enumerate(doc.array(t, "out_file_list", w, required=False)):
        fw = f"{w}.out_file_list[{i}]"
        f = doc.obj(raw_f, fw)
        path = doc.string(f, "path", fw, label=label)
        try:
            job_relative(path)
        except UnsafePath as exc:
            doc.fail(f"{fw}.path", f"{exc}{label}")
        size = doc.number(f, "size", fw, label=label)
        files.append(OutFile(path, size, _dest_list(doc, f, fw, label)))
    value = None
    if t.get("out_value") is not None:
        vw = f"{w}.out_value"
        v = doc.obj(t["out_value"], vw)
        if "val" not in v:
            doc.fail(vw, f"missing required field 'val'{label}")
        val = v["val"]
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            doc.fail(f"{vw}.val", f"expected a string, found {_show(val)}{label}")
        value = OutValue(str(val), doc.number(v, "size", vw, required=False, default=0.0, label=label),
                         _dest_list(doc, v, vw, label))
    return Task(
        id=TaskId(tid),
        workload=workload,
        cmd=cmd,
        type=max(1, ttype),
        usage=usage,
        out_files=tuple(files),
        out_value=value,
        docker_tar=doc.optional_string(t, "docker-tarname", w),
        docker_image=doc.optional_string(t, "docker-imagename", w),
    )


def job_from_dict(data: Any, source: str = "<job>") -> Job:
    doc = JsonReader(source)
    root = doc.obj(data, "$")
    _expect(doc, root, "job")
    job_id = doc.integer(root, "job_id", "$")
    raw_tasks = doc.array(root, "task_list", "$")
    if not raw_tasks:
        doc.fail("$.task_list", "the job has no tasks")
    tasks: list[Task] = []
    where: dict[TaskId, str] = {}
    for i, raw in enumerate(raw_tasks):
        w = f"$.task_list[{i}]"
        task = _task_from_dict(doc, raw, w)
        if task.id in where:
            doc.fail(f"{w}.task_id", f"duplicate task_id {task.id} (also at {where[task.id]})")
        where[task.id] = w
        tasks.append(task)
    known = set(where).issuperset
    for task in tasks:
        for f in task.out_files:
            if not known(f.dest):
                _unknown_destination(doc, task, where)
        if task.out_value is not None and not known(task.out_value.dest):
            _unknown_destination(doc, task, where)
    job = Job(job_id, tuple(tasks))
    cycle = job.cycle()
    if cycle is not None:
        doc.fail("$.task_list", "the workflow has a cycle: " + " -> ".join(str(t) for t in cycle))
    return job


def _unknown_destination(doc: JsonReader, task: Task, where: Mapping[TaskId, str]) -> NoReturn:
    """Fail naming the first destination of ``task`` that is not a task of the job (there is one)."""
    w = where[task.id]
    for i, f in enumerate(task.out_files):
        for k, d in enumerate(f.dest):
            if d not in where:
                doc.fail(
                    f"{w}.out_file_list[{i}].dest_task_id[{k}]",
                    f"task {task.id} sends {f.path!r} to task {d}, which does not exist",
                )
    assert task.out_value is not None
    for k, d in enumerate(task.out_value.dest):
        if d not in where:
            doc.fail(f"{w}.out_value.dest_task_id[{k}]", f"task {task.id} sends a value to task {d}, which does not exist")
    raise AssertionError(f"task {task.id} has no unknown destination")


def load_job(path: str | Path) -> Job:
    return job_from_dict(read_json(path), str(path))


def task_to_dict(task: Task) -> dict[str, Any]:
    """A task as its job file holds it (the text :func:`task_json` writes, as a dict)."""
    d: dict[str, Any] = json.loads(task_json(task))
    return d


def task_json(task: Task, placement: str = "") -> str:
    """A task as one line of JSON: task_id, workload, type, usage, cmd, then out_file_list,
    out_value, docker-tarname and docker-imagename when it has them, then ``placement`` (JSON
    members, each after ", "). Numbers without a fraction are written as integers. Formatted
    here rather than by the encoder over a dict: a mapping of 100,000 tasks is written in a
    fraction of the time."""
    return _task_opened(task) + placement + "}"


def _task_opened(task: Task) -> str:
    """:func:`task_json` up to its ``placement`` (the object not yet closed)."""
    number = _number_json
    w, u = task.workload, task.usage
    # A float with a fraction is written as repr writes it; the rest (whole, infinite, not a float)
    # by _number_json: the common case without a call.
    parts = [f'{{"task_id": {int(task.id)}, '
             f'"workload": {repr(w) if type(w) is float and not w.is_integer() and w - w == 0 else number(w)}, '
             f'"type": {int(task.type)}, "usage": {number(u)}, "cmd": {_quote(task.cmd)}']
    if task.out_files:
        parts.append(', "out_file_list": [' + ", ".join([
            f'{{"path": {_quote(f.path)}, '
            f'"size": {repr(z) if type(z) is float and not z.is_integer() and z - z == 0 else number(z)}, '
            f'"dest_task_id": [{_ids_json(f.dest)}]}}'
            for f in task.out_files for z in (f.size,)]) + "]")
    if task.out_value is not None:
        v = task.out_value
        parts.append(f', "out_value": {{"val": {_quote(v.val)}, "size": {_number_json(v.size)}, '
                     f'"dest_task_id": [{_ids_json(v.dest)}]}}')
    if task.docker_tar is not None:
        parts.append(f', "docker-tarname": {_quote(task.docker_tar)}')
    if task.docker_image is not None:
        parts.append(f', "docker-imagename": {_quote(task.docker_image)}')
    return "".join(parts)


def _number_json(x: float) -> str:
    """``x`` as JSON, without a fraction when it has none (as the original's files write them)."""
    f = float(x)
    if f.is_integer():
        return str(int(f))
    return repr(f) if f - f == 0 else _one_line(f)  # inf and nan as the encoder spells them


def _ids_json(ids: tuple[int, ...]) -> str:
    return ", ".join(map(str, ids))


def job_to_dict(job: Job) -> dict[str, Any]:
    return {"job_id": job.id, "task_list": [task_to_dict(t) for t in job.tasks]}


# ---------------------------------------------------------------------------------------------
# Mapping (what ``sflow schedule`` / schedgen writes)


def mapping_to_dict(job: Job, env: Environment, schedule: Schedule) -> dict[str, Any]:
    """The mapping :func:`mapping_json` writes, as a dict."""
    d: dict[str, Any] = json.loads(mapping_json(job, env, schedule))
    return d


def mapping_opened(job: Job) -> list[str]:
    """Each task's line of a mapping up to its placement, in the order of the tasks: most of a
    mapping's formatting, and none of it depends on the schedule (a caller may have it made
    while the job is being scheduled)."""
    return [_task_opened(t) for t in job.tasks]


def mapping_json(job: Job, env: Environment, schedule: Schedule, opened: list[str] | None = None) -> str:
    """The mapping file: the job with ``ip``, ``vm_id`` and ``vcpu_id`` added to each task (as the
    original), plus a ``schedule`` object with the algorithm, the makespan and each task's start
    and finish; laid out as :func:`write_json` lays out any document (one line per task, and per
    task in ``schedule.tasks``), and formatted in one pass of pre-formatted lines. ``opened``:
    the :func:`mapping_opened` of the job, when made already."""
    number = _number_repr
    times = ",\n      ".join([
        f'{_quote(str(tid))}: {{"start": {number(s.start)}, "finish": {number(s.finish)}}}'
        for tid, s in sorted(schedule.slots.items())])
    where: dict[str, str] = {}  # vCPU → its placement members and the line's end, formatted once
    for vcpu in dict.fromkeys(s.vcpu for s in schedule.slots.values()):
        vm = env.vm_for(vcpu)
        where[vcpu] = f', "ip": {_quote(str(vm.address))}, "vm_id": {_quote(vm.id)}, "vcpu_id": {_quote(vcpu)}}}'
    slots = schedule.slots
    lines = opened if opened is not None else mapping_opened(job)
    task_lines = ",\n    ".join([line + where[slots[t.id].vcpu] for t, line in zip(job.tasks, lines)])
    return "".join([
        f'{{\n  "job_id": {_one_line(job.id)},\n  "task_list": ',
        f"[\n    {task_lines}\n  ]" if task_lines else "[]",
        f',\n  "schedule": {{\n    "algorithm": {_quote(schedule.algorithm)},\n'
        f'    "makespan": {number(schedule.makespan)},\n    "tasks": ',
        f"{{\n      {times}\n    }}" if times else "{}",
        "\n  }\n}\n",
    ])


def _number_repr(x: float) -> str:
    """A float (or int) as the JSON encoder writes it."""
    return repr(x) if type(x) is float and x - x == 0 else _one_line(x)


def write_mapping(path: str | Path, job: Job, env: Environment, schedule: Schedule,
                  made: Callable[[], bytes] | None = None) -> None:
    """Write the mapping file (:func:`mapping_json`; ``made``: where to get its UTF-8, when it is
    being made elsewhere) durably, as :func:`write_json` writes files."""
    write_durably(path, made() if made is not None else mapping_json(job, env, schedule))


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON that a person can read and that is fast to write however large: the
    outer objects and arrays are laid out one member per line (a mapping: one line per task, and
    per task in ``schedule.tasks``), everything inside a line by the C encoder (``indent`` would
    run Python's pure encoder over every value: seconds for a mapping of 100,000 tasks). The file
    is written durably (:mod:`sflow.durable`): a crash never leaves half of it under its name."""
    write_durably(path, dumps_layout(data) + "\n")


def dumps_layout(data: Any, depth: int = 0) -> str:
    """``data`` as JSON: containers at depth 0 and 1, and at depth 2 when they hold only
    containers, get one member per line (indented by two spaces per level); the rest is one line."""
    if isinstance(data, dict):
        members: list[Any] = list(data.values())
    elif isinstance(data, list):
        members = data
    else:
        return _one_line(data)
    if not members or depth > 2 or (depth == 2 and not _CONTAINERS.issuperset(map(type, members))):
        return _one_line(data)
    inner = "  " * (depth + 1)
    # The members of a container at depth 2 are one line each: encoded here, a call fewer each.
    lines = [_one_line(m) for m in members] if depth == 2 else [dumps_layout(m, depth + 1) for m in members]
    close = "\n" + "  " * depth
    if isinstance(data, dict):
        return "{\n" + ",\n".join([f"{inner}{_quote(str(k))}: {line}" for k, line in zip(data, lines)]) + close + "}"
    return "[\n" + ",\n".join([inner + line for line in lines]) + close + "]"


#: what :func:`dumps_layout` may lay out over several lines (exact types, as json.load makes them)
_CONTAINERS = frozenset({dict, list})
#: a string as a JSON string, as the line encoder writes it
_quote: Callable[[str], str] = (getattr(json.encoder, "c_encode_basestring_ascii", None)
                                or json.encoder.py_encode_basestring_ascii)


def _line_encoder() -> Callable[[Any], str]:
    """``json.dumps`` for many small values: one C encoder made once (``json.dumps`` makes one per
    call, which is most of its cost on a 100-byte value), or ``json.dumps`` without it."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.dumps
    encoder = make(None, None, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return lambda value: "".join(encoder(value, 0))


_one_line = _line_encoder()


class MappingFile:
    """A parsed mapping: the job, each task's placement, and the schedule when the file has one."""

    __slots__ = ("job", "placements", "schedule")

    def __init__(self, job: Job, placements: Mapping[TaskId, Placement], schedule: Schedule | None) -> None:
        self.job = job
        self.placements = placements
        self.schedule = schedule


def mapping_from_dict(data: Any, source: str = "<mapping>") -> MappingFile:
    doc = JsonReader(source)
    if isinstance(data, str):  # the original's double encoding: a JSON string holding the document
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            doc.fail("$", f"double-encoded mapping is not valid JSON inside: {exc.msg}")
    if document_kind(data) == "job":
        doc.fail("$", "this is a job without placements, not a mapping (which has ip, vm_id and vcpu_id per task); "
                      "make one with `sflow schedule ENV JOB -o MAPPING`")
    _expect(doc, data, "mapping")
    job = job_from_dict(data, source)
    root = doc.obj(data, "$")
    placements: dict[TaskId, Placement] = {}
    for i, raw in enumerate(root["task_list"]):
        w = f"$.task_list[{i}]"
        t = doc.obj(raw, w)
        tid = TaskId(t["task_id"])
        label = f" (task {tid})"
        ip = doc.string(t, "ip", w, label=label)
        try:
            address = parse_address(ip)
        except ValueError as exc:
            doc.fail(f"{w}.ip", f"{exc}{label}")
        placements[tid] = Placement(
            address, VmId(doc.string(t, "vm_id", w, label=label)), VcpuId(doc.string(t, "vcpu_id", w, label=label))
        )
    schedule = None
    if root.get("schedule") is not None:
        sw = "$.schedule"
        s = doc.obj(root["schedule"], sw)
        algorithm = doc.string(s, "algorithm", sw)
        times = doc.obj(s.get("tasks", {}), f"{sw}.tasks")
        slots: dict[TaskId, Slot] = {}
        for tid, p in placements.items():
            key = str(tid)
            if key not in times:
                doc.fail(f"{sw}.tasks", f"no start/finish for task {tid}")
            tw = f"{sw}.tasks.{key}"
            entry = doc.obj(times[key], tw)
            start = doc.number(entry, "start", tw)
            finish = doc.number(entry, "finish", tw)
            if finish < start:
                doc.fail(tw, f"task {tid} finishes ({finish}) before it starts ({start})")
            slots[tid] = Slot(tid, p.vcpu_id, start, finish)
        schedule = Schedule(algorithm, slots)
    return MappingFile(job, placements, schedule)


def load_mapping(path: str | Path) -> MappingFile:
    return mapping_from_dict(read_json(path), str(path))


# ---------------------------------------------------------------------------------------------
# Costs (what ``sflow calibrate`` writes)

COSTS_FORMAT = "sflow-costs/1"


def costs_to_dict(costs: MeasuredCosts) -> dict[str, Any]:
    """The costs file: measured functions, hosts and links (units: seconds, bytes, MB, MB/s)."""
    return {
        "format": COSTS_FORMAT,
        "runs": list(costs.runs),
        "functions": [
            {
                "job_id": f.job_id,
                "task_id": f.task_id,
                "key": f.key,
                "label": f.label,
                "seconds": {host: list(values) for host, values in sorted(f.seconds.items())},
                "outputs": dict(sorted(f.outputs.items())),
            }
            for f in costs.functions
        ],
        "hosts": [{"name": h.name, "vcpus": list(h.vcpus)} for h in costs.hosts],
        "links": [
            {
                "src": lk.src,
                "dst": lk.dst,
                "samples": lk.samples,
                "latency": lk.latency,
                "bandwidth": lk.bandwidth,
                "mean_mb": lk.mean_mb,
                "mean_seconds": lk.mean_seconds,
            }
            for lk in costs.links
        ],
    }


def _measure(doc: JsonReader, value: Any, where: str, kind: type) -> float:
    """A bare non-negative number (``kind`` int: an integer) at ``where``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
    if not ok or (kind is int and not float(value).is_integer()):
        what = "a non-negative integer" if kind is int else "a non-negative number"
        doc.fail(where, f"expected {what}, found {_show(value)}")
    return float(value)


def _optional_number(doc: JsonReader, d: dict[str, Any], key: str, where: str) -> float | None:
    return None if d.get(key) is None else doc.number(d, key, where)


def costs_from_dict(data: Any, source: str = "<costs>") -> MeasuredCosts:
    doc = JsonReader(source)
    root = doc.obj(data, "$")
    fmt = doc.string(root, "format", "$")
    if fmt != COSTS_FORMAT:
        doc.fail("$.format", f"expected {COSTS_FORMAT!r} (a file written by sflow calibrate), found {fmt!r}")
    functions = []
    for i, raw in enumerate(doc.array(root, "functions", "$")):
        w = f"$.functions[{i}]"
        f = doc.obj(raw, w)
        seconds: dict[str, tuple[float, ...]] = {}
        raw_seconds = doc.obj(f.get("seconds", {}), f"{w}.seconds")
        for host, values in raw_seconds.items():
            hw = f"{w}.seconds[{json.dumps(host)}]"
            if not isinstance(values, list) or not values:
                doc.fail(hw, f"expected a non-empty array of seconds, found {_show(values)}")
            seconds[host] = tuple(_measure(doc, v, f"{hw}[{k}]", float) for k, v in enumerate(values))
        outputs: dict[str, int] = {}
        for path, size in doc.obj(f.get("outputs", {}), f"{w}.outputs").items():
            outputs[path] = int(_measure(doc, size, f"{w}.outputs[{json.dumps(path)}]", int))
        functions.append(FunctionCosts(
            job_id=doc.integer(f, "job_id", w),
            task_id=doc.integer(f, "task_id", w),
            key=doc.optional_string(f, "key", w),
            label=doc.string(f, "label", w, required=False),
            seconds=seconds,
            outputs=outputs,
        ))
    hosts = []
    for i, raw in enumerate(doc.array(root, "hosts", "$")):
        w = f"$.hosts[{i}]"
        h = doc.obj(raw, w)
        hosts.append(HostCosts(doc.string(h, "name", w), tuple(doc.identifiers(h, "vcpus", w))))
    links = []
    for i, raw in enumerate(doc.array(root, "links", "$")):
        w = f"$.links[{i}]"
        lk = doc.obj(raw, w)
        bandwidth = _optional_number(doc, lk, "bandwidth", w)
        if bandwidth == 0:
            doc.fail(f"{w}.bandwidth", "bandwidth must be a positive number or null, found 0")
        links.append(LinkCosts(
            src=doc.string(lk, "src", w),
            dst=doc.string(lk, "dst", w),
            samples=doc.integer(lk, "samples", w),
            latency=_optional_number(doc, lk, "latency", w),
            bandwidth=bandwidth,
            mean_mb=doc.number(lk, "mean_mb", w),
            mean_seconds=doc.number(lk, "mean_seconds", w),
        ))
    runs = tuple(str(r) for r in doc.array(root, "runs", "$", required=False))
    return MeasuredCosts(tuple(functions), tuple(hosts), tuple(links), runs)


def load_costs(path: str | Path) -> MeasuredCosts:
    """A costs file written by ``sflow calibrate``; what ``--costs`` and experiment specs name."""
    return costs_from_dict(read_json(path), str(path))
