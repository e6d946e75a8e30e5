"""Fuzzing the NDN-TLV decoders: a long run (not in CI) and the cases CI's hypothesis test shares.

Every case is a byte string given to each decoder a peer can reach — Interest, Data, LpPacket,
ControlParameters, ControlResponse, the stream framing — and to a forwarder's face, as it would
arrive from the network (with the node's producer and management behind it). A decoder may only
raise :class:`~sflow.errors.DecodeError`; the face must never raise (a malformed packet is
counted and dropped, the face goes on); the forwarder's tables stay within their limits and the
decoders' caches within their bounds. Cases are random bytes, and valid packets (signed
Interests, Data, Nacks, management commands) mutated: bytes flipped, inserted, deleted, lengths
changed, cut short, spliced.

    .venv/bin/python tests/fuzz/icn_tlv.py [--cases 100000] [--seed 1]

prints the cases run, how many each decoder accepted or rejected, the forwarder's table sizes and
the process's peak memory every tenth of the run (it must stay flat), and exits 1 on any crash.
"""

from __future__ import annotations

import argparse
import logging
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from twisted.internet.task import Clock  # noqa: E402

from sflow.errors import DecodeError  # noqa: E402
from sflow.icn import lp as lpmod  # noqa: E402
from sflow.icn import packet as packetmod  # noqa: E402
from sflow.icn.control import (  # noqa: E402
    ControlParameters,
    ControlResponse,
    decode_control_parameters,
    decode_control_response,
)
from sflow.icn.face.base import Face, FaceScope  # noqa: E402
from sflow.icn.face.stream import NdnStreamProtocol, StreamFace  # noqa: E402
from sflow.icn.forwarder import Forwarder, ForwarderConfig  # noqa: E402
from sflow.icn.limits import ForwarderLimits  # noqa: E402
from sflow.icn.name import Component, Name  # noqa: E402
from sflow.icn.packet import encode_data, encode_interest, make_data, make_interest  # noqa: E402
from sflow.icn.signature import DigestSha256Signer, HmacSha256Signer  # noqa: E402

DECODERS: dict[str, Callable[[bytes], Any]] = {
    "interest": packetmod.decode_interest,
    "data": packetmod.decode_data,
    "lp": lpmod.decode_lp_packet,
    "control_parameters": decode_control_parameters,
    "control_response": decode_control_response,
}

LIMITS = ForwarderLimits(pit_max_entries=2000, max_faces=16, fib_max_entries=200, fib_max_nexthops=4,
                         interest_rate=0.0)


def seeds() -> list[bytes]:
    """Valid packets of every kind a peer sends, to mutate."""
    key = HmacSha256Signer(Name.from_uri("/sflow/key/cluster"), b"k" * 32)
    name = Name.from_uri("/sflow/fn/seq/" + "a" * 64)
    interest = make_interest(name, can_be_prefix=True, must_be_fresh=True, nonce=7, lifetime=4000, hop_limit=9,
                             forwarding_hint=(Name.from_uri("/hint"),))
    signed = make_interest(name, must_be_fresh=True, nonce=8, app_parameters=b"\x81\xa4from\xa0", signer=key)
    data = make_data(name.append(Component.version(3), Component.segment(0)), b"x" * 300, freshness_period=1000,
                     final_block_id=Component.segment(2), signer=key)
    digest_data = make_data(Name.from_uri("/a/b"), b"hello", signer=DigestSha256Signer())
    params = ControlParameters(name=Name.from_uri("/x/y"), face_id=300, origin=0, cost=10, flags=1,
                               expiration_period=1000)
    command = make_interest(Name.from_uri("/localhost/nfd/rib/register").append(Component.generic(params.encode())),
                            app_parameters=b"", signer=DigestSha256Signer(interest_nonce_size=8))
    return [
        encode_interest(interest),
        encode_interest(signed),
        encode_data(data),
        encode_data(digest_data),
        lpmod.wrap(encode_interest(interest), pit_token=b"\x01\x02\x03\x04"),
        lpmod.encode_lp_packet(lpmod.LpPacket(fragment=encode_interest(interest), nack_reason=150)),
        encode_interest(command),
        params.encode(),
        ControlResponse(200, "OK", params).encode(),
    ]


def mutate(rng: random.Random, base: bytes, pool: list[bytes]) -> bytes:
    """One to four random edits of ``base`` (mostly one: the packet stays nearly valid and the
    decoders go deep)."""
    buf = bytearray(base)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 4))):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a byte
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:  # insert bytes
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 2 and buf:  # delete bytes
            del buf[pos:pos + rng.randint(1, 8)]
        elif op == 3:  # cut short
            del buf[pos:]
        elif op == 4 and buf:  # a length or type octet set to a VAR-NUMBER marker or an extreme
            buf[min(pos, len(buf) - 1)] = rng.choice((0, 1, 252, 253, 254, 255))
        elif op == 5:  # splice another packet in
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            buf[pos:pos] = other[start:start + rng.randint(1, 64)]
        else:  # duplicate a slice (repeated elements)
            start = rng.randrange(len(buf) + 1)
            buf[pos:pos] = buf[start:start + rng.randint(1, 32)]
    return bytes(buf)


