"""The server core against a scripted client: every transport state, bad input in each.

A ``Session`` (tests/unit/kexclient.py) pairs the server ``Connection`` with a
small client that performs a real curve25519 key exchange, so a test can stop
before the version line, mid-kex, after NEWKEYS or after authentication and
inject exactly the bytes it wants. Each bad input must raise
``RemoteProtocolError`` with the right disconnect reason, and the DISCONNECT
the driver then sends must be readable by the client in that state. Time is a
number: timeouts are tested without sleeping.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from typing import Any

import pytest

from geossh.errors import MACError, MessageOrderError, RemoteProtocolError
from geossh.proto.algorithms import ServerPreferences
from geossh.proto.constants import MSG, DisconnectReason
from geossh.proto.events import (
    AuthServiceStarted,
    ChannelDataReceived,
    ChannelEOFReceived,
    ChannelWindowOpened,
    DisconnectReceived,
    KexCompleted,
    VersionReceived,
)
from geossh.proto.transport import MAX_HELD_CONTROL, KexState
from geossh.proto.wire import Reader, string, u32
from tests.unit.kexclient import (
    CLIENT_VERSION,
    STATES,
    ClientOptions,
    Session,
    channel_data,
    channel_open,
    channel_request,
    global_request,
    ignore,
    kexinit_payload,
    password_request,
    server_config,
    service_request,
    session_in,
)

REASON = DisconnectReason
SUITES = [
    ClientOptions(cipher="aes128-ctr", mac="hmac-sha2-256-etm@openssh.com"),
    ClientOptions(cipher="aes256-ctr", mac="hmac-sha2-512"),
    ClientOptions(cipher="chacha20-poly1305@openssh.com", mac=""),
    ClientOptions(cipher="aes256-gcm@openssh.com", mac=""),
]
SUITE_IDS = ["ctr-etm", "ctr-hmac", "chacha", "gcm"]
KEYED_STATES = STATES[STATES.index("keyed") :]


def raises(session: Session, data: bytes, code: DisconnectReason) -> RemoteProtocolError:
    """Feed ``data``; it must fail with ``code``, and the client must read that DISCONNECT."""
    with pytest.raises(RemoteProtocolError) as info:
        session.to_server(data)
    assert info.value.code == code, info.value
    assert session.fail(info.value) == code
    assert session.conn.next_event() is None  # the core stays failed
    return info.value


def raises_on(session: Session, payload: bytes, code: DisconnectReason) -> RemoteProtocolError:
    """Send one message with the client's keys; it must fail with ``code``."""
    return raises(session, session.client.encode(payload), code)


def unimplemented_for(session: Session, payload: bytes) -> None:
    """Sending ``payload`` must get UNIMPLEMENTED naming its sequence number."""
    seq = session.client.writer.sequence
    before = len(session.replies)
    assert session.send(payload) == []
    replies = session.replies[before:]
    assert [r[0] for r in replies] == [MSG.UNIMPLEMENTED], replies
    assert Reader(replies[0], 1).u32() == seq


# -- the happy path ----------------------------------------------------------------------------
@pytest.mark.parametrize("options", SUITES, ids=SUITE_IDS)
@pytest.mark.parametrize("strict", [True, False])
def test_full_session(options: ClientOptions, strict: bool) -> None:
    options = ClientOptions(cipher=options.cipher, mac=options.mac, strict=strict)
    session = session_in("channel-open", options=options)
    assert session.conn.transport.strict_kex is strict
    assert session.conn.auth.authenticated
    session.send(channel_data(b"hello"))
    assert session.events[-1] == ChannelDataReceived(0, b"hello", 0)
    session.rekey()
    session.send(channel_data(b"after rekey"))
    assert session.events[-1] == ChannelDataReceived(0, b"after rekey", 0)


def test_strict_kex_resets_sequence_numbers() -> None:
    session = session_in("keyed")
    transport = session.conn.transport
    assert transport.reader.sequence == 0  # reset at NEWKEYS (OpenSSH PROTOCOL §1.10)
    assert transport.writer.sequence == 1  # EXT_INFO went out after our NEWKEYS
    session.send(service_request())
    assert transport.reader.sequence == 1


