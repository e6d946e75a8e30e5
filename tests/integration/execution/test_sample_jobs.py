"""The project's sample jobs (jobs/*.json) run function by function through the executor, in one
job directory, in topological order: every function succeeds and produces its declared outputs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from sflow import jsonio
from sflow.delegator.plan import TaskPlacement, build_plan
from sflow.model.infra import VcpuId
from sflow.model.workflow import Job, TaskId
from sflow.node.execution import ExecRequest, Executor

from .conftest import REPO, run

Make = Callable[..., Executor]
JOBS = REPO / "jobs"


def run_job(executor: Executor, job: Job, workdir: Path) -> dict[TaskId, str]:
    """Run every function as one node would (all on one node): the inputs each gets are the node
    plan's (the first file from each predecessor, and each predecessor's value)."""
    placements = {t.id: TaskPlacement("local", VcpuId("v0"), 0) for t in job.tasks}
    (plan,) = build_plan(job, placements, job.order, "sample").nodes.values()
    values = {t.id: t.value.val for t in plan.tasks if t.value is not None}
    where: dict[TaskId, str] = {}
    for task in plan.tasks:
        req = ExecRequest(
            job_id=job.id,
            run=f"sample-{job.id}",
            task_id=task.id,
            cmd=task.cmd,
            workdir=workdir,
            files={i.pred: i.path for i in task.file_args},
            values={p: values[p] for p in task.value_preds},
            outputs=tuple(o.path for o in task.outputs),
            docker_image=task.docker_image,
            docker_tar=task.docker_tar,
            cpus=None,
            timeout=60,
        )
        result = run(executor, req, timeout=90)
        assert result.ok, f"task {task.id}: {result.reason}\n{result.stderr_tail}"
        where[task.id] = result.where
    return where


def load(name: str) -> Job:
    return jsonio.load_job(JOBS / name)


@pytest.mark.parametrize("name", ["text-chain.json", "fork-join.json"])
def test_text_jobs_natively(make_executor: Make, tmp_path: Path, name: str) -> None:
    job = load(name)
    where = run_job(make_executor(), job, tmp_path)
    assert set(where.values()) == {"native"}


def test_fork_join_result(make_executor: Make, tmp_path: Path) -> None:
    job = load("fork-join.json")
    run_job(make_executor(), job, tmp_path)
    total = float((tmp_path / "out" / "sum-of-squares.txt").read_text())  # awk prints %.6g
    assert total == pytest.approx(sum(i * i for i in range(1, 40001)), rel=1e-5)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed on this machine")
def test_ffmpeg_job_natively(make_executor: Make, tmp_path: Path) -> None:
    where = run_job(make_executor(), load("ffmpeg.json"), tmp_path)
    assert set(where.values()) == {"native"}


def test_ffmpeg_job_in_docker(engine: docker.DockerClient, make_executor: Make, tmp_path: Path) -> None:
    where = run_job(make_executor(), load("ffmpeg-docker.json"), tmp_path)
    assert set(where.values()) == {"docker:sflow-ffmpeg"}
    assert (tmp_path / "media" / "4th.mp4").stat().st_size > 0
