"""Forwarding under bad input: refusals by policy, dead destinations, stalled peers, floods.

paramiko is the client (in gevent's thread pool); geossh's ForwardingServer
serves in this process. Every test ends with the connection usable or
cleanly closed, no tracebacks logged, and no leaked sockets or greenlets.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import paramiko
import pytest

import geossh
from geossh.channel import Channel
from geossh.forward import ForwardingPolicy, ForwardSession
from tests.forward_support import (
    DigestServer,
    ForwardTestServer,
    MiB,
    make_policy,
    open_fds,
    session_of,
    wait_until,
    warm_up,
)
from tests.support import PASSWORD, USER, ServerHarness, in_thread


@pytest.fixture
def fwd(server: ServerHarness, tmp_path: Path) -> ServerHarness:
    local = ["127.0.0.1:*", "localhost:*", "*.invalid:*"]
    policy = make_policy(tmp_path, local=local, connect_timeout=1.0)
    server.interface = lambda harness: ForwardTestServer(harness, policy)
    return server.start()


@pytest.fixture(autouse=True)
def no_tracebacks(
    server: ServerHarness, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[None]:
    """Fail if this test's connections logged an error or a traceback got printed."""
    caplog.set_level(logging.DEBUG, logger="geossh")
    capsys.readouterr()  # only output from this test counts
    yield
    ours = tuple(f"conn={t._conn_id} " for t in server.transports)
    bad = [r.getMessage() for r in caplog.records if r.name.startswith("geossh")
           and (r.levelno >= logging.ERROR or r.exc_info)]  # fmt: skip
    assert not [m for m in bad if any(tag in m for tag in ours)], bad
    assert "Traceback" not in capsys.readouterr().err


def _client(port: int) -> paramiko.Transport:
    transport = paramiko.Transport(("127.0.0.1", port))
    transport.connect(username=USER, password=PASSWORD)
    return transport


def _echo_works(transport: paramiko.Transport) -> bool:
    chan = transport.open_session()
    chan.exec_command("echo alive")
    out = chan.makefile("rb").read()
    chan.close()
    return bool(out == b"alive\n")


def _open_code(transport: paramiko.Transport, dest: tuple[str, int]) -> int:
    try:
        transport.open_channel("direct-tcpip", dest, ("127.0.0.1", 40000), timeout=20).close()
    except paramiko.ChannelException as exc:
        return int(exc.code)
    return 0


def test_listen_refused_for_privileged_ports_and_disallowed_addresses(
    fwd: ServerHarness, tmp_path: Path
) -> None:
    def body() -> list[Any]:
        transport = _client(fwd.port)
        results: list[Any] = []
        try:
            refused = (("127.0.0.1", 22), ("localhost", 1023), ("192.0.2.1", 0), ("", 70000))
            for address, port in refused:
                try:
                    results.append(transport.request_port_forward(address, port))
                except paramiko.SSHException:
                    results.append("refused")
            outside = "streamlocal-forward@openssh.com"
            escape = f"{tmp_path}/../escape.sock"
            for path in ("/tmp/not-allowed.sock", escape):
                results.append(transport.global_request(outside, (path,), wait=True))
            results.append(_echo_works(transport))
            return results
        finally:
            transport.close()

    assert in_thread(body) == ["refused"] * 4 + [None, None, True]
    assert not (tmp_path.parent / "escape.sock").exists()


