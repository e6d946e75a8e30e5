"""From a schedule to node placements, for the first plan of a job and for re-planning part of it
on the nodes still alive (pure: the scheduler is given).

A vCPU of the environment is placed on the node at its VM's address; re-planning schedules the
functions to run again on an environment cut down to the VMs of the live nodes, through the same
:class:`~sflow.sched.problem.Problem` and scheduler as the first plan.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING

from sflow.config import Config, parse_host_port
from sflow.delegator.plan import TaskPlacement
from sflow.errors import ScheduleError
from sflow.model.infra import Address, Environment, VcpuId
from sflow.model.workflow import Job, TaskId

if TYPE_CHECKING:
    from sflow.model.costs import MeasuredCosts
    from sflow.model.schedule import Schedule
    from sflow.sched.base import Scheduler


def node_address(address: Address, config: Config) -> str:
    """``host:port`` of a node; an address without a port uses the port of ``node.listen``."""
    port = address.port if address.port is not None else parse_host_port(config.node.listen, "node.listen")[1]
    return str(Address(address.host, port))


def cpu_indexes(env: Environment) -> dict[VcpuId, int]:
    """Each vCPU's position among its host's vCPUs, in declaration order."""
    out: dict[VcpuId, int] = {}
    seen: Counter[str] = Counter()
    for v in env.vcpus.values():  # in declaration order
        out[v.id] = seen[v.host_id]
        seen[v.host_id] += 1
    return out


def placements_of(env: Environment, schedule: Schedule, config: Config,
                  index: Mapping[VcpuId, int] | None = None) -> dict[TaskId, TaskPlacement]:
    """Each scheduled function's node and vCPU (with the vCPU's position on its host)."""
    index = cpu_indexes(env) if index is None else index
    return {tid: TaskPlacement(node_address(env.vm_for(slot.vcpu).address, config), slot.vcpu, index.get(slot.vcpu, 0))
            for tid, slot in schedule.slots.items()}


def among(env: Environment, nodes: Collection[str], config: Config) -> Environment:
    """``env`` with only the VMs of ``nodes`` (the other VMs' vCPUs are no longer schedulable)."""
    dcs = []
    for dc in env.dcs:
        hosts = tuple(dataclasses.replace(h, vms=tuple(vm for vm in h.vms if node_address(vm.address, config) in nodes))
                      for h in dc.hosts)
        dcs.append(dataclasses.replace(dc, hosts=hosts))
    return Environment(tuple(dcs))


def replacer(env: Environment, scheduler: Scheduler, config: Config, name: str,
             costs: MeasuredCosts | None = None) -> Callable[[Job, frozenset[str]], Mapping[TaskId, TaskPlacement]]:
    """A :data:`~sflow.delegator.recovery.Placer`: schedule a (sub-)job on the VMs of the given live
    nodes with ``scheduler``, as the first plan was."""
    index = cpu_indexes(env)

    def place(job: Job, alive: frozenset[str]) -> Mapping[TaskId, TaskPlacement]:
        from sflow.sched.problem import Problem

        live = among(env, alive, config)
        if not live.schedulable:
            raise ScheduleError(f"{name}: no VM of the environment is on a live node ({', '.join(sorted(alive))})")
        schedule = scheduler.schedule(Problem.from_env_job(live, job, name=name, costs=costs))
        return placements_of(live, schedule, config, index)

    return place
