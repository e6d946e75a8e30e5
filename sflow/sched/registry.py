"""Schedulers by name. ``heft`` and ``peft`` are the textbook algorithms (the original's names map
to them); the original's ready-list HEFT is ``heft-ready``; ``best`` runs all of them and improves
the best schedule by local search within a time budget.

A scheduler's module is imported when it is asked for, so that listing the names (``sflow
--help``) costs no numpy import."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from sflow.errors import InputError

if TYPE_CHECKING:
    from sflow.sched.base import Scheduler
    from sflow.sched.best import Clock

#: name → (module, class) of each scheduler, the original's six first
_SCHEDULERS: dict[str, tuple[str, str]] = {
    "sf-cuv": ("sflow.sched.sfcuv", "SfCuv"),
    "heft": ("sflow.sched.heft", "Heft"),
    "fws": ("sflow.sched.fws", "Fws"),
    "coordvnf": ("sflow.sched.coordvnf", "CoordVnf"),
    "hclustering": ("sflow.sched.hclustering", "HClustering"),
    "peft": ("sflow.sched.peft", "Peft"),
    "cpop": ("sflow.sched.cpop", "Cpop"),
    "heft-ready": ("sflow.sched.heft", "HeftReady"),
    "fastest": ("sflow.sched.fastest", "Fastest"),
    "round-robin": ("sflow.sched.round_robin", "RoundRobin"),
}

#: the randomised ones, whose constructor takes the seed
_SEEDED = frozenset({"coordvnf"})

#: ``best``: the portfolio and its local search (sflow/sched/best.py)
BEST = "best"

#: the original's six, by their numbers in nclw2.properties (``sched_algorithm``)
ORIGINAL_SIX: tuple[str, ...] = ("sf-cuv", "heft", "fws", "coordvnf", "hclustering", "peft")

#: the order ``best`` runs the others in: HEFT first, then by how often they win (HEFT's rank
#: variants come after PEFT)
PORTFOLIO: tuple[str, ...] = ("heft", "peft", "cpop", "heft-ready", "sf-cuv", "hclustering", "fws", "coordvnf",
                              "fastest", "round-robin")


def names() -> tuple[str, ...]:
    """Every registered algorithm, the original's six first, ``best`` last."""
    return (*_SCHEDULERS, BEST)


def get_scheduler(name: str, seed: int | None = None, *, budget_s: float | None = None,
                  clock: Clock | None = None) -> Scheduler:
    """The scheduler called ``name`` (randomised ones seeded with ``seed``, or their own default);
    an unknown name is an InputError listing the known ones.

    ``budget_s`` (default: best.DEFAULT_BUDGET_S) and ``clock`` (seconds, read by the caller's I/O
    shell) bound ``best``; without a clock ``best`` bounds its search by a number of evaluations
    instead."""
    key = name.lower()
    if key == BEST:
        from sflow.sched.best import DEFAULT_BUDGET_S, Best
        from sflow.sched.coordvnf import DEFAULT_SEED

        budget_s = DEFAULT_BUDGET_S if budget_s is None else budget_s
        if budget_s <= 0:
            raise InputError("<flag>", "--budget-s", f"the time budget must be positive, found {budget_s:g}")
        from sflow.sched.heft import RANK_VARIANTS, HeftVariant

        members = [_make(n, seed) for n in PORTFOLIO]
        variants = [HeftVariant(node, comm) for node, comm in RANK_VARIANTS]
        return Best([*members[:2], *variants, *members[2:]], DEFAULT_SEED if seed is None else seed, budget_s, clock)
    if key not in _SCHEDULERS:
        raise InputError("<flag>", "--algorithm", f"unknown algorithm {name!r}; known: {', '.join(names())}")
    return _make(key, seed)


def _make(key: str, seed: int | None) -> Scheduler:
    module, cls_name = _SCHEDULERS[key]
    cls = getattr(importlib.import_module(module), cls_name)
    scheduler: Scheduler = cls(seed) if key in _SEEDED and seed is not None else cls()
    return scheduler
