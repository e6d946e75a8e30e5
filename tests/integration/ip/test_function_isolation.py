"""Attack suite, functions: a node running as root runs job code that tries to read the cluster
secret, natively and in Docker, and to smuggle it out as a declared output through a symbolic
link. Real ``sflow node`` and ``sflow delegate`` processes; the node runs as root (CI is root)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from ip_cluster import Node, sflow, start_node, stop_node, write_env, write_job, write_mapping

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a node runs functions as another user only when it is root")

FUNCTION_USER = "sflow-fn"
BUSYBOX = "sflow-busybox"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("isolation")


@pytest.fixture(scope="module")
def secret_file() -> Iterator[Path]:
    """The cluster secret in a directory anyone may enter (only the file's own mode, 0600 and
    root's, stands between a function and it), the way a careless install might leave it."""
    directory = Path(tempfile.mkdtemp(prefix="sflow-open-"))
    directory.chmod(0o755)
    path = directory / "cluster.secret"
    result = sflow("keygen", "-o", str(path))
    assert result.returncode == 0, result.stderr
    yield path
    shutil.rmtree(directory)


@pytest.fixture(scope="module")
def node(base: Path, secret_file: Path) -> Iterator[Node]:
    started = start_node(base, 0, secret_file)
    yield started
    assert stop_node(started) == 0


def task(tid: int, cmd: str, outputs: list[str], **extra: Any) -> dict[str, Any]:
    return {"task_id": tid, "workload": 1000, "cmd": cmd,
            "out_file_list": [{"path": p, "size": 1, "dest_task_id": []} for p in outputs], **extra}


def delegate(base: Path, name: str, job: dict[str, Any], node: Node, secret_file: Path) -> tuple[Any, Path]:
    env = write_env(base / f"{name}.env.json", [node])
    mapping = write_mapping(base / f"{name}.mapping.json", job, [node], {t["task_id"]: (0, 0) for t in job["task_list"]})
    out = base / f"{name}-out"
    result = sflow("delegate", str(env), str(write_job(base / f"{name}.job.json", job)), "--mapping", str(mapping),
                   "-o", str(out), "--secret-file", str(secret_file))
    return result, out


def test_native_function_cannot_read_the_secret(base: Path, node: Node, secret_file: Path) -> None:
    secret = secret_file.read_text().strip()
    node_pid = int(node.pid_file.read_text())
    cmd = (f"id -un > who.txt; echo $HOME >> who.txt; grep NoNewPrivs /proc/self/status > nnp.txt; "
           f"cat {secret_file} > stolen.txt 2> denied.txt; "
           f"cat /proc/{node_pid}/environ >> stolen.txt 2>> denied.txt; "
           f"ls {node.workdir.parent} >> stolen.txt 2>> denied.txt; "
           "mkdir -p made/deeper && echo written > made/deeper/file.txt")
    job = {"job_id": 901, "task_list": [task(1, cmd, ["who.txt", "nnp.txt", "stolen.txt", "denied.txt",
                                                         "made/deeper/file.txt"])]}
    result, out = delegate(base, "native", job, node, secret_file)
    assert result.returncode == 0, result.stderr
    user = pwd.getpwnam(FUNCTION_USER)
    assert (out / "who.txt").read_text().split() == [FUNCTION_USER, user.pw_dir]
    assert (out / "nnp.txt").read_text().split() == ["NoNewPrivs:", "1"]
    assert (out / "stolen.txt").read_text() == ""
    denied = (out / "denied.txt").read_text()
    assert denied.count("Permission denied") == 3, denied
    assert secret not in denied
    # ... and it could write its job directory, outputs in subdirectories included.
    assert (out / "made/deeper/file.txt").read_text() == "written\n"


def test_secret_cannot_leave_through_a_symlinked_output(base: Path, node: Node, secret_file: Path) -> None:
    secret = secret_file.read_text().strip()
    job = {"job_id": 902, "task_list": [task(1, f"ln -s {secret_file} leak.txt", ["leak.txt"])]}
    result, out = delegate(base, "symlink", job, node, secret_file)
    assert result.returncode == 1
    assert "function 1 failed" in result.stderr and "leak.txt" in result.stderr, result.stderr
    assert not (out / "leak.txt").exists()
    for path in out.rglob("*") if out.exists() else ():
        assert not path.is_file() or secret not in path.read_text(errors="replace"), path


def test_container_cannot_read_the_secret_and_is_confined(base: Path, node: Node, secret_file: Path) -> None:
    try:
        docker.from_env().images.get(BUSYBOX)
    except docker.errors.DockerException as exc:
        pytest.fail(f"the sample image {BUSYBOX} is needed (scripts/setup.d/20-docker.sh builds it): {exc}")
    # `cal` is a busybox applet that Debian hosts do not have: the function runs in Docker.
    cmd = (f"cal > /dev/null; id -u > who.txt; cat {secret_file} > stolen.txt 2> denied.txt; "
           "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status > status.txt")
    job = {"job_id": 903, "task_list": [task(1, cmd, ["who.txt", "stolen.txt", "denied.txt", "status.txt"],
                                             **{"docker-imagename": BUSYBOX})]}
    result, out = delegate(base, "docker", job, node, secret_file)
    assert result.returncode == 0, result.stderr
    assert int((out / "who.txt").read_text()) == pwd.getpwnam(FUNCTION_USER).pw_uid
    assert (out / "stolen.txt").read_text() == ""
    assert "No such file" in (out / "denied.txt").read_text()  # the host's files are not there at all
    status = dict(line.split(":") for line in (out / "status.txt").read_text().splitlines())
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 0, status
    assert status["NoNewPrivs"].strip() == "1", status


def test_a_root_node_refuses_to_run_functions_as_root_or_nobody_known(base: Path, secret_file: Path) -> None:
    for run_as, says in (("root", "is root"), ("", "is empty"), ("no-such-user-sflow", "no user 'no-such-user-sflow'")):
        done = subprocess.run(
            [sys.executable, "-m", "sflow", "node", "--listen", "127.0.0.1:0", "--workdir", str(base / "refused"),
             "--secret-file", str(secret_file)],
            capture_output=True, text=True, timeout=60, env=dict(os.environ, SFLOW_NODE_RUN_AS=run_as))
        assert done.returncode == 2, done.stderr
        assert "node.run_as" in done.stderr and says in done.stderr, done.stderr
