"""Schedulers by name. ``heft`` and ``peft`` are the textbook algorithms (the original's names map
to them); the original's ready-list HEFT is ``heft-ready``."""

from __future__ import annotations

from collections.abc import Callable

from sflow.errors import InputError
from sflow.sched.base import Scheduler
from sflow.sched.coordvnf import DEFAULT_SEED, CoordVnf
from sflow.sched.cpop import Cpop
from sflow.sched.fastest import Fastest
from sflow.sched.fws import Fws
from sflow.sched.hclustering import HClustering
from sflow.sched.heft import Heft, HeftReady
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

def names() -> tuple[str, ...]:
    """Every registered algorithm, the original's six first."""
    return tuple(_FACTORIES)


def get_scheduler(name: str, seed: int = DEFAULT_SEED) -> Scheduler:
    """The scheduler called ``name``; an unknown name is an InputError listing the known ones."""
    factory = _FACTORIES.get(name.lower())
    if factory is None:
        raise InputError("<flag>", "--algorithm", f"unknown algorithm {name!r}; known: {', '.join(names())}")
    return factory(seed)
