"""One server-side SSH connection as a pure state machine.

Composes the transport layer (RFC 4253), user authentication (RFC 4252) and
the connection protocol (RFC 4254) behind an h11-style interface:

* ``receive_data(data, now)`` feeds bytes read from the socket;
* ``next_event()`` decodes lazily, one packet at a time, and returns the next
  event (or None when more bytes are needed), so an answer the driver gives
  to one event takes effect before the next packet is looked at;
* commands (``auth``/``channels`` methods, ``send_disconnect`` …) queue
  output, and ``data_to_send()`` returns it for one ``sendall``;
* ``deadline()`` / ``handle_timer(now)`` drive timeouts with a clock passed in;
  ``next_event`` also enforces the handshake deadlines at the ``now`` of the
  latest ``receive_data``, so a peer that keeps the socket busy cannot outrun
  them.

Dispatch by message number (RFC 4250 §4.1) and role: 1-49 belong to the
transport, 50-79 to user authentication (only the client-to-server ones are
accepted; USERAUTH_SUCCESS and the like from a client get UNIMPLEMENTED),
80-127 to the connection protocol, which is a protocol error before
authentication succeeded; unknown numbers get UNIMPLEMENTED. Until then,
packets are also limited to ``PREAUTH_MAX_PACKET`` bytes.

A protocol violation raises ``RemoteProtocolError``; the driver then calls
``send_disconnect(err.code, str(err))``, flushes and closes. The core never
calls application code. Pure: no I/O.
"""

from __future__ import annotations

from collections import deque

from geossh.errors import RemoteProtocolError
from geossh.proto.auth import AuthLayer
from geossh.proto.channels import ChannelLayer
from geossh.proto.config import ServerConfig
from geossh.proto.events import Event
from geossh.proto.transport import TransportLayer

_AUTH_MESSAGES = frozenset(range(50, 80)) | {5, 6}
_CONNECTION_MESSAGES = range(80, 128)
#: Largest packet accepted before authentication: ample for KEXINIT, kex and
#: userauth (certificates included), above RFC 4253 §6.1's 35000, and a
#: quarter of what an unauthenticated peer could otherwise make us buffer.
PREAUTH_MAX_PACKET = 64 * 1024


class Connection:
    """The protocol core of one server-side connection."""

    def __init__(self, config: ServerConfig, now: float) -> None:
        self.config = config
        self._events: deque[Event] = deque()
        self.transport = TransportLayer(config, self._events, now)
        self.auth = AuthLayer(config, self.transport, self._events)
        self.channels = ChannelLayer(config, self.transport, self._events)
        self.errored = False
        self._preauth_limit = True
        reader = self.transport.reader
        reader.max_packet_size = min(reader.max_packet_size, PREAUTH_MAX_PACKET)

    # -- input ------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the peer (dropped once the connection failed)."""
        if self.errored:
            return
        self.transport.receive_data(data, now)

    def next_event(self) -> Event | None:
        """The next event, or None when more data is needed."""
        events = self._events
        if events:
            return events.popleft()
        if self.errored:
            return None
        try:
            self._check_deadlines(self.transport.now)
            self._decode_until_event()
        except RemoteProtocolError:
            self.errored = True
            raise
        return events.popleft() if events else None

    def _decode_until_event(self) -> None:
        events = self._events
        transport = self.transport
        channels = self.channels
        if self._preauth_limit and self.auth.authenticated:
            self._preauth_limit = False
            transport.reader.max_packet_size = self.config.max_packet_size
        while not events:
            packet = transport.next_packet()
            if packet is None:
                return
            seq, payload = packet
            msg = payload[0]
            if msg in _CONNECTION_MESSAGES:
                if not self.auth.authenticated:
                    raise RemoteProtocolError(f"message {msg} before authentication")
                handled = channels.handle(payload)
            elif msg in _AUTH_MESSAGES:
                handled = self.auth.handle(seq, payload)
            else:
                handled = False
            if not handled:
                transport.send_unimplemented(seq)

    # -- output -------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """Bytes to write to the peer, in order."""
        return self.transport.data_to_send()

    def send_disconnect(self, code: int, description: str) -> None:
        """Send SSH_MSG_DISCONNECT; nothing is sent or accepted afterwards."""
        self.transport.send_disconnect(code, description)

    @property
    def closed(self) -> bool:
        """True after a DISCONNECT was sent or received."""
        return self.transport.closed

    # -- timers -------------------------------------------------------------------
    def deadline(self) -> float | None:
        """The next time ``handle_timer`` must be called, or None."""
        if self.closed or self.errored:
            return None
        candidates = [self.transport.deadline()]
        if not self.auth.authenticated:
            candidates.append(self.auth.deadline())
        times = [t for t in candidates if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        """Handle expired deadlines; raises ``RemoteProtocolError`` on a timeout."""
        if self.errored or self.closed:
            return
        try:
            self.transport.handle_timer(now)
            self.auth.check_deadline(now)
        except RemoteProtocolError:
            self.errored = True
            raise

    def _check_deadlines(self, now: float) -> None:
        self.transport.check_deadlines(now)
        if not self.closed:
            self.auth.check_deadline(now)
