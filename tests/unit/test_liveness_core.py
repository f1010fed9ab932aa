"""Liveness checks in the core (keepalive, ClientAlive, UnusedConnectionTimeout) on a test clock.

Each test moves ``Session.now`` by hand: no sockets, no sleeps; the
deadlines the core reports are checked exactly.
"""

from __future__ import annotations

from typing import Any

from geossh.proto import events as ev
from geossh.proto.constants import MSG, DisconnectReason
from tests.unit.kexclient import Session, channel_open, disconnect_reason, server_config


def _session(**config: Any) -> Session:
    return Session(config=server_config(**config)).advance("authenticated")


def _tick(session: Session, now: float) -> list[bytes]:
    """Advance the clock to ``now`` and fire the timer; the payloads the client got."""
    session.now = now
    session.conn.handle_timer(now)
    session.drain()
    return session.deliver()


def _requests(payloads: list[bytes], name: bytes) -> list[bytes]:
    return [p for p in payloads if p[0] == MSG.GLOBAL_REQUEST and name in p]


def test_everything_is_off_by_default() -> None:
    session = _session(rekey_seconds=None)
    assert session.conn.deadline() is None


def test_unanswered_probes_end_the_connection() -> None:
    session = _session(client_alive_interval=10.0, client_alive_count_max=2, rekey_seconds=None)
    assert session.conn.deadline() == 10.0
    assert _tick(session, 9.9) == []
    probes = _tick(session, 10.0)
    assert len(_requests(probes, b"keepalive@openssh.com")) == 1
    assert probes[0][-1] == 1  # want_reply
    assert session.conn.deadline() == 20.0
    assert len(_requests(_tick(session, 20.0), b"keepalive@openssh.com")) == 1
    last = _tick(session, 30.0)
    assert disconnect_reason(last[-1]) == DisconnectReason.CONNECTION_LOST
    ended = [e for e in session.events if isinstance(e, ev.LivenessExpired)]
    assert [e.reason for e in ended] == ["Timeout, client not responding (2 keepalives unanswered)"]
    assert session.conn.closed and session.conn.deadline() is None


def test_input_resets_the_count_and_moves_the_deadline() -> None:
    session = _session(client_alive_interval=10.0, client_alive_count_max=1, rekey_seconds=None)
    for round_start in (0.0, 15.0, 30.0):
        _tick(session, round_start + 10.0)  # one probe
        session.now = round_start + 15.0
        session.send(bytes((MSG.REQUEST_FAILURE,)))  # its answer is input
        assert session.conn.deadline() == round_start + 25.0
    assert not session.conn.closed


def test_probe_replies_are_not_given_to_the_application() -> None:
    session = _session(client_alive_interval=10.0, rekey_seconds=None)
    _tick(session, 10.0)
    session.conn.channels.send_global_request("app@example.com", True)
    session.deliver()
    events = session.send(bytes((MSG.REQUEST_FAILURE,)))  # the probe's reply
    events += session.send(bytes((MSG.REQUEST_SUCCESS,)) + b"\x00\x00\x00\x2a")
    replies = [e for e in events if isinstance(e, ev.GlobalReplyReceived)]
    assert [(r.success, r.data) for r in replies] == [(True, b"\x00\x00\x00\x2a")]


def test_no_probe_before_authentication() -> None:
    session = Session(config=server_config(client_alive_interval=10.0)).advance("userauth")
    assert _requests(_tick(session, 10.0), b"keepalive") == []


def test_unused_connection_ends_without_a_channel() -> None:
    session = _session(unused_connection_timeout=60.0, rekey_seconds=None)
    assert session.conn.deadline() == 60.0
    assert _tick(session, 59.0) == []
    last = _tick(session, 60.0)
    assert disconnect_reason(last[-1]) == DisconnectReason.BY_APPLICATION
    assert any(
        isinstance(e, ev.LivenessExpired) and "no open channel for 60 s" in e.reason
        for e in session.events
    )


def test_an_open_channel_keeps_the_connection_and_its_close_restarts_the_count() -> None:
    session = _session(unused_connection_timeout=60.0, rekey_seconds=None)
    session.now = 30.0
    session.send(channel_open())
    assert session.conn.deadline() is None
    assert _tick(session, 100.0) == []
    session.now = 200.0
    session.conn.channels.close(0)
    session.send(bytes((MSG.CHANNEL_CLOSE,)) + b"\x00\x00\x00\x00")
    assert session.conn.deadline() == 260.0
    assert not session.conn.closed


def test_keepalive_is_sent_on_schedule_without_a_reply_wanted() -> None:
    session = _session(rekey_seconds=None)
    session.conn.set_keepalive(30.0, 0.0)
    assert session.conn.deadline() == 30.0
    sent = _requests(_tick(session, 30.0), b"keepalive@lag.net")
    assert len(sent) == 1 and sent[0][-1] == 0
    assert session.conn.deadline() == 60.0
    session.conn.set_keepalive(0, 60.0)
    assert session.conn.deadline() is None
