"""Settings layering and the import of the original's nclw2.properties."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sflow.cli import main
from sflow.config import describe_keys, import_properties, load_config
from sflow.errors import ConfigError


def test_layering(tmp_path: Path) -> None:
    f = tmp_path / "sflow.toml"
    f.write_text('[scheduler]\nalgorithm = "heft"\n[node]\nlisten = "127.0.0.1:9000"\npinning = true\n')
    assert load_config(environ={}).scheduler.algorithm == "sf-cuv"
    cfg = load_config(f, environ={})
    assert cfg.scheduler.algorithm == "heft" and cfg.node.pinning is True
    cfg = load_config(f, environ={"SFLOW_SCHEDULER_ALGORITHM": "peft", "SFLOW_FILE_SERVER_HOST": "fs"})
    assert cfg.scheduler.algorithm == "peft" and cfg.file_server.host == "fs"
    cfg = load_config(f, environ={"SFLOW_SCHEDULER_ALGORITHM": "peft"}, overrides={"scheduler": {"algorithm": "cpop"}})
    assert cfg.scheduler.algorithm == "cpop" and cfg.node.listen == "127.0.0.1:9000"


def test_bad_settings_name_the_place(tmp_path: Path) -> None:
    f = tmp_path / "sflow.toml"
    f.write_text("[node]\nlisten = 5\n")
    with pytest.raises(ConfigError, match=r"sflow.toml: node.listen: expected a string"):
        load_config(f, environ={})
    f.write_text("[nodes]\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(f, environ={})
    f.write_text("[node]\nlisen = 'x'\n")
    with pytest.raises(ConfigError, match="node.lisen: unknown key"):
        load_config(f, environ={})
    f.write_text("[node\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f, environ={})
    with pytest.raises(ConfigError, match="environment: node.vcpus: expected an integer"):
        load_config(environ={"SFLOW_NODE_VCPUS": "many"})
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml", environ={})


def test_every_key_is_documented() -> None:
    keys = describe_keys()
    assert len(keys) > 30 and all(doc for _, _, doc in keys)


def test_import_original_properties(samples: Path) -> None:
    sections, notes = import_properties((samples / "nclw2.properties").read_text(), "nclw2.properties")
    assert sections["scheduler"]["algorithm"] == "sf-cuv"
    assert sections["node"]["listen"] == "0.0.0.0:8088"
    assert sections["file_server"]["protocol"] == "sftp"
    assert sections["icn"]["fib_max_nexthops"] == 5
    assert any(n.startswith("ccn_comm_mode: ignored:") for n in notes)
    assert any(n.startswith("rmgr_send_thread_num: ignored:") for n in notes)


@pytest.mark.parametrize("number,name", [(0, "sf-cuv"), (1, "heft"), (2, "fws"), (3, "coordvnf"), (4, "hclustering"), (5, "peft"), (9, "sf-cuv")])
def test_sched_algorithm_numbers(number: int, name: str) -> None:
    sections, notes = import_properties(f"sched_algorithm={number}\nftp_server_pass=secret\n")
    assert sections["scheduler"]["algorithm"] == name
    assert any("plain-text password" in n for n in notes)
    assert (number == 9) == any("not 0-5" in n for n in notes)


def test_config_import_cli(samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sflow.toml"
    assert main(["config", "import", str(samples / "nclw2.properties"), "-o", str(out)]) == 0
    data = tomllib.loads(out.read_text())
    assert data["scheduler"]["algorithm"] == "sf-cuv"
    assert "ignored" in capsys.readouterr().err
    assert load_config(out, environ={}).node.listen == "0.0.0.0:8088"
    assert main(["config", "import", str(samples / "nclw2.properties"), "-o", str(out)]) == 2


def test_a_boolean_is_not_a_number() -> None:
    with pytest.raises(ConfigError, match="node.function_timeout: expected a number, found True"):
        load_config(environ={}, overrides={"node": {"function_timeout": True}})


def test_host_port_settings() -> None:
    from sflow.config import parse_host_port

    assert parse_host_port("127.0.0.1:0", "node.listen") == ("127.0.0.1", 0)
    assert parse_host_port("[::1]:7070", "node.listen") == ("::1", 7070)
    for bad in ("7070", ":7070", "host:", "host:70000"):
        with pytest.raises(ConfigError, match="--icn-listen: expected HOST:PORT"):
            parse_host_port(bad, "--icn-listen")
