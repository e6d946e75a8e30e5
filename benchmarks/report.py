"""What every benchmark shares: its command line's ``--json`` option, the machine's load at the
time, and the bare-process floor (``/bin/sh -c true`` started the way a user would, with
``subprocess.run``) measured in the same run as the figure it is compared with."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BARE = ["/bin/sh", "-c", "true"]


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with ``--json PATH`` (write the figures there as well as printing them)."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    return p


def load() -> dict[str, Any]:
    """The 1-minute load average and the CPUs, recorded beside every figure."""
    return {"loadavg_1m": os.getloadavg()[0], "cpus": os.cpu_count(), "python": sys.version.split()[0]}


def emit(args: argparse.Namespace, name: str, figures: dict[str, Any]) -> None:
    """Write ``figures`` to ``--json`` if given (with the load it was measured under)."""
    if args.json:
        Path(args.json).write_text(json.dumps({"benchmark": name, **load(), **figures}, indent=2) + "\n")


def bare_process(n: int) -> list[float]:
    """Seconds of each of ``n`` sequential ``subprocess.run(["/bin/sh", "-c", "true"])``."""
    out = []
    for _ in range(n):
        began = time.perf_counter()
        subprocess.run(BARE, check=True)
        out.append(time.perf_counter() - began)
    return out


def timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def ratio(value: float, floor: float) -> float:
    return value / floor if floor > 0 else float("nan")
