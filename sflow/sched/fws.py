"""FWS: the original's scheduler no. 2 (reference §3.3).

Source: "Multi-objective scheduling of micro-services…", as the original's ``FWS_VNFAlgorithm``
(ncl-teu/ncl_sfcsim) cites it.

Priority: L = t-level + mean execution time (static, mean costs); the ready task with the largest L
goes first, then the smaller t-level, then the lower id. vCPU: the one with the largest remaining
capacity.

Reading taken: the original meant capacity to start full and shrink with each assigned workload,
but its vCPUs start at 0 (the constructor the loader uses never sets it), so it degenerates into
"one task per vCPU, last vCPU first" (§3.8.7). Here capacity is counted in time over a common
horizon, so remaining capacity = horizon − busy time already assigned: the vCPU with the least
assigned busy time wins, then the one that runs this task fastest, then the lower index. The task
then starts on it as early as its inputs' arrival and the vCPU's idle gaps allow.
"""

from __future__ import annotations

import numpy as np

from sflow.model.schedule import Schedule
from sflow.sched.base import Scheduler, Timelines
from sflow.sched.costs import mean_downward_rank, mean_exec, rank_key, ready_list_order
from sflow.sched.problem import Problem


class Fws(Scheduler):
    name = "fws"
    summary = "the original's FWS: largest t-level + work first, onto the least-loaded vCPU"

    def schedule(self, problem: Problem) -> Schedule:
        tlevel = mean_downward_rank(problem)
        big_l = rank_key(tlevel + mean_exec(problem))
        small_t = rank_key(tlevel)
        order = ready_list_order(problem, [(-a, b) for a, b in zip(big_l, small_t)])
        busy = np.zeros(problem.n_procs)
        tl = Timelines(problem)
        for i in order:
            dur = problem.exec_time[i]
            k = int(np.lexsort((dur, busy))[0])
            busy[k] += dur[k]
            tl.place_on(i, k, insertion=True)
        return tl.to_schedule(self.name)
