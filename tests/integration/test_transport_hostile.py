"""Hostile raw TCP clients against a real geossh server on loopback.

Each test speaks SSH by hand (``KexClient`` from tests/unit/kexclient.py over a
gevent socket), misbehaves in one way, and checks what a peer and an operator
would see: the SSH_MSG_DISCONNECT reason code, a log line naming it, an end
within a gevent timeout, no traceback, and an OpenSSH client served normally
afterwards (or meanwhile).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator

import gevent
import gevent.socket
import pytest

from geossh.proto.constants import MSG, DisconnectReason
from geossh.proto.wire import Reader, boolean, string, u32
from tests.conftest import require
from tests.support import PASSWORD, USER, ServerHarness, needs_sntrup
from tests.unit.kexclient import (
    ClientOptions,
    KexClient,
    channel_open,
    disconnect_reason,
    global_request,
    kexinit_payload,
    service_request,
)

REASON = DisconnectReason
BOUND = 10.0  # seconds any single misbehaviour may take to be dealt with


class RawClient:
    """A hand-driven SSH client on a cooperative socket."""

    def __init__(self, port: int, options: ClientOptions | None = None) -> None:
        self.sock = gevent.socket.create_connection(("127.0.0.1", port))
        self.ssh = KexClient(options)
        self.payloads: list[bytes] = []
        self.eof = False
        self.sent = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def send_until_closed(self, data: bytes, pause: float = 0.0, step: int = 1 << 20) -> None:
        """Send ``data`` in ``step``-byte pieces; stop quietly when the server hangs up."""
        try:
            for start in range(0, len(data), step):
                self.send(data[start : start + step])
                gevent.sleep(pause)
        except OSError:
            pass

    def send_msg(self, payload: bytes) -> None:
        self.send(self.ssh.encode(payload))

    def read_until(self, done: Callable[[list[bytes]], bool]) -> list[bytes]:
        """Read until ``done(payloads)`` or EOF; returns every payload so far."""
        while not done(self.payloads) and not self.eof:
            data = self.sock.recv(65536)
            if not data:
                self.eof = True
                break
            self.payloads += self.ssh.feed(data)
        return self.payloads

    def wait_for(self, msg: int) -> bytes:
        """The next payload of type ``msg`` (after those already seen)."""
        start = len(self.payloads)
        self.read_until(lambda p: any(x[0] == msg for x in p[start:]))
        found = [x for x in self.payloads[start:] if x[0] == msg]
        assert found, f"no message {msg}; got {[x[0] for x in self.payloads[start:]]}"
        return found[0]

    def disconnect_reason(self) -> int:
        """Read to the server's DISCONNECT (and its close); return the reason code."""
        payload = self.wait_for(MSG.DISCONNECT)
        self.read_until(lambda p: False)  # the server closes the socket after it
        return disconnect_reason(payload)

    def handshake(self) -> None:
        """Version, KEXINIT, curve25519, NEWKEYS: both directions keyed."""
        self.send(self.ssh.hello())
        self.send_msg(self.ssh.kexinit)
        self.wait_for(MSG.KEXINIT)
        self.send_msg(self.ssh.ecdh_init())
        self.wait_for(MSG.NEWKEYS)
        self.send(self.ssh.newkeys())

    def authenticate(self) -> None:
        self.send_msg(service_request())
        self.wait_for(MSG.SERVICE_ACCEPT)
        self.send_msg(
            bytes((MSG.USERAUTH_REQUEST,)) + string(USER) + string("ssh-connection")
            + string("password") + boolean(False) + string(PASSWORD)
        )  # fmt: skip
        self.wait_for(MSG.USERAUTH_SUCCESS)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def hostile(server: ServerHarness, caplog: pytest.LogCaptureFixture) -> Iterator[RawClient]:
    """A raw client connected to ``server``; afterwards, OpenSSH must still get in."""
    caplog.set_level(logging.DEBUG, logger="geossh")
    server.start()
    client = RawClient(server.port)
    with gevent.Timeout(BOUND, AssertionError("the server did not deal with it in time")):
        yield client
    client.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert_good_client_served(server)


def assert_good_client_served(server: ServerHarness) -> None:
    require("ssh")
    result = server.ssh_run("echo", "ok")
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    assert result.stdout == b"ok\n"


def assert_logged(server: ServerHarness, caplog: pytest.LogCaptureFixture, code: int) -> None:
    """The server logged why it disconnected, with the reason code."""
    server.transports[0].join(BOUND)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("geossh")]
    assert any("Disconnecting" in line and f"(reason {code})" in line for line in lines), lines


def short_timeouts(server: ServerHarness, seconds: float = 1.0) -> None:
    def configure(transport):  # type: ignore[no-untyped-def]
        transport.banner_timeout = seconds
        transport.handshake_timeout = seconds
        transport.auth_timeout = 4 * seconds

    server.configure = configure


