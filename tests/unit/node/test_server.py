"""The node service with a fake executor, driven over an authenticated channel pair."""

from __future__ import annotations

from pathlib import Path

from node_fakes import SECRET, FakeExecutor, Pipe, RecordingHandler, SilentPeer
from twisted.internet.task import Clock

from sflow.config import Config
from sflow.delegator.plan import TaskPlacement, build_plan
from sflow.model import Job, OutFile, Task, TaskId
from sflow.model.infra import VcpuId
from sflow.node.channel import Channel
from sflow.node.plan import plan_to_wire
from sflow.node.protocol import PROTOCOL_VERSION, encode
from sflow.node.server import NodeService

T = TaskId
NODE = "127.0.0.1:7001"


def make_service(tmp_path: Path) -> tuple[NodeService, FakeExecutor, Clock]:
    clock = Clock()
    executor = FakeExecutor()
    service = NodeService(clock, Config(), SECRET, executor, tmp_path / "work", vcpus=2, cpu_count=2)
    service.name = NODE
    return service, executor, clock


def connect_delegator(service: NodeService, clock: Clock, root: Path) -> tuple[Channel, RecordingHandler, Pipe]:
    handler = RecordingHandler(root)
    client = Channel("client", SECRET, handler, clock, "delegator")
    pipe = Pipe(client, service._accept())
    pipe.pump()
    assert client.ready.called
    return client, handler, pipe


def two_step_job() -> Job:
    return Job(
        7,
        (
            Task(T(1), 1.0, "echo a > a.txt", out_files=(OutFile("a.txt", 1, (T(2),)),)),
            Task(T(2), 1.0, "cat $F^1 > out/b.txt", out_files=(OutFile("./out/b.txt", 1, ()),)),
        ),
    )


def plan_for(job: Job) -> dict[str, object]:
    placements = {t.id: TaskPlacement(NODE, VcpuId("v0"), 0) for t in job.tasks}
    plan = build_plan(job, placements, job.order, "r1")
    return plan_to_wire(plan.nodes[NODE])


def started_two_step_job(tmp_path: Path) -> tuple[NodeService, FakeExecutor, Channel, RecordingHandler, Pipe]:
    """A service whose delegator has sent :func:`two_step_job` (as job ``7-r1``) and started it."""
    service, executor, clock = make_service(tmp_path)
    client, handler, pipe = connect_delegator(service, clock, tmp_path / "outdir")
    client.send("job", job="7-r1", plan=plan_for(two_step_job()))
    client.send("start", job="7-r1")
    pipe.pump()
    return service, executor, client, handler, pipe


def messages(handler: RecordingHandler, kind: str) -> list[dict[str, object]]:
    return [dict(m) for m in handler.messages if m["t"] == kind]


def test_job_runs_in_order_and_returns_results(tmp_path: Path) -> None:
    service, executor, clock = make_service(tmp_path)
    client, handler, pipe = connect_delegator(service, clock, tmp_path / "outdir")
    client.send("job", job="7-r1", plan=plan_for(two_step_job()))
    pipe.pump()
    assert messages(handler, "accepted") == [{"v": PROTOCOL_VERSION, "t": "accepted", "job": "7-r1"}]
    client.send("start", job="7-r1")
    pipe.pump()
    assert [r.task_id for r in executor.requests] == [1]
    root = tmp_path / "work/7-r1"
    (root / "a.txt").write_text("a\n")
    executor.finish(1)
    pipe.pump()
    second = executor.requests[1]
    assert second.task_id == 2 and second.files == {1: "a.txt"} and second.outputs == ("out/b.txt",)
    assert (root / "out").is_dir()  # output directories exist before the function runs
    (root / "out/b.txt").write_text("b\n")
    executor.finish(2)
    pipe.pump(100000)
    assert [m["task"] for m in messages(handler, "done")] == [1, 2]
    assert (tmp_path / "outdir/out/b.txt").read_text() == "b\n"
    assert service.status()["counters"]["functions_started"] == 2
    client.send("end_job", job="7-r1", keep=False)
    pipe.pump()
    assert not root.exists() and service.jobs == {}


def test_failure_is_reported_with_status_and_stderr(tmp_path: Path) -> None:
    service, executor, client, handler, pipe = started_two_step_job(tmp_path)
    executor.finish(1, ok=False, exit_status=3, stderr="boom\n")
    pipe.pump()
    (failed,) = messages(handler, "failed")
    assert failed["task"] == 1 and failed["exit_status"] == 3 and failed["stderr_tail"] == "boom\n"
    assert len(executor.requests) == 1  # the successor never starts
    assert service.status()["counters"]["functions_failed"] == 1


def test_unauthenticated_client_starts_nothing(tmp_path: Path) -> None:
    service, executor, clock = make_service(tmp_path)
    pipe = Pipe(SilentPeer(), service._accept())
    pipe.lt.write(encode("job", {"job": "7-r1", "plan": plan_for(two_step_job())}))
    pipe.lt.write(encode("start", {"job": "7-r1"}))
    pipe.pump()
    assert executor.requests == [] and service.jobs == {}
    assert service.counters["rejected"] == 1 and service.counters["functions_started"] == 0
    assert not (tmp_path / "work/7-r1").exists()