def test_one_byte_at_a_time() -> None:
    session = Session()
    data = session.client.hello() + session.client.encode(session.client.kexinit)
    events = []
    for i in range(len(data)):
        events += session.to_server(data[i : i + 1])
    assert [type(e) for e in events] == [VersionReceived]
    assert session.conn.transport.kex_state is KexState.EXCHANGING


# -- version exchange (RFC 4253 §4.2) ----------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"SSH-2.0-" + b"x" * 300 + b"\r\n", REASON.PROTOCOL_VERSION_NOT_SUPPORTED),
        (b"x" * 300, REASON.PROTOCOL_VERSION_NOT_SUPPORTED),  # no newline at all
        (b"SSH-1.5-old\r\n", REASON.PROTOCOL_VERSION_NOT_SUPPORTED),
        (b"SSH-2.0\r\n", REASON.PROTOCOL_VERSION_NOT_SUPPORTED),
        (b"SSH-2.0-caf\xc3\xa9\r\n", REASON.PROTOCOL_ERROR),
        (b"SSH-2.0-a\x00b\r\n", REASON.PROTOCOL_ERROR),
        (b"\x00\x00\x01\x0c\x0a\x14garbage\n", REASON.PROTOCOL_ERROR),  # a packet, no version
        (b"hello\r\n" * 1100, REASON.PROTOCOL_VERSION_NOT_SUPPORTED),
    ],
    ids=["long", "no-newline", "ssh1", "no-software", "utf8", "nul", "binary", "many-lines"],
)
def test_bad_version_line(data: bytes, code: DisconnectReason) -> None:
    raises(Session(), data, code)


def test_lines_before_version_are_skipped() -> None:
    session = Session()
    events = session.to_server(b"hello there\r\nsecond line\n" + session.client.hello())
    assert events == [VersionReceived(CLIENT_VERSION)]


def test_version_and_packets_in_one_chunk() -> None:
    session = Session()
    hello, kexinit = session.client.hello(), session.client.encode(session.client.kexinit)
    assert session.to_server(hello + kexinit) == [VersionReceived(CLIENT_VERSION)]
    assert session.conn.transport.kex_state is KexState.EXCHANGING


# -- binary packet framing (RFC 4253 §6) -------------------------------------------------------
def framing_cases(block: int) -> dict[str, tuple[int, int, int]]:
    """name -> (packet_length, padding_length, body bytes actually sent)."""
    aligned = 4 * block - 4
    return {
        "zero-length": (0, 0, block),
        "tiny-length": (4, 4, block),
        "unaligned": (aligned + 1, 4, aligned + 1),
        "over-max": (0x0100_0000, 4, 2 * block),
        "huge": (0xFFFF_FFF0, 4, 2 * block),
        "padding-too-long": (aligned, aligned, aligned),
        "padding-too-short": (aligned, 3, aligned),
        "empty-payload": (2 * block - 4, 2 * block - 5, 2 * block - 4),
    }


@pytest.mark.parametrize("case", sorted(framing_cases(8)))
def test_bad_framing_before_keys(case: str) -> None:
    length, padding, body = framing_cases(8)[case]
    session = session_in("pre-kexinit")
    packet = struct.pack(">IB", length, padding) + bytes(body - 1)
    raises(session, packet, REASON.PROTOCOL_ERROR)


@pytest.mark.parametrize("options", SUITES, ids=SUITE_IDS)
@pytest.mark.parametrize("case", sorted(framing_cases(16)))
def test_bad_framing_after_keys(options: ClientOptions, case: str) -> None:
    session = session_in("keyed", options=options)
    block = 8 if "chacha" in options.cipher else 16
    length, padding, body = framing_cases(block)[case]
    if "gcm" in options.cipher or "etm" in options.mac:
        length -= 4 if case == "unaligned" else 0  # the length field is not encrypted
    packet = struct.pack(">IB", length, padding) + bytes(body - 1)
    raises(session, session.client.seal_raw(packet), REASON.PROTOCOL_ERROR)


