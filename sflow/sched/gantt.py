"""Gantt charts: lanes (vCPUs) grouped by host, tasks as labelled bars, inter-host transfers as arrows.

:func:`draw_gantt` is generic — it takes bars and transfers, whatever produced them — so a schedule
(:func:`schedule_chart`) and a trace of a real run draw the same way. matplotlib is imported only
when drawing, and only its object-oriented API with the Agg canvas is used, so no global backend is
switched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sflow.errors import InputError, SflowError
from sflow.model.schedule import Schedule
from sflow.sched.problem import Problem

FORMATS = ("png", "svg", "pdf")


@dataclass(frozen=True, slots=True)
class Bar:
    """A task run: on ``lane`` (a vCPU id), which belongs to ``group`` (a host)."""

    lane: str
    group: str
    label: str
    start: float
    finish: float


@dataclass(frozen=True, slots=True)
class Transfer:
    """Data moving from one lane to another between ``start`` and ``end``."""

    src_lane: str
    dst_lane: str
    start: float
    end: float
    label: str = ""


def schedule_chart(problem: Problem, schedule: Schedule) -> tuple[list[Bar], list[Transfer]]:
    """Bars for every task and a transfer for every edge that crosses hosts."""
    host_of = dict(zip(problem.proc_ids, problem.hosts))
    position = problem.proc_index()
    slots = sorted(schedule.slots.values(), key=lambda s: (position.get(s.vcpu, -1), s.start))
    bars = [Bar(s.vcpu, host_of.get(s.vcpu, "?"), str(s.task), s.start, s.finish) for s in slots]
    transfers: list[Transfer] = []
    for e, (i, j) in enumerate(zip(problem.edge_src.tolist(), problem.edge_dst.tolist())):
        a, b = schedule.slots[problem.task_ids[i]], schedule.slots[problem.task_ids[j]]
        if host_of[a.vcpu] == host_of[b.vcpu]:
            continue
        cost = problem.comm(e, position[a.vcpu], position[b.vcpu])
        transfers.append(Transfer(a.vcpu, b.vcpu, a.finish, a.finish + cost, f"{a.task}→{b.task}"))
    return bars, transfers


def draw_gantt(bars: Sequence[Bar], transfers: Sequence[Transfer], path: str | Path, *, title: str = "") -> None:
    """Write the chart to ``path``; the format follows the extension (png, svg or pdf)."""
    out = Path(path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InputError(str(path), "", f"unsupported chart format {out.suffix!r}; use one of .png, .svg, .pdf")
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise SflowError("charts need matplotlib, which is not installed: pip install 'sflow-engine[plot]'") from None

    groups: dict[str, list[str]] = {}
    for bar in bars:
        lanes = groups.setdefault(bar.group, [])
        if bar.lane not in lanes:
            lanes.append(bar.lane)
    for tr in transfers:
        for lane in (tr.src_lane, tr.dst_lane):
            if not any(lane in lanes for lanes in groups.values()):
                groups.setdefault("?", []).append(lane)
    y_of: dict[str, int] = {}
    separators: list[float] = []
    group_mid: list[tuple[float, str]] = []
    for group, lanes in groups.items():
        first = len(y_of)
        for lane in lanes:
            y_of[lane] = len(y_of)
        group_mid.append(((first + len(y_of) - 1) / 2, group))
        separators.append(len(y_of) - 0.5)
    height = max(2.5, 0.45 * len(y_of) + 1.5)
    fig = Figure(figsize=(12, height))
    ax = fig.add_subplot()
    palette = [f"C{k}" for k in range(10)]
    for bar in bars:
        y = y_of[bar.lane]
        colour = palette[list(groups).index(bar.group) % len(palette)]
        ax.barh(y, bar.finish - bar.start, left=bar.start, height=0.6, color=colour, edgecolor="black", alpha=0.8)
        ax.text((bar.start + bar.finish) / 2, y, bar.label, ha="center", va="center", fontsize=7)
    for tr in transfers:
        ax.annotate(
            "",
            xy=(tr.end, y_of[tr.dst_lane]),
            xytext=(tr.start, y_of[tr.src_lane]),
            arrowprops={"arrowstyle": "->", "color": "dimgray", "linestyle": "--", "lw": 0.8},
        )
    for sep in separators[:-1]:
        ax.axhline(sep, color="gray", lw=0.5)
    ax.set_yticks(list(y_of.values()), list(y_of))
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    ax.set_ylabel("vCPU (grouped by host)")
    end = max([b.finish for b in bars] + [t.end for t in transfers] + [1e-9])
    ax.set_xlim(0, end * 1.02)
    for mid, group in group_mid:
        ax.text(1.005, mid, group, transform=ax.get_yaxis_transform(), va="center", fontsize=8, color="gray")
    if title:
        ax.set_title(title)
    fig.tight_layout(rect=(0.0, 0.0, 0.94, 1.0))  # room for the host names on the right
    fig.savefig(out, format=fmt)
