"""The runs of an experiment: every cell (job × mode × algorithm × cache) times its repetitions,
in a stable order, each with a stable id; those already recorded are left out. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from sflow.experiment.spec import Spec


@dataclass(frozen=True, slots=True)
class PlannedRun:
    job: str
    mode: str
    algorithm: str
    cache: str
    repetition: int

    @property
    def cell(self) -> tuple[str, str, str, str]:
        return (self.job, self.mode, self.algorithm, self.cache)

    @property
    def run_id(self) -> str:
        return f"{self.job}/{self.mode}/{self.algorithm}/{self.cache}/{self.repetition}"

    @property
    def label(self) -> str:
        return f"{self.job} · {self.mode} · {self.algorithm} · {self.cache} · #{self.repetition}"


def plan_runs(spec: Spec, done: Set[str], recorded: Mapping[tuple[str, str, str, str], int],
              repeat: int = 0) -> list[PlannedRun]:
    """The runs still to do: repetitions 1..``spec.repetitions`` of every cell, or, with ``repeat``,
    ``repeat`` more than the cell has recorded (never fewer than the spec's)."""
    out: list[PlannedRun] = []
    for rep_round in range(1, 1 + max(spec.repetitions, max(recorded.values(), default=0) + repeat)):
        for job in spec.jobs:
            for mode in spec.modes:
                for algorithm in spec.algorithms:
                    for cache in spec.cache:
                        cell = (job.name, mode, algorithm, cache)
                        wanted = max(spec.repetitions, recorded.get(cell, 0) + repeat) if repeat else spec.repetitions
                        if rep_round > wanted:
                            continue
                        run = PlannedRun(job.name, mode, algorithm, cache, rep_round)
                        if run.run_id not in done:
                            out.append(run)
    return out