@pytest.mark.parametrize("options", SUITES, ids=SUITE_IDS)
@pytest.mark.parametrize("where", [-1, 9, 5])
def test_wrong_mac_or_tag(options: ClientOptions, where: int) -> None:
    """A flipped bit in the tag, the body or the length field: MAC_ERROR, nothing processed."""
    session = session_in("userauth", options=options)
    packet = bytearray(session.client.encode(password_request()))
    packet[where] ^= 0x01
    error = raises(session, bytes(packet), REASON.MAC_ERROR)
    assert isinstance(error, MACError)
    assert not session.conn.auth.authenticated


def test_oversize_length_rejected_from_the_head_alone() -> None:
    """The length is checked before the body is awaited: no 16 MiB buffer."""
    session = session_in("keyed")
    head = session.client.seal_raw(struct.pack(">IB", 0x0100_0000, 4) + bytes(27))[:32]
    raises(session, head, REASON.PROTOCOL_ERROR)


@pytest.mark.parametrize("state", ["pre-kexinit", "keyed", "userauth"])
def test_large_packets_wait_for_authentication(state: str) -> None:
    """Before authentication a 70 KB packet is refused: less to buffer per stranger."""
    session = session_in(state)
    raises_on(session, ignore(bytes(70_000)), REASON.PROTOCOL_ERROR)


def test_large_packets_after_authentication() -> None:
    session = session_in("channel-open")
    assert session.send(ignore(bytes(200_000))) == []
    session.send(channel_data(b"next"))
    assert session.events[-1] == ChannelDataReceived(0, b"next", 0)


def test_receive_buffer_is_released_when_drained() -> None:
    """An idle connection keeps no copy of the last burst it read."""
    session = session_in("channel-open")
    burst = b"".join(session.client.encode(channel_data(bytes(30_000))) for _ in range(8))
    session.to_server(burst[:-100])
    assert session.conn.transport.reader.buffered < 35_000  # only the partial packet
    session.to_server(burst[-100:])
    assert len(session.conn.transport.reader._buf) == 0


def test_window_adjusts_of_one_receive_open_each_window_once() -> None:
    """Adjusts need no answer: one event per channel and receive, before the next event."""
    session = session_in("channel-open")
    outbound = session.conn.channels.channels[0].outbound
    before = outbound.remaining
    adjust = bytes((MSG.CHANNEL_WINDOW_ADJUST,)) + u32(0) + u32(1000)
    eof = bytes((MSG.CHANNEL_EOF,)) + u32(0)
    burst = [adjust, adjust, channel_data(b"x"), adjust, eof, adjust]
    events = session.to_server(b"".join(session.client.encode(p) for p in burst))
    assert outbound.remaining == before + 4000
    assert events == [
        ChannelDataReceived(0, b"x", 0),
        ChannelWindowOpened(0),
        ChannelEOFReceived(0),
        ChannelWindowOpened(0),
    ]


# -- message numbers and roles -----------------------------------------------------------------
@pytest.mark.parametrize("state", ["keyed", "userauth", "authenticated", "channel-open"])
@pytest.mark.parametrize("msg", [8, 19, 22, 29, 54, 79, 128, 191, 194, 255])
def test_unknown_message_gets_unimplemented(state: str, msg: int) -> None:
    session = session_in(state)
    unimplemented_for(session, bytes((msg,)) + b"whatever")
    session.advance("channel-open")  # the connection goes on
    session.send(channel_data(b"still here"))
    assert session.events[-1] == ChannelDataReceived(0, b"still here", 0)


@pytest.mark.parametrize("msg", [101, 127])
def test_unknown_connection_message_after_auth(msg: int) -> None:
    unimplemented_for(session_in("authenticated"), bytes((msg,)))


@pytest.mark.parametrize(
    "msg", [MSG.SERVICE_ACCEPT, 51, MSG.USERAUTH_SUCCESS, MSG.USERAUTH_BANNER, 60]
)
def test_client_only_messages_are_not_accepted(msg: int) -> None:
    """CVE-2018-1000805: a client's USERAUTH_SUCCESS must not authenticate it."""
    session = session_in("userauth")
    unimplemented_for(session, bytes((msg,)) + string("x") + b"\x00")
    assert not session.conn.auth.authenticated
    raises_on(session, channel_open(), REASON.PROTOCOL_ERROR)


