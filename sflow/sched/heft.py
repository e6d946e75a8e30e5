"""HEFT: Heterogeneous Earliest Finish Time.

H. Topcuoglu, S. Hariri, M.-Y. Wu, "Performance-effective and low-complexity task scheduling for
heterogeneous computing", IEEE TPDS 13(3), 2002.

Tasks are taken by decreasing upward rank (mean execution and communication costs); each goes to
the processor giving the earliest finish time, searching idle gaps (insertion-based policy). Equal
ranks go to the lower task id; equal finish times to the lower processor index.

``heft-ready`` keeps the original SFlow's variant (reference §3.2): the same rank order taken from
a ready list, but tasks are only appended after a vCPU's last task (no gap search). Its defect —
ignoring data arrival when a vCPU holds one task — is not kept: data arrival is always respected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from sflow.model.schedule import Schedule
from sflow.sched.base import Scheduler, Timelines
from sflow.sched.costs import mean_comm, mean_upward_rank, rank_key, ready_list_order, upward_rank
from sflow.sched.problem import FloatArray, Problem


def eft_schedule(problem: Problem, rank: FloatArray, name: str, *, insertion: bool = True) -> Schedule:
    """Tasks by decreasing ``rank`` (ready list, ties to the lower id), each on the vCPU where it
    finishes first: HEFT's placement for any priority."""
    keys = [-r for r in rank_key(rank)]
    tl = Timelines(problem)
    tl.place_in_order(ready_list_order(problem, keys), insertion=insertion)
    return tl.to_schedule(name)


class Heft(Scheduler):
    name = "heft"
    summary = "HEFT (Topcuoglu et al. 2002): upward rank, insertion-based earliest finish time"
    insertion: ClassVar[bool] = True

    def schedule(self, problem: Problem) -> Schedule:
        return eft_schedule(problem, mean_upward_rank(problem), self.name, insertion=self.insertion)


class HeftReady(Heft):
    name = "heft-ready"
    summary = "the original's HEFT: ready list by upward rank, earliest finish without gap insertion"
    insertion = False


#: how a variant weighs a task: its mean, median, smallest or largest execution time over the vCPUs
_NODE_WEIGHTS = {
    "mean": lambda x: x.mean(axis=1),
    "median": lambda x: np.median(x, axis=1),
    "min": lambda x: x.min(axis=1),
    "max": lambda x: x.max(axis=1),
}


class HeftVariant(Scheduler):
    """HEFT with another upward rank: task weights by ``node`` (mean, median, min, max of the
    execution times) and edge weights scaled by ``comm`` (× the mean communication cost).

    H. Zhao, R. Sakellariou, "An experimental investigation into the rank function of the
    heterogeneous earliest finish time scheduling algorithm", Euro-Par 2003: which rank is best
    depends on the instance, by several percent either way; ``best`` tries a few.
    """

    summary = "HEFT with another upward rank (Zhao & Sakellariou 2003)"

    def __init__(self, node: str, comm: float) -> None:
        self.node = node
        self.comm = comm
        self.name = f"heft/{node}" if comm == 1.0 else f"heft/{node},comm×{comm:g}"  # type: ignore[misc]

    def rank(self, problem: Problem) -> FloatArray:
        return upward_rank(problem, _NODE_WEIGHTS[self.node](problem.exec_time), mean_comm(problem) * self.comm)

    def schedule(self, problem: Problem) -> Schedule:
        return eft_schedule(problem, self.rank(problem), self.name)


#: the variants ``best`` tries after the registered algorithms
RANK_VARIANTS: Sequence[tuple[str, float]] = (
    ("median", 1.0), ("min", 1.0), ("max", 1.0), ("mean", 0.0), ("mean", 0.5), ("mean", 2.0),
)
