"""Per-host operations, the result table and the exit status, over a fake SSH transport."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console

from sflow.cluster import bootstrap, ops
from sflow.cluster.cli import exit_status, render_table
from sflow.cluster.inventory import HostSpec, Inventory
from sflow.cluster.package import Wheel
from sflow.cluster.ssh import REDACTED, CommandResult, RemoteHost, redact
from sflow.cluster.target import HostPython
from sflow.cluster.wheelhouse import WheelFile
from sflow.config import Config
from sflow.errors import ClusterError

Handler = Callable[[str, bytes], CommandResult]


def answer(payload: dict[str, object], status: int = 0) -> CommandResult:
    return CommandResult(status, (json.dumps(payload) + "\n").encode(), b"")


@dataclass
class FakeRemote:
    host: HostSpec
    handler: Handler
    commands: list[str] = field(default_factory=list)
    stdins: list[bytes] = field(default_factory=list)
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    remote_files: dict[str, bytes] = field(default_factory=dict)
    closed: bool = False

    def run(self, command: str, *, stdin: bytes = b"", timeout: float = 60.0) -> CommandResult:
        self.commands.append(command)
        self.stdins.append(stdin)
        return self.handler(command, stdin)

    def put_bytes(self, data: bytes, remote_path: str, *, mode: int = 0o600) -> None:
        self.files[remote_path] = (data, mode)

    def put_file(self, local_path: Path, remote_path: str, *, mode: int = 0o644) -> None:
        self.files[remote_path] = (local_path.read_bytes(), mode)

    def get_file(self, remote_path: str, local_path: Path) -> None:
        if remote_path not in self.remote_files:
            raise ClusterError(f"{remote_path} does not exist on {self.host.name}")
        local_path.write_bytes(self.remote_files[remote_path])

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeConnector:
    """``refuse`` maps an address to the error its connection raises; every other host answers
    through ``handler``."""

    handler: Handler
    refuse: dict[str, str] = field(default_factory=dict)
    remote_files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    remotes: dict[str, FakeRemote] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def connect(self, host: HostSpec) -> RemoteHost:
        if host.address in self.refuse:
            raise ClusterError(self.refuse[host.address])
        remote = FakeRemote(host, self.handler, remote_files=self.remote_files.get(host.address, {}))
        with self.lock:
            self.remotes[host.address] = remote
        return remote


def inventory(*addresses: str, password: str | None = None) -> Inventory:
    return Inventory("hosts", tuple(HostSpec(a, "sflow", "/srv/sflow", password=password) for a in addresses))


def test_one_unreachable_host_does_not_stop_the_others() -> None:
    connector = FakeConnector(lambda cmd, _: answer({"ok": True, "stopped": True, "pid": 41, "signal": "SIGTERM"}))
    connector.refuse["10.0.0.3"] = "cannot connect to 10.0.0.3: connection refused"
    cluster = ops.Cluster(inventory("10.0.0.2", "10.0.0.3", "10.0.0.4"), connector)
    results = ops.stop(cluster, grace=3)
    assert [(r.host, r.ok, r.result) for r in results] == [
        ("10.0.0.2", True, "stopped"),
        ("10.0.0.3", False, "unreachable"),
        ("10.0.0.4", True, "stopped"),
    ]
    assert results[1].detail.endswith("connection refused")
    assert exit_status(results) == 1
    assert exit_status([results[0], results[2]]) == 0
    assert all(r.closed for r in connector.remotes.values())
    command = connector.remotes["10.0.0.2"].commands[0]
    assert command.startswith("cd -- /srv/sflow ") and "-m sflow.cluster.agent stop --grace 3" in command


def test_a_failing_operation_on_one_host_is_reported_with_its_reason() -> None:
    def handler(command: str, _: bytes) -> CommandResult:
        if "start" in command:
            return answer({"ok": False, "error": "sflow node exited with status 1 before it was ready", "log_tail": "a\nb\nbind: address in use"}, 1)
        raise AssertionError(command)

    results = ops.start(ops.Cluster(inventory("10.0.0.2"), FakeConnector(handler)), mode="ip", timeout=5)
    assert not results[0].ok
    assert results[0].detail == "sflow node exited with status 1 before it was ready | log: a / b / bind: address in use"


def test_not_deployed_and_missing_directory_are_explained() -> None:
    codes = {"10.0.0.2": 97, "10.0.0.3": 98}
    seen: list[str] = []

    def handler(command: str, _: bytes) -> CommandResult:
        seen.append(command)
        return CommandResult(codes["10.0.0.2" if len(seen) == 1 else "10.0.0.3"], b"", b"")

    cluster = ops.Cluster(inventory("10.0.0.2", "10.0.0.3"), FakeConnector(handler), parallel=1)
    results = ops.status(cluster)
    assert "does not exist; run `sflow cluster deploy` first" in results[0].detail
    assert "not deployed in /srv/sflow" in results[1].detail


def make_wheel(directory: Path, name: str = "sflow_engine-0.1.0-py3-none-any.whl", body: bytes = b"") -> Path:
    """A wheel with core metadata (what deploy reads of sflow's wheel)."""
    path = directory / name
    metadata = "Metadata-Version: 2.1\nName: sflow-engine\nVersion: 0.1.0\nRequires-Python: >=3.11\n"
    metadata += "Requires-Dist: msgpack>=1.0\nRequires-Dist: pytest>=7; extra == \"test\"\n"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("sflow_engine-0.1.0.dist-info/METADATA", metadata)
        archive.writestr("sflow/__init__.py", body)
    return path


@dataclass
class FakeDependencies:
    """Dependency wheels without pip or an index: two files made once."""

    directory: Path
    asked: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def dependencies(self, python: HostPython, requirements: Sequence[str]) -> tuple[WheelFile, ...]:
        self.asked.append((python.key, tuple(requirements)))
        files = []
        for name in ("msgpack-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "pip-24.0-py3-none-any.whl"):
            path = self.directory / name
            if not path.exists():
                path.write_bytes(name.encode())
            files.append(WheelFile.of(path))
        return tuple(files)


def probe_answer(tmp_path: Path, **changes: object) -> dict[str, object]:
    """What this machine's python answers to the probe, as if in /srv/sflow."""
    facts = bootstrap.probe(tmp_path)
    facts.update({"dir": "/srv/sflow", "executable": "/usr/bin/python3", **changes})
    return facts


def deploy_handler(probe: dict[str, object] | CommandResult, installs: list[bytes]) -> Handler:
    def handler(command: str, stdin: bytes) -> CommandResult:
        if command.endswith(" - probe"):
            assert stdin.startswith(b'"""The host side of ``sflow cluster deploy``')  # the bootstrap script, over stdin
            return probe if isinstance(probe, CommandResult) else answer(probe)
        if command.endswith(" - install"):
            installs.append(stdin)
            return answer({"ok": True, "reused": False})
        if "sflow --version" in command:
            return CommandResult(0, b"sflow 0.1.0\n", b"")
        raise AssertionError(command)

    return handler


def test_secrets_never_reach_details_or_command_lines(tmp_path: Path) -> None:
    password = "hunter2-pw"
    secret = b"00112233445566778899aabbccddeeff\n"
    probe = probe_answer(tmp_path)

    def handler(command: str, stdin: bytes) -> CommandResult:
        if command.endswith(" - probe"):
            return answer(probe)
        # an installer that echoes what it was given must not leak it into the table
        return answer({"ok": False, "error": f"pip failed near {password} and {secret.decode().strip()}"}, 1)

    connector = FakeConnector(handler)
    cluster = ops.Cluster(inventory("10.0.0.2", password=password), connector, (secret.decode().strip(),))
    results = ops.deploy(cluster, Wheel(make_wheel(tmp_path), "b1"), Config(), secret, cache=FakeDependencies(tmp_path))
    assert not results[0].ok
    assert password not in results[0].detail and "00112233" not in results[0].detail
    assert REDACTED in results[0].detail
    remote = connector.remotes["10.0.0.2"]
    for command in remote.commands:
        assert password not in command and "00112233" not in command


def test_deploy_sends_the_wheels_a_host_lacks_and_the_secret_and_settings_with_mode_0600(tmp_path: Path) -> None:
    secret = b"00112233445566778899aabbccddeeff\n"
    wheel = make_wheel(tmp_path)
    deps = FakeDependencies(tmp_path)
    deps.dependencies(HostPython.from_probe(probe_answer(tmp_path)), ())  # make the files
    msgpack = tmp_path / "msgpack-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    # The host holds msgpack already, and an old sflow wheel of the same name with other contents.
    remote_wheels = {msgpack.name: WheelFile.of(msgpack).sha256, wheel.name: "0" * 64}
    installs: list[bytes] = []
    connector = FakeConnector(deploy_handler(probe_answer(tmp_path, wheels=remote_wheels), installs))
    results = ops.deploy(ops.Cluster(inventory("10.0.0.2"), connector), Wheel(wheel, "b1"), Config(), secret, cache=deps)
    assert results[0].ok and results[0].result == "deployed", results
    facts = dict(results[0].facts)
    assert facts["wheels_sent"] == "2" and facts["tags"].startswith("cp311-cp311-manylinux_2_")
    assert deps.asked[-1][1] == ("msgpack>=1.0",)  # the test extra's requirement is not for hosts
    files = connector.remotes["10.0.0.2"].files
    assert sorted(p for p in files if p.endswith(".whl")) == [
        "/srv/sflow/wheels/pip-24.0-py3-none-any.whl",
        "/srv/sflow/wheels/sflow_engine-0.1.0-py3-none-any.whl",
    ]
    manifest = json.loads(files["/srv/sflow/wheels/wheelhouse.json"][0])
    assert manifest["sflow"] == wheel.name and manifest["pip"] == "pip-24.0-py3-none-any.whl" and len(manifest["wheels"]) == 3
    assert files["/srv/sflow/cluster.secret"] == (secret, 0o600)
    config_text, config_mode = files["/srv/sflow/sflow.toml"]
    assert config_mode == 0o600
    assert b'secret_file = "/srv/sflow/cluster.secret"' in config_text
    assert b'pid_file = "/srv/sflow/sflow-node.pid"' in config_text
    assert len(installs) == 1


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        (CommandResult(96, b"", b""), "10.0.0.2 has no python3: install Python 3 (Debian/Ubuntu: apt install python3 python3-venv)"),
        (CommandResult(95, b"python 3.9.2\n", b""), "python3 on 10.0.0.2 is Python 3.9.2; sflow needs Python >=3.11"),
        ({"venv": False}, "/usr/bin/python3 on 10.0.0.2 (Python 3.11."),
    ],
)
def test_a_host_whose_python_cannot_take_the_wheels_is_told_what_to_install(
    tmp_path: Path, probe: CommandResult | dict[str, object], expected: str
) -> None:
    installs: list[bytes] = []
    answer_or_result = probe if isinstance(probe, CommandResult) else probe_answer(tmp_path, **probe)
    connector = FakeConnector(deploy_handler(answer_or_result, installs))
    deps = FakeDependencies(tmp_path)
    results = ops.deploy(ops.Cluster(inventory("10.0.0.2", "10.0.0.3"), connector, parallel=1), Wheel(make_wheel(tmp_path), "b1"), Config(), b"k" * 32, cache=deps)
    assert results[0].host == "10.0.0.2" and not results[0].ok and results[0].result == "failed"
    assert expected in results[0].detail, results[0].detail
    assert "python3-venv" in results[0].detail or "python3.11-venv" in results[0].detail
    assert not installs and not deps.asked and not connector.remotes["10.0.0.2"].files


