"""The connection protocol, server side (RFC 4254): global requests and channels.

Theory of operation
-------------------
Each channel has a local id (ours, from 0 upward, reused after close) and
moves through::

    OPENING (peer asked; awaiting accept/reject)   --accept--> OPEN
    REQUESTED (we asked; awaiting the peer)        --confirm--> OPEN
    OPEN --EOF either way--> OPEN (eof flags set)
    OPEN --CLOSE sent / received--> CLOSING --the other CLOSE--> freed

A channel is freed, and ``ChannelClosed`` emitted, once CLOSE has gone both
ways (RFC 4254 §5.3).

Bad input is answered as OpenSSH answers it: data, EOF, CLOSE or a request
for an id that is not open is a protocol error (DISCONNECT); a window adjust
or a request reply for an unknown id is logged and dropped; messages for a
channel we already closed are dropped, since they may have crossed our CLOSE
on the wire; data after the peer's EOF is dropped with a log line; data
beyond the advertised window or maximum packet, and a window adjust that
overflows 2^32-1, are protocol errors. Opens beyond ``max_channels`` get
OPEN_FAILURE(RESOURCE_SHORTAGE).

CHANNEL_DATA has a fast path that slices the payload without a general
decoder; one ``send_data`` call queues at most ``SEND_LIMIT`` bytes in at
most ``SEND_PACKETS`` packets, so that a peer granting a huge window, or
advertising a tiny maximum packet (1 byte: one packet per byte), cannot make
us encode unbounded output, or spend unbounded CPU, in one call. The peer's
maximum packet is honoured whatever it is, as OpenSSH does (channels.c sends
``min(buffered, remote_window, remote_maxpacket)`` per packet and paces by
its output buffer); the caller loops, yielding and flushing between calls.
Pure: no I/O.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections import deque
from collections.abc import Callable

from geossh.proto import wire
from geossh.proto.config import ServerConfig
from geossh.proto.constants import MSG, OpenFailure
from geossh.proto.errors import LocalProtocolError, RemoteProtocolError
from geossh.proto.events import (
    ChannelClosed,
    ChannelDataReceived,
    ChannelEOFReceived,
    ChannelOpenConfirmed,
    ChannelOpenFailed,
    ChannelOpenRequested,
    ChannelReplyReceived,
    ChannelRequestReceived,
    ChannelWindowOpened,
    Event,
    GlobalReplyReceived,
    GlobalRequestReceived,
)
from geossh.proto.transport import TransportLayer
from geossh.proto.window import InboundWindow, OutboundWindow

_log = logging.getLogger("geossh.channel")
#: OpenSSH's host key rotation (PROTOCOL 2.5): the client asks us to sign keys we announced.
HOSTKEYS_PROVE = "hostkeys-prove-00@openssh.com"
_HEAD = struct.Struct(">BII")
_EXT_HEAD = struct.Struct(">BIII")
_U32 = struct.Struct(">I")
_TWO_U32 = struct.Struct(">II")
_DATA_OVERHEAD = 9  # msg byte, recipient, length
_EXT_OVERHEAD = 13  # msg byte, recipient, data type, length
# Known channel types as shared strings: an open channel keeps its type.
_KINDS = {
    kind: kind
    for kind in (
        "session",
        "direct-tcpip",
        "forwarded-tcpip",
        "x11",
        "auth-agent@openssh.com",
        "direct-streamlocal@openssh.com",
    )
}
SEND_LIMIT = 256 * 1024  # most data one ``send_data`` call queues
SEND_PACKETS = 64  # most packets one ``send_data`` call queues (tiny peer max packets)


class ChannelPhase(enum.Enum):
    """The life of one channel (see the module docstring)."""

    OPENING = "opening"
    REQUESTED = "requested"
    OPEN = "open"
    CLOSING = "closing"


class ChannelState:
    """Protocol state of one channel."""

    __slots__ = (
        "close_received",
        "close_sent",
        "dropped_after_eof",
        "eof_received",
        "eof_sent",
        "inbound",
        "kind",
        "local_id",
        "outbound",
        "pending_replies",
        "phase",
        "remote_id",
    )

    def __init__(self, local_id: int, kind: str, inbound: InboundWindow) -> None:
        self.local_id = local_id
        self.kind = kind
        self.remote_id = -1
        self.phase = ChannelPhase.OPENING
        self.inbound = inbound
        self.outbound = OutboundWindow(0, 1)
        self.eof_received = self.eof_sent = False
        self.close_received = self.close_sent = False
        self.dropped_after_eof = 0
        self.pending_replies = 0

    @property
    def opened(self) -> bool:
        """True once the open was accepted or confirmed; it stays True after the close."""
        return self.phase is ChannelPhase.OPEN or self.phase is ChannelPhase.CLOSING


class ChannelLayer:
    """The channel table and global requests of one connection."""

    __slots__ = (
        "_awaited_replies",
        "_global_replies",
        "_next_id",
        "channels",
        "config",
        "events",
        "send_ahead",
        "transport",
    )

    def __init__(self, config: ServerConfig, transport: TransportLayer, events: deque[Event]):
        self.config = config
        self.transport = transport
        self.events = events
        self.channels: dict[int, ChannelState] = {}
        self._next_id = 0
        self.send_ahead = 0  # the send-ahead limit of new channels (proto/window.py)
        # Who awaits each reply to a global request we sent, oldest first:
        # True for the application, False for the core's own (liveness probes).
        self._awaited_replies: list[bool] | None = None  # created by the first
        # One entry per incoming request that wants a reply, oldest first: the
        # reply message, or None while the application has not answered.
        # Replies go out in request order (RFC 4254 §4).
        self._global_replies: deque[bytes | None] = deque()

    def handle(self, payload: bytes) -> bool:
        """Process one connection-layer message; False if unknown."""
        handler = _HANDLERS.get(payload[0])
        if handler is None:
            return False
        handler(self, payload)
        return True

    # -- lookup -----------------------------------------------------------------
    def _channel(self, payload: bytes, strict: bool = True) -> ChannelState | None:
        """The open channel a message names; None if it crossed our CLOSE.

        An id that is not open is a protocol error, or (``strict=False``, for
        window adjusts and request replies, as OpenSSH does) logged and None.
        """
        if len(payload) < 5:
            raise RemoteProtocolError(f"truncated {_name(payload[0])}")
        local_id = _U32.unpack_from(payload, 1)[0]
        chan = self.channels.get(local_id)
        if chan is None or chan.phase in (ChannelPhase.OPENING, ChannelPhase.REQUESTED):
            if strict:
                raise RemoteProtocolError(f"{_name(payload[0])} for nonexistent channel {local_id}")
            _log.info("ignoring %s for nonexistent channel %d", _name(payload[0]), local_id)
            return None
        if chan.close_sent and payload[0] != MSG.CHANNEL_CLOSE:
            return None  # crossed our CLOSE on the wire
        return chan

    def _allocate_id(self) -> int:
        while self._next_id in self.channels:
            self._next_id = (self._next_id + 1) & 0xFFFFFF
        local_id = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFF
        return local_id

    # -- global requests (RFC 4254 §4) ------------------------------------------
    def _on_global_request(self, payload: bytes) -> None:
        reader = wire.Reader(payload, 1)
        kind = reader.ascii(256)
        want_reply = reader.boolean()
        if want_reply and len(self._global_replies) >= self.config.max_pending_global_requests:
            raise RemoteProtocolError("too many global requests in flight")
        if kind == HOSTKEYS_PROVE and self.config.announce_host_keys:
            # Answered here: the proofs need the host keys' private halves.
            proofs = self.transport.prove_host_keys(reader.rest())
            if proofs is None:
                _log.info("hostkeys-prove request for a key we do not hold: refused")
            if want_reply:
                self._global_replies.append(_global_reply(proofs is not None, proofs or b""))
                self._send_ready_replies()
            return
        if want_reply:
            self._global_replies.append(None)
        self.events.append(GlobalRequestReceived(kind, want_reply, reader.rest()))

    def reply_global_request(self, success: bool, data: bytes = b"") -> None:
        """Answer the oldest global request that still awaits the application's reply."""
        replies = self._global_replies
        for index, reply in enumerate(replies):
            if reply is None:
                replies[index] = _global_reply(success, data)
                self._send_ready_replies()
                return
        raise LocalProtocolError("no global request awaits a reply")

    def _send_ready_replies(self) -> None:
        replies = self._global_replies
        while replies and replies[0] is not None:
            self.transport.send(replies.popleft())  # type: ignore[arg-type]

    def send_global_request(
        self, kind: str, want_reply: bool, data: bytes = b"", *, internal: bool = False
    ) -> None:
        """Send a GLOBAL_REQUEST (e.g. a keepalive).

        The reply to an ``internal`` request (the core's own probe) is taken
        here and gives no event, so the application's replies stay its own.
        """
        if want_reply:
            if self._awaited_replies is None:
                self._awaited_replies = []
            self._awaited_replies.append(not internal)
        self.transport.send(
            bytes((MSG.GLOBAL_REQUEST,)) + wire.string(kind) + wire.boolean(want_reply) + data
        )

    def _on_global_reply(self, payload: bytes) -> None:
        if not self._awaited_replies:
            _log.info("ignoring a global request reply nobody asked for")
            return
        if self._awaited_replies.pop(0):
            success = payload[0] == MSG.REQUEST_SUCCESS
            self.events.append(GlobalReplyReceived(success, payload[1:]))

    # -- opening channels (RFC 4254 §5.1) ---------------------------------------
    def _on_open(self, payload: bytes) -> None:
        reader = wire.Reader(payload, 1)
        kind = reader.ascii(256)
        kind = _KINDS.get(kind, kind)
        remote_id = reader.u32()
        window = reader.u32()
        max_packet = reader.u32()
        if len(self.channels) >= self.config.max_channels:
            _log.warning(
                "refusing %r channel: %d channels open (max_channels)",
                kind[:64],  # the peer's string: repr escapes it
                len(self.channels),
            )
            self.transport.send(
                _open_failure(remote_id, OpenFailure.RESOURCE_SHORTAGE, "too many channels")
            )
            return
        local_id = self._allocate_id()
        cfg = self.config
        chan = ChannelState(
            local_id, kind, InboundWindow(cfg.default_window_size, cfg.default_max_packet_size)
        )
        chan.remote_id = remote_id
        chan.outbound = self._outbound(window, max_packet)
        self.channels[local_id] = chan
        self.events.append(ChannelOpenRequested(local_id, kind, reader.rest()))

    def _outbound(self, window: int, max_packet: int) -> OutboundWindow:
        outbound = OutboundWindow(window, max_packet)
        if self.send_ahead:
            outbound.limit_ahead(self.send_ahead)
        return outbound

    def accept_channel(self, local_id: int) -> None:
        """Confirm a channel the peer asked to open."""
        chan = self._opening(local_id)
        chan.phase = ChannelPhase.OPEN
        self.transport.send(
            _HEAD.pack(MSG.CHANNEL_OPEN_CONFIRMATION, chan.remote_id, local_id)
            + wire.u32(chan.inbound.size)
            + wire.u32(chan.inbound.max_packet)
        )

    def reject_channel(self, local_id: int, code: int, description: str = "") -> None:
        """Refuse a channel the peer asked to open."""
        chan = self._opening(local_id)
        del self.channels[local_id]
        self.transport.send(_open_failure(chan.remote_id, code, description))

    def _opening(self, local_id: int) -> ChannelState:
        chan = self.channels.get(local_id)
        if chan is None or chan.phase is not ChannelPhase.OPENING:
            raise LocalProtocolError(f"channel {local_id} is not awaiting a decision")
        return chan

    def open_channel(
        self, kind: str, data: bytes, window: int | None = None, max_packet: int | None = None
    ) -> int:
        """Ask the peer to open a channel; return its local id."""
        local_id = self._allocate_id()
        cfg = self.config
        inbound = InboundWindow(
            window or cfg.default_window_size, max_packet or cfg.default_max_packet_size
        )
        chan = ChannelState(local_id, kind, inbound)
        chan.phase = ChannelPhase.REQUESTED
        self.channels[local_id] = chan
        self.transport.send(
            bytes((MSG.CHANNEL_OPEN,))
            + wire.string(kind)
            + wire.u32(local_id)
            + wire.u32(inbound.size)
            + wire.u32(inbound.max_packet)
            + data
        )
        return local_id

    def _requested(self, payload: bytes) -> tuple[ChannelState, wire.Reader]:
        reader = wire.Reader(payload, 1)
        local_id = reader.u32()
        chan = self.channels.get(local_id)
        if chan is None or chan.phase is not ChannelPhase.REQUESTED:
            raise RemoteProtocolError(f"open reply for channel {local_id} we did not open")
        return chan, reader

    def _on_open_confirmation(self, payload: bytes) -> None:
        chan, reader = self._requested(payload)
        chan.remote_id = reader.u32()
        window, max_packet = reader.u32(), reader.u32()
        chan.outbound = self._outbound(window, max_packet)
        chan.phase = ChannelPhase.OPEN
        self.events.append(ChannelOpenConfirmed(chan.local_id, reader.rest()))

    def _on_open_failure(self, payload: bytes) -> None:
        chan, reader = self._requested(payload)
        code = reader.u32()
        description = reader.string(4096).decode("utf-8", "replace")
        del self.channels[chan.local_id]
        self.events.append(ChannelOpenFailed(chan.local_id, code, description))

    # -- data and flow control (RFC 4254 §5.2) ----------------------------------
    def _on_window_adjust(self, payload: bytes) -> None:
        local_id = self.grow_window(payload)
        if local_id is not None:
            self.events.append(ChannelWindowOpened(local_id))

    def grow_window(self, payload: bytes) -> int | None:
        """Apply one CHANNEL_WINDOW_ADJUST; the channel's local id, or None if ignored.

        Emits no event: ``Connection`` merges the adjusts of one receive into
        one ``ChannelWindowOpened`` per channel.
        """
        if len(payload) != 9:
            raise RemoteProtocolError("malformed CHANNEL_WINDOW_ADJUST")
        chan = self._channel(payload, strict=False)
        if chan is None:
            return None
        chan.outbound.adjust(_U32.unpack_from(payload, 5)[0])
        return chan.local_id

    def _on_data(self, payload: bytes) -> None:
        taken = self.take_data(payload)
        if taken is not None:
            local_id, stream, offset = taken
            self.events.append(ChannelDataReceived(local_id, bytes(payload[offset:]), stream))

    _on_extended_data = _on_data

    def take_data(self, payload: bytes) -> tuple[int, int, int] | None:
        """Check and account one CHANNEL_DATA or CHANNEL_EXTENDED_DATA payload.

        Returns ``(local_id, stream, offset)``, the data being ``payload[offset:]``,
        or None when it is dropped (it crossed our CLOSE, or came after the
        peer's EOF); emits no event. ``Connection`` uses it to merge the data
        of consecutive packets into one event.
        """
        size = len(payload)
        chan = self.channels.get(_U32.unpack_from(payload, 1)[0]) if size >= 5 else None
        if chan is None or chan.phase is not ChannelPhase.OPEN or chan.close_sent:
            chan = self._channel(payload)  # raises, or None: crossed our CLOSE
        if payload[0] == MSG.CHANNEL_DATA:
            if size < _DATA_OVERHEAD:
                raise RemoteProtocolError("truncated CHANNEL_DATA")
            stream = 0
            length = _U32.unpack_from(payload, 5)[0]
            offset = _DATA_OVERHEAD
        else:
            if size < _EXT_OVERHEAD:
                raise RemoteProtocolError("truncated CHANNEL_EXTENDED_DATA")
            stream, length = _TWO_U32.unpack_from(payload, 5)
            offset = _EXT_OVERHEAD
        if length != size - offset:
            raise RemoteProtocolError(f"{_name(payload[0])} length mismatch")
        if chan is None:
            return None
        inbound = chan.inbound
        if length > inbound.remaining or length > inbound.max_packet:
            try:
                inbound.receive(length)
            except RemoteProtocolError as exc:
                raise RemoteProtocolError(f"channel {chan.local_id}: {exc}") from None
        inbound.remaining -= length
        if chan.eof_received:
            if not chan.dropped_after_eof:
                _log.warning("channel %d: peer sent data after EOF; dropped", chan.local_id)
            chan.dropped_after_eof += length
            return None
        return chan.local_id, stream, offset

    def consume(self, local_id: int, length: int) -> bool:
        """The application read ``length`` bytes: grant more window when due.

        Returns True if a WINDOW_ADJUST was queued (output to flush).
        """
        chan = self.channels.get(local_id)
        if chan is None or chan.close_sent or chan.close_received or chan.eof_received:
            return False
        increment = chan.inbound.consume(length)
        if not increment:
            return False
        self.transport.send(_HEAD.pack(MSG.CHANNEL_WINDOW_ADJUST, chan.remote_id, increment))
        return True

    def send_data(self, local_id: int, data: bytes | memoryview, stream: int = 0) -> int:
        """Send as much of ``data`` as the peer's window allows; return the count."""
        chan = self._open_for_sending(local_id)
        out = chan.outbound
        step = out.max_packet
        total = out.take(min(len(data), SEND_LIMIT, step * SEND_PACKETS))
        send = self.transport.send_data
        view = memoryview(data)[:total]  # never more than the window granted
        for start in range(0, total, step):
            chunk = view[start : start + step]
            if stream:
                head = _EXT_HEAD.pack(MSG.CHANNEL_EXTENDED_DATA, chan.remote_id, stream, len(chunk))
            else:
                head = _HEAD.pack(MSG.CHANNEL_DATA, chan.remote_id, len(chunk))
            send(head, chunk)
        return total

    def send_window(self, local_id: int) -> int:
        """Bytes one ``send_data`` call may send now (window, at most ``SEND_PACKETS`` packets).

        Never more than ``send_data`` would send, so a caller that cuts its
        data to this size (at a UTF-8 boundary, say) has all of it sent.
        """
        chan = self.channels.get(local_id)
        if chan is None:
            return 0
        out = chan.outbound
        return min(out.room, out.max_packet * SEND_PACKETS)

    def limit_send_ahead(self, limit: int) -> None:
        """Keep at most ``limit`` bytes in flight per channel (0: none); see proto/window.py.

        For a short path only: the limit bounds throughput to ``limit`` per
        round trip. Applies to open channels and to those opened later.
        """
        self.send_ahead = limit
        for chan in self.channels.values():
            chan.outbound.limit_ahead(limit)

    def send_held_back(self, local_id: int) -> bool:
        """True when only the send-ahead limit keeps the peer's window from a send."""
        chan = self.channels.get(local_id)
        return chan is not None and chan.outbound.held_back

    def lift_send_ahead(self, local_id: int) -> bool:
        """Lift a channel's send-ahead limit until the peer's next adjust.

        True if the limit was all that held a send back: the sender then has
        room at once. A sender calls it after waiting too long for an adjust,
        or when it cannot wait (a non-blocking send, the connection's own
        greenlet).
        """
        chan = self.channels.get(local_id)
        return chan is not None and chan.outbound.lift()

    def _open_for_sending(self, local_id: int) -> ChannelState:
        chan = self.channels.get(local_id)
        if chan is None or chan.phase is not ChannelPhase.OPEN or chan.close_sent:
            raise LocalProtocolError(f"channel {local_id} is not open")
        if chan.eof_sent:
            raise LocalProtocolError(f"channel {local_id}: EOF already sent")
        return chan

    # -- requests (RFC 4254 §5.4) ---------------------------------------------
    def _on_request(self, payload: bytes) -> None:
        chan = self._channel(payload)
        reader = wire.Reader(payload, 5)
        kind = reader.ascii(256)
        want_reply = reader.boolean()
        if chan is None:
            return
        self.events.append(ChannelRequestReceived(chan.local_id, kind, want_reply, reader.rest()))

    def reply_channel_request(self, local_id: int, success: bool) -> None:
        """Answer a channel request that wanted a reply."""
        chan = self.channels.get(local_id)
        if chan is None or chan.close_sent:
            return
        msg = MSG.CHANNEL_SUCCESS if success else MSG.CHANNEL_FAILURE
        self.transport.send(struct.pack(">BI", msg, chan.remote_id))

    def send_request(self, local_id: int, kind: str, want_reply: bool, data: bytes = b"") -> None:
        """Send a CHANNEL_REQUEST (exit-status, exit-signal, keepalive, …)."""
        chan = self.channels.get(local_id)
        if chan is None or chan.phase is not ChannelPhase.OPEN or chan.close_sent:
            raise LocalProtocolError(f"channel {local_id} is not open")
        if want_reply:
            chan.pending_replies += 1
        self.transport.send(
            struct.pack(">BI", MSG.CHANNEL_REQUEST, chan.remote_id)
            + wire.string(kind)
            + wire.boolean(want_reply)
            + data
        )

    def _on_channel_reply(self, payload: bytes) -> None:
        if len(payload) != 5:
            raise RemoteProtocolError(f"malformed {_name(payload[0])}")
        chan = self._channel(payload, strict=False)
        if chan is None:
            return
        if chan.pending_replies <= 0:
            _log.info("channel %d: ignoring a reply nobody asked for", chan.local_id)
            return
        chan.pending_replies -= 1
        self.events.append(ChannelReplyReceived(chan.local_id, payload[0] == MSG.CHANNEL_SUCCESS))

    # -- EOF and close (RFC 4254 §5.3) ------------------------------------------
    def _on_eof(self, payload: bytes) -> None:
        chan = self._channel(payload)
        if len(payload) != 5:
            raise RemoteProtocolError("malformed CHANNEL_EOF")
        if chan is None or chan.eof_received:
            return
        chan.eof_received = True
        self.events.append(ChannelEOFReceived(chan.local_id))

    def _on_close(self, payload: bytes) -> None:
        chan = self._channel(payload)
        if len(payload) != 5:
            raise RemoteProtocolError("malformed CHANNEL_CLOSE")
        assert chan is not None
        chan.close_received = True
        if not chan.close_sent:
            chan.close_sent = True
            self.transport.send(struct.pack(">BI", MSG.CHANNEL_CLOSE, chan.remote_id))
        self._free(chan)

    def send_eof(self, local_id: int) -> None:
        """We will send no more data on the channel."""
        chan = self.channels.get(local_id)
        if chan is None or chan.phase is not ChannelPhase.OPEN or chan.eof_sent or chan.close_sent:
            return
        chan.eof_sent = True
        self.transport.send(struct.pack(">BI", MSG.CHANNEL_EOF, chan.remote_id))

    def close(self, local_id: int) -> None:
        """Close the channel from our side (EOF first, as OpenSSH does)."""
        chan = self.channels.get(local_id)
        if chan is None or chan.close_sent or chan.phase is not ChannelPhase.OPEN:
            return
        self.send_eof(local_id)
        chan.close_sent = True
        chan.phase = ChannelPhase.CLOSING
        self.transport.send(struct.pack(">BI", MSG.CHANNEL_CLOSE, chan.remote_id))

    def _free(self, chan: ChannelState) -> None:
        del self.channels[chan.local_id]
        self.events.append(ChannelClosed(chan.local_id))


