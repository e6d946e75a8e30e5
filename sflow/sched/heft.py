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

from typing import ClassVar

from sflow.model.schedule import Schedule
from sflow.sched.base import Scheduler, Timelines
from sflow.sched.costs import mean_upward_rank, rank_key, ready_list_order
from sflow.sched.problem import Problem


class Heft(Scheduler):
    name = "heft"
    summary = "HEFT (Topcuoglu et al. 2002): upward rank, insertion-based earliest finish time"
    insertion: ClassVar[bool] = True

    def schedule(self, problem: Problem) -> Schedule:
        keys = [-r for r in rank_key(mean_upward_rank(problem))]
        tl = Timelines(problem)
        for i in ready_list_order(problem, keys):
            k, start = tl.best(i, insertion=self.insertion)
            tl.place(i, k, start)
        return tl.to_schedule(self.name)


class HeftReady(Heft):
    name = "heft-ready"
    summary = "the original's HEFT: ready list by upward rank, earliest finish without gap insertion"
    insertion = False
