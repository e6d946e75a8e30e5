"""The Content Store: cached Data, matched against Interests as NFD's ``Cs`` does.

NFD ``daemon/table/cs*.{hpp,cpp}``:

* Entries are identified by the Data's *full name* (name + implicit SHA-256 digest), so two
  different Data with the same name are both kept. A lookup considers the entries under the
  Interest's name and returns the **first in canonical order** that can satisfy it
  (``Cs::find``: ``lower_bound(prefix)`` then the first match).
* ``canSatisfy``: ``Interest::matchesData`` (exact name; any longer name with CanBePrefix; the full
  name when the Interest ends with an ImplicitSha256Digest) and, with MustBeFresh, the entry is
  fresh: ``freshUntil = arrival + FreshnessPeriod``, so Data without FreshnessPeriod is stale at
  once. Re-inserting the same Data refreshes it (and clears its *unsolicited* mark).
* Capacity 0 disables caching; ``enable_admit`` / ``enable_serve`` are NFD's ``cs/config`` flags.
  The forwarder does not insert Data that came with NDNLPv2 ``CachePolicy=NoCache``.
* Replacement policies: ``lru`` (NFD's default) and
  ``priority-fifo`` (three FIFO queues evicted in order unsolicited → stale → fresh; an entry
  becomes stale at its ``freshUntil``, which is applied lazily but in the same order as NFD's
  timers would).

sflow adds a byte capacity next to NFD's packet capacity; either limit evicts.

Instead of NFD's ordered set, entries sit in a dict keyed by their encoding (see
:class:`CsEntry`) plus indexes: exact Data name → entries, parent name (the name less its last
component) → entries, and prefix → the child prefixes that have entries beneath them. The common
exact-name lookup and an insert cost a few dict operations whatever the name's depth; a
CanBePrefix lookup walks the prefix's subtree and takes the canonical minimum of the entries there.
"""

from __future__ import annotations

import heapq
import itertools
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sflow.icn.name import Name
from sflow.icn.packet import Data, Interest, encode_data

DEFAULT_CAPACITY = 65536
"""``cs_max_packets`` in NFD's sample configuration."""

class CsEntry:
    """A cached Data packet with its freshness and admission state.

    The store keys an entry by its Data's encoding (``key``, the same bytes as ``wire``): equal
    encodings are equal full names and different ones different full names, so the SHA-256 of
    the full name is only computed (``full_key``) when the canonical order or a digest is asked."""

    __slots__ = ("data", "wire", "key", "name_key", "fresh_until", "unsolicited", "size", "_full_key")

    def __init__(self, data: Data, wire: bytes, fresh_until: float, unsolicited: bool) -> None:
        self.data = data
        self.wire = wire
        self.key = wire
        self.name_key = data.name.wire
        self.fresh_until = fresh_until
        self.unsolicited = unsolicited
        self.size = len(wire)
        self._full_key: bytes | None = None

    @property
    def full_key(self) -> bytes:
        """The wire of the Data's full name (name and ImplicitSha256Digest): the canonical order."""
        if self._full_key is None:
            self._full_key = self.data.full_name_wire()
        return self._full_key

    def is_fresh(self, now: float) -> bool:
        return self.fresh_until > now


# ------------------------------------------------------------------------------------------------
# replacement policies


class CsPolicy(ABC):
    """Decides which entry to evict. The store calls these hooks and asks :meth:`evict_one` for a
    victim whenever it is over a limit."""

    name = ""

    @abstractmethod
    def after_insert(self, entry: CsEntry, now: float) -> None: ...

    @abstractmethod
    def after_refresh(self, entry: CsEntry, now: float) -> None: ...

    @abstractmethod
    def before_erase(self, entry: CsEntry) -> None: ...

    @abstractmethod
    def before_use(self, entry: CsEntry) -> None: ...

    @abstractmethod
    def evict_one(self, now: float) -> bytes | None:
        """The key of the entry to evict next, or ``None`` when empty."""


