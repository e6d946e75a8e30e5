"""Install an sflow wheel into a venv on a host. ``deploy`` sends this file's text to the host's
python over stdin (``python - VENV WHEEL BUILD``), so it uses the standard library only and does
not import sflow, which is not installed there yet.

The venv is made with ``--system-site-packages`` from the host's python. When that python is itself
a venv, a ``.pth`` file adds its site-packages too, so that dependencies already installed for it
are used instead of being downloaded again. A stamp file records the build installed; the same
build is not installed twice. Prints one JSON object; exit status 0 on success.
"""

from __future__ import annotations

import json
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

STAMP = "sflow-build.json"
CHAIN_PTH = "_sflow_host_python.pth"


def read_stamp(venv: Path) -> dict[str, str]:
    try:
        data = json.loads((venv / STAMP).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def install(venv: Path, wheel: Path, build: str) -> dict[str, object]:
    stamp = read_stamp(venv)
    python = venv / "bin" / "python"
    if stamp.get("build") == build and stamp.get("python") == sys.executable and python.exists():
        return {"ok": True, "reused": True}
    if stamp.get("python") != sys.executable or not python.exists():
        _run([sys.executable, "-m", "venv", "--clear", "--without-pip", "--system-site-packages", str(venv)])
    _chain_host_site_packages(venv)
    if _run([str(python), "-m", "pip", "--version"], check=False) != 0:
        _run([str(python), "-m", "ensurepip", "--default-pip"])
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"]
    # This exact build, even when a same-numbered version is visible from the host python...
    _run(pip + ["--no-deps", "--force-reinstall", str(wheel)])
    # ...then whatever of its dependencies is not installed yet.
    _run(pip + [str(wheel)])
    (venv / STAMP).write_text(json.dumps({"build": build, "python": sys.executable}), encoding="utf-8")
    return {"ok": True, "reused": False}


def _chain_host_site_packages(venv: Path) -> None:
    if sys.prefix == sys.base_prefix:
        return  # --system-site-packages already sees this python's packages
    paths = [p for p in site.getsitepackages() if Path(p).is_dir()]
    target = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    target.mkdir(parents=True, exist_ok=True)
    (target / CHAIN_PTH).write_text("".join(p + "\n" for p in paths), encoding="utf-8")


def _run(argv: list[str], check: bool = True) -> int:
    done = subprocess.run(argv, capture_output=True, check=False)
    if check and done.returncode != 0:
        output = (done.stdout + done.stderr).decode("utf-8", "replace").strip()[-1500:]
        raise RuntimeError(f"{' '.join(argv[:4])}... exited {done.returncode}: {output}")
    return done.returncode


def main(argv: list[str]) -> int:
    venv, wheel, build = Path(argv[0]).resolve(), Path(argv[1]).resolve(), argv[2]
    try:
        result = install(venv, wheel, build)
    except (RuntimeError, OSError) as exc:
        result = {"ok": False, "error": str(exc)}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
