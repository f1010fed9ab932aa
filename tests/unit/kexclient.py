"""A small SSH *client* core for tests, and a server ``Connection`` paired with it.

``KexClient`` does what a real client does, one step at a time: the version
line, KEXINIT, curve25519-sha256 (RFC 8731) with the host-key signature
checked, NEWKEYS (strict kex when both offer it), and then any payload the
test writes, protected with geossh's own ``PacketWriter``/``PacketReader``
and ``derive_key``. ``Session`` wires it to a server ``Connection`` in memory
with a test-controlled clock, answers the core's events like a minimal
application, and can stop in any state in ``STATES`` so a test can inject
bad bytes exactly there. No sockets, no gevent, no sleeping.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from geossh.errors import RemoteProtocolError
from geossh.proto import keys as ssh_keys
from geossh.proto.algorithms import STRICT_KEX_CLIENT, STRICT_KEX_SERVER, KexInit
from geossh.proto.cipher import CIPHERS, key_sizes
from geossh.proto.config import ServerConfig
from geossh.proto.connection import Connection
from geossh.proto.constants import MSG
from geossh.proto.events import (
    AuthRequested,
    ChannelOpenRequested,
    ChannelRequestReceived,
    Event,
    GlobalRequestReceived,
)
from geossh.proto.kex import derive_key
from geossh.proto.packet import DirectionKeys, PacketReader, PacketWriter
from geossh.proto.version import VersionParser
from geossh.proto.wire import Reader, boolean, mpint_from_unsigned, string, u32

CLIENT_VERSION = "SSH-2.0-kexclient_1.0"
USER = "alice"
PASSWORD = "secret"

#: Where a ``Session`` can stop, in protocol order.
STATES = (
    "pre-version",  # nothing sent yet
    "pre-kexinit",  # version line sent
    "kexinit-sent",  # client KEXINIT sent; the server is exchanging
    "await-newkeys",  # ECDH_INIT sent; the server replied and sent NEWKEYS
    "keyed",  # client NEWKEYS sent: both directions protected
    "userauth",  # ssh-userauth accepted
    "authenticated",  # USERAUTH_SUCCESS received
    "channel-open",  # a session channel is open (server id 0)
)


@cache
def host_key() -> ssh_keys.SSHKey:
    """One Ed25519 host key for the whole test run."""
    return ssh_keys.generate("ssh-ed25519")


def server_config(**overrides: Any) -> ServerConfig:
    """A server configuration with the shared host key (tests override timeouts)."""
    overrides.setdefault("host_keys", {"ssh-ed25519": host_key()})
    return ServerConfig(**overrides)


@dataclass(frozen=True)
class ClientOptions:
    """What the client offers; one cipher and MAC so the outcome is known."""

    kex: tuple[str, ...] = ("curve25519-sha256",)
    host_key: tuple[str, ...] = ("ssh-ed25519",)
    cipher: str = "aes128-ctr"
    mac: str = "hmac-sha2-256-etm@openssh.com"
    strict: bool = True
    ext_info: bool = True
    first_kex_follows: bool = False


def kexinit_payload(options: ClientOptions, cookie: bytes = bytes(16)) -> bytes:
    """The client's KEXINIT payload for ``options``."""
    kex = list(options.kex)
    kex += ["ext-info-c"] if options.ext_info else []
    kex += [STRICT_KEX_CLIENT] if options.strict else []
    macs = [options.mac] if options.mac else []
    return KexInit(
        cookie=cookie,
        kex=kex,
        host_key=list(options.host_key),
        ciphers_c2s=[options.cipher],
        ciphers_s2c=[options.cipher],
        macs_c2s=macs,
        macs_s2c=macs,
        compression_c2s=["none"],
        compression_s2c=["none"],
        languages_c2s=[],
        languages_s2c=[],
        first_kex_follows=options.first_kex_follows,
    ).encode()


