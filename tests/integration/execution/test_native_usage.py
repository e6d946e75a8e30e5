"""A native function's CPU time and peak memory, as the node measures them with wait4 when it reaps the shell, reach its
result and the executor's record of recent functions (what a node's status reports)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from sflow.node.execution import Executor

from .conftest import request, run

Make = Callable[..., Executor]


def test_cpu_time_and_peak_memory_of_a_function(make_executor: Make, tmp_path: Path) -> None:
    executor = make_executor()
    hog = f"{sys.executable} -c 'b = bytearray(80_000_000); n = sum(range(3_000_000))'"
    result = run(executor, request(tmp_path, hog))
    assert result.ok, result
    assert result.max_rss_kb is not None and result.max_rss_kb >= 78_000
    assert result.cpu_s is not None and 0.01 < result.cpu_s < 60
    failed = run(executor, request(tmp_path, "exit 4"))
    assert failed.exit_status == 4 and failed.cpu_s is not None  # measured whatever the outcome
    (first, second) = executor.recent_usage()
    assert (first["task"], first["max_rss_kb"], first["where"]) == (1, result.max_rss_kb, "native")
    assert second["cpu_s"] == failed.cpu_s
