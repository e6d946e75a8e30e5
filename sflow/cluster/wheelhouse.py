"""The wheelhouse ``deploy`` ships: sflow's wheel and every dependency as wheels for one host's Python.

The dependencies are fetched on the controller (``pip download --only-binary :all:`` for the host's
Python version, ABI and platform tags; the controller may use the package index, the hosts never
do) into a cache, ``~/.cache/sflow/wheelhouse/<key>/`` where the key names the host's tags
(``cp311-cp311-manylinux_2_36_x86_64``). A set file there records which wheels one requirement set
resolved to, so that the next deploy of the same requirements to such a host asks no index at all.
Each host keeps the wheels it was sent; :func:`sync_plan` sends only those it lacks or holds with
other contents.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from sflow.cluster.bootstrap import file_sha256
from sflow.cluster.target import HostPython
from sflow.config import DEFAULT_WHEEL_CACHE
from sflow.errors import ClusterError

__all__ = ["DEFAULT_CACHE", "DependencyWheels", "WheelCache", "WheelFile", "Wheelhouse", "file_sha256", "requirements_for", "sync_plan"]

log = logging.getLogger(__name__)

DEFAULT_CACHE = DEFAULT_WHEEL_CACHE
PIP = "pip"  # shipped too: the host installs with it, and needs neither ensurepip nor an index


@dataclass(frozen=True, slots=True)
class WheelFile:
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def of(cls, path: Path) -> WheelFile:
        return cls(path, file_sha256(path))


@dataclass(frozen=True, slots=True)
class Wheelhouse:
    """What one host gets: sflow's wheel, and its dependencies (pip among them)."""

    key: str
    sflow: WheelFile
    dependencies: tuple[WheelFile, ...]

    @property
    def wheels(self) -> tuple[WheelFile, ...]:
        return (self.sflow, *self.dependencies)

    @property
    def pip(self) -> WheelFile:
        for wheel in self.dependencies:
            if canonicalize_name(wheel.name.split("-", 1)[0]) == PIP:
                return wheel
        raise ClusterError(f"the wheelhouse for {self.key} has no pip wheel")

    def digests(self) -> dict[str, str]:
        return {w.name: w.sha256 for w in self.wheels}

    @property
    def digest(self) -> str:
        """Changes whenever any wheel does: the host's venv stamp."""
        text = "".join(f"{name} {sha}\n" for name, sha in sorted(self.digests().items()))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    @property
    def size(self) -> int:
        return sum(w.path.stat().st_size for w in self.wheels)

    def manifest(self) -> bytes:
        """``wheels/wheelhouse.json`` on the host, which :mod:`sflow.cluster.bootstrap` installs from."""
        doc = {"wheels": sorted(self.digests()), "sflow": self.sflow.name, "pip": self.pip.name, "digest": self.digest}
        return json.dumps(doc, indent=1).encode("utf-8")


def requirements_for(requires_dist: Iterable[str], markers: Mapping[str, str]) -> list[str]:
    """sflow's requirements (``Requires-Dist``) that apply on a host with these marker values,
    without extras' requirements and without markers (they are decided here, for the host, not by
    pip for the controller)."""
    environment = {**markers, "extra": ""}
    wanted: list[str] = []
    for line in requires_dist:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise ClusterError(f"sflow's wheel has an invalid requirement {line!r}: {exc}") from None
        if req.marker is not None and not req.marker.evaluate(environment):
            continue
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        wanted.append(f"{req.name}{extras}{req.specifier}")
    return sorted(set(wanted), key=str.lower)


def sync_plan(local: Mapping[str, str], remote: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(names to send, names to delete): the host gets what it lacks or holds with another SHA-256,
    and drops what is no longer part of the wheelhouse."""
    send = sorted(name for name, sha in local.items() if remote.get(name) != sha)
    drop = sorted(set(remote) - set(local))
    return send, drop


def pip_download_argv(python: HostPython, requirements: Sequence[str], dest: Path, find_links: Path) -> list[str]:
    """The controller's ``pip download`` of ``requirements`` (and their dependencies) as wheels that
    ``python`` takes: binary only, for its version, implementation, ABI and every platform tag."""
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input", "--only-binary=:all:"]
    argv += ["--dest", str(dest), "--find-links", str(find_links)]
    argv += ["--python-version", f"{python.version[0]}.{python.version[1]}", "--implementation", "cp", "--abi", python.abi_tag]
    for tag in python.platform_tags():
        argv += ["--platform", tag]
    return argv + list(requirements)


class DependencyWheels(Protocol):
    """Where deploy gets the dependency wheels for a host (:class:`WheelCache`; a fake in tests)."""

    def dependencies(self, python: HostPython, requirements: Sequence[str]) -> tuple[WheelFile, ...]: ...


class WheelCache:
    """The controller's cache of dependency wheels, one directory per host key. Safe to use from the
    threads of one deploy (one fill per key at a time) and from concurrent deploys (a lock file)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or Path(DEFAULT_CACHE)).expanduser()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def dependencies(self, python: HostPython, requirements: Sequence[str]) -> tuple[WheelFile, ...]:
        """The wheels of ``requirements`` and pip for ``python``: from the cache when this set was
        fetched before and its files are intact, otherwise fetched now."""
        wanted = sorted(set(requirements) | {PIP}, key=str.lower)
        set_id = hashlib.sha256(json.dumps([python.key, python.version[:2], wanted]).encode("utf-8")).hexdigest()[:16]
        directory = self.root / python.key
        with self._lock(python.key):
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                record = directory / f"set-{set_id}.json"
                cached = _read_set(record, directory)
                if cached is not None:
                    log.info("event=wheelhouse_cached key=%s set=%s wheels=%d", python.key, set_id, len(cached))
                    return cached
                wheels = self._fetch(python, wanted, directory)
                record.write_text(json.dumps({"requirements": wanted, "wheels": {w.name: w.sha256 for w in wheels}}, indent=1))
                return wheels
            finally:
                os.close(fd)

    def _fetch(self, python: HostPython, wanted: Sequence[str], directory: Path) -> tuple[WheelFile, ...]:
        log.info("event=wheelhouse_fetch key=%s requirements=%s", python.key, ",".join(wanted))
        with tempfile.TemporaryDirectory(prefix="sflow-wheels-", dir=directory) as tmp:
            # Wheels already in the cache are found there (--find-links) and only copied.
            done = subprocess.run(pip_download_argv(python, wanted, Path(tmp), directory), capture_output=True, check=False)
            if done.returncode != 0:
                output = done.stderr.decode("utf-8", "replace")
                errors = [ln.strip() for ln in output.splitlines() if ln.startswith("ERROR")] or output.strip().splitlines()[-2:]
                raise ClusterError(
                    f"no wheels of sflow's dependencies for this host's Python ({python.key}): pip download exited "
                    f"{done.returncode}: {' / '.join(errors)[-800:]} (the controller needs the package index, or a "
                    "cache filled by an earlier deploy, to fetch them)"
                )
            files = []
            for path in sorted(Path(tmp).glob("*.whl")):
                final = directory / path.name
                if not final.exists():
                    shutil.move(str(path), final)
                files.append(WheelFile.of(final))
        return tuple(files)


def _read_set(record: Path, directory: Path) -> tuple[WheelFile, ...] | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        listed = {str(k): str(v) for k, v in data["wheels"].items()}
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    wheels = [WheelFile(directory / name, sha) for name, sha in sorted(listed.items())]
    if not all(w.path.is_file() and file_sha256(w.path) == w.sha256 for w in wheels):
        return None  # a wheel deleted or damaged since: fetch the set again
    return tuple(wheels)
