"""The summary table and the Gantt chart of a run's trace: at 80 columns nothing that matters
wraps, every mode fills its columns, cached results and transfers are drawn and explained."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib
import pytest
from rich.console import Console

from sflow.delegator.trace import TaskRun, Trace, TransferRun, chart_note, summary_table, trace_chart
from sflow.sched.gantt import CACHED, RUN, Bar, Transfer, draw_gantt

A, B = "127.0.0.1:41381", "127.0.0.1:42547"


def icn_trace() -> Trace:
    return Trace(102, "1d021b5c", "icn", "sf-cuv", 11.5, 12.53, (
        TaskRun(1, A, "0^0^0^0^0", 0.02, 10.09, "executed (native)", 0.0, 2.0),
        TaskRun(2, B, "0^1^0^0^1", 10.23, 12.35, "executed (docker:sflow-busybox-with-a-long-name)", 6.5, 10.5),
        TaskRun(3, B, "-", 0.16, 0.16, "cache hit (result store)", 2.0, 6.5),
        TaskRun(4, "-", "-", 0.0, 0.0, "not needed", 2.0, 7.0),
    ), (), ("out/x.txt",))


def auto_trace() -> Trace:
    return Trace(102, "6ffaa794", "auto", "autonomous", None, 0.45, (
        TaskRun(1, A, "0^0^0^0^0", 0.03, 0.06, "executed (native)"),
        TaskRun(2, B, "vCPU 3", 0.09, 0.14, "executed (native)"),
    ), (), ())


def ip_trace() -> Trace:
    return Trace(102, "e420f99b", "ip", "heft", 3.0, 2.5, (
        TaskRun(1, A, "v0", 0.0, 1.0, "native", 0.0, 1.0),
        TaskRun(2, B, "v1", 1.2, 2.5, "docker:sflow-busybox", 1.1, 3.0),
    ), (TransferRun(1, "out/a.txt", A, B, "v0", "v1", 10, 1.0, 1.15),), ())


def render(trace: Trace) -> list[str]:
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(summary_table(trace))
    return console.export_text().splitlines()


@pytest.mark.parametrize("trace", [icn_trace(), auto_trace(), ip_trace()], ids=["icn", "auto", "ip"])
def test_the_table_fits_80_columns_without_wrapping_a_row(trace: Trace) -> None:
    lines = render(trace)
    assert all(len(line) <= 80 for line in lines)
    rows = {line.split()[0]: line for line in lines if line.split() and line.split()[0].isdigit()}
    assert sorted(rows) == sorted(str(t.task) for t in trace.tasks)  # one line per function: nothing wrapped
    for t in trace.tasks:
        row = rows[str(t.task)]
        assert t.node in row  # the whole address, not cut
        if t.where in ("native", "executed (native)"):
            assert "executed (native)" in row


def test_each_mode_fills_its_columns() -> None:
    icn = {line.split()[0]: line for line in render(icn_trace()) if line[:3].strip().isdigit()}
    for task, predicted in ((1, "0.00–2.00"), (2, "6.50–10.50"), (3, "2.00–6.50"), (4, "2.00–7.00")):
        assert icn[str(task)].rstrip().endswith(predicted), icn[str(task)]
    assert "executed (docker)" in icn["2"] and "0.16" in icn["3"] and "cache hit (result store)" in icn["3"]
    auto = {line.split()[0]: line for line in render(auto_trace()) if line[:3].strip().isdigit()}
    assert "0^0^0^0^0" in auto["1"] and "vCPU 3" in auto["2"]
    assert not any("predicted" in line for line in render(auto_trace()))  # no prediction, no column
    assert "not needed: a result that depends on it came from a cache" in " ".join(render(icn_trace()))


def test_the_chart_has_node_vcpu_lanes_cached_markers_and_transfers_to_the_receiver() -> None:
    bars, transfers = trace_chart(icn_trace())
    assert [(b.group, b.lane, b.label, b.kind) for b in bars] == [
        (A, "0^0^0^0^0", "1", RUN), (B, "cache", "3", CACHED), (B, "0^1^0^0^1", "2", RUN)]
    assert bars[1].start == bars[1].finish == 0.16
    _, transfers = trace_chart(ip_trace())
    assert [(t.src_group, t.src_lane, t.dst_group, t.dst_lane, t.end) for t in transfers] == [(A, "v0", B, "v1", 1.15)]


def _svg_text(bars: list[Bar], transfers: list[Transfer], tmp_path: Path, **kwargs: Any) -> str:
    out = tmp_path / "chart.svg"
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text, to be read back
        draw_gantt(bars, transfers, out, **kwargs)
    return out.read_text()


def test_an_all_cached_run_says_so_and_keeps_a_real_time_axis(tmp_path: Path) -> None:
    trace = Trace(102, "9418cddf", "auto", "autonomous", None, 0.027, (
        TaskRun(6, A, "-", 0.0274, 0.0274, "cache hit (content store)"),
        *(TaskRun(t, "-", "-", 0.0, 0.0, "not needed") for t in range(1, 6)),
    ), (), ())
    bars, transfers = trace_chart(trace)
    svg = _svg_text(bars, transfers, tmp_path, group_label="node", empty_note=chart_note(trace), span=trace.makespan)
    assert "every result came from a cache: no function ran" in svg
    assert "6 (cached)" in svg and "result found in a cache" in svg
    # The time axis runs to the run's makespan (ticks in ms), not to 1e-9.
    assert "0.025" in svg and "1e\u22129" not in svg and "1e-9" not in svg


def test_a_chart_with_runs_and_transfers_has_a_legend(tmp_path: Path) -> None:
    bars, transfers = trace_chart(ip_trace())
    svg = _svg_text(bars, transfers, tmp_path, group_label="node")
    assert "function run (colour: its node)" in svg
    assert "file transfer (until the receiver has it)" in svg
    assert "no function ran" not in svg
