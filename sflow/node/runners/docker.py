"""Docker execution through the Docker Engine API (the ``docker`` SDK), called in a thread pool.

An image that is missing is loaded from its tar in the image repository (``docker load`` of a
directory's tar, or of a tar fetched over SFTP; sflow-original.md §4.2 step 4), or pulled when the
repository is a registry. The container gets the job directory bind-mounted at the same path and
set as its working directory, so ``./`` paths and ``$F^`` paths mean the same inside and outside;
it runs as the owner of the job directory (so outputs are not root-owned), on the pinned CPUs
(``cpuset_cpus``), and is removed afterwards.

The node connects to the engine when it starts (in the background), removes the containers of
nodes that died on this machine without removing theirs (:mod:`sflow.node.owner`), and asks for
an image's ENTRYPOINT once, not for every function; an image removed meanwhile is loaded again when the
container cannot be created for want of it.

``DUMMY`` commands run the image's ENTRYPOINT with the remaining words as its arguments (exec form).
Any other command runs as ``/bin/sh -c <command>`` inside the container. The original dropped the
first word of *every* Docker command, so ``ffmpeg -i a b`` only worked in an image whose
ENTRYPOINT was ffmpeg; sflow keeps the program, so the image needs that program and a ``/bin/sh``.

Every container is confined by a :class:`ContainerPolicy` (settings ``node.container_*``): no new
privileges (``no-new-privileges``: a set-user-id program in the image gains nothing), every Linux
capability dropped except those ``node.container_capabilities`` names (none by default: a
function running as a non-root user needs none), a pids limit (a fork bomb stays in its
container), a memory limit with swap included (a function that exceeds it is killed and its
failure says so), and a network mode (``none`` cuts the container off). It runs as the owner of
the job directory, which is ``node.run_as`` when the node is root (never uid 0).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.utils
from docker.models.containers import Container
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from sflow.config import ImageRepositorySettings, NodeSettings
from sflow.errors import ConfigError, SflowError
from sflow.node.fetch import FetchError, fetch_image_tar
from sflow.node.owner import OWNER_LABEL, Owner
from sflow.ssh import SshOptions
from sflow.node.runners import TAIL_BYTES, ContainerSpec, Outcome, Reactor, Tail

log = logging.getLogger(__name__)


#: Linux capability names Docker knows (``CAP_`` prefix optional in the setting)
_CAPABILITY = re.compile(r"^(CAP_)?[A-Z][A-Z_]*[A-Z]$")
#: share of the host's memory a container may use when ``node.container_memory_mb`` is 0
DEFAULT_MEMORY_SHARE = 0.75


@dataclass(frozen=True, slots=True)
class ContainerPolicy:
    """How every function container is confined (see the module's docstring)."""

    network: str = "bridge"
    memory_bytes: int = 0  # 0: no limit (only for tests; settings always give one)
    pids: int = 1024
    capabilities: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, node: NodeSettings) -> ContainerPolicy:
        """The policy the ``node.container_*`` settings describe; :class:`ConfigError` names the
        setting at fault."""
        if not node.container_network.strip():
            raise ConfigError("settings", "node.container_network", "is empty; use bridge, none, host or a network's name")
        if node.container_memory_mb < 0:
            raise ConfigError("settings", "node.container_memory_mb", f"must be 0 or more, found {node.container_memory_mb}")
        if node.container_pids < 1:
            raise ConfigError("settings", "node.container_pids", f"must be at least 1, found {node.container_pids}")
        capabilities = tuple(c.strip().upper() for c in node.container_capabilities if c.strip())
        for cap in capabilities:
            if not _CAPABILITY.match(cap) or cap in ("ALL", "CAP_ALL"):
                raise ConfigError("settings", "node.container_capabilities",
                                  f"{cap!r} is not the name of one Linux capability (such as NET_BIND_SERVICE)")
        memory = node.container_memory_mb * 1024 * 1024 or int(host_memory_bytes() * DEFAULT_MEMORY_SHARE)
        return cls(node.container_network.strip(), memory, node.container_pids, capabilities)

    def options(self) -> dict[str, Any]:
        """The ``containers.create`` options that apply this policy."""
        options: dict[str, Any] = dict(
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            pids_limit=self.pids,
            network_mode=self.network,
        )
        if self.capabilities:
            options["cap_add"] = list(self.capabilities)
        if self.memory_bytes:
            # Swap included (memswap = memory): otherwise the limit only moves the excess to swap.
            options["mem_limit"] = self.memory_bytes
            options["memswap_limit"] = self.memory_bytes
        return options


def host_memory_bytes() -> int:
    """This host's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class _CannotRun(SflowError):
    """The container could not be started; the message is the function's failure reason."""


