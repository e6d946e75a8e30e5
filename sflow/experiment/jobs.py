"""The jobs of an experiment's matrix, as job documents: a job file as it is, a WfCommons instance
through the importer (made runnable: see :func:`runnable`), or a random DAG from a seed.

Random DAGs are layered: ``tasks`` functions in layers of about √tasks, each function after the
first layer reading the file of one to three functions of the layer before (seeded, so the same
seed gives the same job). Each function writes ``file_kb`` KiB to ``./t<id>.dat``; its workload is
between 500 and 3000 MI. Pure.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

from sflow.experiment.spec import JobSource
from sflow.jsonio import read_json

RANDOM_JOB_ID = 900


def job_document(source: JobSource) -> dict[str, Any]:
    if source.random_tasks:
        return random_job(source.random_tasks, source.random_seed, source.random_file_kb)
    assert source.path is not None
    if source.wfcommons:
        from sflow.wfcommons import load_instance

        return runnable(load_instance(source.path))
    data: dict[str, Any] = read_json(source.path)
    return data


def runnable(job: dict[str, Any]) -> dict[str, Any]:
    """An imported WfCommons job whose functions do what the instance recorded: each sleeps for its
    recorded runtime (workload / reference MIPS) and writes its output files at their recorded
    sizes (zeros), instead of the importer's placeholder that writes nothing."""
    mips = float(job.get("wfcommons", {}).get("reference_mips", 1000.0))
    out = dict(job)
    tasks = []
    for task in job["task_list"]:
        writes = "".join(f"; head -c {round(f['size'] * 1e6)} /dev/zero > {f['path']}" for f in task.get("out_file_list", []))
        tasks.append({**task, "cmd": f"sleep {task['workload'] / mips:.3f}{writes}"})
    out["task_list"] = tasks
    return out


def job_text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True)


def random_job(tasks: int, seed: int, file_kb: int) -> dict[str, Any]:
    rng = random.Random(seed)
    width = max(1, round(math.sqrt(tasks)))
    layers: list[list[int]] = []
    ids = list(range(1, tasks + 1))
    while ids:
        n = max(1, min(len(ids), rng.randint(max(1, width // 2), width + width // 2)))
        layers.append(ids[:n])
        ids = ids[n:]
    children: dict[int, list[int]] = {t: [] for layer in layers for t in layer}
    for before, layer in zip(layers, layers[1:]):
        for t in layer:
            for p in rng.sample(before, min(len(before), rng.randint(1, 3))):
                children[p].append(t)
    parents: dict[int, list[int]] = {t: [] for t in children}
    for p, cs in children.items():
        for c in cs:
            parents[c].append(p)
    size = file_kb * 1024
    task_list = []
    for t in sorted(children):
        reads = "".join(f"cat $F^{p} > /dev/null; " for p in sorted(parents[t]))
        task_list.append({
            "task_id": t,
            "workload": round(rng.uniform(500, 3000)),
            "type": 1,
            "usage": 50,
            "cmd": f"{reads}head -c {size} /dev/zero > ./t{t}.dat",
            "out_file_list": [{"path": f"./t{t}.dat", "size": size / 1e6, "dest_task_id": sorted(children[t])}],
        })
    return {"job_id": RANDOM_JOB_ID + seed % 100, "task_list": task_list}
