"""``PrefixedLog``: the connection prefix is composed once, and only when a line is logged."""

from __future__ import annotations

import logging

import pytest

from geossh.logtext import PrefixedLog


def test_a_callable_prefix_is_composed_at_the_first_line_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def compose() -> str:
        calls.append(1)
        return "conn=7 127.0.0.1:5000"

    log = PrefixedLog(logging.getLogger("test.logtext"), compose)
    log.debug("not emitted")  # below the level: nothing composed
    assert calls == []
    with caplog.at_level(logging.INFO, logger="test.logtext"):
        log.info("first %d", 1)
        log.info("second")
    assert calls == [1]
    assert [r.getMessage() for r in caplog.records] == [
        "[conn=7 127.0.0.1:5000] first 1",
        "[conn=7 127.0.0.1:5000] second",
    ]


def test_a_string_prefix_is_used_as_given() -> None:
    assert PrefixedLog(logging.getLogger("test.logtext"), "p").prefix == "p"
