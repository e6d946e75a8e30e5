"""The nodes of one experiment run, as the runner sees them: started and stopped around the run,
each one signalled, crashed (with its functions, as a failing machine takes them) or restarted by
a fault, its resource usage sampled and its log read for "function N starts". Two kinds: local
node processes (:class:`LocalNodes`, over :class:`~sflow.delegator.local.LocalCluster`) and nodes
on real hosts (:class:`sflow.experiment.hosts.HostNodes`)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from twisted.internet import defer

from sflow.delegator.local import LocalCluster
from sflow.experiment import procstat
from sflow.proctree import descendants, kill_all


class NodeSet(Protocol):
    """What a run does with its nodes (index ``i`` is the node's place in the spec's names)."""

    #: vCPUs of each node, as the environment the schedulers see gives them
    vcpus: tuple[int, ...]
    #: how often the runner samples usage (s)
    sample_interval: float

    def start(self) -> defer.Deferred[list[str]]: ...

    def stop(self) -> defer.Deferred[None]: ...

    def running(self, i: int) -> bool: ...

    def pid(self, i: int) -> int: ...

    def signal(self, i: int, sig: str) -> bool:
        """Send ``sig`` (``STOP``, ``CONT``, ``HUP``…); False when the node is gone already."""
        ...

    def crash(self, i: int) -> bool:
        """SIGKILL the node and the functions it runs; False when it is gone already."""
        ...

    def restart(self, i: int) -> defer.Deferred[str]:
        """Crash the node and start it again where it was; fires with its address."""
        ...

    def usage(self, i: int) -> procstat.Usage | None: ...

    def log_file(self, i: int) -> Path:
        """A local file with the node's log lines of this run (appended to as they come)."""
        ...


class LocalNodes:
    """Node processes on this machine (see :class:`LocalCluster`)."""

    sample_interval = 0.1

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.vcpus = cluster.vcpus

    def start(self) -> defer.Deferred[list[str]]:
        return self.cluster.start()

    def stop(self) -> defer.Deferred[None]:
        return self.cluster.stop()

    def running(self, i: int) -> bool:
        return self.cluster.running(i)

    def pid(self, i: int) -> int:
        return self.cluster.pids[i]

    def signal(self, i: int, sig: str) -> bool:
        return self.cluster.signal(i, sig)

    def crash(self, i: int) -> bool:
        if not self.cluster.running(i):
            return False
        functions = descendants(self.pid(i))
        sent = self.cluster.signal(i, "KILL")
        kill_all(functions)
        return sent

    def restart(self, i: int) -> defer.Deferred[str]:
        functions = descendants(self.pid(i)) if self.cluster.running(i) else []
        d = self.cluster.restart(i)  # the node is killed first, so that it reports no function killed
        kill_all(functions)
        return d

    def usage(self, i: int) -> procstat.Usage | None:
        return procstat.usage(self.pid(i))

    def log_file(self, i: int) -> Path:
        return self.cluster.base / f"node-{i}.log"


