"""One invocation of ``sflow experiment run``: open the results, record who ran what where (the
session), plan the runs still to do, and run them one after another in one reactor, with a
progress line; a failed run is recorded and the matrix goes on. Interrupted (Ctrl-C), the run in
progress is abandoned unrecorded after its nodes are stopped; running again resumes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from twisted.internet import defer

from sflow import __version__
from sflow.config import Config, config_to_dict, load_config
from sflow.experiment.matrix import PlannedRun, plan_runs
from sflow.experiment.runner import RunContext, RunExecution
from sflow.experiment.spec import Spec
from sflow.experiment.store import ResultStore
from sflow.node.blocking import run_until
from sflow.secret import generate_secret, read_secret

#: progress(message) — one line per run start and end
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Summary:
    planned: int
    ok: int
    failed: int
    skipped: int


def host_facts() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": platform.python_version(), "kernel": f"{platform.system()} {platform.release()}",
            "cpu_model": model or platform.processor(), "cores": os.cpu_count() or 1}


def sflow_commit() -> str:
    """The commit of the sflow checkout that runs (``-dirty`` with uncommitted changes), or ""."""
    here = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("-dirty" if dirty else "")


def settings(spec: Spec, outdir: Path, config_file: str | None) -> tuple[Config, Path]:
    """The settings of every run — the user's file (``--config``), then the spec's ``[settings]`` —
    written to ``OUTDIR/settings.toml`` for the nodes; the delegator's deadline is ``timeout_s``."""
    merged: dict[str, dict[str, Any]] = {}
    if config_file:
        merged = config_to_dict(load_config(config_file))
    for section, values in spec.settings.items():
        merged.setdefault(section, {}).update(values)
    path = outdir / "settings.toml"
    path.write_text(tomli_w.dumps(merged), encoding="utf-8")
    config = load_config(path, overrides={"delegator": {"job_timeout": spec.timeout_s}})
    return config, path


def run_experiment(spec: Spec, outdir: Path, *, repeat: int = 0, config_file: str | None = None,
                   progress: Progress | None = None, argv: list[str] | None = None) -> Summary:
    say = progress or (lambda message: None)
    outdir.mkdir(parents=True, exist_ok=True)
    store = ResultStore(outdir / "results.sqlite")
    try:
        last = store.rows("SELECT spec_sha256 FROM sessions ORDER BY session_id DESC LIMIT 1")
        if last and last[0][0] != spec.sha256:
            say(f"sflow: warning: {spec.path} changed since the last session recorded in {outdir} "
                f"(sha256 {last[0][0][:12]} → {spec.sha256[:12]}); its recorded runs are kept and not run again")
        planned = plan_runs(spec, store.completed(), store.repetitions(), repeat)
        total = len(store.completed()) + len(planned)
        skipped = total - len(planned)
        if not planned:
            say(f"nothing to run: all {total} runs of {spec.name} are recorded in {outdir / 'results.sqlite'}")
            return Summary(0, 0, 0, skipped)
        config, settings_file = settings(spec, outdir, config_file)
        if spec.hosts is not None:  # the cluster's own, deployed on its hosts
            secret_file = spec.secret_file or Path(config.security.secret_file).expanduser()
        else:
            secret_file = outdir / "cluster.secret"
            if not secret_file.exists():
                generate_secret(secret_file)
        facts = host_facts()
        session_id = store.add_session({
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": json.dumps(argv or sys.argv),
            "spec_path": str(spec.path), "spec_sha256": spec.sha256, "spec_text": spec.text,
            "sflow_version": __version__, "sflow_commit": sflow_commit(),
            "settings_json": json.dumps(config_to_dict(config), sort_keys=True), **facts, "seed": spec.seed,
        })
        ctx = RunContext(spec, outdir, config, read_secret(secret_file), secret_file, settings_file, session_id)
        if skipped:
            say(f"resuming {spec.name}: {skipped} runs recorded already, {len(planned)} to go")
        counts = {"ok": 0, "failed": 0}

        async def all_runs(reactor: Any) -> None:
            # Interrupted (Ctrl-C, SIGTERM): the run in progress fails as its nodes are stopped;
            # it is not recorded, so that running again does it afresh.
            interrupted: list[bool] = []
            reactor.addSystemEventTrigger("before", "shutdown", interrupted.append, True)
            began = time.monotonic()
            for k, run in enumerate(planned, 1):
                say(_line(k, len(planned), run, began))
                record = await RunExecution(reactor, ctx, run).run()
                if interrupted:
                    return
                store.write_run(record)
                status = record.run["status"]
                counts[status] += 1
                if status == "ok":
                    say(f"  ok: makespan {record.run['makespan_s']:.3f} s (wall {record.run['wall_s']:.1f} s)")
                else:
                    say(f"  failed: {str(record.run['error']).splitlines()[0]}")

        run_until(lambda reactor: defer.Deferred.fromCoroutine(all_runs(reactor)))
        return Summary(len(planned), counts["ok"], counts["failed"], skipped)
    finally:
        store.close()


def _line(k: int, n: int, run: PlannedRun, began: float) -> str:
    elapsed = time.monotonic() - began
    eta = f", ETA {_clock(elapsed / (k - 1) * (n - k + 1))}" if k > 1 else ""
    return f"run {k} of {n}: {run.label}{eta}"


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
