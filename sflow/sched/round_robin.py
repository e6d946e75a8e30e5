"""Baseline: the k-th task in topological order goes to vCPU k mod m.

A placement-blind reference point (no paper: the classic round-robin dispatcher); each task starts
when its inputs have arrived and its vCPU is free.
"""

from __future__ import annotations

from sflow.model.schedule import Schedule
from sflow.sched.base import Scheduler, schedule_in_order
from sflow.sched.problem import Problem


class RoundRobin(Scheduler):
    name = "round-robin"
    summary = "baseline: tasks in topological order dealt to vCPUs in turn"

    def schedule(self, problem: Problem) -> Schedule:
        m = problem.n_procs
        procs = [0] * problem.n_tasks
        for pos, i in enumerate(problem.order):
            procs[i] = pos % m
        return schedule_in_order(problem, self.name, list(problem.order), procs, insertion=False)
