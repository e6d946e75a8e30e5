"""A schedule: where (which vCPU) and when (start, finish in seconds) every function runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a function runs, as a mapping file records it: the VM's address, the VM and the vCPU."""

    address: Address
    vm_id: VmId
    vcpu_id: VcpuId