@pytest.mark.parametrize("state", ["keyed", "userauth"])
@pytest.mark.parametrize("msg", [80, 81, 82, 90, 91, 93, 94, 96, 97, 98, 99, 100, 110])
def test_connection_layer_before_authentication(state: str, msg: int) -> None:
    session = session_in(state)
    payload = channel_open() if msg == MSG.CHANNEL_OPEN else bytes((msg,)) + u32(0) + u32(0)
    error = raises_on(session, payload, REASON.PROTOCOL_ERROR)
    assert "before authentication" in str(error)
    assert not any(type(e).__name__.startswith(("Channel", "Global")) for e in session.events)


@pytest.mark.parametrize("state", ["keyed", "authenticated"])
def test_ext_info_from_client_is_refused(state: str) -> None:
    payload = bytes((MSG.EXT_INFO,)) + u32(1) + string("server-sig-algs") + string("ssh-ed25519")
    raises_on(session_in(state), payload, REASON.PROTOCOL_ERROR)


@pytest.mark.parametrize("msg", [30, 31, 33, 34, 49])
def test_kex_message_outside_key_exchange(msg: int) -> None:
    raises_on(session_in("authenticated"), bytes((msg,)) + string(bytes(32)), REASON.PROTOCOL_ERROR)


def test_server_ext_info_slot() -> None:
    """EXT_INFO right after our first NEWKEYS, only for ext-info-c, never again."""
    session = session_in("authenticated")
    kinds = [r[0] for r in session.replies]
    assert kinds[kinds.index(MSG.NEWKEYS) + 1] == MSG.EXT_INFO
    assert kinds.count(MSG.EXT_INFO) == 1
    reader = Reader(session.replies[kinds.index(MSG.EXT_INFO)], 1)
    extensions = {}
    for _ in range(reader.u32()):
        name = reader.string()
        extensions[name] = reader.string()
    assert next(iter(extensions)) == b"server-sig-algs"
    assert extensions[b"publickey-hostbound@openssh.com"] == b"0"
    assert extensions[b"ping@openssh.com"] == b"0"
    session.rekey()
    assert [r[0] for r in session.replies].count(MSG.EXT_INFO) == 1
    quiet = session_in("keyed", options=ClientOptions(ext_info=False))
    assert MSG.EXT_INFO not in [r[0] for r in quiet.replies]


# -- key exchange order and strict kex ---------------------------------------------------------
@pytest.mark.parametrize("strict", [True, False])
def test_newkeys_out_of_order(strict: bool) -> None:
    session = session_in("kexinit-sent", options=ClientOptions(strict=strict))
    raises_on(session, bytes((MSG.NEWKEYS,)), REASON.PROTOCOL_ERROR)


def test_newkeys_with_trailing_bytes() -> None:
    session = session_in("await-newkeys")
    raises(session, session.client.encode(b"\x15junk"), REASON.PROTOCOL_ERROR)


@pytest.mark.parametrize("state", ["kexinit-sent", "await-newkeys"])
def test_second_kexinit_during_kex(state: str) -> None:
    session = session_in(state, options=ClientOptions(strict=False))
    raises_on(session, session.client.kexinit, REASON.PROTOCOL_ERROR)


@pytest.mark.parametrize("state", ["pre-kexinit", "kexinit-sent", "await-newkeys"])
@pytest.mark.parametrize(
    "payload",
    [service_request(), password_request(), channel_open(), global_request()],
    ids=["service", "auth", "open", "global"],
)
def test_higher_layers_during_initial_kex(state: str, payload: bytes) -> None:
    session = session_in(state, options=ClientOptions(strict=False))
    raises_on(session, payload, REASON.PROTOCOL_ERROR)
    assert not any(isinstance(e, AuthServiceStarted) for e in session.events)


def test_messages_sent_before_newkeys_are_never_read_after_it() -> None:
    """A request protected with the old keys, glued behind NEWKEYS, is never accepted."""
    session = session_in("await-newkeys", options=ClientOptions(strict=False))
    stale = session.client.encode(service_request())  # still the cleartext keys
    newkeys = session.client.encode(bytes((MSG.NEWKEYS,)))
    with pytest.raises(RemoteProtocolError) as info:
        session.to_server(newkeys + stale)
    assert info.value.code in (REASON.MAC_ERROR, REASON.PROTOCOL_ERROR)  # MAC or framing
    assert session.conn.transport.initial_kex_done
    assert not any(isinstance(e, AuthServiceStarted) for e in session.events)


