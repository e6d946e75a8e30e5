"""Log lines written after the work they tell of, bearing the time of the event."""

from __future__ import annotations

import logging
import time

import pytest

from sflow import deferred_log


def test_a_line_is_written_later_with_the_time_and_arguments_of_the_event(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("sflow.test.deferred")
    caplog.set_level(logging.INFO, logger="sflow.test.deferred")
    formatted: list[str] = []

    class Costly:
        def __str__(self) -> str:
            formatted.append("now")
            return "every candidate's estimate"

    before = time.time()
    made = deferred_log.record(logger, logging.INFO, "event=placed why=\"%s\"", Costly())
    after = time.time()
    assert made is not None and caplog.records == [] and formatted == []  # nothing written, nothing formatted
    time.sleep(0.01)
    deferred_log.write(logger, made)
    [line] = caplog.records
    assert line.getMessage() == "event=placed why=\"every candidate's estimate\"" and formatted
    assert before <= line.created <= after and line.levelno == logging.INFO and line.name == "sflow.test.deferred"


def test_a_level_not_logged_makes_no_record() -> None:
    logger = logging.getLogger("sflow.test.deferred.quiet")
    logger.setLevel(logging.WARNING)
    assert deferred_log.record(logger, logging.INFO, "event=placed") is None
    deferred_log.write(logger, None)  # nothing to write
    assert deferred_log.record(logger, logging.WARNING, "event=function_end ok=False") is not None
