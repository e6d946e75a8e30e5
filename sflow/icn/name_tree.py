"""The name tree: one node per name prefix, shared by the FIB, the PIT and the strategy choice table.

NFD ``daemon/table/name-tree*.{hpp,cpp}``: a hash table keyed by name prefix whose nodes hold the
optional FIB entry, the PIT entries and the strategy choice entry of that prefix, with parent
pointers so that a lookup starting from a PIT entry can walk up instead of hashing every prefix
(the FIB and the strategy choice table walk their own attribute up the parents).
Names deeper than :data:`MAX_DEPTH` (32) are only inserted to that depth. Here the hash table is a
dict keyed by the prefix's wire encoding (see :mod:`sflow.icn.name`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from sflow.icn.name import EMPTY_NAME, Name

if TYPE_CHECKING:
    from sflow.icn.fib import FibEntry
    from sflow.icn.pit import PitEntry
    from sflow.icn.strategy_choice import StrategyChoiceEntry

MAX_DEPTH = 32
"""NFD ``NameTree::getMaxDepth()``."""


class NameTreeEntry:
    """One prefix in the name tree, with what the tables attached to it."""

    __slots__ = ("key", "name", "depth", "parent", "n_children", "fib_entry", "pit_entries", "strategy_choice")

    def __init__(self, name: Name, parent: NameTreeEntry | None) -> None:
        self.key = name.wire
        self.name = name
        self.depth = len(name.ends)
        self.parent = parent
        self.n_children = 0
        self.fib_entry: FibEntry | None = None
        self.pit_entries: list[PitEntry] = []
        self.strategy_choice: StrategyChoiceEntry | None = None

    def is_empty(self) -> bool:
        return (
            self.n_children == 0
            and self.fib_entry is None
            and not self.pit_entries
            and self.strategy_choice is None
        )

    def __repr__(self) -> str:
        return f"NameTreeEntry({self.name})"


class NameTree:
    """Prefix → :class:`NameTreeEntry`, with the root (empty name) always present."""

    def __init__(self) -> None:
        self.root = NameTreeEntry(EMPTY_NAME, None)
        self._entries: dict[bytes, NameTreeEntry] = {b"": self.root}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[NameTreeEntry]:
        return iter(list(self._entries.values()))

    def lookup(self, name: Name, prefix_len: int | None = None) -> NameTreeEntry:
        """The entry for the first ``prefix_len`` components of ``name`` (all, capped at
        :data:`MAX_DEPTH`), created with all its missing ancestors (NFD ``NameTree::lookup``)."""
        depth = len(name) if prefix_len is None else prefix_len
        if depth > MAX_DEPTH:
            depth = MAX_DEPTH
        entries = self._entries
        wire = name.wire
        ends = name.ends
        key = wire[: ends[depth - 1]] if depth else b""
        found = entries.get(key)
        if found is not None:
            return found
        # Walk up to the deepest existing ancestor, then create downwards.
        existing_depth = depth - 1
        parent = self.root
        while existing_depth > 0:
            ancestor = entries.get(wire[: ends[existing_depth - 1]])
            if ancestor is not None:
                parent = ancestor
                break
            existing_depth -= 1
        whole = len(ends)
        for level in range(existing_depth + 1, depth + 1):
            child = NameTreeEntry(name if level == whole else name.prefix(level), parent)
            parent.n_children += 1
            entries[child.key] = child
            parent = child
        return parent

    def find_exact(self, name: Name, prefix_len: int | None = None) -> NameTreeEntry | None:
        depth = len(name) if prefix_len is None else prefix_len
        if depth > MAX_DEPTH:
            return None
        return self._entries.get(name.prefix_wire(depth))

    def get(self, key: bytes) -> NameTreeEntry | None:
        """The entry whose prefix has this wire encoding."""
        return self._entries.get(key)

    def find_longest_prefix_match(
        self, name: Name, predicate: Callable[[NameTreeEntry], bool] | None = None
    ) -> NameTreeEntry:
        """The deepest entry for a prefix of ``name`` that satisfies ``predicate`` (the root if none).

        Probes from the longest prefix down, as NFD's ``findLongestPrefixMatch`` does.
        """
        entries = self._entries
        wire = name.wire
        ends = name.ends
        depth = min(len(ends), MAX_DEPTH)
        while depth > 0:
            entry = entries.get(wire[: ends[depth - 1]])
            if entry is not None and (predicate is None or predicate(entry)):
                return entry
            depth -= 1
        return self.root

    def erase_if_empty(self, entry: NameTreeEntry) -> None:
        """Remove ``entry`` and then each ancestor that became empty (never the root)."""
        current: NameTreeEntry | None = entry
        while current is not None and current.parent is not None and current.is_empty():
            parent = current.parent
            del self._entries[current.key]
            parent.n_children -= 1
            current.parent = None
            current = parent
