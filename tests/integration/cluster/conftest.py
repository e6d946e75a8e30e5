"""Fixtures for the multi-host tests: a lab of network-namespace hosts like a user's (:mod:`netns`),
an inventory of them, a cluster secret, and one deploy. They are module-scoped: the lab, and the
lock that keeps other test runs out of its names, last only as long as the module."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_lab import LAB_HOSTS, MINIMAL_PYTHON, NO_SSHD, NO_VENV_PACKAGE, Cli, LabCluster
from netns import lab, missing_requirement


@pytest.fixture(scope="module")
def lab_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("sflow-lab")
    work = root / "delegator"
    work.mkdir()
    from sflow.secret import generate_secret

    secret = generate_secret(work / "cluster.secret")
    with lab(root, LAB_HOSTS, without_sshd=NO_SSHD, without_venv_package=NO_VENV_PACKAGE, minimal_python=MINIMAL_PYTHON) as the_lab:
        cluster = LabCluster(the_lab, work, secret, work / "hosts.toml")
        cluster.write_inventory("hosts.toml", cluster.hosts)
        yield cluster


@pytest.fixture(scope="module")
def cli(lab_cluster: LabCluster) -> Cli:
    """Run ``sflow ARGS`` in the delegator directory, with the lab's known_hosts and no SFLOW_*
    settings from the caller's environment. The dependency wheels are cached where a user's are
    (~/.cache/sflow), so that only the first run on a machine fetches them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFLOW_")}

    def run(*args: str, known_hosts: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "sflow", *args]
        if "cluster" in args[:3]:
            argv += ["--known-hosts", str(known_hosts or lab_cluster.lab.known_hosts)]
        return subprocess.run(argv, cwd=lab_cluster.work, env=env, capture_output=True, text=True, timeout=timeout, check=False)

    return run


@pytest.fixture(scope="module")
def deployed(lab_cluster: LabCluster, cli: Cli) -> subprocess.CompletedProcess[str]:
    """sflow installed on h0-h2 by a first deploy (later deploys find them up to date)."""
    done = cli("cluster", "deploy", str(lab_cluster.inventory), "--secret", str(lab_cluster.secret), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return done
