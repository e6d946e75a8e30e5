"""The strategy choice table: which forwarding strategy serves which name prefix.

NFD ``daemon/table/strategy-choice*.{hpp,cpp}``: entries live on the name tree; the *effective*
strategy of a name (or PIT entry) is the one chosen for its longest matching prefix; the root
always has a choice and cannot be unset. Each choice has its own strategy instance. NFD's sample
configuration chooses best-route for ``/`` and ``/localhost/nfd`` and multicast for
``/localhost`` and ``/ndn/broadcast``; :func:`install_default_choices` does the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from sflow.icn.name import Name
from sflow.icn.name_tree import NameTree, NameTreeEntry

if TYPE_CHECKING:
    from sflow.icn.pit import PitEntry
    from sflow.icn.strategy.base import Strategy


class StrategyChoiceEntry:
    """A prefix and the strategy instance chosen for it."""

    __slots__ = ("prefix", "strategy")

    def __init__(self, prefix: Name, strategy: Strategy) -> None:
        self.prefix = prefix
        self.strategy = strategy

    @property
    def strategy_name(self) -> Name:
        return self.strategy.instance_name


def _has_choice(entry: NameTreeEntry) -> bool:
    return entry.strategy_choice is not None


class StrategyChoice:
    """Prefix → strategy. ``make_strategy(name)`` builds an instance or returns None when unknown."""

    def __init__(self, name_tree: NameTree, make_strategy: Callable[[Name | str], Strategy | None],
                 default: Name | str) -> None:
        self.name_tree = name_tree
        self._make = make_strategy
        self._n_entries = 0
        if not self.insert(Name(), default) or name_tree.root.strategy_choice is None:
            raise ValueError(f"unknown default strategy {default}")
        self._root_choice: StrategyChoiceEntry = name_tree.root.strategy_choice

    def __len__(self) -> int:
        return self._n_entries

    def __iter__(self) -> Iterator[StrategyChoiceEntry]:
        entries = [n.strategy_choice for n in self.name_tree if n.strategy_choice is not None]
        return iter(sorted(entries, key=lambda entry: entry.prefix.wire))

    def insert(self, prefix: Name, strategy_name: Name | str) -> bool:
        """Choose a strategy for ``prefix``; False if the strategy is unknown."""
        strategy = self._make(strategy_name)
        if strategy is None:
            return False
        node = self.name_tree.lookup(prefix)
        if node.strategy_choice is None:
            self._n_entries += 1
            node.strategy_choice = StrategyChoiceEntry(node.name, strategy)
        else:
            node.strategy_choice.strategy = strategy
        return True

    def erase(self, prefix: Name) -> bool:
        """Unset the choice for ``prefix`` (never the root's)."""
        if not prefix.ends:
            return False
        node = self.name_tree.find_exact(prefix)
        if node is None or node.strategy_choice is None:
            return False
        node.strategy_choice = None
        self._n_entries -= 1
        self.name_tree.erase_if_empty(node)
        return True

    def get(self, prefix: Name) -> StrategyChoiceEntry | None:
        node = self.name_tree.find_exact(prefix)
        return node.strategy_choice if node is not None else None

    def find_effective_strategy(self, name: Name) -> Strategy:
        node = self.name_tree.find_longest_prefix_match(name, _has_choice)
        return (node.strategy_choice or self._root_choice).strategy

    def find_effective_strategy_for_pit(self, pit_entry: PitEntry) -> Strategy:
        node: NameTreeEntry | None = pit_entry.name_tree_entry
        while node is not None:
            if node.strategy_choice is not None:
                return node.strategy_choice.strategy
            node = node.parent
        return self._root_choice.strategy


DEFAULT_CHOICES: tuple[tuple[str, str], ...] = (
    ("/localhost", "multicast"),
    ("/localhost/nfd", "best-route"),
    ("/ndn/broadcast", "multicast"),
)


def install_default_choices(table: StrategyChoice) -> None:
    for prefix, strategy in DEFAULT_CHOICES:
        table.insert(Name.from_uri(prefix), strategy)
