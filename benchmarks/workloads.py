"""Jobs the benchmarks share."""

from __future__ import annotations

from sflow.model import Job, OutValue, Task, TaskId


def noop_chain(n: int) -> Job:
    """``n`` no-op (``true``) functions in a chain; a ``$V^`` value carries each dependency."""
    tasks = [
        Task(TaskId(i), 1.0, "true", out_value=OutValue("x", 0.0, (TaskId(i + 1),)) if i < n else None)
        for i in range(1, n + 1)
    ]
    return Job(1, tuple(tasks))


def fork_join(n: int) -> Job:
    """One START, ``n - 2`` parallel no-op functions, one join (values carry the dependencies).
    The middle functions' commands differ (``true 2``, ``true 3``…): in ICN modes identical
    computations have one name and would run once."""
    middle = range(2, n)
    tasks = [Task(TaskId(1), 1.0, "true", out_value=OutValue("go", 0.0, tuple(TaskId(i) for i in middle)))]
    tasks += [Task(TaskId(i), 1.0, f"true {i}", out_value=OutValue("ok", 0.0, (TaskId(n),))) for i in middle]
    tasks.append(Task(TaskId(n), 1.0, "true"))
    return Job(2, tuple(tasks))
