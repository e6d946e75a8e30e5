"""Property-based fuzzing of the frame decoder and the channel (a short run in CI; the long run of
100,000+ cases each is tests/fuzz/fuzz_frames.py)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sflow.node.protocol import Data

from frame_fuzz import decode_stream, feed_sealed, feed_stranger, mutate, valid_stream

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
cuts = st.lists(st.integers(min_value=0, max_value=4096), max_size=8)


@FAST
@given(st.binary(max_size=3000), cuts)
def test_decoder_on_random_bytes(data: bytes, chunking: list[int]) -> None:
    decode_stream(data, chunking)


@FAST
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=6), cuts)
def test_decoder_on_mutated_frames(seed: int, edits: int, chunking: list[int]) -> None:
    decode_stream(mutate(valid_stream(), random.Random(seed), edits), chunking)


@FAST
@given(st.one_of(st.binary(max_size=3000), st.integers(min_value=0).map(lambda s: mutate(valid_stream(), random.Random(s), 3))), cuts)
def test_a_stranger_channel_never_raises_and_reaches_nothing(data: bytes, chunking: list[int]) -> None:
    feed_stranger(data, chunking)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=4), cuts)
def test_mutated_sealed_frames_never_reach_the_handler(seed: int, edits: int, chunking: list[int]) -> None:
    feed_sealed(seed, edits, chunking)


def test_the_unchanged_stream_decodes_whole() -> None:
    # the targets do check something: the valid stream yields every frame
    frames = decode_stream(valid_stream(), [])
    assert ["data" if isinstance(m, Data) else m["t"] for m in frames] == ["hello", "start", "data", "error"]