def test_traversal_path_in_a_plan_is_rejected(tmp_path: Path) -> None:
    service, executor, clock = make_service(tmp_path)
    client, handler, pipe = connect_delegator(service, clock, tmp_path / "outdir")
    plan = plan_for(two_step_job())
    plan["tasks"][1]["outputs"][0][0] = "../../escape.txt"  # type: ignore[index]
    client.send("job", job="7-r1", plan=plan)
    pipe.pump()
    (rejected,) = messages(handler, "rejected")
    assert "escapes the job directory" in str(rejected["reason"])
    assert service.jobs == {} and not (tmp_path / "work/7-r1").exists()


def test_a_lost_delegator_cancels_its_job(tmp_path: Path) -> None:
    service, executor, client, handler, pipe = started_two_step_job(tmp_path)
    client.close()
    pipe.pump()
    assert executor.cancelled == ["7-r1"] and service.jobs == {}
    executor.finish(1)  # the cancelled function's late result is ignored
    assert service.counters["functions_ok"] == 0


def test_a_file_that_lands_while_its_dropped_jobs_directory_is_removed_is_removed_too(tmp_path: Path) -> None:
    """A file from a peer renamed into place while the node removes the directory of the job its
    delegator abandoned (the removal ignores what it cannot remove) leaves nothing behind."""
    service, executor, client, handler, pipe = started_two_step_job(tmp_path)
    root = service.jobs["7-r1"].root
    client.close()
    pipe.pump()
    assert service.jobs == {} and not root.exists()
    landed = root / "in" / "a.txt"  # renamed into place by the disk thread after the removal
    landed.parent.mkdir(parents=True)
    landed.write_text("a\n")
    service.file_received(client, {"job": "7-r1", "task": 1, "path": "in/a.txt", "size": 2}, landed)
    assert not root.exists() and service.workdir.exists()
    assert service.counters["files_received"] == 1


def test_only_the_jobs_delegator_may_control_it(tmp_path: Path) -> None:
    service, executor, clock = make_service(tmp_path)
    client, handler, pipe = connect_delegator(service, clock, tmp_path / "outdir")
    client.send("job", job="7-r1", plan=plan_for(two_step_job()))
    pipe.pump()
    other, other_handler, other_pipe = connect_delegator(service, clock, tmp_path / "o2")
    other.send("start", job="7-r1")
    other_pipe.pump()
    assert executor.requests == [] and other.closed
    assert "only the delegator" in other_handler.closed[0][0]
    assert "7-r1" in service.jobs  # the job and its delegator are unaffected


def test_status_reply(tmp_path: Path) -> None:
    service, executor, clock = make_service(tmp_path)
    client, handler, pipe = connect_delegator(service, clock, tmp_path / "outdir")
    clock.advance(5)
    client.send("status")
    pipe.pump()
    (reply,) = messages(handler, "status_reply")
    assert reply["node"] == NODE and reply["vcpus"] == 2 and reply["uptime"] == 5 and reply["running"] == []


def test_shutdown_kills_and_reports_nothing(tmp_path: Path) -> None:
    service, executor, client, handler, pipe = started_two_step_job(tmp_path)
    service.shutdown()
    executor.finish(1)
    pipe.pump()
    assert executor.stopped and messages(handler, "done") == []
    assert not (tmp_path / "work/7-r1").exists()


def test_an_output_that_is_a_symlink_is_not_sent(tmp_path: Path) -> None:
    service, executor, client, handler, pipe = started_two_step_job(tmp_path)
    root = tmp_path / "work/7-r1"
    (root / "a.txt").write_text("a\n")
    executor.finish(1)
    pipe.pump()
    (tmp_path / "private").write_text("not yours\n")
    (root / "out/b.txt").symlink_to(tmp_path / "private")
    executor.finish(2)
    pipe.pump(1000)
    (error,) = messages(handler, "job_error")
    assert "symbolic link" in str(error["reason"])
    assert not (tmp_path / "outdir/out/b.txt").exists()


def test_the_executor_gets_the_real_job_id_and_the_run_as_what_cancel_names(tmp_path: Path) -> None:
    # $R^ inputs are fetched from <root>/<job id>/: the job id must be the job's, not a node counter.
    service, executor, client, handler, pipe = started_two_step_job(tmp_path)
    (request,) = executor.requests
    assert (request.job_id, request.run) == (7, "7-r1")


def test_two_jobs_never_run_functions_on_one_vcpu_at_once(tmp_path: Path) -> None:
    service, executor, clock = make_service(tmp_path)
    client, handler, pipe = connect_delegator(service, clock, tmp_path / "outdir")
    other = Job(8, (Task(T(5), 1.0, "echo z > z.txt", out_files=(OutFile("z.txt", 1, ()),)),))
    client.send("job", job="7-r1", plan=plan_for(two_step_job()))
    client.send("job", job="8-r1", plan=plan_for(other))
    client.send("start", job="7-r1")
    client.send("start", job="8-r1")
    pipe.pump()
    # Both jobs put their functions on vCPU v0: job 8's waits until job 7's first function ends.
    assert [r.task_id for r in executor.requests] == [1]
    (tmp_path / "work/7-r1/a.txt").write_text("a\n")
    executor.finish(1)
    pipe.pump()
    assert [r.task_id for r in executor.requests] == [1, 5]
    (tmp_path / "work/8-r1/z.txt").write_text("z\n")
    executor.finish(5)
    pipe.pump()
    assert [r.task_id for r in executor.requests] == [1, 5, 2]
