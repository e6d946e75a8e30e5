"""A host's Python as ``deploy`` sees it: the facts :mod:`sflow.cluster.bootstrap` reports, the wheel
tags that interpreter accepts, and what it lacks to take sflow's wheels (said in words that tell
the user what to install).

The platform tags follow PEP 600 (``manylinux_2_X_arch``, from the host's glibc down to the oldest
the architecture has, with the legacy ``manylinux2014``/``2010``/``1`` aliases) and end with
``linux_arch``; pure Python wheels (``py3-none-any``) fit every host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from sflow.errors import ClusterError

# The oldest glibc each architecture has manylinux wheels for, and the legacy aliases (PEP 599/571/513).
_OLDEST_GLIBC_MINOR = {"x86_64": 5, "i686": 5}
_DEFAULT_OLDEST_GLIBC_MINOR = 17
_LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
_LEGACY_ARCHS = {
    "manylinux2014": ("x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"),
    "manylinux2010": ("x86_64", "i686"),
    "manylinux1": ("x86_64", "i686"),
}
INSTALL_ADVICE = "Debian/Ubuntu: apt install python3 python3-venv"


@dataclass(frozen=True, slots=True)
class HostPython:
    """One host's interpreter: what its wheels must match and whether it can make a venv."""

    executable: str
    version: tuple[int, int, int]
    implementation: str
    soabi: str
    abiflags: str
    machine: str
    system: str
    pointer_bits: int
    libc: str
    libc_version: str
    has_venv: bool
    markers: tuple[tuple[str, str], ...]

    @classmethod
    def from_probe(cls, answer: Mapping[str, Any]) -> HostPython:
        """From the ``probe`` answer; :class:`ClusterError` when it is not one."""
        try:
            version = tuple(int(v) for v in answer["version"])
            markers = answer["markers"]
            return cls(
                executable=str(answer["executable"]),
                version=(version[0], version[1], version[2]),
                implementation=str(answer["implementation"]),
                soabi=str(answer.get("soabi") or ""),
                abiflags=str(answer.get("abiflags") or ""),
                machine=str(markers["platform_machine"]),
                system=str(markers["platform_system"]),
                pointer_bits=int(answer.get("pointer_bits", 64)),
                libc=str(answer.get("libc") or ""),
                libc_version=str(answer.get("libc_version") or ""),
                has_venv=bool(answer["venv"]),
                markers=tuple(sorted((str(k), str(v)) for k, v in markers.items())),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ClusterError(f"the host's probe answer is malformed ({type(exc).__name__}: {exc})") from None

    @property
    def version_text(self) -> str:
        return ".".join(str(v) for v in self.version)

    @property
    def interpreter_tag(self) -> str:
        return f"cp{self.version[0]}{self.version[1]}"

    @property
    def abi_tag(self) -> str:
        """``cp311`` (plus ``d``/``t`` for debug or free-threaded builds)."""
        return self.interpreter_tag + self.abiflags

    @property
    def arch(self) -> str:
        """The wheel architecture: a 32-bit interpreter on an x86_64 kernel takes i686 wheels."""
        machine = self.machine.lower().replace("-", "_").replace(".", "_")
        if machine in ("amd64", "x86_64") and self.pointer_bits == 32:
            return "i686"
        if machine == "amd64":
            return "x86_64"
        if machine in ("arm64",):
            return "aarch64"
        return machine

    def glibc(self) -> tuple[int, int] | None:
        if self.libc != "glibc":
            return None
        try:
            major, minor = (int(part) for part in self.libc_version.split(".")[:2])
        except ValueError:
            return None
        return major, minor

    def platform_tags(self) -> tuple[str, ...]:
        """Every platform tag this host accepts, most specific first (PEP 600 order)."""
        glibc = self.glibc()
        if glibc is None or glibc[0] != 2:
            return ()
        arch = self.arch
        oldest = _OLDEST_GLIBC_MINOR.get(arch, _DEFAULT_OLDEST_GLIBC_MINOR)
        tags: list[str] = []
        for minor in range(glibc[1], oldest - 1, -1):
            tags.append(f"manylinux_2_{minor}_{arch}")
            legacy = _LEGACY.get(minor)
            if legacy and arch in _LEGACY_ARCHS[legacy]:
                tags.append(f"{legacy}_{arch}")
        tags.append(f"linux_{arch}")
        return tuple(tags)

    @property
    def key(self) -> str:
        """Names the set of wheels this host takes (the wheelhouse cache is kept per key)."""
        tags = self.platform_tags()
        return f"{self.interpreter_tag}-{self.abi_tag}-{tags[0] if tags else self.system.lower()}"

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values, for choosing sflow's requirements that apply on this host."""
        return dict(self.markers)


def unsuitable(python: HostPython, requires_python: str | None, host: str) -> str | None:
    """Why ``python`` on ``host`` cannot take sflow's wheels, saying what to install; or None."""
    where = f"{python.executable} on {host} (Python {python.version_text})"
    if requires_python:
        try:
            wanted = SpecifierSet(requires_python)
        except InvalidSpecifier:
            wanted = SpecifierSet()
        if not wanted.contains(python.version_text, prereleases=True):
            return too_old(python.version_text, requires_python, host, python.executable)
    if python.implementation != "cpython":
        return f"{where} is {python.implementation}; sflow's wheels are built for CPython: set python = a CPython 3 interpreter for this host in a TOML inventory"
    if python.system != "Linux":
        return f"{where} runs on {python.system}; sflow deploys to Linux hosts"
    if not python.platform_tags():
        libc = f"{python.libc} {python.libc_version}".strip() or "an unknown libc"
        return f"{where} uses {libc}; deploy ships manylinux wheels, which need glibc 2.x"
    if not python.has_venv:
        return f"{where} has no venv module: install it on the host ({INSTALL_ADVICE}), or set python = another interpreter for this host in a TOML inventory"
    return None


def too_old(version: str, requires_python: str, host: str, executable: str = "python3") -> str:
    return (
        f"{executable} on {host} is Python {version}; sflow needs Python {requires_python}: install a newer Python on the host "
        f"({INSTALL_ADVICE}, or python3.11 and python3.11-venv) and set python = its path for this host in a TOML inventory"
    )


def no_python(executable: str, host: str) -> str:
    return f"{host} has no {executable}: install Python 3 ({INSTALL_ADVICE}), or set python = its path for this host in a TOML inventory"
