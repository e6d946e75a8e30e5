"""Docker execution against the real engine, with the sample images from dockerfiles/build.sh."""

from __future__ import annotations

import os
import pwd
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import paramiko
import pytest

from sflow.config import Config, ImageRepositorySettings
from sflow.node.execution import Executor
from sflow.ssh import SshOptions

from .conftest import BUSYBOX, FFMPEG, request, run, wait, wait_until
from .sftp_server import SftpServer

Make = Callable[..., Executor]


@pytest.fixture
def owned_job(tmp_path: Path) -> Path:
    """A job directory owned by an unprivileged user, as when the node runs as that user."""
    job = tmp_path / "job"
    job.mkdir()
    if os.getuid() == 0:
        os.chown(job, 12345, 12346)
    return job


@pytest.fixture
def spare_image(engine: docker.DockerClient, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A name for the busybox image that is not present, and a repository directory holding its tar."""
    name = f"sflow-test-{secrets.token_hex(4)}"
    engine.images.get(BUSYBOX).tag(name)
    repo = tmp_path / "images"
    repo.mkdir()
    with (repo / f"{name}.tar").open("wb") as f:
        for chunk in engine.images.get(name).save(named=f"{name}:latest"):
            f.write(chunk)
    engine.images.remove(name)
    yield name, repo
    try:
        engine.images.remove(name)
    except docker.errors.ImageNotFound:
        pass  # the test did not load it


def containers_of(engine: docker.DockerClient, job_id: int) -> list[dict[str, str]]:
    """The job's containers as the engine lists them (state included), without inspecting each."""
    return list(engine.api.containers(all=True, filters={"label": f"sflow.job={job_id}"}))


def test_shell_command_in_present_image(engine: docker.DockerClient, make_executor: Make, owned_job: Path) -> None:
    # `cal` is a busybox applet that Debian hosts do not have, so the function goes to Docker.
    job_id = secrets.randbelow(10**9)
    req = request(owned_job, "cal 1 2000 > cal.txt && echo $V^1 >> cal.txt && id -u", values={1: "it's $(here)"},
                  outputs=("cal.txt",), docker_image=BUSYBOX, job_id=job_id)
    result = run(make_executor(), req)
    assert result.ok, result
    assert result.where == f"docker:{BUSYBOX}"
    text = (owned_job / "cal.txt").read_text()
    assert "January 2000" in text and text.endswith("it's $(here)\n")
    owner = owned_job.stat().st_uid
    assert (owned_job / "cal.txt").stat().st_uid == owner and result.stdout_tail.strip() == str(owner)
    assert containers_of(engine, job_id) == []  # removed afterwards


def test_dummy_runs_the_entrypoint(engine: docker.DockerClient, make_executor: Make, owned_job: Path) -> None:
    # out/ does not exist: the executor makes it, owned like the job directory.
    cmd = "DUMMY -hide_banner -loglevel error -f lavfi -i testsrc=duration=1:size=32x32:rate=2 -y ./out/clip.gif"
    result = run(make_executor(), request(owned_job, cmd, outputs=("out/clip.gif",), docker_image=FFMPEG))
    assert result.ok, result
    assert result.where == f"docker:{FFMPEG}"
    clip = owned_job / "out" / "clip.gif"
    assert clip.read_bytes()[:3] == b"GIF"
    assert (clip.stat().st_uid, clip.stat().st_gid) == (owned_job.stat().st_uid, owned_job.stat().st_gid)
    if os.getuid() == 0:
        # not root-owned, unlike the original's outputs: a root node hands the job directory to node.run_as
        assert clip.stat().st_uid == pwd.getpwnam(Config().node.run_as).pw_uid


def test_failure_in_a_container(engine: docker.DockerClient, make_executor: Make, owned_job: Path) -> None:
    cmd = "DUMMY sh -c 'echo progress; echo oops >&2; exit 4'"
    result = run(make_executor(), request(owned_job, cmd, docker_image=BUSYBOX, outputs=("never.txt",)))
    assert not result.ok
    assert (result.exit_status, result.reason) == (4, "exit status 4")
    assert result.stderr_tail == "oops\n" and result.stdout_tail == "progress\n"


def test_pinning_in_a_container(engine: docker.DockerClient, make_executor: Make, owned_job: Path) -> None:
    cpu = min(os.sched_getaffinity(0))  # one this process may use, whichever the machine gives it
    cmd = "DUMMY grep Cpus_allowed_list /proc/self/status"
    result = run(make_executor(), request(owned_job, cmd, docker_image=BUSYBOX, cpus=(cpu,)))
    assert result.ok, result
    assert result.stdout_tail.split() == ["Cpus_allowed_list:", str(cpu)]


def test_missing_image_is_loaded_from_a_repository_directory(
    engine: docker.DockerClient, make_executor: Make, owned_job: Path, spare_image: tuple[str, Path]
) -> None:
    name, repo = spare_image
    cfg = Config(image_repository=ImageRepositorySettings(kind="dir", path=str(repo)))
    req = request(owned_job, "DUMMY echo loaded", docker_image=name, docker_tar=f"{name}.tar")
    result = run(make_executor(cfg), req)
    assert result.ok, result
    assert result.stdout_tail == "loaded\n"
    engine.images.get(name)  # present now


def test_missing_image_is_fetched_over_sftp(
    engine: docker.DockerClient, make_executor: Make, tmp_path: Path, owned_job: Path, spare_image: tuple[str, Path]
) -> None:
    name, repo = spare_image
    host_key = paramiko.RSAKey.generate(2048)
    with SftpServer(repo.parent, user="img", password="pw", host_key=host_key) as server:
        cfg = Config(
            image_repository=ImageRepositorySettings(
                kind="sftp", host="127.0.0.1", port=server.port, user="img", password="pw", path="/images",
                local_dir=str(tmp_path / "cache"),
            )
        )
        known = server.write_known_hosts(tmp_path / "known_hosts")
        req = request(owned_job, "DUMMY echo fetched", docker_image=name, docker_tar=f"{name}.tar")
        result = run(make_executor(cfg, ssh=SshOptions(known_hosts=known)), req)
    assert result.ok, result
    assert result.stdout_tail == "fetched\n"
    assert (tmp_path / "cache" / f"{name}.tar").stat().st_size == (repo / f"{name}.tar").stat().st_size


def test_missing_image_without_a_tar(
    engine: docker.DockerClient, make_executor: Make, owned_job: Path, spare_image: tuple[str, Path]
) -> None:
    name, repo = spare_image
    executor = make_executor(Config(image_repository=ImageRepositorySettings(kind="dir", path=str(repo))))
    result = run(executor, request(owned_job, "DUMMY true", docker_image=name))
    assert not result.ok
    assert result.reason == f"image {name} not found and the task names no docker tar to load"
    result = run(executor, request(owned_job, "DUMMY true", docker_image=name, docker_tar="other.tar"))
    assert not result.ok
    assert result.reason.startswith(f"image {name} not found and its tar could not be fetched: image tar other.tar not found")


def test_timeout_and_cancel_kill_the_container(engine: docker.DockerClient, make_executor: Make, owned_job: Path) -> None:
    executor = make_executor()
    job_id = secrets.randbelow(10**9)
    result = run(executor, request(owned_job, "DUMMY sleep 300", docker_image=BUSYBOX, timeout=1.0, job_id=job_id))
    assert not result.ok and result.reason == "timeout after 1s"
    wait_until(lambda: containers_of(engine, job_id) == [], timeout=20, what="the container to be removed")

    d = executor.run(request(owned_job, "DUMMY sleep 300", docker_image=BUSYBOX, job_id=job_id + 1, run="to-cancel"))
    wait_until(lambda: any(c["State"] == "running" for c in containers_of(engine, job_id + 1)),
               timeout=20, what="the container to run")
    executor.cancel_run("to-cancel")
    assert wait(d, 20).reason == "cancelled"
    wait_until(lambda: containers_of(engine, job_id + 1) == [], timeout=20, what="the container to be removed")


def test_unreachable_engine_fails_the_function(make_executor: Make, tmp_path: Path) -> None:
    # Needs no engine: the client points at a socket that does not exist.
    def client() -> docker.DockerClient:
        return docker.DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock")

    executor = make_executor(docker_client_factory=client)
    result = run(executor, request(tmp_path, "DUMMY x", docker_image=BUSYBOX))
    assert not result.ok and result.where == f"docker:{BUSYBOX}"
    assert result.reason.startswith("Docker engine: ")
    assert run(executor, request(tmp_path, "true")).ok


def test_an_image_removed_between_functions_is_loaded_again(
    engine: docker.DockerClient, make_executor: Make, owned_job: Path, spare_image: tuple[str, Path]
) -> None:
    # The node asks for an image's ENTRYPOINT once; when the image has gone since, the next
    # function loads it again from the repository instead of failing.
    name, repo = spare_image
    executor = make_executor(Config(image_repository=ImageRepositorySettings(kind="dir", path=str(repo))))
    for _ in range(2):
        result = run(executor, request(owned_job, "DUMMY true", docker_image=name, docker_tar=f"{name}.tar"))
        assert result.ok, result
        engine.images.remove(name)
