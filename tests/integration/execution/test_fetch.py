"""``$R^`` inputs fetched from a file server: a local directory, a real SFTP server (paramiko's
server classes on loopback), and FTP failures that fail only the function."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from sflow.config import Config, FileServerSettings
from sflow.node.execution import Executor
from sflow.ssh import SshOptions

from .conftest import request, run
from .ftp_server import FtpServer
from .sftp_server import SftpServer

Make = Callable[..., Executor]


def config(**file_server: object) -> Config:
    return Config(file_server=FileServerSettings(**file_server))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def keys() -> tuple[paramiko.RSAKey, paramiko.RSAKey]:
    return paramiko.RSAKey.generate(2048), paramiko.RSAKey.generate(2048)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "server"
    (root / "1").mkdir(parents=True)
    (root / "1" / "input.txt").write_text("remote data\n")
    return root


@pytest.fixture
def sftp(served: Path, keys: tuple[paramiko.RSAKey, paramiko.RSAKey]) -> Iterator[SftpServer]:
    host_key, client_key = keys
    with SftpServer(served, user="fs", password="pw", client_key=client_key, host_key=host_key) as server:
        yield server


CMD = "wc -l < $R^./in/input.txt > count.txt; cat in/input.txt"


def test_local_directory_file_server(make_executor: Make, tmp_path: Path, served: Path) -> None:
    job = tmp_path / "job"
    result = run(make_executor(config(protocol="local", root=str(served))), request(job, CMD, outputs=("count.txt",)))
    assert result.ok, result
    assert result.stdout_tail == "remote data\n"
    assert (job / "in" / "input.txt").read_text() == "remote data\n"
    assert [p.name for p in (job / "in").iterdir()] == ["input.txt"]  # no temporary file left behind


def test_present_inputs_are_not_fetched_again(make_executor: Make, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "input.txt").write_text("local\n")
    result = run(make_executor(config(protocol="local", root=str(tmp_path / "nowhere"))), request(tmp_path, CMD))
    assert result.ok and result.stdout_tail == "local\n"


def test_missing_remote_file_fails_the_function(make_executor: Make, tmp_path: Path, served: Path) -> None:
    result = run(make_executor(config(protocol="local", root=str(served))), request(tmp_path / "job", CMD, job_id=2))
    assert not result.ok and result.exit_status is None
    assert result.reason.startswith("cannot fetch $R^in/input.txt from the file server: ")
    assert str(served / "2" / "input.txt") in result.reason


def test_sftp_with_password(make_executor: Make, tmp_path: Path, sftp: SftpServer) -> None:
    known = sftp.write_known_hosts(tmp_path / "known_hosts")
    cfg = config(protocol="sftp", host="127.0.0.1", port=sftp.port, user="fs", password="pw", root="/")
    job = tmp_path / "job"
    result = run(make_executor(cfg, ssh=SshOptions(known_hosts=known)), request(job, CMD, outputs=("count.txt",)))
    assert result.ok, result
    assert (job / "count.txt").read_text().strip() == "1"


def test_sftp_with_key(
    make_executor: Make, tmp_path: Path, sftp: SftpServer, keys: tuple[paramiko.RSAKey, paramiko.RSAKey]
) -> None:
    key_file = tmp_path / "id_rsa"
    keys[1].write_private_key_file(str(key_file))
    known = sftp.write_known_hosts(tmp_path / "known_hosts")
    cfg = config(protocol="sftp", host="127.0.0.1", port=sftp.port, user="fs", key_file=str(key_file), root="")
    result = run(make_executor(cfg, ssh=SshOptions(known_hosts=known)), request(tmp_path / "job", CMD))
    assert result.ok, result
    assert result.stdout_tail == "remote data\n"


def test_sftp_refuses_an_unknown_host_key(make_executor: Make, tmp_path: Path, sftp: SftpServer) -> None:
    # (a password no base64 host-key fingerprint in the message can contain by chance: "pw" could)
    password = "pass#word"
    cfg = config(protocol="sftp", host="127.0.0.1", port=sftp.port, user="fs", password=password, root="/")
    result = run(make_executor(cfg, ssh=SshOptions(known_hosts=tmp_path / "empty")), request(tmp_path / "job", CMD))
    assert not result.ok
    assert "known_hosts" in result.reason and f"sftp://fs@127.0.0.1:{sftp.port}" in result.reason
    assert password not in result.reason
    assert not (tmp_path / "job" / "in" / "input.txt").exists()


def test_sftp_wrong_password_and_missing_file(make_executor: Make, tmp_path: Path, sftp: SftpServer) -> None:
    known = sftp.write_known_hosts(tmp_path / "known_hosts")
    executor = make_executor(
        config(protocol="sftp", host="127.0.0.1", port=sftp.port, user="fs", password="wrong-secret", root="/"),
        ssh=SshOptions(known_hosts=known),
    )
    result = run(executor, request(tmp_path / "job", CMD))
    assert not result.ok and "authentication as fs failed (password)" in result.reason and "wrong-secret" not in result.reason
    executor = make_executor(
        config(protocol="sftp", host="127.0.0.1", port=sftp.port, user="fs", password="pw", root="/"),
        ssh=SshOptions(known_hosts=known),
    )
    result = run(executor, request(tmp_path / "job", "cat $R^gone.txt"))
    assert not result.ok and "cannot fetch /1/gone.txt" in result.reason


def test_ftp_failure_fails_only_the_function(make_executor: Make, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config(protocol="ftp", host="127.0.0.1", port=port, user="u", password="secret-pw", root="/files")
    executor = make_executor(cfg, ssh=SshOptions(connect_timeout=5))
    result = run(executor, request(tmp_path, CMD))
    assert not result.ok
    assert result.reason.startswith(f"cannot fetch $R^in/input.txt from the file server: ftp://u@127.0.0.1:{port}")
    assert "secret-pw" not in result.reason
    assert run(executor, request(tmp_path, "true")).ok  # the node carries on


def test_ftp(make_executor: Make, tmp_path: Path, served: Path) -> None:
    with FtpServer(served, user="u", password="pw") as server:
        cfg = config(protocol="ftp", host="127.0.0.1", port=server.port, user="u", password="pw", root="/")
        executor = make_executor(cfg)
        result = run(executor, request(tmp_path / "job", CMD, outputs=("count.txt",)))
        assert result.ok, result
        assert (tmp_path / "job" / "in" / "input.txt").read_text() == "remote data\n"
        assert "RETR" in server.commands
        missing = run(executor, request(tmp_path / "job", "cat $R^gone.txt"))
        assert not missing.ok and "550" in missing.reason
        wrong = make_executor(config(protocol="ftp", host="127.0.0.1", port=server.port, user="u", password="bad-pw"))
        refused = run(wrong, request(tmp_path / "job2", CMD))
        assert not refused.ok and "530" in refused.reason and "bad-pw" not in refused.reason
