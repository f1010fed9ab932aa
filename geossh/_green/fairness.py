"""Time slices for work a peer can make long, served on the hub.

Owns one rule: code that runs on behalf of one connection without blocking
(an inline SFTP engine, hashing, a path walk, a copy) holds the hub for at
most ``SLICE_SECONDS`` before it lets every other greenlet run. Long loops
call ``checkpoint()`` between bounded steps; whoever resumes from a blocking
wait calls ``begin()`` to start a fresh slice. One slice clock per process
is enough: only the greenlet on the hub is ever running. A greenlet that
batches output registers ``before_yield(send)``: whatever yields its slice
(its own loop or a library it calls) sends the batch first, so its peer
sees the progress made before the pause.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import gevent

#: How long one connection's work may hold the hub before others get a turn.
SLICE_SECONDS = 0.002
#: ``gevent.sleep(0)`` only queues a callback, and the hub runs up to 50 queued
#: callbacks (100 ms of 2 ms slices) before it polls sockets again; a timer, even
#: this short, waits for the next loop iteration, so other connections' I/O is seen.
_YIELD_TIMER = 1e-6

_clock = time.perf_counter
_slice_started = _clock()
_before_yield: dict[object, Callable[[], object]] = {}


def begin() -> None:
    """Start a new slice (call after returning from a blocking wait)."""
    global _slice_started
    _slice_started = _clock()


def expired() -> bool:
    """Has the current slice run out?"""
    return _clock() - _slice_started >= SLICE_SECONDS


@contextlib.contextmanager
def before_yield(send: Callable[[], object]) -> Iterator[None]:
    """While inside, the current greenlet calls ``send`` before each of its yields."""
    current = gevent.getcurrent()
    _before_yield[current] = send
    try:
        yield
    finally:
        _before_yield.pop(current, None)


def yield_now() -> None:
    """Send what the current greenlet holds, let every ready greenlet (and the event
    loop's I/O) run, then start a new slice."""
    send = _before_yield.get(gevent.getcurrent())
    if send is not None:
        send()
    gevent.sleep(_YIELD_TIMER)
    begin()


def checkpoint() -> bool:
    """Yield if the slice has run out; True if it did."""
    if _clock() - _slice_started < SLICE_SECONDS:
        return False
    yield_now()
    return True