class LruPolicy(CsPolicy):
    """Least recently used (NFD ``cs-policy-lru``): inserting, refreshing or using an entry makes it newest.

    The keys sit in an ordered dict, oldest first."""

    name = "lru"

    def __init__(self) -> None:
        self._order: OrderedDict[bytes, None] = OrderedDict()

    def after_insert(self, entry: CsEntry, now: float) -> None:
        self._order[entry.key] = None

    def after_refresh(self, entry: CsEntry, now: float) -> None:
        self._order.move_to_end(entry.key)

    def before_erase(self, entry: CsEntry) -> None:
        self._order.pop(entry.key, None)

    def before_use(self, entry: CsEntry) -> None:
        self._order.move_to_end(entry.key)

    def evict_one(self, now: float) -> bytes | None:
        if not self._order:
            return None
        key, _ = self._order.popitem(last=False)
        return key


class PriorityFifoPolicy(CsPolicy):
    """NFD ``cs-policy-priority-fifo``: evict unsolicited first, then stale, then fresh, each FIFO."""

    name = "priority-fifo"

    UNSOLICITED, STALE, FRESH = 0, 1, 2

    def __init__(self) -> None:
        self._queues: tuple[OrderedDict[bytes, None], ...] = (OrderedDict(), OrderedDict(), OrderedDict())
        self._where: dict[bytes, int] = {}
        self._stale_at: list[tuple[float, int, bytes]] = []
        self._counter = itertools.count()

    def _attach(self, entry: CsEntry, now: float) -> None:
        if entry.unsolicited:
            queue = self.UNSOLICITED
        elif entry.is_fresh(now):
            queue = self.FRESH
            heapq.heappush(self._stale_at, (entry.fresh_until, next(self._counter), entry.key))
        else:
            queue = self.STALE
        self._queues[queue][entry.key] = None
        self._where[entry.key] = queue

    def _detach(self, key: bytes) -> None:
        queue = self._where.pop(key, None)
        if queue is not None:
            del self._queues[queue][key]

    def _age(self, now: float) -> None:
        """Move entries whose freshness ended to the back of the stale queue, in the order they ended."""
        heap = self._stale_at
        while heap and heap[0][0] <= now:
            _when, _n, key = heapq.heappop(heap)
            if self._where.get(key) == self.FRESH:
                del self._queues[self.FRESH][key]
                self._queues[self.STALE][key] = None
                self._where[key] = self.STALE

    def queue_of(self, key: bytes, now: float) -> int | None:
        self._age(now)
        return self._where.get(key)

    def after_insert(self, entry: CsEntry, now: float) -> None:
        self._age(now)
        self._attach(entry, now)

    def after_refresh(self, entry: CsEntry, now: float) -> None:
        self._age(now)
        self._detach(entry.key)
        self._attach(entry, now)

    def before_erase(self, entry: CsEntry) -> None:
        self._detach(entry.key)

    def before_use(self, entry: CsEntry) -> None:
        """FIFO: using an entry does not change its position."""

    def evict_one(self, now: float) -> bytes | None:
        self._age(now)
        for queue in self._queues:
            if queue:
                key = next(iter(queue))
                self._detach(key)
                return key
        return None


POLICIES: dict[str, Callable[[], CsPolicy]] = {"lru": LruPolicy, "priority-fifo": PriorityFifoPolicy}


# ------------------------------------------------------------------------------------------------
# the store


