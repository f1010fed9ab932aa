"""paramiko's client forwards through geossh: open_channel("direct-tcpip"), request_port_forward.

Also runs paramiko's own server-side forwarding shape (Shape D: record the
destination, ``accept()``, pump; bind in ``check_port_forward_request`` and
call ``open_forwarded_tcpip_channel``) unchanged on geossh.
"""

from __future__ import annotations

import hashlib
import queue
import socket
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import paramiko
import pytest

import geossh
from geossh._facade.channel import Channel
from geossh.services.forward import connect, pump
from tests.forward_support import (
    BLOCK,
    DigestServer,
    ForwardTestServer,
    MiB,
    expected_digest,
    make_policy,
    recv_all,
    send_pattern,
    session_of,
    wait_until,
)
from tests.support import PASSWORD, USER, ServerHarness, TestServer, in_thread

pytestmark = pytest.mark.interop

SIZE = 16 * MiB


def _client(port: int) -> paramiko.Transport:
    transport = paramiko.Transport(("127.0.0.1", port))
    transport.connect(username=USER, password=PASSWORD)
    return transport


def _upload_over_channel(chan: paramiko.Channel, total: int) -> tuple[str, int]:
    """paramiko side of ``sink``: send, half-close, read the digest reply."""
    chan.sendall(b"sink\n")
    block = BLOCK
    sent = 0
    while sent < total:
        piece = block[: min(len(block), total - sent)]
        chan.sendall(piece)
        sent += len(piece)
    chan.shutdown_write()
    reply = b""
    while data := chan.recv(4096):
        reply += data
    chan.close()
    digest, count = reply.decode().split()
    return digest, int(count)


@pytest.fixture
def fwd(server: ServerHarness, tmp_path: Path) -> ServerHarness:
    server.interface = lambda harness: ForwardTestServer(harness, make_policy(tmp_path))
    return server.start()


def test_paramiko_direct_tcpip(fwd: ServerHarness) -> None:
    dest = DigestServer()

    def body() -> tuple[str, int]:
        transport = _client(fwd.port)
        try:
            chan = transport.open_channel(
                "direct-tcpip", ("127.0.0.1", dest.port), ("127.0.0.1", 40000)
            )
            return _upload_over_channel(chan, SIZE)
        finally:
            transport.close()

    try:
        digest, count = in_thread(body)
    finally:
        dest.stop()
    assert (digest, count) == (expected_digest(SIZE), SIZE)


def test_paramiko_direct_tcpip_failure_codes(fwd: ServerHarness) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()

    def body() -> list[int]:
        transport = _client(fwd.port)
        codes = []
        try:
            for dest in (("192.0.2.7", 22), ("127.0.0.1", closed_port)):
                try:
                    transport.open_channel("direct-tcpip", dest, ("127.0.0.1", 40000))
                    codes.append(0)
                except paramiko.ChannelException as exc:
                    codes.append(exc.code)
            return codes
        finally:
            transport.close()

    assert in_thread(body) == [
        geossh.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
        geossh.OPEN_FAILED_CONNECT_FAILED,
    ]


def _serve_forwarded(arrivals: queue.Queue[Any]) -> tuple[str, int, tuple[Any, Any]]:
    """paramiko side of a forwarded connection: hash until EOF, reply, close."""
    chan, origin, server_addr = arrivals.get(timeout=20)
    digest, count = hashlib.sha256(), 0
    while data := chan.recv(1 << 18):
        digest.update(data)
        count += len(data)
    chan.sendall(f"{digest.hexdigest()} {count}\n".encode())
    chan.close()
    return digest.hexdigest(), count, (origin, server_addr)


def _push(port: int, total: int) -> tuple[bytes, tuple[str, int]]:
    sock = gevent.socket.create_connection(("127.0.0.1", port))
    local = sock.getsockname()
    send_pattern(sock, total)
    sock.shutdown(socket.SHUT_WR)
    reply = recv_all(sock)
    sock.close()
    return reply, local


def test_paramiko_request_port_forward(fwd: ServerHarness) -> None:
    arrivals: queue.Queue[Any] = queue.Queue()

    def handler(chan: Any, origin: Any, server_addr: Any) -> None:
        arrivals.put((chan, origin, server_addr))

    def setup() -> tuple[paramiko.Transport, int]:
        transport = _client(fwd.port)
        return transport, transport.request_port_forward("127.0.0.1", 0, handler)

    transport, port = in_thread(setup)
    try:
        assert list(session_of(fwd).listeners) == [("127.0.0.1", port)]
        pusher = gevent.spawn(_push, port, SIZE)
        digest, count, (origin, server_addr) = in_thread(_serve_forwarded, arrivals)
        reply, local = pusher.get(timeout=30)
        assert (digest, count) == (expected_digest(SIZE), SIZE)
        assert reply == f"{digest} {count}\n".encode()
        assert server_addr == ("127.0.0.1", port)  # RFC 4254 §7.2: the address connected
        assert tuple(origin) == tuple(local)  # ... and the originator
        in_thread(transport.cancel_port_forward, "127.0.0.1", port)
        wait_until(lambda: not session_of(fwd).listeners, what="the listener to close")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        in_thread(transport.close)


# -- paramiko's own server-side shape (Shape D) runs unchanged --------------------------


