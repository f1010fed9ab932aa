"""PROXY protocol on a geossh.Server: the header's client address is the peer everywhere."""

from __future__ import annotations

import contextlib
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from geossh.runner.proxyproto import build_v1, build_v2
from geossh.runner.server import Server
from geossh.services.session import Session
from tests.server_kit import Login, make_server
from tests.support import PASSWORD, USER, in_thread

CLIENT = ("203.0.113.77", 40123)
BALANCER_SIDE = ("10.1.2.3", 2222)


class Recording(Login):
    """Login that remembers the transport's peer at creation and at authentication."""

    seen: list[tuple[str, Any]] = []

    def __init__(self, transport: Any) -> None:
        super().__init__(transport=transport)
        self.transport = transport
        Recording.seen.append(("factory", self.peer))

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        Recording.seen.append(("auth", self.transport.getpeername()))
        return super().check_auth_password(username, password)


def _peer_handler(session: Session) -> int:
    session.write(f"{session.peer[0]}:{session.peer[1]}\n")
    return 0


def _exec_over(port: int, header: bytes) -> bytes:
    """Connect, send ``header``, then run ``peer`` over paramiko on the same socket."""
    import paramiko

    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(header)
    transport = paramiko.Transport(sock)
    try:
        transport.connect(username=USER, password=PASSWORD)
        chan = transport.open_session()
        chan.exec_command("peer")
        return bytes(chan.makefile("rb").read())
    finally:
        transport.close()


@pytest.fixture
def proxied(keydir: Path) -> Any:
    Recording.seen = []
    server = make_server(keydir, interface=Recording, handler=_peer_handler, proxy_protocol=True)
    server.start()
    yield server
    server.stop(timeout=1)


@pytest.mark.parametrize("version", [1, 2])
def test_header_sets_peer_address(
    proxied: Server, version: int, caplog: pytest.LogCaptureFixture
) -> None:
    header = build_v1(CLIENT, BALANCER_SIDE) if version == 1 else build_v2(CLIENT, BALANCER_SIDE)
    with caplog.at_level(logging.INFO, logger="geossh.server"):
        out = in_thread(_exec_over, proxied.port, header)
    assert out == b"203.0.113.77:40123\n"  # the session, via transport.getpeername()
    assert Recording.seen == [("factory", CLIENT), ("auth", CLIENT)]  # the ServerInterface
    lines = [r.getMessage() for r in caplog.records if r.name == "geossh.server"]
    assert any("connection from 203.0.113.77:40123" in line for line in lines)
    assert all("203.0.113.77:40123" in line for line in lines if line.startswith("[conn="))


def test_local_header_keeps_socket_address(proxied: Server) -> None:
    out = in_thread(_exec_over, proxied.port, build_v2(None))
    assert out.startswith(b"127.0.0.1:")


def test_ipv6_client_address(proxied: Server) -> None:
    out = in_thread(_exec_over, proxied.port, build_v2(("2001:db8::7", 5555), ("::1", 22)))
    assert out == b"2001:db8::7:5555\n"


@pytest.mark.parametrize(
    "junk",
    [b"SSH-2.0-direct_client\r\n", b"PROXY TCP4 1.2.3.4 nonsense\r\n", b"\r\n\r\n\0\r\nQUIT\n\x99"],
)
def test_missing_or_bad_header_closes_only_that_connection(
    proxied: Server, junk: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    sock = socket.create_connection(("127.0.0.1", proxied.port), timeout=20)
    with caplog.at_level(logging.WARNING, logger="geossh.server"):
        sock.sendall(junk + b"\0" * 16)
        # closed without a banner (a RST when our unread bytes were still pending)
        with contextlib.suppress(ConnectionResetError):
            assert in_thread(sock.recv, 64) == b""
    sock.close()
    assert any("bad PROXY protocol header" in r.getMessage() for r in caplog.records)
    assert in_thread(_exec_over, proxied.port, build_v1(CLIENT, BALANCER_SIDE)).startswith(b"203.")


def test_header_split_across_segments(proxied: Server) -> None:
    """A header arriving byte by byte is read exactly; the SSH bytes behind it survive."""
    import paramiko

    def run() -> bytes:
        sock = socket.create_connection(("127.0.0.1", proxied.port), timeout=20)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in build_v1(CLIENT, BALANCER_SIDE):
            sock.sendall(bytes([byte]))
        transport = paramiko.Transport(sock)
        try:
            transport.connect(username=USER, password=PASSWORD)
            chan = transport.open_session()
            chan.exec_command("peer")
            return bytes(chan.makefile("rb").read())
        finally:
            transport.close()

    assert in_thread(run) == b"203.0.113.77:40123\n"