class _Container:
    """One function in a container: a ``RunningFunction`` whose blocking part runs in a thread."""

    def __init__(self, runner: DockerRunner, spec: ContainerSpec) -> None:
        self._runner = runner
        self._spec = spec
        self._lock = threading.Lock()
        self._killed = False
        self._container: Container | None = None
        self.done: Deferred[Outcome] = Deferred()

    def kill(self) -> None:
        with self._lock:
            self._killed = True
            container = self._container
        if container is not None:
            self._runner.in_thread(self._stop, container).addErrback(self._log_kill_failure)

    def _stop(self, container: Container) -> None:
        # SIGKILL at once: the function is PID 1 in its container, and PID 1 ignores a SIGTERM it
        # installed no handler for, so a graceful stop would only add the grace period.
        try:
            container.kill()
        except docker.errors.APIError as exc:
            if exc.status_code not in (404, 409):  # gone already, or not running
                raise

    def _log_kill_failure(self, failure: Failure) -> None:
        log.warning("cannot stop container image=%s error=%s", self._spec.image, failure.getErrorMessage())

    def run_blocking(self) -> Outcome:
        """The whole life of the container; runs in a pool thread."""
        spec = self._spec
        try:
            client = self._runner.client()
            entrypoint = self._runner.ensure_image(client, spec.image, spec.tar)
            if spec.command.dummy:
                if not entrypoint:
                    raise _CannotRun(f"image {spec.image} has no ENTRYPOINT for DUMMY to run")
                kwargs: dict[str, Any] = {"command": list(spec.command.args)}
            else:
                kwargs = {"entrypoint": ["/bin/sh", "-c"], "command": [spec.command.shell]}
            with self._lock:
                if self._killed:
                    return Outcome(None, None, "", "", "stopped before the container started")
            options: dict[str, Any] = dict(
                working_dir=str(spec.workdir),
                volumes={str(spec.workdir): {"bind": str(spec.workdir), "mode": "rw"}},
                user=spec.user,
                cpuset_cpus=",".join(str(c) for c in spec.cpus) if spec.cpus else None,
                labels=dict(spec.labels),
                detach=True,
                **self._runner.policy.options(),
                **kwargs,
            )
            try:
                container = client.containers.create(spec.image, **options)
            except docker.errors.ImageNotFound:
                # Removed since it was last seen here: load it again, once.
                self._runner.forget_image(spec.image)
                self._runner.ensure_image(client, spec.image, spec.tar)
                container = client.containers.create(spec.image, **options)
        except _CannotRun as exc:
            return Outcome(None, None, "", "", str(exc))
        except FetchError as exc:
            return Outcome(None, None, "", "", f"image {spec.image} not found and its tar could not be fetched: {exc}")
        except (docker.errors.DockerException, OSError) as exc:  # OSError: the engine's socket
            return Outcome(None, None, "", "", f"Docker engine: {_api_message(exc)}")
        try:
            with self._lock:
                self._container = container
                killed = self._killed
            if killed:
                return Outcome(None, None, "", "", "stopped before the container started")
            container.start()
            log.debug("container started id=%s image=%s", container.short_id, spec.image)
            with self._lock:
                killed = self._killed
            if killed:
                # kill() may have stopped the container between its creation and its start.
                self._stop(container)
            status = int(container.wait()["StatusCode"])
            stdout = self._tail(container, stdout=True)
            stderr = self._tail(container, stdout=False)
            return Outcome(status, None, stdout, stderr, self._out_of_memory(container))
        except (docker.errors.DockerException, OSError) as exc:
            return Outcome(None, None, "", "", f"Docker engine: {_api_message(exc)}")
        finally:
            self._remove(container)

    def _out_of_memory(self, container: Container) -> str:
        """Why the container ended when the kernel killed it for exceeding its memory limit
        (otherwise "": its exit status says how it ended)."""
        container.reload()
        if not (container.attrs.get("State") or {}).get("OOMKilled"):
            return ""
        limit = self._runner.policy.memory_bytes
        return (f"killed for want of memory: the container exceeded its limit of {limit // (1024 * 1024)} MiB "
                "(node.container_memory_mb)")

    def _tail(self, container: Container, *, stdout: bool) -> str:
        tail = Tail(self._runner.tail_bytes)
        # Streamed so that a huge log is never held in memory at once.
        for chunk in container.logs(stdout=stdout, stderr=not stdout, stream=True, follow=False, tail=1000):
            tail.feed(chunk)
        return tail.text()

    def _remove(self, container: Container) -> None:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass  # already gone
        except (docker.errors.DockerException, OSError) as exc:
            log.warning("cannot remove container id=%s error=%s", container.short_id, _api_message(exc))


