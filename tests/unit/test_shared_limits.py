"""geossh.runner.shared: the server-wide slots and source table, as two workers see them."""

from __future__ import annotations

import os

import pytest

from geossh.runner.shared import SharedLimits, SharedSources
from geossh.runner.srclimit import PenaltyPolicy


@pytest.fixture
def shared():  # type: ignore[no-untyped-def]
    segment = SharedLimits.create(2, 64)
    try:
        yield segment
    finally:
        segment.close()


def _pair(shared: SharedLimits, **kwargs: object) -> tuple[SharedSources, SharedSources]:
    return SharedSources(shared, 0, **kwargs), SharedSources(shared, 1, **kwargs)  # type: ignore[arg-type]


def test_slots_sum_and_a_dead_worker_is_cleared(shared: SharedLimits) -> None:
    with shared.locked():
        shared.add(0, opened=2, unauthenticated=1)
        shared.add(1, opened=3, unauthenticated=3)
    assert shared.totals() == (5, 4)
    assert shared.clear_worker(1) == (3, 3)
    assert shared.totals() == (2, 1)


def test_per_source_count_is_shared_and_cleared_with_its_worker(shared: SharedLimits) -> None:
    a, b = _pair(shared, per_source_max_startups=2)
    assert a.started("192.0.2.7") and b.started("192.0.2.7")
    assert a.refusal("192.0.2.7", 0.0) == "past PerSourceMaxStartups (2 unauthenticated)"
    assert b.refusal("192.0.2.8", 0.0) is None  # another source
    shared.clear_worker(1)
    assert a.refusal("192.0.2.7", 0.0) is None
    a.finished("192.0.2.7")
    a.finished("192.0.2.7")  # never below zero
    assert a.started("192.0.2.7") and a.started("192.0.2.7")
    assert b.refusal("192.0.2.7", 0.0) is not None


def test_penalty_seen_by_every_worker_and_kept_after_a_crash(shared: SharedLimits) -> None:
    policy = PenaltyPolicy(noauth=10.0, min=15.0, max=60.0)
    a, b = _pair(shared, penalties=policy)
    assert not a.penalise("192.0.2.7", "noauth", 100.0)  # 10 s: below min
    assert b.penalise("192.0.2.7", "noauth", 100.0)  # 20 s: enforced now
    assert b.refusal("192.0.2.7", 101.0) == "penalty: noauth (19 s left)"
    shared.clear_worker(1)
    assert a.refusal("192.0.2.7", 101.0) is not None
    assert a.seconds_left("192.0.2.7", 110.0) == pytest.approx(10.0)
    assert len(a.penalised(110.0)) == 1
    assert a.refusal("192.0.2.7", 120.0) is None  # expired


def test_netblock_and_exempt(shared: SharedLimits) -> None:
    policy = PenaltyPolicy(authfail=20.0, exempt=("198.51.100.0/24",))
    a, b = _pair(shared, netblock=(24, 64), penalties=policy)
    assert a.penalise("192.0.2.7", "authfail", 0.0)
    assert b.refusal("192.0.2.99", 1.0) is not None  # the same /24
    assert not a.penalise("198.51.100.1", "authfail", 0.0)


def test_full_window_overflow(shared: SharedLimits) -> None:
    """Past the table's room, a new source is not tracked (permissive) or refused (deny-all)."""
    permissive = SharedSources(shared, 0, 1, penalties=PenaltyPolicy(noauth=20.0))
    deny = SharedSources(shared, 1, 1, penalties=PenaltyPolicy(noauth=20.0, overflow_deny=True))
    tracked = [f"10.0.{i >> 8}.{i & 255}" for i in range(shared.entries * 4)]
    taken = [host for host in tracked if permissive.started(host, 0.0)]
    assert len(taken) <= shared.entries < len(tracked)  # so some found their window full
    late = next(host for host in tracked if host not in taken)
    assert not permissive.penalise(late, "noauth", 0.0)
    assert deny.refusal(late, 0.0) == "penalty table full (overflow:deny-all)"
    assert permissive.refusal(late, 0.0) is None
    for host in taken:
        permissive.finished(host)  # dead slots are reused
    assert deny.refusal(late, 0.0) is None
    assert permissive.started(late, 0.0)


def test_segment_survives_fork(shared: SharedLimits) -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        with shared.locked():
            shared.add(1, opened=1)
        os._exit(0)
    os.waitpid(pid, 0)
    assert shared.totals() == (1, 0)
