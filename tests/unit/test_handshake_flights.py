"""Every client flight of the handshake gets a reply: no Nagle stall waits on our ACK.

OpenSSH's client leaves Nagle's algorithm on until a session turns
interactive. Its kernel then holds a small write while an earlier one is
unacknowledged, and the server's kernel delays a bare ACK (40 ms on Linux).
So whenever the client sends two messages in a row without a server message
between them, the second one waits for that delayed ACK. These tests replay
OpenSSH's order of writes against the core and count such holes; there must
be none (before the fix there were two: after the client's KEXINIT, because
ours had already gone out, and after its NEWKEYS). No clock is involved.
"""

from __future__ import annotations

from collections.abc import Callable

from geossh.proto.constants import MSG
from tests.unit.kexclient import (
    ClientOptions,
    Session,
    channel_open,
    password_request,
    server_config,
    service_request,
)

# OpenSSH's writes, in order, each sent once the reply it needs has arrived.
# A write is a hole if the server sent nothing since the previous write.
Flight = Callable[[Session], None]
OPENSSH_FLIGHTS: list[tuple[str, Flight]] = [
    ("KEXINIT", lambda s: s.send(s.client.kexinit)),
    ("KEX_ECDH_INIT", lambda s: s.send(s.client.ecdh_init())),
    ("NEWKEYS", lambda s: s.to_server(s.client.newkeys())),
    ("SERVICE_REQUEST", lambda s: s.send(service_request())),
    ("USERAUTH_REQUEST", lambda s: s.send(password_request())),
    ("CHANNEL_OPEN", lambda s: s.send(channel_open())),
]


def unanswered_flights(session: Session) -> list[str]:
    """Replay the flights; name each one after which the server stayed silent."""
    silent = []
    for name, flight in OPENSSH_FLIGHTS:
        before = len(session.replies)
        flight(session)
        if len(session.replies) == before:
            silent.append(name)
    return silent


def test_version_line_goes_out_alone_and_at_once() -> None:
    session = Session()
    assert session.conn.data_to_send() == session.conn.config.server_version.encode() + b"\r\n"
    session.to_server(session.client.hello())
    assert session.replies == []  # our KEXINIT waits for the client's


def test_every_client_flight_is_answered() -> None:
    session = Session()
    session.to_server(session.client.hello())
    assert unanswered_flights(session) == []
    kinds = [payload[0] for payload in session.replies]
    assert kinds[0] == MSG.KEXINIT  # sent in reply to the client's
    assert kinds[kinds.index(MSG.NEWKEYS) + 1] == MSG.EXT_INFO


def test_every_flight_is_answered_without_ext_info() -> None:
    """Without ext-info-c the client's NEWKEYS and SERVICE_REQUEST go as one flight."""
    session = Session(options=ClientOptions(ext_info=False))
    session.to_server(session.client.hello())
    newkeys = session.client.newkeys
    flights = dict(OPENSSH_FLIGHTS)
    flights["KEXINIT"](session)
    flights["KEX_ECDH_INIT"](session)
    before = len(session.replies)
    session.to_server(newkeys() + session.client.encode(service_request()))
    assert [p[0] for p in session.replies[before:]] == [MSG.SERVICE_ACCEPT]


def test_a_client_that_waits_for_our_kexinit_gets_it_after_the_wait() -> None:
    session = Session(config=server_config(kexinit_wait=0.05))
    session.to_server(session.client.hello())
    conn = session.conn
    assert conn.deadline() == 0.05
    conn.handle_timer(0.049)
    assert session.deliver() == []
    conn.handle_timer(0.05)
    assert [p[0] for p in session.deliver()] == [MSG.KEXINIT]
    session.send(session.client.kexinit)
    session.send(session.client.ecdh_init())
    assert MSG.NEWKEYS in [p[0] for p in session.replies]


def test_known_waiting_clients_get_our_kexinit_with_their_version() -> None:
    session = Session()
    session.to_server(b"SSH-2.0-JSCH-0.1.44\r\n")
    assert [p[0] for p in session.replies] == [MSG.KEXINIT]


def test_version_and_kexinit_in_one_read_are_answered_once() -> None:
    session = Session()
    session.to_server(session.client.hello() + session.client.encode(session.client.kexinit))
    assert [p[0] for p in session.replies] == [MSG.KEXINIT]
    session.conn.handle_timer(1.0)  # the fallback is gone once ours was sent
    assert session.deliver() == []


def test_ext_info_stays_first_after_our_newkeys_when_we_send_early() -> None:
    """Output queued between our NEWKEYS and the client's still follows EXT_INFO."""
    session = Session()
    session.to_server(session.client.hello())
    session.send(session.client.kexinit)
    session.send(session.client.ecdh_init())
    session.conn.transport.send_ignore(b"early")
    session.deliver()
    kinds = [p[0] for p in session.replies]
    assert kinds[kinds.index(MSG.NEWKEYS) + 1 :] == [MSG.EXT_INFO, MSG.IGNORE]
    session.to_server(session.client.newkeys())
    assert [p[0] for p in session.replies].count(MSG.EXT_INFO) == 1
