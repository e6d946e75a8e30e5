"""Baseline: every task on the single fastest vCPU, in topological order.

The sequential reference of the speedup metric (Topcuoglu et al. 2002, §6: "sequential execution
time … assigning all tasks to a single processor that minimizes the cumulative computation costs").
"""

from __future__ import annotations

from sflow.model.schedule import Schedule
from sflow.sched.base import Scheduler, schedule_in_order
from sflow.sched.costs import fastest_processor
from sflow.sched.problem import Problem


class Fastest(Scheduler):
    name = "fastest"
    summary = "baseline: the whole job on the single fastest vCPU, in topological order"

    def schedule(self, problem: Problem) -> Schedule:
        k = fastest_processor(problem)
        return schedule_in_order(problem, self.name, list(problem.order), [k] * problem.n_tasks, insertion=False)
