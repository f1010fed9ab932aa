"""fairness: slices, and what a greenlet sends before it yields one."""

from __future__ import annotations

import gevent
import pytest

from geossh._green import fairness


def test_before_yield_runs_in_the_greenlet_that_registered_it() -> None:
    events: list[str] = []

    def batching() -> None:
        with fairness.before_yield(lambda: events.append("sent")):
            events.append("batching")
            fairness.yield_now()
        fairness.yield_now()  # outside the block: nothing to send

    def other() -> None:
        events.append("other")
        fairness.yield_now()  # another greenlet's yield sends nothing of the first

    gevent.joinall([gevent.spawn(batching), gevent.spawn(other)], timeout=10, raise_error=True)
    assert events[:3] == ["batching", "sent", "other"]  # sent before the other one ran
    assert events.count("sent") == 1
    assert not fairness._before_yield


def test_checkpoint_yields_only_once_the_slice_is_used_up(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(fairness, "_clock", lambda: now[0])
    fairness.begin()
    assert fairness.checkpoint() is False
    now[0] = fairness.SLICE_SECONDS
    assert fairness.expired()
    assert fairness.checkpoint() is True
    assert not fairness.expired()  # a new slice started after the yield


def test_before_yield_is_removed_when_its_block_raises() -> None:
    def failing() -> None:
        with fairness.before_yield(lambda: None):
            raise RuntimeError("boom")

    g = gevent.spawn(failing)
    g.join(10)
    assert isinstance(g.exception, RuntimeError)
    assert not fairness._before_yield
