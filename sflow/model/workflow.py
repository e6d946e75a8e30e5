"""The workflow job: tasks (service functions) and the data edges their outputs make.

Edges come from each task's ``out_file_list`` and ``out_value``: every (task, dest_task_id) pair is
an edge. Two files between the same pair make one edge whose size is the sum of both (the data that
really crosses; the original kept only the first size). START and END functions come from the graph
(no predecessor / no successor), never from the order of the file.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NewType

if TYPE_CHECKING:
    import networkx as nx

TaskId = NewType("TaskId", int)


@dataclass(frozen=True, slots=True)
class OutFile:
    """An output file: ``path`` relative to the job's working directory, ``size`` in MB."""

    path: str
    size: float
    dest: tuple[TaskId, ...]


@dataclass(frozen=True, slots=True)
class OutValue:
    """A small value sent to successors as a message and substituted for ``$V^<id>``."""

    val: str
    size: float
    dest: tuple[TaskId, ...]


@dataclass(frozen=True, slots=True)
class Task:
    id: TaskId
    workload: float
    cmd: str
    type: int = 1
    usage: float = 0.0
    out_files: tuple[OutFile, ...] = ()
    out_value: OutValue | None = None
    docker_tar: str | None = None
    docker_image: str | None = None

    @property
    def dests(self) -> tuple[TaskId, ...]:
        """Successor ids in file order then value, each once."""
        seen: dict[TaskId, None] = {}
        for f in self.out_files:
            for d in f.dest:
                seen.setdefault(d, None)
        if self.out_value is not None:
            for d in self.out_value.dest:
                seen.setdefault(d, None)
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class Edge:
    """Data flowing from ``src`` to ``dst``: total ``size`` in MB, the file paths, and whether a
    ``$V^`` value travels too."""

    src: TaskId
    dst: TaskId
    size: float
    files: tuple[str, ...]
    value: bool = False


@dataclass(frozen=True, slots=True)
class Job:
    """A job's tasks with derived graph views. Construct only from validated input (see jsonio)."""

    id: int
    tasks: tuple[Task, ...]
    by_id: Mapping[TaskId, Task] = field(init=False, repr=False, compare=False)
    succs: Mapping[TaskId, tuple[TaskId, ...]] = field(init=False, repr=False, compare=False)
    #: the size in MB of each task's edges, in the order of its ``succs``
    succ_sizes: Mapping[TaskId, tuple[float, ...]] = field(init=False, repr=False, compare=False)
    order: tuple[TaskId, ...] = field(init=False, repr=False, compare=False)
    _edges: Mapping[tuple[TaskId, TaskId], Edge] | None = field(init=False, repr=False, compare=False)
    _preds: Mapping[TaskId, tuple[TaskId, ...]] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {t.id: t for t in self.tasks}
        succs: dict[TaskId, tuple[TaskId, ...]] = {}
        succ_sizes: dict[TaskId, tuple[float, ...]] = {}
        for t in self.tasks:
            tid = t.id
            out: list[TaskId] = []
            sizes: list[float] = []
            at: dict[TaskId, int] = {}  # destination → its place in out
            for f in t.out_files:
                size = f.size
                for d in f.dest:
                    k = at.get(d)
                    if k is None:
                        at[d] = len(out)
                        out.append(d)
                        sizes.append(size)
                    else:
                        sizes[k] += size
            if t.out_value is not None:
                size = t.out_value.size
                for d in t.out_value.dest:
                    k = at.get(d)
                    if k is None:
                        at[d] = len(out)
                        out.append(d)
                        sizes.append(size)
                    else:
                        sizes[k] += size
            succs[tid] = tuple(out)
            succ_sizes[tid] = tuple(sizes)
        object.__setattr__(self, "by_id", by_id)
        object.__setattr__(self, "succs", succs)
        object.__setattr__(self, "succ_sizes", succ_sizes)
        object.__setattr__(self, "order", topological_order(by_id, succs))
        object.__setattr__(self, "_edges", None)
        object.__setattr__(self, "_preds", None)

    @property
    def preds(self) -> Mapping[TaskId, tuple[TaskId, ...]]:
        """Each task's predecessors, in the order of the tasks; made when first asked."""
        if self._preds is None:
            preds: dict[TaskId, list[TaskId]] = {tid: [] for tid in self.by_id}
            for tid, dests in self.succs.items():
                for d in dests:
                    preds[d].append(tid)
            object.__setattr__(self, "_preds", {k: tuple(v) for k, v in preds.items()})
        assert self._preds is not None
        return self._preds

    @property
    def edges(self) -> Mapping[tuple[TaskId, TaskId], Edge]:
        """Every edge by (source, destination), in the order of the tasks and their outputs; made
        when first asked (scheduling needs only ``succs`` and ``succ_sizes``)."""
        if self._edges is None:
            object.__setattr__(self, "_edges", _edges_of(self.tasks))
        assert self._edges is not None
        return self._edges

    def cycle(self) -> list[TaskId] | None:
        """A cycle of task ids (first id repeated at the end, starting at its smallest id), or None
        when the tasks form a DAG. It costs nothing more than the topological sort the job made
        when it was built: only when that sort left tasks out is a cycle traced among them."""
        if len(self.order) == len(self.tasks):
            return None
        return _trace_cycle(set(self.by_id) - set(self.order), self.preds)

    @property
    def start_tasks(self) -> tuple[TaskId, ...]:
        return tuple(t.id for t in self.tasks if not self.preds[t.id])

    @property
    def end_tasks(self) -> tuple[TaskId, ...]:
        return tuple(t.id for t in self.tasks if not self.succs[t.id])

    def task(self, tid: TaskId) -> Task:
        return self.by_id[tid]

    def critical_path(self) -> tuple[tuple[TaskId, ...], float]:
        """The path with the largest total workload (communication not counted), and that total."""
        best: dict[TaskId, float] = {}
        via: dict[TaskId, TaskId | None] = {}
        for tid in self.order:
            prev = max(self.preds[tid], key=lambda p: (best[p], -p), default=None)
            best[tid] = self.by_id[tid].workload + (best[prev] if prev is not None else 0.0)
            via[tid] = prev
        if not best:
            return (), 0.0
        end = max(best, key=lambda t: (best[t], -t))
        path: list[TaskId] = []
        cur: TaskId | None = end
        while cur is not None:
            path.append(cur)
            cur = via[cur]
        return tuple(reversed(path)), best[end]

    def to_networkx(self) -> nx.DiGraph:
        """A networkx view: nodes carry ``workload``, edges ``size``."""
        import networkx as nx

        g = nx.DiGraph()
        for t in self.tasks:
            g.add_node(t.id, workload=t.workload)
        for (s, d), e in self.edges.items():
            g.add_edge(s, d, size=e.size)
        return g


