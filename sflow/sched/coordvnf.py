"""CoordVNF: the original's "Scalable and coordinated allocation of SFCs" scheduler (reference §3.4).

Source: "Scalable and coordinated allocation of SFCs", as the original's ``CoordVNFAlgorithm``
(ncl-teu/ncl_sfcsim) cites it; it places each function at random among candidate vCPUs.

The ready task with the smallest t-level (mean costs) goes first, ties to the lower id. Its vCPU is
drawn uniformly at random from the vCPUs on the hosts of its predecessors — the "same host as the
predecessors" set the original computed but never used, which is what makes the allocation
coordinated (its inputs travel for free) — or from all vCPUs for a START task. The draw comes from
a :class:`random.Random` seeded by ``seed``, so a run is reproducible (the original was not, §3.8.8).
"""

from __future__ import annotations

import random

from sflow.model.schedule import Schedule
from sflow.sched.base import Scheduler, Timelines
from sflow.sched.costs import mean_downward_rank, rank_key, ready_list_order
from sflow.sched.problem import Problem

DEFAULT_SEED = 1


class CoordVnf(Scheduler):
    name = "coordvnf"
    summary = "the original's CoordVNF: smallest t-level first, random vCPU near its inputs (seeded)"

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        self.seed = seed

    def schedule(self, problem: Problem) -> Schedule:
        rng = random.Random(self.seed)
        by_host: dict[str, list[int]] = {}
        for k, h in enumerate(problem.hosts):
            by_host.setdefault(h, []).append(k)
        everything = list(range(problem.n_procs))
        tl = Timelines(problem)
        for i in ready_list_order(problem, rank_key(mean_downward_rank(problem))):
            hosts = sorted({problem.hosts[tl.proc[p]] for p, _ in problem.preds[i]})
            candidates = [k for h in hosts for k in by_host[h]] if hosts else everything
            tl.place_on(i, candidates[rng.randrange(len(candidates))], insertion=True)
        return tl.to_schedule(self.name)
