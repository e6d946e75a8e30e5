"""The Pending Interest Table: entries with in-records (downstreams) and out-records (upstreams).

NFD ``daemon/table/pit*.{hpp,cpp}``:

* An entry is keyed by Name + CanBePrefix + MustBeFresh (``Entry::canMatch``); ForwardingHint is
  not part of the key. An entry hangs on the name tree at the name's depth, one less when the name
  ends with an ImplicitSha256Digest (capped at the tree's maximum depth).
* In-record per downstream face: last Nonce, last renewed, expiry = renewed + InterestLifetime
  (capped at 10 days), the last Interest and its NDNLPv2 PIT token.
* Out-record per upstream face: last Nonce, last renewed, expiry, and the last incoming Nack.
* Data matching (``Pit::findAllDataMatches``) walks the name tree prefixes of the Data's name and
  keeps entries whose Interest matches the Data (MustBeFresh plays no role here).

Times are seconds from the forwarder's clock, passed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sflow.icn.name import IMPLICIT_SHA256_DIGEST
from sflow.icn.name_tree import NameTree, NameTreeEntry
from sflow.icn.packet import DEFAULT_INTEREST_LIFETIME, Data, Interest

if TYPE_CHECKING:
    from sflow.icn.face.base import Face

MAX_LIFETIME = 10 * 24 * 3600.0
"""NFD caps an in-record's lifetime at 10 days."""


def _lifetime(interest: Interest) -> float:
    """The Interest's lifetime in seconds, capped at :data:`MAX_LIFETIME`."""
    lifetime = interest.lifetime
    if lifetime is None:
        return DEFAULT_INTEREST_LIFETIME / 1000.0
    return min(lifetime / 1000.0, MAX_LIFETIME)


class InRecord:
    """A downstream that asked for the entry's Interest."""

    __slots__ = ("face", "nonce", "last_renewed", "expiry", "interest", "pit_token")

    def __init__(self, face: Face) -> None:
        self.face = face
        self.nonce = 0
        self.last_renewed = 0.0
        self.expiry = 0.0
        self.interest: Interest | None = None
        self.pit_token: bytes | None = None

    def update(self, interest: Interest, now: float, pit_token: bytes | None) -> None:
        self.nonce = interest.nonce or 0
        self.last_renewed = now
        self.expiry = now + _lifetime(interest)
        self.interest = interest
        self.pit_token = pit_token


class OutRecord:
    """An upstream the entry's Interest was forwarded to."""

    __slots__ = ("face", "nonce", "last_renewed", "expiry", "incoming_nack", "retx_suppression_interval", "_info")

    def __init__(self, face: Face) -> None:
        self.face = face
        self.nonce = 0
        self.last_renewed = 0.0
        self.expiry = 0.0
        self.incoming_nack: int | None = None
        self.retx_suppression_interval = 0.0
        self._info: dict[str, Any] | None = None

    @property
    def strategy_info(self) -> dict[str, Any]:
        """Per-strategy state on this out-record (NFD ``StrategyInfo``), created on first use."""
        if self._info is None:
            self._info = {}
        return self._info

    def update(self, interest: Interest, now: float) -> None:
        self.nonce = interest.nonce or 0
        self.last_renewed = now
        self.expiry = now + _lifetime(interest)
        self.incoming_nack = None


