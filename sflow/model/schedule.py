"""A schedule: where (which vCPU) and when (start, finish in seconds) every function runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from sflow.model.infra import Address, VcpuId, VmId
from sflow.model.workflow import TaskId


@dataclass(frozen=True, slots=True)
class Slot:
    task: TaskId
    vcpu: VcpuId
    start: float
    finish: float


@dataclass(frozen=True, slots=True)
class Schedule:
    """The output of a scheduler (or the ``schedule`` object of a mapping file)."""

    algorithm: str
    slots: Mapping[TaskId, Slot]

    @property
    def makespan(self) -> float:
        """The latest finish time of any function (the END functions' finish, not their predecessors')."""
        return max((s.finish for s in self.slots.values()), default=0.0)

    def vcpu_of(self, task: TaskId) -> VcpuId:
        return self.slots[task].vcpu

    def columns(self) -> ScheduleColumns:
        """The schedule as a few flat lists (what :meth:`from_columns` takes back): cheap to
        pickle, where the slots one by one are not (a tenth of the time for 100,000 tasks)."""
        slots = self.slots.values()
        vcpus = list(dict.fromkeys(s.vcpu for s in slots))
        index = {v: i for i, v in enumerate(vcpus)}
        return ScheduleColumns(self.algorithm, vcpus, list(self.slots), [index[s.vcpu] for s in slots],
                               [s.start for s in slots], [s.finish for s in slots])

    @classmethod
    def from_columns(cls, c: ScheduleColumns) -> Schedule:
        vcpus = c.vcpus
        return cls(c.algorithm, {t: Slot(t, vcpus[k], start, finish)
                                 for t, k, start, finish in zip(c.tasks, c.vcpu_index, c.start, c.finish)})


class ScheduleColumns(NamedTuple):
    """A :class:`Schedule` as flat lists, one entry per task (in the order of its slots)."""

    algorithm: str
    vcpus: list[VcpuId]  # each vCPU used, once
    tasks: list[TaskId]
    vcpu_index: list[int]  # the task's vCPU, as a place in ``vcpus``
    start: list[float]
    finish: list[float]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a function runs, as a mapping file records it: the VM's address, the VM and the vCPU."""

    address: Address
    vm_id: VmId
    vcpu_id: VcpuId
