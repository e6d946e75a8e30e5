"""Which functions a static ICN run must compute, worked out before anything runs (pure).

In static mode a function is computed when a request for its result reaches a node that does not
hold it: the requests travel back from the END functions, hop by hop, and stop at a result held
by the consumer's node (an input it obtained before) or by the function's own node. Travelling
back costs two round trips per hop along the longest path before the first function can start.
The delegator starts the run on every node at once instead
(:class:`~sflow.delegator.icn.IcnDispatch`), and, so as to compute exactly what the requests would
reach, it follows them itself over what each node said it held when the job was installed
(:class:`~sflow.sfc.install.Held`). A function whose holdings are unknown (an older node, a
function with very many inputs) is left to the requests: starting it could compute something
nobody needs.
"""

from __future__ import annotations

from collections.abc import Mapping

from sflow.model.workflow import Job, TaskId
from sflow.sfc.install import Held
from sflow.sfc.names import FunctionSpec


def must_run(job: Job, specs: Mapping[TaskId, FunctionSpec], held: Mapping[TaskId, Held | None]) -> list[TaskId]:
    """The functions the requests from END would have computed, in job order: an END function
    whose node does not hold its result, and, from each of these, an input held neither by the
    consumer's node nor by the input's own node."""
    needed: set[TaskId] = set()
    stack: list[tuple[TaskId, Held]] = []
    for end in job.end_tasks:
        known = held.get(end)
        if known is not None and not known.result:
            needed.add(end)
            stack.append((end, known))
    while stack:
        tid, consumer = stack.pop()
        for k, ref in enumerate(specs[tid].inputs):
            producer = held.get(ref.pred)
            if ref.pred in needed or producer is None or producer.result or consumer.input(k) is not False:
                continue
            needed.add(ref.pred)
            stack.append((ref.pred, producer))
    return [tid for tid in job.order if tid in needed]
