"""Progress of long loops without a terminal: periodic log lines, the last one at the end."""

from __future__ import annotations

import logging

import pytest

from finser.console import track


def test_track_without_a_terminal_logs_progress_and_the_end(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.progress")
    with caplog.at_level(logging.INFO, logger="tests.progress"):
        assert list(track(iter("abcd"), 4, "decoding clips", logger, interval_s=0.0)) == list("abcd")
        list(track(range(100), 100, "generating", logger, interval_s=3600.0))
    lines = [record.getMessage() for record in caplog.records]
    expected = [*(f"decoding clips: {done}/4" for done in range(1, 5)), "generating: 100/100"]
    assert [line.split(",")[0] for line in lines] == expected
    assert lines[-1].endswith("~0 s left")