class ShapeDServer(TestServer):
    """Forwarding written the paramiko way: record, accept(), pump; bind, open_forwarded."""

    __test__ = False

    def __init__(self, harness: ServerHarness) -> None:
        super().__init__(harness)
        self.destinations: dict[int, tuple[str, int]] = {}
        self.transport: Any = None
        self.listeners: list[Any] = []

    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        self.destinations[chanid] = destination
        return geossh.OPEN_SUCCEEDED

    def check_port_forward_request(self, address: str, port: int) -> int:
        listener = gevent.socket.socket()
        listener.bind((address, port))
        listener.listen(8)
        self.listeners.append(listener)
        bound = listener.getsockname()[1]
        gevent.spawn(self._accept_loop, listener, (address, bound))
        return bound

    def _accept_loop(self, listener: Any, server_addr: tuple[str, int]) -> None:
        while True:
            try:
                sock, peer = listener.accept()
            except OSError:
                return
            chan = self.transport.open_forwarded_tcpip_channel(peer, server_addr)
            gevent.spawn(pump, chan, sock)


def _shape_d_app(harness: ServerHarness) -> None:
    """The application greenlet: accept() direct-tcpip channels and pump them."""
    wait_until(lambda: harness.transports, what="a connection")
    transport, app = harness.transports[-1], harness.servers[-1]
    assert isinstance(app, ShapeDServer)
    app.transport = transport
    while (chan := transport.accept(30)) is not None:
        if isinstance(chan, Channel) and chan.kind == "direct-tcpip":
            gevent.spawn(pump, chan, connect(app.destinations.pop(chan.get_id()), 10))


def test_paramiko_shape_d_server_code(server: ServerHarness) -> None:
    server.interface = ShapeDServer
    server.start()
    dest = DigestServer()
    arrivals: queue.Queue[Any] = queue.Queue()
    app = gevent.spawn(_shape_d_app, server)

    def local() -> tuple[tuple[str, int], paramiko.Transport, int]:
        transport = _client(server.port)
        chan = transport.open_channel("direct-tcpip", ("127.0.0.1", dest.port), ("::1", 1))
        result = _upload_over_channel(chan, 4 * MiB)
        port = transport.request_port_forward(
            "127.0.0.1", 0, lambda c, o, s: arrivals.put((c, o, s))
        )
        return result, transport, port

    try:
        (digest, count), transport, port = in_thread(local)
        assert (digest, count) == (expected_digest(4 * MiB), 4 * MiB)
        pusher = gevent.spawn(_push, port, 4 * MiB)
        digest, count, (_, server_addr) = in_thread(_serve_forwarded, arrivals)
        assert pusher.get(timeout=30)[0] == f"{digest} {count}\n".encode()
        assert (count, server_addr) == (4 * MiB, ("127.0.0.1", port))
        in_thread(transport.close)
    finally:
        app.kill()
        dest.stop()
        for listener in server.servers[-1].listeners:  # type: ignore[attr-defined]
            listener.close()


# -- the channel-handler hook on its own ------------------------------------------------


class EchoHandler:
    """prepare() decides from the destination port; run() echoes until EOF."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.closed = False

    def prepare(self) -> int | tuple[int, str]:
        if self.port == 2:
            return geossh.OPEN_FAILED_CONNECT_FAILED, "no echo on port 2"
        return geossh.OPEN_SUCCEEDED

    def run(self, channel: Channel) -> None:
        while data := channel.recv(65536):
            channel.sendall(data)
        channel.shutdown_write()

    def close(self) -> None:
        self.closed = True


class HookServer(TestServer):
    """Channels of kind ``echo@example.com`` are served by handlers, not accept()."""

    __test__ = False

    def __init__(self, harness: ServerHarness) -> None:
        super().__init__(harness)
        self.handlers: list[EchoHandler] = []

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return geossh.OPEN_SUCCEEDED

    def check_channel_direct_tcpip_request(self, chanid: int, origin: Any, dest: Any) -> int:
        self.handlers.append(EchoHandler(dest[1]))
        return geossh.OPEN_SUCCEEDED

    def get_channel_handler(self, kind: str, chanid: int) -> EchoHandler | None:
        if kind == "broken@example.com":
            raise RuntimeError("handler factory failed")
        return self.handlers[-1] if kind == "direct-tcpip" else None


def test_channel_handler_hook(server: ServerHarness) -> None:
    server.interface = HookServer
    server.start()

    def body() -> list[Any]:
        transport = _client(server.port)
        results: list[Any] = []
        try:
            chan = transport.open_channel("direct-tcpip", ("echo", 1), ("a", 1))
            chan.sendall(b"ping")
            chan.shutdown_write()
            results.append(chan.makefile("rb").read())
            for kind, dest in (("direct-tcpip", ("echo", 2)), ("broken@example.com", None)):
                try:
                    transport.open_channel(kind, dest, ("a", 1) if dest else None)
                except paramiko.ChannelException as exc:
                    results.append(exc.code)
            results.append(transport.open_session() is not None)  # other kinds: accept() queue
            return results
        finally:
            transport.close()

    assert in_thread(body) == [
        b"ping",
        geossh.OPEN_FAILED_CONNECT_FAILED,
        geossh.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
        True,
    ]
    app = server.servers[-1]
    assert isinstance(app, HookServer)
    wait_until(lambda: all(h.closed for h in app.handlers), what="handlers to close")
    transport = server.transports[-1]
    assert "direct-tcpip" not in [c.kind for c in transport.server_accepts]  # handled, not queued
