"""Run every benchmark, one process each, and write one JSON of all their figures (with the load
each was measured under), so that a regression is one diff away.

    .venv/bin/python benchmarks/run_all.py [-o benchmarks.json] [--quick] [--only NAME ...]

``--quick`` runs smaller sizes (a smoke run, not the targets' sizes). A benchmark that fails (or
whose component, such as Docker or Dask, is missing) is recorded with its error; the others run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name → (arguments at the targets' sizes, arguments of a quick run)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "spawn": ([], ["--rounds", "50"]),
    "cli_speed": ([], ["--repeat", "2", "--skip-large"]),
    "ip_chain_overhead": ([], ["--n", "50"]),
    "ip_fork_join": ([], ["--n", "200"]),
    "sfc_chain_overhead": ([], ["--n", "30"]),
    "vs_dask": ([], ["--chain", "50", "--fork", "200"]),
    "docker_chain": ([], ["--n", "4"]),
    "icn_forwarder": ([], ["--count", "5000", "--latency-count", "500"]),
    "ip_transfer": ([], ["--size-mb", "64"]),
    "channel_protection": ([], ["--size-mb", "64"]),
    "sfc_cache": ([], []),
    "sched_speed": (["--sizes", "1000", "10000", "100000", "--skip-slow"], ["--sizes", "1000", "--vcpus", "16"]),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="benchmarks.json", help="the JSON to write (default: benchmarks.json)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    args = ap.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="sflow-bench-all-") as tmp:
        for name, (full, quick) in BENCHMARKS.items():
            if args.only and name not in args.only:
                continue
            out = Path(tmp, f"{name}.json")
            argv = [sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else full), "--json", str(out)]
            print(f"== {name}: {' '.join(argv[1:])}", flush=True)
            began = time.perf_counter()
            proc = subprocess.run(argv, cwd=HERE.parent, text=True, capture_output=True)
            print(proc.stdout, end="", flush=True)
            entry: dict[str, object] = {"seconds": time.perf_counter() - began, "output": proc.stdout}
            if proc.returncode != 0 or not out.exists():
                entry["error"] = (proc.stderr.strip() or f"exit status {proc.returncode}")[-2000:]
                print(f"   FAILED: {entry['error'][-300:]}", flush=True)
            else:
                entry["figures"] = json.loads(out.read_text())
            results[name] = entry
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0 if all("error" not in r for r in results.values() if isinstance(r, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
