"""Builders for scheduling tests: environments and jobs as the JSON the loaders read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from sflow.jsonio import environment_from_dict, job_from_dict
from sflow.model.infra import Environment
from sflow.model.workflow import Job


def env_dict(
    hosts: Sequence[Sequence[float]],
    *,
    dc_of_host: Sequence[int] | None = None,
    host_bw: Sequence[float] | None = None,
    dc_bw: Sequence[float] | None = None,
    in_vm: Sequence[Sequence[bool]] | None = None,
) -> dict[str, Any]:
    """``hosts[h]`` lists the MIPS of host h's vCPUs (one CPU, one core each); ``in_vm[h][k]`` says
    whether vCPU k belongs to host h's VM (default: all)."""
    dcs = dc_of_host if dc_of_host is not None else [0] * len(hosts)
    n_dc = max(dcs) + 1
    dc_list: list[dict[str, Any]] = [
        {"dc_id": d, "bw": (dc_bw[d] if dc_bw else 100.0), "host_list": []} for d in range(n_dc)
    ]
    for h, speeds in enumerate(hosts):
        d = dcs[h]
        hid = f"{d}^{h}"
        vcpus = [{"vcpu_id": f"{hid}^0^{k}^0", "mips": mips} for k, mips in enumerate(speeds)]
        members = [
            {"vcpu_id": v["vcpu_id"]}
            for k, v in enumerate(vcpus)
            if in_vm is None or in_vm[h][k]
        ]
        dc_list[d]["host_list"].append(
            {
                "host_id": hid,
                "bw": host_bw[h] if host_bw else 125.0,
                "cpu_list": [
                    {"cpu_id": f"{hid}^0", "mips": 1000,
                     "core_list": [{"core_id": f"{hid}^0^{k}", "maxusage": 100, "vcpu_list": [v]}
                                   for k, v in enumerate(vcpus)]}
                ],
                "vm_list": [{"vm_id": f"vm{h}", "ip": f"10.0.0.{h + 1}", "ram": 1024, "vcpu_list": members}]
                if members else [],
            }
        )
    return {"dc_list": [dc for dc in dc_list if dc["host_list"]]}


def make_env(hosts: Sequence[Sequence[float]], **kw: Any) -> Environment:
    return environment_from_dict(env_dict(hosts, **kw), "<test env>")


def make_job(workloads: Sequence[float], edges: dict[tuple[int, int], float]) -> Job:
    """Tasks 1..n with the given workloads; ``edges[(a, b)]`` is the size in MB from a to b."""
    tasks = []
    for i, w in enumerate(workloads, start=1):
        files = [
            {"path": f"./out_{a}_{b}", "size": size, "dest_task_id": [b]}
            for (a, b), size in sorted(edges.items())
            if a == i
        ]
        tasks.append({"task_id": i, "workload": w, "cmd": "true", "out_file_list": files})
    return job_from_dict({"job_id": 1, "task_list": tasks}, "<test job>")


CANONICAL: dict[str, tuple[list[float], dict[tuple[int, int], float]]] = {
    "single": ([5000], {}),
    "chain": ([4000, 8000, 2000, 6000], {(1, 2): 50, (2, 3): 10, (3, 4): 100}),
    "fork": ([3000, 9000, 9000, 9000, 9000], {(1, k): 40 for k in range(2, 6)}),
    "join": ([9000, 9000, 9000, 9000, 3000], {(k, 5): 40 for k in range(1, 5)}),
    "diamond": ([2000, 12000, 6000, 2000], {(1, 2): 30, (1, 3): 200, (2, 4): 5, (3, 4): 60}),
    "independent": ([1000 * k for k in range(1, 9)], {}),
    "zero-work": ([0, 5000, 0, 0], {(1, 2): 10, (1, 3): 0, (2, 4): 20, (3, 4): 5}),
}


def two_dc_env() -> Environment:
    """Two DCs, three hosts, mixed speeds, one orphan vCPU (the fastest — never schedulable)."""
    return make_env(
        [[1000, 2000, 9000], [3000, 3000], [1500]],
        dc_of_host=[0, 0, 1],
        host_bw=[125, 50, 200],
        dc_bw=[100, 20],
        in_vm=[[True, True, False], [True, True], [True]],
    )


@st.composite
def environments(draw: st.DrawFn) -> Environment:
    n_hosts = draw(st.integers(1, 4))
    hosts = [draw(st.lists(st.sampled_from([500, 1000, 2000, 3500]), min_size=1, max_size=3)) for _ in range(n_hosts)]
    dcs = [0] + [draw(st.integers(0, 2)) for _ in range(n_hosts - 1)]
    in_vm = [[draw(st.booleans()) for _ in h] for h in hosts]
    in_vm[0][0] = True  # at least one schedulable vCPU
    host_bw = [draw(st.sampled_from([10, 125, 1000])) for _ in hosts]
    dc_bw = [draw(st.sampled_from([5, 50, 500])) for _ in range(3)]
    used = sorted(set(dcs))
    remap = {d: k for k, d in enumerate(used)}
    return make_env(
        hosts,
        dc_of_host=[remap[d] for d in dcs],
        host_bw=host_bw,
        dc_bw=[dc_bw[d] for d in used],
        in_vm=in_vm,
    )


@st.composite
def jobs(draw: st.DrawFn, max_tasks: int = 18) -> Job:
    n = draw(st.integers(1, max_tasks))
    workloads = [draw(st.sampled_from([0, 500, 1000, 3000, 7000, 20000])) for _ in range(n)]
    edges: dict[tuple[int, int], float] = {}
    for b in range(2, n + 1):
        for a in draw(st.sets(st.integers(1, b - 1), max_size=3)):
            edges[(a, b)] = draw(st.sampled_from([0, 1, 10, 100, 500]))
    # Shuffle the ids so that ids do not increase along every edge (the original needed that).
    perm = draw(st.permutations(range(1, n + 1)))
    renamed = [0.0] * n
    for old, w in enumerate(workloads, start=1):
        renamed[perm[old - 1] - 1] = w
    return make_job(renamed, {(perm[a - 1], perm[b - 1]): s for (a, b), s in edges.items()})
