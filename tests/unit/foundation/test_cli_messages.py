"""What the CLI says about mistakes a new user makes: files given in the wrong place, a mapping of
another job, flags that exclude each other, two VMs at one address, and what `--help` explains."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from sflow.cli import build_parser, main
from sflow.secret import generate_secret

REPO = Path(__file__).resolve().parents[3]
ENV = REPO / "envs" / "local.json"
JOB = REPO / "jobs" / "fork-join.json"


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def test_swapped_or_misplaced_files_say_which_file_was_expected_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "mapping.json"
    assert main(["schedule", str(ENV), str(JOB), "-a", "heft", "-o", str(mapping)]) == 0
    assert _fails(["validate", str(JOB), str(ENV)], capsys) == (
        f"sflow: error: {JOB}: $: this is a job file, not an environment (which has dc_list); "
        "were the file arguments swapped?\n")
    assert _fails(["simulate", str(ENV), str(JOB)], capsys) == (
        f"sflow: error: {JOB}: $: this is a job without placements, not a mapping (which has ip, vm_id and "
        "vcpu_id per task); make one with `sflow schedule ENV JOB -o MAPPING`\n")
    assert "this is a mapping file, not an environment" in _fails(["simulate", str(mapping), str(ENV)], capsys)
    assert "this is an environment file, not a job (which has task_list)" in _fails(
        ["schedule", str(ENV), str(ENV)], capsys)
    # A mapping is a job with placements: it is accepted where a job is expected.
    assert main(["validate", str(ENV), str(mapping)]) == 0


def test_a_mapping_of_another_job_says_the_job_ids_differ(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = json.loads(JOB.read_text())
    other["job_id"] = 555
    other_job = tmp_path / "other.json"
    other_job.write_text(json.dumps(other))
    mapping = tmp_path / "other-mapping.json"
    assert main(["schedule", str(ENV), str(other_job), "-a", "heft", "-o", str(mapping)]) == 0
    secret = generate_secret(tmp_path / "secret")
    err = _fails(["delegate", str(ENV), str(JOB), "--mapping", str(mapping), "--secret-file", str(secret)], capsys)
    assert err.startswith(f"sflow: error: {mapping}: $.job_id: the mapping is for job 555, but the job to run is "
                          "job 102: the job ids differ"), err


def test_nodes_and_env_exclude_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails(["run", str(JOB), "--env", str(ENV), "--nodes", "2", "-o", str(tmp_path)], capsys)
    assert err == (f"sflow: error: <flag>: --nodes: --nodes and --env exclude each other: with --env the nodes are "
                   f"the VMs of {ENV} on this machine (3); drop --nodes, or drop --env to run on N generated nodes\n")
    remote = json.loads(ENV.read_text())
    for vm in remote["dc_list"][0]["host_list"][0]["vm_list"]:
        vm["ip"] = "10.0.0.1"
        vm.pop("port", None)
    remote_env = tmp_path / "remote.json"
    remote_env.write_text(json.dumps(remote))
    assert "no VM has a loopback address" in _fails(["run", str(JOB), "--env", str(remote_env), "-o", str(tmp_path)],
                                                    capsys)


def test_two_vms_at_one_address_are_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env: dict[str, Any] = json.loads(ENV.read_text())
    vms = env["dc_list"][0]["host_list"][0]["vm_list"]
    vms[0]["ip"] = "127.0.0.1"  # node-a and node-b: one address, no port
    vms[1]["ip"] = "127.0.0.1"
    shared = tmp_path / "shared.json"
    shared.write_text(json.dumps(env))
    capsys.readouterr()
    assert main(["validate", str(shared), str(JOB)]) == 0
    out = capsys.readouterr().out
    assert ("  warning: $.dc_list[0].host_list[0].vm_list[1]: VM 'node-b' has the same address as VM 'node-a', "
            "127.0.0.1 (no port: both use node.listen's port): they are one node; give each VM its own port "
            '("ip": "127.0.0.1:7001")') in out.splitlines()
    assert main(["validate", str(ENV), str(JOB)]) == 0
    assert "warning" not in capsys.readouterr().out


def test_config_import_onto_an_existing_file_refuses_before_any_note(
    samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sflow.toml"
    out.write_text("# mine\n")
    err = _fails(["config", "import", str(samples / "nclw2.properties"), "-o", str(out)], capsys)
    assert err == f"sflow: error: {out}: already exists; pass --force to overwrite\n"
    assert out.read_text() == "# mine\n"


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub: argparse.ArgumentParser = commands.choices[name]
    return sub


@pytest.mark.parametrize("command", ["validate", "node", "status", "keygen"])
def test_help_describes_the_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    description = _subparser(command).description
    assert description and len(description) > 80
    assert " ".join(description.split()[:6]) in " ".join(text.split())


def test_node_is_not_described_as_ip_only() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summary = {a.dest: a.help for a in commands._choices_actions}["node"]
    assert summary is not None and "(IP chaining)" not in summary and "ICN" in summary


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def test_each_command_builds_only_its_module_and_the_table_names_every_command() -> None:
    from sflow.cli import _ROLE_MODULES, COMMAND_MODULES

    everything = _commands(build_parser())
    assert sorted(everything) == sorted(COMMAND_MODULES)
    for command, module in COMMAND_MODULES.items():
        own = [c for c, m in COMMAND_MODULES.items() if m == module]
        assert module in _ROLE_MODULES
        assert _commands(build_parser(["-v", command, "--whatever"])) == own
    for argv in ([], ["--version"], ["-v"], ["scheduel", "x"], ["--help", "schedule"], ["-v", "-h", "run"]):
        assert _commands(build_parser(argv)) == everything


def test_a_mistyped_command_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["scheduel", "env.json"])
    err = capsys.readouterr().err
    assert "invalid choice: 'scheduel'" in err and "'schedule'" in err and "'cluster'" in err
