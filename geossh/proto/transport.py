"""The SSH transport layer, server side (RFC 4253): version, kex, keys, generic messages.

Theory of operation
-------------------
Bytes arrive through ``receive_data``; ``next_packet`` decodes one packet at
a time and handles the transport's own messages itself (DISCONNECT, IGNORE,
DEBUG, UNIMPLEMENTED, KEXINIT, NEWKEYS and the method-specific kex messages
30-49), returning every other packet to the caller. Outgoing payloads go
through ``send``; between our KEXINIT and our NEWKEYS only transport and kex
messages go out, everything else is held and flushed after NEWKEYS
(RFC 4253 §7.1).

Handshake timing: the version line goes out at once, our first KEXINIT only
in reply to the client's (or ``kexinit_wait`` after its version line, for
clients that wait for ours, and at once for those known to), and EXT_INFO
in reply to the client's first NEWKEYS. So each flight the client sends in
the handshake is answered by one of ours: a client whose TCP uses Nagle's
algorithm (OpenSSH's does until the session is interactive) never waits for
our delayed ACK to release its next message (a 40 ms stall per hole on
Linux).

Key exchange state (``KexState``)::

    IDLE --(we send KEXINIT: start or re-key)--> KEXINIT_SENT
    IDLE --(peer KEXINIT: we answer with ours)--> EXCHANGING
    KEXINIT_SENT --(peer KEXINIT)--> EXCHANGING
    EXCHANGING --(method done: reply + our NEWKEYS sent)--> AWAIT_NEWKEYS
    AWAIT_NEWKEYS --(peer NEWKEYS)--> IDLE

Any other (state, message) pair is a protocol error. Strict kex
(OpenSSH PROTOCOL §1.10, the Terrapin fix): when both sides offer it, the
peer's KEXINIT must be packet 0, nothing but kex messages may arrive during
the initial exchange, and both sequence numbers restart at every NEWKEYS.

Input rules (RFC 4253 §7.1, §11): until its first NEWKEYS, and from any
later KEXINIT to its NEWKEYS, the peer may send only messages 1-49 (no
SERVICE_REQUEST); unassigned numbers in 8-19 and 22-29 get UNIMPLEMENTED in
any state. EXT_INFO from the client is refused: we never offer ext-info-s
(RFC 8308 §2.1). Ours goes out once, right after our first NEWKEYS, when the
client offered ext-info-c (sent when its NEWKEYS arrives, still the first
packet after our NEWKEYS). An event (version, kex done, disconnect) stops
decoding, so the driver sees it before the next packet is read.

Resource bounds: held output may contain at most ``MAX_HELD_CONTROL``
non-data messages, so a peer that provokes replies while it ignores our
KEXINIT cannot grow memory (CVE-2025-26466 in OpenSSH). The version line and
the initial key exchange have absolute deadlines from the connection's
start; a re-key must end ``handshake_timeout`` after it began. Errors found
outside ``next_packet`` (version line, held-output overflow) are raised by
the next ``next_packet``, so ``receive_data`` itself never raises.

Pure: no gevent, sockets, threads or clocks; time arrives as ``now``.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable

from geossh.proto import wire
from geossh.proto.algorithms import (
    KEY_TYPE_FOR_ALGORITHM,
    KexInit,
    Negotiated,
    decode_kexinit,
    negotiate_kexinits,
    server_kexinit,
)
from geossh.proto.cipher import CIPHERS, key_sizes
from geossh.proto.config import ServerConfig
from geossh.proto.constants import MSG, DisconnectReason
from geossh.proto.errors import LocalProtocolError, MessageOrderError, RemoteProtocolError
from geossh.proto.events import DisconnectReceived, Event, KexCompleted, VersionReceived
from geossh.proto.kex import KexContext, ServerKex, create_server_kex, derive_key
from geossh.proto.keys import SSHKey
from geossh.proto.packet import DirectionKeys, PacketReader, PacketWriter
from geossh.proto.version import VersionParser

_log = logging.getLogger("geossh.transport")

# Messages allowed out while a key exchange holds everything else back.
_KEX_SAFE_OUT = frozenset({1, 2, 3, 4, 20, 21, *range(30, 50)})
_AEAD = frozenset(name for name, info in CIPHERS.items() if info.is_aead)
# Transport-range numbers no RFC assigns: answered with UNIMPLEMENTED, even
# during a key exchange, which allows messages 1-29 (RFC 4253 §7.1, §11.4).
_UNASSIGNED_TRANSPORT = frozenset({*range(8, 20), *range(22, 30)})
# During the strict initial key exchange only these may arrive (OpenSSH
# PROTOCOL §1.10): DISCONNECT, KEXINIT, NEWKEYS and the method's messages.
_STRICT_ALLOWED = frozenset({1, 20, 21, *range(30, 50)})
_DATA_MESSAGES = frozenset({MSG.CHANNEL_DATA, MSG.CHANNEL_EXTENDED_DATA})
# Non-data messages we may hold back while a key exchange runs. Replies the
# peer provokes (channel/global request replies) would otherwise pile up
# without bound while it delays its KEXINIT (the ping-during-kex problem,
# CVE-2025-26466); past this many the connection ends.
MAX_HELD_CONTROL = 1024
#: Longest host key blob read from a hostkeys-prove request (RSA 16384 is ~2 KiB).
MAX_HOST_KEY_BLOB = 16 * 1024
# EXT_INFO payloads by (server-sig-algs, hostbound, ping): built once, not per connection.
_EXT_INFO: dict[tuple[tuple[str, ...], bool, bool], bytes] = {}


class KexState(enum.Enum):
    """Where the key exchange stands (see the module docstring)."""

    IDLE = "idle"
    KEXINIT_SENT = "kexinit-sent"
    EXCHANGING = "exchanging"
    AWAIT_NEWKEYS = "await-newkeys"


class _HostKeySigner:
    """Signs the exchange hash with the host key of the negotiated algorithm."""

    def __init__(self, key: SSHKey, algorithm: str) -> None:
        self.public_blob = key.public_blob
        self._key = key
        self._algorithm = algorithm

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, self._algorithm)


class TransportLayer:
    """Server-side transport protocol state for one connection."""

    def __init__(self, config: ServerConfig, events: deque[Event], now: float) -> None:
        self.config = config
        self.events = events
        self.reader = PacketReader(config.max_packet_size)
        self.writer = PacketWriter()
        self.now = now
        self.started_at = now
        self.client_version: str | None = None
        self.session_id: bytes | None = None
        self._host_key_blob: bytes | None = None
        self.negotiated: Negotiated | None = None  # of the latest KEXINIT exchange
        self.in_effect: Negotiated | None = None  # what the current keys use (since NEWKEYS)
        self.initial_kex_done = False
        self.strict_kex = False
        self.closed = False
        self.kex_state = KexState.IDLE
        self._version: VersionParser | None = VersionParser(
            config.max_version_line, config.max_pre_version_lines
        )
        self.writer.queue_raw(config.server_version.encode("ascii") + b"\r\n")
        self._held: list[bytes] = []
        self._held_control = 0
        # An error found outside ``next_packet`` (a bad version line, too
        # much held output), raised by the next ``next_packet`` call.
        self._failure: RemoteProtocolError | None = None
        # When the running key exchange began; None until a clock reading
        # follows a KEXINIT sent outside input handling (see ``_stamp``).
        self._kex_started_at: float | None = now
        self._server_kexinit: KexInit | None = None
        self._server_kexinit_bytes = b""
        self._client_kexinit_bytes = b""
        self._kex: ServerKex | None = None
        self._ignore_guessed_packet = False
        self._pending_in_keys: DirectionKeys | None = None
        self._keys_at = now
        # When our first KEXINIT goes out unasked; None while not yet known
        # (no client version) or once it has been sent.
        self._kexinit_due: float | None = None
        self._ext_info_due = False

    # -- input ----------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the peer; errors surface from ``next_packet``."""
        self._stamp(now)
        if self.closed or self._failure is not None:
            return
        if self._version is None:
            self.reader.feed(data)
            return
        try:
            result = self._version.feed(data)
        except RemoteProtocolError as exc:
            self._failure = exc
            self._version = None
            return
        if result is None:
            return
        self.client_version, leftover = result
        self._version = None  # its buffer is no longer needed
        self.events.append(VersionReceived(self.client_version))
        if _waits_for_server_kexinit(self.client_version):
            self._send_kexinit(now)
        else:
            self._kexinit_due = now + self.config.kexinit_wait
        if leftover:
            self.reader.feed(leftover)

    @property
    def input_pending(self) -> bool:
        """False when ``next_packet`` certainly returns None: no bytes, no error to raise."""
        return self.reader.buffered > 0 or self._failure is not None

    def next_packet(self) -> tuple[int, bytes] | None:
        """Decode packets until one is not the transport's own; None if none is ready."""
        reader = self.reader
        while not self.closed:
            if self._failure is not None:
                raise self._failure
            if self.client_version is None:
                return None
            packet = reader.next_packet()
            if packet is None:
                return None
            seq, payload = packet
            if not payload:
                raise RemoteProtocolError("empty packet")
            if payload[0] >= 50 and not self.peer_in_kex:
                # A higher layer's message while the peer is not exchanging
                # keys (the data path): nothing for ``_handle_own`` to check.
                if reader.bytes_since_keys > self.config.rekey_bytes:
                    self._check_rekey_volume(self.now)
                return packet
            if not self._handle_own(seq, payload):
                self._check_rekey_volume(self.now)
                return packet
            if self.events:
                return None  # let the driver see it before the next packet is read
        return None

    def _handle_own(self, seq: int, payload: bytes) -> bool:
        """Handle a transport-layer packet; False if it belongs to a higher layer."""
        msg = payload[0]
        if self.strict_kex and not self.initial_kex_done and msg not in _STRICT_ALLOWED:
            raise MessageOrderError(f"message {msg} during strict initial key exchange")
        handler = _HANDLERS.get(msg)
        if handler is not None:
            handler(self, seq, payload)
        elif 30 <= msg < 50:
            self._on_kex_message(payload)
        elif msg in _UNASSIGNED_TRANSPORT:
            self.send_unimplemented(seq)
        elif self.peer_in_kex:
            # RFC 4253 §7.1: from its KEXINIT to its NEWKEYS the peer sends
            # transport and kex messages only (and no SERVICE_REQUEST).
            raise RemoteProtocolError(f"message {msg} not allowed during key exchange")
        else:
            return False
        return True

    @property
    def peer_in_kex(self) -> bool:
        """True until the peer's first NEWKEYS, and from its KEXINIT to its NEWKEYS."""
        return not self.initial_kex_done or self.kex_state in (
            KexState.EXCHANGING,
            KexState.AWAIT_NEWKEYS,
        )

    # -- output -----------------------------------------------------------------
    def send(self, payload: bytes) -> None:
        """Queue one message; non-kex messages wait while a key exchange runs."""
        if self.closed:
            return
        if self.sending_blocked and payload[0] not in _KEX_SAFE_OUT:
            self._hold(payload)
            return
        self._encode_out(payload)

    def send_data(self, head: bytes, data: memoryview) -> None:
        """Queue a channel data message: ``head`` followed by ``data`` (copied once)."""
        if self.closed:
            return
        if self.sending_blocked:
            self._hold(b"".join((head, data)))
            return
        writer = self.writer
        writer.queue(head, data)
        if writer.bytes_since_keys > self.config.rekey_bytes:
            self._check_rekey_volume(self.now)

    def _encode_out(self, payload: bytes) -> None:
        """Encode a non-kex message now; start compression or a re-key when due.

        The volume check runs per packet, so a re-key starts at the configured
        byte count even when a whole channel window is encoded in one go.
        """
        if self._ext_info_due:
            self._send_ext_info()
        self.writer.queue(payload)
        if payload[0] == MSG.USERAUTH_SUCCESS:
            self._start_delayed_compression()
        elif self.writer.bytes_since_keys > self.config.rekey_bytes:
            self._check_rekey_volume(self.now)

    def _hold(self, payload: bytes) -> None:
        """Keep a message until our NEWKEYS, bounding peer-provoked replies."""
        self._held.append(payload)
        if payload[0] in _DATA_MESSAGES:
            return  # bounded by the channel windows the peer granted
        self._held_control += 1
        if self._held_control > MAX_HELD_CONTROL and self._failure is None:
            self._failure = RemoteProtocolError(
                f"more than {MAX_HELD_CONTROL} replies held back during key exchange"
            )

    def _start_delayed_compression(self) -> None:
        """zlib@openssh.com starts right after USERAUTH_SUCCESS is encoded (both ways)."""
        self.writer.enable_delayed_compression()
        self.reader.enable_delayed_compression()

    def send_many(self, payloads: list[bytes]) -> None:
        """Queue several messages in order."""
        for payload in payloads:
            self.send(payload)

    def data_to_send(self) -> bytes:
        """Everything encoded since the last call, ready for one ``sendall``."""
        self._check_rekey_volume(None)
        return self.writer.take()

    def output(self) -> memoryview:
        """A view of the queued output (no copy): write it, then call ``output_sent``.

        Release the view before anything else is queued (the buffer grows).
        """
        self._check_rekey_volume(None)
        return self.writer.output()

    def output_sent(self, count: int) -> None:
        """The first ``count`` bytes of ``output()`` were written."""
        self.writer.sent(count)

    @property
    def sending_blocked(self) -> bool:
        """True while user data must wait for the key exchange to finish."""
        if self.kex_state is KexState.IDLE:
            return not self.initial_kex_done
        return self.kex_state is not KexState.AWAIT_NEWKEYS

    def send_disconnect(self, code: int, description: str) -> None:
        """Send SSH_MSG_DISCONNECT (RFC 4253 §11.1) and stop."""
        if self.closed:
            return
        payload = (
            bytes((MSG.DISCONNECT,)) + wire.u32(code) + wire.string(description) + wire.string(b"")
        )
        self.writer.queue(payload)
        self.closed = True

    def send_unimplemented(self, seq: int) -> None:
        """Answer a packet we do not understand (RFC 4253 §11.4)."""
        self.send(bytes((MSG.UNIMPLEMENTED,)) + wire.u32(seq))

    def send_ignore(self, data: bytes) -> None:
        """Send SSH_MSG_IGNORE carrying ``data``."""
        self.send(bytes((MSG.IGNORE,)) + wire.string(data))

    def start_rekey(self, now: float | None = None) -> None:
        """Begin a server-initiated key re-exchange (no-op if one runs).

        Its deadline counts from ``now``, or from the next clock reading the
        core gets (``receive_data``/``handle_timer``) when ``now`` is None.
        """
        if not self.initial_kex_done:
            raise LocalProtocolError("initial key exchange has not completed")
        if self.kex_state is KexState.IDLE and not self.closed:
            self._send_kexinit(now)

    # -- timers -------------------------------------------------------------------
    def deadline(self) -> float | None:
        """The next moment ``handle_timer`` must run, or None.

        The version and the initial key exchange have absolute deadlines
        counted from the start of the connection, so a peer trickling bytes
        cannot extend them; a re-key must finish ``handshake_timeout`` after
        it began.
        """
        cfg = self.config
        if self.closed:
            return None
        if self.client_version is None:
            return self.started_at + cfg.banner_timeout
        if not self.initial_kex_done:
            timeout = self.started_at + cfg.banner_timeout + cfg.handshake_timeout
            if self._kexinit_due is not None:
                return min(self._kexinit_due, timeout)
            return timeout
        if self.kex_state is not KexState.IDLE:
            if self._kex_started_at is None:
                return self.now  # due now: the next clock reading starts the count
            return self._kex_started_at + cfg.handshake_timeout
        if cfg.rekey_seconds is not None:
            return self._keys_at + cfg.rekey_seconds
        return None

    def check_deadlines(self, now: float) -> None:
        """Raise ``RemoteProtocolError`` if a handshake deadline has passed at ``now``."""
        cfg = self.config
        if self.closed:
            return
        if self.client_version is None and now >= self.started_at + cfg.banner_timeout:
            raise RemoteProtocolError("timeout waiting for the identification line")
        if not self.initial_kex_done:
            if now >= self.started_at + cfg.banner_timeout + cfg.handshake_timeout:
                raise RemoteProtocolError(
                    "key exchange timed out", DisconnectReason.KEY_EXCHANGE_FAILED
                )
            return
        started = self._kex_started_at
        if self.kex_state is KexState.IDLE or started is None:
            return
        if now >= started + cfg.handshake_timeout:
            raise RemoteProtocolError(
                "key re-exchange timed out", DisconnectReason.KEY_EXCHANGE_FAILED
            )

    def handle_timer(self, now: float) -> None:
        """Act on expired deadlines: handshake timeouts and time-based re-key."""
        self._stamp(now)
        self.check_deadlines(now)
        cfg = self.config
        if self._kexinit_due is not None and now >= self._kexinit_due:
            self._send_kexinit(now)  # the client waits for ours
        if (
            self.initial_kex_done
            and cfg.rekey_seconds is not None
            and now >= self._keys_at + cfg.rekey_seconds
        ):
            self.start_rekey(now)

    # -- transport messages ---------------------------------------------------
    def _on_disconnect(self, seq: int, payload: bytes) -> None:
        reader = wire.Reader(payload, 1)
        code = reader.u32()
        description = reader.string(4096).decode("utf-8", "replace")
        self.closed = True
        self.events.append(DisconnectReceived(code, description))

    def _on_ignorable(self, seq: int, payload: bytes) -> None:
        if payload[0] == MSG.UNIMPLEMENTED and len(payload) >= 5:
            _log.debug("peer sent UNIMPLEMENTED for packet %d", wire.Reader(payload, 1).u32())

    def _on_ext_info(self, seq: int, payload: bytes) -> None:
        # RFC 8308 §2.1: a client may send EXT_INFO only to a server that
        # offered ext-info-s, which we never do; no slot is legal for it.
        raise RemoteProtocolError("EXT_INFO from the client, but ext-info-s was not offered")

    def _on_kexinit(self, seq: int, payload: bytes) -> None:
        if self.kex_state in (KexState.EXCHANGING, KexState.AWAIT_NEWKEYS):
            raise RemoteProtocolError("KEXINIT during a key exchange")
        client = decode_kexinit(payload)
        if self.kex_state is KexState.IDLE:
            self._send_kexinit(self.now)
        assert self._server_kexinit is not None
        negotiated = negotiate_kexinits(
            client, payload, self._server_kexinit, self._server_kexinit_bytes, _AEAD
        )
        if not self.initial_kex_done:
            self.strict_kex = negotiated.strict_kex
            if self.strict_kex and seq != 0:
                raise MessageOrderError("In strict-kex mode, but KEXINIT was not the first packet")
        self.negotiated = negotiated
        self._client_kexinit_bytes = payload
        self._kex = create_server_kex(negotiated.kex, self._kex_context(negotiated))
        self._ignore_guessed_packet = client.first_kex_follows and not negotiated.guess_was_right
        self.kex_state = KexState.EXCHANGING
        _log.debug("negotiated %s", negotiated)

    def _kex_context(self, negotiated: Negotiated) -> KexContext:
        key = self.config.host_keys[KEY_TYPE_FOR_ALGORITHM[negotiated.host_key]]
        assert self.client_version is not None
        return KexContext(
            client_version=self.client_version.encode("ascii"),
            server_version=self.config.server_version.encode("ascii"),
            client_kexinit=self._client_kexinit_bytes,
            server_kexinit=self._server_kexinit_bytes,
            host_key=_HostKeySigner(key, negotiated.host_key),
            moduli=self.config.moduli,
        )

    def _on_kex_message(self, payload: bytes) -> None:
        if self.kex_state is not KexState.EXCHANGING or self._kex is None:
            raise RemoteProtocolError(f"unexpected key exchange message {payload[0]}")
        if self._ignore_guessed_packet:
            # RFC 4253 §7: the client guessed wrong; drop its first kex packet.
            self._ignore_guessed_packet = False
            return
        if payload[0] not in self._kex.expected_messages():
            raise RemoteProtocolError(f"unexpected key exchange message {payload[0]}")
        for reply in self._kex.receive(payload[0], payload):
            self.writer.queue(reply)
        if self._kex.done:
            self._finish_kex(self._kex)

    def _finish_kex(self, kex: ServerKex) -> None:
        negotiated = self.negotiated
        assert negotiated is not None
        if self.session_id is None:
            self.session_id = kex.exchange_hash
            host_key = self.config.host_keys[KEY_TYPE_FOR_ALGORITHM[negotiated.host_key]]
            self._host_key_blob = host_key.public_blob
        out_keys = self._derive(kex, negotiated, outbound=True)
        self._pending_in_keys = self._derive(kex, negotiated, outbound=False)
        self.writer.queue(bytes((MSG.NEWKEYS,)))
        self.writer.set_keys(out_keys)
        if self.strict_kex:
            self.writer.reset_sequence()
        if not self.initial_kex_done and negotiated.client_ext_info and self.config.server_sig_algs:
            # RFC 8308 §2.4: the next packet after our first NEWKEYS. Sent in
            # reply to the client's NEWKEYS unless held output follows ours.
            self._ext_info_due = True
            if self._held:
                self._send_ext_info()
        self.kex_state = KexState.AWAIT_NEWKEYS
        self._kex = None
        held, self._held = self._held, []
        for payload in held:
            self._encode_out(payload)  # no re-key can start before the peer's NEWKEYS

    def _on_newkeys(self, seq: int, payload: bytes) -> None:
        if self.kex_state is not KexState.AWAIT_NEWKEYS or self._pending_in_keys is None:
            raise RemoteProtocolError("unexpected NEWKEYS")
        if len(payload) != 1:
            raise RemoteProtocolError("malformed NEWKEYS")
        self.reader.set_keys(self._pending_in_keys)
        if self.strict_kex:
            self.reader.reset_sequence()
        self._pending_in_keys = None
        if self._ext_info_due:
            self._send_ext_info()
        self.kex_state = KexState.IDLE
        self._keys_at = self.now
        # Only needed during the exchange: keep idle connections small.
        self._server_kexinit = None
        self._server_kexinit_bytes = self._client_kexinit_bytes = b""
        self._held_control = 0
        initial = not self.initial_kex_done
        self.initial_kex_done = True
        self.in_effect = self.negotiated
        self.events.append(KexCompleted(initial))
        # Data sent while the peer's NEWKEYS was on its way counts under the
        # new keys; if it already exceeds the limit, re-key again at once.
        self._check_rekey_volume(self.now)

    # -- helpers --------------------------------------------------------------
    def _stamp(self, now: float) -> None:
        """Record a clock reading; it starts the count of a key exchange begun without one."""
        self.now = now
        if self._kex_started_at is None and self.kex_state is not KexState.IDLE:
            self._kex_started_at = now

    def _send_kexinit(self, now: float | None) -> None:
        cfg = self.config
        self._server_kexinit, self._server_kexinit_bytes = server_kexinit(
            cfg.preferences,
            frozenset(cfg.host_keys),
            initial=not self.initial_kex_done,
            have_moduli=bool(cfg.moduli),
        )
        self._kexinit_due = None
        self.writer.queue(self._server_kexinit_bytes)
        self.kex_state = KexState.KEXINIT_SENT
        self._kex_started_at = now

    def _derive(self, kex: ServerKex, negotiated: Negotiated, *, outbound: bool) -> DirectionKeys:
        assert self.session_id is not None
        if outbound:
            cipher, mac, comp, letters = (
                negotiated.cipher_s2c, negotiated.mac_s2c, negotiated.compression_s2c, b"BDF",
            )  # fmt: skip
        else:
            cipher, mac, comp, letters = (
                negotiated.cipher_c2s, negotiated.mac_c2s, negotiated.compression_c2s, b"ACE",
            )  # fmt: skip
        iv_len, key_len, mac_len = key_sizes(cipher, mac or None)

        def make(letter: int, size: int) -> bytes:
            if size == 0:
                return b""
            assert self.session_id is not None
            return derive_key(
                kex.hash_name, kex.shared_secret, kex.exchange_hash,
                bytes((letter,)), self.session_id, size,
            )  # fmt: skip

        return DirectionKeys(
            cipher=cipher,
            mac=mac,
            compression=comp,
            iv=make(letters[0], iv_len),
            key=make(letters[1], key_len),
            mac_key=make(letters[2], mac_len),
        )

    def _send_ext_info(self) -> None:
        """Queue EXT_INFO, once: server-sig-algs (RFC 8308 §3.1) and OpenSSH's
        publickey-hostbound and ping extensions (PROTOCOL 3.1, 1.8)."""
        self._ext_info_due = False
        config = self.config
        key = (tuple(config.server_sig_algs), config.hostbound_auth, config.ping)
        payload = _EXT_INFO.get(key)
        if payload is None:  # the same for every connection of a configuration
            extensions = [(b"server-sig-algs", ",".join(key[0]).encode())]
            if config.hostbound_auth:
                extensions.append((b"publickey-hostbound@openssh.com", b"0"))
            if config.ping:
                extensions.append((b"ping@openssh.com", b"0"))
            body = b"".join(wire.string(name) + wire.string(value) for name, value in extensions)
            payload = bytes((MSG.EXT_INFO,)) + wire.u32(len(extensions)) + body
            if len(_EXT_INFO) >= 64:
                _EXT_INFO.clear()
            _EXT_INFO[key] = payload
        self.writer.queue(payload)

    @property
    def host_key_blob(self) -> bytes | None:
        """The public blob of the host key this connection's first kex proved."""
        return self._host_key_blob

    def announce_host_keys(self) -> None:
        """Send every plain host key we hold (``hostkeys-00@openssh.com``, no reply)."""
        blobs = [key.public_blob for key in self.config.host_keys.values()]
        if not blobs or not self.config.announce_host_keys:
            return
        self.send(
            bytes((MSG.GLOBAL_REQUEST,))
            + wire.string(b"hostkeys-00@openssh.com")
            + wire.boolean(False)
            + b"".join(wire.string(blob) for blob in blobs)
        )

    def prove_host_keys(self, data: bytes) -> bytes | None:
        """The REQUEST_SUCCESS body for ``hostkeys-prove-00@openssh.com``, or None.

        ``data`` holds key blobs; each must be one of ours (else None: the
        request fails, as sshd's does). Each gets a signature over the
        request name, the session id and the blob; RSA keys sign with the
        kex's RSA algorithm when that was one, else rsa-sha2-512.
        """
        ours = {key.public_blob: key for key in self.config.host_keys.values()}
        reader = wire.Reader(data, 0)
        proofs: list[bytes] = []
        try:
            while reader.remaining:
                if len(proofs) >= len(ours):
                    return None  # more keys than we hold: a repeat or a stranger
                key = ours.get(reader.string(MAX_HOST_KEY_BLOB))
                if key is None or self.session_id is None:
                    return None
                signed = (
                    wire.string(b"hostkeys-prove-00@openssh.com")
                    + wire.string(self.session_id)
                    + wire.string(key.public_blob)
                )
                proofs.append(wire.string(key.sign(signed, self._proof_algorithm(key))))
        except RemoteProtocolError:
            return None
        return b"".join(proofs)

    def _proof_algorithm(self, key: SSHKey) -> str | None:
        negotiated = self.negotiated
        if negotiated is not None and negotiated.host_key in key.signature_algorithms():
            return negotiated.host_key
        return None  # the key's default (rsa-sha2-512 for RSA)

    def _check_rekey_volume(self, now: float | None) -> None:
        if self.kex_state is not KexState.IDLE or not self.initial_kex_done or self.closed:
            return
        limit = self.config.rekey_bytes
        if self.reader.bytes_since_keys > limit or self.writer.bytes_since_keys > limit:
            _log.debug("re-keying after %d bytes", limit)
            self._send_kexinit(now)


# Clients that send their KEXINIT only after reading ours (older JSch and its
# ports): they get ours with their version line instead of after a wait.
_KEXINIT_WAITERS = ("JSCH", "SharpSSH")


def _waits_for_server_kexinit(client_version: str) -> bool:
    software = client_version.split("-", 2)[-1].upper()
    return any(name.upper() in software for name in _KEXINIT_WAITERS)


# The transport's own messages (one table per class, not per connection).
_HANDLERS: dict[int, Callable[[TransportLayer, int, bytes], None]] = {
    MSG.DISCONNECT: TransportLayer._on_disconnect,
    MSG.IGNORE: TransportLayer._on_ignorable,
    MSG.DEBUG: TransportLayer._on_ignorable,
    MSG.UNIMPLEMENTED: TransportLayer._on_ignorable,
    MSG.EXT_INFO: TransportLayer._on_ext_info,
    MSG.KEXINIT: TransportLayer._on_kexinit,
    MSG.NEWKEYS: TransportLayer._on_newkeys,
}
