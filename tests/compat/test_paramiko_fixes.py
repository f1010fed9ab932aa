"""Incompatibilities found by running paramiko's own suite against geossh (issue 20)."""

from __future__ import annotations

import io
import socket
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.socket
import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448

import geossh
from geossh.buffered_pipe import BufferedPipe, PipeTimeout
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


# -- keys (item 6) -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "tag"),
    [(geossh.RSAKey, "RSA"), (geossh.ECDSAKey, "EC"), (geossh.Ed25519Key, "OPENSSH")],
)
def test_key_load_errors_say_what_paramiko_says(cls: Any, tag: str) -> None:
    """An empty key file and one without a BEGIN line fail with paramiko's messages."""
    with pytest.raises(geossh.SSHException, match=f"^no lines in {tag} private key file$"):
        cls.from_private_key(io.StringIO(""))
    with pytest.raises(geossh.SSHException, match=f"^not a valid {tag} private key file$"):
        cls.from_private_key(io.StringIO("ohai! I have lines. Technically."))


def test_unknown_key_type_names_the_loaded_class(tmp_path: Path) -> None:
    """UnknownKeyType.key_type is the class of the key cryptography loaded (paramiko's)."""
    path = tmp_path / "ed448.key"
    path.write_bytes(
        ed448.Ed448PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(geossh.pkey.UnknownKeyType) as info:
        geossh.PKey.from_path(path)
    assert issubclass(info.value.key_type, ed448.Ed448PrivateKey)


def test_empty_key_repr_is_paramikos() -> None:
    """A key whose loading failed still has a repr (paramiko's fingerprint of no key)."""
    with pytest.raises(geossh.SSHException) as info:
        geossh.Ed25519Key(file_obj=io.StringIO("junk"))
    tb = info.tb
    while tb.tb_next is not None and "self" not in tb.tb_frame.f_locals:
        tb = tb.tb_next
    half_built = tb.tb_frame.f_locals["self"]
    expected = "PKey(alg=ED25519, bits=256, fp=SHA256:UsIasxMWEd9VFEwjARWWtGJ08DgHp1eib3gSBLed54U)"
    assert repr(half_built) == expected


def test_public_blob_equals_paramikos() -> None:
    """geossh's and paramiko's PublicBlob of the same blob compare equal, both ways."""
    blob = geossh.Ed25519Key.generate().asbytes()
    ours, theirs = geossh.PublicBlob("ssh-ed25519", blob), paramiko.PublicBlob("ssh-ed25519", blob)
    assert ours == theirs and theirs == ours
    assert (ours != theirs) is False  # paramiko's NullServer compares with !=
    assert ours != geossh.PublicBlob("ssh-ed25519", blob + b"x")


def test_add_server_key_refuses_a_paramiko_key() -> None:
    """A host key loaded with paramiko fails at once with a clear TypeError."""
    a, b = socket.socketpair()
    transport = geossh.Transport(a)
    try:
        with pytest.raises(TypeError, match="must be a geossh key, not paramiko"):
            transport.add_server_key(paramiko.Ed25519Key.from_private_key(_ed25519_text()))
    finally:
        transport.close()
        b.close()


def _ed25519_text() -> io.StringIO:
    text = io.StringIO()
    geossh.Ed25519Key.generate().write_private_key(text)
    text.seek(0)
    return text


def test_buffered_pipe_timeout_is_pipe_timeout() -> None:
    """BufferedPipe.read times out with PipeTimeout (still a socket.timeout)."""
    with pytest.raises(PipeTimeout) as info:
        BufferedPipe().read(1, 0.0)
    assert isinstance(info.value, socket.timeout)


# -- packetizer.REKEY_BYTES --------------------------------------------------------
class _CountingClient(paramiko.Transport):
    """paramiko's client, counting the KEXINITs it receives."""

    kexinits = 0

    def _negotiate_keys(self, m: Any) -> Any:
        self.kexinits += 1
        return super()._negotiate_keys(m)


def test_packetizer_rekey_bytes_after_start(server: ServerHarness) -> None:
    """transport.packetizer.REKEY_BYTES set on a running server re-keys after that many bytes."""
    server.start()
    client = _CountingClient(("127.0.0.1", server.port))
    try:
        in_thread(client.connect, None, USER, PASSWORD)
        assert client.kexinits == 1
        ts = server.transports[0]
        assert ts.packetizer.REKEY_BYTES == 1 << 30
        ts.packetizer.REKEY_BYTES = 4096
        ts.packetizer.REKEY_PACKETS = 1 << 40  # accepted (geossh counts bytes only)
        assert (ts.rekey_bytes, ts.packetizer.REKEY_PACKETS) == (4096, 1 << 40)

        def traffic() -> bytes:
            for _ in range(4):
                client.send_ignore(2048)
            chan = client.open_session()  # answered after the server's KEXINIT
            chan.exec_command(b"echo ok")
            return chan.makefile("rb").read()

        assert in_thread(traffic) == b"ok\n"
        assert client.kexinits >= 2
        with pytest.raises(ValueError):
            ts.packetizer.REKEY_BYTES = 0
    finally:
        client.close()
