"""Writes the inputs of experiments/scale.toml (run it from the repository root):

* ``grid-4x5.toml`` — a 4 × 5 grid of nodes, each linked to its neighbours by 5 ms, 100 Mb/s links;
* ``montage-100.wfformat.json`` — a Montage-shaped workflow of 100 tasks in WfFormat 1.5
  (projections, overlap fits, background model and corrections, co-addition), with short runtimes
  and file sizes drawn from a seeded generator;
* ``montage-100.json`` — that instance imported with sflow's WfCommons importer, its placeholder
  commands replaced by ones that sleep for the recorded runtime and write the recorded outputs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from sflow.experiment.jobs import runnable
from sflow.wfcommons import convert

HERE = Path(__file__).resolve().parent
ROWS, COLS = 4, 5


def grid() -> str:
    lines = ["# 4 x 5 grid: node r<row>c<col>, each linked to the next in its row and column", 'name = "grid-4x5"', "",
             "[defaults]", "vcpus = 1", "mips = 1000", "delay_ms = 5", "bandwidth_mbps = 100", "loss = 0.0", ""]
    names = [[f"r{r}c{c}" for c in range(COLS)] for r in range(ROWS)]
    for row in names:
        for n in row:
            lines.append(f"[nodes.{n}]")
    lines.append("")
    for r in range(ROWS):
        for c in range(COLS):
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr < ROWS and c + dc < COLS:
                    lines += ["[[links]]", f'between = ["{names[r][c]}", "{names[r + dr][c + dc]}"]']
    return "\n".join(lines) + "\n"


def montage(seed: int = 14) -> dict[str, object]:
    rng = random.Random(seed)
    tasks: list[dict[str, object]] = []
    files: dict[str, int] = {}
    runtimes: dict[str, float] = {}

    def task(name: str, inputs: list[str], outputs: list[tuple[str, int]], runtime: float) -> str:
        for f, size in outputs:
            files[f] = size
        tid = f"{name}_{len(tasks) + 1:03d}"
        tasks.append({"id": tid, "name": name, "inputFiles": inputs, "outputFiles": [f for f, _ in outputs],
                      "parents": [], "children": []})
        runtimes[tid] = runtime
        return tid

    projected = []
    for i in range(24):
        projected.append(f"p{i:02d}.fits")
        task("mProject", [], [(projected[-1], rng.randint(20_000, 60_000))], rng.uniform(0.2, 0.6))
    fits = []
    for i in range(44):
        a, b = rng.sample(projected, 2)
        fits.append(f"fit{i:02d}.tbl")
        task("mDiffFit", [a, b], [(fits[-1], rng.randint(500, 2_000))], rng.uniform(0.05, 0.2))
    task("mConcatFit", fits, [("fits.tbl", 40_000)], 0.3)
    task("mBgModel", ["fits.tbl"], [("corrections.tbl", 8_000)], 0.4)
    corrected = []
    for i, p in enumerate(projected):
        corrected.append(f"c{i:02d}.fits")
        task("mBackground", [p, "corrections.tbl"], [(corrected[-1], rng.randint(20_000, 60_000))], rng.uniform(0.1, 0.3))
    task("mImgtbl", corrected, [("images.tbl", 10_000)], 0.2)
    task("mAdd", corrected + ["images.tbl"], [("mosaic.fits", 400_000)], 0.8)
    task("mShrink", ["mosaic.fits"], [("small.fits", 60_000)], 0.2)
    task("mJPEG", ["small.fits"], [("mosaic.jpg", 30_000)], 0.1)
    task("mViewer", ["mosaic.jpg"], [("preview.png", 20_000)], 0.1)
    producer = {f: t["id"] for t in tasks for f in t["outputFiles"]}  # type: ignore[union-attr]
    for t in tasks:
        for f in t["inputFiles"]:  # type: ignore[union-attr]
            parent = producer[f]
            if parent not in t["parents"]:  # type: ignore[operator]
                t["parents"].append(parent)  # type: ignore[union-attr]
                next(p for p in tasks if p["id"] == parent)["children"].append(t["id"])  # type: ignore[union-attr]
    return {
        "name": "montage-100 (generated)",
        "schemaVersion": "1.5",
        "workflow": {
            "specification": {"tasks": tasks, "files": [{"id": f, "sizeInBytes": s} for f, s in files.items()]},
            "execution": {"makespanInSeconds": 0, "executedAt": "2026-11-29T00:00:00Z",
                          "tasks": [{"id": t, "runtimeInSeconds": round(r, 3)} for t, r in runtimes.items()]},
        },
    }


def main() -> None:
    (HERE / "grid-4x5.toml").write_text(grid(), encoding="utf-8")
    instance = montage()
    (HERE / "montage-100.wfformat.json").write_text(json.dumps(instance, indent=1) + "\n", encoding="utf-8")
    job = runnable(convert(instance, "montage-100.wfformat.json"))
    job["job_id"] = 140
    (HERE / "montage-100.json").write_text(json.dumps(job, indent=1) + "\n", encoding="utf-8")
    print(f"{len(job['task_list'])} functions")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
