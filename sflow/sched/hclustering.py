"""HClustering: hierarchical, level-based clustering — the original's scheduler no. 4 (reference §3.5).

Source: ncl-teu/ncl_sfcsim ``HierarchicalVNFClusteringAlgorithm``, whose class comment describes
grouping tasks by DAG level and ranking VMs by weighted capacity; its code implemented neither
(a positional mapping that crashed when tasks outnumbered vCPUs, §3.8.9). This module implements
the description:

1. Level of a task = the number of edges on the longest path from a START task to it; tasks of one
   level never depend on each other.
2. VMs are ranked by total capacity (the sum of their vCPUs' speeds), largest first, ties in
   declaration order; the vCPU list P concatenates each VM's vCPUs, fastest first.
3. Level by level, the level's tasks (largest mean execution time first, then lower id) are placed
   greedily on the vCPU of P that finishes the level's work soonest (largest-processing-time first
   over the level's load; earlier in P on a tie). The tasks of a level on one VM form that level's
   cluster. Any number of tasks fits: vCPUs are shared when tasks outnumber them.
4. List scheduling, level by level in the same order, each task on its vCPU at the earliest start
   its inputs' arrival and the vCPU's idle gaps allow.
"""

from __future__ import annotations

import numpy as np

from sflow.model.schedule import Schedule
from sflow.sched.base import Scheduler, schedule_in_order
from sflow.sched.costs import mean_exec
from sflow.sched.problem import Problem


class HClustering(Scheduler):
    name = "hclustering"
    summary = "the original's HClustering: tasks by DAG level, VMs by total capacity, greedy per level"

    def schedule(self, problem: Problem) -> Schedule:
        depth = [0] * problem.n_tasks
        for i in problem.order:
            depth[i] = max((depth[p] + 1 for p, _ in problem.preds[i]), default=0)
        ranked = self._ranked_vcpus(problem)
        exec_ranked = problem.exec_time[:, ranked]
        wbar = mean_exec(problem).tolist()
        levels: dict[int, list[int]] = {}
        for i in sorted(range(problem.n_tasks), key=lambda i: (-wbar[i], i)):
            levels.setdefault(depth[i], []).append(i)
        procs = [0] * problem.n_tasks
        order: list[int] = []
        for lvl in sorted(levels):
            load = np.zeros(len(ranked))
            for i in levels[lvl]:
                j = int(np.argmin(load + exec_ranked[i]))
                load[j] += exec_ranked[i, j]
                procs[i] = ranked[j]
                order.append(i)
        return schedule_in_order(problem, self.name, order, procs, insertion=True)

    @staticmethod
    def _ranked_vcpus(problem: Problem) -> list[int]:
        vms: dict[str, list[int]] = {}
        for k, vm in enumerate(problem.vms):
            vms.setdefault(vm, []).append(k)
        speed = problem.speed.tolist()
        ranked_vms = sorted(vms.values(), key=lambda ks: -sum(speed[k] for k in ks))
        return [k for ks in ranked_vms for k in sorted(ks, key=lambda k: -speed[k])]
