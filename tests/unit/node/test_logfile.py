"""The node's log file is written once per reactor turn (:mod:`sflow.node.logfile`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sflow.node.logfile import TurnFlushedFileHandler


class _Reactor:
    def __init__(self, running: bool = True) -> None:
        self.running = running
        self.later: list[Any] = []

    def callLater(self, delay: float, call: Any) -> None:
        assert delay == 0
        self.later.append(call)

    def end_turn(self) -> None:
        later, self.later = self.later, []
        for call in later:
            call()


@pytest.fixture
def node_log(tmp_path: Path) -> Iterator[tuple[logging.Logger, Path, _Reactor]]:
    """A logger writing to ``node.log`` through the handler, its reactor a fake."""
    reactor = _Reactor()
    path = tmp_path / "node.log"
    handler = TurnFlushedFileHandler(path, reactor)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test.logfile.{tmp_path.name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, path, reactor
    logger.removeHandler(handler)
    handler.close()


def test_the_lines_of_a_turn_are_written_when_it_ends(node_log: tuple[logging.Logger, Path, _Reactor]) -> None:
    logger, path, reactor = node_log
    logger.info("event=function_start task=1")
    logger.info("event=function_queued task=2")
    assert path.read_text() == ""  # still in the buffer
    assert len(reactor.later) == 1  # one write asked for the turn, not one per line
    reactor.end_turn()
    assert path.read_text() == "INFO event=function_start task=1\nINFO event=function_queued task=2\n"
    logger.info("event=function_end task=1")
    reactor.end_turn()
    assert path.read_text().endswith("INFO event=function_end task=1\n")


def test_warnings_other_threads_and_a_stopped_reactor_are_written_at_once(
        node_log: tuple[logging.Logger, Path, _Reactor]) -> None:
    logger, path, reactor = node_log
    logger.info("event=placed task=1")
    logger.warning("event=function_end ok=False")  # writes what was held before it too
    assert path.read_text() == "INFO event=placed task=1\nWARNING event=function_end ok=False\n"
    thread = threading.Thread(target=logger.info, args=("event=from_a_store_thread",))
    thread.start()
    thread.join()
    assert path.read_text().endswith("INFO event=from_a_store_thread\n")
    reactor.running = False  # start-up or shutdown
    logger.info("event=node_stopped")
    assert path.read_text().endswith("INFO event=node_stopped\n")
