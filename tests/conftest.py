"""Shared test fixtures (where the original's sample files live) and the skip report: every skipped
test is listed with its reason at the end of the run, and with ``--fail-on-skip`` (what CI passes:
CI has root, Docker, network namespaces and python-ndn) a skipped test fails the run."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the original SFlow's sample files (env_ncl.json, job_*.json, nclw2.properties, nclw_hosts), read
#: where the project keeps them beside the checkout; they are not copied into the project
SAMPLES = REPO.parent / "shared" / "reference" / "samples"


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.fail(f"the original's sample files are not at {SAMPLES} (../shared/reference/samples beside the checkout)")
    return SAMPLES


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory a test shares with the functions it runs (a file a function touches to say it
    started, a counter it keeps across retries): anyone may enter and write it, since a root node
    runs functions as ``node.run_as``, which cannot enter pytest's own directories."""
    directory = Path(tempfile.mkdtemp(prefix="sflow-test-shared-"))
    directory.chmod(0o1777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


# -- the skip report ----------------------------------------------------------------------------

FAIL_ON_SKIP = "--fail-on-skip"
_skipped: list[tuple[str, str]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(FAIL_ON_SKIP, action="store_true",
                     help="fail the run when any test is skipped (CI: every component a test needs is installed)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append((report.nodeid, _reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:  # a whole module skipped (importorskip, pytest.skip at module level)
        _skipped.append((report.nodeid, _reason(report)))


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _skipped:
        return
    strict = config.getoption(FAIL_ON_SKIP)
    title = f"{len(_skipped)} skipped" + (f" — {FAIL_ON_SKIP}: the run fails" if strict else "")
    terminalreporter.section(title, sep="=", red=strict, bold=True)
    for nodeid, reason in _skipped:
        terminalreporter.line(f"SKIPPED {nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and session.config.getoption(FAIL_ON_SKIP) and exitstatus in (
        pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