@pytest.mark.parametrize("state", ["pre-kexinit", "kexinit-sent", "await-newkeys"])
@pytest.mark.parametrize("msg", [MSG.IGNORE, MSG.DEBUG, MSG.UNIMPLEMENTED, 15])
def test_strict_kex_allows_only_kex_messages(state: str, msg: int) -> None:
    session = session_in(state)
    payload = bytes((msg,)) + (b"\x00" + string("") + string("") if msg == MSG.DEBUG else u32(0))
    if state == "pre-kexinit":  # strictness is known only from the KEXINIT that follows
        session.send(payload)
        payload = session.client.kexinit
    error = raises_on(session, payload, REASON.PROTOCOL_ERROR)
    assert isinstance(error, MessageOrderError)


def test_non_strict_kex_allows_transport_messages() -> None:
    session = Session(options=ClientOptions(strict=False))
    session.advance("pre-kexinit")
    session.send(ignore(b"before"))
    session.advance("kexinit-sent")
    session.send(ignore(b"during"))
    unimplemented_for(session, b"\x0fnot assigned")  # RFC 4253 §7.1 allows 1-29
    session.advance("channel-open")
    assert session.conn.transport.initial_kex_done


@pytest.mark.parametrize(
    "changes",
    [
        {"kex": ("diffie-hellman-group1-sha1",)},
        {"kex": ()},
        {"kex": ("kex-strict-c-v00@openssh.com",)},
        {"host_key": ("ssh-dss",)},
        {"host_key": ()},
        {"cipher": "aes128-cbc"},
        {"cipher": "aes128-ctr", "mac": "hmac-md5"},
        {"cipher": "aes128-ctr", "mac": ""},
    ],
    ids=["kex", "no-kex", "only-marker", "hostkey", "no-hostkey", "cipher", "mac", "no-mac"],
)
def test_kexinit_without_common_algorithm(changes: dict[str, Any]) -> None:
    options = replace(ClientOptions(ext_info=False, strict=False), **changes)
    session = session_in("pre-kexinit")
    raises_on(session, kexinit_payload(options), REASON.KEY_EXCHANGE_FAILED)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p[:-1],  # truncated reserved field
        lambda p: p + b"\x00",  # trailing byte
        lambda p: p[:17],  # no name-lists
        lambda p: p[:17] + u32(5) + b"a,,b" + p[26:],  # empty name
        lambda p: p[:17] + u32(0xFFFFFF00) + p[21:],  # name-list longer than the packet
        lambda p: p[:17] + string(b"caf\xc3\xa9") + p[17:],  # non-ASCII name
    ],
    ids=["truncated", "trailing", "short", "empty-name", "long-list", "non-ascii"],
)
def test_malformed_kexinit(mutate: object) -> None:
    session = session_in("pre-kexinit")
    raises_on(session, mutate(session.client.kexinit), REASON.PROTOCOL_ERROR)  # type: ignore[operator]


@pytest.mark.parametrize(
    "q_c",
    [b"", bytes(31), bytes(33), bytes(32), b"\x01" + bytes(31), bytes(1024)],
    ids=["empty", "short", "long", "zero", "order-1", "huge"],
)
def test_invalid_x25519_public_value(q_c: bytes) -> None:
    session = session_in("kexinit-sent")
    raises_on(session, session.client.ecdh_init(q_c), REASON.KEY_EXCHANGE_FAILED)
    assert not session.conn.transport.initial_kex_done


def test_first_kex_packet_follows_right_guess() -> None:
    prefs = ServerPreferences(kex=("curve25519-sha256",))
    options = ClientOptions(first_kex_follows=True)
    session = Session(config=server_config(preferences=prefs), options=options)
    session.advance("await-newkeys")  # the guessed ECDH_INIT is used
    assert [r[0] for r in session.replies][:3] == [MSG.KEXINIT, 31, MSG.NEWKEYS]
    session.advance("channel-open")


