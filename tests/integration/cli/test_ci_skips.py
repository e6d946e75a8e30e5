"""CI fails when a test is skipped, and says which and why: `.ci/run` passes --fail-on-skip to the
README's test command. Here python-ndn is hidden from a pytest run of the codec's interop tests."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

HIDE_NDN = '''
import sys


class _HideNdn:
    def find_spec(self, name, path=None, target=None):
        if name == "ndn" or name.startswith("ndn."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _HideNdn())
'''


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(HIDE_NDN)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args,
                           "tests/unit/icn/test_icn_codec_interop.py", "tests/unit/icn/test_icn_codec.py"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(tmp_path),
                                                                                       "PATH": "/usr/bin:/bin"})


def test_a_skipped_test_fails_the_ci_run_and_is_named_with_its_reason(tmp_path: Path) -> None:
    strict = _pytest(tmp_path, "--fail-on-skip")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "1 skipped — --fail-on-skip: the run fails" in strict.stdout
    assert ("SKIPPED tests/unit/icn/test_icn_codec_interop.py: python-ndn (the independent NDN peer) is not installed"
            in strict.stdout)
    # The codec's own tests ran without python-ndn; without the flag, a skip is reported, not fatal.
    assert re.search(r"\n\d+ passed, 1 skipped in ", strict.stdout), strict.stdout
    lenient = _pytest(tmp_path)
    assert lenient.returncode == 0 and "SKIPPED tests/unit/icn/test_icn_codec_interop.py" in lenient.stdout


def test_ci_runs_the_readme_test_command_with_fail_on_skip() -> None:
    script = (REPO / ".ci" / "run").read_text()
    assert "bash scripts/test.sh --fail-on-skip" in script
    assert 'exec .venv/bin/python -m pytest -q "$@"' in (REPO / "scripts" / "test.sh").read_text()
