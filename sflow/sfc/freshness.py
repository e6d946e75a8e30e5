"""Fresh ICN requests: per-run request keys, their validity window and the checks a node makes
(pure: times come in as arguments).

A captured compute, install or events Interest must not be replayable once its run is over. Each
run gets a **run key**: ``K_run = HMAC-SHA256(secret, "sflow-run-key-v1" ‖ key name)`` whose name,
``/sflow/key/cluster/run/<run>/<not-before ms>/<not-after ms>``, carries the run and its validity
window; only holders of the cluster secret can derive it, and the window cannot be changed
without changing the key. Requests of the run are v0.3 signed Interests (HMAC-SHA256, spec
``signed-interest.rst``) whose KeyLocator is that name and whose SignatureTime is the window's
start: every request for the same function within a run has the same signed part, hence the same
name (no SignatureNonce), so identical requests of one run still aggregate in PITs and the content
store.

A node (:class:`RequestGuard`) accepts a request when its HMAC verifies under the run key, the
key's window is no longer than the maximum and contains the node's clock (give or take the
allowed skew), its SignatureTime lies in the window and, per key, never goes back (the NDN
signed-Interest rule, non-strict so that aggregated identical requests pass), and the run has not
ended: the delegator ends each run on every node (``/sflow/ctl/end/<run>``), after which its key
is refused even within its window. Requests that need no run (``/sflow/ctl/status``) are signed
with the cluster key and a SignatureTime within the skew of the node's clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from sflow.icn.name import Name
from sflow.icn.packet import Interest
from sflow.icn.security import verify_interest
from sflow.icn.signature import HmacSha256Signer, KeyLocator, SignatureInfo, SignatureType
from sflow.sfc.names import KEY_NAME as CLUSTER_KEY_NAME

RUN_KEY_PREFIX = CLUSTER_KEY_NAME.append("run")
_DERIVATION_LABEL = b"sflow-run-key-v1\0"
#: ended runs remembered (their keys stay refused until their window has passed)
MAX_ENDED = 4096
#: keys whose last SignatureTime is remembered
MAX_TRACKED = 4096


@dataclass(frozen=True, slots=True)
class RunKey:
    """A run's request key: the run and its validity window (milliseconds since the epoch)."""

    run: str
    not_before_ms: int
    not_after_ms: int

    @classmethod
    def for_run(cls, run: str, now: float, validity: float, skew: float) -> RunKey:
        """The key of a run starting at ``now`` (seconds) and lasting at most ``validity`` seconds;
        the window opens ``skew`` seconds early for nodes whose clock is behind."""
        start = max(0, int((now - skew) * 1000))
        return cls(run, start, int((now + validity) * 1000))

    @property
    def name(self) -> Name:
        return _key_name(self.run, self.not_before_ms, self.not_after_ms)

    def derive(self, secret: bytes) -> bytes:
        return hmac.new(secret, _DERIVATION_LABEL + self.name.wire, hashlib.sha256).digest()

    @classmethod
    def parse(cls, name: Name) -> RunKey | None:
        """The run key a KeyLocator names, or None when it names none."""
        if len(name) != len(RUN_KEY_PREFIX) + 3 or not RUN_KEY_PREFIX.is_prefix_of(name):
            return None
        try:
            run = name[-3].value.decode("ascii")
            start, end = int(name[-2].value.decode("ascii")), int(name[-1].value.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None
        if not run or start < 0 or end < start:
            return None
        return cls(run, start, end)


@dataclass(frozen=True, slots=True)
class RunSigner:
    """Signs a run's requests (see the module docstring): deterministic, so that they aggregate."""

    run_key: RunKey
    key: bytes

    @classmethod
    def of(cls, run_key: RunKey, secret: bytes) -> RunSigner:
        return _signer(run_key, secret)

    def signature_info(self) -> SignatureInfo:
        return SignatureInfo(SignatureType.HMAC_WITH_SHA256, KeyLocator(name=self.run_key.name),
                             time=self.run_key.not_before_ms)

    def sign(self, portions: Sequence[bytes]) -> bytes:
        return HmacSha256Signer(self.run_key.name, self.key).sign(portions)


@lru_cache(maxsize=MAX_TRACKED)
def _key_name(run: str, not_before_ms: int, not_after_ms: int) -> Name:
    """A run key's name, made once per key (it is asked for on every request made or checked)."""
    return RUN_KEY_PREFIX.append(run, str(not_before_ms), str(not_after_ms))


@lru_cache(maxsize=MAX_TRACKED)
def _signer(run_key: RunKey, secret: bytes) -> RunSigner:
    """A run's signer, its key derived once (a node signs a request per input of a function)."""
    return RunSigner(run_key, run_key.derive(secret))


@dataclass(frozen=True, slots=True)
class TimedClusterSigner:
    """Signs requests that belong to no run with the cluster key and the current SignatureTime."""

    secret: bytes
    now_ms: int

    def signature_info(self) -> SignatureInfo:
        return SignatureInfo(SignatureType.HMAC_WITH_SHA256, KeyLocator(name=CLUSTER_KEY_NAME), time=self.now_ms)

    def sign(self, portions: Sequence[bytes]) -> bytes:
        return HmacSha256Signer(CLUSTER_KEY_NAME, self.secret).sign(portions)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A checked request: ``run_key`` when it was signed with a valid run key; ``reason`` says
    why it was refused ("" = accepted)."""

    reason: str = ""
    run_key: RunKey | None = None

    @property
    def ok(self) -> bool:
        return not self.reason


class RequestGuard:
    """Checks the freshness of signed requests (see the module docstring). ``max_validity`` and
    ``skew`` are seconds."""

    def __init__(self, secret: bytes, *, max_validity: float, skew: float) -> None:
        self.secret = secret
        self.max_validity_ms = int(max_validity * 1000)
        self.skew_ms = int(skew * 1000)
        self._keys: dict[Name, bytes] = {}
        self._last_time: OrderedDict[Name, int] = OrderedDict()
        self._ended: OrderedDict[str, int] = OrderedDict()
        self.counters = {"accepted": 0, "bad_signature": 0, "expired": 0, "stale": 0, "ended": 0}

    def check_run_request(self, interest: Interest, now: float) -> Verdict:
        """A compute, install or events request: signed with a valid, current run key."""
        info = interest.signature_info
        key_name = info.key_locator.name if info is not None and info.key_locator is not None else None
        run_key = RunKey.parse(key_name) if key_name is not None else None
        if info is None or run_key is None or info.signature_type != SignatureType.HMAC_WITH_SHA256:
            return self._refuse("bad_signature", "not signed with a run key")
        key = self._key(run_key)
        if not verify_interest(interest, key):
            return self._refuse("bad_signature", "bad run key signature")
        current = self.check_key(run_key, now)
        if not current.ok:
            return current
        time = info.time
        if time is None or not run_key.not_before_ms <= time <= run_key.not_after_ms:
            return self._refuse("stale", "SignatureTime missing or outside the key's window")
        last = self._last_time.get(run_key.name)
        if last is not None and time < last:
            return self._refuse("stale", "SignatureTime older than one already seen for this key")
        self._last_time[run_key.name] = time
        self._last_time.move_to_end(run_key.name)
        while len(self._last_time) > MAX_TRACKED:
            self._last_time.popitem(last=False)
        self.counters["accepted"] += 1
        return Verdict(run_key=run_key)

    def check_key(self, run_key: RunKey, now: float) -> Verdict:
        """Whether ``run_key`` is current: within its validity window (no longer than the
        maximum) and its run not ended. What a request signed with it must pass, and what a node's
        own request, made without an Interest (for a function placed on the node itself), passes."""
        now_ms = int(now * 1000)
        if run_key.not_after_ms - run_key.not_before_ms > self.max_validity_ms + self.skew_ms:
            return self._refuse("expired", "run key window longer than the maximum")
        if not run_key.not_before_ms - self.skew_ms <= now_ms <= run_key.not_after_ms + self.skew_ms:
            return self._refuse("expired", f"run {run_key.run} key outside its validity window")
        if run_key.run in self._ended:
            return self._refuse("ended", f"run {run_key.run} has ended")
        return Verdict(run_key=run_key)

    def check_cluster_request(self, interest: Interest, now: float) -> Verdict:
        """A request that belongs to no run (status): HMAC with the cluster key (any KeyLocator,
        so that older signers pass the signature check) and a SignatureTime within the skew."""
        info = interest.signature_info
        if info is None or info.signature_type != SignatureType.HMAC_WITH_SHA256:
            return self._refuse("bad_signature", "not signed with the cluster key")
        if not verify_interest(interest, self.secret):
            return self._refuse("bad_signature", "bad cluster key signature")
        if info.time is None or abs(info.time - int(now * 1000)) > self.skew_ms:
            return self._refuse("stale", "SignatureTime missing or outside the allowed skew")
        self.counters["accepted"] += 1
        return Verdict()

    def end(self, run: str, not_after_ms: int) -> None:
        """The run is over: its key is refused from now on."""
        self._ended[run] = not_after_ms
        self._ended.move_to_end(run)
        while len(self._ended) > MAX_ENDED:
            self._ended.popitem(last=False)

    def ended(self, run: str) -> bool:
        return run in self._ended

    def forget_expired(self, now: float) -> None:
        """Drop what no longer matters: ended runs whose window has passed."""
        limit = int(now * 1000) - self.skew_ms
        for run, not_after in list(self._ended.items()):
            if not_after < limit:
                del self._ended[run]

    def _key(self, run_key: RunKey) -> bytes:
        key = self._keys.get(run_key.name)
        if key is None:
            key = run_key.derive(self.secret)
            if len(self._keys) >= MAX_TRACKED:
                self._keys.clear()
            self._keys[run_key.name] = key
        return key

    def _refuse(self, counter: str, reason: str) -> Verdict:
        self.counters[counter] += 1
        return Verdict(reason=reason)
