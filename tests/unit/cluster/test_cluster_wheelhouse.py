"""Reading a host's Python, the wheel tags it takes, what it lacks, and the wheelhouse: which of
sflow's requirements a host gets, which wheels are sent, and when the cache asks pip again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sflow.cluster import bootstrap
from sflow.cluster import wheelhouse as wh
from sflow.cluster.target import HostPython, unsuitable
from sflow.cluster.wheelhouse import WheelCache, WheelFile, Wheelhouse, pip_download_argv, requirements_for, sync_plan
from sflow.errors import ClusterError


def host_python(**changes: Any) -> HostPython:
    facts: dict[str, Any] = {
        "executable": "/usr/bin/python3",
        "version": [3, 11, 2],
        "implementation": "cpython",
        "soabi": "cpython-311-x86_64-linux-gnu",
        "abiflags": "",
        "pointer_bits": 64,
        "libc": "glibc",
        "libc_version": "2.36",
        "venv": True,
        "markers": {"platform_machine": "x86_64", "platform_system": "Linux", "sys_platform": "linux", "python_version": "3.11"},
    }
    markers = changes.pop("markers", {})
    facts.update(changes)
    facts["markers"] = {**facts["markers"], **markers}
    return HostPython.from_probe(facts)


def test_the_probe_reads_this_interpreter(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "a-1-py3-none-any.whl").write_bytes(b"wheel")
    answer = bootstrap.probe(tmp_path)
    python = HostPython.from_probe(json.loads(json.dumps(answer)))  # as it travels
    assert python.version == tuple(sys.version_info[:3]) and python.implementation == "cpython"
    assert python.interpreter_tag == f"cp{sys.version_info[0]}{sys.version_info[1]}" and python.has_venv
    assert answer["wheels"] == {"a-1-py3-none-any.whl": WheelFile.of(tmp_path / "wheels" / "a-1-py3-none-any.whl").sha256}


def test_the_probe_script_runs_as_a_program_on_stdin(tmp_path: Path) -> None:
    script = Path(bootstrap.__file__).read_bytes()
    done = subprocess.run([sys.executable, "-I", "-", "probe"], input=script, cwd=tmp_path, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dir"] == str(tmp_path)


def test_manylinux_tags_from_the_hosts_glibc() -> None:
    tags = host_python().platform_tags()
    assert tags[:2] == ("manylinux_2_36_x86_64", "manylinux_2_35_x86_64")
    assert tags[-1] == "linux_x86_64"
    assert tags.index("manylinux2014_x86_64") == tags.index("manylinux_2_17_x86_64") + 1
    assert "manylinux1_x86_64" in tags and "manylinux_2_5_x86_64" in tags and "manylinux_2_4_x86_64" not in tags
    arm = host_python(libc_version="2.31", markers={"platform_machine": "aarch64"}).platform_tags()
    assert arm[0] == "manylinux_2_31_aarch64" and "manylinux2014_aarch64" in arm and "manylinux_2_16_aarch64" not in arm
    assert "manylinux2010_aarch64" not in arm
    assert host_python(pointer_bits=32).platform_tags()[0] == "manylinux_2_36_i686"
    assert host_python(libc="", libc_version="").platform_tags() == ()


def test_tags_name_the_cache_key() -> None:
    assert host_python().key == "cp311-cp311-manylinux_2_36_x86_64"
    assert host_python(abiflags="d").abi_tag == "cp311d"
    assert host_python(version=[3, 12, 1]).key == "cp312-cp312-manylinux_2_36_x86_64"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"version": [3, 9, 2]}, ["/usr/bin/python3 on h1 is Python 3.9.2; sflow needs Python >=3.11", "python3.11-venv", "python ="]),
        ({"venv": False}, ["/usr/bin/python3 on h1 (Python 3.11.2) has no venv module", "apt install python3 python3-venv"]),
        ({"implementation": "pypy"}, ["is pypy", "CPython"]),
        ({"libc": "", "libc_version": ""}, ["an unknown libc", "glibc"]),
        ({"markers": {"platform_system": "Darwin"}}, ["runs on Darwin", "Linux hosts"]),
    ],
)
def test_what_a_host_lacks_is_said_with_what_to_install(changes: dict[str, Any], words: list[str]) -> None:
    problem = unsuitable(host_python(**changes), ">=3.11", "h1")
    assert problem is not None
    for word in words:
        assert word in problem, problem


def test_a_suitable_host_has_no_problem() -> None:
    assert unsuitable(host_python(), ">=3.11", "h1") is None
    assert unsuitable(host_python(), None, "h1") is None


def test_a_malformed_probe_answer_is_an_error() -> None:
    with pytest.raises(ClusterError, match="malformed"):
        HostPython.from_probe({"version": [3, 11]})


def test_requirements_for_a_host_leave_out_extras_and_follow_its_markers() -> None:
    requires = [
        "twisted>=23.10",
        "msgpack>=1.0",
        'matplotlib>=3.7; extra == "plot"',
        'pytest>=7.4; extra == "test"',
        'tomli>=2; python_version < "3.11"',
        'pywin32>=300; sys_platform == "win32"',
        "requests[socks]>=2",
    ]
    markers = host_python().marker_environment()
    assert requirements_for(requires, markers) == ["msgpack>=1.0", "requests[socks]>=2", "twisted>=23.10"]
    with pytest.raises(ClusterError, match="invalid requirement"):
        requirements_for(["not a requirement ;;"], markers)


def test_only_wheels_missing_or_changed_on_the_host_are_sent() -> None:
    local = {"a.whl": "1", "b.whl": "2", "sflow.whl": "new"}
    assert sync_plan(local, {"a.whl": "1", "b.whl": "2", "sflow.whl": "new"}) == ([], [])
    assert sync_plan(local, {"a.whl": "1", "sflow.whl": "old", "gone.whl": "9"}) == (["b.whl", "sflow.whl"], ["gone.whl"])
    assert sync_plan(local, {}) == (["a.whl", "b.whl", "sflow.whl"], [])


def test_pip_download_asks_for_binary_wheels_of_the_hosts_tags(tmp_path: Path) -> None:
    argv = pip_download_argv(host_python(), ["msgpack>=1.0", "pip"], tmp_path / "d", tmp_path)
    assert argv[:4] == [sys.executable, "-m", "pip", "download"] and "--only-binary=:all:" in argv
    pairs = list(zip(argv, argv[1:]))
    assert ("--python-version", "3.11") in pairs and ("--abi", "cp311") in pairs and ("--implementation", "cp") in pairs
    platforms = [b for a, b in pairs if a == "--platform"]
    assert platforms == list(host_python().platform_tags())
    assert argv[-2:] == ["msgpack>=1.0", "pip"]


class FakePip:
    """Stands in for ``pip download``: writes one wheel per requirement into --dest."""

    def __init__(self, fail: str = "") -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        self.calls += 1
        if self.fail:
            return subprocess.CompletedProcess(argv, 1, b"", self.fail.encode())
        dest = Path(argv[argv.index("--dest") + 1])
        last_platform = max(i for i, arg in enumerate(argv) if arg == "--platform")
        for req in argv[last_platform + 2 :]:
            name = req.split(">")[0].split("=")[0]
            (dest / f"{name}-1.0-py3-none-any.whl").write_bytes(name.encode())
        return subprocess.CompletedProcess(argv, 0, b"", b"")


def test_the_cache_fetches_a_set_once_and_again_when_a_wheel_is_damaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pip = FakePip()
    monkeypatch.setattr(wh.subprocess, "run", pip)
    cache = WheelCache(tmp_path / "cache")
    first = cache.dependencies(host_python(), ["msgpack>=1.0"])
    assert [w.name for w in first] == ["msgpack-1.0-py3-none-any.whl", "pip-1.0-py3-none-any.whl"]
    assert all(w.path.parent == tmp_path / "cache" / "cp311-cp311-manylinux_2_36_x86_64" for w in first)
    assert WheelCache(tmp_path / "cache").dependencies(host_python(), ["msgpack>=1.0"]) == first
    assert pip.calls == 1  # the second deploy asks no index
    cache.dependencies(host_python(), ["msgpack>=1.0", "twisted"])  # another set: fetched
    assert pip.calls == 2
    first[0].path.write_bytes(b"damaged")
    again = cache.dependencies(host_python(), ["msgpack>=1.0"])
    assert pip.calls == 3 and [w.name for w in again] == [w.name for w in first]
    cache.dependencies(host_python(libc_version="2.31"), ["msgpack>=1.0"])  # other tags, other key
    assert pip.calls == 4 and (tmp_path / "cache" / "cp311-cp311-manylinux_2_31_x86_64").is_dir()


def test_no_wheels_for_a_host_is_an_error_naming_its_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wh.subprocess, "run", FakePip(fail="ERROR: Could not find a version that satisfies the requirement numpy\n"))
    arm = host_python(markers={"platform_machine": "riscv64"})
    with pytest.raises(ClusterError) as caught:
        WheelCache(tmp_path).dependencies(arm, ["numpy"])
    text = str(caught.value)
    assert "cp311-cp311-manylinux_2_36_riscv64" in text and "satisfies the requirement numpy" in text


def test_the_wheelhouse_manifest_names_sflow_pip_and_a_digest_of_every_wheel(tmp_path: Path) -> None:
    files = []
    for name in ("sflow_engine-0.1.0-py3-none-any.whl", "pip-24.0-py3-none-any.whl", "msgpack-1.0-py3-none-any.whl"):
        (tmp_path / name).write_bytes(name.encode())
        files.append(WheelFile.of(tmp_path / name))
    house = Wheelhouse("k", files[0], tuple(files[1:]))
    manifest = json.loads(house.manifest())
    assert manifest["sflow"] == files[0].name and manifest["pip"] == files[1].name and len(manifest["wheels"]) == 3
    (tmp_path / files[0].name).write_bytes(b"another build")
    rebuilt = Wheelhouse("k", WheelFile.of(tmp_path / files[0].name), tuple(files[1:]))
    assert rebuilt.digest != house.digest
    with pytest.raises(ClusterError, match="no pip wheel"):
        _ = Wheelhouse("k", files[0], (files[2],)).pip
