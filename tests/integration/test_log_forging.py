"""Peer-chosen strings cannot forge log lines (issue 16, item 10).

A hand-driven client (``RawClient`` on a gevent socket) puts newlines and
terminal controls into every string it may choose before or right after
authentication: its version line, a DISCONNECT description, a PROXY v2 UNIX
"address", channel types and forwarding targets. Every record the server
logs must stay one printable line, with the peer's text escaped. Fails on
the old code, which logged them raw (one DISCONNECT made a complete fake
"authenticated as 'root'" line).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from geossh.logtext import printable
from geossh.proto.constants import MSG
from geossh.proto.wire import boolean, string, u32
from geossh.runner.server import Server
from geossh.services.forward import ForwardingPolicy, ForwardingServer
from tests.integration.test_limits import Client, finished
from tests.server_kit import Login, make_server
from tests.unit.kexclient import service_request

FORGED = "\n[conn=1 10.0.0.1:22] authenticated as 'root'"
_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def _disconnect(description: str) -> bytes:
    return bytes((MSG.DISCONNECT,)) + u32(11) + string(description) + string("")


def _proxy_v2_unix(source: bytes) -> bytes:
    """A PROXY v2 header for a relayed AF_UNIX stream connection from ``source``."""
    block = source.ljust(108, b"\0") + b"/balancer".ljust(108, b"\0")
    return _V2_SIGNATURE + bytes((0x21, 0x31)) + struct.pack(">H", len(block)) + block


def _direct_tcpip(host: str, port: int = 22, sender: int = 7) -> bytes:
    return (
        bytes((MSG.CHANNEL_OPEN,)) + string("direct-tcpip") + u32(sender) + u32(1 << 20)
        + u32(32768) + string(host) + u32(port) + string("127.0.0.1") + u32(5555)
    )  # fmt: skip


class ForwardingLogin(ForwardingServer, Login):
    """``Login`` that forwards to loopback only."""

    forwarding_policy = ForwardingPolicy(local=["127.0.0.1:*"])

    def __init__(self) -> None:
        Login.__init__(self)


@pytest.fixture
def server(keydir: Path) -> Iterator[Server]:
    started = make_server(
        keydir, interface=ForwardingLogin, proxy_protocol=True, proxy_from=["127.0.0.1/32"]
    )
    started.start()
    yield started
    started.stop(timeout=1)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="geossh")
    return caplog


def assert_one_line_each(caplog: pytest.LogCaptureFixture, escaped: str) -> None:
    """No record holds a control character; the peer's text was logged, escaped."""
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("geossh")]
    forged = [m for m in messages if not m.isprintable()]
    assert not forged, forged
    assert not any(m.startswith("[conn=1 10.0.0.1:22]") for m in messages)
    assert any(escaped in m for m in messages), messages


def _connect(server: Server, header: bytes = b"") -> Client:
    client = Client(server.port)
    client.send(header or _proxy_v2_unix(b"/run/client"))
    return client


def test_disconnect_description_is_escaped(server: Server, logs: pytest.LogCaptureFixture) -> None:
    client = _connect(server)
    client.handshake()
    client.send_msg(_disconnect("bye" + FORGED))
    client.read_until(lambda p: False)  # the server closes after a DISCONNECT
    client.close()
    finished(server, client)
    assert_one_line_each(logs, "bye\\x0a[conn=1 10.0.0.1:22] authenticated as 'root'")


def test_version_line_controls_are_escaped(server: Server, logs: pytest.LogCaptureFixture) -> None:
    client = _connect(server)
    client.send(b"SSH-2.0-evil\x1b[2J\x1b[H\x07\rclient\r\n")
    banner = b""
    for _ in range(64):  # the server's own line: its connection greenlet is running
        banner += client.sock.recv(256)
        if b"\n" in banner:
            break
    client.close()  # the server reads our line, then the end of the stream
    finished(server, client)
    assert_one_line_each(logs, "client evil\\x1b[2J\\x1b[H\\x07\\x0dclient")


def test_proxy_unix_address_is_escaped(server: Server, logs: pytest.LogCaptureFixture) -> None:
    client = _connect(server, _proxy_v2_unix(b"/tmp/s" + FORGED.encode() + b"\x1b[1m"))
    client.handshake()
    client.send_msg(_disconnect("done"))
    client.read_until(lambda p: False)
    client.close()
    finished(server, client)
    assert_one_line_each(logs, "/tmp/s\\x0a[conn=1 10.0.0.1:22] authenticated as 'root'\\x1b")


def test_channel_types_and_forwarding_targets_are_escaped(
    server: Server, logs: pytest.LogCaptureFixture
) -> None:
    client = _connect(server)
    client.handshake()
    client.authenticate()
    odd = bytes((MSG.CHANNEL_OPEN,)) + string("x" + FORGED) + u32(3) + u32(1 << 20) + u32(32768)
    client.send_msg(odd)
    client.wait_for(MSG.CHANNEL_OPEN_FAILURE)
    client.send_msg(_direct_tcpip("evil.example" + FORGED))
    client.wait_for(MSG.CHANNEL_OPEN_FAILURE)
    client.send_msg(_disconnect("done"))
    client.read_until(lambda p: False)
    client.close()
    finished(server, client)
    assert_one_line_each(logs, "x\\x0a[conn=1 10.0.0.1:22] authenticated as 'root'")
    assert_one_line_each(logs, "evil.example\\x0a[conn=1 10.0.0.1:22]")


def test_user_names_and_remote_forward_addresses_are_escaped(
    server: Server, logs: pytest.LogCaptureFixture
) -> None:
    client = _connect(server)
    client.handshake()
    client.send_msg(service_request())
    client.wait_for(MSG.SERVICE_ACCEPT)
    assert client.password("wrong", user="bob" + FORGED)[0] == MSG.USERAUTH_FAILURE
    client.close()
    finished(server, client)
    client = _connect(server)
    client.handshake()
    client.authenticate()
    client.send_msg(
        bytes((MSG.GLOBAL_REQUEST,)) + string("tcpip-forward") + boolean(True)
        + string("0.0.0.0" + FORGED) + u32(8022)
    )  # fmt: skip
    client.wait_for(MSG.REQUEST_FAILURE)
    client.send_msg(_disconnect("done"))
    client.read_until(lambda p: False)
    client.close()
    finished(server, client)
    assert_one_line_each(logs, "bob\\n[conn=1 10.0.0.1:22] authenticated as")  # repr
    assert_one_line_each(logs, "remote forward 0.0.0.0\\x0a[conn=1 10.0.0.1:22]")


# -- the helper itself ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("root", "root"),
        ("a\nb\r\tc", "a\\x0ab\\x0d\\x09c"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("back\\slash", "back\\\\slash"),
        ("bidi\u202eevil\u2028", "bidi\\u202eevil\\u2028"),
        (b"\xffok\n", "\\xffok\\x0a"),
        ("caf\u00e9", "caf\u00e9"),
        (42, "42"),
    ],
)
def test_printable_escapes(raw: object, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_truncates_without_cutting_escapes() -> None:
    assert printable("x" * 300, 20) == "x" * 17 + "..."
    assert printable("\n" * 100, 20) == "\\x0a" * 4 + "..."
    assert len(printable("\u202e" * 1000, 50)) <= 50
    assert printable(b"\xf0\x9f\x98\x80" * 30, 10) == "\U0001f600" * 7 + "..."
    assert printable("exactly10!", 10) == "exactly10!"
