"""Merging per-host logs into one timeline."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from sflow.cluster.timeline import line_time, merge_logs


def test_timestamps_of_sflow_and_of_the_original() -> None:
    assert line_time("2026-11-21T21:46:33.794 INFO x") == datetime(2026, 11, 21, 21, 46, 33, 794000)
    assert line_time("2026-11-21 21:46:33,5 INFO x") == datetime(2026, 11, 21, 21, 46, 33, 500000)
    assert line_time("2019/05/01 10:00:00.001: started") == datetime(2019, 5, 1, 10, 0, 0, 1000)
    assert line_time("2026-13-40T99:00:00 bad") is None
    assert line_time("  File \"x.py\", line 3") is None


def test_untimed_lines_stay_with_their_record_and_ties_keep_host_order() -> None:
    a = ["2026-01-01T00:00:01 a1", "2026-01-01T00:00:03 a2"]
    b = ["2026-01-01T00:00:01 b1", "Traceback (most recent call last):", "2026-01-01T00:00:02 b2"]
    assert list(merge_logs([("a", a), ("bb", b)])) == [
        "a  | 2026-01-01T00:00:01 a1",
        "bb | 2026-01-01T00:00:01 b1",
        "bb | Traceback (most recent call last):",
        "bb | 2026-01-01T00:00:02 b2",
        "a  | 2026-01-01T00:00:03 a2",
    ]


@given(st.lists(st.lists(st.integers(min_value=0, max_value=59), max_size=8).map(sorted), max_size=4))
def test_merge_keeps_every_line_in_time_order(seconds: list[list[int]]) -> None:
    logs = [(f"h{i}", [f"2026-01-01T00:00:{s:02d} h{i}-{n}" for n, s in enumerate(host)]) for i, host in enumerate(seconds)]
    merged = list(merge_logs(logs))
    assert len(merged) == sum(len(h) for h in seconds)
    times = [line_time(line.split(" | ", 1)[1]) for line in merged]
    assert times == sorted(times)  # type: ignore[type-var]
    for host, lines in logs:
        assert [m.split(" | ", 1)[1] for m in merged if m.split(" | ", 1)[0].strip() == host] == lines
