"""sflow's own wheel, which ``deploy`` installs on the hosts: built once from this checkout and cached
by the content of its sources, so that a deploy of an unchanged tree sends nothing new and each
host keeps its venv; and the core metadata deploy reads from it (Requires-Python, Requires-Dist)."""

from __future__ import annotations

import email.parser
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import sflow
from sflow.errors import ClusterError

log = logging.getLogger(__name__)

_PROJECT_FILES = ("setup.cfg", "pyproject.toml", "README.md")
DEFAULT_CACHE = "~/.cache/sflow/wheels"


@dataclass(frozen=True, slots=True)
class Wheel:
    path: Path
    build: str  # content hash of what went into it


@dataclass(frozen=True, slots=True)
class WheelMetadata:
    """What a wheel asks of the interpreter it is installed into."""

    name: str
    version: str
    requires_python: str | None
    requires_dist: tuple[str, ...]


def wheel_metadata(path: Path) -> WheelMetadata:
    """The core metadata of a wheel (its ``*.dist-info/METADATA``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if not names:
                raise ClusterError(f"{path} has no .dist-info/METADATA; is it a wheel?")
            text = archive.read(names[0]).decode("utf-8")
    except (OSError, zipfile.BadZipFile) as exc:
        raise ClusterError(f"cannot read the wheel {path}: {exc}") from None
    message = email.parser.Parser().parsestr(text, headersonly=True)
    return WheelMetadata(
        name=str(message.get("Name", "")),
        version=str(message.get("Version", "")),
        requires_python=message.get("Requires-Python"),
        requires_dist=tuple(str(v) for v in message.get_all("Requires-Dist") or ()),
    )


def source_root() -> Path:
    """The checkout this sflow runs from (the directory holding setup.cfg beside the package)."""
    root = Path(sflow.__file__).resolve().parent.parent
    if not (root / "setup.cfg").is_file():
        raise ClusterError(f"sflow at {root} is not a source checkout (no setup.cfg); pass --wheel FILE")
    return root


def _source_files(root: Path) -> list[Path]:
    files = [root / name for name in _PROJECT_FILES if (root / name).is_file()]
    files += sorted(p for p in (root / "sflow").rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    return files


def build_id(root: Path) -> str:
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(str(path.relative_to(root)).encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def wheel_from_file(path: Path) -> Wheel:
    if not path.is_file() or path.suffix != ".whl":
        raise ClusterError(f"{path} is not a wheel file")
    return Wheel(path, hashlib.sha256(path.read_bytes()).hexdigest()[:16])


def _has_build_backend() -> bool:
    """Whether this interpreter can build the wheel itself (setuptools with bdist_wheel)."""
    return importlib.util.find_spec("setuptools") is not None and importlib.util.find_spec("wheel") is not None


def build_wheel(root: Path | None = None, cache: Path | None = None) -> Wheel:
    """This checkout as a wheel, from the cache when its sources have not changed. The build runs
    on a copy of the sources, so that it leaves nothing in the checkout. Without setuptools and
    wheel installed here, pip fetches them into an isolated build environment (which needs the
    package index once; pass --wheel on a machine that has neither)."""
    root = root or source_root()
    cache = (cache or Path(DEFAULT_CACHE)).expanduser()
    build = build_id(root)
    target = cache / build
    existing = sorted(target.glob("*.whl")) if target.is_dir() else []
    if existing:
        log.info("event=wheel_cached build=%s path=%s", build, existing[0])
        return Wheel(existing[0], build)
    with tempfile.TemporaryDirectory(prefix="sflow-build-") as tmp:
        copy = Path(tmp) / "src"
        for path in _source_files(root):
            dest = copy / path.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        out = Path(tmp) / "dist"
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", str(out)]
        if _has_build_backend():
            argv.append("--no-build-isolation")  # offline, and faster than a fresh build environment
        argv.append(str(copy))
        log.info("event=wheel_build build=%s root=%s", build, root)
        done = subprocess.run(argv, capture_output=True, check=False)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode("utf-8", "replace").strip()[-1500:]
            raise ClusterError(f"building the sflow wheel failed (pip wheel exited {done.returncode}): {output}")
        built = sorted(out.glob("*.whl"))
        if not built:
            raise ClusterError("pip wheel produced no wheel")
        target.mkdir(parents=True, exist_ok=True)
        final = target / built[0].name
        staged = target / (built[0].name + ".part")
        shutil.copy2(built[0], staged)
        os.replace(staged, final)  # concurrent builders of the same sources end with the same file
    return Wheel(final, build)