def _edges_of(tasks: Iterable[Task]) -> dict[tuple[TaskId, TaskId], Edge]:
    """The edges of ``tasks``: one per (source, destination), sizes and files of all the outputs
    that go there added up."""
    edges: dict[tuple[TaskId, TaskId], Edge] = {}
    for t in tasks:
        tid = t.id
        for f in t.out_files:
            size, files = f.size, (f.path,)
            for d in f.dest:
                e = edges.get((tid, d))
                if e is None:
                    edges[(tid, d)] = Edge(tid, d, size, files)
                else:
                    edges[(tid, d)] = Edge(tid, d, e.size + size, e.files + files, e.value)
        if t.out_value is not None:
            size = t.out_value.size
            for d in t.out_value.dest:
                e = edges.get((tid, d))
                if e is None:
                    edges[(tid, d)] = Edge(tid, d, size, (), True)
                else:
                    edges[(tid, d)] = Edge(tid, d, e.size + size, e.files, True)
    return edges


def topological_order(by_id: Mapping[TaskId, Task], succs: Mapping[TaskId, tuple[TaskId, ...]]) -> tuple[TaskId, ...]:
    """Kahn's algorithm, smallest ready id first (deterministic). Tasks on a cycle are left out."""
    import heapq
    from collections import Counter

    counts = Counter(itertools.chain.from_iterable(succs.values()))
    indeg = {t: counts[t] for t in by_id}
    ready = [t for t, n in indeg.items() if n == 0]
    heapq.heapify(ready)
    out: list[TaskId] = []
    pop, push, emit = heapq.heappop, heapq.heappush, out.append
    while ready:
        t = pop(ready)
        emit(t)
        for s in succs[t]:
            n = indeg[s] - 1
            indeg[s] = n
            if not n:
                push(ready, s)
    return tuple(out)


def find_cycle(tasks: Iterable[Task]) -> list[TaskId] | None:
    """A cycle of task ids (first id repeated at the end, starting at its smallest id), or None for
    a DAG. Every destination must be one of ``tasks``."""
    return Job(0, tuple(tasks)).cycle()


def _trace_cycle(left: set[TaskId], preds: Mapping[TaskId, tuple[TaskId, ...]]) -> list[TaskId]:
    """A cycle among ``left``, the tasks a topological sort left out: each of them has a
    predecessor left out too, so walking back along such predecessors must come round to a task
    already seen, which closes a cycle."""
    seen: dict[TaskId, int] = {}
    path: list[TaskId] = []
    cur = min(left)
    while cur not in seen:
        seen[cur] = len(path)
        path.append(cur)
        cur = min(p for p in preds[cur] if p in left)
    cycle = list(reversed(path[seen[cur]:]))  # in the direction of the edges
    first = cycle.index(min(cycle))
    cycle = cycle[first:] + cycle[:first]
    return cycle + [cycle[0]]
