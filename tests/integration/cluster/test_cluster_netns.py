"""``sflow cluster`` against real hosts like a user's: network namespaces with their own sshd, a
non-root user with a password, Debian's system python, nothing of this machine's files, no route
to a package index (see netns.py).

The module deploys once; each test starts what it needs and stops it again.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
from pathlib import Path

from cluster_lab import HOST_DIR, NODE_PORT, Cli, LabCluster, host_rows, lab_environment, stop_all
from netns import (
    HOST_PYTHON,
    USER,
    controller_paths,
    cut_link,
    restore_link,
    run_as_user,
    runs_sflow,
    sflow_processes,
    signal_processes,
    wait_for,
)

from sflow.cluster.timeline import line_time


def test_hosts_are_like_a_users(lab_cluster: LabCluster) -> None:
    """The harness itself: a non-root user, the system python with Debian's pyOpenSSL, nothing of
    this machine's checkout, venv, wheels or pip settings, and no package index."""
    lab = lab_cluster.lab
    h0, h1 = lab_cluster.hosts[0], lab_cluster.hosts[1]
    hidden = [*controller_paths(), str(lab.root), "/opt/wheels", "/root/.cache"]
    probe = "; ".join(f"test -e {p} && echo VISIBLE {p}" for p in hidden)
    done = run_as_user(lab, h0, f"id -u; {probe}; cat /etc/pip.conf; env; {HOST_PYTHON} -c 'import sflow' 2>&1 | tail -1")
    lines = done.stdout.splitlines()
    assert lines[0] == "4242", done.stdout + done.stderr
    assert not [ln for ln in lines if ln.startswith("VISIBLE")], done.stdout
    assert not [ln for ln in lines if ln.upper().startswith(("PIP_", "HTTP_PROXY", "HTTPS_PROXY", "PYTHONPATH"))], done.stdout
    assert "No module named 'sflow'" in lines[-1], done.stdout
    debian = run_as_user(lab, h0, f"{HOST_PYTHON} -c 'import sys, OpenSSL; print(sys.version.split()[0], OpenSSL.__version__, OpenSSL.__file__)'")
    version, openssl, where = debian.stdout.split()
    assert version.startswith("3.11.") and where.startswith("/usr/lib/python3/dist-packages/"), debian.stdout + debian.stderr
    assert int(openssl.split(".")[0]) < 24, openssl  # Debian 12's old pyOpenSSL, the one that must not leak
    pip = run_as_user(lab, h0, f"{HOST_PYTHON} -m pip download --no-cache-dir --retries 0 --timeout 5 -d /tmp/dl msgpack", timeout=120)
    assert pip.returncode != 0 and "No matching distribution" in pip.stdout + pip.stderr, pip.stdout + pip.stderr
    no_venv = run_as_user(lab, h1, f"{HOST_PYTHON} -m venv /tmp/v")
    assert no_venv.returncode != 0 and "ensurepip is not" in no_venv.stdout + no_venv.stderr, no_venv.stdout + no_venv.stderr
    minimal = run_as_user(lab, lab_cluster.minimal, f"{HOST_PYTHON} -m venv --without-pip /tmp/v")
    assert minimal.returncode != 0, minimal.stdout + minimal.stderr
    # a host without sshd is a host all the same, seen from inside
    inside = run_as_user(lab, lab_cluster.refusing, f"id -un; test -e {lab.root} || echo hidden")
    assert inside.stdout.split() == [USER, "hidden"], inside.stdout + inside.stderr


