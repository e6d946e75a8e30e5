"""``sflow cluster`` against real hosts: network namespaces with their own sshd (see netns.py).

The module deploys once; each test starts what it needs and stops it again.
"""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from cluster_lab import NODE_PORT, Cli, LabCluster
from netns import sflow_processes_under, wait_for

from sflow.cluster.timeline import line_time


def _rows(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    return {row["host"]: row for row in json.loads(done.stdout)}


def _stop_all(cli: Cli, lab_cluster: LabCluster) -> None:
    done = cli("cluster", "stop", str(lab_cluster.inventory), "--grace", "5", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: not sflow_processes_under(lab_cluster.lab.root), 10, "every sflow node gone")


def test_deploy_installs_the_venv_config_and_secret_once(lab_cluster: LabCluster, deployed: subprocess.CompletedProcess[str], cli: Cli) -> None:
    secret_text = lab_cluster.secret.read_text()
    assert secret_text.strip() not in deployed.stdout + deployed.stderr
    for host in lab_cluster.hosts:
        for name in ("cluster.secret", "sflow.toml"):
            mode = stat.S_IMODE((host.sflow_dir / name).stat().st_mode)
            assert mode == 0o600, f"{host.address} {name} has mode {mode:o}"
        assert (host.sflow_dir / "cluster.secret").read_text() == secret_text
        assert f'secret_file = "{host.sflow_dir / "cluster.secret"}"' in (host.sflow_dir / "sflow.toml").read_text()
    again = cli("cluster", "deploy", str(lab_cluster.inventory), "--secret", str(lab_cluster.secret), "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    rows = _rows(again)
    assert {r["result"] for r in rows.values()} == {"up to date"}, rows
    assert len(rows) == 3


def _env_and_job(lab_cluster: LabCluster) -> tuple[Path, Path, Path]:
    """A 3-host environment (one VM per namespace, the node port in its address), a fork-join of
    shell tools, and a mapping that puts the branches on different hosts."""
    hosts = lab_cluster.hosts
    host_list = []
    for i, h in enumerate(hosts):
        vcpus = [{"vcpu_id": f"0^{i}^0^0^{k}"} for k in range(2)]
        host_list.append(
            {
                "host_id": f"h{i}", "name": f"h{i}", "ip": h.address, "ram": 4096, "bw": 100,
                "cpu_list": [{"cpu_id": f"h{i}/cpu0", "mips": 2000, "core_list": [{"core_id": f"h{i}/core0", "maxusage": 100, "vcpu_list": vcpus}]}],
                "vm_list": [{"vm_id": f"h{i}", "ram": 4096, "ip": f"{h.address}:{NODE_PORT}", "vcpu_list": vcpus}],
            }
        )
    env = {"dc_list": [{"dc_id": 0, "bw": 125, "host_list": host_list}]}
    common = {"usage": 50, "docker-imagename": "sflow-busybox", "docker-tarname": "sflow-busybox.tar"}
    tasks = [
        {"task_id": 1, "workload": 1000, "type": 1, "cmd": "seq 1 3000 > ./out/numbers.txt",
         "out_file_list": [{"path": "./out/numbers.txt", "size": 0.02, "dest_task_id": [2, 3]}]},
        {"task_id": 2, "workload": 1000, "type": 2, "cmd": "awk 'NR % 2 == 0 { s += $1 } END { print s }' $F^1 > ./out/even.txt",
         "out_file_list": [{"path": "./out/even.txt", "size": 0.001, "dest_task_id": [4]}]},
        {"task_id": 3, "workload": 1000, "type": 2, "cmd": "awk 'NR % 2 == 1 { s += $1 } END { print s }' $F^1 > ./out/odd.txt",
         "out_file_list": [{"path": "./out/odd.txt", "size": 0.001, "dest_task_id": [4]}]},
        {"task_id": 4, "workload": 500, "type": 3, "cmd": "cat $F^2 $F^3 | awk '{ s += $1 } END { print s }' > ./out/total.txt",
         "out_file_list": [{"path": "./out/total.txt", "size": 0.001, "dest_task_id": []}]},
    ]
    job = {"job_id": 7, "task_list": [{**t, **common} for t in tasks]}
    host_of_task = {1: 0, 2: 1, 3: 2, 4: 0}
    placed = []
    for task in tasks:
        i = host_of_task[int(str(task["task_id"]))]
        placed.append({**task, **common, "ip": f"{hosts[i].address}:{NODE_PORT}", "vm_id": f"h{i}", "vcpu_id": f"0^{i}^0^0^0"})
    mapping = {"job_id": 7, "task_list": placed}
    paths = (lab_cluster.work / "env-lab.json", lab_cluster.work / "job-forkjoin.json", lab_cluster.work / "mapping-forkjoin.json")
    for path, doc in zip(paths, (env, job, mapping)):
        path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return paths


def test_start_run_ip_job_on_three_hosts_collect_logs_stop(lab_cluster: LabCluster, deployed: subprocess.CompletedProcess[str], cli: Cli) -> None:
    inventory = str(lab_cluster.inventory)
    started = cli("cluster", "start", inventory, "--mode", "ip", "--json")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        rows = _rows(started)
        assert {r["result"] for r in rows.values()} == {"started"}, rows
        for host in lab_cluster.hosts:
            pid = int(rows[host.address]["pid"])
            assert (host.sflow_dir / "sflow-node.pid").read_text().strip() == str(pid)
            assert "sflow-node ready" in (host.sflow_dir / "sflow-node.ready").read_text()

        status = cli("cluster", "status", inventory, "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        for row in _rows(status).values():
            assert row["result"] == "up" and row["version"] and int(row["vcpus"]) >= 1 and row["running"] == "0", row

        env, job, mapping = _env_and_job(lab_cluster)
        out = lab_cluster.work / "out-forkjoin"
        run = cli("delegate", str(env), str(job), "--mode", "ip", "--mapping", str(mapping), "-o", str(out),
                  "--secret-file", str(lab_cluster.secret), timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        totals = list(out.rglob("total.txt"))
        assert totals and totals[0].read_text().strip() == str(3000 * 3001 // 2), list(out.rglob("*"))

        logs_dir = lab_cluster.work / "logs"
        logs = cli("cluster", "logs", inventory, "-o", str(logs_dir))
        assert logs.returncode == 0, logs.stdout + logs.stderr
        merged = (logs_dir / "merged.log").read_text().splitlines()
        addresses = [h.address for h in lab_cluster.hosts]
        per_host = {a: (logs_dir / f"{a}.log").read_text().splitlines() for a in addresses}
        assert len(merged) == sum(len(lines) for lines in per_host.values())
        assert all(line.split(" | ", 1)[0].strip() in addresses for line in merged)
        stamps = [line_time(line.split(" | ", 1)[1]) for line in merged]
        known = [s for s in stamps if s is not None]
        assert known == sorted(known)
        for address, lines in per_host.items():
            # each host ran its part of job 7 (the mapping puts a function on every host)
            assert any("job=7-" in line and "task=" in line for line in lines), lines[-20:]
    finally:
        _stop_all(cli, lab_cluster)
    for host in lab_cluster.hosts:
        assert not (host.sflow_dir / "sflow-node.pid").exists()
    assert sflow_processes_under(lab_cluster.lab.root) == []


def test_a_host_refusing_ssh_is_reported_while_the_others_start(lab_cluster: LabCluster, deployed: subprocess.CompletedProcess[str], cli: Cli) -> None:
    inventory = lab_cluster.write_inventory("hosts-with-refusing.toml", [*lab_cluster.hosts, lab_cluster.refusing])
    try:
        started = cli("cluster", "start", str(inventory), "--json")
        assert started.returncode == 1, started.stdout + started.stderr
        rows = _rows(started)
        refused = rows[lab_cluster.refusing.address]
        assert refused["result"] == "unreachable" and "connection refused" in refused["detail"], refused
        for host in lab_cluster.hosts:
            assert rows[host.address]["result"] == "started", rows
        table = cli("cluster", "status", str(inventory))
        assert table.returncode == 1
        assert "3 of 4 hosts ok, 1 failed" in table.stdout, table.stdout
    finally:
        _stop_all(cli, lab_cluster)


# The host-key and password tests need SSH only, not a deployed sflow: "connected" is any result
# other than "unreachable".


def test_unknown_host_keys_are_refused_unless_accepted(lab_cluster: LabCluster, cli: Cli, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    refused = cli("cluster", "stop", str(lab_cluster.inventory), "--json", known_hosts=known)
    assert refused.returncode == 1
    for row in _rows(refused).values():
        assert row["result"] == "unreachable" and "not in" in row["detail"] and "--accept-new-host-keys" in row["detail"], row
    assert not known.exists()
    accepted = cli("cluster", "stop", str(lab_cluster.inventory), "--json", "--accept-new-host-keys", known_hosts=known)
    assert all(row["result"] != "unreachable" for row in _rows(accepted).values()), accepted.stdout
    recorded = known.read_text().splitlines()
    assert sorted(line.split()[0] for line in recorded) == sorted(h.address for h in lab_cluster.hosts)
    assert stat.S_IMODE(known.stat().st_mode) == 0o600


def test_a_changed_host_key_is_refused(lab_cluster: LabCluster, cli: Cli, tmp_path: Path) -> None:
    # h0's entry holds h1's key: what a man in the middle (or a rebuilt host) looks like.
    h0, h1 = lab_cluster.hosts[0], lab_cluster.hosts[1]
    lines = [f"{h.address} {(h1 if h is h0 else h).host_key_pub}" for h in lab_cluster.hosts]
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(lines) + "\n")
    before = known.read_text()
    done = cli("cluster", "stop", str(lab_cluster.inventory), "--json", "--accept-new-host-keys", known_hosts=known)
    assert done.returncode == 1
    rows = _rows(done)
    assert rows[h0.address]["result"] == "unreachable" and "CHANGED" in rows[h0.address]["detail"], rows
    assert all(rows[h.address]["result"] != "unreachable" for h in lab_cluster.hosts[1:]), rows
    assert known.read_text() == before


def test_the_originals_nclw_hosts_format_works_with_a_key(lab_cluster: LabCluster, deployed: subprocess.CompletedProcess[str], cli: Cli) -> None:
    hosts_file = lab_cluster.work / "nclw_hosts"
    hosts_file.write_text("".join(f"{h.address},root,,{h.sflow_dir}/\n" for h in lab_cluster.hosts))
    done = cli("cluster", "stop", str(hosts_file), "-i", str(lab_cluster.lab.client_key), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(_rows(done)) == {h.address for h in lab_cluster.hosts}


def test_a_password_is_never_shown(lab_cluster: LabCluster, cli: Cli) -> None:
    # The lab's sshds refuse passwords: authentication fails, and neither the table nor the log
    # (at DEBUG, paramiko's included) shows the password.
    password = "Pw-4f1c9e-do-not-show"
    hosts_file = lab_cluster.work / "nclw_hosts_with_password"
    hosts_file.write_text(f"{lab_cluster.hosts[0].address},root,{password},{lab_cluster.hosts[0].sflow_dir}/\n")
    done = cli("-vv", "cluster", "status", str(hosts_file))
    assert done.returncode == 1
    assert "authentication as root failed (password)" in done.stdout, done.stdout
    assert "plaintext_passwords" in done.stderr
    assert password not in done.stdout + done.stderr
