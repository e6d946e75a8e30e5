"""``sflow validate ENV JOB``: check both files and print what they describe."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

# The readers and models are imported when the command runs (``sflow --help`` needs none of them).
if TYPE_CHECKING:
    from sflow.model import Environment, Job


def register(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="check an environment and a job file and summarise them",
        description="Check ENV and JOB as every other command reads them (a malformed file is reported with "
        "the file, the JSON path and the id at fault, exit status 2) and print what they describe: functions, "
        "edges, START and END functions, the critical path; DCs, hosts, vCPUs, VMs and their addresses, with "
        "warnings such as vCPUs of no VM or two VMs at one address.",
    )
    p.add_argument("env", metavar="ENV", help="environment JSON (data centres, hosts, vCPUs, VMs)")
    p.add_argument("job", metavar="JOB", help="workflow job JSON (task_list)")
    p.set_defaults(func=_validate)


def _fmt(x: float) -> str:
    return f"{x:g}"


def summarise_job(job: Job) -> list[str]:
    path, work = job.critical_path()
    lines = [
        f"job {job.id}: {len(job.tasks)} functions, {len(job.edges)} edges",
        f"  START: {', '.join(map(str, job.start_tasks))}",
        f"  END:   {', '.join(map(str, job.end_tasks))}",
        f"  critical path by workload: {' -> '.join(map(str, path))} ({_fmt(work)} MI)",
        f"  total workload: {_fmt(sum(t.workload for t in job.tasks))} MI;"
        f" data on edges: {_fmt(sum(e.size for e in job.edges.values()))} MB",
    ]
    docker = [t.id for t in job.tasks if t.docker_image]
    if docker:
        lines.append(f"  functions with a Docker image: {len(docker)}")
    return lines


def summarise_environment(env: Environment) -> list[str]:
    lines = [
        f"environment: {len(env.dcs)} DCs, {len(env.hosts)} hosts, {len(env.vcpus)} vCPUs"
        f" ({len(env.schedulable)} schedulable), {len(env.vms)} VMs",
    ]
    for dc in env.dcs:
        lines.append(f"  DC {dc.id}: bw {_fmt(dc.bw)} MB/s, {len(dc.hosts)} hosts")
        for host in dc.hosts:
            n = sum(len(k.vcpus) for c in host.cpus for k in c.cores)
            label = " ".join(part for part in (host.id, host.name, host.ip) if part)
            lines.append(f"    host {label}: bw {_fmt(host.bw)} MB/s, {n} vCPUs")
            for vm in host.vms:
                speeds = ", ".join(_fmt(env.vcpus[v].mips) for v in vm.vcpus)
                lines.append(f"      VM {vm.id} at {vm.address}: {len(vm.vcpus)} vCPUs (MIPS {speeds})")
    if env.orphan_vcpus:
        lines.append(
            f"  warning: {len(env.orphan_vcpus)} vCPUs belong to no VM and are never scheduled: "
            + ", ".join(env.orphan_vcpus)
        )
    for w in env.warnings:
        lines.append(f"  warning: {w}")
    return lines


def _validate(args: argparse.Namespace) -> int:
    from sflow.jsonio import load_environment, load_job

    env = load_environment(args.env)
    job = load_job(args.job)
    print(f"{args.env}: OK")
    print("\n".join(summarise_environment(env)))
    print(f"{args.job}: OK")
    print("\n".join(summarise_job(job)))
    return 0
