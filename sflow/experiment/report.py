"""From ``OUTDIR/results.sqlite`` to ``OUTDIR/report.html`` (plots in ``OUTDIR/report/``, referenced
from the page) and to one CSV per table.

The page: per job, the makespan of every cell (mode × algorithm × cache) as box plots with every
repetition drawn; the speed-up of each mode over IP mode; how functions were answered (executed,
cache hit, not needed); predicted against real makespans; bytes over each emulated link; the Gantt
chart of each cell's median run; what each fault did; the nodes' CPU and memory; the failed runs
with their errors; and the facts of each session (versions, host, spec hash). matplotlib is used
through its object-oriented API with the Agg canvas (no global backend).
"""

from __future__ import annotations

import csv
import html
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sflow.errors import SflowError
from sflow.experiment.store import TABLES, ResultStore

IMAGES = "report"
MODE_COLOURS = {"ip": "#4C72B0", "icn": "#DD8452", "auto": "#55A868"}


def export_csv(store: ResultStore, directory: Path) -> list[Path]:
    """One ``TABLE.csv`` per table, with a header row."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in TABLES:
        cur = store.db.execute(f"SELECT * FROM {table}")
        path = directory / f"{table}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow([c[0] for c in cur.description])
            out.writerows(cur)
        written.append(path)
    return written


def _figure(width: float = 8.0, height: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _cell(r: Any) -> str:
    return f"{r['mode']}\n{r['algorithm']}\n{r['cache']}"


class _Page:
    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.images = outdir / IMAGES
        self.images.mkdir(parents=True, exist_ok=True)
        for old in self.images.glob("*.png"):
            old.unlink()
        self.parts: list[str] = []
        self._n = 0

    def h(self, level: int, text: str) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def p(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def figure(self, fig: Any, name: str, alt: str) -> None:
        self._n += 1
        file = f"{self._n:02d}-{_slug(name)}.png"
        fig.savefig(self.images / file)
        self.parts.append(f'<figure><img src="{IMAGES}/{file}" alt="{html.escape(alt)}">'
                          f"<figcaption>{html.escape(alt)}</figcaption></figure>")

    def table(self, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def html(self, title: str) -> str:
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
                 "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
                 "th{background:#f0f0f0}img{max-width:100%}figure{margin:1em 0}"
                 "figcaption{font-size:90%;color:#555}")
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(self.parts) + "\n</body></html>\n")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:60] or "figure"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write_report(store: ResultStore, outdir: Path) -> Path:
    try:
        import matplotlib  # noqa: F401 - only to say clearly when it is missing
    except ImportError:
        raise SflowError("the report's plots need matplotlib, which is not installed: "
                         "pip install 'sflow-engine[plot]'") from None
    runs = store.rows("SELECT * FROM runs ORDER BY job, mode, algorithm, cache, repetition")
    sessions = store.rows("SELECT * FROM sessions ORDER BY session_id")
    name = _spec_name(sessions)
    page = _Page(outdir)
    page.h(1, f"Experiment {name}")
    ok = [r for r in runs if r["status"] == "ok"]
    page.p(f"{len(runs)} runs recorded: {len(ok)} ok, {len(runs) - len(ok)} failed. "
           f"Makespans are in seconds, from the start of the job to its last function's end.")
    if not runs:
        page.p("No run is recorded yet.")
    _summary(page, runs)
    for job in sorted({r["job"] for r in runs}):
        job_runs = [r for r in runs if r["job"] == job]
        page.h(2, f"Job {job}")
        _makespans(page, job, job_runs)
        _speedup(page, job, job_runs)
        _outcomes(page, store, job, job_runs)
        _predicted(page, job, job_runs)
        _links(page, store, job, job_runs)
        _gantts(page, store, job, job_runs)
    _faults(page, store)
    _resources(page, store)
    _failures(page, runs)
    _sessions(page, sessions)
    path = outdir / "report.html"
    path.write_text(page.html(f"experiment {name}"), encoding="utf-8")
    return path


def _spec_name(sessions: Sequence[Any]) -> str:
    import tomllib

    for s in reversed(sessions):
        try:
            return str(tomllib.loads(s["spec_text"]).get("name", Path(s["spec_path"]).stem))
        except tomllib.TOMLDecodeError:
            continue
    return "?"


def _cells(runs: Sequence[Any]) -> dict[str, list[Any]]:
    cells: dict[str, list[Any]] = defaultdict(list)
    for r in runs:
        cells[_cell(r)].append(r)
    return cells


def _summary(page: _Page, runs: Sequence[Any]) -> None:
    rows = []
    for (job, mode, alg, cache), group in sorted(_group(runs).items()):
        spans = [r["makespan_s"] for r in group if r["status"] == "ok"]
        rows.append((job, mode, alg, cache, len(group), len(group) - len(spans),
                     statistics.median(spans) if spans else None, min(spans) if spans else None,
                     max(spans) if spans else None,
                     statistics.median([r["predicted_s"] for r in group if r["predicted_s"] is not None] or [0.0])
                     if any(r["predicted_s"] is not None for r in group) else None))
    page.h(2, "Summary")
    page.table(("job", "mode", "algorithm", "cache", "runs", "failed", "median makespan", "min", "max",
                "predicted"), rows)


def _group(runs: Sequence[Any]) -> dict[tuple[str, str, str, str], list[Any]]:
    out: dict[tuple[str, str, str, str], list[Any]] = defaultdict(list)
    for r in runs:
        out[(r["job"], r["mode"], r["algorithm"], r["cache"])].append(r)
    return out


def _makespans(page: _Page, job: str, runs: Sequence[Any]) -> None:
    cells = _cells([r for r in runs if r["status"] == "ok"])
    if not cells:
        return
    labels = list(cells)
    fig = _figure(max(6.0, 0.9 * len(labels) + 2), 4.2)
    ax = fig.add_subplot()
    data = [[r["makespan_s"] for r in cells[c]] for c in labels]
    ax.boxplot(data, tick_labels=labels, widths=0.5, showfliers=False)
    for i, (label, values) in enumerate(zip(labels, data), 1):
        colour = MODE_COLOURS.get(label.split("\n")[0], "#333")
        offsets = [i + (k - (len(values) - 1) / 2) * 0.06 for k in range(len(values))]
        ax.scatter(offsets, values, s=18, color=colour, zorder=3)
    values = [v for d in data for v in d if v > 0]
    if values and max(values) / min(values) > 20:
        ax.set_yscale("log")  # cached runs take a hundredth of the others
    ax.set_ylabel("makespan (s)")
    ax.set_title(f"{job}: makespan of every repetition (mode / algorithm / cache)", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    page.figure(fig, f"{job}-makespan", f"{job}: makespan by mode × algorithm × cache, every repetition a dot")


def _median(runs: Iterable[Any]) -> float | None:
    spans = [r["makespan_s"] for r in runs if r["status"] == "ok"]
    return statistics.median(spans) if spans else None


def _speedup(page: _Page, job: str, runs: Sequence[Any]) -> None:
    groups = _group(runs)
    rows = []
    for (j, mode, alg, cache), group in sorted(groups.items()):
        if mode == "ip":
            continue
        base = _median(groups.get((j, "ip", alg, cache), []))
        here = _median(group)
        if base and here:
            rows.append((f"{mode}\n{alg}\n{cache}", base / here, mode))
    if not rows:
        return
    fig = _figure(max(6.0, 0.9 * len(rows) + 2), 3.6)
    ax = fig.add_subplot()
    ax.bar([r[0] for r in rows], [r[1] for r in rows], color=[MODE_COLOURS.get(r[2], "#333") for r in rows])
    if max(r[1] for r in rows) / max(min(r[1] for r in rows), 1e-9) > 20:
        ax.set_yscale("log")
    ax.axhline(1.0, color="#888", linestyle="--", linewidth=1)
    ax.set_ylabel("speed-up over IP (median / median)")
    ax.set_title(f"{job}: speed-up against IP mode, same algorithm and cache")
    ax.tick_params(axis="x", labelsize=8)
    page.figure(fig, f"{job}-speedup", f"{job}: median IP makespan divided by each mode's median makespan")


def _outcomes(page: _Page, store: ResultStore, job: str, runs: Sequence[Any]) -> None:
    counts: dict[str, dict[str, int]] = {}
    for label, group in _cells([r for r in runs if r["status"] == "ok"]).items():
        ids = [r["run_id"] for r in group]
        marks = ",".join("?" for _ in ids)
        c = {"executed": 0, "cache hit": 0, "not needed": 0}
        for row in store.rows(f"SELECT outcome, COUNT(*) FROM functions WHERE run_id IN ({marks}) GROUP BY outcome",
                              ids):
            c[row[0]] = c.get(row[0], 0) + int(row[1])
        counts[label] = c
    if not counts:
        return
    labels = list(counts)
    fig = _figure(max(6.0, 0.9 * len(labels) + 2), 3.6)
    ax = fig.add_subplot()
    bottom = [0.0] * len(labels)
    for kind, colour in (("executed", "#4C72B0"), ("cache hit", "#C44E52"), ("not needed", "#BBBBBB")):
        totals = [sum(counts[c].values()) or 1 for c in labels]
        share = [counts[c].get(kind, 0) / t for c, t in zip(labels, totals)]
        ax.bar(labels, share, bottom=bottom, color=colour, label=kind)
        bottom = [b + s for b, s in zip(bottom, share)]
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of functions")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{job}: how each function was answered (cache-hit ratio)")
    ax.tick_params(axis="x", labelsize=8)
    page.figure(fig, f"{job}-cache", f"{job}: functions executed, answered from a cache, or not needed")


def _predicted(page: _Page, job: str, runs: Sequence[Any]) -> None:
    points = [r for r in runs if r["status"] == "ok" and r["predicted_s"] is not None]
    if not points:
        return
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    for mode in sorted({r["mode"] for r in points}):
        pts = [r for r in points if r["mode"] == mode]
        ax.scatter([r["predicted_s"] for r in pts], [r["makespan_s"] for r in pts], label=mode,
                   color=MODE_COLOURS.get(mode, "#333"), s=20)
    top = max(max(r["predicted_s"], r["makespan_s"]) for r in points) * 1.05
    ax.plot([0, top], [0, top], color="#888", linestyle="--", linewidth=1, label="real = predicted")
    ax.set_xlabel("predicted makespan (s)")
    ax.set_ylabel("real makespan (s)")
    ax.legend(fontsize=8)
    ax.set_title(f"{job}: predicted against real")
    page.figure(fig, f"{job}-predicted", f"{job}: the scheduler's predicted makespan against the real one")


def _links(page: _Page, store: ResultStore, job: str, runs: Sequence[Any]) -> None:
    ids = [r["run_id"] for r in runs if r["status"] == "ok"]
    if not ids:
        return
    marks = ",".join("?" for _ in ids)
    rows = store.rows(f"SELECT r.mode AS mode, l.src AS src, l.dst AS dst, AVG(l.bytes) AS bytes FROM link_bytes l "
                      f"JOIN runs r USING (run_id) WHERE l.run_id IN ({marks}) GROUP BY r.mode, l.src, l.dst", ids)
    if not rows:
        return
    links = sorted({f"{r['src']}→{r['dst']}" for r in rows})
    modes = sorted({r["mode"] for r in rows})
    fig = _figure(max(6.0, 0.35 * len(links) * len(modes) + 2), 4.0)
    ax = fig.add_subplot()
    width = 0.8 / len(modes)
    for k, mode in enumerate(modes):
        values = {f"{r['src']}→{r['dst']}": r["bytes"] for r in rows if r["mode"] == mode}
        ax.bar([i + k * width for i in range(len(links))], [values.get(link, 0) / 1e3 for link in links], width,
               label=mode, color=MODE_COLOURS.get(mode, "#333"))
    ax.set_xticks([i + width * (len(modes) - 1) / 2 for i in range(len(links))], links, rotation=60, fontsize=7)
    ax.set_ylabel("kB per run (mean)")
    ax.legend(fontsize=8)
    ax.set_title(f"{job}: bytes over each emulated link, by direction")
    page.figure(fig, f"{job}-links", f"{job}: traffic per emulated link and direction, mean per run")


def _gantts(page: _Page, store: ResultStore, job: str, runs: Sequence[Any]) -> None:
    from sflow.sched.gantt import draw_gantt

    from sflow.delegator.trace import TaskRun, Trace, TransferRun, trace_chart

    page.h(3, "Median run of each cell")
    for label, group in _cells([r for r in runs if r["status"] == "ok"]).items():
        ordered = sorted(group, key=lambda r: r["makespan_s"])
        run = ordered[(len(ordered) - 1) // 2]
        funcs = store.rows("SELECT * FROM functions WHERE run_id = ? ORDER BY task", (run["run_id"],))
        xfers = store.rows("SELECT * FROM transfers WHERE run_id = ?", (run["run_id"],))
        tasks = tuple(TaskRun(f["task"], f["node"], f["vcpu"], f["start_s"] or 0.0, f["finish_s"] or 0.0, f["detail"])
                      for f in funcs)
        vcpu = {(f["node"], f["task"]): f["vcpu"] for f in funcs}
        transfers = tuple(TransferRun(x["task"], x["path"], x["src_node"], x["dst_node"],
                                      vcpu.get((x["src_node"], x["task"]), ""), _reader_lane(funcs, x), x["bytes"],
                                      x["start_s"], x["finish_s"]) for x in xfers)
        trace = Trace(0, run["run_id"], run["mode"], run["algorithm"], run["predicted_s"], run["makespan_s"], tasks,
                      transfers, ())
        bars, arrows = trace_chart(trace)
        fig_path = page.images / f"gantt-{_slug(run['run_id'])}.png"
        draw_gantt(bars, arrows, fig_path, title=f"{run['run_id']}: {run['makespan_s']:.3f} s", group_label="node",
                   empty_note="every result came from a cache: no function ran", span=run["makespan_s"])
        page.parts.append(f'<figure><img src="{IMAGES}/{fig_path.name}" alt="Gantt chart of {html.escape(run["run_id"])}">'
                          f"<figcaption>{html.escape(label.replace(chr(10), ' · '))}: the median run "
                          f"({html.escape(run['run_id'])})</figcaption></figure>")


def _reader_lane(funcs: Sequence[Any], x: Any) -> str:
    """The vCPU of the first function on the receiving node (a transfer's arrow ends there)."""
    on_node = [f for f in funcs if f["node"] == x["dst_node"] and f["start_s"] is not None
               and f["start_s"] >= x["finish_s"] - 1e-3]
    return min(on_node, key=lambda f: f["start_s"])["vcpu"] if on_node else ""


def _faults(page: _Page, store: ResultStore) -> None:
    rows = store.rows("SELECT f.*, r.status, r.makespan_s, r.error FROM faults f JOIN runs r USING (run_id) "
                      "ORDER BY f.run_id, f.idx")
    if not rows:
        return
    page.h(2, "Faults: what each did")
    page.table(("run", "fault", "trigger", "applied at (s)", "effect", "run", "makespan", "error"),
               [(r["run_id"], f"{r['kind']} {r['target']}", r["trigger"], r["applied_s"], r["effect"], r["status"],
                 r["makespan_s"], (r["error"] or "").splitlines()[0] if r["error"] else "") for r in rows])


def _resources(page: _Page, store: ResultStore) -> None:
    rows = store.rows("SELECT r.job, r.mode, s.node, AVG(s.cpu_percent) AS cpu, MAX(s.cpu_percent) AS cpu_max, "
                      "MAX(s.rss_kb) AS rss, AVG(s.functions_cpu_percent) AS fcpu, MAX(s.functions_rss_kb) AS frss, "
                      "COUNT(*) AS n FROM samples s JOIN runs r USING (run_id) GROUP BY r.job, r.mode, s.node "
                      "ORDER BY r.job, r.mode, s.node")
    if not rows:
        return
    page.h(2, "Node resources during the runs")
    page.p("Sampled every 0.1 s (every 0.5 s on real hosts): the node process's CPU (100 % = one core) and "
           "resident memory, and the same for the functions it ran (its child processes; on real hosts the CPU "
           "of the functions that ended, and no memory).")
    page.table(("job", "mode", "node", "CPU % mean", "CPU % max", "peak RSS (MiB)", "functions CPU % mean",
                "functions peak RSS (MiB)", "samples"),
               [(r["job"], r["mode"], r["node"], r["cpu"], r["cpu_max"], r["rss"] / 1024, r["fcpu"],
                 r["frss"] / 1024 if r["frss"] is not None else None,
                 r["n"]) for r in rows])


def _failures(page: _Page, runs: Sequence[Any]) -> None:
    failed = [r for r in runs if r["status"] != "ok"]
    if not failed:
        return
    page.h(2, "Failed runs")
    page.table(("run", "error"), [(r["run_id"], r["error"]) for r in failed])


def _sessions(page: _Page, sessions: Sequence[Any]) -> None:
    page.h(2, "Reproducibility")
    page.table(("session", "started", "sflow", "commit", "spec sha256", "seed", "python", "kernel", "CPU", "cores"),
               [(s["session_id"], s["started_at"], s["sflow_version"], s["sflow_commit"] or "–", s["spec_sha256"][:16],
                 s["seed"], s["python"], s["kernel"], s["cpu_model"], s["cores"]) for s in sessions])
