"""Each limit in docs/limits.md triggers, and a good client is served afterwards.

Hostile clients speak SSH by hand (``RawClient`` over a gevent socket on
loopback) against ``geossh.Server`` or the paramiko-style ``ServerHarness``.
Per-source limits use a second loopback source address (127.0.0.2) for the
good client while 127.0.0.1 is refused. Time-dependent limits use small
configured timeouts; penalty expiry uses the server's injectable clock.
Nothing waits by sleeping: tests wait for the server's connection greenlet
or for the peer's DISCONNECT, and no test asserts on timing.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import pytest

import geossh
from geossh._facade.settings import MIN_PACKET_LIMIT
from geossh.proto.constants import MSG, DisconnectReason
from geossh.proto.wire import Reader, boolean, string, u32
from geossh.runner.server import Server
from geossh.services.session import Session
from tests.integration.test_transport_hostile import (
    BOUND,
    RawClient,
    assert_good_client_served,
)
from tests.server_kit import make_server, paramiko_client
from tests.support import PASSWORD, USER, ServerHarness, in_thread
from tests.unit.kexclient import (
    ClientOptions,
    KexClient,
    channel_open,
    disconnect_reason,
    ignore,
    service_request,
)

REASON = DisconnectReason


# -- helpers ---------------------------------------------------------------------------
class Client(RawClient):
    """A ``RawClient`` from a chosen loopback source address."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.sock = gevent.socket.create_connection(
            ("127.0.0.1", port), timeout=BOUND, source_address=(source, 0)
        )
        self.local = self.sock.getsockname()[:2]
        self.ssh = KexClient(ClientOptions())
        self.payloads: list[bytes] = []
        self.eof = False
        self.sent = 0

    def password(self, password: str, user: str = USER) -> bytes:
        """Send one password attempt; the server's answer (FAILURE/SUCCESS/DISCONNECT)."""
        self.send_msg(
            bytes((MSG.USERAUTH_REQUEST,)) + string(user) + string("ssh-connection")
            + string("password") + boolean(False) + string(password)
        )  # fmt: skip
        start = len(self.payloads)
        answers = (MSG.USERAUTH_FAILURE, MSG.USERAUTH_SUCCESS, MSG.DISCONNECT)
        self.read_until(lambda p: any(x[0] in answers for x in p[start:]))
        return next(x for x in self.payloads[start:] if x[0] in answers)

    def refused(self) -> bool:
        """True if the server closed without a word (not even its version line)."""
        try:
            return self.sock.recv(256) == b""
        except ConnectionResetError:
            return True


def _hello(session: Session) -> int:
    session.write("ok\n")
    return 0


def _exec_from(port: int, source: str) -> tuple[int, bytes, tuple[Any, ...]]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0))
    local = sock.getsockname()[:2]
    client = paramiko_client(port, sock=sock)
    try:
        chan = client.get_transport().open_session()
        chan.exec_command("hello")
        out = chan.makefile("rb").read()
        return chan.recv_exit_status(), out, local
    finally:
        client.close()


def served(server: Server, source: str = "127.0.0.1") -> None:
    """A well-behaved paramiko client from ``source`` logs in, runs a command and leaves."""
    status, out, local = in_thread(_exec_from, server.port, source)
    assert (status, out) == (0, b"ok\n")
    finished(server, local)


def _handles(greenlet: Any, local: tuple[Any, ...]) -> bool:
    """Is this pool greenlet serving the connection from ``local``? (its args hold the address)"""
    for args in (greenlet.args, *[a for a in greenlet.args if isinstance(a, tuple)]):
        if len(args) >= 2 and isinstance(args[1], tuple) and tuple(args[1][:2]) == local:
            return True
    return False


def finished(server: Server, client: Client | tuple[Any, ...]) -> None:
    """Wait until the server's handler for the connection from ``client`` has returned."""
    local = client.local if isinstance(client, Client) else client
    for greenlet in list(server._pool.greenlets):
        if _handles(greenlet, local):
            greenlet.join(BOUND)
            assert greenlet.dead