def test_first_kex_packet_follows_wrong_guess() -> None:
    """Preferred algorithms differ (server prefers mlkem): the guess is dropped."""
    session = Session(options=ClientOptions(first_kex_follows=True))
    session.advance("kexinit-sent")
    session.send(session.client.ecdh_init(b"a wrong guess"))
    assert session.conn.transport.kex_state is KexState.EXCHANGING
    session.advance("channel-open")


def test_offer_is_limited_to_implemented_algorithms() -> None:
    prefs = ServerPreferences(
        kex=("bogus-kex", "diffie-hellman-group-exchange-sha256", "curve25519-sha256"),
        ciphers=("bogus-cipher", "aes128-ctr"),
        macs=("bogus-mac", "hmac-sha2-256"),
    )
    session = Session(config=server_config(preferences=prefs))
    session.advance("pre-kexinit")
    session.conn.handle_timer(session.conn.config.kexinit_wait)  # ours, unasked
    offer = Reader(session.deliver()[0], 17)
    assert offer.name_list() == ["curve25519-sha256", "kex-strict-s-v00@openssh.com"]
    offer.name_list()
    assert offer.name_list() == ["aes128-ctr"]
    offer.name_list()
    assert offer.name_list() == ["hmac-sha2-256"]


# -- deadlines: the clock is a number ----------------------------------------------------------
TIMEOUTS = {"banner_timeout": 10.0, "handshake_timeout": 20.0, "auth_timeout": 60.0}


def timed(state: str, **extra: float) -> Session:
    return session_in(state, config=server_config(**{**TIMEOUTS, **extra}))


@pytest.mark.parametrize(
    ("state", "limit", "code"),
    [
        ("pre-version", 10.0, REASON.PROTOCOL_ERROR),
        ("pre-kexinit", 30.0, REASON.KEY_EXCHANGE_FAILED),
        ("kexinit-sent", 30.0, REASON.KEY_EXCHANGE_FAILED),
        ("await-newkeys", 30.0, REASON.KEY_EXCHANGE_FAILED),
        ("keyed", 60.0, REASON.NO_MORE_AUTH_METHODS_AVAILABLE),
        ("userauth", 60.0, REASON.NO_MORE_AUTH_METHODS_AVAILABLE),
    ],
)
def test_stalled_client_times_out(state: str, limit: float, code: DisconnectReason) -> None:
    session = timed(state)
    conn = session.conn
    if state == "pre-kexinit":  # first the wait for the client's KEXINIT ends
        wait = conn.config.kexinit_wait
        assert conn.deadline() == wait
        conn.handle_timer(wait)
    assert conn.deadline() == limit
    conn.handle_timer(limit - 0.001)
    with pytest.raises(RemoteProtocolError) as info:
        conn.handle_timer(limit)
    assert info.value.code == code
    assert session.fail(info.value) == code
    assert conn.deadline() is None


def test_trickle_cannot_extend_the_handshake() -> None:
    """One byte a second keeps data flowing, but the absolute deadline still holds."""
    session = timed("pre-version")
    data = session.client.hello() + session.client.encode(session.client.kexinit)
    deadlines = set()
    with pytest.raises(RemoteProtocolError) as info:
        for i in range(len(data)):
            session.now = float(i)
            session.to_server(data[i : i + 1])  # the driver never sees a quiet socket
            deadlines.add(session.conn.deadline())
    assert info.value.code in (REASON.PROTOCOL_ERROR, REASON.KEY_EXCHANGE_FAILED)
    assert deadlines <= {10.0, 30.0}
    assert session.now in (10.0, 30.0)


def test_flood_of_ignore_cannot_extend_the_handshake() -> None:
    session = timed("pre-kexinit", handshake_timeout=5.0)
    packet = session.client.encode(ignore(b"x" * 100))
    with pytest.raises(RemoteProtocolError) as info:
        for second in range(100):
            session.now = float(second)
            session.to_server(packet * 10)
    assert info.value.code == REASON.KEY_EXCHANGE_FAILED
    assert session.now == 15.0