# -- version exchange --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"SSH-2.0-" + b"A" * 400 + b"\r\n", REASON.PROTOCOL_VERSION_NOT_SUPPORTED),
        (b"\x00\x00\x01\x2c\x0a\x14" + bytes(40) + b"\n", REASON.PROTOCOL_ERROR),
        (b"SSH-1.5-ancient\r\n", REASON.PROTOCOL_VERSION_NOT_SUPPORTED),
        (b"GET / HTTP/1.1\r\n" * 2000, REASON.PROTOCOL_VERSION_NOT_SUPPORTED),
    ],
    ids=["overlong", "binary", "ssh1", "http"],
)
def test_bad_version_line(
    server: ServerHarness, hostile: RawClient, caplog: pytest.LogCaptureFixture,
    line: bytes, code: int,
) -> None:  # fmt: skip
    gevent.spawn(hostile.send_until_closed, line)  # the server may close before reading all
    assert hostile.disconnect_reason() == code
    assert hostile.ssh.server_version is not None  # our version line came first
    assert_logged(server, caplog, code)


# -- deadlines ---------------------------------------------------------------------------------
def test_trickle_cannot_extend_the_handshake(
    server: ServerHarness, hostile: RawClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A KEXINIT at one byte per 50 ms would take ~12 s; the 2 s deadline ends it."""
    short_timeouts(server)
    hostile.send(hostile.ssh.hello())
    data = hostile.ssh.encode(hostile.ssh.kexinit)

    feeder = gevent.spawn(hostile.send_until_closed, data, 0.05, 1)
    try:
        assert_good_client_served(server)  # others are served meanwhile
        assert hostile.disconnect_reason() == REASON.KEY_EXCHANGE_FAILED
    finally:
        feeder.kill()
    assert hostile.sent < len(hostile.ssh.hello()) + len(data)
    assert_logged(server, caplog, REASON.KEY_EXCHANGE_FAILED)


def test_stall_mid_kex(
    server: ServerHarness, hostile: RawClient, caplog: pytest.LogCaptureFixture
) -> None:
    short_timeouts(server)
    hostile.send(hostile.ssh.hello())
    hostile.send_msg(hostile.ssh.kexinit)
    assert hostile.disconnect_reason() == REASON.KEY_EXCHANGE_FAILED
    assert_logged(server, caplog, REASON.KEY_EXCHANGE_FAILED)


def test_stall_before_authentication(
    server: ServerHarness, hostile: RawClient, caplog: pytest.LogCaptureFixture
) -> None:
    short_timeouts(server, 0.5)
    hostile.handshake()
    hostile.send_msg(service_request())
    assert hostile.disconnect_reason() == REASON.NO_MORE_AUTH_METHODS_AVAILABLE
    assert_logged(server, caplog, REASON.NO_MORE_AUTH_METHODS_AVAILABLE)


# -- framing and protection --------------------------------------------------------------------
@pytest.mark.parametrize("length", [0, 0x7FFFFFFF, 0x0100_0000, 1001])
def test_bad_packet_length(
    server: ServerHarness, hostile: RawClient, caplog: pytest.LogCaptureFixture, length: int
) -> None:
    hostile.send(hostile.ssh.hello())
    hostile.send(struct.pack(">IB", length, 4) + bytes(27))
    assert hostile.disconnect_reason() == REASON.PROTOCOL_ERROR
    assert_logged(server, caplog, REASON.PROTOCOL_ERROR)


@pytest.mark.parametrize("cipher", ["aes128-ctr", "chacha20-poly1305@openssh.com"])
def test_wrong_mac_after_newkeys(
    server: ServerHarness, caplog: pytest.LogCaptureFixture, cipher: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="geossh")
    mac = "" if "chacha" in cipher else "hmac-sha2-256-etm@openssh.com"
    hostile = RawClient(server.start().port, ClientOptions(cipher=cipher, mac=mac))
    with gevent.Timeout(BOUND):
        hostile.handshake()
        packet = bytearray(hostile.ssh.encode(service_request()))
        packet[-1] ^= 0x80
        hostile.send(bytes(packet))
        assert hostile.disconnect_reason() == REASON.MAC_ERROR
    assert_logged(server, caplog, REASON.MAC_ERROR)
    assert_good_client_served(server)


# -- key exchange ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        ClientOptions(kex=("diffie-hellman-group1-sha1",)),
        ClientOptions(cipher="3des-cbc"),
        ClientOptions(host_key=("ssh-dss",)),
        ClientOptions(kex=()),
    ],
    ids=["kex", "cipher", "hostkey", "empty"],
)
def test_no_common_algorithm(
    server: ServerHarness, hostile: RawClient, caplog: pytest.LogCaptureFixture,
    options: ClientOptions,
) -> None:  # fmt: skip
    hostile.send(hostile.ssh.hello())
    hostile.send_msg(kexinit_payload(options))
    assert hostile.disconnect_reason() == REASON.KEY_EXCHANGE_FAILED
    assert_logged(server, caplog, REASON.KEY_EXCHANGE_FAILED)


@pytest.mark.parametrize(
    "point", [bytes(32), b"\x01" + bytes(31), bytes(31)], ids=["zero", "order-1", "short"]
)
def test_invalid_x25519_point(
    server: ServerHarness, hostile: RawClient, caplog: pytest.LogCaptureFixture, point: bytes
) -> None:
    hostile.send(hostile.ssh.hello())
    hostile.send_msg(hostile.ssh.kexinit)
    hostile.send_msg(hostile.ssh.ecdh_init(point))
    assert hostile.disconnect_reason() == REASON.KEY_EXCHANGE_FAILED
    assert_logged(server, caplog, REASON.KEY_EXCHANGE_FAILED)


@needs_sntrup
@pytest.mark.parametrize("kex", ["sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com"])
@pytest.mark.parametrize(
    "c_init",
    [bytes(32), bytes(1158), b"\xa5" * 1189, b"\xa5" * 1191, b"\xa5" * 1158 + bytes(32)],
    ids=["x25519-only", "kem-only", "short", "long", "zero-x25519"],
)
def test_invalid_sntrup761_init(
    server: ServerHarness, hostile: RawClient, caplog: pytest.LogCaptureFixture,
    kex: str, c_init: bytes,
) -> None:  # fmt: skip
    """Wrong sizes and a low-order X25519 half: DISCONNECT key exchange failed, no traceback."""
    hostile.ssh = KexClient(ClientOptions(kex=(kex,)))
    hostile.send(hostile.ssh.hello())
    hostile.send_msg(hostile.ssh.kexinit)
    hostile.send_msg(hostile.ssh.ecdh_init(c_init))  # HYBRID_INIT is message 30 too
    assert hostile.disconnect_reason() == REASON.KEY_EXCHANGE_FAILED
    assert_logged(server, caplog, REASON.KEY_EXCHANGE_FAILED)
    assert "Traceback" not in caplog.text
    assert server.transports[0]._conn.transport.negotiated.kex == kex  # refused by the method


# -- message numbers and roles -----------------------------------------------------------------
def test_unknown_message_gets_unimplemented(server: ServerHarness, hostile: RawClient) -> None:
    """paramiko drops the connection on an unknown number; geossh answers and goes on."""
    hostile.handshake()
    for msg in (200, 15, 255):
        seq = hostile.ssh.writer.sequence
        hostile.send_msg(bytes((msg,)) + b"whatever")
        assert Reader(hostile.wait_for(MSG.UNIMPLEMENTED), 1).u32() == seq
    hostile.authenticate()
    hostile.send_msg(b"\xc8")
    hostile.wait_for(MSG.UNIMPLEMENTED)
    hostile.send_msg(channel_open())
    hostile.wait_for(MSG.CHANNEL_OPEN_CONFIRMATION)
    assert server.transports[0].is_active()


def test_client_sent_userauth_success(
    server: ServerHarness, hostile: RawClient, caplog: pytest.LogCaptureFixture
) -> None:
    """CVE-2018-1000805: USERAUTH_SUCCESS from a client authenticates nothing."""
    hostile.handshake()
    hostile.send_msg(service_request())
    hostile.wait_for(MSG.SERVICE_ACCEPT)
    hostile.send_msg(bytes((MSG.USERAUTH_SUCCESS,)))
    hostile.wait_for(MSG.UNIMPLEMENTED)
    assert not server.transports[0].is_authenticated()
    hostile.send_msg(channel_open())
    assert hostile.disconnect_reason() == REASON.PROTOCOL_ERROR
    assert_logged(server, caplog, REASON.PROTOCOL_ERROR)


@pytest.mark.parametrize(
    "payload",
    [global_request(), channel_open(), bytes((MSG.CHANNEL_DATA,)) + u32(0) + string(b"x")],
    ids=["global", "open", "data"],
)
def test_connection_layer_before_auth(
    server: ServerHarness, hostile: RawClient, caplog: pytest.LogCaptureFixture, payload: bytes
) -> None:
    hostile.handshake()
    hostile.send_msg(payload)
    assert hostile.disconnect_reason() == REASON.PROTOCOL_ERROR
    assert_logged(server, caplog, REASON.PROTOCOL_ERROR)
    assert not getattr(server.servers[0], "events", None)  # the application was never asked