class PitEntry:
    """A pending Interest: the Interest that created it, its records and its state."""

    __slots__ = (
        "interest",
        "name",
        "key",
        "in_records",
        "out_records",
        "is_satisfied",
        "data_freshness_period",
        "expiry_ticket",
        "quota_face_id",
        "name_tree_entry",
        "retx_suppression_interval",
        "_info",
        "erased",
    )

    def __init__(self, interest: Interest, key: tuple[bytes, bool, bool], node: NameTreeEntry) -> None:
        self.interest = interest
        self.name = interest.name
        self.key = key
        self.in_records: dict[int, InRecord] = {}
        self.out_records: dict[int, OutRecord] = {}
        self.is_satisfied = False
        self.data_freshness_period = 0
        #: the ticket of the entry's current expiry timer (0: none); see Forwarder.set_expiry_timer
        self.expiry_ticket = 0
        #: the face whose PIT quota counts this entry (0: none); kept by the forwarder
        self.quota_face_id = 0
        self.name_tree_entry = node
        self.retx_suppression_interval = 0.0
        self._info: dict[str, Any] | None = None
        self.erased = False

    @property
    def strategy_info(self) -> dict[str, Any]:
        """Per-strategy state on this entry (NFD ``StrategyInfo``), created on first use."""
        if self._info is None:
            self._info = {}
        return self._info

    @property
    def can_be_prefix(self) -> bool:
        return self.key[1]

    @property
    def must_be_fresh(self) -> bool:
        return self.key[2]

    def can_match(self, interest: Interest) -> bool:
        """NFD ``Entry::canMatch``: same name, CanBePrefix and MustBeFresh."""
        return self.key == (interest.name.wire, interest.can_be_prefix, interest.must_be_fresh)

    # --- in-records -------------------------------------------------------------------------
    def has_in_records(self) -> bool:
        return bool(self.in_records)

    def get_in_record(self, face: Face) -> InRecord | None:
        return self.in_records.get(face.face_id)

    def insert_or_update_in_record(
        self, face: Face, interest: Interest, now: float, pit_token: bytes | None = None
    ) -> InRecord:
        record = self.in_records.get(face.face_id)
        if record is None:
            record = InRecord(face)
            self.in_records[face.face_id] = record
        record.update(interest, now, pit_token)
        return record

    def delete_in_record(self, face: Face) -> None:
        self.in_records.pop(face.face_id, None)

    def clear_in_records(self) -> None:
        self.in_records.clear()

    # --- out-records ------------------------------------------------------------------------
    def get_out_record(self, face: Face) -> OutRecord | None:
        return self.out_records.get(face.face_id)

    def insert_or_update_out_record(self, face: Face, interest: Interest, now: float) -> OutRecord:
        record = self.out_records.get(face.face_id)
        if record is None:
            record = OutRecord(face)
            self.out_records[face.face_id] = record
        record.update(interest, now)
        return record

    def delete_out_record(self, face: Face) -> None:
        self.out_records.pop(face.face_id, None)

    def has_pending_out_records(self, now: float) -> bool:
        """Any out-record not yet expired and not Nacked (NFD ``fw::hasPendingOutRecords``)."""
        for record in self.out_records.values():
            if record.expiry > now and record.incoming_nack is None:
                return True
        return False

    def last_outgoing(self) -> float:
        """When the Interest was last forwarded (NFD ``Entry::getLastOutgoing``)."""
        return max((record.last_renewed for record in self.out_records.values()), default=float("-inf"))

    def __repr__(self) -> str:
        flags = ("P" if self.key[1] else "") + ("F" if self.key[2] else "")
        return f"PitEntry({self.name}{' ' + flags if flags else ''})"


class Pit:
    """The PIT, on a shared :class:`~sflow.icn.name_tree.NameTree`."""

    def __init__(self, name_tree: NameTree) -> None:
        self.name_tree = name_tree
        self._entries: dict[tuple[bytes, bool, bool], PitEntry] = {}
        self._n_digest_entries = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[PitEntry]:
        return iter(list(self._entries.values()))

    def find(self, interest: Interest) -> PitEntry | None:
        return self._entries.get((interest.name.wire, interest.can_be_prefix, interest.must_be_fresh))

    def get(self, key: tuple[bytes, bool, bool]) -> PitEntry | None:
        """The entry with this key (name wire, CanBePrefix, MustBeFresh)."""
        return self._entries.get(key)

    def insert(self, interest: Interest) -> tuple[PitEntry, bool]:
        """Find or create the entry for ``interest``: ``(entry, created)``."""
        key = (interest.name.wire, interest.can_be_prefix, interest.must_be_fresh)
        entry = self._entries.get(key)
        if entry is not None:
            return entry, False
        name = interest.name
        depth = len(name.ends)
        if name.has_implicit_digest():
            depth -= 1
            self._n_digest_entries += 1
        node = self.name_tree.lookup(name, depth)
        entry = PitEntry(interest, key, node)
        node.pit_entries.append(entry)
        self._entries[key] = entry
        return entry, True

    def erase(self, entry: PitEntry) -> None:
        if entry.erased:
            return
        entry.erased = True
        del self._entries[entry.key]
        if self._n_digest_entries and entry.name.has_implicit_digest():
            self._n_digest_entries -= 1
        node = entry.name_tree_entry
        node.pit_entries.remove(entry)
        self.name_tree.erase_if_empty(node)

    def find_all_data_matches(self, data: Data) -> list[PitEntry]:
        """Entries whose Interest the Data satisfies (NFD ``Pit::findAllDataMatches``)."""
        name = data.name
        wire = name.wire
        node: NameTreeEntry | None = self.name_tree.find_longest_prefix_match(name)
        matches: list[PitEntry] = []
        digest_wire: bytes | None = None
        exact_depth = len(name.ends)
        while node is not None:
            for entry in node.pit_entries:
                entry_wire = entry.key[0]
                if entry_wire == wire:
                    matches.append(entry)
                elif entry.key[1] and node.depth < exact_depth and len(entry_wire) < len(wire):
                    if wire.startswith(entry_wire) and entry.name.is_prefix_of(name):
                        matches.append(entry)
                elif self._n_digest_entries and len(entry.name) == exact_depth + 1 and entry_wire.startswith(wire):
                    if entry.name.last_type() == IMPLICIT_SHA256_DIGEST:
                        if digest_wire is None:
                            digest_wire = data.full_name_wire()
                        if entry_wire == digest_wire:
                            matches.append(entry)
            node = node.parent
        return matches