# Message handlers (one table for the class, not one per connection).
_HANDLERS: dict[int, Callable[[ChannelLayer, bytes], None]] = {
    MSG.GLOBAL_REQUEST: ChannelLayer._on_global_request,
    MSG.REQUEST_SUCCESS: ChannelLayer._on_global_reply,
    MSG.REQUEST_FAILURE: ChannelLayer._on_global_reply,
    MSG.CHANNEL_OPEN: ChannelLayer._on_open,
    MSG.CHANNEL_OPEN_CONFIRMATION: ChannelLayer._on_open_confirmation,
    MSG.CHANNEL_OPEN_FAILURE: ChannelLayer._on_open_failure,
    MSG.CHANNEL_WINDOW_ADJUST: ChannelLayer._on_window_adjust,
    MSG.CHANNEL_DATA: ChannelLayer._on_data,
    MSG.CHANNEL_EXTENDED_DATA: ChannelLayer._on_extended_data,
    MSG.CHANNEL_EOF: ChannelLayer._on_eof,
    MSG.CHANNEL_CLOSE: ChannelLayer._on_close,
    MSG.CHANNEL_REQUEST: ChannelLayer._on_request,
    MSG.CHANNEL_SUCCESS: ChannelLayer._on_channel_reply,
    MSG.CHANNEL_FAILURE: ChannelLayer._on_channel_reply,
}


def _name(msg: int) -> str:
    try:
        return MSG(msg).name
    except ValueError:
        return f"message {msg}"


def _global_reply(success: bool, data: bytes) -> bytes:
    if success:
        return bytes((MSG.REQUEST_SUCCESS,)) + data
    return bytes((MSG.REQUEST_FAILURE,))


def _open_failure(remote_id: int, code: int, description: str) -> bytes:
    return (
        struct.pack(">BII", MSG.CHANNEL_OPEN_FAILURE, remote_id, code)
        + wire.string(description)
        + wire.string(b"en")
    )
