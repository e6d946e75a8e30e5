"""The long fuzzing run of the node's frame decoder and channels (not in CI: minutes).

    .venv/bin/python tests/fuzz/fuzz_frames.py [--cases 100000] [--seed 1]

Four targets, ``--cases`` cases each, from a seeded generator (a failure prints the case's seed to
replay it with ``--only TARGET --seed N --cases 1``): random bytes and mutated valid frames into the
decoder, hostile bytes into a channel that has not authenticated, mutated sealed frames into an
authenticated one. Each case checks what the targets of tests/unit/node/frame_fuzz.py check (no
crash, nothing but untouched frames reaches a handler, buffered bytes under the frame limit); the
run checks that memory does not grow with the number of cases.
"""

from __future__ import annotations

import argparse
import logging
import random
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "node"))

from frame_fuzz import decode_stream, feed_sealed, feed_stranger, mutate, valid_stream  # noqa: E402


def _cuts(rng: random.Random) -> list[int]:
    return [rng.randrange(4096) for _ in range(rng.randrange(8))]


def _random_bytes(rng: random.Random) -> None:
    decode_stream(rng.randbytes(rng.randrange(3000)), _cuts(rng))


def _mutated(rng: random.Random) -> None:
    decode_stream(mutate(VALID, rng, rng.randrange(1, 7)), _cuts(rng))


def _stranger(rng: random.Random) -> None:
    data = rng.randbytes(rng.randrange(3000)) if rng.random() < 0.5 else mutate(VALID, rng, rng.randrange(1, 7))
    feed_stranger(data, _cuts(rng))


def _sealed(rng: random.Random) -> None:
    feed_sealed(rng.randrange(2**32), rng.randrange(1, 5), _cuts(rng))


VALID = valid_stream()
TARGETS: dict[str, Callable[[random.Random], None]] = {
    "decoder-random": _random_bytes,
    "decoder-mutated": _mutated,
    "channel-stranger": _stranger,
    "channel-sealed": _sealed,
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only", choices=sorted(TARGETS))
    args = p.parse_args()
    logging.disable(logging.WARNING)  # every refused case logs its channel_error
    failed = 0
    for name, target in TARGETS.items():
        if args.only and name != args.only:
            continue
        start, t0 = rss_mb(), time.perf_counter()
        warm = start
        for i in range(args.cases):
            seed = args.seed * 1_000_003 + i
            try:
                target(random.Random(seed))
            except Exception:  # noqa: BLE001 - a fuzzing harness reports every failure
                failed += 1
                print(f"{name}: case seed {seed} failed:\n{traceback.format_exc()}", file=sys.stderr)
                if failed >= 5:
                    return 1
            if i == min(1000, args.cases - 1):
                warm = rss_mb()
        seconds = time.perf_counter() - t0
        end = rss_mb()
        print(f"{name}: {args.cases} cases in {seconds:.1f} s ({args.cases / seconds:.0f}/s); "
              f"peak RSS {start:.0f} MB before, {warm:.0f} MB after 1,000 cases, {end:.0f} MB at the end")
        if end - warm > 50:
            print(f"{name}: memory grew by {end - warm:.0f} MB over the run", file=sys.stderr)
            failed += 1
    print("no failure" if not failed else f"{failed} failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
