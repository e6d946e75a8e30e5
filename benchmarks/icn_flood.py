"""An Interest flood against one ``sflow forwarder`` process: its memory stays under its limits and
it keeps serving.

Starts ``sflow forwarder`` (limits from ``--config``, default: sflow's defaults) with a producer on
its Unix socket that serves ``/bench/forwarder/ok/...`` and never answers
``/bench/forwarder/flood/...``; then, over TCP, a flooder sends ``--count`` unique flood Interests
(InterestLifetime one minute: each would hold a PIT entry that long) as fast as the forwarder
takes them, while a polite consumer on another connection asks for one ``ok`` name every 20 ms.
Prints the flood rate, the forwarder's peak memory before and after, its PIT size and limit
counters (from ``sflow icn status --json``, the real CLI), and how many polite Interests were
answered during the flood and after it. The peer floor printed beside it is the same forwarder's
peak memory with no flood.

    .venv/bin/python benchmarks/icn_flood.py [--count 1000000] [--config FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from icn_forwarder import PREFIX, REPO, UNIX_SOCKET, Framer, data_for, register, start_forwarder  # noqa: E402

from sflow.icn import tlv  # noqa: E402

MINUTE_MS = 60_000
OK_COMPONENT = tlv.encode_tlv(8, b"ok")
#: seconds a polite Interest waits for its answer (sflow's default InterestLifetime)
polite_lifetime = 4.0


def flood_wire(seq: int) -> bytes:
    name = PREFIX.wire + tlv.encode_tlv(8, b"flood") + tlv.encode_tlv(0x3A, seq.to_bytes(8, "big"))
    lifetime = tlv.encode_nonneg_tlv(0x0C, MINUTE_MS)
    return tlv.encode_tlv(5, tlv.encode_tlv(7, name) + b"\x0a\x04" + seq.to_bytes(4, "big") + lifetime)


def polite_wire(seq: int) -> bytes:
    name = PREFIX.wire + tlv.encode_tlv(8, b"ok") + tlv.encode_tlv(0x3A, seq.to_bytes(8, "big"))
    lifetime = tlv.encode_nonneg_tlv(0x0C, int(polite_lifetime * 1000))
    return tlv.encode_tlv(5, tlv.encode_tlv(7, name) + b"\x0a\x04" + os.urandom(4) + lifetime)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def forwarder_status(port: int) -> dict[str, Any]:
    run = subprocess.run([sys.executable, "-m", "sflow", "icn", "status", "--connect", f"127.0.0.1:{port}", "--json"],
                         capture_output=True, text=True, timeout=60, cwd=str(REPO),
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    if run.returncode != 0:
        raise SystemExit(f"sflow icn status failed: {run.stderr[-2000:]}")
    document: dict[str, Any] = json.loads(run.stdout)
    return document


class Flood:
    """The producer (Unix socket), the flooder and the polite consumer (TCP)."""

    def __init__(self, port: int) -> None:
        self.producer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.producer.connect(UNIX_SOCKET)
        self.producer_framer = Framer()
        register(self.producer, self.producer_framer)
        self.flooder = socket.create_connection(("127.0.0.1", port))
        self.polite = socket.create_connection(("127.0.0.1", port))
        self.polite_framer = Framer()
        for sock in (self.producer, self.flooder, self.polite):
            sock.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.producer, selectors.EVENT_READ, "producer")
        self.selector.register(self.polite, selectors.EVENT_READ, "polite")
        self.asked = 0
        self.answered = 0

    def run(self, count: int, polite_every: float = 0.02) -> float:
        """Flood ``count`` Interests, serving and asking politely meanwhile; seconds taken."""
        batch = 2000
        pending = b""
        sent = 0
        next_polite = 0.0
        start = time.perf_counter()
        while sent < count or pending:
            if not pending and sent < count:
                n = min(batch, count - sent)
                pending = b"".join(flood_wire(sent + i) for i in range(n))
                sent += n
            try:
                written = self.flooder.send(pending)
                pending = pending[written:]
            except BlockingIOError:
                pass
            now = time.perf_counter()
            if now >= next_polite:
                self._ask()
                next_polite = now + polite_every
            self._serve(0.0 if pending else 0.001)
        return time.perf_counter() - start

    def settle(self, seconds: float, polite_every: float = 0.02) -> None:
        """Go on asking politely (and serving) for ``seconds``."""
        deadline = time.perf_counter() + seconds
        next_polite = 0.0
        while time.perf_counter() < deadline:
            if time.perf_counter() >= next_polite:
                self._ask()
                next_polite = time.perf_counter() + polite_every
            self._serve(0.005)

    def _ask(self) -> None:
        self.polite.sendall(polite_wire(self.asked))
        self.asked += 1

    def _serve(self, timeout: float) -> None:
        for key, _mask in self.selector.select(timeout):
            try:
                data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            if key.data == "producer":
                replies = b"".join(data_for(p, b"ok") for p in self.producer_framer.feed(data)
                                   if p[0] == 0x05 and OK_COMPONENT in p)
                if replies:
                    self.producer.setblocking(True)
                    self.producer.sendall(replies)
                    self.producer.setblocking(False)
            else:
                self.answered += sum(1 for p in self.polite_framer.feed(data) if p[0] == 0x06)

    def close(self) -> None:
        for sock in (self.producer, self.flooder, self.polite):
            sock.close()


def run_flood(count: int, config: str | None) -> dict[str, Any]:
    """Flood a fresh forwarder; the figures (see the module docstring)."""
    extra = ["--config", config] if config else []
    process, port = start_forwarder(None, extra)
    try:
        flood = Flood(port)
        flood.settle(0.5)
        rss_before = peak_rss_mb(process.pid)
        seconds = flood.run(count)
        # The forwarder may still be reading the flood from its socket: wait until it has all.
        deadline = time.perf_counter() + 600
        while True:
            status = forwarder_status(port)
            if status["counters"]["n_in_interests"] >= count or time.perf_counter() > deadline:
                break
            flood.settle(0.5)
        flood.settle(polite_lifetime)  # the last polite Interests of the flood get their answers
        during = (flood.asked, flood.answered)
        flood.settle(1.0)
        after = (flood.asked - during[0], flood.answered - during[1])
        rss_after = peak_rss_mb(process.pid)
        flood.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    counters = status["counters"]
    return {
        "count": count,
        "seconds": seconds,
        "rate": count / seconds,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "pit_entries": status["pit"]["entries"],
        "in_interests": counters["n_in_interests"],
        "pit_full": counters["n_pit_full"],
        "pit_face_quota": counters["n_pit_face_quota"],
        "rate_limited": counters["n_rate_limited"],
        "polite_during": during,
        "polite_after": after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="unique flood Interests")
    parser.add_argument("--config", help="settings file with the forwarder's icn limits")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory():
        idle = run_flood(0, args.config)
        figures = run_flood(args.count, args.config)
    print(f"sflow forwarder on 127.0.0.1, {os.cpu_count()} CPUs (shared: figures are noisy under load)")
    print(f"  flood        : {figures['count']:,} unique Interests in {figures['seconds']:.1f} s "
          f"({figures['rate']:,.0f}/s offered); forwarder counted {figures['in_interests']:,} in")
    print(f"  dropped      : PIT full {figures['pit_full']:,}, per-face PIT quota {figures['pit_face_quota']:,}, "
          f"rate limit {figures['rate_limited']:,}; PIT entries after the flood {figures['pit_entries']:,}")
    print(f"  peak memory  : {figures['rss_before_mb']:.1f} MB before, {figures['rss_after_mb']:.1f} MB after "
          f"(same forwarder without a flood: {idle['rss_after_mb']:.1f} MB)")
    d_asked, d_answered = figures["polite_during"]
    a_asked, a_answered = figures["polite_after"]
    print(f"  keeps serving: polite consumer (one Interest every 20 ms, lifetime {polite_lifetime:g} s) answered "
          f"{d_answered}/{d_asked} while the forwarder took the flood, {a_answered}/{a_asked} in the second after")


if __name__ == "__main__":
    main()
