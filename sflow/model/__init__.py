"""Pure value models: the environment (infrastructure) and the workflow job."""

from sflow.model.infra import (
    Address,
    Core,
    Cpu,
    DataCentre,
    Environment,
    Host,
    Vcpu,
    VcpuId,
    Vm,
    VmId,
)
from sflow.model.workflow import Edge, Job, OutFile, OutValue, Task, TaskId

__all__ = [
    "Address",
    "Core",
    "Cpu",
    "DataCentre",
    "Edge",
    "Environment",
    "Host",
    "Job",
    "OutFile",
    "OutValue",
    "Task",
    "TaskId",
    "Vcpu",
    "VcpuId",
    "Vm",
    "VmId",
]