def test_status_summarises_what_the_node_reports() -> None:
    node = {"node": "0.0.0.0:7070", "pid": 9, "version": "0.1.0", "vcpus": 4, "uptime": 12.6, "jobs": ["7-a"], "running": [["7-a", 2]]}
    down = {"ok": False, "state": "down", "error": "sflow node is not running"}

    def handler(command: str, _: bytes) -> CommandResult:
        return answer({"ok": True, "state": "up", "pid": 9, "listen": "0.0.0.0:7070", "node": node})

    connector = FakeConnector(handler)
    up = ops.status(ops.Cluster(inventory("10.0.0.2"), connector))[0]
    assert (up.ok, up.result) == (True, "up")
    assert up.detail == "pid=9 listen=0.0.0.0:7070 version=0.1.0 vcpus=4 running=1 uptime=13s"
    assert up.as_json()["vcpus"] == "4"
    gone = ops.status(ops.Cluster(inventory("10.0.0.2"), FakeConnector(lambda c, s: answer(down, 1))))[0]
    assert (gone.ok, gone.result, gone.detail) == (False, "down", "sflow node is not running")


def test_an_answer_that_is_not_json_is_a_failure_with_the_error_output() -> None:
    connector = FakeConnector(lambda c, s: CommandResult(1, b"", b"Traceback (most recent call last):\n  ...\nImportError: no twisted\n"))
    result = ops.stop(ops.Cluster(inventory("10.0.0.2"), connector))[0]
    assert not result.ok and result.detail == "agent exited 1 without an answer: Traceback (most recent call last): / ... / ImportError: no twisted"


