"""The environment: data centres → hosts → CPUs → cores → vCPUs, and VMs that own vCPUs.

Units follow the original SFlow: ``mips`` in millions of instructions per second, bandwidth ``bw``
in MB/s. A vCPU's identity is its id string (for example ``0^0^0^1^0``); its place in the hierarchy
comes from where it is declared, never from parsing the id, so ids need not match list positions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NewType

VcpuId = NewType("VcpuId", str)
VmId = NewType("VmId", str)
HostId = NewType("HostId", str)


@dataclass(frozen=True, slots=True)
class Address:
    """Where a node listens: a host name or IP and an optional port (None: the configured default)."""

    host: str
    port: int | None = None

    def __str__(self) -> str:
        if self.port is None:
            return self.host
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Vcpu:
    id: VcpuId
    mips: float
    host_id: HostId
    dc_id: int
    cpu_id: str
    core_id: str


@dataclass(frozen=True, slots=True)
class Core:
    id: str
    mips: float | None
    maxusage: float
    vcpus: tuple[Vcpu, ...]


@dataclass(frozen=True, slots=True)
class Cpu:
    id: str
    mips: float
    cores: tuple[Core, ...]


@dataclass(frozen=True, slots=True)
class Vm:
    id: VmId
    address: Address
    ram: float
    vcpus: tuple[VcpuId, ...]
    host_id: HostId


@dataclass(frozen=True, slots=True)
class Host:
    id: HostId
    name: str
    ip: str
    bw: float
    ram: float
    cpus: tuple[Cpu, ...]
    vms: tuple[Vm, ...]


@dataclass(frozen=True, slots=True)
class DataCentre:
    id: int
    bw: float
    hosts: tuple[Host, ...]


@dataclass(frozen=True, slots=True)
class Environment:
    """The whole infrastructure, with lookup tables derived once at construction.

    ``vcpus`` holds every vCPU in declaration order; ``schedulable`` only those owned by a VM
    (a vCPU that belongs to no VM has no address to run on, so it is never scheduled).
    """

    dcs: tuple[DataCentre, ...]
    warnings: tuple[str, ...] = field(default=(), compare=False)
    vcpus: Mapping[VcpuId, Vcpu] = field(init=False, repr=False, compare=False)
    vms: Mapping[VmId, Vm] = field(init=False, repr=False, compare=False)
    hosts: Mapping[HostId, Host] = field(init=False, repr=False, compare=False)
    vm_of_vcpu: Mapping[VcpuId, VmId] = field(init=False, repr=False, compare=False)
    _dc_bw: Mapping[int, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        vcpus: dict[VcpuId, Vcpu] = {}
        vms: dict[VmId, Vm] = {}
        hosts: dict[HostId, Host] = {}
        owner: dict[VcpuId, VmId] = {}
        for dc in self.dcs:
            for host in dc.hosts:
                hosts[host.id] = host
                for cpu in host.cpus:
                    for core in cpu.cores:
                        for vcpu in core.vcpus:
                            vcpus[vcpu.id] = vcpu
                for vm in host.vms:
                    vms[vm.id] = vm
                    for vid in vm.vcpus:
                        owner[vid] = vm.id
        object.__setattr__(self, "vcpus", vcpus)
        object.__setattr__(self, "vms", vms)
        object.__setattr__(self, "hosts", hosts)
        object.__setattr__(self, "vm_of_vcpu", owner)
        object.__setattr__(self, "_dc_bw", {dc.id: dc.bw for dc in self.dcs})

    # -- queries ---------------------------------------------------------------------------------

    @property
    def schedulable(self) -> tuple[Vcpu, ...]:
        """vCPUs that belong to a VM, in declaration order."""
        return tuple(v for v in self.vcpus.values() if v.id in self.vm_of_vcpu)

    @property
    def orphan_vcpus(self) -> tuple[VcpuId, ...]:
        """vCPUs that belong to no VM: reported by ``validate``, never scheduled."""
        return tuple(v for v in self.vcpus if v not in self.vm_of_vcpu)

    def vm_for(self, vcpu: VcpuId) -> Vm:
        return self.vms[self.vm_of_vcpu[vcpu]]

    def host_of(self, vcpu: VcpuId) -> Host:
        return self.hosts[self.vcpus[vcpu].host_id]

    def bandwidth(self, a: VcpuId, b: VcpuId) -> float:
        """Bandwidth in MB/s between two vCPUs: infinite on one host; the smaller host NIC within a DC;
        across DCs the smallest of both DCs' external and both hosts' bandwidths."""
        va, vb = self.vcpus[a], self.vcpus[b]
        if va.host_id == vb.host_id:
            return math.inf
        host_bw = min(self.hosts[va.host_id].bw, self.hosts[vb.host_id].bw)
        if va.dc_id == vb.dc_id:
            return host_bw
        return min(host_bw, self._dc_bw[va.dc_id], self._dc_bw[vb.dc_id])

    def transfer_time(self, size: float, a: VcpuId, b: VcpuId) -> float:
        """Seconds to move ``size`` MB from vCPU ``a`` to vCPU ``b`` (0 on the same host)."""
        bw = self.bandwidth(a, b)
        if size <= 0 or math.isinf(bw):
            return 0.0
        return size / bw

    def iter_hosts(self) -> Iterator[tuple[DataCentre, Host]]:
        for dc in self.dcs:
            for host in dc.hosts:
                yield dc, host

