"""Fuzzing the NDN-TLV decoders in CI (hypothesis; the long run is ``tests/fuzz/icn_tlv.py``):
arbitrary bytes and mutated valid packets never crash a decoder (DecodeError only) or a face, and
the forwarder's tables and the decoders' caches stay bounded."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))

from icn_tlv import Target, mutate, seeds  # noqa: E402

POOL = seeds()
TARGET = Target()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_a_decoder_or_a_face(wire: bytes) -> None:
    TARGET.check(wire)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32), st.sampled_from(range(len(POOL))))
def test_mutated_packets_never_crash_a_decoder_or_a_face(seed: int, index: int) -> None:
    TARGET.check(mutate(random.Random(seed), POOL[index], POOL))


def test_the_seeds_are_valid_packets() -> None:
    """The mutations start from packets every decoder path accepts (else they test little)."""
    before = dict((k, list(v)) for k, v in TARGET.outcomes.items())
    for wire in POOL:
        TARGET.check(wire)
    accepted = sum(TARGET.outcomes[k][0] - before[k][0] for k in TARGET.outcomes)
    assert accepted >= len(POOL)