def test_logs_are_collected_per_host_and_merged_in_time_order(tmp_path: Path) -> None:
    connector = FakeConnector(lambda c, s: answer({"ok": True}))
    connector.remote_files = {
        "10.0.0.2": {"/srv/sflow/sflow-node.log": b"2026-01-01T10:00:00.100 INFO a1\n2026-01-01T10:00:02.000 INFO a2\n"},
        "10.0.0.3": {"/srv/sflow/sflow-node.log": b"2026-01-01T10:00:01.000 INFO b1\nTraceback: continues b1\n"},
    }
    cluster = ops.Cluster(inventory("10.0.0.2", "10.0.0.3", "10.0.0.4"), connector)
    results = ops.collect_logs(cluster, tmp_path / "logs")
    assert [r.ok for r in results] == [True, True, False]
    assert "does not exist" in results[2].detail
    assert (tmp_path / "logs" / "10.0.0.2.log").read_text().startswith("2026-01-01T10:00:00.100")
    merged = (tmp_path / "logs" / "merged.log").read_text().splitlines()
    assert merged == [
        "10.0.0.2 | 2026-01-01T10:00:00.100 INFO a1",
        "10.0.0.3 | 2026-01-01T10:00:01.000 INFO b1",
        "10.0.0.3 | Traceback: continues b1",
        "10.0.0.2 | 2026-01-01T10:00:02.000 INFO a2",
    ]


