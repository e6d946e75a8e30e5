"""The original's script names run the sflow commands that replace them, with its argument order
and defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
RECORDER = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["RECORD"], "a") as out:
    out.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["config", "import"]:
    open(sys.argv[sys.argv.index("-o") + 1], "w").write("")
"""


@pytest.fixture
def run(tmp_path: Path) -> "Runner":
    recorder = tmp_path / "fake-sflow"
    recorder.write_text(RECORDER)
    recorder.chmod(0o755)
    return Runner(tmp_path, recorder)


class Runner:
    def __init__(self, cwd: Path, recorder: Path) -> None:
        self.cwd, self.recorder = cwd, recorder

    def __call__(self, script: str, *args: str) -> list[list[str]]:
        record = self.cwd / "record.jsonl"
        record.unlink(missing_ok=True)
        env = {**os.environ, "SFLOW": str(self.recorder), "RECORD": str(record)}
        subprocess.run(["bash", str(SCRIPTS / script), *args], cwd=self.cwd, env=env, check=True)
        return [json.loads(line) for line in record.read_text().splitlines()]


@pytest.mark.parametrize(
    ("script", "mode"), [("nclw_startworker.sh", "ip"), ("nclw_nfdstartworker.sh", "icn"), ("nclw_autostartworker.sh", "auto")]
)
def test_start_scripts(run: Runner, script: str, mode: str) -> None:
    assert run(script) == [["cluster", "start", "nclw_hosts", "--mode", mode]]
    assert run(script, "hosts.toml", "--accept-new-host-keys") == [["cluster", "start", "hosts.toml", "--mode", mode, "--accept-new-host-keys"]]


def test_stop_and_collectlog(run: Runner) -> None:
    assert run("nclw_stopworker.sh") == [["cluster", "stop", "nclw_hosts"]]
    assert run("nclw_nfdcollectlog.sh") == [["cluster", "logs", "nclw_hosts", "-o", "collectLog"]]
    assert run("nclw_nfdcollectlog.sh", "h", "out", "-i", "k") == [["cluster", "logs", "h", "-o", "out", "-i", "k"]]


@pytest.mark.parametrize(
    ("script", "mode", "job"),
    [("nclw_delegator.sh", "ip", "nclw/job_ncl.json"), ("nclw_nfdelegator.sh", "icn", "nclw/job_ffmpeg.json"), ("nclw_autodelegator.sh", "auto", "nclw/job_ffmpeg.json")],
)
def test_delegator_scripts(run: Runner, script: str, mode: str, job: str) -> None:
    assert run(script) == [["delegate", "nclw/env_ncl.json", job, "--mode", mode]]
    (run.cwd / "my.properties").write_text("sched_algorithm=1\n")
    calls = run(script, "e.json", "j.json", "my.properties", "nclw_hosts")
    assert calls[0][:3] == ["config", "import", "my.properties"]
    converted = calls[0][calls[0].index("-o") + 1]
    assert calls[1] == ["delegate", "e.json", "j.json", "--mode", mode, "--config", converted]
    assert not Path(converted).exists()  # removed afterwards