class KexClient:
    """The client half: builds packets and reads the server's, keys and all."""

    def __init__(self, options: ClientOptions | None = None) -> None:
        self.options = options or ClientOptions()
        self.writer = PacketWriter()
        self.reader = PacketReader()
        self.kexinit = kexinit_payload(self.options)
        self.server_version: str | None = None
        self.server_kexinit = b""
        self.session_id: bytes | None = None
        self.strict = False
        self.received: list[bytes] = []
        self._version: VersionParser | None = VersionParser()
        self._x25519 = X25519PrivateKey.generate()
        self._q_c = self._x25519.public_key().public_bytes_raw()
        self._keys: tuple[DirectionKeys, DirectionKeys] | None = None

    # -- building --------------------------------------------------------------
    def hello(self) -> bytes:
        """The identification line."""
        return CLIENT_VERSION.encode() + b"\r\n"

    def encode(self, payload: bytes) -> bytes:
        """One packet, protected with the client's current keys."""
        return self.writer.encode(payload)

    def ecdh_init(self, q_c: bytes | None = None) -> bytes:
        """SSH_MSG_KEX_ECDH_INIT (RFC 5656 §4) with our value, or ``q_c``."""
        return bytes((MSG.KEX_30,)) + string(self._q_c if q_c is None else q_c)

    def newkeys(self) -> bytes:
        """Our NEWKEYS packet; later packets use the new keys (needs the reply)."""
        assert self._keys is not None, "the server's ECDH reply has not arrived"
        data = self.encode(bytes((MSG.NEWKEYS,)))
        self.writer.set_keys(self._keys[0])
        if self.strict:
            self.writer.reset_sequence()
        return data

    def rekey(self) -> bytes:
        """A fresh KEXINIT payload that starts a key re-exchange."""
        self.kexinit = kexinit_payload(replace(self.options, strict=False, ext_info=False))
        self._x25519 = X25519PrivateKey.generate()
        self._q_c = self._x25519.public_key().public_bytes_raw()
        self._keys = None
        return self.kexinit

    def seal_raw(self, packet: bytes) -> bytes:
        """Protect a hand-made ``packet`` (length, padding length, payload, padding)."""
        writer = self.writer
        wire = writer._protection.seal(writer.sequence, packet)
        writer.sequence = (writer.sequence + 1) & 0xFFFFFFFF
        return wire

    # -- reading ---------------------------------------------------------------
    def feed(self, data: bytes) -> list[bytes]:
        """Read server bytes; return the payloads that completed."""
        if self._version is not None:
            result = self._version.feed(data)
            if result is None:
                return []
            self.server_version, data = result
            self._version = None
        self.reader.feed(data)
        out: list[bytes] = []
        while (packet := self.reader.next_packet()) is not None:
            payload = packet[1]
            out.append(payload)
            self._on_packet(payload)
        self.received += out
        return out

    def _on_packet(self, payload: bytes) -> None:
        msg = payload[0]
        if msg == MSG.KEXINIT:
            self.server_kexinit = payload
            if self.session_id is None:  # strict kex is agreed in the first exchange
                server = KexInit.decode(payload)
                self.strict = self.options.strict and STRICT_KEX_SERVER in server.kex
        elif msg == MSG.KEX_31 and self._keys is None:
            self._on_reply(payload)
        elif msg == MSG.NEWKEYS:
            assert self._keys is not None
            self.reader.set_keys(self._keys[1])
            if self.strict:
                self.reader.reset_sequence()

    def _on_reply(self, payload: bytes) -> None:
        reader = Reader(payload, 1)
        k_s, q_s, signature = reader.string(), reader.string(), reader.string()
        reader.check_end()
        shared = self._x25519.exchange(X25519PublicKey.from_public_bytes(q_s))
        k = mpint_from_unsigned(shared)
        assert self.server_version is not None
        hashed = [CLIENT_VERSION.encode(), self.server_version.encode(), self.kexinit]
        hashed += [self.server_kexinit, k_s, self._q_c, q_s]
        h = hashlib.sha256(b"".join(string(part) for part in hashed) + k).digest()
        if not ssh_keys.public_key_from_blob(k_s).verify(h, signature, "ssh-ed25519"):
            raise AssertionError("bad host-key signature over H")
        self.session_id = self.session_id or h
        self._keys = (self._derive(k, h, b"ACE"), self._derive(k, h, b"BDF"))

    def _derive(self, k: bytes, h: bytes, letters: bytes) -> DirectionKeys:
        cipher, mac = self.options.cipher, self.options.mac
        if CIPHERS[cipher].is_aead:
            mac = ""
        iv_len, key_len, mac_len = key_sizes(cipher, mac or None)
        assert self.session_id is not None
        iv, key, mac_key = (
            derive_key("sha256", k, h, bytes((letter,)), self.session_id, size) if size else b""
            for letter, size in zip(letters, (iv_len, key_len, mac_len), strict=True)
        )
        return DirectionKeys(cipher, mac, "none", iv, key, mac_key)


# -- message builders --------------------------------------------------------------------------
def service_request(name: str = "ssh-userauth") -> bytes:
    return bytes((MSG.SERVICE_REQUEST,)) + string(name)


def password_request(password: str = PASSWORD, user: str = USER) -> bytes:
    return (
        bytes((MSG.USERAUTH_REQUEST,))
        + string(user)
        + string("ssh-connection")
        + string("password")
        + boolean(False)
        + string(password)
    )


def channel_open(sender: int = 7, window: int = 1 << 20, max_packet: int = 32768) -> bytes:
    return (
        bytes((MSG.CHANNEL_OPEN,)) + string("session") + u32(sender) + u32(window) + u32(max_packet)
    )