class ContentStore:
    """The Content Store. ``capacity`` counts packets, ``capacity_bytes`` wire bytes (None = no limit)."""

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, capacity_bytes: int | None = None, policy: str = "lru"
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown CS policy {policy!r}; choose from {sorted(POLICIES)}")
        self.capacity = capacity
        self.capacity_bytes = capacity_bytes
        self.enable_admit = True
        self.enable_serve = True
        self.n_bytes = 0
        self._entries: dict[bytes, CsEntry] = {}
        # Data name → its one entry's full key, or a set of them when several Data share a name.
        self._by_name: dict[bytes, bytes | set[bytes]] = {}
        # Parent name → full keys of the entries whose Data name is one component longer; and
        # prefix → its child prefixes that have such entries at or below them (for CanBePrefix).
        self._by_parent: dict[bytes, dict[bytes, None]] = {}
        self._children: dict[bytes, set[bytes]] = {}
        self.policy: CsPolicy = POLICIES[policy]()

    @property
    def policy_name(self) -> str:
        return self.policy.name

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Data]:
        """Cached Data in canonical order of their full names (NFD ``Cs`` enumeration)."""
        return iter([entry.data for entry in self._canonical(self._entries)])

    def _canonical(self, keys: Iterable[bytes]) -> list[CsEntry]:
        """The entries of ``keys`` in canonical order of their full names."""
        return sorted((self._entries[key] for key in keys), key=lambda entry: entry.full_key)

    def _find_full_name(self, name: Name) -> CsEntry | None:
        """The entry whose full name is ``name`` (a name ending with an ImplicitSha256Digest)."""
        if not name.has_implicit_digest():
            return None
        same_name = self._by_name.get(name.prefix_wire(len(name.ends) - 1))
        wanted = name.wire
        for key in (same_name,) if isinstance(same_name, bytes) else same_name or ():
            entry = self._entries[key]
            if entry.full_key == wanted:
                return entry
        return None

    def set_limit(self, capacity: int, capacity_bytes: int | None = None) -> None:
        self.capacity = capacity
        self.capacity_bytes = capacity_bytes
        self._enforce_limits(0.0)

    # --- insertion ------------------------------------------------------------------------------
    def insert(self, data: Data, now: float, is_unsolicited: bool = False) -> bool:
        """Cache ``data`` (NFD ``Cs::insert``); False when admission is off or capacity is 0."""
        if not self.enable_admit or self.capacity <= 0:
            return False
        wire = data.wire or encode_data(data)
        if self.capacity_bytes is not None and len(wire) > self.capacity_bytes:
            return False
        fresh_until = now + data.freshness_period / 1000.0
        existing = self._entries.get(wire)
        if existing is not None:
            existing.fresh_until = fresh_until
            if not is_unsolicited:
                existing.unsolicited = False
            self.policy.after_refresh(existing, now)
            return True
        entry = CsEntry(data, wire, fresh_until, is_unsolicited)
        self._entries[wire] = entry
        self.n_bytes += entry.size
        name_key = entry.name_key
        by_name = self._by_name
        same_name = by_name.get(name_key)
        if same_name is None:
            by_name[name_key] = wire
        elif isinstance(same_name, bytes):
            by_name[name_key] = {same_name, wire}
        else:
            same_name.add(wire)
        ends = data.name.ends
        parent = name_key[: ends[-2]] if len(ends) > 1 else b""
        bucket = self._by_parent.get(parent)
        if bucket is None:
            self._by_parent[parent] = {wire: None}
            self._link(name_key, ends, len(ends) - 1)
        else:
            bucket[wire] = None
        self.policy.after_insert(entry, now)
        if len(self._entries) > self.capacity or (self.capacity_bytes is not None and self.n_bytes > self.capacity_bytes):
            self._enforce_limits(now)
        return True

    def _enforce_limits(self, now: float) -> None:
        while len(self._entries) > self.capacity or (
            self.capacity_bytes is not None and self.n_bytes > self.capacity_bytes
        ):
            key = self.policy.evict_one(now)
            if key is None:
                break
            self._remove(key)

    def _remove(self, key: bytes) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self.n_bytes -= entry.size
        name_key = entry.name_key
        same_name = self._by_name[name_key]
        if isinstance(same_name, bytes):
            del self._by_name[name_key]
        else:
            same_name.discard(key)
            if len(same_name) == 1:
                self._by_name[name_key] = next(iter(same_name))
        ends = entry.data.name.ends
        parent = name_key[: ends[-2]] if len(ends) > 1 else b""
        bucket = self._by_parent[parent]
        del bucket[key]
        if not bucket:
            del self._by_parent[parent]
            self._unlink(name_key, ends, len(ends) - 1)

    @staticmethod
    def _prefix(name_key: bytes, ends: tuple[int, ...], depth: int) -> bytes:
        return name_key[: ends[depth - 1]] if depth else b""

    def _link(self, name_key: bytes, ends: tuple[int, ...], depth: int) -> None:
        """The prefix of ``depth`` components now has entries below it: link it to its ancestors."""
        children = self._children
        while depth > 0:
            prefix = self._prefix(name_key, ends, depth)
            up = self._prefix(name_key, ends, depth - 1)
            kids = children.get(up)
            if kids is not None:
                kids.add(prefix)
                return  # ``up`` is linked already
            children[up] = {prefix}
            depth -= 1

    def _unlink(self, name_key: bytes, ends: tuple[int, ...], depth: int) -> None:
        """The prefix of ``depth`` components may have nothing below it any more: unlink upwards."""
        children = self._children
        while depth > 0:
            prefix = self._prefix(name_key, ends, depth)
            if prefix in self._by_parent or prefix in children:
                return
            up = self._prefix(name_key, ends, depth - 1)
            kids = children[up]
            kids.discard(prefix)
            if kids:
                return
            del children[up]
            depth -= 1

    def _keys_under(self, prefix: bytes) -> list[bytes]:
        """Full keys of the entries whose Data name has ``prefix`` as a proper prefix."""
        keys: list[bytes] = []
        stack = [prefix]
        while stack:
            here = stack.pop()
            bucket = self._by_parent.get(here)
            if bucket is not None:
                keys.extend(bucket)
            stack.extend(self._children.get(here, ()))
        return keys

    # --- lookup ---------------------------------------------------------------------------------
    def find(self, interest: Interest, now: float) -> Data | None:
        """The Data that satisfies ``interest`` (the first in canonical order), or None."""
        entry = self.find_entry(interest, now)
        return entry.data if entry is not None else None

    def find_entry(self, interest: Interest, now: float) -> CsEntry | None:
        if not self.enable_serve or not self._entries:
            return None
        iname = interest.name.wire
        fresh = interest.must_be_fresh
        candidates: Any
        entry: CsEntry | None
        exact = self._by_name.get(iname)
        if interest.can_be_prefix:
            under = self._keys_under(iname)
            if exact is None and not under:
                entry = self._find_full_name(interest.name)  # a full name names at most one entry
                candidates = (entry.key,) if entry is not None else ()
            else:
                candidates = [*((exact,) if isinstance(exact, bytes) else exact or ()), *(under or ())]
        elif exact is None:
            entry = self._find_full_name(interest.name)
            if entry is None or (fresh and not entry.is_fresh(now)):
                return None
            self.policy.before_use(entry)
            return entry
        elif isinstance(exact, bytes):
            entry = self._entries[exact]
            if fresh and not entry.is_fresh(now):
                return None
            self.policy.before_use(entry)
            return entry
        else:
            candidates = exact
        best: CsEntry | None = None
        for key in candidates:
            entry = self._entries[key]
            if fresh and not entry.is_fresh(now):
                continue
            if best is None or entry.full_key < best.full_key:
                best = entry
        if best is not None:
            self.policy.before_use(best)
        return best

    # --- erasure --------------------------------------------------------------------------------
    def erase(self, prefix: Name, limit: int | None = None) -> int:
        """Erase up to ``limit`` entries under ``prefix`` in canonical order (NFD ``Cs::erase``)."""
        if prefix.ends:
            exact = self._by_name.get(prefix.wire)
            entries = self._canonical([*((exact,) if isinstance(exact, bytes) else exact or ()),
                                       *self._keys_under(prefix.wire)])
        else:
            entries = self._canonical(self._entries)
        if limit is not None:
            entries = entries[:limit]
        for entry in entries:
            self.policy.before_erase(entry)
            self._remove(entry.key)
        return len(entries)

    def entry_for(self, data: Data) -> CsEntry | None:
        return self._entries.get(data.wire or encode_data(data))
