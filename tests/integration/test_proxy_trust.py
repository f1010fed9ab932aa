"""PROXY headers are believed only from the trusted balancers (``proxy_from``).

All on loopback: the server trusts 127.0.0.1 only; a client that binds
127.0.0.5 as its source is a direct client outside the list. Fails on the
old code, which believed a header from any peer.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import gevent.socket
import pytest

from geossh.runner.proxyproto import build_v1, build_v2
from geossh.runner.server import DEFAULT_PROXY_FROM, Server, _within, parse_networks
from tests.integration.test_proxyproto import BALANCER_SIDE, CLIENT, Recording, _peer_handler
from tests.server_kit import make_server
from tests.support import PASSWORD, USER, in_thread

OUTSIDER = "127.0.0.5"


def _exec_from(source: str, port: int, header: bytes) -> bytes:
    """From ``source``: send ``header``, then run ``peer`` over paramiko on that socket."""
    import paramiko

    sock = socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0))
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
def trusting_one(keydir: Path) -> Any:
    Recording.seen = []
    server = make_server(
        keydir, interface=Recording, handler=_peer_handler, proxy_from=["127.0.0.1/32"]
    )
    server.start()
    yield server
    server.stop(timeout=1)


@pytest.mark.parametrize("version", [1, 2])
def test_header_from_an_untrusted_peer_is_never_believed(
    trusting_one: Server, version: int, caplog: pytest.LogCaptureFixture
) -> None:
    forged = build_v1(CLIENT, BALANCER_SIDE) if version == 1 else build_v2(CLIENT, BALANCER_SIDE)
    refused = pytest.raises(Exception)
    with caplog.at_level(logging.INFO, logger="geossh"), refused:
        in_thread(_exec_from, OUTSIDER, trusting_one.port, forged)
    assert all(peer[0] == OUTSIDER for _what, peer in Recording.seen)
    assert not any(CLIENT[0] in r.getMessage() for r in caplog.records)
    assert any(f"connection from {OUTSIDER}:" in r.getMessage() for r in caplog.records)


def test_untrusted_peer_without_header_is_an_ordinary_client(trusting_one: Server) -> None:
    out = in_thread(_exec_from, OUTSIDER, trusting_one.port, b"")
    assert out.startswith(f"{OUTSIDER}:".encode())


def test_trusted_balancer_header_is_believed(trusting_one: Server) -> None:
    out = in_thread(_exec_from, "127.0.0.1", trusting_one.port, build_v1(CLIENT, BALANCER_SIDE))
    assert out == b"203.0.113.77:40123\n"


def test_trusted_balancer_without_header_is_refused(
    trusting_one: Server, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="geossh.server"), pytest.raises(Exception):  # noqa: B017
        in_thread(_exec_from, "127.0.0.1", trusting_one.port, b"")
    assert any("bad PROXY protocol header" in r.getMessage() for r in caplog.records)


def test_untrusted_direct_clients_meet_per_source_limits(keydir: Path) -> None:
    server = make_server(
        keydir, handler=_peer_handler, proxy_from=["127.0.0.1/32"], per_source_max_startups=1
    )
    server.start()
    hoarder = gevent.socket.create_connection(
        ("127.0.0.1", server.port), source_address=(OUTSIDER, 0)
    )
    try:
        assert hoarder.recv(8) == b"SSH-2.0-"  # admitted under its own address, counted
        with pytest.raises(Exception):  # noqa: B017
            in_thread(_exec_from, OUTSIDER, server.port, b"")
        assert server.refused == 1
    finally:
        hoarder.close()
        server.stop(timeout=1)


def test_networks_parse_and_match() -> None:
    nets = parse_networks("10.0.0.0/8, 192.0.2.7 ,2001:db8::/32")
    assert _within(("10.9.8.7", 1), nets)
    assert _within(("::ffff:192.0.2.7", 1, 0, 0), nets)  # an IPv4-mapped IPv6 peer
    assert _within(("2001:db8::1", 1, 0, 0), nets)
    assert not _within(("192.0.2.8", 1), nets)
    assert not _within("", nets)  # a Unix socket peer is never a trusted balancer
    assert _within(("127.0.0.1", 1), parse_networks(DEFAULT_PROXY_FROM))
    for bad in ("10.0.0.0/33", "example.com", ""):
        with pytest.raises(ValueError):
            parse_networks(bad)
