"""Ready X11 displays (``ForwardingPolicy(x11_display=True)``) under a paramiko client.

Bad ``x11-req`` input gets a failure reply and a log line; one display per
session channel; ``single_connection`` and ``x11_max_connections`` bound the
X clients; ``max_x11_displays`` bounds displays; a display closes with its
channel and with the connection. The X clients here are plain sockets; the
paramiko client accepts their ``x11`` channels and echoes.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent.socket
import paramiko
import pytest

from geossh.services.forward import ForwardSession
from geossh.services.x11 import REGISTRY, X11_BASE_PORT, X11Display
from tests.conftest import require
from tests.forward_support import (
    ForwardTestServer,
    make_policy,
    open_fds,
    session_of,
    wait_until,
    warm_up,
)
from tests.support import PASSWORD, USER, ServerHarness, in_thread

COOKIE = "0123456789abcdef" * 2


def _fwd(server: ServerHarness, tmp_path: Path, **policy: Any) -> ServerHarness:
    require("xauth")
    settings = make_policy(tmp_path, x11_display=True, **policy)
    server.interface = lambda harness: ForwardTestServer(harness, settings)
    return server.start()


@pytest.fixture
def fwd(server: ServerHarness, tmp_path: Path) -> ServerHarness:
    return _fwd(server, tmp_path, x11_max_connections=2)


@pytest.fixture
def client(fwd: ServerHarness) -> Iterator[paramiko.Transport]:
    def connect() -> paramiko.Transport:
        transport = paramiko.Transport(("127.0.0.1", fwd.port))
        transport.connect(username=USER, password=PASSWORD)
        return transport

    transport = in_thread(connect)
    try:
        yield transport
    finally:
        in_thread(transport.close)


def _request(transport: paramiko.Transport, **kwargs: Any) -> tuple[Any, bool]:
    """A new session channel and whether its x11-req succeeded."""

    def body() -> tuple[Any, bool]:
        chan = transport.open_session()
        try:
            chan.request_x11(**kwargs)
        except paramiko.SSHException:
            return chan, False  # paramiko closes the channel on a failure reply
        return chan, True

    return in_thread(body)


def _display(fwd: ServerHarness) -> X11Display:
    forwarding = session_of(fwd)
    displays = wait_until(lambda: [d for d in forwarding.x11_displays.values() if not d.closed])
    assert len(displays) == 1
    return displays[0]  # type: ignore[no-any-return]


def _x_client(display: X11Display) -> Any:
    return gevent.socket.create_connection(("127.0.0.1", X11_BASE_PORT + display.number), 10)


def _echo_through(transport: paramiko.Transport, sock: Any) -> Any:
    """The client accepts the x11 channel; bytes go both ways."""
    sock.sendall(b"ping")

    def accept() -> Any:
        chan = transport.accept(20)
        assert chan is not None and chan.get_name()
        assert chan.recv(4) == b"ping"
        chan.sendall(b"pong")
        return chan

    chan = in_thread(accept)
    assert sock.recv(4) == b"pong"
    return chan


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize(
    "request_",
    [
        {"auth_protocol": "XDM-AUTHORIZATION-1", "auth_cookie": COOKIE},
        {"auth_protocol": "MIT-MAGIC-COOKIE-1\nadd evil:0", "auth_cookie": COOKIE},
        {"auth_cookie": "not hex at all, not hex at all!!"},
        {"auth_cookie": COOKIE + "a"},  # odd length
        {"auth_cookie": COOKIE + "\nremove unix:0"},
        {"auth_cookie": ""},
        {"auth_cookie": COOKIE, "screen_number": 256},
        {"auth_cookie": COOKIE, "screen_number": 2**32 - 1},
    ],
)
def test_malformed_x11_request_fails(
    fwd: ServerHarness, client: paramiko.Transport, request_: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="geossh")
    _, ok = _request(client, **request_)
    assert not ok
    assert any("x11-req refused" in r.getMessage() for r in caplog.records)
    assert not session_of(fwd).x11_displays
    _, ok = _request(client, auth_cookie=COOKIE)  # the connection carries on
    assert ok


def test_display_carries_x_clients_and_closes_with_its_channel(
    fwd: ServerHarness, client: paramiko.Transport
) -> None:
    chan, ok = _request(client, auth_cookie=COOKIE, screen_number=3)
    assert ok
    display = _display(fwd)
    assert display.number >= 10 and display.display == f"localhost:{display.number}.3"
    assert (
        display.xauth_input()
        == (
            f"remove unix:{display.number}.3\n"
            f"add unix:{display.number}.3 MIT-MAGIC-COOKIE-1 {COOKIE}\n"
        ).encode()
    )
    xauthority = Path(display.xauthority())
    assert (xauthority.parent.stat().st_mode & 0o777) == 0o700
    x_chan = _echo_through(client, _x_client(display))
    in_thread(chan.close)
    wait_until(lambda: display.closed, what="the display closed with its channel")
    wait_until(lambda: _refused(X11_BASE_PORT + display.number), what="the listener closed")
    assert not xauthority.parent.exists()
    wait_until(lambda: x_chan.closed, what="the X client's channel closed")
    assert display.number not in REGISTRY.numbers


def test_second_x11_request_on_a_channel_fails(
    fwd: ServerHarness, client: paramiko.Transport
) -> None:
    chan, ok = _request(client, auth_cookie=COOKIE)
    assert ok

    def again() -> bool:
        try:
            chan.request_x11(auth_cookie=COOKIE)
        except paramiko.SSHException:
            return False
        return True

    assert not in_thread(again)
    assert len([d for d in session_of(fwd).x11_displays.values() if not d.closed]) <= 1


def test_single_connection_closes_the_listener(
    fwd: ServerHarness, client: paramiko.Transport
) -> None:
    _, ok = _request(client, auth_cookie=COOKIE, single_connection=True)
    assert ok
    display = _display(fwd)
    port = X11_BASE_PORT + display.number
    x_chan = _echo_through(client, _x_client(display))
    assert display.accepted == 1
    wait_until(lambda: _refused(port), what="the single-connection listener closed")
    assert not display.closed and not x_chan.closed  # the first X client goes on


def test_concurrent_x_clients_are_capped(fwd: ServerHarness, client: paramiko.Transport) -> None:
    _, ok = _request(client, auth_cookie=COOKIE)
    assert ok
    display = _display(fwd)
    first, second = _x_client(display), _x_client(display)
    channels = [_echo_through(client, first), _echo_through(client, second)]  # kept open
    assert display.connections == 2  # x11_max_connections
    third = _x_client(display)
    third.settimeout(20)
    assert third.recv(1) == b""  # closed at once
    third.close()
    first.close()
    in_thread(channels[0].close)  # as ssh does once the X server side closes
    wait_until(lambda: display.connections == 1, what="the first X client's end")
    fourth = _x_client(display)
    channels.append(_echo_through(client, fourth))  # room again
    assert display.connections == 2


def test_displays_per_process_are_capped(server: ServerHarness, tmp_path: Path) -> None:
    fwd = _fwd(server, tmp_path, max_x11_displays=len(REGISTRY.numbers) + 1)

    def body() -> list[bool]:
        transport = paramiko.Transport(("127.0.0.1", fwd.port))
        transport.connect(username=USER, password=PASSWORD)
        try:
            results = []
            for _ in range(2):
                chan = transport.open_session()
                try:
                    chan.request_x11(auth_cookie=COOKIE)
                    results.append(True)
                except paramiko.SSHException:
                    results.append(False)
            return results
        finally:
            transport.close()

    assert in_thread(body) == [True, False]
    forwarding: ForwardSession = session_of(fwd)
    wait_until(lambda: forwarding.closed, what="the connection's end")
    assert all(display.closed for display in forwarding.x11_displays.values())


def test_no_xauth_program_refuses(server: ServerHarness, tmp_path: Path) -> None:
    fwd = _fwd(server, tmp_path, xauth_location=str(tmp_path / "no-xauth"))

    def body() -> bool:
        transport = paramiko.Transport(("127.0.0.1", fwd.port))
        transport.connect(username=USER, password=PASSWORD)
        try:
            transport.open_session().request_x11(auth_cookie=COOKIE)
        except paramiko.SSHException:
            return False
        finally:
            transport.close()
        return True

    assert in_thread(body) is False


def test_many_sessions_leave_nothing_behind(fwd: ServerHarness) -> None:
    """Twenty sessions with displays and an X client each: no socket, greenlet or number kept."""
    warm_up()
    fds = open_fds()

    def body() -> paramiko.Transport:
        transport = paramiko.Transport(("127.0.0.1", fwd.port))
        transport.connect(username=USER, password=PASSWORD)
        return transport

    transport = in_thread(body)
    try:
        for _ in range(20):
            chan, ok = _request(transport, auth_cookie=COOKIE)
            assert ok
            display = _display(fwd)
            sock = _x_client(display)
            x_chan = _echo_through(transport, sock)
            in_thread(chan.close)
            wait_until(lambda: display.closed and x_chan.closed, what="the display's end")  # noqa: B023
            sock.close()
        forwarding = session_of(fwd)
        wait_until(lambda: forwarding.channels == 0, what="X clients released")
        wait_until(lambda: len(forwarding.greenlets) == 0, what="watchers ended")
    finally:
        in_thread(transport.close)
    assert not REGISTRY.numbers
    wait_until(lambda: open_fds() <= fds, what="sockets to close")
