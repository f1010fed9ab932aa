"""Fuzzing the server core: bytes in, events out, or ``RemoteProtocolError``; nothing else.

Properties, run in every state a ``Session`` can reach (tests/unit/kexclient.py):

* random bytes, fed whole, one byte at a time, or in random pieces;
* random and structured payloads inside correctly protected packets;
* mutations of a recorded valid session, at the byte level (the cleartext
  handshake replays against any server) and at the message level (the
  client re-protects mutated messages, so the server parses them for real);
* a valid session split at every byte boundary decodes to the same events.

After every step the core's buffers must be bounded; after an error it must
stay quiet and still produce one DISCONNECT. The default run uses few
examples; ``--run-slow`` runs the ``slow`` twins with many more
(``GEOSSH_FUZZ_EXAMPLES``, default 2500 each).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from geossh.errors import RemoteProtocolError
from geossh.proto.constants import MAX_VERSION_LINE, MSG
from geossh.proto.transport import MAX_HELD_CONTROL
from geossh.proto.wire import boolean, string, u32
from tests.unit.kexclient import (
    STATES,
    Session,
    channel_data,
    channel_open,
    channel_request,
    global_request,
    ignore,
    password_request,
    service_request,
    session_in,
)

FAST = 40
SLOW = int(os.environ.get("GEOSSH_FUZZ_EXAMPLES", "2500"))  # per slow property
MAX_TAG = 64  # the longest MAC we implement (hmac-sha2-512)


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def twin(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Apply the example count; the slow twin also gets the ``slow`` marker."""

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        fn = fuzz_settings(examples)(fn)
        return pytest.mark.slow(fn) if examples > FAST else fn

    return wrap


# -- the checks --------------------------------------------------------------------------------
def check_bounded(session: Session) -> None:
    """Nothing in the core grows with the input beyond fixed bounds."""
    transport = session.conn.transport
    assert transport.reader.buffered <= transport.config.max_packet_size + 4 + MAX_TAG
    assert len(transport._held) <= MAX_HELD_CONTROL + 1
    if transport._version is not None:
        assert len(transport._version._buffer) <= MAX_VERSION_LINE
    assert len(session.conn._events) == 0


def check_failed(session: Session, exc: RemoteProtocolError) -> None:
    """A failed core stays quiet, ignores input, and sends exactly one DISCONNECT."""
    conn = session.conn
    assert conn.next_event() is None
    conn.receive_data(b"\x00" * 1000, session.now)
    assert conn.next_event() is None
    conn.data_to_send()
    conn.send_disconnect(exc.code, str(exc))
    assert conn.data_to_send()  # the DISCONNECT (encoded with the current keys)
    conn.send_disconnect(exc.code, "twice")
    assert conn.data_to_send() == b""


def run_server(session: Session, data: bytes) -> RemoteProtocolError | None:
    """Feed ``data`` and drain the events; only RemoteProtocolError may escape the core."""
    try:
        session.conn.receive_data(data, session.now)
        session.drain()
    except RemoteProtocolError as exc:
        check_failed(session, exc)
        return exc
    session.conn.data_to_send()  # the output is the client's problem here
    check_bounded(session)
    return None


def feed_pieces(session: Session, pieces: Iterator[bytes]) -> RemoteProtocolError | None:
    conn = session.conn
    for piece in pieces:
        error = run_server(session, piece)
        if error is not None or conn.closed:
            return error
    return None


def split(data: bytes, mode: str, cuts: list[int]) -> Iterator[bytes]:
    """``data`` whole, byte by byte, or cut at ``cuts``."""
    if mode == "whole":
        yield data
    elif mode == "bytes":
        yield from (data[i : i + 1] for i in range(len(data)))
    else:
        points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
        yield from (data[a:b] for a, b in itertools.pairwise(points))


# -- strategies --------------------------------------------------------------------------------
NAMES = [
    "ssh-userauth", "ssh-connection", "none", "password", "publickey",
    "keyboard-interactive", "hostbased", "session", "direct-tcpip", "x11",
    "pty-req", "env", "exec", "shell", "subsystem", "exit-status", "window-change",
    "keepalive@openssh.com", "tcpip-forward", "ssh-ed25519", "rsa-sha2-256", "alice",
]  # fmt: skip
INTS = [0, 1, 2, 7, 255, 32768, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]

fragments = st.one_of(
    st.sampled_from(INTS).map(u32),
    st.integers(0, 0xFFFFFFFF).map(u32),
    st.sampled_from(NAMES).map(string),
    st.binary(max_size=64).map(string),
    st.booleans().map(boolean),
    st.binary(max_size=16),
)
message_numbers = st.one_of(st.sampled_from([int(m) for m in MSG]), st.integers(0, 255))
structured = st.builds(
    lambda msg, parts: bytes((msg,)) + b"".join(parts),
    message_numbers,
    st.lists(fragments, max_size=8),
)
payloads = st.one_of(structured, st.binary(min_size=1, max_size=400))
modes = st.sampled_from(["whole", "bytes", "cuts"])
cut_lists = st.lists(st.integers(0, 1 << 16), max_size=8)


# -- properties --------------------------------------------------------------------------------
def random_bytes(state: str, data: bytes, mode: str, cuts: list[int]) -> None:
    session = session_in(state)
    feed_pieces(session, split(data, mode, cuts))


def random_payloads(state: str, messages: list[bytes]) -> None:
    session = session_in(state)
    for payload in messages:
        if session.conn.closed:
            return
        if run_server(session, session.client.encode(payload)) is not None:
            return