def test_deploy_ships_wheels_once_into_an_isolated_venv(lab_cluster: LabCluster, deployed: subprocess.CompletedProcess[str], cli: Cli) -> None:
    first = host_rows(deployed)
    for row in first.values():
        assert row["result"] == "deployed" and int(row["wheels_sent"]) > 10, row
        assert row["python"].startswith("3.11.") and row["tags"].startswith("cp311-cp311-manylinux_2_"), row
    secret_text = lab_cluster.secret.read_text()
    assert secret_text.strip() not in deployed.stdout + deployed.stderr
    for host in lab_cluster.hosts:
        for name in ("cluster.secret", "sflow.toml"):
            path = host.sflow_dir / name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid != 0, f"{host.address} {name}"
        assert (host.sflow_dir / "cluster.secret").read_text() == secret_text
        home_dir = f"{host.user_home}/{HOST_DIR}"
        assert f'secret_file = "{home_dir}/cluster.secret"' in (host.sflow_dir / "sflow.toml").read_text()
        assert "include-system-site-packages = false" in (host.sflow_dir / "venv" / "pyvenv.cfg").read_text()
        # The venv's own pyOpenSSL, not Debian's: twisted's TLS imports; plotting is not shipped.
        check = run_as_user(
            lab_cluster.lab,
            host,
            f"{HOST_DIR}/venv/bin/python -c 'import twisted.internet.ssl, OpenSSL; print(OpenSSL.__file__)' && "
            f"{HOST_DIR}/venv/bin/sflow --version && {{ {HOST_DIR}/venv/bin/python -c 'import matplotlib' 2>/dev/null || echo no-matplotlib; }}",
        )
        assert check.returncode == 0, check.stdout + check.stderr
        where, version, plot = check.stdout.split("\n")[:3]
        assert where.startswith(f"{home_dir}/venv/lib/python3.11/site-packages/OpenSSL/"), check.stdout
        assert version.startswith("sflow ") and plot == "no-matplotlib", check.stdout
    again = cli("cluster", "deploy", str(lab_cluster.inventory), "--secret", str(lab_cluster.secret), "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    rows = host_rows(again)
    assert len(rows) == 3
    for row in rows.values():
        assert row["result"] == "up to date" and row["wheels_sent"] == "0" and row["bytes_sent"] == "0", row


def test_a_host_without_a_venv_module_is_told_what_to_install(lab_cluster: LabCluster, cli: Cli) -> None:
    minimal = lab_cluster.minimal
    inventory = lab_cluster.write_inventory("hosts-minimal.toml", [minimal])
    done = cli("cluster", "deploy", str(inventory), "--secret", str(lab_cluster.secret))
    assert done.returncode == 1, done.stdout + done.stderr
    flat = " ".join(done.stdout.replace("│", " ").split())
    assert minimal.address in flat and "failed" in flat, done.stdout
    assert f"{HOST_PYTHON} on {minimal.address} (Python 3.11" in flat and "has no venv module" in flat, done.stdout
    assert "apt install python3 python3-venv" in flat, done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not list((minimal.sflow_dir / "wheels").glob("*.whl")), "wheels were sent to a host that cannot take them"


def _env_and_job(lab_cluster: LabCluster) -> tuple[Path, Path, Path]:
    """A 3-host environment (one VM per namespace, the node port in its address), a fork-join of
    shell tools, and a mapping that puts the branches on different hosts."""
    hosts = lab_cluster.hosts
    env = lab_environment(hosts)
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


def _run_fork_join(lab_cluster: LabCluster, cli: Cli, mode: str) -> None:
    """Delegate the fork-join across h0-h2 in ``mode`` and check its result."""
    env, job, mapping = _env_and_job(lab_cluster)
    out = lab_cluster.work / f"out-forkjoin-{mode}"
    run = cli("delegate", str(env), str(job), "--mode", mode, "--mapping", str(mapping), "-o", str(out),
              "--secret-file", str(lab_cluster.secret), timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    totals = list(out.rglob("total.txt"))
    assert totals and totals[0].read_text().strip() == str(3000 * 3001 // 2), list(out.rglob("*"))


def test_start_run_ip_job_on_three_hosts_collect_logs_stop(lab_cluster: LabCluster, deployed: subprocess.CompletedProcess[str], cli: Cli) -> None:
    inventory = str(lab_cluster.inventory)
    started = cli("cluster", "start", inventory, "--mode", "ip", "--json")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        rows = host_rows(started)
        assert {r["result"] for r in rows.values()} == {"started"}, rows
        for host in lab_cluster.hosts:
            pid = int(rows[host.address]["pid"])
            assert (host.sflow_dir / "sflow-node.pid").read_text().strip() == str(pid)
            assert "sflow-node ready" in (host.sflow_dir / "sflow-node.ready").read_text()
            # the node runs as the user, from the deployed venv, inside the host
            assert [p for p, argv in sflow_processes([host]) if p == pid and argv[0].startswith(f"{host.user_home}/")]
            assert Path(f"/proc/{pid}").stat().st_uid != 0

        status = cli("cluster", "status", inventory, "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        for row in host_rows(status).values():
            assert row["result"] == "up" and row["version"] and int(row["vcpus"]) >= 1 and row["running"] == "0", row

        _run_fork_join(lab_cluster, cli, "ip")

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
        stop_all(cli, lab_cluster)
    for host in lab_cluster.hosts:
        assert not (host.sflow_dir / "sflow-node.pid").exists()
    assert sflow_processes(lab_cluster.hosts) == []


def test_static_icn_job_across_three_hosts(lab_cluster: LabCluster, deployed: subprocess.CompletedProcess[str], cli: Cli) -> None:
    """`cluster start --mode icn`: each node's forwarder listens on the host, and a static-ICN job
    whose functions sit on different hosts pulls its inputs from the other hosts' forwarders."""
    inventory = str(lab_cluster.inventory)
    started = cli("cluster", "start", inventory, "--mode", "icn", "--json")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        rows = host_rows(started)
        for host in lab_cluster.hosts:
            assert rows[host.address]["result"] == "started" and rows[host.address]["icn"], rows
        _run_fork_join(lab_cluster, cli, "icn")
        h0, h1, h2 = lab_cluster.hosts
        logs = {h.address: (h.sflow_dir / "sflow-node.log").read_text() for h in lab_cluster.hosts}
        for host, tasks in ((h0, (1, 4)), (h1, (2,)), (h2, (3,))):
            for task in tasks:  # each function ran where the mapping put it
                ended = [ln for ln in logs[host.address].splitlines() if "event=function_end" in ln and f"task={task} ok=True" in ln]
                assert ended, logs[host.address][-3000:]
        # h0 pulled the branches' results from the forwarders on h1 and h2
        peers = [line for line in logs[h0.address].splitlines() if "event=peer_face" in line]
        assert any(h1.address in line for line in peers) and any(h2.address in line for line in peers), peers
    finally:
        stop_all(cli, lab_cluster)
    assert sflow_processes(lab_cluster.hosts) == []


def test_unreachable_hosts_get_one_line_each(lab_cluster: LabCluster, deployed: subprocess.CompletedProcess[str], cli: Cli) -> None:
    inventory = lab_cluster.write_inventory("hosts-with-refusing.toml", [*lab_cluster.hosts, lab_cluster.refusing])
    try:
        started = cli("cluster", "start", str(inventory), "--json")
        assert started.returncode == 1, started.stdout + started.stderr
        rows = host_rows(started)
        refused = rows[lab_cluster.refusing.address]
        assert refused["result"] == "unreachable" and refused["detail"] == "connection refused", refused
        for host in lab_cluster.hosts:
            assert rows[host.address]["result"] == "started", rows
        # h2's node frozen by SIGSTOP (its host answers, its node does not) and h1 off the network
        # (its link cut): the table has one line per host, the reason in words, no traceback.
        off, frozen = lab_cluster.hosts[1], lab_cluster.hosts[2]
        assert signal_processes(frozen, signal.SIGSTOP, runs_sflow)
        cut_link(off)
        try:
            table = cli("cluster", "status", str(inventory), "--timeout", "10", "--connect-timeout", "3")
        finally:
            restore_link(off)
            signal_processes(frozen, signal.SIGCONT, runs_sflow)
        assert table.returncode == 1
        assert table.stderr == "", table.stderr
        body = [ln for ln in table.stdout.splitlines() if ln.startswith("│")]
        assert len(body) == 4, table.stdout
        line_of = {h.address: [ln for ln in body if f" {h.address} " in ln] for h in [*lab_cluster.hosts, lab_cluster.refusing]}
        assert all(len(lines) == 1 for lines in line_of.values()), table.stdout
        line = {a: lines[0] for a, lines in line_of.items()}
        assert "unreachable" in line[lab_cluster.refusing.address] and "connection refused" in line[lab_cluster.refusing.address]
        assert "unreachable" in line[off.address] and any(w in line[off.address] for w in ("timed out", "No route to host")), table.stdout
        assert "timed out" in line[frozen.address], table.stdout
        assert " up " in line[lab_cluster.hosts[0].address] and "vcpus=2" in line[lab_cluster.hosts[0].address], table.stdout
        assert "1 of 4 hosts ok, 3 failed" in table.stdout, table.stdout
        # back on the network, h1 answers again
        again = cli("cluster", "status", str(lab_cluster.inventory), "--json")
        assert host_rows(again)[off.address]["result"] == "up", again.stdout
    finally:
        stop_all(cli, lab_cluster)


# The host-key and password tests need SSH only, not a deployed sflow: "connected" is any result
# other than "unreachable".


def test_unknown_host_keys_are_refused_unless_accepted(lab_cluster: LabCluster, cli: Cli, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    refused = cli("cluster", "stop", str(lab_cluster.inventory), "--json", known_hosts=known)
    assert refused.returncode == 1
    for row in host_rows(refused).values():
        assert row["result"] == "unreachable" and "not in" in row["detail"] and "--accept-new-host-keys" in row["detail"], row
    assert not known.exists()
    accepted = cli("cluster", "stop", str(lab_cluster.inventory), "--json", "--accept-new-host-keys", known_hosts=known)
    assert all(row["result"] != "unreachable" for row in host_rows(accepted).values()), accepted.stdout
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
    rows = host_rows(done)
    assert rows[h0.address]["result"] == "unreachable" and "CHANGED" in rows[h0.address]["detail"], rows
    assert all(rows[h.address]["result"] != "unreachable" for h in lab_cluster.hosts[1:]), rows
    assert known.read_text() == before


def test_the_originals_nclw_hosts_format_with_a_key_or_a_password(
    lab_cluster: LabCluster, deployed: subprocess.CompletedProcess[str], cli: Cli
) -> None:
    with_key = lab_cluster.work / "nclw_hosts"
    with_key.write_text("".join(f"{h.address},{USER},,~/{HOST_DIR}/\n" for h in lab_cluster.hosts))
    done = cli("cluster", "stop", str(with_key), "-i", str(lab_cluster.lab.client_key), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(host_rows(done)) == {h.address for h in lab_cluster.hosts}
    # Password login against the real sshds (the original's hosts file has passwords): status
    # reaches every deployed host, and the password shows nowhere, not even at -vv.
    password = lab_cluster.lab.password
    with_password = lab_cluster.work / "nclw_hosts_with_password"
    with_password.write_text("".join(f"{h.address},{USER},{password},{HOST_DIR}/\n" for h in lab_cluster.hosts))
    status = cli("-vv", "cluster", "status", str(with_password), "--json")
    rows = host_rows(status)
    assert {r["result"] for r in rows.values()} == {"down"}, status.stdout
    assert "plaintext_passwords" in status.stderr and "Accepted password" not in status.stderr
    assert password not in status.stdout + status.stderr
    for host in lab_cluster.hosts:
        assert f"Accepted password for {USER}" in (host.root / "sshd.log").read_text()


def test_a_wrong_password_is_refused_and_never_shown(lab_cluster: LabCluster, cli: Cli) -> None:
    password = "Pw-4f1c9e-do-not-show"
    hosts_file = lab_cluster.work / "nclw_hosts_with_wrong_password"
    hosts_file.write_text(f"{lab_cluster.hosts[0].address},{USER},{password},{HOST_DIR}/\n")
    done = cli("-vv", "cluster", "status", str(hosts_file))
    assert done.returncode == 1
    assert f"authentication as {USER} failed (password)" in done.stdout, done.stdout
    assert "plaintext_passwords" in done.stderr
    assert password not in done.stdout + done.stderr


def test_a_host_cut_off_mid_job_is_re_planned_and_drops_its_part(lab_cluster: LabCluster, deployed: subprocess.CompletedProcess[str],
                                                                 cli: Cli) -> None:
    """IP mode on three hosts; h1's link is cut while its function runs. The delegator hears no
    heartbeat from h1, re-plans its function on h0/h2 (pulling its input from h0) and the job ends
    with the right total; h1's node, which hears nothing from the delegator either, drops the job
    and kills its function — while its link is still cut."""
    import os
    import sys

    from netns import host_processes

    inventory = str(lab_cluster.inventory)
    env, job, mapping = _env_and_job(lab_cluster)
    slow = json.loads(job.read_text())
    placed = json.loads(mapping.read_text())
    for doc in (slow, placed):
        for task in doc["task_list"]:
            if task["task_id"] == 2:
                task["cmd"] = "sleep 6.0606 && " + task["cmd"]
    job.write_text(json.dumps(slow), encoding="utf-8")
    mapping.write_text(json.dumps(placed), encoding="utf-8")
    h0, h1, h2 = lab_cluster.hosts
    started = cli("cluster", "start", inventory, "--mode", "ip", "--json")
    out = lab_cluster.work / "out-cut"
    delegator = None
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        delegator = subprocess.Popen(
            [sys.executable, "-m", "sflow", "delegate", str(env), str(job), "--mapping", str(mapping), "-o", str(out),
             "--secret-file", str(lab_cluster.secret)],
            cwd=lab_cluster.work, env={k: v for k, v in os.environ.items() if not k.startswith("SFLOW_")},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sleeping = lambda: host_processes(h1, lambda argv: "6.0606" in " ".join(argv))  # noqa: E731
        wait_for(lambda: bool(sleeping()), 60, "function 2 to run on h1")
        cut_link(h1)
        try:
            stdout, stderr = delegator.communicate(timeout=120)
            assert delegator.returncode == 0, stdout + stderr
            assert (out / "out" / "total.txt").read_text().strip() == str(3000 * 3001 // 2)
            trace = json.loads((out / "trace.json").read_text())
            (lost,) = [e for e in trace["events"] if e["kind"] == "node_lost"]
            assert lost["node"] == f"{h1.address}:{NODE_PORT}" and "no heartbeat" in lost["detail"]
            assert {p[0].split(":")[0] for p in lost["placements"].values()} <= {h0.address, h2.address}
            # h1's node drops the orphaned job by itself (it is still cut off)
            wait_for(lambda: not sleeping(), 30, "h1's node to kill its orphaned function")
            wait_for(lambda: not [d for d in (h1.sflow_dir / "work").iterdir() if d.name.startswith("7-")], 10,
                     "h1's job directory to go")
        finally:
            restore_link(h1)
    finally:
        if delegator is not None and delegator.poll() is None:
            delegator.kill()
        stop_all(cli, lab_cluster)
