"""The experiment spec and topology formats (errors name the key at fault), the matrix of runs
(resume, --repeat), and the store's one transaction per run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sflow.errors import InputError
from sflow.experiment.matrix import plan_runs
from sflow.experiment.spec import load_spec
from sflow.experiment.store import ResultStore, RunRecord
from sflow.experiment.topology import load_topology

REPO = Path(__file__).resolve().parents[3]
JOB = REPO / "jobs" / "fork-join.json"

TOPOLOGY = """
[defaults]
delay_ms = 5
bandwidth_mbps = 100
[nodes.a]
vcpus = 2
[nodes.b]
mips = 2000
[nodes.c]
[nodes.d]
[[links]]
between = ["a", "b"]
[[links]]
between = ["b", "c"]
[[links]]
between = ["a", "d"]
delay_ms = 1
[[links]]
between = ["d", "c"]
delay_ms = 1
"""


HOSTS = "".join(f'[[host]]\naddress = "10.0.0.{i}"\nuser = "sflow"\ndir = "sflow"\n' for i in (1, 2))


def spec_file(tmp_path: Path, body: str, topology: str = TOPOLOGY) -> Path:
    (tmp_path / "topo.toml").write_text(topology)
    (tmp_path / "hosts.toml").write_text(HOSTS)
    path = tmp_path / "spec.toml"
    path.write_text(f'[matrix]\njobs = ["{JOB}"]\n' + body if "[matrix]" not in body else body)
    return path


def test_a_full_spec_reads() -> None:
    spec = load_spec(REPO / "experiments" / "modes.toml")
    assert spec.modes == ("ip", "icn", "auto") and spec.cache == ("cold", "warm") and spec.repetitions == 3


@pytest.mark.parametrize(("body", "where"), [
    ('[matrix]\njobs = ["nope.json"]\n', "$.matrix.jobs[0]"),
    (f'[matrix]\njobs = ["{JOB}"]\nmodes = ["ip", "ndn"]\n', "$.matrix.modes[1]"),
    (f'[matrix]\njobs = ["{JOB}"]\nalgorithms = ["best-ever"]\n', "$.matrix.algorithms[0]"),
    (f'[matrix]\njobs = ["{JOB}"]\ncache = ["hot"]\n', "$.matrix.cache[0]"),
    (f'[matrix]\njobs = ["{JOB}"]\nrepetitions = 0\n', "$.matrix.repetitions"),
    (f'[matrix]\njobs = ["{JOB}"]\nrepeats = 2\n', "$.matrix.repeats"),
    (f'[matrix]\njobs = ["{JOB}"]\n[cluster]\nhosts = "h.toml"\n', "$.cluster.hosts"),
    (f'costs = "nope.json"\n[matrix]\njobs = ["{JOB}"]\n', "$.costs"),
    (f'[matrix]\njobs = ["{JOB}"]\n[cluster]\nhosts = "hosts.toml"\nnodes = 3\n', "$.cluster"),
    (f'[matrix]\njobs = ["{JOB}"]\n[cluster]\nsecret = "cluster.secret"\n', "$.cluster.secret"),
    (f'[matrix]\njobs = ["{JOB}"]\n[cluster]\nhosts = "hosts.toml"\n[[fault]]\nat_s = 1\nkill = "node-1"\n',
     "$.fault[0].kill"),
    (f'[matrix]\njobs = ["{JOB}"]\n[cluster]\nhosts = "hosts.toml"\n[[fault]]\nat_s = 1\n'
     'link_down = ["10.0.0.1", "10.0.0.2"]\n', "$.fault[0].link_down"),
    (f'[matrix]\njobs = ["{JOB}"]\n[[fault]]\nat_s = 1\nkill = "node-7"\n', "$.fault[0].kill"),
    (f'[matrix]\njobs = ["{JOB}"]\n[[fault]]\nwhen = "soon"\nkill = "node-1"\n', "$.fault[0].when"),
    (f'[matrix]\njobs = ["{JOB}"]\n[[fault]]\nat_s = 1\nkill = "node-1"\nstop = "node-0"\n', "$.fault[0]"),
    (f'[matrix]\njobs = ["{JOB}"]\n[[fault]]\nat_s = 1\nkill = "node-1"\nduration_s = 2\n', "$.fault[0].duration_s"),
    (f'[matrix]\njobs = ["{JOB}"]\n[cluster]\ntopology = "topo.toml"\n[[fault]]\nat_s = 1\nlink_down = ["a", "c"]\n',
     "$.fault[0].link_down"),
    (f'[matrix]\njobs = ["{JOB}"]\n[settings]\nnodes = {{a = 1}}\n', "$.settings.nodes"),
    (f'[matrix]\njobs = ["{JOB}"]\n[matrix.x]\n', "$.matrix.x"),
])
def test_errors_name_the_key(tmp_path: Path, body: str, where: str) -> None:
    with pytest.raises(InputError) as err:
        load_spec(spec_file(tmp_path, body))
    assert err.value.exit_status == 2
    assert f": {where}: " in str(err.value), str(err.value)


def test_a_spec_on_real_hosts_names_its_nodes_by_host(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path, '[cluster]\nhosts = "hosts.toml"\nsecret = "s"\n'
                                         '[[fault]]\nwhen = "function 3 starts"\nrestart = "10.0.0.2"\n'))
    assert spec.node_names == ("10.0.0.1", "10.0.0.2") and spec.nodes == 2 and not spec.emulated
    assert spec.secret_file == tmp_path / "s" and spec.faults[0].target == ("10.0.0.2",)


def test_topology_errors_name_the_key(tmp_path: Path) -> None:
    bad = TOPOLOGY + '[[links]]\nbetween = ["a", "zz"]\n'
    (tmp_path / "t.toml").write_text(bad)
    with pytest.raises(InputError, match=r"\$\.links\[4\]\.between: node 'zz'"):
        load_topology(tmp_path / "t.toml")
    (tmp_path / "t.toml").write_text(TOPOLOGY + '[[links]]\nbetween = ["b", "a"]\n')
    with pytest.raises(InputError, match=r"already linked by links\[0\]"):
        load_topology(tmp_path / "t.toml")
    (tmp_path / "t.toml").write_text(TOPOLOGY.replace("vcpus = 2", "vcpus = 2\ncolour = 1"))
    with pytest.raises(InputError, match=r"\$\.nodes\.a\.colour: unknown key"):
        load_topology(tmp_path / "t.toml")


def test_paths_follow_the_least_delay_and_avoid_links_that_are_down(tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_text(TOPOLOGY)
    topo = load_topology(tmp_path / "t.toml")
    assert topo.paths()[("b", "d")] == ("b", "a", "d")  # 5 + 1 ms, not 5 + 1 through c... both 6: fewer hops tie
    assert topo.paths()[("a", "c")] == ("a", "d", "c")  # 2 ms rather than 10 ms
    cut = topo.paths([frozenset(("a", "d")), frozenset(("c", "d"))])
    assert cut[("a", "c")] == ("a", "b", "c") and cut[("a", "d")] is None
    doc = topo.links_file("a", 3, [frozenset(("a", "d"))])
    assert doc.address == "127.0.1.1" and doc.peers["127.0.1.4"].path == ("a>b", "b>c", "c>d")
    delay, s_per_mb = topo.transfer_cost("a", "c")
    assert delay == pytest.approx(0.002) and s_per_mb == pytest.approx(0.08)  # 100 Mb/s = 12.5 MB/s
    env = topo.environment({"a": 7001, "b": 7002, "c": 7003, "d": 7004})
    assert [len(vm.vcpus) for vm in env.vms.values()] == [2, 1, 1, 1]
    assert str(env.vms["b"].address) == "127.0.1.2:7002" and env.vcpus[env.vms["b"].vcpus[0]].mips == 2000


def test_the_matrix_resumes_and_repeats(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path, f'[matrix]\njobs = ["{JOB}"]\nmodes = ["ip", "icn"]\nrepetitions = 2\n'))
    runs = plan_runs(spec, set(), {})
    assert [r.run_id for r in runs] == ["fork-join/ip/sf-cuv/cold/1", "fork-join/icn/sf-cuv/cold/1",
                                        "fork-join/ip/sf-cuv/cold/2", "fork-join/icn/sf-cuv/cold/2"]
    done = {r.run_id for r in runs[:3]}
    assert [r.run_id for r in plan_runs(spec, done, {})] == ["fork-join/icn/sf-cuv/cold/2"]
    recorded = {("fork-join", "ip", "sf-cuv", "cold"): 2, ("fork-join", "icn", "sf-cuv", "cold"): 2}
    all_done = {r.run_id for r in runs}
    assert plan_runs(spec, all_done, recorded) == []
    more = plan_runs(spec, all_done, recorded, repeat=1)
    assert [r.run_id for r in more] == ["fork-join/ip/sf-cuv/cold/3", "fork-join/icn/sf-cuv/cold/3"]


def test_a_run_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    run = {"run_id": "x/ip/heft/cold/1", "session_id": 1, "job": "x", "mode": "ip", "algorithm": "heft",
           "cache": "cold", "repetition": 1, "status": "ok", "makespan_s": 1.0, "predicted_s": None, "error": "",
           "faults": "[]", "started_at": "now", "wall_s": 2.0, "setup_s": 0.5, "teardown_s": 0.3, "nodes": 2,
           "topology": "", "seed": 1, "job_sha256": "", "env_sha256": ""}
    bad_function = {"run_id": run["run_id"], "task": 1}  # lacks required columns
    with pytest.raises(sqlite3.IntegrityError):
        store.write_run(RunRecord(run, functions=[bad_function], files=[("job", "x", "{}")]))
    assert store.completed() == set() and store.rows("SELECT * FROM files") == []
    store.write_run(RunRecord(run))
    assert store.completed() == {"x/ip/heft/cold/1"}
    store.close()


def test_generated_and_imported_jobs_load(tmp_path: Path) -> None:
    from sflow.experiment.jobs import job_document
    from sflow.jsonio import job_from_dict

    wf = REPO / "experiments" / "scale" / "montage-100.wfformat.json"
    spec = load_spec(spec_file(tmp_path, f'[matrix]\njobs = ["{wf}", {{random = {{tasks = 30, seed = 4, file_kb = 2}}}}]\n'))
    imported, generated = spec.jobs
    assert imported.wfcommons and generated.name == "random-30-s4"
    job = job_from_dict(job_document(imported))
    assert len(job.tasks) == 99 and all(t.cmd.startswith("sleep ") for t in job.tasks)
    assert "head -c" in job.by_id[job.order[0]].cmd  # it writes the files its successors read
    first, again = job_document(generated), job_document(generated)
    assert first == again  # seeded
    random_job = job_from_dict(first)
    assert len(random_job.tasks) == 30 and len(random_job.end_tasks) >= 1 and len(random_job.edges) >= 29 - len(random_job.start_tasks)
