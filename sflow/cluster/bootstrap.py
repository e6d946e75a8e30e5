"""The host side of ``sflow cluster deploy``: read the host's Python, and install a wheelhouse into an
isolated venv. ``deploy`` sends this file's text to the host's python over stdin, in the host
directory (``python - probe`` / ``python - install``), so it uses the standard library only and
does not import sflow, which is not installed there yet. Each command prints one JSON object.

``probe`` reports what the controller needs to pick wheels for this interpreter (version, ABI,
platform, libc, PEP 508 marker values), whether it has the ``venv`` module, and what the host
directory already holds (the wheels in ``wheels/`` with their SHA-256, the venv's stamp), so that
unchanged wheels are not sent again.

``install`` keeps ``wheels/`` to the set that ``wheels/wheelhouse.json`` lists, makes ``venv/``
(``--without-pip``, no system site-packages: nothing of the host python's packages, such as
Debian's python3-openssl, is visible in it) and installs sflow and its dependencies from
``wheels/`` alone, with the pip wheel shipped there (so neither ``ensurepip`` nor a package index
is needed). A stamp records what was installed; the same wheelhouse for the same interpreter is not
installed twice.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import sysconfig
from pathlib import Path

VENV = "venv"
WHEELS = "wheels"
MANIFEST = "wheelhouse.json"
STAMP = "sflow-build.json"
LAYOUT = 2  # venvs of earlier deploys (with system site-packages) are made anew


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file (the controller uses it too: one definition for both sides)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _has_venv_module() -> bool:
    try:
        import venv
    except ImportError:
        return False
    return hasattr(venv, "EnvBuilder")


def _markers() -> dict[str, str]:
    """PEP 508 environment markers of this interpreter."""
    info = sys.implementation.version
    impl_version = f"{info.major}.{info.minor}.{info.micro}"
    if info.releaselevel != "final":
        impl_version += info.releaselevel[0] + str(info.serial)
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def read_stamp(venv: Path) -> dict[str, object]:
    try:
        data = json.loads((venv / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def probe(directory: Path) -> dict[str, object]:
    libc, libc_version = platform.libc_ver()
    wheels = directory / WHEELS
    present = {p.name: file_sha256(p) for p in sorted(wheels.glob("*.whl"))} if wheels.is_dir() else {}
    return {
        "ok": True,
        "dir": str(directory),
        "executable": sys.executable,
        "version": list(sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "soabi": sysconfig.get_config_var("SOABI") or "",
        "abiflags": getattr(sys, "abiflags", ""),
        "pointer_bits": 64 if sys.maxsize > 2**32 else 32,
        "libc": libc,
        "libc_version": libc_version,
        "venv": _has_venv_module(),
        "ensurepip": importlib.util.find_spec("ensurepip") is not None,
        "markers": _markers(),
        "wheels": present,
        "stamp": read_stamp(directory / VENV),
    }


def install(directory: Path) -> dict[str, object]:
    wheels, venv = directory / WHEELS, directory / VENV
    manifest = json.loads((wheels / MANIFEST).read_text(encoding="utf-8"))
    listed = set(manifest["wheels"])
    for stale in wheels.glob("*.whl"):
        if stale.name not in listed:
            stale.unlink()
    missing = sorted(name for name in listed if not (wheels / name).is_file())
    if missing:
        raise RuntimeError(f"wheels missing from {wheels}: {', '.join(missing)}")
    want = {"layout": LAYOUT, "python": sys.executable, "version": platform.python_version(), "wheelhouse": manifest["digest"]}
    python = venv / "bin" / "python"
    stamp = read_stamp(venv)
    if python.exists() and all(stamp.get(k) == v for k, v in want.items()):
        return {"ok": True, "reused": True}
    same_interpreter = stamp.get("layout") == LAYOUT and stamp.get("python") == sys.executable and stamp.get("version") == want["version"]
    if not (python.exists() and same_interpreter):
        (venv / STAMP).unlink(missing_ok=True)
        _run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)])
    pip = [str(python), str(wheels / manifest["pip"] / "pip"), "install", "--no-index", "--find-links", str(wheels)]
    pip += ["--no-cache-dir", "--disable-pip-version-check", "--no-input", "--quiet", "--no-warn-script-location"]
    sflow_wheel = str(wheels / manifest["sflow"])
    # This exact build, even when a same-numbered version is installed...
    _run(pip + ["--no-deps", "--force-reinstall", sflow_wheel])
    # ...then whatever of its dependencies (and pip) is not installed yet; installed ones are kept.
    _run(pip + [sflow_wheel, str(wheels / manifest["pip"])])
    (venv / STAMP).write_text(json.dumps(want), encoding="utf-8")
    return {"ok": True, "reused": False}


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode("utf-8", "replace").strip()[-1500:]
        raise RuntimeError(f"{' '.join(argv[:4])}... exited {done.returncode}: {output}")


def main(argv: list[str]) -> int:
    directory = Path.cwd()
    try:
        if argv == ["probe"]:
            result = probe(directory)
        elif argv == ["install"]:
            result = install(directory)
        else:
            result = {"ok": False, "error": f"usage: python - probe|install (got {argv})"}
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