def random_case(rng: random.Random, pool: list[bytes]) -> bytes:
    if rng.random() < 0.15:
        return rng.randbytes(rng.randint(0, 64))
    return mutate(rng, rng.choice(pool), pool)


class Target:
    """A forwarder (with a producer route and management) and a network face into it."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.forwarder = Forwarder(self.clock, ForwarderConfig(limits=LIMITS, management_key=b"k" * 32))
        self.face = _SinkFace(FaceScope.NON_LOCAL, "tcp4://192.0.2.1:6363")
        self.local = _SinkFace(FaceScope.LOCAL, "tcp4://127.0.0.1:40000")
        self.producer = _SinkFace(FaceScope.LOCAL, "unix:///producer")
        for face in (self.face, self.local, self.producer):
            self.forwarder.add_face(face)
        self.forwarder.add_route("/sflow", self.producer)
        self.stream = NdnStreamProtocol()
        self.stream.face = StreamFace(self.stream, remote_uri="tcp4://192.0.2.2:1", local_uri="tcp4://0.0.0.0:6363")
        self.forwarder.add_face(self.stream.face)
        self.outcomes: dict[str, list[int]] = {name: [0, 0] for name in DECODERS}

    def check(self, wire: bytes) -> None:
        """One case: decoders raise only DecodeError, faces never raise, tables stay bounded."""
        for name, decode in DECODERS.items():
            try:
                decode(wire)
                self.outcomes[name][0] += 1
            except DecodeError:
                self.outcomes[name][1] += 1
        self.face.receive_wire(wire)
        self.local.receive_wire(wire)
        if self.stream.face is not None and not self.stream.face.closed:
            self.stream.dataReceived(wire)
        else:  # the framing closed the stream (a bad header): a new connection
            self.stream = NdnStreamProtocol()
            self.stream.face = StreamFace(self.stream, remote_uri="tcp4://192.0.2.2:1", local_uri="tcp4://0.0.0.0:6363")
            self.forwarder.add_face(self.stream.face)
        self.clock.advance(0.001)
        fwd = self.forwarder
        assert len(fwd.pit) <= LIMITS.pit_max_entries, len(fwd.pit)
        assert len(fwd.fib) <= LIMITS.fib_max_entries, len(fwd.fib)
        assert fwd.cs.n_bytes <= (fwd.cs.capacity_bytes or 1 << 62)
        assert len(packetmod._META_CACHE) <= packetmod._CACHE_LIMIT + 1
        assert len(packetmod._SIGNATURE_INFO_CACHE) <= packetmod._CACHE_LIMIT + 1

    def sizes(self) -> dict[str, int]:
        fwd = self.forwarder
        return {"pit": len(fwd.pit), "fib": len(fwd.fib), "cs": len(fwd.cs), "faces": len(fwd.faces),
                "name_tree": len(fwd.name_tree), "malformed": fwd.counters.n_malformed_packets}


class _SinkFace(Face):
    """A face whose output goes nowhere (what the forwarder sends back is not under test)."""

    def __init__(self, scope: FaceScope, uri: str) -> None:
        super().__init__(remote_uri=uri, local_uri="tcp4://0.0.0.0:6363", scope=scope)

    def transmit(self, wire: bytes) -> None:
        pass

    def close_transport(self) -> None:
        pass


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the faces log each oversize packet they drop
    rng = random.Random(args.seed)
    pool = seeds()
    n_seeds = len(pool)
    target = Target()
    started = time.perf_counter()
    step = max(1, args.cases // 10)
    print(f"fuzzing the NDN-TLV decoders and a forwarder face: {args.cases} cases, seed {args.seed}")
    for i in range(1, args.cases + 1):
        wire = random_case(rng, pool)
        try:
            target.check(wire)
        except Exception:  # a crash: print the case to reproduce it
            print(f"CRASH on case {i}: {wire.hex()}", file=sys.stderr)
            raise
        if rng.random() < 0.01:
            pool.append(wire)  # some mutants become seeds (deeper cases); the valid ones stay
            if len(pool) > 200:
                del pool[n_seeds]
        if i % step == 0:
            print(f"  {i:>8} cases  {time.perf_counter() - started:6.1f} s  peak RSS {_peak_mb():6.1f} MB  "
                  f"{target.sizes()}")
    print("decoders (accepted / rejected with DecodeError):")
    for name, (ok, bad) in target.outcomes.items():
        print(f"  {name:<20} {ok:>8} / {bad:>8}")
    print(f"no crash in {args.cases} cases ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
