"""The agent's pure rules: the readiness line, which process is ours, where a local client connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from sflow.cluster.agent import NodeFiles, is_node_of, local_address, node_command
from sflow.node.readiness import Readiness, format_readiness, parse_readiness

FILES = NodeFiles(Path("/srv/sflow"))


def test_the_readiness_line() -> None:
    text = "noise\nsflow-node ready listen=0.0.0.0:7070 pid=4242 version=0.1.0\n"
    assert parse_readiness(text) == Readiness("0.0.0.0:7070", 4242, "0.1.0")
    assert parse_readiness("sflow-node ready listen=0.0.0.0:7070 pid=") is None  # half written
    assert parse_readiness("sflow-node ready listen=0.0.0.0:7070 pid=4242 version=0.1") is None  # no newline yet
    assert parse_readiness("") is None


def test_the_readiness_line_of_an_icn_node_round_trips() -> None:
    ready = Readiness("127.0.0.1:7070", 7, "0.1.0", icn="127.0.0.1:6363")
    assert format_readiness(ready) == "sflow-node ready listen=127.0.0.1:7070 icn=127.0.0.1:6363 pid=7 version=0.1.0"
    assert parse_readiness(format_readiness(ready) + "\n") == ready


def test_the_node_command_names_the_pid_file_and_is_recognised() -> None:
    argv = node_command(FILES, "/srv/sflow/venv/bin/python", listen="0.0.0.0:7070", mode=None)
    assert argv[:4] == ["/srv/sflow/venv/bin/python", "-m", "sflow", "node"]
    assert argv[argv.index("--pid-file") + 1] == "/srv/sflow/sflow-node.pid"
    assert argv[-2:] == ["--listen", "0.0.0.0:7070"]
    assert is_node_of(argv, FILES)
    assert node_command(FILES, "py", listen=None, mode="icn")[-2:] == ["--mode", "icn"]


@pytest.mark.parametrize(
    "argv",
    [
        ["/usr/bin/python3", "/srv/sflow/venv/bin/sflow", "node", "--pid-file", "/srv/sflow/sflow-node.pid"],
        ["python", "-m", "sflow", "node", "--config", "x", "--pid-file", "/srv/sflow/sflow-node.pid"],
    ],
)
def test_sflow_nodes_of_this_directory(argv: list[str]) -> None:
    assert is_node_of(argv, FILES)


@pytest.mark.parametrize(
    "argv",
    [
        ["sleep", "300"],
        ["python", "-m", "sflow", "node", "--pid-file", "/other/sflow-node.pid"],  # another directory's node
        ["python", "-m", "sflow", "status", "--pid-file", "/srv/sflow/sflow-node.pid"],
        ["vi", "node", "/srv/sflow/sflow-node.pid"],  # names the file, but is not sflow
        ["bash", "-c", "pkill -f nclw; node /srv/sflow/sflow-node.pid"],
    ],
)
def test_other_processes_are_not_ours(argv: list[str]) -> None:
    assert not is_node_of(argv, FILES)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("0.0.0.0:7070", "127.0.0.1:7070"), ("10.0.0.2:7070", "10.0.0.2:7070"), ("[::]:7070", "[::1]:7070"), ("[fe80::1]:1", "[fe80::1]:1")],
)
def test_local_address(listen: str, expected: str) -> None:
    assert local_address(listen) == expected


def test_the_node_command_passes_the_advertised_address_and_neighbours() -> None:
    files = NodeFiles(Path("/h/sflow"))
    argv = node_command(files, "/h/sflow/venv/bin/python", listen=None, mode="auto", advertise="10.0.0.2",
                        neighbours=["10.0.0.3:15454", "10.0.0.4:15454"])
    assert argv[-6:] == ["--advertise", "10.0.0.2", "--neighbour", "10.0.0.3:15454", "--neighbour", "10.0.0.4:15454"]
    assert is_node_of(argv, files)
