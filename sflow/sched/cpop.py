"""CPOP: Critical Path On a Processor.

H. Topcuoglu, S. Hariri, M.-Y. Wu, "Performance-effective and low-complexity task scheduling for
heterogeneous computing", IEEE TPDS 13(3), 2002.

Priority = upward rank + downward rank (mean costs). The critical path starts at the entry task
with the largest priority and follows, from each critical task, the successor whose priority equals
|CP| (lowest task id first). The critical-path processor minimises the summed execution time of the
critical tasks. The ready task with the largest priority goes to the critical-path processor if it
is critical, else to the processor with the earliest finish; both use the insertion policy.
"""

from __future__ import annotations

import numpy as np

from sflow.model.schedule import Schedule
from sflow.sched.base import Scheduler, Timelines
from sflow.sched.costs import mean_downward_rank, mean_upward_rank, rank_key, ready_list_order
from sflow.sched.problem import Problem


class Cpop(Scheduler):
    name = "cpop"
    summary = "CPOP (Topcuoglu et al. 2002): critical path on one processor, others by earliest finish"

    def schedule(self, problem: Problem) -> Schedule:
        prio = rank_key(mean_upward_rank(problem) + mean_downward_rank(problem))
        entries = [i for i in range(problem.n_tasks) if not problem.preds[i]]
        cp_len = max(prio[i] for i in entries)
        critical: list[int] = []
        cur: int | None = min(i for i in entries if prio[i] == cp_len)
        while cur is not None:
            critical.append(cur)
            cur = min((s for s, _ in problem.succs[cur] if prio[s] == cp_len), default=None)
        cp_proc = int(np.argmin(problem.exec_time[critical].sum(axis=0)))
        tl = Timelines(problem)
        tl.place_in_order(ready_list_order(problem, [-p for p in prio]), insertion=True,
                          fixed=dict.fromkeys(critical, cp_proc))
        return tl.to_schedule(self.name)