def channel_request(kind: str = "env", want_reply: bool = True, recipient: int = 0) -> bytes:
    return bytes((MSG.CHANNEL_REQUEST,)) + u32(recipient) + string(kind) + boolean(want_reply)


def channel_data(data: bytes, recipient: int = 0) -> bytes:
    return bytes((MSG.CHANNEL_DATA,)) + u32(recipient) + string(data)


def global_request(kind: str = "ping@example.com", want_reply: bool = True) -> bytes:
    return bytes((MSG.GLOBAL_REQUEST,)) + string(kind) + boolean(want_reply)


def ignore(data: bytes = b"") -> bytes:
    return bytes((MSG.IGNORE,)) + string(data)


def disconnect_reason(payload: bytes) -> int:
    """The reason code of a DISCONNECT payload."""
    assert payload[0] == MSG.DISCONNECT, payload[:1]
    return Reader(payload, 1).u32()


@dataclass
class Session:
    """A server ``Connection`` and a ``KexClient`` back to back, on a test clock.

    Events are answered like a minimal application: the password
    ``PASSWORD`` succeeds, session channels are accepted, channel and
    global requests are refused. ``sent`` records every client byte chunk and
    ``sent_payloads`` the plaintext messages, for replay and mutation.
    """

    config: ServerConfig = field(default_factory=server_config)
    options: ClientOptions = field(default_factory=ClientOptions)
    now: float = 0.0

    def __post_init__(self) -> None:
        self.conn = Connection(self.config, self.now)
        self.client = KexClient(self.options)
        self.events: list[Event] = []
        self.sent: list[bytes] = []
        self.sent_payloads: list[bytes] = []
        self.state = "pre-version"

    @property
    def replies(self) -> list[bytes]:
        """Every payload the client has received."""
        return self.client.received

    # -- moving bytes -----------------------------------------------------------
    def to_server(self, data: bytes) -> list[Event]:
        """Feed raw bytes to the server; return the events, deliver its output."""
        self.sent.append(data)
        self.conn.receive_data(data, self.now)
        events = self.drain()
        self.deliver()
        return events

    def send(self, payload: bytes) -> list[Event]:
        """Send one message with the client's current keys."""
        self.sent_payloads.append(payload)
        return self.to_server(self.client.encode(payload))

    def drain(self) -> list[Event]:
        """Every event the server core has ready, each answered."""
        out: list[Event] = []
        for _ in range(10_000):
            event = self.conn.next_event()
            if event is None:
                self.events += out
                return out
            out.append(event)
            self._answer(event)
        raise AssertionError("the core produced events without end")

    def deliver(self) -> list[bytes]:
        """Hand the server's output to the client; return the new payloads."""
        return self.client.feed(self.conn.data_to_send())

    def fail(self, exc: RemoteProtocolError) -> int:
        """Act like the driver after an error: send DISCONNECT; return its reason."""
        self.conn.send_disconnect(exc.code, str(exc))
        last = self.deliver()[-1]
        return disconnect_reason(last)

    def _answer(self, event: Event) -> None:
        conn = self.conn
        if isinstance(event, AuthRequested):
            ok = event.details.get("password") == PASSWORD
            conn.auth.answer(0 if ok else 2, "password")
        elif isinstance(event, ChannelOpenRequested):
            conn.channels.accept_channel(event.channel_id)
        elif isinstance(event, ChannelRequestReceived) and event.want_reply:
            conn.channels.reply_channel_request(event.channel_id, False)
        elif isinstance(event, GlobalRequestReceived) and event.want_reply:
            conn.channels.reply_global_request(False)

    def rekey(self) -> list[Event]:
        """A complete client-initiated key re-exchange."""
        events = self.send(self.client.rekey())
        events += self.send(self.client.ecdh_init())
        return events + self.to_server(self.client.newkeys())

    # -- reaching a state ----------------------------------------------------------
    def advance(self, state: str) -> Session:
        """Perform the protocol steps up to ``state`` (see ``STATES``)."""
        steps = {
            "pre-kexinit": lambda: self.to_server(self.client.hello()),
            "kexinit-sent": lambda: self.send(self.client.kexinit),
            "await-newkeys": lambda: self.send(self.client.ecdh_init()),
            "keyed": lambda: self.to_server(self.client.newkeys()),
            "userauth": lambda: self.send(service_request()),
            "authenticated": lambda: self.send(password_request()),
            "channel-open": lambda: self.send(channel_open()),
        }
        target = STATES.index(state)
        while STATES.index(self.state) < target:
            following = STATES[STATES.index(self.state) + 1]
            steps[following]()
            self.state = following
        return self


def session_in(state: str, **kwargs: Any) -> Session:
    """A fresh ``Session`` advanced to ``state``."""
    return Session(**kwargs).advance(state)