state_strategy = st.sampled_from(STATES)
random_bytes_args: dict[str, Any] = {
    "state": state_strategy,
    "data": st.binary(max_size=1500),
    "mode": modes,
    "cuts": cut_lists,
}
random_payload_args: dict[str, Any] = {
    "state": state_strategy,
    "messages": st.lists(payloads, min_size=1, max_size=6),
}


@given(**random_bytes_args)
@twin(FAST)
def test_random_bytes(state: str, data: bytes, mode: str, cuts: list[int]) -> None:
    random_bytes(state, data, mode, cuts)


@given(**random_bytes_args)
@twin(SLOW)
def test_random_bytes_long(state: str, data: bytes, mode: str, cuts: list[int]) -> None:
    random_bytes(state, data, mode, cuts)


@given(**random_payload_args)
@twin(FAST)
def test_random_payloads(state: str, messages: list[bytes]) -> None:
    random_payloads(state, messages)


@given(**random_payload_args)
@twin(SLOW)
def test_random_payloads_long(state: str, messages: list[bytes]) -> None:
    random_payloads(state, messages)


# -- mutations of a recorded session -----------------------------------------------------------
def recorded_handshake() -> bytes:
    """The client's bytes up to and including NEWKEYS: cleartext, replayable anywhere."""
    session = session_in("keyed")
    return b"".join(session.sent)


CONVERSATION = [
    service_request(),
    password_request("wrong"),
    password_request(),
    channel_open(),
    channel_request("pty-req", True) + string("xterm") + u32(80) + u32(24) + u32(0) * 2
    + string(b"\x00"),
    channel_request("env", True) + string("LANG") + string("C"),
    channel_request("exec", True) + string("echo ok"),
    channel_data(b"some input"),
    bytes((MSG.CHANNEL_WINDOW_ADJUST,)) + u32(0) + u32(4096),
    global_request("keepalive@openssh.com"),
    ignore(b"padding"),
    bytes((MSG.CHANNEL_EOF,)) + u32(0),
    bytes((MSG.CHANNEL_CLOSE,)) + u32(0),
]  # fmt: skip


@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few flips, insertions, deletions or a cut."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut", "repeat"]))
        pos = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "flip" and out:
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and out:
            out[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del out[pos : pos + draw(st.integers(1, 8))]
        elif kind == "cut":
            del out[pos:]
        elif kind == "repeat":
            out[pos:pos] = out[pos : pos + draw(st.integers(1, 40))]
    return bytes(out)


@st.composite
def conversation_mutations(draw: st.DrawFn) -> list[bytes]:
    """The recorded conversation with messages dropped, repeated, swapped or mangled."""
    messages = list(CONVERSATION)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["mangle", "drop", "repeat", "swap", "insert", "renumber"]))
        i = draw(st.integers(0, len(messages) - 1))
        if kind == "mangle":
            messages[i] = draw(byte_mutations(messages[i])) or b"\x00"
        elif kind == "drop" and len(messages) > 1:
            del messages[i]
        elif kind == "repeat":
            messages.insert(i, messages[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(messages) - 1))
            messages[i], messages[j] = messages[j], messages[i]
        elif kind == "insert":
            messages.insert(i, draw(payloads))
        elif kind == "renumber":
            messages[i] = bytes((draw(message_numbers),)) + messages[i][1:]
    return messages


HANDSHAKE = recorded_handshake()
handshake_args: dict[str, Any] = {
    "data": byte_mutations(HANDSHAKE),
    "mode": modes,
    "cuts": cut_lists,
}


def mutated_handshake(data: bytes, mode: str, cuts: list[int]) -> None:
    session = Session()
    feed_pieces(session, split(data, mode, cuts))


def mutated_conversation(messages: list[bytes]) -> None:
    random_payloads("keyed", messages)


@given(**handshake_args)
@twin(FAST)
def test_mutated_handshake(data: bytes, mode: str, cuts: list[int]) -> None:
    mutated_handshake(data, mode, cuts)


@given(**handshake_args)
@twin(SLOW)
def test_mutated_handshake_long(data: bytes, mode: str, cuts: list[int]) -> None:
    mutated_handshake(data, mode, cuts)


@given(messages=conversation_mutations())
@twin(FAST)
def test_mutated_conversation(messages: list[bytes]) -> None:
    mutated_conversation(messages)


@given(messages=conversation_mutations())
@twin(SLOW)
def test_mutated_conversation_long(messages: list[bytes]) -> None:
    mutated_conversation(messages)


# -- split invariance --------------------------------------------------------------------------
def event_types(session: Session) -> list[str]:
    return [type(event).__name__ for event in session.events]


def replay(*chunks: bytes) -> list[str]:
    """Feed recorded client bytes to a fresh server (its replies go nowhere)."""
    session = Session()
    for chunk in chunks:
        assert run_server(session, chunk) is None
    return event_types(session)


def split_everywhere(step: int) -> None:
    expected = replay(HANDSHAKE)
    assert expected == ["VersionReceived", "KexCompleted"]
    for cut in range(1, len(HANDSHAKE), step):
        assert replay(HANDSHAKE[:cut], HANDSHAKE[cut:]) == expected, cut
    reference = session_in("keyed")
    blob = b"".join(reference.client.encode(m) for m in CONVERSATION[:8])
    reference.to_server(blob)
    expected = event_types(reference)
    for cut in range(1, len(blob), step):
        session = session_in("keyed")
        blob = b"".join(session.client.encode(m) for m in CONVERSATION[:8])
        session.to_server(blob[:cut])
        session.to_server(blob[cut:])
        assert event_types(session) == expected, cut


def test_split_at_boundaries() -> None:
    split_everywhere(step=13)


@pytest.mark.slow
def test_split_at_every_boundary() -> None:
    split_everywhere(step=1)
