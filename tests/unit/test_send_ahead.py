"""The send-ahead limit (proto/window.py): bounded in flight, never a deadlock.

Each test streams data through a real ``ChannelLayer`` to a simulated peer
that returns window the way a real client does, and checks that the sender
never runs out of room while the peer still has data to consume (the
deadlock the limit could cause), and that after the first adjust the bytes
in flight stay within the limit.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from geossh.proto.channels import ChannelLayer
from geossh.proto.window import OutboundWindow
from tests.unit.test_channels_core import adjust_msg, make_layer, open_msg

LIMIT = 512 * 1024
WINDOW = 2 * 1024 * 1024
PACKET = 32 * 1024

# When a peer sends WINDOW_ADJUST: (consumed since its last adjust, its window left) -> adjust?
Policy = Callable[[int, int], bool]


def openssh(consumed: int, left: int) -> bool:
    """channels.c channel_check_window: more than 3 max packets used, or half the window."""
    return consumed > 0 and (WINDOW - left > 3 * PACKET or left < WINDOW // 2)


def paramiko(consumed: int, left: int) -> bool:
    """paramiko's Channel._check_add_window: a tenth of the window consumed."""
    return consumed > WINDOW // 10


def asyncssh(consumed: int, left: int) -> bool:
    """asyncssh: once its receive window fell below half."""
    return left < WINDOW // 2


def _open(limit: int = LIMIT) -> tuple[ChannelLayer, int]:
    layer, _, events = make_layer()
    layer.limit_send_ahead(limit)
    layer.handle(open_msg(window=WINDOW, packet=PACKET))
    local_id = events.popleft().channel_id  # type: ignore[attr-defined]
    layer.accept_channel(local_id)
    return layer, local_id


def _stream(layer: ChannelLayer, local_id: int, policy: Policy, total: int) -> int:
    """Send ``total`` bytes to a peer that consumes a packet at a time.

    Returns the most bytes in flight after a send, counted once the initial
    burst (the whole window, before the first adjust) has drained below the
    limit. Fails if the sender has no room while the peer has nothing left
    to consume (a deadlock: neither side would ever move).
    """
    window = layer.channels[local_id].outbound
    sent = delivered = consumed = 0  # by us; to the peer; consumed, not yet adjusted
    left = WINDOW  # the peer's view of its window
    worst = 0
    drained = False
    for _ in range(100_000):
        if delivered == total:
            return worst
        room = layer.send_window(local_id)
        if room and sent < total:
            sent += layer.send_data(local_id, memoryview(bytes(min(room, total - sent))))
        if drained:
            worst = max(worst, window.in_flight)
        drained = drained or (window.ahead > 0 and window.in_flight < window.ahead)
        assert sent > delivered, "deadlock: no room and nothing in flight"
        step = min(PACKET, sent - delivered)  # the peer reads and consumes one packet
        delivered += step
        consumed += step
        left -= step
        if policy(consumed, left):
            layer.handle(adjust_msg(local_id, consumed))
            left += consumed
            consumed = 0
    raise AssertionError("the stream did not finish")


@pytest.mark.parametrize("policy", [openssh, paramiko, asyncssh])
def test_real_client_policies_stream_to_the_end_within_the_limit(policy: Policy) -> None:
    layer, local_id = _open()
    worst = _stream(layer, local_id, policy, 64 * 1024 * 1024)
    window = layer.channels[local_id].outbound
    assert worst <= max(LIMIT, 2 * window.largest_adjust)
    if policy is openssh:  # adjusts of ~100 KiB: the limit bites
        assert worst <= LIMIT < WINDOW


def test_no_limit_before_the_first_adjust() -> None:
    layer, local_id = _open()
    assert layer.send_window(local_id) == layer.channels[local_id].outbound.remaining
    window = layer.channels[local_id].outbound
    window.take(WINDOW)  # the whole window may go out at first
    assert window.in_flight == WINDOW


def test_the_limit_is_never_below_twice_the_largest_adjust() -> None:
    window = OutboundWindow(WINDOW, PACKET)
    window.limit_ahead(LIMIT)
    window.take(WINDOW)
    window.adjust(WINDOW // 2)  # asyncssh's half-window adjust
    assert window.ahead == WINDOW
    assert window.room == WINDOW // 2  # everything the peer gave back


def test_a_peer_whose_threshold_outgrows_the_limit_is_unstuck_by_lift() -> None:
    # A peer that adjusts only past 1.5 MiB consumed once it adjusted at 100 KiB.
    window = OutboundWindow(WINDOW, PACKET)
    window.limit_ahead(LIMIT)
    window.take(100 * 1024)
    window.adjust(100 * 1024)
    assert window.take(WINDOW) == LIMIT
    assert window.room == 0 and window.held_back  # the peer will not adjust at 512 KiB
    assert window.lift()
    assert window.room == WINDOW - LIMIT  # the peer's whole window again
    window.take(WINDOW)
    window.adjust(1536 * 1024)  # its new threshold: learnt
    assert window.ahead == 3 * 1024 * 1024
    assert not window.held_back


def test_lift_reports_whether_the_limit_held_a_send() -> None:
    window = OutboundWindow(300, 100)
    window.limit_ahead(400)
    assert not window.lift()  # no limit before an adjust
    window.limit_ahead(400)
    window.take(100)
    window.adjust(100)
    assert window.take(1000) == 300
    assert window.room == 0 and not window.held_back  # the window, not the limit
    assert not window.lift()


def test_limit_applies_to_open_channels_and_zero_turns_it_off() -> None:
    layer, local_id = _open(limit=0)
    window = layer.channels[local_id].outbound
    window.take(PACKET)
    layer.handle(adjust_msg(local_id, PACKET))
    assert window.ahead == 0
    layer.limit_send_ahead(LIMIT)
    assert window.ahead == LIMIT
    layer.limit_send_ahead(0)
    assert window.ahead == 0 and window.room == WINDOW
    assert not layer.send_held_back(local_id) and not layer.lift_send_ahead(local_id)
    assert not layer.send_held_back(99) and not layer.lift_send_ahead(99)


def test_a_growing_window_never_makes_in_flight_negative() -> None:
    window = OutboundWindow(1000, 100)
    window.limit_ahead(400)
    window.take(100)
    window.adjust(5000)  # a peer that grows its window (HPN-SSH)
    assert window.in_flight == 0
    assert window.room == min(window.remaining, window.ahead)