@pytest.fixture
def servers(keydir: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop(timeout=1)


@pytest.fixture
def start(keydir: Path, servers: list[Server]) -> Any:
    """``start(**kwargs)``: a started ``Server`` serving ``_hello``."""

    def starter(**kwargs: Any) -> Server:
        kwargs.setdefault("handler", _hello)
        server = make_server(keydir, **kwargs)
        server.start()
        servers.append(server)
        return server

    return starter


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    with gevent.Timeout(6 * BOUND, AssertionError("a limit did not trigger in time")):
        yield


# -- authentication ----------------------------------------------------------------------
def test_max_auth_tries(start: Any, caplog: pytest.LogCaptureFixture) -> None:
    server = start(max_auth_tries=2)
    caplog.set_level(logging.INFO, logger="geossh")
    attacker = Client(server.port)
    attacker.handshake()
    attacker.send_msg(service_request())
    attacker.wait_for(MSG.SERVICE_ACCEPT)
    assert attacker.password("guess 1")[0] == MSG.USERAUTH_FAILURE
    answer = attacker.password("guess 2")
    assert disconnect_reason(answer) == REASON.NO_MORE_AUTH_METHODS_AVAILABLE
    finished(server, attacker)
    assert "Auth rejected (password)" in caplog.text  # INFO, with the method
    assert "guess" not in caplog.text  # never a secret in a log line
    served(server)


def test_login_grace_time_with_a_trickling_client(start: Any) -> None:
    """IGNORE packets every 50 ms keep bytes flowing; the absolute deadline still ends it."""
    server = start(login_grace_time=1.0)
    attacker = Client(server.port)
    attacker.handshake()
    attacker.send_msg(service_request())

    def trickle() -> None:
        try:
            for _ in range(400):  # bounded: 20 s at most
                attacker.send_msg(ignore(b"."))
                gevent.sleep(0.05)
        except OSError:
            pass

    feeder = gevent.spawn(trickle)
    try:
        assert attacker.disconnect_reason() == REASON.NO_MORE_AUTH_METHODS_AVAILABLE
    finally:
        feeder.kill()
    assert attacker.sent > 0
    finished(server, attacker)
    served(server)


# -- unauthenticated connections -----------------------------------------------------------
def test_max_startups_refuses_then_serves(start: Any) -> None:
    server = start(max_startups="2")
    held = [Client(server.port), Client(server.port)]
    for client in held:
        client.handshake()
    assert server.unauthenticated == 2
    dropped = Client(server.port)
    assert dropped.refused()
    assert server.statistics()["dropped"] == 1
    for client in held:
        client.close()
        finished(server, client)
    assert server.unauthenticated == 0
    served(server)


def test_per_source_max_startups(start: Any) -> None:
    server = start(per_source_max_startups=2)
    held = [Client(server.port), Client(server.port)]
    for client in held:
        client.handshake()
    assert Client(server.port).refused()
    assert server.statistics()["refused"] == 1
    served(server, "127.0.0.2")  # another source is not affected
    for client in held:
        client.close()
        finished(server, client)
    served(server)


@pytest.mark.parametrize("kind", ["authfail", "noauth"])
def test_per_source_penalties(start: Any, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    """Two bad endings of 10 s reach the 15 s minimum: the source is refused until expiry."""
    now = [1000.0]
    server = start(per_source_penalties=f"{kind}:10s min:15s max:1m")
    server.clock = lambda: now[0]
    caplog.set_level(logging.INFO, logger="geossh.server")
    for attempt in range(2):
        attacker = Client(server.port)
        attacker.handshake()
        if kind == "authfail":
            attacker.send_msg(service_request())
            attacker.wait_for(MSG.SERVICE_ACCEPT)
            assert attacker.password(f"guess {attempt}")[0] == MSG.USERAUTH_FAILURE
        attacker.close()
        finished(server, attacker)
    assert f"refused for 20 s ({kind}; PerSourcePenalties)" in caplog.text
    assert Client(server.port).refused()
    assert server.statistics()["penalised"] == 1
    served(server, "127.0.0.2")  # another source is served meanwhile
    now[0] += 21  # the penalty expires
    served(server)
    assert server.statistics()["penalised"] == 0


def test_grace_exceeded_penalty(start: Any) -> None:
    """A connection that sits out the login grace time is penalised at once (min reached)."""
    server = start(login_grace_time=0.5, per_source_penalties="grace-exceeded:15s min:15s")
    staller = Client(server.port)
    staller.handshake()
    assert staller.disconnect_reason() == REASON.NO_MORE_AUTH_METHODS_AVAILABLE
    finished(server, staller)
    assert Client(server.port).refused()
    served(server, "127.0.0.2")


def test_good_logins_are_never_penalised(start: Any) -> None:
    server = start(per_source_penalties="noauth:15s authfail:15s min:15s")
    for _ in range(3):
        served(server)
    assert server.statistics()["penalised"] == 0


# -- per connection: packets, channels, windows ---------------------------------------------
@pytest.fixture
def hostile(server: ServerHarness, caplog: pytest.LogCaptureFixture) -> Iterator[Client]:
    """A raw client of the paramiko-style harness; afterwards OpenSSH must still get in."""
    caplog.set_level(logging.DEBUG, logger="geossh")
    server.start()
    client = Client(server.port)
    yield client
    client.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert_good_client_served(server)


def test_packet_of_the_rfc_minimum_is_accepted_before_and_after_auth(hostile: Client) -> None:
    hostile.handshake()
    filler = MIN_PACKET_LIMIT - 64
    hostile.send_msg(ignore(bytes(filler)))  # a 35000-byte packet before authentication
    hostile.authenticate()
    hostile.send_msg(ignore(bytes(filler)))
    hostile.send_msg(channel_open())
    hostile.wait_for(MSG.CHANNEL_OPEN_CONFIRMATION)


@pytest.mark.parametrize("limit", [None, 40000])
def test_oversized_packet_disconnects(
    server: ServerHarness, hostile: Client, caplog: pytest.LogCaptureFixture, limit: int | None
) -> None:
    if limit is not None:
        server.configure = lambda transport: setattr(transport, "max_packet_size", limit)
    hostile.handshake()
    hostile.authenticate()
    # With an -etm MAC the length is sent in the clear: the head alone is refused.
    hostile.send(struct.pack(">I", (limit or 256 * 1024) + 1024) + bytes(60))
    assert hostile.disconnect_reason() == REASON.PROTOCOL_ERROR
    server.transports[0].join(BOUND)
    assert "Disconnecting: bad packet length" in caplog.text


def test_max_packet_size_below_the_rfc_minimum_is_refused() -> None:
    transport = geossh.Transport(socket.socket())
    transport.max_packet_size = MIN_PACKET_LIMIT - 1
    with pytest.raises(ValueError, match="35000"):
        transport._server_config()
    transport.close()


def test_pending_channel_cap(server: ServerHarness, hostile: Client) -> None:
    server.configure = lambda transport: setattr(transport, "max_pending_channels", 2)
    hostile.handshake()
    hostile.authenticate()
    for sender in (1, 2):
        hostile.send_msg(channel_open(sender))
        hostile.wait_for(MSG.CHANNEL_OPEN_CONFIRMATION)
    hostile.send_msg(channel_open(3))
    failure = Reader(hostile.wait_for(MSG.CHANNEL_OPEN_FAILURE), 1)
    assert failure.u32() == 3 and failure.u32() == 4  # RESOURCE_SHORTAGE
    assert server.transports[0].accept(BOUND) is not None  # the application takes one
    hostile.send_msg(channel_open(4))
    hostile.wait_for(MSG.CHANNEL_OPEN_CONFIRMATION)


def test_data_beyond_the_window_disconnects(server: ServerHarness, hostile: Client) -> None:
    server.configure = lambda transport: setattr(transport, "default_window_size", 32768)
    hostile.handshake()
    hostile.authenticate()
    hostile.send_msg(channel_open())
    confirmation = Reader(hostile.wait_for(MSG.CHANNEL_OPEN_CONFIRMATION), 1)
    confirmation.u32()
    ours = confirmation.u32()
    for _ in range(2):  # 2 x 20000 bytes into a 32 KiB window nobody reads
        hostile.send_msg(struct.pack(">BI", MSG.CHANNEL_DATA, ours) + string(bytes(20000)))
    assert hostile.disconnect_reason() == REASON.PROTOCOL_ERROR


def test_too_many_lines_before_the_version(server: ServerHarness, hostile: Client) -> None:
    server.configure = lambda transport: setattr(transport, "max_pre_version_lines", 2)
    hostile.send(b"one\r\ntwo\r\nthree\r\n" + hostile.ssh.hello())
    assert hostile.disconnect_reason() == REASON.PROTOCOL_VERSION_NOT_SUPPORTED


# -- liveness --------------------------------------------------------------------------------
def _alive(transport: Any, interval: float, count_max: int) -> None:
    transport.client_alive_interval = interval
    transport.client_alive_count_max = count_max


def _keepalives(payloads: list[bytes]) -> list[bytes]:
    return [p for p in payloads if p[0] == MSG.GLOBAL_REQUEST and b"keepalive@openssh.com" in p]


def test_unanswered_keepalives_disconnect(
    server: ServerHarness, hostile: Client, caplog: pytest.LogCaptureFixture
) -> None:
    server.configure = lambda transport: _alive(transport, 0.1, 2)
    hostile.handshake()
    hostile.authenticate()
    assert hostile.disconnect_reason() == REASON.CONNECTION_LOST
    assert len(_keepalives(hostile.payloads)) == 2
    server.transports[0].join(BOUND)
    assert "Timeout, client not responding (2 keepalives unanswered)" in caplog.text


def test_answered_keepalives_keep_the_connection(server: ServerHarness, hostile: Client) -> None:
    """Six keepalives answered with a limit of three: answers reset the count."""
    server.configure = lambda transport: _alive(transport, 0.1, 3)
    hostile.handshake()
    hostile.authenticate()
    for _ in range(6):
        start = len(hostile.payloads)

        def answered_or_ended(p: list[bytes], start: int = start) -> bool:
            return bool(_keepalives(p[start:])) or any(x[0] == MSG.DISCONNECT for x in p)

        hostile.read_until(answered_or_ended)
        assert _keepalives(hostile.payloads[start:]), "disconnected instead"
        hostile.send_msg(bytes((MSG.REQUEST_FAILURE,)))
    hostile.send_msg(channel_open())
    hostile.wait_for(MSG.CHANNEL_OPEN_CONFIRMATION)
    assert server.transports[0].is_active()


def test_keepalive_replies_do_not_reach_application_waiters(
    server: ServerHarness, hostile: Client
) -> None:
    """Our keepalive holds its place in the reply queue: the app gets its own reply."""
    server.configure = lambda transport: _alive(transport, 0.1, 10)
    hostile.handshake()
    hostile.authenticate()
    hostile.read_until(lambda p: bool(_keepalives(p)))
    transport = server.transports[0]
    asked = gevent.spawn(transport.global_request, "app@example.com", [7])
    hostile.read_until(lambda p: any(b"app@example.com" in x for x in p))
    hostile.send_msg(bytes((MSG.REQUEST_FAILURE,)))  # answers the keepalive
    hostile.send_msg(bytes((MSG.REQUEST_SUCCESS,)) + u32(42))  # answers the application
    reply = asked.get(timeout=BOUND)
    assert reply is not None and reply.get_int() == 42


def test_unused_connection_timeout(
    server: ServerHarness, hostile: Client, caplog: pytest.LogCaptureFixture
) -> None:
    server.configure = lambda transport: setattr(transport, "unused_connection_timeout", 0.2)
    hostile.handshake()
    hostile.authenticate()
    assert hostile.disconnect_reason() == REASON.BY_APPLICATION
    server.transports[0].join(BOUND)
    assert "no open channel for 0.2 s" in caplog.text


# -- logging ---------------------------------------------------------------------------------
def test_one_line_per_connection_open_and_close(
    start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = start()
    caplog.set_level(logging.INFO, logger="geossh")
    served(server)
    attacker = Client(server.port)
    attacker.handshake()
    attacker.send_msg(service_request())
    attacker.wait_for(MSG.SERVICE_ACCEPT)
    attacker.password("wrong", user="eve\nFAKE LOG LINE")
    attacker.close()
    finished(server, attacker)
    lines = [r.getMessage() for r in caplog.records if r.name == "geossh.server"]
    opened = [line for line in lines if "connection from 127.0.0.1:" in line]
    closed = [line for line in lines if "connection closed: " in line]
    assert len(opened) == len(closed) == 2
    good, bad = closed
    assert "user='alice' auth=password auth_failures=0" in good
    assert "outcome=authenticated" in good and "bytes_in=" in good and "duration=" in good
    assert "user='eve\\nFAKE LOG LINE' auth=- auth_failures=1" in bad
    assert "outcome=authfail" in bad and "reason='client closed the TCP connection'" in bad
    assert PASSWORD not in caplog.text and "wrong" not in caplog.text
    assert "\nFAKE" not in caplog.text  # a peer cannot start a log line of its own


def test_transport_logs_its_own_summary(
    server: ServerHarness, hostile: Client, caplog: pytest.LogCaptureFixture
) -> None:
    hostile.handshake()
    hostile.authenticate()
    hostile.send_msg(bytes((MSG.DISCONNECT,)) + u32(11) + string("bye") + string(""))
    server.transports[0].join(BOUND)
    line = [r.getMessage() for r in caplog.records if "Connection closed:" in r.getMessage()]
    assert len(line) == 1 and "user='alice' auth=password" in line[0]
    assert "client sent DISCONNECT (code 11: 'bye')" in line[0]
    assert PASSWORD not in caplog.text


# -- command line ------------------------------------------------------------------------------
def test_cli_limit_flags_reach_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from geossh.runner.cli import _build, build_parser, main

    argv = [
        "serve", "--state-dir", str(tmp_path), "--root", str(tmp_path), "--no-password",
        "--port", "0", "--max-auth-tries", "3", "--max-channels", "8",
        "--per-source-max-startups", "4", "--per-source-netblock-size", "24:64",
        "--per-source-penalties", "authfail:30s min:1m", "--client-alive-interval", "15",
        "--client-alive-count-max", "2", "--unused-connection-timeout", "600",
    ]  # fmt: skip
    server, info = _build(build_parser().parse_args(argv))
    assert server.transport_limits == {
        "auth_timeout": 120.0, "max_channels": 8, "max_auth_tries": 3,
        "client_alive_interval": 15.0, "client_alive_count_max": 2,
        "unused_connection_timeout": 600.0,
    }  # fmt: skip
    sources = server.sources
    assert sources.per_source_max_startups == 4 and sources.netblock == (24, 64)
    assert sources.penalties is not None and sources.penalties.authfail == 30
    assert "ecdh-sha2-nistp256" in server.disabled_algorithms["kex"]
    assert {key.get_name() for key in info["keys"]} == {"ssh-ed25519", "ssh-rsa"}
    nist, _ = _build(build_parser().parse_args([*argv, "--nist-curves"]))
    assert nist.disabled_algorithms == {}
    for bad in (["--per-source-penalties", "often"], ["--per-source-netblock-size", "40"],
                ["--client-alive-interval", "-1"], ["--max-auth-tries", "0"]):  # fmt: skip
        assert main([*argv, *bad]) == 2
        assert capsys.readouterr().err.startswith("geossh: error: ")


# -- SFTP --------------------------------------------------------------------------------------
def test_sftp_request_size_limit(tmp_path: Path) -> None:
    from geossh.sftp import LocalSFTPServer, protocol as p
    from tests.integration.test_sftp_engine import start as sftp_start

    class Small(LocalSFTPServer):
        max_request_size = 40000

    session = sftp_start(Small, str(tmp_path))
    limits = struct.unpack(">4Q", session.client.ext("limits@openssh.com").payload)
    assert limits[0] == 40000 - 1024 and limits[2] == 40000 - 2048  # max packet, max write
    session.client.send(struct.pack(">I", 40001))  # one byte over: the session ends
    session.handler.join(BOUND)
    assert session.channel.exit_status == 1 and session.client.at_eof()
    good = sftp_start(Small, str(tmp_path))  # another session is served normally
    assert good.client.call(p.CMD_REALPATH, "/").type == p.CMD_NAME
    good.end()


def test_sftp_outstanding_requests_limit(tmp_path: Path) -> None:
    from geossh.sftp import protocol as p
    from tests.integration.test_sftp_engine import StubServer, start as sftp_start

    class Few(StubServer):
        ROOT = str(tmp_path)
        max_queued_requests = 8

    (tmp_path / "f").write_bytes(b"abc")
    session = sftp_start(Few)
    c = session.client
    handle = c.open("/f", p.SFTP_FLAG_READ)
    count = 50_000
    flood = b"".join(p.encode_request(p.CMD_READ, i, handle, 0, 1) for i in range(count))
    sender = gevent.spawn(c.sock.sendall, flood)
    gevent.idle()
    assert not sender.ready()  # the server stopped reading: the rest waits (flow control)
    assert session.handler.max_queued_requests == 8
    assert 0 < session.handler._queued <= 8
    for i in range(count):
        assert c.read().id == i
    sender.get()
    session.end()
    assert session.channel.exit_status == 0
