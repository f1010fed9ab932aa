"""Forwarding under bad input: refusals by policy, dead destinations, stalled peers, floods.

paramiko is the client (in gevent's thread pool); geossh's ForwardingServer
serves in this process. Every test ends with the connection usable or
cleanly closed, no tracebacks logged, and no leaked sockets or greenlets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.server
import gevent.socket
import paramiko
import pytest

import geossh
from geossh._facade.channel import Channel
from geossh.services.forward import ForwardingPolicy, ForwardSession
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
    # Addresses are matched by address, after resolution; names by name.
    assert policy.permit_address("127.0.0.1", 1)
    assert not policy.permit_connect("127.0.0.1", 1)  # an address pattern never matches a name
    assert policy.permit_connect("pg.internal", 5432)
    assert not policy.permit_connect("pg.internal", 5433)
    assert not policy.permit_connect("pg.internal.evil.com", 5432)
    assert not policy.permit_address("10.1.1.1", 5432)  # a name pattern never matches an address
    assert policy.permit_address("::1", 8005) and not policy.permit_address("::1", 8011)
    assert policy.permit_address("::ffff:127.0.0.1", 9)  # IPv4-mapped: the IPv4 address counts
    assert policy.permit_connect("db", 22)  # host names compare case-insensitively
    assert not policy.permit_address("127.0.0.2", 80)
    assert policy.permit_resolving("anything.example", 80)  # 127.0.0.1:* might match
    assert not ForwardingPolicy(local=["db:22"]).permit_resolving("x.example", 22)
    nets = ForwardingPolicy(local=["10.0.0.0/8:22", "[fd00::/8]:*", "10.2.*:80"])
    assert nets.permit_address("10.9.8.7", 22) and not nets.permit_address("11.0.0.1", 22)
    assert nets.permit_address("fd12::1", 1) and not nets.permit_address("fe80::1", 1)
    assert nets.permit_address("10.2.3.4", 80) and not nets.permit_address("10.20.3.4", 80)
    assert not nets.permit_connect("10.2.3.4.attacker.example", 80)
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


@pytest.mark.parametrize(
    "pattern", ["nohost", ":22", "host:", "host:abc", "[::1]22", "h:1-x", "10.0.0.0/33:22"]
)
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


# -- the allow-list matches addresses after resolution ------------------------------------
class _Named:
    """A listener that says its name to whoever connects, then closes."""

    def __init__(self, address: str, name: bytes, port: int = 0) -> None:
        self.name = name
        self.connections = 0
        self.server = gevent.server.StreamServer((address, port), self._greet)
        self.server.start()
        self.port = self.server.server_port

    def _greet(self, sock: Any, peer: Any) -> None:
        self.connections += 1
        sock.sendall(self.name)
        sock.close()


class _FakeResolver:
    """The hub's resolver for names in ``table``; address literals resolve to themselves."""

    def __init__(self, real: Any, table: dict[str, list[str]]) -> None:
        self.real = real
        self.table = table
        self.asked: list[str] = []

    def getaddrinfo(self, host: Any, port: Any, family: int = 0, kind: int = 0,
                    proto: int = 0, flags: int = 0) -> list[Any]:  # fmt: skip
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.asked.append(name)
        addresses = self.table.get(name, [name] if name.replace(".", "").isdigit() else [])
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        stream = (socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
        return [(socket.AF_INET, *stream, (a, int(port))) for a in addresses]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def listeners() -> Iterator[tuple[_Named, _Named]]:
    """An allowed destination on 127.0.3.1 and a forbidden one (loopback 127.0.0.1), one port."""
    allowed = _Named("127.0.3.1", b"allowed")
    forbidden = _Named("127.0.0.1", b"forbidden", allowed.port)
    yield allowed, forbidden
    allowed.server.stop()
    forbidden.server.stop()


def _fetch(transport: paramiko.Transport, dest: tuple[str, int]) -> bytes | int:
    try:
        chan = transport.open_channel("direct-tcpip", dest, ("127.0.0.1", 40000), timeout=20)
    except paramiko.ChannelException as exc:
        return int(exc.code)
    data = chan.makefile("rb").read()
    chan.close()
    return bytes(data)


def _forwards(server: ServerHarness, policy: ForwardingPolicy, dests: list[tuple[str, int]]):  # type: ignore[no-untyped-def]
    server.interface = lambda harness: ForwardTestServer(harness, policy)
    server.start()

    def body() -> list[Any]:
        transport = _client(server.port)
        try:
            return [*(_fetch(transport, dest) for dest in dests), _echo_works(transport)]
        finally:
            transport.close()

    return in_thread(body)


def test_address_patterns_are_matched_after_resolution(
    server: ServerHarness, listeners: tuple[_Named, _Named], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``127.0.3.*`` must not let ``127.0.3.9.attacker.example`` (DNS: 127.0.0.1) through."""
    allowed, forbidden = listeners
    port = allowed.port
    hub = gevent.get_hub()
    fake = _FakeResolver(hub.resolver, {
        "127.0.3.9.attacker.example": ["127.0.0.1"],  # looks allowed, points at loopback
        "app.example": ["127.0.3.1"],                 # a name into the allowed network
        "mixed.example": ["127.0.0.1", "127.0.3.1"],  # only the checked address is used
    })  # fmt: skip
    monkeypatch.setattr(hub, "resolver", fake)
    policy = ForwardingPolicy(local=[f"127.0.3.*:{port}"], connect_timeout=5.0)
    names = ["127.0.3.9.attacker.example", "app.example", "mixed.example", "127.0.3.1",
             "127.0.0.1", "unknown.example"]  # fmt: skip
    results = _forwards(server, policy, [(name, port) for name in names])
    prohibited = geossh.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
    assert results == [prohibited, b"allowed", b"allowed", b"allowed", prohibited, prohibited,
                       True]  # fmt: skip
    assert forbidden.connections == 0 and allowed.connections == 3
    assert "127.0.0.1" not in fake.asked  # a literal is checked without a look-up
    assert session_of(server).channels == 0


def test_name_patterns_match_the_name_and_connect_where_it_resolved_once(
    server: ServerHarness, listeners: tuple[_Named, _Named]
) -> None:
    """An injected resolver: a name pattern trusts the name; nothing is looked up twice."""
    allowed, forbidden = listeners
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[tuple[int, Any]]:
        asked.append(host)
        address = "127.0.3.1" if host.lower() == "db.internal" else "127.0.0.1"
        return [(socket.AF_INET, (address, port))]

    policy = ForwardingPolicy(local=[f"db.internal:{allowed.port}"], resolver=resolver)
    dests = [("DB.internal", allowed.port), ("db.internal.evil.example", allowed.port),
             ("127.0.3.1", allowed.port)]  # fmt: skip
    prohibited = geossh.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
    assert _forwards(server, policy, dests) == [b"allowed", prohibited, prohibited, True]
    assert asked == ["DB.internal"]  # refused ones never reached DNS (no address patterns)
    assert forbidden.connections == 0


# -- Unix paths: checked and connected are the same file ----------------------------------
def test_unix_path_is_resolved_once_and_connected_as_checked(
    fwd: ServerHarness, tmp_path: Path
) -> None:
    """asyncssh opens direct-streamlocal: a symlink inside the allowed directory to a
    socket outside it is refused; an allowed path is connected in its resolved form."""
    outside_dir = tmp_path.parent / f"{tmp_path.name}-outside"
    outside_dir.mkdir()
    secret = gevent.server.StreamServer(_unix_listener(outside_dir / "secret.sock"),
                                        lambda sock, _: sock.sendall(b"secret"))  # fmt: skip
    app = gevent.server.StreamServer(_unix_listener(tmp_path / "app.sock"),
                                     lambda sock, _: sock.sendall(b"app"))  # fmt: skip
    (tmp_path / "link.sock").symlink_to(outside_dir / "secret.sock")
    (tmp_path / "dir-link").symlink_to(tmp_path)  # resolves inside: allowed
    secret.start()
    app.start()

    async def body() -> list[Any]:
        import asyncssh

        results: list[Any] = []
        async with asyncssh.connect(
            "127.0.0.1", fwd.port, username=USER, password=PASSWORD, known_hosts=None,
            client_keys=None, agent_path=None,
        ) as conn:  # fmt: skip
            for path in ("link.sock", "app.sock", "dir-link/app.sock"):
                try:
                    reader, writer = await conn.open_unix_connection(str(tmp_path / path))
                    results.append(await reader.read())
                    writer.close()
                except asyncssh.ChannelOpenError as exc:
                    results.append(exc.code)
        return results

    try:
        results = in_thread(lambda: asyncio.run(body()))
    finally:
        secret.stop()
        app.stop()
    prohibited = geossh.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
    assert results == [prohibited, b"app", b"app"]


class _SwappingPolicy(ForwardingPolicy):
    """Allows the path, then swaps it for a symlink to a forbidden socket (the race, pinned)."""

    swap: tuple[Path, Path] | None = None

    def permit_unix_connect(self, path: str) -> bool:
        allowed = super().permit_unix_connect(path)
        if allowed and self.swap is not None:
            checked, forbidden = self.swap
            temporary = checked.with_name("swap.tmp")
            temporary.symlink_to(forbidden)
            os.replace(temporary, checked)  # what was checked is now a symlink elsewhere
        return allowed


def test_unix_path_swapped_after_the_check_is_not_followed(
    server: ServerHarness, tmp_path: Path
) -> None:
    outside_dir = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    outside_dir.mkdir()
    secret = gevent.server.StreamServer(_unix_listener(outside_dir / "secret.sock"),
                                        lambda sock, _: sock.sendall(b"secret"))  # fmt: skip
    app = gevent.server.StreamServer(_unix_listener(tmp_path / "app.sock"),
                                     lambda sock, _: sock.sendall(b"app"))  # fmt: skip
    policy = _SwappingPolicy(local_unix=[f"{tmp_path.resolve()}/*"])
    policy.swap = (tmp_path / "app.sock", outside_dir / "secret.sock")
    server.interface = lambda harness: ForwardTestServer(harness, policy)
    server.start()
    secret.start()
    app.start()

    async def body() -> Any:
        import asyncssh

        async with asyncssh.connect(
            "127.0.0.1", server.port, username=USER, password=PASSWORD, known_hosts=None,
            client_keys=None, agent_path=None,
        ) as conn:  # fmt: skip
            try:
                reader, writer = await conn.open_unix_connection(str(tmp_path / "app.sock"))
            except asyncssh.ChannelOpenError as exc:
                return exc.code
            data = await reader.read()
            writer.close()
            return data

    try:
        result = in_thread(lambda: asyncio.run(body()))
    finally:
        secret.stop()
        app.stop()
    assert result == geossh.OPEN_FAILED_CONNECT_FAILED  # not b"secret"


def _unix_listener(path: Path) -> Any:
    sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    return sock


def test_unix_connect_refuses_a_path_swapped_after_the_check(tmp_path: Path) -> None:
    """connect_unix pins the file: a symlink (even to an allowed socket) is not followed."""
    from geossh.services.forward import connect_unix

    target = socket.socket(socket.AF_UNIX)
    target.bind(str(tmp_path / "real.sock"))
    target.listen(1)
    (tmp_path / "swapped.sock").symlink_to(tmp_path / "real.sock")
    try:
        connect_unix(str(tmp_path / "real.sock")).close()
        with pytest.raises(OSError, match="not a socket"):
            connect_unix(str(tmp_path / "swapped.sock"))
    finally:
        target.close()


def test_x11_request_of_a_closed_channel_does_not_linger(fwd: ServerHarness) -> None:
    """Requests are kept per open channel: a reused id does not inherit a cookie; no growth."""

    def body() -> list[Any]:
        transport = _client(fwd.port)
        try:
            for _ in range(20):
                chan = transport.open_session()
                chan.request_x11(auth_protocol="MIT-MAGIC-COOKIE-1", auth_cookie="ab" * 16)
                chan.close()
            return [_echo_works(transport)]
        finally:
            transport.close()

    assert in_thread(body) == [True]
    forwarding = session_of(fwd)
    assert len(forwarding.x11_requests) <= 1
