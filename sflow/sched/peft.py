"""PEFT: Predict Earliest Finish Time.

H. Arabnejad, J. G. Barbosa, "List scheduling algorithm for heterogeneous systems by an optimistic
cost table", IEEE TPDS 25(3), 2014.

The optimistic cost table OCT(t, p) (0 for exit tasks) gives rank_oct(t), the mean of OCT over the
processors. The ready task with the largest rank_oct is placed on the processor minimising
O_EFT = EFT + OCT (insertion-based EFT); the recorded finish is the real EFT. Equal ranks go to the
lower task id, equal O_EFT to the lower processor index.

Fixes over the original (reference §3.6, §3.8.6): OCT(exit) = 0, not its execution time, and the
stored finish is the real finish, not the optimistic O_EFT.
"""

from __future__ import annotations

from sflow.model.schedule import Schedule
from sflow.sched.base import Scheduler, Timelines
from sflow.sched.costs import oct_table, rank_key, ready_list_order
from sflow.sched.problem import Problem


class Peft(Scheduler):
    name = "peft"
    summary = "PEFT (Arabnejad & Barbosa 2014): optimistic cost table, O_EFT selection"

    def schedule(self, problem: Problem) -> Schedule:
        table = oct_table(problem)
        keys = [-r for r in rank_key(table.mean(axis=1))]
        tl = Timelines(problem)
        tl.place_in_order(ready_list_order(problem, keys), insertion=True, bias=table)
        return tl.to_schedule(self.name)
