"""Throughput and latency of one ``sflow forwarder`` process (target >= 10,000 exchanges/s).

Starts ``sflow forwarder`` as a child process on 127.0.0.1, then, from this process, connects a
producer (over the forwarder's Unix socket: management is only for local users) and a consumer
(over TCP), plain sockets so that the measuring side costs little, registers the producer's
prefix with a signed ``rib/register`` command, and measures:

1. Interest–Data exchanges per second with unique names (every Interest misses the CS, goes to
   the producer, its Data comes back), with ``--window`` Interests in flight;
2. exchanges per second on CS hits (the same names again: the producer sees nothing);
3. round-trip latency p50 / p99, one Interest at a time, unique names.

Beside the forwarder's CPU per exchange it prints a *floor* measured in the same run: the same
traffic through a table-less relay (``--relay``: a Twisted process on the same reactor that cuts
the streams into TLV packets as the forwarder's faces do and passes Interests to the producer and
Data to the consumer, with no decoding and no tables). What the forwarder spends above it is its
own packet processing.

    .venv/bin/python benchmarks/icn_forwarder.py [--count 50000] [--window 128] [--payload 100]
        [--profile OUT.prof]      # run the forwarder under cProfile and write its profile
        [--no-floor]              # skip the table-less relay
"""

from __future__ import annotations

import argparse
import hashlib
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sflow.icn import tlv  # noqa: E402
from sflow.icn.control import ControlParameters, decode_control_response  # noqa: E402
from sflow.icn.name import Component, Name  # noqa: E402
from sflow.icn.packet import decode_data, encode_interest, make_interest  # noqa: E402
from sflow.icn.signature import DigestSha256Signer  # noqa: E402

PREFIX = Name.from_uri("/bench/forwarder")


class Framer:
    """Cuts a byte stream into TLV packets."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self.buffer + data if self.buffer else data
        out = []
        pos = 0
        end = len(buf)
        while True:
            size = tlv.read_packet_length(buf, pos, end)
            if size is None or pos + size > end:
                break
            out.append(buf[pos : pos + size])
            pos += size
        self.buffer = buf[pos:]
        return out


def interest_wire(run: int, seq: int) -> bytes:
    name = PREFIX.wire + tlv.encode_tlv(8, str(run).encode()) + tlv.encode_tlv(0x3A, seq.to_bytes(8, "big"))
    body = tlv.encode_tlv(7, name) + b"\x0a\x04" + os.urandom(4) + b"\x0c\x02\x0f\xa0"
    return tlv.encode_tlv(5, body)


_SIG_INFO = b"\x16\x03\x1b\x01\x00"


def data_for(interest: bytes, content: bytes) -> bytes:
    """A DigestSha256-signed Data answering ``interest`` (whose Name starts at octet 2 or 4)."""
    pos = 2 if interest[1] < 253 else 4
    name_len = interest[pos + 1]
    name_tlv = interest[pos : pos + 2 + name_len]
    signed = name_tlv + b"\x14\x04\x19\x02\x27\x10" + tlv.encode_tlv(0x15, content) + _SIG_INFO
    return tlv.encode_tlv(6, signed + b"\x17\x20" + hashlib.sha256(signed).digest())


def seq_of(data: bytes) -> int:
    pos = 2 if data[1] < 253 else 4
    name_len = data[pos + 1]
    name_end = pos + 2 + name_len
    return int.from_bytes(data[name_end - 8 : name_end], "big")


UNIX_SOCKET = os.environ.get("SFLOW_BENCH_SOCKET") or f"/tmp/sflow-bench-forwarder-{os.getpid()}.sock"
os.environ["SFLOW_BENCH_SOCKET"] = UNIX_SOCKET  # the relay child listens where the parent connects


def start_forwarder(profile: str | None, extra: list[str]) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable]
    if profile:
        command += ["-m", "cProfile", "-o", profile]
    command += ["-m", "sflow", "forwarder", "--listen", "127.0.0.1:0", "--unix", UNIX_SOCKET, *extra]
    return _start("the forwarder", command)


def start_relay() -> tuple[subprocess.Popen[str], int]:
    """The table-less relay (this script with ``--relay``) on 127.0.0.1 and :data:`UNIX_SOCKET`."""
    return _start("the relay", [sys.executable, str(Path(__file__).resolve()), "--relay"])


def _start(what: str, command: list[str]) -> tuple[subprocess.Popen[str], int]:
    """Start a server that prints one line with its ``tcp4://HOST:PORT`` when ready; (process, port)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if not selector.select(30):
        process.kill()
        raise SystemExit(f"{what} did not get ready within 30 s")
    line = process.stdout.readline()
    tcp = next(part for part in line.split() if part.startswith("tcp4://"))
    return process, int(tcp.rsplit(":", 1)[1])


