"""The Forwarding Information Base: name prefix → next hops (face, cost), longest-prefix match.

NFD ``daemon/table/fib*.{hpp,cpp}``: FIB entries live on the name tree; a lookup probes prefixes
from the longest down (or walks parent pointers when starting from a PIT entry); no match gives an
empty entry (no next hops), on which strategies answer Nack(NoRoute). A next-hop list is kept
sorted by cost (stable, so equal costs keep their insertion order). Adding a next hop that was not
there fires :attr:`Fib.after_new_next_hop`, which the forwarder uses to let strategies re-forward
pending Interests (``Forwarder::onNewNextHop``). Routes normally come from the RIB
(:mod:`sflow.icn.rib`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sflow.icn.name import EMPTY_NAME, Name
from sflow.icn.name_tree import NameTree, NameTreeEntry

if TYPE_CHECKING:
    from sflow.icn.face.base import Face
    from sflow.icn.pit import PitEntry


@dataclass(slots=True)
class NextHop:
    """One next hop of a FIB entry (mutable: its cost can be updated in place)."""

    face: Face
    cost: int


class FibEntry:
    """A FIB entry: a prefix and its next hops, sorted by cost."""

    __slots__ = ("prefix", "next_hops", "name_tree_entry")

    def __init__(self, prefix: Name) -> None:
        self.prefix = prefix
        self.next_hops: list[NextHop] = []
        self.name_tree_entry: NameTreeEntry | None = None

    def has_next_hops(self) -> bool:
        return bool(self.next_hops)

    def find_next_hop(self, face: Face) -> NextHop | None:
        for hop in self.next_hops:
            if hop.face is face:
                return hop
        return None

    def has_next_hop(self, face: Face) -> bool:
        return self.find_next_hop(face) is not None

    def _sort(self) -> None:
        self.next_hops.sort(key=lambda hop: hop.cost)

    def __repr__(self) -> str:
        hops = ", ".join(f"{hop.face.face_id}:{hop.cost}" for hop in self.next_hops)
        return f"FibEntry({self.prefix}, [{hops}])"


_EMPTY_ENTRY = FibEntry(EMPTY_NAME)


def _has_fib_entry(entry: NameTreeEntry) -> bool:
    return entry.fib_entry is not None


class Fib:
    """The FIB, on a shared :class:`~sflow.icn.name_tree.NameTree`."""

    def __init__(self, name_tree: NameTree) -> None:
        self.name_tree = name_tree
        self._n_entries = 0
        self.after_new_next_hop: list[Callable[[Name, NextHop], None]] = []

    def __len__(self) -> int:
        return self._n_entries

    def __iter__(self) -> Iterator[FibEntry]:
        entries = [node.fib_entry for node in self.name_tree if node.fib_entry is not None]
        return iter(sorted(entries, key=lambda entry: entry.prefix.wire))

    def find_longest_prefix_match(self, name: Name) -> FibEntry:
        """The entry with the longest prefix of ``name``; an empty entry if there is none."""
        node = self.name_tree.find_longest_prefix_match(name, _has_fib_entry)
        return node.fib_entry or _EMPTY_ENTRY

    def find_longest_prefix_match_for_pit(self, pit_entry: PitEntry) -> FibEntry:
        """LPM for a PIT entry: walk up from its name tree node (NFD ``findLongestPrefixMatch(pit::Entry)``)."""
        node: NameTreeEntry | None = pit_entry.name_tree_entry
        while node is not None:
            if node.fib_entry is not None:
                return node.fib_entry
            node = node.parent
        return self.name_tree.root.fib_entry or _EMPTY_ENTRY  # (a node already detached from the tree)

    def find_exact_match(self, prefix: Name) -> FibEntry | None:
        node = self.name_tree.find_exact(prefix)
        return node.fib_entry if node is not None else None

    def insert(self, prefix: Name) -> tuple[FibEntry, bool]:
        """The entry for ``prefix``, created if needed; ``(entry, created)``."""
        node = self.name_tree.lookup(prefix)
        if node.fib_entry is not None:
            return node.fib_entry, False
        entry = FibEntry(node.name)
        entry.name_tree_entry = node
        node.fib_entry = entry
        self._n_entries += 1
        return entry, True

    def add_or_update_next_hop(self, entry: FibEntry, face: Face, cost: int) -> bool:
        """Add a next hop or change its cost; True when it was new (which fires ``after_new_next_hop``)."""
        hop = entry.find_next_hop(face)
        if hop is not None:
            hop.cost = cost
            entry._sort()
            return False
        hop = NextHop(face, cost)
        entry.next_hops.append(hop)
        entry._sort()
        for callback in self.after_new_next_hop:
            callback(entry.prefix, hop)
        return True

    def remove_next_hop(self, entry: FibEntry, face: Face) -> bool:
        """Remove ``face`` from the entry; the entry goes when its last next hop does (NFD behaviour)."""
        before = len(entry.next_hops)
        entry.next_hops = [hop for hop in entry.next_hops if hop.face is not face]
        removed = len(entry.next_hops) != before
        if not entry.next_hops:
            self._erase_entry(entry)
        return removed

    def erase(self, prefix: Name) -> bool:
        entry = self.find_exact_match(prefix)
        if entry is None:
            return False
        self._erase_entry(entry)
        return True

    def remove_next_hop_from_all_entries(self, face: Face) -> None:
        """Drop ``face`` from every entry (when it closes)."""
        for entry in list(self):
            if entry.has_next_hop(face):
                self.remove_next_hop(entry, face)

    def _erase_entry(self, entry: FibEntry) -> None:
        node = entry.name_tree_entry
        if node is None or node.fib_entry is not entry:
            return
        node.fib_entry = None
        entry.name_tree_entry = None
        self._n_entries -= 1
        self.name_tree.erase_if_empty(node)
