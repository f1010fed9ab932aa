"""One server-side SSH connection as a pure state machine.

Composes the transport layer (RFC 4253), user authentication (RFC 4252) and
the connection protocol (RFC 4254) behind an h11-style interface:

* ``receive_data(data, now)`` feeds bytes read from the socket;
* ``next_event()`` decodes lazily, one packet at a time, and returns the next
  event (or None when more bytes are needed), so an answer the driver gives
  to one event takes effect before the next packet is looked at;
* commands (``auth``/``channels`` methods, ``send_disconnect`` …) queue
  output, and ``data_to_send()`` returns it for one ``sendall`` (or
  ``output()``/``output_sent(n)`` write it from the core's buffer);
* ``deadline()`` / ``handle_timer(now)`` drive timeouts with a clock passed in
  (the handshake and login deadlines, re-key by time and the liveness checks
  of ``proto/liveness.py``);
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
from typing import cast

from geossh.proto import wire
from geossh.proto.auth import AuthLayer
from geossh.proto.channels import ChannelLayer
from geossh.proto.config import ServerConfig
from geossh.proto.constants import MSG
from geossh.proto.errors import RemoteProtocolError
from geossh.proto.events import (
    ChannelDataReceived,
    ChannelDataRunReceived,
    ChannelWindowOpened,
    Event,
    LivenessExpired,
)
from geossh.proto.liveness import Liveness
from geossh.proto.transport import TransportLayer

_AUTH_MESSAGES = frozenset(range(50, 80)) | {5, 6}
_CONNECTION_MESSAGES = range(80, 128)
_DATA_MESSAGES = frozenset({MSG.CHANNEL_DATA, MSG.CHANNEL_EXTENDED_DATA})
#: Largest packet accepted before authentication: ample for KEXINIT, kex and
#: userauth (certificates included), above RFC 4253 §6.1's 35000, and a
#: quarter of what an unauthenticated peer could otherwise make us buffer.
PREAUTH_MAX_PACKET = 64 * 1024


class Connection:
    """The protocol core of one server-side connection."""

    __slots__ = (
        "_checked_at",
        "_events",
        "_last_input",
        "_liveness",
        "_pending_error",
        "_preauth_limit",
        "auth",
        "channels",
        "config",
        "errored",
        "transport",
    )

    def __init__(self, config: ServerConfig, now: float) -> None:
        self.config = config
        # A list, not a deque: it is almost always empty, and an empty deque
        # costs 600 bytes per connection. The layers only append to it.
        self._events: list[Event] = []
        sink = cast("deque[Event]", self._events)
        self.transport = TransportLayer(config, sink, now)
        self.auth = AuthLayer(config, self.transport, sink)
        self.channels = ChannelLayer(config, self.transport, sink)
        self.errored = False
        self._pending_error: RemoteProtocolError | None = None
        self._checked_at = -1.0  # the ``now`` the deadlines were last checked at
        self._preauth_limit = True
        self._last_input = now  # the clock reading of the latest input
        self._liveness: Liveness | None = None
        if config.client_alive_interval > 0 or config.unused_connection_timeout > 0:
            self._liveness = Liveness(config, now)
        reader = self.transport.reader
        reader.max_packet_size = min(reader.max_packet_size, PREAUTH_MAX_PACKET)

    # -- input ------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the peer (dropped once the connection failed)."""
        if self.errored:
            return
        self._last_input = now
        self.transport.receive_data(data, now)

    def receive_buffer(self, size: int) -> memoryview | None:
        """Room to receive up to ``size`` bytes into directly (``recv_into``), or None.

        None until the identification line is read and once the connection
        failed or closed: use ``receive_data`` then. After writing, release
        the view and call ``received(count, now)``. The room is kept between
        reads until ``release_buffer()``.
        """
        transport = self.transport
        if self.errored or transport.closed or transport.client_version is None:
            return None
        return transport.reader.receive_buffer(size)

    def received(self, count: int, now: float) -> None:
        """``count`` bytes were written into the view ``receive_buffer`` returned."""
        self.transport.reader.commit(count)
        self._last_input = now
        self.transport.receive_data(b"", now)  # the clock reading

    def bytes_missing(self) -> int:
        """Bytes the peer must still send to complete the packet being received.

        0 when no packet is partly received (or the connection failed): a
        driver may wait for this many bytes before reading again.
        """
        if self.errored:
            return 0
        return self.transport.reader.missing

    def release_buffer(self) -> None:
        """Free the receive room kept for a stream (an idle connection holds none)."""
        self.transport.reader.release()

    def idle(self) -> None:
        """The peer went quiet: free what the next packet can rebuild.

        The receive room and an empty output buffer, and (once authenticated:
        the connection may stay open for long) cipher state that is cheap to
        recreate.
        """
        transport = self.transport
        transport.reader.release()
        transport.writer.release()
        if self.auth.authenticated:
            transport.reader.compact()
            transport.writer.compact()

    def next_event(self) -> Event | None:
        """The next event, or None when more data is needed."""
        events = self._events
        if events:
            return events.pop(0)
        if self.errored:
            return None
        if self._pending_error is not None:
            self.errored = True
            raise self._pending_error
        try:
            transport = self.transport
            now = transport.now
            if now != self._checked_at:  # the deadlines move only with the clock
                self._check_deadlines(now)
                self._checked_at = now
            if not transport.input_pending:
                return None  # the driver's last call after a read: nothing to decode
            self._decode_until_event()
        except RemoteProtocolError as exc:
            if events:  # data decoded before the violation is delivered first
                self._pending_error = exc
                return events.pop(0)
            self.errored = True
            raise
        return events.pop(0) if events else None

    def _decode_until_event(self) -> None:
        """Decode packets until one produced an event.

        CHANNEL_DATA / EXTENDED_DATA of one channel and stream that arrive
        back to back are merged into one ``ChannelDataRunReceived`` (a run;
        ``ChannelDataReceived`` when it is one packet), so a bulk transfer
        costs one event per receive, not one per packet.
        The run's event is inserted where its first packet was, so events
        keep the order of the wire. Likewise, WINDOW_ADJUSTs (which need no
        answer) do not stop decoding: each channel whose window grew gets
        one ``ChannelWindowOpened``, before the next other event.
        """
        events = self._events
        transport = self.transport
        if self._preauth_limit and self.auth.authenticated:
            self._preauth_limit = False
            transport.reader.max_packet_size = self.config.max_packet_size
        data_ok = self.auth.authenticated  # cannot change while decoding
        take_data = self.channels.take_data
        grow_window = self.channels.grow_window
        run: list[bytes] = []
        run_id = run_stream = run_at = 0
        opened: list[int] = []  # channels whose window grew, in order
        try:
            while not events:
                packet = transport.next_packet()
                if packet is None:
                    break
                seq, payload = packet
                msg = payload[0]
                if data_ok and msg in _DATA_MESSAGES:
                    taken = take_data(payload)
                    if taken is None:
                        continue
                    local_id, stream, offset = taken
                    if run and (local_id != run_id or stream != run_stream):
                        events.insert(run_at, _data_event(run_id, run, run_stream))
                        run = []
                    if not run:
                        run_id, run_stream, run_at = local_id, stream, len(events)
                    # A memoryview of the fresh plaintext for bulk data (no copy):
                    # the channel's buffer copies once, when the application reads.
                    run.append(payload[offset:])
                    continue
                if data_ok and msg == MSG.CHANNEL_WINDOW_ADJUST:
                    grown = grow_window(payload)
                    if grown is not None and grown not in opened:
                        opened.append(grown)
                    continue
                if run:
                    events.insert(run_at, _data_event(run_id, run, run_stream))
                    run = []
                if opened:
                    events.extend(map(ChannelWindowOpened, opened))
                    opened = []
                self._handle(seq, payload, msg)
        finally:
            if run:
                events.insert(run_at, _data_event(run_id, run, run_stream))
            events.extend(map(ChannelWindowOpened, opened))

    def _handle(self, seq: int, payload: bytes, msg: int) -> None:
        """Hand one packet to the layer it belongs to (RFC 4250 §4.1)."""
        if msg in _CONNECTION_MESSAGES:
            if not self.auth.authenticated:
                raise RemoteProtocolError(f"message {msg} before authentication")
            handled = self.channels.handle(payload)
        elif msg in _AUTH_MESSAGES:
            handled = self.auth.handle(seq, payload)
        elif msg == MSG.PING and self.config.ping:
            self._on_ping(payload)
            handled = True
        else:
            handled = False
        if not handled:
            self.transport.send_unimplemented(seq)

    def _on_ping(self, payload: bytes) -> None:
        """OpenSSH's PING (PROTOCOL 1.8): a PONG with the same data, once authenticated.

        As sshd, a ping before authentication gets no answer. Each ping costs
        one reply the peer must read: the driver's output cap stops reading
        from a peer that does not.
        """
        data = wire.Reader(payload, 1).string(self.config.max_packet_size)
        if self.auth.authenticated:
            self.transport.send(bytes((MSG.PONG,)) + wire.string(data))

    # -- output -------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """Bytes to write to the peer, in order."""
        return self.transport.data_to_send()

    def output(self) -> memoryview:
        """The same bytes as a view (no copy); release it, then call ``output_sent``."""
        return self.transport.output()

    def output_sent(self, count: int) -> None:
        """The first ``count`` bytes of ``output()`` were written."""
        self.transport.output_sent(count)

    @property
    def output_pending(self) -> int:
        """Bytes queued for the peer and not yet written."""
        return self.transport.writer.pending

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
        if self.errored or self.transport.closed:
            return None
        deadline = self.transport.deadline()
        if not self.auth.authenticated:
            auth = self.auth.deadline()
            if auth is not None and (deadline is None or auth < deadline):
                deadline = auth
        if self._liveness is not None:
            live = self._liveness.deadline(
                self.transport.now, self._last_input, self.auth.authenticated, self.in_use
            )
            if live is not None and (deadline is None or live < deadline):
                deadline = live
        return deadline

    @property
    def in_use(self) -> bool:
        """True while a channel is open (UnusedConnectionTimeout counts the rest)."""
        return bool(self.channels.channels)

    def set_keepalive(self, interval: float, now: float) -> None:
        """paramiko's ``set_keepalive``: a ``keepalive@lag.net`` every ``interval`` s (0: off)."""
        if self._liveness is None:
            self._liveness = Liveness(self.config, now)
        self._liveness.set_keepalive(interval, now)

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
        if self._liveness is not None and not self.closed:
            self._check_liveness(now, self._liveness)

    def _check_liveness(self, now: float, liveness: Liveness) -> None:
        due = liveness.expire(now, self._last_input, self.auth.authenticated, self.in_use)
        if due.end is not None:
            reason, code = due.end
            self._events.append(LivenessExpired(reason))
            self.send_disconnect(code, reason)
            return
        if due.send_keepalive:
            self.channels.send_global_request("keepalive@lag.net", False)
        if due.send_probe:
            self.channels.send_global_request("keepalive@openssh.com", True, internal=True)

    def _check_deadlines(self, now: float) -> None:
        self.transport.check_deadlines(now)
        if not self.closed:
            self.auth.check_deadline(now)


def _data_event(local_id: int, run: list[bytes], stream: int) -> Event:
    if len(run) == 1:
        return ChannelDataReceived(local_id, run[0], stream)
    return ChannelDataRunReceived(local_id, tuple(run), stream)