def run_relay() -> None:
    """The floor: relay Interests from any connection to the Unix-socket one (the producer) and
    Data to the TCP ones (the consumer), framing the streams as the forwarder's stream faces do and,
    as they do, writing what one read produced as one buffer per connection."""
    from twisted.internet import reactor as installed_reactor
    from twisted.internet.protocol import Factory, Protocol

    reactor: Any = installed_reactor
    unix: list[Relay] = []
    tcp: list[Relay] = []

    class Relay(Protocol):
        def __init__(self, peers: list[Relay]) -> None:
            self.peers = peers
            self.buffer = b""

        def connectionMade(self) -> None:
            self.peers.append(self)

        def dataReceived(self, data: bytes) -> None:
            buf = self.buffer + data if self.buffer else data
            end = len(buf)
            pos = 0
            interests: list[bytes] = []
            datas: list[bytes] = []
            while pos < end:
                if pos + 2 <= end and buf[pos] < 253 and buf[pos + 1] < 253:
                    size = 2 + buf[pos + 1]
                else:
                    found = tlv.read_packet_length(buf, pos, end)
                    if found is None:
                        break
                    size = found
                if pos + size > end:
                    break
                packet = buf[pos : pos + size]
                (interests if packet[0] == tlv.INTEREST else datas).append(packet)
                pos += size
            self.buffer = buf[pos:] if pos < end else b""
            for packets, peers in ((interests, unix), (datas, tcp)):
                if packets and peers:
                    transport: Any = peers[0].transport
                    transport.write(b"".join(packets))

    tcp_port = reactor.listenTCP(0, Factory.forProtocol(lambda: Relay(tcp)), interface="127.0.0.1")
    reactor.listenUNIX(UNIX_SOCKET, Factory.forProtocol(lambda: Relay(unix)))
    print(f"relay ready: tcp4://127.0.0.1:{tcp_port.getHost().port}", flush=True)
    try:
        reactor.run()
    finally:
        if os.path.exists(UNIX_SOCKET):
            os.unlink(UNIX_SOCKET)


def register(sock: socket.socket, framer: Framer) -> None:
    params = ControlParameters(name=PREFIX)
    name = Name.from_uri("/localhost/nfd/rib/register").append(Component.generic(params.encode()))
    command = make_interest(name, app_parameters=b"", signer=DigestSha256Signer(interest_nonce_size=8), nonce=1)
    sock.sendall(encode_interest(command))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for packet in framer.feed(sock.recv(65536)):
            response = decode_control_response(decode_data(packet).content)
            if response.status_code != 200:
                raise SystemExit(f"registration refused: {response.status_code} {response.status_text}")
            return
    raise SystemExit("no answer to the registration")