def test_the_table_shows_every_host_and_a_summary() -> None:
    results = [
        ops.HostResult("10.0.0.2", True, "started", "pid=1"),
        ops.HostResult("10.0.0.3", False, "unreachable", "connection refused"),
    ]
    out = io.StringIO()
    render_table(results, "sflow cluster start hosts", Console(file=out, width=100, color_system=None))
    text = out.getvalue()
    for word in ("10.0.0.2", "started", "pid=1", "10.0.0.3", "unreachable", "connection refused"):
        assert word in text
    assert "1 of 2 hosts ok, 1 failed" in text


def test_repeated_addresses_get_distinct_labels_and_log_files() -> None:
    hosts = (HostSpec("10.0.0.2", "u", "/a"), HostSpec("10.0.0.2", "u", "/b"), HostSpec("10.0.0.3", "u", "/a"))
    cluster = ops.Cluster(Inventory("h", hosts), FakeConnector(lambda c, s: answer({})))
    assert cluster.labels() == ("10.0.0.2:/a", "10.0.0.2:/b", "10.0.0.3")
    assert ops.log_file_name("10.0.0.2:/b") == "10.0.0.2_b.log"
    assert ops.log_file_name("[fe80::1]:2222") == "fe80_1_2222.log"


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("login with hunter2 failed", ["hunter2"], f"login with {REDACTED} failed"),
        ("key 0a0b0c", [bytes.fromhex("0a0b0c")], f"key {REDACTED}"),
        ("pw abcdef and abc", ["abc", "abcdef"], f"pw {REDACTED} and {REDACTED}"),
        ("nothing to hide", ["", "  "], "nothing to hide"),
    ],
)
def test_redact(text: str, secrets: list[str | bytes], expected: str) -> None:
    assert redact(text, secrets) == expected


def test_start_in_auto_mode_gives_each_node_its_address_and_its_neighbours() -> None:
    def handler(command: str, _: bytes) -> CommandResult:
        return answer({"ok": True, "pid": 7, "listen": "0.0.0.0:7070", "icn": "x:6363", "version": "1"})

    hosts = (HostSpec("10.0.0.2", "u", "d"), HostSpec("10.0.0.3", "u", "d", neighbours=("fd00::4",)),
             HostSpec("fd00::4", "u", "d"))
    connector = FakeConnector(handler)
    results = ops.start(ops.Cluster(Inventory("hosts", hosts), connector), mode="auto", timeout=5, hello_port=9999)
    assert [r.ok for r in results] == [True] * 3
    argv = {a: r.commands[0].split("sflow.cluster.agent ", 1)[1] for a, r in connector.remotes.items()}
    assert argv["10.0.0.2"] == "start --mode auto --timeout 5 --advertise 10.0.0.2"  # linked to nobody
    assert argv["10.0.0.3"].endswith("--advertise 10.0.0.3 --neighbour '[fd00::4]:9999'")
    assert argv["fd00::4"].endswith("--advertise fd00::4 --neighbour 10.0.0.3:9999")
    assert dict(results[1].facts)["neighbours"] == "1"
    # icn mode: the address, no neighbours; ip mode: neither
    ops.start(ops.Cluster(Inventory("hosts", hosts[:1]), connector), mode="icn", timeout=5)
    assert connector.remotes["10.0.0.2"].commands[0].endswith("--advertise 10.0.0.2")
    ops.start(ops.Cluster(Inventory("hosts", hosts[:1]), connector), mode="ip", timeout=5)
    assert "--advertise" not in connector.remotes["10.0.0.2"].commands[0]
