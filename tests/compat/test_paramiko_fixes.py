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
from tests.support import PASSWORD, USER, ServerHarness, in_thread


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


LEGACY = [
    ("aes192-cbc", "hmac-sha2-256"),
    ("3des-cbc", "hmac-sha2-256"),
    ("aes256-cbc", "hmac-md5-96"),  # paramiko's test_special: 12-byte MAC, 16-byte blocks
    ("aes128-ctr", "hmac-md5"),
    ("aes128-ctr", "hmac-md5-96"),
    ("3des-cbc", "hmac-sha1-96"),
]


def _paramiko_legacy_exec(port: int, cipher: str, mac: str) -> tuple[bytes, str, str]:
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        options = transport.get_security_options()
        options.ciphers = (cipher,)
        options.digests = (mac,)
        transport.connect(username=USER, password=PASSWORD)
        transport.renegotiate_keys()  # a second exchange under the legacy keys
        chan = transport.open_session()
        chan.exec_command(b"echo ok")
        out = b""
        for _ in range(100):
            data = chan.recv(1024)
            if not data:
                break
            out += data
        return out, transport.local_cipher, transport.local_mac
    finally:
        transport.close()


@pytest.mark.parametrize(("cipher", "mac"), LEGACY)
def test_legacy_algorithm_enabled(server: ServerHarness, cipher: str, mac: str) -> None:
    """Each legacy cipher/MAC paramiko 5.1 has can be enabled; a paramiko client negotiates it."""

    def enable(transport: geossh.Transport) -> None:
        options = transport.get_security_options()
        options.ciphers = (*options.ciphers, cipher)
        options.digests = (*options.digests, mac)

    server.configure = enable
    server.start()
    out, negotiated_cipher, negotiated_mac = in_thread(
        _paramiko_legacy_exec, server.port, cipher, mac
    )
    assert (out, negotiated_cipher, negotiated_mac) == (b"ok\n", cipher, mac)
    core = server.transports[0]._conn.transport.negotiated
    assert (core.cipher_c2s, core.mac_c2s) == (cipher, mac)


@pytest.mark.parametrize(("cipher", "mac"), [("3des-cbc", "hmac-sha2-256"),
                                             ("aes128-ctr", "hmac-md5-96")])  # fmt: skip
def test_legacy_algorithm_off_by_default(server: ServerHarness, cipher: str, mac: str) -> None:
    """Without enabling, a client that insists on a legacy algorithm finds no match."""
    server.start()
    with pytest.raises(paramiko.SSHException, match="Incompatible"):
        in_thread(_paramiko_legacy_exec, server.port, cipher, mac)


@pytest.mark.parametrize(
    ("category", "message"),
    [("ciphers", "unknown cipher"), ("digests", "unknown MAC"), ("kex", "unknown kex algorithm"),
     ("key_types", "unknown key type"), ("compression", "unknown compression")],
)  # fmt: skip
def test_security_options_unknown_name(category: str, message: str) -> None:
    """Setting an unknown name is a ValueError naming the category and the name."""
    a, b = socket.socketpair()
    transport = geossh.Transport(a)
    try:
        with pytest.raises(ValueError, match=f"{message}: made-up"):
            setattr(transport.get_security_options(), category, ("made-up",))
    finally:
        transport.close()
        b.close()
