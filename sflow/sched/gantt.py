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


#: Bar.kind: a function that ran (a bar from start to finish), or a result found in a cache (a
#: marker at the moment it was found)
RUN = "run"
CACHED = "cached"


@dataclass(frozen=True, slots=True)
class Bar:
    """A task on ``lane`` (a vCPU, or a node's cache) of ``group`` (a host or node)."""

    lane: str
    group: str
    label: str
    start: float
    finish: float
    kind: str = RUN


@dataclass(frozen=True, slots=True)
class Transfer:
    """Data moving from one lane to another between ``start`` and ``end``; a lane is found in its
    group when one is given (lane names may repeat across groups), else in any group."""

    src_lane: str
    dst_lane: str
    start: float
    end: float
    label: str = ""
    src_group: str = ""
    dst_group: str = ""


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


def draw_gantt(
    bars: Sequence[Bar],
    transfers: Sequence[Transfer],
    path: str | Path,
    *,
    title: str = "",
    group_label: str = "host",
    empty_note: str = "nothing ran",
    span: float = 0.0,
) -> None:
    """Write the chart to ``path``; the format follows the extension (png, svg or pdf).

    Lanes are grouped by ``group_label`` (host, node), each group in its colour; cached results
    are hatched diamonds with their label; a legend says what bars, markers and arrows are. When
    no bar ran, ``empty_note`` says why in the middle of the chart. The time axis covers the
    bars, transfers and ``span`` (a run's makespan), never less than a second."""
    out = Path(path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InputError(str(path), "", f"unsupported chart format {out.suffix!r}; use one of .png, .svg, .pdf")
    try:
        from matplotlib.artist import Artist
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError:
        raise SflowError("charts need matplotlib, which is not installed: pip install 'sflow-engine[plot]'") from None

    groups: dict[str, list[str]] = {}
    for bar in bars:
        lanes = groups.setdefault(bar.group, [])
        if bar.lane not in lanes:
            lanes.append(bar.lane)
    for tr in transfers:
        for group, lane in ((tr.src_group, tr.src_lane), (tr.dst_group, tr.dst_lane)):
            if _lane_key(groups, group, lane) is None:
                groups.setdefault(group or "?", []).append(lane)
    y_of: dict[tuple[str, str], int] = {}
    separators: list[float] = []
    group_mid: list[tuple[float, str]] = []
    for group, lanes in groups.items():
        first = len(y_of)
        for lane in lanes:
            y_of[(group, lane)] = len(y_of)
        group_mid.append(((first + len(y_of) - 1) / 2, group))
        separators.append(len(y_of) - 0.5)
    height = max(3.0, 0.45 * len(y_of) + 2.2)
    fig = Figure(figsize=(12, height))
    ax = fig.add_subplot()
    palette = [f"C{k}" for k in range(10)]
    colour_of = {group: palette[k % len(palette)] for k, group in enumerate(groups)}
    ran = [bar for bar in bars if bar.kind != CACHED]
    cached = [bar for bar in bars if bar.kind == CACHED]
    for bar in ran:
        y = y_of[(bar.group, bar.lane)]
        ax.barh(y, bar.finish - bar.start, left=bar.start, height=0.6, color=colour_of[bar.group], edgecolor="black",
                alpha=0.8)
        ax.text((bar.start + bar.finish) / 2, y, bar.label, ha="center", va="center", fontsize=7)
    for bar in cached:
        y = y_of[(bar.group, bar.lane)]
        ax.scatter([bar.start], [y], marker="D", s=70, facecolor="white", edgecolor=colour_of[bar.group],
                   hatch="////", linewidth=1.2, zorder=3)
        ax.annotate(f"{bar.label} (cached)", (bar.start, y), xytext=(7, 0), textcoords="offset points",
                    va="center", fontsize=7)
    for tr in transfers:
        src = _lane_key(groups, tr.src_group, tr.src_lane)
        dst = _lane_key(groups, tr.dst_group, tr.dst_lane)
        if src is None or dst is None:
            continue
        ax.annotate(
            "",
            xy=(tr.end, y_of[dst]),
            xytext=(tr.start, y_of[src]),
            arrowprops={"arrowstyle": "->", "color": "dimgray", "linestyle": "--", "lw": 0.8},
        )
    for sep in separators[:-1]:
        ax.axhline(sep, color="gray", lw=0.5)
    ax.set_yticks(list(y_of.values()), [lane for _, lane in y_of])
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"vCPU (grouped by {group_label})")
    end = max([b.finish for b in bars] + [t.end for t in transfers] + [span])
    ax.set_xlim(0, end * (1.15 if cached else 1.05) if end > 0 else 1.0)  # room for a cached result's label
    if not ran:
        ax.text(0.5, 0.5, empty_note, transform=ax.transAxes, ha="center", va="center", fontsize=11,
                bbox={"boxstyle": "round", "facecolor": "lightyellow", "edgecolor": "gray"})
    for mid, group in group_mid:
        ax.text(1.005, mid, group, transform=ax.get_yaxis_transform(), va="center", fontsize=8, color=colour_of[group])
    handles: list[Artist] = []
    if ran:
        handles.append(Patch(facecolor="lightgray", edgecolor="black", label=f"function run (colour: its {group_label})"))
    if cached:
        handles.append(Line2D([], [], marker="D", linestyle="none", markerfacecolor="white", markeredgecolor="black",
                              label="result found in a cache"))
    if transfers:
        handles.append(Line2D([], [], color="dimgray", linestyle="--", label="file transfer (until the receiver has it)"))
    legend_room = 0.35 / height  # inches for the legend, under the axis label
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout(rect=(0.0, legend_room, 0.94, 1.0))  # room for the group names on the right
    fig.savefig(out, format=fmt)


def _lane_key(groups: dict[str, list[str]], group: str, lane: str) -> tuple[str, str] | None:
    """The (group, lane) a transfer end names: in ``group`` when given, else the first group with
    such a lane."""
    if group:
        return (group, lane) if lane in groups.get(group, ()) else None
    return next(((g, lane) for g, lanes in groups.items() if lane in lanes), None)
