"""Every sample job gives byte-identical results in ip, icn and auto modes (``sflow run``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from sfc_cluster import REPO, sflow

JOBS = ["text-chain", "fork-join", "ffmpeg", "ffmpeg-docker"]


def outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and "nodes" not in p.relative_to(out).parts and p.name not in ("trace.json", "env.json")}


def _skip_reason(job: str) -> str:
    if job == "ffmpeg" and shutil.which("ffmpeg") is None and not _docker_image("sflow-ffmpeg"):
        return "neither ffmpeg nor the sflow-ffmpeg image is available"
    if job == "ffmpeg-docker" and not _docker_image("sflow-ffmpeg"):
        return "the Docker image sflow-ffmpeg is not available (dockerfiles/build.sh)"
    return ""


def _docker_image(name: str) -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


@pytest.mark.parametrize("job", JOBS)
def test_sample_job_results_are_identical_in_every_mode(job: str, tmp_path: Path) -> None:
    reason = _skip_reason(job)
    if reason:
        pytest.skip(reason)
    results = {}
    for mode in ("ip", "icn", "auto"):
        out = tmp_path / mode
        done = sflow("run", str(REPO / "jobs" / f"{job}.json"), "--mode", mode, "--nodes", "3", "-o", str(out),
                     "--secret-file", str(tmp_path / "secret"), timeout=120)
        assert done.returncode == 0, done.stderr
        results[mode] = outputs(out)
    assert results["ip"], "no results"
    assert results["icn"] == results["ip"]
    assert results["auto"] == results["ip"]
