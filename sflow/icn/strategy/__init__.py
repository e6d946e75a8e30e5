"""Forwarding strategies and their registry, keyed by NFD strategy name.

A strategy is chosen per name prefix (:mod:`sflow.icn.strategy_choice`). Names follow NFD:
``/localhost/nfd/strategy/<name>/v=<version>``; the short names ``best-route`` and ``multicast``
are accepted wherever a strategy is named.
"""

from __future__ import annotations

from sflow.icn.name import Name
from sflow.icn.strategy.base import Strategy
from sflow.icn.strategy.best_route import BestRouteStrategy
from sflow.icn.strategy.multicast import MulticastStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    "best-route": BestRouteStrategy,
    "multicast": MulticastStrategy,
}

DEFAULT_STRATEGY = BestRouteStrategy.NAME


def resolve_strategy(name: Name | str) -> tuple[type[Strategy], Name] | None:
    """The strategy class and instance name for a short name or an NFD strategy name, or None.

    ``/localhost/nfd/strategy/best-route`` (no version) picks the registered version.
    """
    if isinstance(name, str) and name in STRATEGIES:
        cls = STRATEGIES[name]
        return cls, cls.NAME
    full = Name.coerce(name)
    for cls in STRATEGIES.values():
        unversioned = cls.NAME.prefix(-1)
        if full == cls.NAME or full == unversioned:
            return cls, cls.NAME
    return None


__all__ = ["DEFAULT_STRATEGY", "STRATEGIES", "BestRouteStrategy", "MulticastStrategy", "Strategy", "resolve_strategy"]
