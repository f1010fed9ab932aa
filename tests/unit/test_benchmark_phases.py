"""benchmarks/phases.py: exclusive time per phase, followed across greenlet switches."""

from __future__ import annotations

import gevent
import gevent.event

from benchmarks.phases import HUB, UNTIMED, _Clock


class FakeTick:
    """A thread clock that advances only when told."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def test_nested_phases_are_exclusive() -> None:
    tick = FakeTick()
    clock = _Clock(tick)
    try:

        def inner() -> None:
            tick.now += 30

        def outer() -> None:
            tick.now += 5
            timed_inner()
            tick.now += 7

        timed_inner = clock.timed("inner", inner)
        timed_outer = clock.timed("outer", outer)
        tick.now += 100  # before any phase: the caller's own time
        timed_outer()
        timed_outer()
        spent = clock.report()["phases"]
    finally:
        clock.close()
    assert spent["outer"] == [24, 2]
    assert spent["inner"] == [60, 2]
    assert spent[UNTIMED][0] == 100


def test_a_waiting_phase_is_not_charged_for_other_greenlets() -> None:
    tick = FakeTick()
    clock = _Clock(tick)
    ready = gevent.event.Event()
    try:

        def waits() -> None:
            tick.now += 3
            ready.wait()  # switches to the hub, which runs the busy greenlet
            tick.now += 4

        def busy() -> None:
            tick.now += 1000
            ready.set()

        def untimed_then_busy() -> None:
            tick.now += 500  # another greenlet's code outside any phase
            timed_busy()

        timed_waits = clock.timed("waits", waits)
        timed_busy = clock.timed("busy", busy)
        first = gevent.spawn(timed_waits)
        second = gevent.spawn(untimed_then_busy)
        gevent.joinall([first, second], timeout=10)
        spent = clock.report()["phases"]
    finally:
        clock.close()
    assert spent["waits"] == [7, 1]
    assert spent["busy"] == [1000, 1]
    assert spent[UNTIMED][0] == 500
    assert sum(ns for ns, _ in spent.values()) == tick.now
    assert HUB in spent  # the hub ran between the two
