"""Schedulers by name. ``heft`` and ``peft`` are the textbook algorithms (the original's names map
to them); the original's ready-list HEFT is ``heft-ready``.

A scheduler's module is imported when it is asked for, so that listing the names (``sflow
--help``) costs no numpy import."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from sflow.errors import InputError

if TYPE_CHECKING:
    from sflow.sched.base import Scheduler

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

#: the original's six, by their numbers in nclw2.properties (``sched_algorithm``)
ORIGINAL_SIX: tuple[str, ...] = ("sf-cuv", "heft", "fws", "coordvnf", "hclustering", "peft")


def names() -> tuple[str, ...]:
    """Every registered algorithm, the original's six first."""
    return tuple(_SCHEDULERS)


def get_scheduler(name: str, seed: int | None = None) -> Scheduler:
    """The scheduler called ``name`` (randomised ones seeded with ``seed``, or their own default);
    an unknown name is an InputError listing the known ones."""
    key = name.lower()
    entry = _SCHEDULERS.get(key)
    if entry is None:
        raise InputError("<flag>", "--algorithm", f"unknown algorithm {name!r}; known: {', '.join(names())}")
    module, cls_name = entry
    cls = getattr(importlib.import_module(module), cls_name)
    scheduler: Scheduler = cls(seed) if key in _SEEDED and seed is not None else cls()
    return scheduler
