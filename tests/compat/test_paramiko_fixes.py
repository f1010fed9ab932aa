"""Incompatibilities found by running paramiko's own suite against geossh (issue 20)."""

from __future__ import annotations

import socket
from typing import Any

import gevent
import gevent.event
import gevent.socket
import paramiko
import pytest

import geossh
from geossh.buffered_pipe import BufferedPipe


class _Server(geossh.ServerInterface):
    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        return geossh.AUTH_SUCCESSFUL


class EOFSocket:
    """paramiko's LoopSocket behaviour: once the peer is gone, send/recv/close raise EOFError."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.gone = False

    def send(self, data: Any) -> int:
        if self.gone:
            raise EOFError
        return self.sock.send(data)

    def recv(self, size: int) -> bytes:
        if self.gone:
            raise EOFError
        return self.sock.recv(size)

    def close(self) -> None:
        if self.gone:
            raise EOFError
        self.sock.close()

    def settimeout(self, value: Any) -> None:
        pass


def _connect(
    server_sock: Any, client_sock: socket.socket
) -> tuple[geossh.Transport, paramiko.Transport]:
    ts = geossh.Transport(server_sock)
    ts.add_server_key(geossh.Ed25519Key.generate())
    ts.start_server(event=gevent.event.Event(), server=_Server())
    tc = paramiko.Transport(client_sock)
    gevent.get_hub().threadpool.spawn(tc.connect, username="u", password="p").get(timeout=30)
    return ts, tc


def test_unix_socketpair_transport() -> None:
    """Transport(sock) on an AF_UNIX socketpair (getpeername() == '') works."""
    a, b = socket.socketpair()
    ts, tc = _connect(a, b)
    try:
        assert tc.is_authenticated()
        assert repr(ts)
    finally:
        tc.close()
        ts.close()


def test_eoferror_from_socket_like_is_peer_gone() -> None:
    """EOFError from a socket-like object's send/recv/close ends the connection quietly."""
    raw, b = socket.socketpair()
    a = gevent.socket.socket(fileno=raw.detach())  # cooperative, as under monkey.patch_all
    wrapped = EOFSocket(a)
    ts, tc = _connect(wrapped, b)
    assert tc.is_authenticated()
    wrapped.gone = True
    gevent.get_hub().threadpool.spawn(tc.close).get(timeout=30)
    ts.close()  # must not raise EOFError
    ts.join(timeout=10)
    assert not ts.is_active()
    assert not ts.crashed
    a.close()


@pytest.mark.parametrize(("fed", "read"), [("héllo", "héllo".encode()), (b"abc", b"abc")])
def test_buffered_pipe_feed_str(fed: Any, read: bytes) -> None:
    """BufferedPipe.feed takes str or bytes (str is UTF-8 encoded, as in paramiko)."""
    pipe = BufferedPipe()
    pipe.feed(fed)
    assert pipe.read(100) == read