class DockerRunner:
    """Runs functions in containers. Docker SDK calls happen in ``pool``'s threads."""

    def __init__(
        self,
        reactor: Reactor,
        pool: ThreadPool,
        repository: ImageRepositorySettings,
        ssh: SshOptions = SshOptions(),
        *,
        client_factory: Callable[[], docker.DockerClient] = docker.from_env,
        tail_bytes: int = TAIL_BYTES,
        policy: ContainerPolicy = ContainerPolicy(),
    ) -> None:
        self._reactor = reactor
        self.policy = policy
        self._pool = pool
        self._repository = repository
        self._ssh = ssh
        self._client_factory = client_factory
        self.tail_bytes = tail_bytes
        self._lock = threading.Lock()
        self._client: docker.DockerClient | None = None
        self._image_locks: dict[str, threading.Lock] = {}
        #: the ENTRYPOINT of each image known to be present (asked of the engine once, not per function)
        self._entrypoints: dict[str, list[str] | None] = {}

    def warm(self) -> None:
        """Connect to the engine in the background, so that the node's first container does not
        wait for it; an engine that is not there is reported by the first function that needs it."""
        self._pool.callInThread(self._warm)

    def _warm(self) -> None:
        try:
            self.client().ping()
        except (docker.errors.DockerException, OSError) as exc:
            log.debug("Docker engine not reachable yet error=%s", _api_message(exc))
            return
        self.remove_orphans()

    def remove_orphans(self) -> list[str]:
        """Remove the containers that nodes no longer alive on this machine left behind (killed
        before they could remove them): those whose ``sflow.owner`` label names a dead process.
        Returns their ids."""
        removed: list[str] = []
        api = self.client().api
        try:
            # The engine's list summaries carry the labels: no inspection per container, which
            # fails for a container removed (or still being created) between the list and it.
            containers = api.containers(all=True, filters={"label": OWNER_LABEL})
        except (docker.errors.DockerException, OSError) as exc:
            log.warning("cannot list containers error=%s", _api_message(exc))
            return removed
        for container in containers:
            owner = Owner.parse((container.get("Labels") or {}).get(OWNER_LABEL, ""))
            if owner is None or not owner.here() or owner.alive():
                continue
            ident = str(container["Id"])
            try:
                api.remove_container(ident, force=True)
            except docker.errors.NotFound:
                continue
            except (docker.errors.DockerException, OSError) as exc:
                log.warning("cannot remove orphaned container id=%s error=%s", ident[:12], _api_message(exc))
                continue
            log.info("event=orphan_container_removed id=%s owner=%s", ident[:12], owner.token)
            removed.append(ident)
        return removed

    def start(self, spec: ContainerSpec) -> _Container:
        function = _Container(self, spec)
        self.in_thread(function.run_blocking).chainDeferred(function.done)
        return function

    def in_thread(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, self._pool, fn, *args)  # type: ignore[arg-type]

    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    def ensure_image(self, client: docker.DockerClient, image: str, tar: str | None) -> list[str] | None:
        """Make ``image`` present (loading or pulling it once even when several functions need it
        at the same time) and return its ENTRYPOINT."""
        with self._lock:
            lock = self._image_locks.setdefault(image, threading.Lock())
        with lock:
            if image in self._entrypoints:
                return self._entrypoints[image]
            entrypoint = self._present(client, image, tar)
            self._entrypoints[image] = entrypoint
            return entrypoint

    def forget_image(self, image: str) -> None:
        with self._lock:
            self._entrypoints.pop(image, None)

    def _present(self, client: docker.DockerClient, image: str, tar: str | None) -> list[str] | None:
        """Make ``image`` present and return its ENTRYPOINT."""
        try:
            return _entrypoint(client.images.get(image))
        except docker.errors.ImageNotFound:
            pass
        if self._repository.kind == "registry":
            reference = f"{self._repository.host}:{self._repository.port}/{image}" if self._repository.host else image
            log.info("pulling image=%s reference=%s", image, reference)
            try:
                pulled = client.images.pull(reference)
            except docker.errors.DockerException as exc:
                raise _CannotRun(f"image {image} not found and cannot be pulled: {_api_message(exc)}") from None
            if reference != image:
                repository, tag = docker.utils.parse_repository_tag(image)
                pulled.tag(repository, tag or "latest")
            return _entrypoint(pulled)
        if not tar:
            raise _CannotRun(f"image {image} not found and the task names no docker tar to load")
        path = fetch_image_tar(self._repository, tar, self._ssh)
        log.info("loading image=%s tar=%s", image, path)
        try:
            data = path.open("rb")
        except OSError as exc:
            raise _CannotRun(f"image {image}: cannot read its tar {path}: {exc.strerror or exc}") from None
        with data:
            client.images.load(data)
        try:
            return _entrypoint(client.images.get(image))
        except docker.errors.ImageNotFound:
            raise _CannotRun(f"image {image} not found: its tar {tar} was loaded but does not contain it") from None


def _entrypoint(image: Any) -> list[str] | None:
    entrypoint = (image.attrs.get("Config") or {}).get("Entrypoint")
    return list(entrypoint) if entrypoint else None


def _api_message(exc: docker.errors.DockerException | OSError) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc) or type(exc).__name__
