"""Schedulers by name. ``heft`` and ``peft`` are the textbook algorithms (the original's names map
to them); the original's ready-list HEFT is ``heft-ready``; ``best`` runs all of them and improves
the best schedule by local search within a time budget."""

from __future__ import annotations

from collections.abc import Callable

from sflow.errors import InputError
from sflow.sched.base import Scheduler
from sflow.sched.best import DEFAULT_BUDGET_S, Best, Clock
from sflow.sched.coordvnf import DEFAULT_SEED, CoordVnf
from sflow.sched.cpop import Cpop
from sflow.sched.fastest import Fastest
from sflow.sched.fws import Fws
from sflow.sched.hclustering import HClustering
from sflow.sched.heft import RANK_VARIANTS, Heft, HeftReady, HeftVariant
from sflow.sched.peft import Peft
from sflow.sched.round_robin import RoundRobin
from sflow.sched.sfcuv import SfCuv

#: name → factory taking the random seed (ignored by deterministic algorithms)
_FACTORIES: dict[str, Callable[[int], Scheduler]] = {
    SfCuv.name: lambda seed: SfCuv(),
    Heft.name: lambda seed: Heft(),
    Fws.name: lambda seed: Fws(),
    CoordVnf.name: lambda seed: CoordVnf(seed),
    HClustering.name: lambda seed: HClustering(),
    Peft.name: lambda seed: Peft(),
    Cpop.name: lambda seed: Cpop(),
    HeftReady.name: lambda seed: HeftReady(),
    Fastest.name: lambda seed: Fastest(),
    RoundRobin.name: lambda seed: RoundRobin(),
}

#: the original's six, by their numbers in nclw2.properties (``sched_algorithm``)
ORIGINAL_SIX: tuple[str, ...] = ("sf-cuv", "heft", "fws", "coordvnf", "hclustering", "peft")

#: the order ``best`` runs the others in: HEFT first, then by how often they win (HEFT's rank
#: variants come after PEFT)
PORTFOLIO: tuple[str, ...] = ("heft", "peft", "cpop", "heft-ready", "sf-cuv", "hclustering", "fws", "coordvnf",
                              "fastest", "round-robin")


def names() -> tuple[str, ...]:
    """Every registered algorithm, the original's six first, ``best`` last."""
    return (*_FACTORIES, Best.name)


def get_scheduler(name: str, seed: int = DEFAULT_SEED, *, budget_s: float = DEFAULT_BUDGET_S,
                  clock: Clock | None = None) -> Scheduler:
    """The scheduler called ``name``; an unknown name is an InputError listing the known ones.

    ``budget_s`` and ``clock`` (seconds, read by the caller's I/O shell) bound ``best``; without a
    clock ``best`` bounds its search by a number of evaluations instead."""
    key = name.lower()
    if key == Best.name:
        if budget_s <= 0:
            raise InputError("<flag>", "--budget-s", f"the time budget must be positive, found {budget_s:g}")
        members = [_FACTORIES[n](seed) for n in PORTFOLIO]
        variants = [HeftVariant(node, comm) for node, comm in RANK_VARIANTS]
        return Best([*members[:2], *variants, *members[2:]], seed, budget_s, clock)
    factory = _FACTORIES.get(key)
    if factory is None:
        raise InputError("<flag>", "--algorithm", f"unknown algorithm {name!r}; known: {', '.join(names())}")
    return factory(seed)
