"""Retransmission suppression: whether a consumer's retransmitted Interest is forwarded again.

NFD ``daemon/fw/retx-suppression-*.{hpp,cpp}``. A PIT entry with no pending out-record holds a
*new* Interest. Otherwise the retransmission is suppressed when it comes sooner than the
suppression interval after the last outgoing Interest. With the exponential policy the interval
starts at 10 ms and doubles every time a retransmission is forwarded, up to 250 ms
(``RetxSuppressionExponential`` defaults); the fixed policy always uses 100 ms.
``decide_per_upstream`` (used by multicast) keeps the interval per out-record instead.
"""

from __future__ import annotations

from enum import Enum

from sflow.icn.face.base import Face
from sflow.icn.pit import OutRecord, PitEntry


class RetxSuppressionResult(Enum):
    NEW = "new"
    FORWARD = "forward"
    SUPPRESS = "suppress"


class RetxSuppressionFixed:
    """NFD ``RetxSuppressionFixed``: a constant minimum interval between forwarded retransmissions."""

    DEFAULT_MIN_RETX_INTERVAL = 0.1

    def __init__(self, min_retx_interval: float = DEFAULT_MIN_RETX_INTERVAL) -> None:
        self.min_retx_interval = min_retx_interval

    def decide_per_pit_entry(self, pit_entry: PitEntry, now: float) -> RetxSuppressionResult:
        if not pit_entry.has_pending_out_records(now):
            return RetxSuppressionResult.NEW
        if now - pit_entry.last_outgoing() < self.min_retx_interval:
            return RetxSuppressionResult.SUPPRESS
        return RetxSuppressionResult.FORWARD


class RetxSuppressionExponential:
    """NFD ``RetxSuppressionExponential``: initial 10 ms, ×2 per forwarded retransmission, max 250 ms."""

    DEFAULT_INITIAL_INTERVAL = 0.010
    DEFAULT_MULTIPLIER = 2.0
    DEFAULT_MAX_INTERVAL = 0.250

    def __init__(
        self,
        initial_interval: float = DEFAULT_INITIAL_INTERVAL,
        multiplier: float = DEFAULT_MULTIPLIER,
        max_interval: float = DEFAULT_MAX_INTERVAL,
    ) -> None:
        if initial_interval <= 0 or multiplier < 1 or max_interval < initial_interval:
            raise ValueError("retransmission suppression needs 0 < initial <= max and multiplier >= 1")
        self.initial_interval = initial_interval
        self.multiplier = multiplier
        self.max_interval = max_interval

    def decide_per_pit_entry(self, pit_entry: PitEntry, now: float) -> RetxSuppressionResult:
        if not pit_entry.out_records or not pit_entry.has_pending_out_records(now):
            return RetxSuppressionResult.NEW
        since_last = now - pit_entry.last_outgoing()
        interval = pit_entry.retx_suppression_interval or self.initial_interval
        pit_entry.retx_suppression_interval = interval
        if since_last < interval:
            return RetxSuppressionResult.SUPPRESS
        pit_entry.retx_suppression_interval = min(self.max_interval, interval * self.multiplier)
        return RetxSuppressionResult.FORWARD

    def decide_per_upstream(self, pit_entry: PitEntry, out_face: Face, now: float) -> RetxSuppressionResult:
        record = pit_entry.get_out_record(out_face)
        if record is None:
            return RetxSuppressionResult.NEW
        interval = record.retx_suppression_interval or self.initial_interval
        record.retx_suppression_interval = interval
        if now - record.last_renewed < interval:
            return RetxSuppressionResult.SUPPRESS
        return RetxSuppressionResult.FORWARD

    def increment_interval_for_out_record(self, record: OutRecord) -> None:
        interval = record.retx_suppression_interval or self.initial_interval
        record.retx_suppression_interval = min(self.max_interval, interval * self.multiplier)
