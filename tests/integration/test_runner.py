"""geossh.Server: binding, host keys, handlers, limits and graceful stop (paramiko clients)."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import pytest
from gevent.event import Event

from geossh.runner import hostkeys
from geossh.runner.server import ListenError, Server, parse_max_startups
from geossh.services.session import Session
from tests.server_kit import Login, make_server, paramiko_client, paramiko_exec
from tests.support import in_thread


@pytest.fixture
def servers() -> Any:
    """Collects servers and stops each at the end of the test."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop(timeout=1)


def _start(servers: list[Server], keydir: Path, **kwargs: Any) -> Server:
    server = make_server(keydir, **kwargs)
    server.start()
    servers.append(server)
    return server


def _banner(port: int) -> socket.socket:
    """A raw TCP connection that has received the server's identification line."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    assert in_thread(sock.recv, 256).startswith(b"SSH-2.0-")
    return sock


def _eof(sock: socket.socket) -> bool:
    """Read until the server closes (True) or 20 s pass (socket.timeout raised)."""
    while True:
        data = in_thread(sock.recv, 4096)
        if not data:
            return True


def echo_handler(session: Session) -> int:
    """Echo stdin to stdout, report what the session asked for, return 3."""
    data = session.stdin.read()
    session.stdout.write(data)
    session.stderr.write(f"{session.kind} {session.command_text} {session.env}".encode())
    return 3


def test_exec_handler_status_streams_and_env(keydir: Path, servers: list[Server]) -> None:
    server = _start(servers, keydir, handler=echo_handler)
    status, out, err = in_thread(paramiko_exec, server.port, "do it", b"payload" * 1000)
    assert status == 3
    assert out == b"payload" * 1000
    assert err.decode() == "exec do it {}"


def test_handler_exception_ends_session_with_1(
    keydir: Path, servers: list[Server], caplog: pytest.LogCaptureFixture
) -> None:
    def handler(session: Session) -> int:
        if session.command == b"boom":
            raise RuntimeError("handler bug")
        session.write("fine\n")
        return 0

    server = _start(servers, keydir, handler=handler)
    with caplog.at_level(logging.INFO, logger="geossh.server"):
        assert in_thread(paramiko_exec, server.port, "boom")[0] == 1
        assert in_thread(paramiko_exec, server.port, "ok") == (0, b"fine\n", b"")
    errors = [r for r in caplog.records if r.name == "geossh.server" and r.levelname == "ERROR"]
    assert len(errors) == 1 and "handler raised" in errors[0].getMessage()
    assert "127.0.0.1:" in errors[0].getMessage()
    assert errors[0].exc_info is not None


def test_blocking_handler_does_not_stall_others(keydir: Path, servers: list[Server]) -> None:
    never = Event()
    started = Event()

    def handler(session: Session) -> int:
        if session.command == b"hang":
            started.set()
            never.wait()  # blocks this greenlet forever
        return 0

    server = _start(servers, keydir, handler=handler)
    client = in_thread(paramiko_client, server.port)
    try:
        hung = in_thread(client.get_transport().open_session)
        in_thread(hung.exec_command, "hang")
        started.wait()
        for _ in range(3):
            assert in_thread(paramiko_exec, server.port, "quick")[0] == 0
    finally:
        in_thread(client.close)


def test_listens_on_several_addresses_and_a_bound_socket(
    keydir: Path, servers: list[Server]
) -> None:
    pre = socket.socket()
    pre.bind(("127.0.0.1", 0))
    listen: list[Any] = [("127.0.0.1", 0), pre]
    if socket.has_ipv6:
        try:
            socket.socket(socket.AF_INET6).bind(("::1", 0))
            listen.append(("::1", 0))
        except OSError:
            pass
    server = _start(servers, keydir, listen=listen, handler=echo_handler)
    assert len(server.addresses) == len(listen)
    assert server.addresses[1] == pre.getsockname()
    for host, port in server.addresses:
        client = in_thread(paramiko_client, port) if host == "127.0.0.1" else None
        if client is not None:
            in_thread(client.close)
    if len(listen) == 3:
        sock = socket.create_connection(("::1", server.addresses[2][1]), timeout=20)
        assert in_thread(sock.recv, 64).startswith(b"SSH-2.0-")
        sock.close()


def test_port_in_use_is_reported(keydir: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    server = make_server(keydir, listen=taken.getsockname())
    with pytest.raises(ListenError, match="address already in use"):
        server.bind()
    taken.close()


def test_host_keys_created_once_and_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = Server(("127.0.0.1", 0), Login, host_key_dir=state)
    assert sorted(k.get_name() for k in first.host_keys) == [
        "ecdsa-sha2-nistp256",
        "ssh-ed25519",
        "ssh-rsa",
    ]
    assert [k.get_bits() for k in first.host_keys if k.get_name() == "ssh-rsa"] == [3072]
    assert (state.stat().st_mode & 0o777) == 0o700
    for kind in ("ed25519", "ecdsa", "rsa"):
        assert (hostkeys.key_path(state, kind).stat().st_mode & 0o777) == 0o600
    second = Server(("127.0.0.1", 0), Login, host_key_dir=state)
    assert second.host_keys == first.host_keys


def test_max_connections_refuses_the_rest(keydir: Path, servers: list[Server]) -> None:
    """Past max_connections a connection is told so and closed at once, never queued."""
    server = _start(servers, keydir, max_connections=1)
    first = _banner(server.port)
    second = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    assert in_thread(second.recv, 256) == b"Too many connections; try again later\r\n"
    assert _eof(second)
    assert server.statistics()["full"] == 1
    first.close()
    while server.statistics()["server_open"] != 0:
        gevent.sleep(0.01)  # until the server saw the close (bounded by the test timeout)
    third = _banner(server.port)  # the slot is free again
    third.close()
    second.close()


def test_max_startups_drops_unauthenticated(keydir: Path, servers: list[Server]) -> None:
    server = _start(servers, keydir, max_startups="2", handler=echo_handler)
    held = [_banner(server.port), _banner(server.port)]
    assert server.unauthenticated == 2
    dropped = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    assert _eof(dropped)
    assert server.dropped == 1
    held.pop().close()
    while server.unauthenticated != 1:
        gevent.sleep(0.01)  # until the server saw the close (bounded by the test timeout)
    client = in_thread(paramiko_client, server.port)  # authenticated: no longer counted
    assert server.unauthenticated == 1
    assert _banner(server.port)
    in_thread(client.close)
    for sock in held:
        sock.close()


def test_max_startups_probability() -> None:
    assert parse_max_startups("10:30:100") == (10, 30, 100)
    assert parse_max_startups("5") == (5, 100, 5)
    for bad in ("1:2", "a:b:c", "10:30:5", "0", "1:101:2"):
        with pytest.raises(ValueError):
            parse_max_startups(bad)


def test_login_grace_time(keydir: Path, servers: list[Server]) -> None:
    server = _start(servers, keydir, login_grace_time=0.5)
    sock = _banner(server.port)
    assert _eof(sock)  # disconnected without authenticating
    sock.close()


def test_channel_cap_per_connection(keydir: Path, servers: list[Server]) -> None:
    import paramiko

    server = _start(servers, keydir, max_channels=2, handler=echo_handler)
    client = in_thread(paramiko_client, server.port)
    try:
        transport = client.get_transport()
        kept = [in_thread(transport.open_session), in_thread(transport.open_session)]
        with pytest.raises(paramiko.ChannelException):
            in_thread(transport.open_session)
        assert len(kept) == 2  # paramiko closes channels that are garbage collected
    finally:
        in_thread(client.close)


def test_events_logged_with_peer(
    keydir: Path, servers: list[Server], caplog: pytest.LogCaptureFixture
) -> None:
    server = _start(servers, keydir, handler=echo_handler)
    secret = "x --token=hunter2"
    with caplog.at_level(logging.INFO, logger="geossh.server"):
        in_thread(paramiko_exec, server.port, secret)
        server.stop(timeout=5)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "geossh.server")
    for expected in ("connection from 127.0.0.1:", "authenticated as 'alice'",
                     "session exec '' started", "session exec '' ended (3)",
                     "connection closed"):  # fmt: skip
        assert expected in text
    assert "hunter2" not in text  # command lines (which may hold secrets) stay at DEBUG


def _line_session(port: int, go: threading.Event) -> tuple[int, bytes]:
    """Start an exec session, wait for ``go``, then send a line; (status, reply)."""
    client = paramiko_client(port)
    try:
        chan = client.get_transport().open_session()
        chan.exec_command("line")
        assert chan.recv(64) == b"ready\n"
        go.wait(30)
        chan.sendall(b"hello\n")
        reply = chan.makefile("rb").read()
        return chan.recv_exit_status(), reply
    finally:
        client.close()


def _line_handler(session: Session) -> int:
    session.write("ready\n")
    line = session.readline()
    session.write(f"got {line}\n")
    return 0


def test_graceful_stop_lets_sessions_finish(keydir: Path, servers: list[Server]) -> None:
    started = gevent.event.Event()

    def handler(session: Session) -> int:
        started.set()  # the session is open and its handler running
        return _line_handler(session)

    server = _start(servers, keydir, handler=handler)
    go = threading.Event()
    pool = gevent.get_hub().threadpool
    result = pool.spawn(_line_session, server.port, go)
    assert started.wait(20), "the session never started"
    idle = _banner(server.port)  # an unauthenticated connection: closed at once
    stopper = gevent.spawn(server.stop, 30)
    assert _eof(idle)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5)
    go.set()
    assert result.get() == (0, b"got hello\n")
    stopper.join()
    assert server.statistics()["connections"] == 0


def test_graceful_stop_disconnects_after_timeout(
    keydir: Path, servers: list[Server], caplog: pytest.LogCaptureFixture
) -> None:
    started = gevent.event.Event()

    def handler(session: Session) -> int:
        started.set()  # the session is open and its handler running
        return _line_handler(session)

    server = _start(servers, keydir, handler=handler)
    go = threading.Event()
    result = gevent.get_hub().threadpool.spawn(_line_session, server.port, go)
    assert started.wait(20), "the session never started"
    with caplog.at_level(logging.INFO):
        server.stop(timeout=0.2)
        go.set()
        try:
            status, _ = result.get()
        except Exception:  # the client's send met the closed connection
            status = None
    # Cut off either way: no exit status ever reached the client.
    assert status in (None, -1)
    disconnects = [
        r.getMessage() for r in caplog.records if "Disconnect (code 11)" in r.getMessage()
    ]
    assert disconnects, "the client was not told DISCONNECT BY_APPLICATION"