class Bench:
    def __init__(self, port: int, payload: int, *, manage: bool = True) -> None:
        self.consumer = socket.create_connection(("127.0.0.1", port))
        self.producer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.producer.connect(UNIX_SOCKET)
        self.consumer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.consumer_framer = Framer()
        self.producer_framer = Framer()
        if manage:
            register(self.producer, self.producer_framer)
        for sock in (self.consumer, self.producer):
            sock.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.consumer, selectors.EVENT_READ, "consumer")
        self.selector.register(self.producer, selectors.EVENT_READ, "producer")
        self.content = b"x" * payload
        self.produced = 0

    def exchange(self, run: int, count: int, window: int) -> tuple[float, list[float], int]:
        """Send ``count`` Interests keeping ``window`` in flight; (seconds, RTTs, Data received)."""
        sent_at: dict[int, float] = {}
        rtts: list[float] = []
        next_seq = 0
        received = 0
        out = bytearray()
        timeouts = 0
        start = time.perf_counter()
        last_progress = start
        while received + timeouts < count:
            while next_seq < count and len(sent_at) < window:
                out += interest_wire(run, next_seq)
                sent_at[next_seq] = time.perf_counter()
                next_seq += 1
            if out:
                self._send(self.consumer, out)
                out = bytearray()
            events = self.selector.select(1.0)
            now = time.perf_counter()
            if not events and now - last_progress > 5:
                timeouts += len(sent_at)  # lost: give up on them
                sent_at.clear()
            for key, _mask in events:
                if key.data == "producer":
                    replies = bytearray()
                    for packet in self.producer_framer.feed(self._recv(self.producer)):
                        if packet[0] == 0x05:
                            replies += data_for(packet, self.content)
                            self.produced += 1
                    if replies:
                        self._send(self.producer, replies)
                else:
                    for packet in self.consumer_framer.feed(self._recv(self.consumer)):
                        if packet[0] != 0x06:
                            continue
                        seq = seq_of(packet)
                        sent = sent_at.pop(seq, None)
                        if sent is not None:
                            rtts.append(now - sent)
                            received += 1
                            last_progress = now
        return time.perf_counter() - start, rtts, received

    @staticmethod
    def _recv(sock: socket.socket) -> bytes:
        try:
            return sock.recv(1 << 20)
        except BlockingIOError:
            return b""

    @staticmethod
    def _send(sock: socket.socket, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
                view = view[sent:]
            except BlockingIOError:
                select_one(sock)


def select_one(sock: socket.socket) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE)
        selector.select(1.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure_floor(args: argparse.Namespace) -> float:
    """CPU µs per exchange of the table-less relay, unique names, as the forwarder's phase 1."""
    process, port = start_relay()
    try:
        bench = Bench(port, args.payload, manage=False)
        bench.exchange(0, min(2000, args.count), args.window)  # warm-up
        cpu0 = cpu_seconds(process.pid)
        _seconds, _rtts, received = bench.exchange(1, args.count, args.window)
        cpu1 = cpu_seconds(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    return (cpu1 - cpu0) / max(received, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000, help="exchanges per throughput phase")
    parser.add_argument("--window", type=int, default=128, help="Interests in flight")
    parser.add_argument("--payload", type=int, default=100, help="Content octets per Data")
    parser.add_argument("--latency-count", type=int, default=3000, help="exchanges in the latency phase")
    parser.add_argument("--profile", metavar="OUT", help="run the forwarder under cProfile, writing OUT")
    parser.add_argument("--no-floor", action="store_true", help="do not measure the table-less relay")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    parser.add_argument("--relay", action="store_true", help=argparse.SUPPRESS)  # the floor's server
    args = parser.parse_args()
    if args.relay:
        run_relay()
        return

    process, port = start_forwarder(args.profile, ["--cs-capacity", str(max(65536, 2 * args.count))])
    try:
        bench = Bench(port, args.payload)
        bench.exchange(0, min(2000, args.count), args.window)  # warm-up
        produced = bench.produced
        cpu0 = cpu_seconds(process.pid)
        seconds, rtts, received = bench.exchange(1, args.count, args.window)
        cpu1 = cpu_seconds(process.pid)
        unique_rate = received / seconds
        unique_produced = bench.produced - produced
        produced = bench.produced
        hit_seconds, hit_rtts, hit_received = bench.exchange(1, args.count, args.window)
        cpu2 = cpu_seconds(process.pid)
        hit_rate = hit_received / hit_seconds
        hits_produced = bench.produced - produced
        _s, latencies, _r = bench.exchange(2, args.latency_count, 1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    floor_us = None if args.no_floor else measure_floor(args)
    unique_us = (cpu1 - cpu0) / max(received, 1) * 1e6

    print(f"sflow forwarder on 127.0.0.1, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
          f"payload {args.payload} B, window {args.window}")
    print(f"  unique names : {received}/{args.count} exchanges in {seconds:.2f} s = {unique_rate:,.0f} exchanges/s "
          f"(producer answered {unique_produced}; RTT under load p50 {percentile(rtts, 0.5) * 1e3:.2f} ms)")
    print(f"                 forwarder CPU {unique_us:.1f} us/exchange, "
          f"busy {100 * (cpu1 - cpu0) / seconds:.0f}% of one core")
    if floor_us is not None:
        print(f"                 floor (table-less relay, same traffic) {floor_us:.1f} us/exchange: "
              f"forwarder = {unique_us / floor_us:.2f} x floor")
    print(f"  CS hits      : {hit_received}/{args.count} exchanges in {hit_seconds:.2f} s = {hit_rate:,.0f} exchanges/s "
          f"(producer answered {hits_produced}; RTT under load p50 {percentile(hit_rtts, 0.5) * 1e3:.2f} ms)")
    print(f"                 forwarder CPU {(cpu2 - cpu1) / max(hit_received, 1) * 1e6:.1f} us/exchange, "
          f"busy {100 * (cpu2 - cpu1) / hit_seconds:.0f}% of one core")
    print(f"  latency      : one at a time, {len(latencies)} exchanges: p50 {percentile(latencies, 0.5) * 1e3:.3f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1e3:.3f} ms, mean {statistics.fmean(latencies) * 1e3:.3f} ms")
    print("  target       : >= 10,000 exchanges/s with unique names; <= 60 us forwarder CPU per exchange")
    print(f"  load average : {' '.join(f'{x:.2f}' for x in os.getloadavg())} (CPU figures are process CPU time)")
    if args.json:
        from report import emit

        emit(args, "icn_forwarder", {
            "unique_exchanges_per_s": unique_rate, "unique_cpu_us": unique_us, "floor_cpu_us": floor_us,
            "hit_exchanges_per_s": hit_rate, "hit_cpu_us": (cpu2 - cpu1) / max(hit_received, 1) * 1e6,
            "latency_p50_ms": percentile(latencies, 0.5) * 1e3, "latency_p99_ms": percentile(latencies, 0.99) * 1e3,
        })


if __name__ == "__main__":
    main()
