"""``sflow experiment run|report|export``: run a spec's matrix into ``OUTDIR/results.sqlite``, draw
``OUTDIR/report.html`` from it, write one CSV per table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sflow.config import add_config_argument
from sflow.errors import InputError


def register(sub: Any) -> None:
    e = sub.add_parser(
        "experiment",
        help="run a matrix of jobs × modes × schedulers × caches (× faults) and report it",
        description="An experiment is data: a spec (TOML) → a matrix of runs → OUTDIR/results.sqlite (one "
        "transaction per run, resumable) → CSV and one HTML report. See the README's Experiments section.",
    )
    commands = e.add_subparsers(dest="experiment_command", metavar="COMMAND", title="commands")
    r = commands.add_parser("run", help="run the spec's matrix (again: resume it)",
                            description="Run every run of SPEC's matrix that OUTDIR/results.sqlite does not hold yet, "
                            "with a progress line; a run that fails is recorded with its error and the matrix goes "
                            "on. Ctrl-C stops the nodes of the run in progress and leaves it unrecorded.")
    r.add_argument("spec", metavar="SPEC", help="experiment spec (TOML)")
    r.add_argument("-o", "--output", metavar="OUTDIR", required=True, help="results directory")
    r.add_argument("--repeat", type=int, default=0, metavar="N",
                   help="add N repetitions to every cell, beyond those recorded")
    add_config_argument(r)
    r.set_defaults(func=_run)

    p = commands.add_parser("report", help="write OUTDIR/report.html (plots and tables of the results)")
    p.add_argument("outdir", metavar="OUTDIR")
    p.set_defaults(func=_report)

    x = commands.add_parser("export", help="write one CSV per table of OUTDIR/results.sqlite")
    x.add_argument("outdir", metavar="OUTDIR")
    x.add_argument("-o", "--output", metavar="DIR", help="where (default: OUTDIR/csv)")
    x.set_defaults(func=_export)
    e.set_defaults(func=lambda args: (e.print_help(), 2)[1])


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    from sflow.experiment.session import run_experiment
    from sflow.experiment.spec import load_spec

    if args.repeat < 0:
        raise InputError("<flag>", "--repeat", f"expected a number of repetitions to add, found {args.repeat}")
    spec = load_spec(args.spec)
    outdir = Path(args.output)
    try:
        summary = run_experiment(spec, outdir, repeat=args.repeat, config_file=args.config, progress=_say,
                                 argv=sys.argv)
    except KeyboardInterrupt:
        _say(f"sflow: the run in progress was abandoned and its nodes stopped; run the same command again to "
             f"resume (recorded runs are kept in {outdir / 'results.sqlite'})")
        raise
    print(f"{spec.name}: {summary.ok} runs ok, {summary.failed} failed, {summary.skipped} recorded before; "
          f"results: {outdir / 'results.sqlite'} (`sflow experiment report {outdir}`)")
    return 0


def _store(outdir: str) -> Any:
    from sflow.experiment.store import ResultStore

    path = Path(outdir) / "results.sqlite"
    if not path.is_file():
        raise InputError(outdir, "", "no results.sqlite here; run `sflow experiment run SPEC -o OUTDIR` first")
    return ResultStore(path)


def _report(args: argparse.Namespace) -> int:
    from sflow.experiment.report import write_report

    store = _store(args.outdir)
    try:
        path = write_report(store, Path(args.outdir))
    finally:
        store.close()
    print(f"wrote {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from sflow.experiment.report import export_csv

    store = _store(args.outdir)
    try:
        files = export_csv(store, Path(args.output or Path(args.outdir) / "csv"))
    finally:
        store.close()
    for f in files:
        print(f"wrote {f}")
    return 0
