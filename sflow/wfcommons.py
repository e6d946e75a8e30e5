"""Import a WfCommons workflow instance (WfFormat 1.4 or 1.5) as an sflow job.

* WfFormat 1.4 keeps everything in ``workflow.tasks``: each task has ``name`` (and ``id``),
  ``parents``/``children``, ``runtimeInSeconds`` and ``files`` (``link`` input/output, ``name``,
  ``sizeInBytes``).
* WfFormat 1.5 splits it: ``workflow.specification.tasks`` (``id``, ``name``, ``parents``,
  ``children``, ``inputFiles``, ``outputFiles`` as file ids), ``workflow.specification.files``
  (``id``, ``sizeInBytes``) and ``workflow.execution.tasks`` (``id``, ``runtimeInSeconds``).

Conversion:

* task ids are 1..n in the instance's task order;
* ``workload`` = ``runtimeInSeconds`` × the reference MIPS (a vCPU of that speed reproduces the
  recorded runtime);
* every file a task writes becomes an ``out_file_list`` entry (path ``./<file name>``, characters
  outside ``[A-Za-z0-9._-]`` replaced by ``_``; size in MB = bytes / 10⁶) sent to the children that
  read it; a parent → child dependency that carries no file becomes a zero-size ``out_value``;
* ``cmd`` is the placeholder ``true <task name>``: it does nothing and succeeds, so the imported job
  can be scheduled, simulated and even run end to end; the runtime lives in the workload. The
  instance's real command is not kept (its programs and inputs are not part of the instance).
* a top-level ``wfcommons`` object records the source name, schema version and reference MIPS; the
  job loader ignores it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sflow.errors import InputError
from sflow.jsonio import JsonReader, job_from_dict, read_json

DEFAULT_REFERENCE_MIPS = 1000.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class _Task:
    __slots__ = ("key", "name", "parents", "children", "inputs", "outputs", "runtime")

    def __init__(self, key: str, name: str) -> None:
        self.key = key
        self.name = name
        self.parents: list[str] = []
        self.children: list[str] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.runtime = 0.0


def _safe(name: str) -> str:
    cleaned = _UNSAFE.sub("_", name).lstrip(".") or "file"
    return cleaned


def _read_v14(r: JsonReader, wf: dict[str, Any]) -> tuple[list[_Task], dict[str, float]]:
    tasks: list[_Task] = []
    sizes: dict[str, float] = {}
    for i, raw in enumerate(r.array(wf, "tasks", "$.workflow")):
        w = f"$.workflow.tasks[{i}]"
        t = r.obj(raw, w)
        name = r.identifier(t, "name", w)
        task = _Task(str(t.get("id", name)), name)
        task.parents = r.identifiers(t, "parents", w)
        task.children = r.identifiers(t, "children", w)
        task.runtime = r.number(t, "runtimeInSeconds", w)
        for k, raw_f in enumerate(r.array(t, "files", w, required=False)):
            fw = f"{w}.files[{k}]"
            f = r.obj(raw_f, fw)
            fname = r.identifier(f, "name", fw)
            link = f.get("link")
            if link not in ("input", "output"):
                r.fail(f"{fw}.link", f"link must be 'input' or 'output', found {link!r}")
            size = r.number(f, "sizeInBytes", fw)
            if sizes.setdefault(fname, size) != size:
                r.fail(f"{fw}.sizeInBytes", f"file {fname!r} has size {size}, elsewhere {sizes[fname]}")
            (task.inputs if link == "input" else task.outputs).append(fname)
        tasks.append(task)
    return tasks, sizes


def _read_v15(r: JsonReader, wf: dict[str, Any]) -> tuple[list[_Task], dict[str, float]]:
    spec = r.obj(wf.get("specification"), "$.workflow.specification")
    execution = r.obj(wf.get("execution"), "$.workflow.execution")
    sizes: dict[str, float] = {}
    for i, raw in enumerate(r.array(spec, "files", "$.workflow.specification", required=False)):
        fw = f"$.workflow.specification.files[{i}]"
        f = r.obj(raw, fw)
        sizes[r.identifier(f, "id", fw)] = r.number(f, "sizeInBytes", fw)
    runtimes: dict[str, float] = {}
    for i, raw in enumerate(r.array(execution, "tasks", "$.workflow.execution")):
        ew = f"$.workflow.execution.tasks[{i}]"
        e = r.obj(raw, ew)
        runtimes[r.identifier(e, "id", ew)] = r.number(e, "runtimeInSeconds", ew)
    tasks: list[_Task] = []
    for i, raw in enumerate(r.array(spec, "tasks", "$.workflow.specification")):
        w = f"$.workflow.specification.tasks[{i}]"
        t = r.obj(raw, w)
        key = r.identifier(t, "id", w)
        task = _Task(key, str(t.get("name", key)))
        task.parents = r.identifiers(t, "parents", w)
        task.children = r.identifiers(t, "children", w)
        task.inputs = r.identifiers(t, "inputFiles", w)
        task.outputs = r.identifiers(t, "outputFiles", w)
        for kind, files in (("inputFiles", task.inputs), ("outputFiles", task.outputs)):
            for fid in files:
                if fid not in sizes:
                    r.fail(f"{w}.{kind}", f"task {key!r} names file {fid!r}, which is not in specification.files")
        if key not in runtimes:
            r.fail("$.workflow.execution.tasks", f"no runtimeInSeconds for task {key!r}")
        task.runtime = runtimes[key]
        tasks.append(task)
    return tasks, sizes


def convert(data: Any, source: str = "<wfcommons>", reference_mips: float = DEFAULT_REFERENCE_MIPS) -> dict[str, Any]:
    """The job JSON (as a dict) for a parsed WfCommons instance."""
    r = JsonReader(source)
    if not reference_mips > 0:
        raise InputError("<flag>", "--reference-mips", f"must be a positive number, found {reference_mips}")
    root = r.obj(data, "$")
    wf = r.obj(root.get("workflow"), "$.workflow")
    version = str(root.get("schemaVersion", ""))
    if "specification" in wf or version.startswith("1.5"):
        tasks, sizes = _read_v15(r, wf)
    else:
        tasks, sizes = _read_v14(r, wf)
    if not tasks:
        r.fail("$.workflow", "the instance has no tasks")
    by_key: dict[str, int] = {}
    for n, t in enumerate(tasks, start=1):
        for alias in (t.key, t.name):
            by_key.setdefault(alias, n)

    def resolve(ref: str, owner: _Task, field: str) -> int:
        if ref not in by_key:
            r.fail("$.workflow", f"task {owner.key!r} lists unknown task {ref!r} in {field}")
        return by_key[ref]

    children: dict[int, list[int]] = {n: [] for n in range(1, len(tasks) + 1)}
    for n, t in enumerate(tasks, start=1):
        for c in t.children:
            children[n].append(resolve(c, t, "children"))
        for p in t.parents:
            children[resolve(p, t, "parents")].append(n)
    readers: dict[str, set[int]] = {}
    for n, t in enumerate(tasks, start=1):
        for f in t.inputs:
            readers.setdefault(f, set()).add(n)
    task_list: list[dict[str, Any]] = []
    for n, t in enumerate(tasks, start=1):
        kids = sorted(set(children[n]))
        fed: set[int] = set()
        files = []
        for f in dict.fromkeys(t.outputs):
            dest = [k for k in kids if k in readers.get(f, ())]
            fed.update(dest)
            files.append({"path": f"./{_safe(f)}", "size": sizes.get(f, 0.0) / 1e6, "dest_task_id": dest})
        entry: dict[str, Any] = {
            "task_id": n,
            "workload": t.runtime * reference_mips,
            "type": 1,
            "usage": 100,
            "cmd": f"true {_safe(t.name)}",
        }
        if files:
            entry["out_file_list"] = files
        control = [k for k in kids if k not in fed]
        if control:
            entry["out_value"] = {"val": "", "size": 0, "dest_task_id": control}
        task_list.append(entry)
    job = {
        "job_id": 1,
        "task_list": task_list,
        "wfcommons": {
            "name": str(root.get("name", "")),
            "schemaVersion": version,
            "reference_mips": reference_mips,
            "note": "workload = runtimeInSeconds × reference_mips; cmd is a placeholder that does nothing",
        },
    }
    job_from_dict(job, source)  # the converted job must load: unique ids, no cycle, safe paths
    return job


def load_instance(path: str | Path, reference_mips: float = DEFAULT_REFERENCE_MIPS) -> dict[str, Any]:
    return convert(read_json(path), str(path), reference_mips)
