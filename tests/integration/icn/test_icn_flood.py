"""An Interest flood against a real ``sflow forwarder`` with small limits (benchmarks/icn_flood.py
runs it with a million Interests and the default limits): the PIT stays within the flooding
face's quota, the limits count what they drop, memory stays bounded and a polite consumer on
another connection is still served."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from icn_flood import run_flood  # noqa: E402


def test_a_flood_is_bounded_and_the_forwarder_keeps_serving(tmp_path: Path) -> None:
    config = tmp_path / "sflow.toml"
    config.write_text("[icn]\npit_max_entries = 3000\npit_max_entries_per_face = 1000\n"
                      "face_interest_rate = 3000.0\nface_interest_burst = 1000\n")
    figures = run_flood(30_000, str(config))
    assert figures["in_interests"] >= 30_000
    assert figures["pit_entries"] <= 1000 + 10  # the flooder's quota, plus a few polite ones
    assert figures["pit_face_quota"] + figures["rate_limited"] > 0
    assert figures["pit_face_quota"] + figures["rate_limited"] + 1000 >= 30_000 - 100
    assert figures["rss_after_mb"] - figures["rss_before_mb"] < 40
    asked, answered = figures["polite_during"]
    assert asked > 0 and answered >= 0.8 * asked
    asked, answered = figures["polite_after"]
    assert answered >= 0.9 * asked