def test_destination_disallowed_refused_or_silent(fwd: ServerHarness) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)  # never accepted: once its queue is full, SYNs go unanswered
    fillers = [socket.socket() for _ in range(2)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(silent.getsockname())
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    refused_port = refused.getsockname()[1]
    refused.close()

    def body() -> list[Any]:
        transport = _client(fwd.port)
        try:
            codes = [
                _open_code(transport, ("192.0.2.1", 80)),
                _open_code(transport, ("127.0.0.1", refused_port)),
                _open_code(transport, ("no-such-host.invalid", 80)),
                _open_code(transport, silent.getsockname()),
                _open_code(transport, ("127.0.0.1", 70000)),
                _open_code(transport, ("127.0.0.1", 0)),
                _open_code(transport, ("127.0.0.1\0.evil", 22)),
                _open_code(transport, ("x" * 70 + ".invalid", 22)),  # idna refuses it
                _open_code(transport, (".invalid", 22)),
            ]
            return [*codes, _echo_works(transport)]
        finally:
            transport.close()

    try:
        results = in_thread(body)
    finally:
        for sock in (silent, *fillers):
            sock.close()
    prohibited, failed = (
        geossh.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
        geossh.OPEN_FAILED_CONNECT_FAILED,
    )
    assert results == [prohibited, failed, failed, failed, *[prohibited] * 3, failed, failed, True]
    assert session_of(fwd).channels == 0


def test_cancel_of_unknown_forwards(fwd: ServerHarness, tmp_path: Path) -> None:
    def body() -> list[Any]:
        transport = _client(fwd.port)
        try:
            transport.cancel_port_forward("127.0.0.1", 4242)  # paramiko: always success
            missing = transport.global_request(
                "cancel-streamlocal-forward@openssh.com", (str(tmp_path / "none.sock"),)
            )
            malformed = transport.global_request("cancel-tcpip-forward", (b"\xff\xff",))
            return [missing, malformed, _echo_works(transport)]
        finally:
            transport.close()

    assert in_thread(body) == [None, None, True]


def _server_channel(fwd: ServerHarness, kind: str) -> Channel:
    transport = fwd.transports[-1]
    chans = [c for c in transport._channels.values() if c.kind == kind]
    assert len(chans) == 1
    return chans[0]


def _push_until_stalled(sock: Any, limit: int) -> int:
    """Send until the peer stops taking data (no progress for 1 s) or ``limit`` bytes."""
    sock.settimeout(1.0)
    block, sent = bytes(1 << 16), 0
    while sent < limit:
        try:
            sent += sock.send(block)
        except TimeoutError:
            break
    return sent


def test_forwarded_peer_that_never_reads_is_bounded(fwd: ServerHarness) -> None:
    parked: list[Any] = []

    def setup() -> tuple[paramiko.Transport, int]:
        transport = _client(fwd.port)
        port = transport.request_port_forward("127.0.0.1", 0, lambda c, o, s: parked.append(c))
        return transport, port

    transport, port = in_thread(setup)
    try:
        sock = gevent.socket.create_connection(("127.0.0.1", port))
        sent = _push_until_stalled(sock, 256 * MiB)
        assert sent < 64 * MiB  # window + socket buffers, not the whole stream
        chan = _server_channel(fwd, "forwarded-tcpip")
        assert fwd.transports[-1]._conn.channels.send_window(chan.get_id()) == 0
        assert len(parked) == 1 and len(parked[0].in_buffer) <= 2 * MiB
        sock.close()
    finally:
        in_thread(transport.close)


def test_destination_that_never_reads_is_bounded(fwd: ServerHarness) -> None:
    dest = DigestServer()

    def body() -> tuple[int, bool]:
        transport = _client(fwd.port)
        try:
            chan = transport.open_channel("direct-tcpip", ("127.0.0.1", dest.port), ("a", 1))
            chan.sendall(b"hold\n")
            sent = _push_until_stalled(chan, 256 * MiB)
            return sent, _echo_works(transport)
        finally:
            transport.close()

    try:
        sent, alive = in_thread(body)
    finally:
        dest.stop()
    assert alive and sent < 64 * MiB


def test_client_close_ends_a_forward_whose_destination_ignores_eof(fwd: ServerHarness) -> None:
    dest = DigestServer()

    def body() -> tuple[paramiko.Transport, paramiko.Channel]:
        transport = _client(fwd.port)
        chan = transport.open_channel("direct-tcpip", ("127.0.0.1", dest.port), ("a", 1))
        chan.sendall(b"hold\n")  # the destination never reads, never closes
        return transport, chan

    transport, chan = in_thread(body)
    try:
        session = session_of(fwd)
        wait_until(lambda: dest.held, what="the destination to hold the connection")
        in_thread(chan.close)  # EOF + CLOSE
        wait_until(lambda: session.channels == 0, what="the forward to end")
        held = dest.held[0]
        held.settimeout(10)
        assert held.recv(1 << 20) == b""  # geossh closed its socket to the destination
        assert transport.is_active()
    finally:
        in_thread(transport.close)
        dest.stop()


def test_thousands_of_forward_channels_are_capped(fwd: ServerHarness) -> None:
    dest = DigestServer()
    warm_up()
    fds = open_fds()

    def body() -> tuple[int, list[int], int]:
        transport = _client(fwd.port)
        opened: list[paramiko.Channel] = []
        failures: list[int] = []
        try:
            for _ in range(2000):
                try:
                    opened.append(
                        transport.open_channel("direct-tcpip", ("127.0.0.1", dest.port), ("a", 1))
                    )
                except paramiko.ChannelException as exc:
                    failures.append(exc.code)
            count = len(opened)
            for chan in opened:
                chan.close()
            again = _open_code(transport, ("127.0.0.1", dest.port))
            return count, failures, again
        finally:
            transport.close()

    try:
        count, failures, again = in_thread(body)
        session: ForwardSession = session_of(fwd)
        wait_until(lambda: session.closed, what="the session to end")
    finally:
        dest.stop()
    assert 0 < count <= 64
    assert failures == [geossh.OPEN_FAILED_RESOURCE_SHORTAGE] * (2000 - count)
    assert again == 0  # capacity comes back when channels close
    assert session.channels == 0 and len(session.greenlets) == 0
    wait_until(lambda: len(fwd.transports[-1]._handler_greenlets) == 0, what="handlers")
    wait_until(lambda: open_fds() <= fds, what="sockets to close")


# -- policy decisions (pure) ------------------------------------------------------------


def test_policy_patterns() -> None:
    policy = ForwardingPolicy(
        local=["127.0.0.1:*", "*.internal:5432", "[::1]:8000-8010", "DB:22"],
        remote=["localhost:*", "*:10000-10100"],
    )
    assert policy.permit_connect("127.0.0.1", 1)
    assert policy.permit_connect("pg.internal", 5432)
    assert not policy.permit_connect("pg.internal", 5433)
    assert not policy.permit_connect("pg.internal.evil.com", 5432)
    assert policy.permit_connect("::1", 8005) and not policy.permit_connect("::1", 8011)
    assert policy.permit_connect("db", 22)  # host names compare case-insensitively
    assert not policy.permit_connect("127.0.0.2", 80)
    assert policy.permit_listen("localhost", 0) and policy.permit_listen("localhost", 8080)
    assert not policy.permit_listen("localhost", 80)  # privileged
    assert policy.permit_listen("", 10050) and not policy.permit_listen("", 9999)
    assert ForwardingPolicy(remote=["*:*"], allow_privileged_ports=True).permit_listen("", 80)
    assert not ForwardingPolicy().permit_connect("127.0.0.1", 22)  # deny by default


def test_policy_unix_paths_resolve_before_matching(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "link").symlink_to("/etc")
    policy = ForwardingPolicy(local_unix=[f"{allowed.resolve()}/*"])
    assert policy.permit_unix_connect(str(allowed / "app.sock"))
    assert not policy.permit_unix_connect(f"{allowed}/../other.sock")
    assert not policy.permit_unix_connect(str(allowed / "link" / "passwd"))
    assert not policy.permit_unix_connect("relative.sock")
    assert not policy.permit_unix_connect(f"{allowed}/a\0b")


@pytest.mark.parametrize("pattern", ["nohost", ":22", "host:", "host:abc", "[::1]22", "h:1-x"])
def test_policy_rejects_malformed_patterns(pattern: str) -> None:
    with pytest.raises(ValueError):
        ForwardingPolicy(local=[pattern])


def test_policy_bind_address() -> None:
    assert ForwardingPolicy().bind_address("") == "127.0.0.1"
    assert ForwardingPolicy().bind_address("0.0.0.0") == "127.0.0.1"
    assert ForwardingPolicy().bind_address("::") == "::1"
    gateway = ForwardingPolicy(gateway_ports=True)
    assert gateway.bind_address("") == "0.0.0.0"
    assert gateway.bind_address("localhost") == "127.0.0.1"
    assert gateway.bind_address("192.0.2.5") == "192.0.2.5"