def test_authenticated_connection_has_no_handshake_deadline() -> None:
    session = timed("authenticated", rekey_seconds=100.0)
    assert session.conn.deadline() == 100.0
    session.conn.handle_timer(100.0)  # time-based re-key, not an error
    assert session.conn.transport.kex_state is KexState.KEXINIT_SENT
    session.deliver()
    assert session.replies[-1][0] == MSG.KEXINIT


@pytest.mark.parametrize("with_clock", [True, False])
def test_stalled_rekey_times_out(with_clock: bool) -> None:
    session = timed("channel-open")
    conn = session.conn
    if with_clock:
        conn.transport.start_rekey(500.0)
    else:  # as the facade does: the count starts at the next clock reading
        conn.transport.start_rekey()
        assert conn.deadline() == 0.0  # due at once
        conn.handle_timer(500.0)
    assert conn.deadline() == 520.0
    session.now = 519.0
    session.send(channel_data(b"data still flows in"))  # the peer has not seen our KEXINIT
    with pytest.raises(RemoteProtocolError) as info:
        conn.handle_timer(520.0)
    assert info.value.code == REASON.KEY_EXCHANGE_FAILED


def test_rekey_deadline_ends_with_the_rekey() -> None:
    session = timed("channel-open", rekey_seconds=1000.0)
    session.now = 500.0
    session.conn.transport.start_rekey(500.0)
    session.rekey()
    assert session.conn.deadline() == 1500.0
    session.conn.handle_timer(1000.0)


# -- held output during key exchange: no amplification -----------------------------------------
def test_replies_held_during_rekey_are_bounded() -> None:
    """Requests sent while ignoring our KEXINIT: replies are held, up to a limit."""
    session = session_in("channel-open")
    session.conn.transport.start_rekey()
    session.deliver()
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(MAX_HELD_CONTROL + 10):
            session.send(channel_request("nonsense", want_reply=True))
            assert len(session.conn.transport._held) <= MAX_HELD_CONTROL + 1
    assert "held back" in str(info.value)
    assert session.fail(info.value) == REASON.PROTOCOL_ERROR
    assert not any(r[0] == MSG.CHANNEL_FAILURE for r in session.replies)


def test_held_replies_flow_after_rekey() -> None:
    session = session_in("channel-open")
    session.conn.transport.start_rekey()
    session.deliver()
    for _ in range(5):
        session.send(global_request(want_reply=True))
    assert MSG.REQUEST_FAILURE not in [r[0] for r in session.replies]
    session.rekey()
    assert [r[0] for r in session.replies].count(MSG.REQUEST_FAILURE) == 5


def test_unimplemented_is_not_held_during_rekey() -> None:
    session = session_in("channel-open")
    session.conn.transport.start_rekey()
    session.deliver()
    unimplemented_for(session, b"\xc8")
    assert session.conn.transport._held == []


def test_requests_during_peer_rekey_are_refused() -> None:
    session = session_in("channel-open")
    session.send(session.client.rekey())
    raises_on(session, channel_request(), REASON.PROTOCOL_ERROR)


# -- after the end -----------------------------------------------------------------------------
def test_disconnect_from_client() -> None:
    session = session_in("authenticated")
    payload = bytes((MSG.DISCONNECT,)) + u32(11) + string("bye") + string("")
    assert session.send(payload) == [DisconnectReceived(11, "bye")]
    assert session.conn.closed and session.conn.deadline() is None
    assert session.send(channel_open()) == []
    assert session.conn.data_to_send() == b""


def test_failed_core_ignores_input_and_sends_one_disconnect() -> None:
    session = session_in("userauth")
    with pytest.raises(RemoteProtocolError):
        session.send(b"\x5a" + bytes(20))
    for _ in range(3):
        session.to_server(b"more bytes after the error" * 100)
    assert session.conn.transport.reader.buffered < 200
    session.conn.send_disconnect(REASON.PROTOCOL_ERROR, "x")
    session.conn.send_disconnect(REASON.PROTOCOL_ERROR, "again")
    session.deliver()
    assert [r[0] for r in session.replies].count(MSG.DISCONNECT) == 1


def test_every_state_is_reachable() -> None:
    for state in STATES:
        session = session_in(state)
        assert session.state == state
    assert isinstance(session.events[1], KexCompleted)
