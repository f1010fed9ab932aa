"""The narrow port between a ``Channel`` and the connection it belongs to.

A ``Channel`` holds buffers and waits; everything it asks of its connection
goes through one ``ChannelPort``: the core's record of the channel (which
paramiko's ``active``/``closed``/``eof_*`` attributes read through), the
peer's send window, queueing data, requests, EOF and CLOSE in the protocol
core, granting window for consumed input, flushing, and waiting out a key
exchange. ``ConnectionPort`` is the port of a running ``Transport`` (one per
connection, shared by its channels); tests give a Channel a fake instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import gevent

from geossh.errors import SSHException

if TYPE_CHECKING:
    from geossh._green.pump import SocketPump
    from geossh.proto.connection import Connection


class ChannelView(Protocol):
    """The protocol core's record of one channel, read (never written) by its ``Channel``.

    The core keeps updating it until the channel is freed; the ``Channel``
    holds on to it, so the last values stay readable after that.
    """

    @property
    def remote_id(self) -> int:
        """The peer's id for the channel (-1 until the peer confirmed one we opened)."""

    @property
    def opened(self) -> bool:
        """The open was accepted or confirmed (still True after the close)."""

    @property
    def eof_received(self) -> bool:
        """The peer sent CHANNEL_EOF."""

    @property
    def eof_sent(self) -> bool:
        """We sent CHANNEL_EOF."""

    @property
    def close_received(self) -> bool:
        """The peer sent CHANNEL_CLOSE."""

    @property
    def close_sent(self) -> bool:
        """We sent CHANNEL_CLOSE."""


class ChannelPort(Protocol):
    """What a ``Channel`` may ask of its connection (all calls by local channel id)."""

    def channel_state(self, chanid: int) -> ChannelView:
        """The core's record of the channel (asked once, when the Channel is made)."""

    @property
    def logger(self) -> Any:
        """Where the channel logs (the connection's logger)."""

    def send_window(self, chanid: int) -> int:
        """Bytes the peer lets us send now."""

    def send_data(self, chanid: int, data: memoryview, stream: int) -> int:
        """Queue up to the window of ``data``; the count queued (LocalProtocolError if closed)."""

    def send_held_back(self, chanid: int) -> bool:
        """True when only the send-ahead limit keeps the window from a send."""

    def lift_send_ahead(self, chanid: int) -> bool:
        """Lift the send-ahead limit until the next adjust; True if that gave room."""

    def consume(self, chanid: int, length: int) -> None:
        """The application read ``length`` bytes: grant window (and flush) when due."""

    def send_request(self, chanid: int, kind: str, want_reply: bool, data: bytes) -> None:
        """Queue a CHANNEL_REQUEST (LocalProtocolError if the channel is closed)."""

    def send_eof(self, chanid: int) -> None:
        """Queue CHANNEL_EOF."""

    def close(self, chanid: int) -> None:
        """Queue CHANNEL_CLOSE."""

    def flush_soon(self) -> None:
        """Write what is queued once the calling greenlet yields.

        Data, exit-status, EOF and CLOSE issued back to back then leave in one
        system call; large output is still written at once.
        """

    def in_connection_greenlet(self) -> bool:
        """True when called by the greenlet that reads the connection."""

    def wait_clear_to_send(self, gave_up: Callable[[], bool], block: bool) -> None:
        """Wait while a key exchange holds data back, until done or ``gave_up()``.

        ``TimeoutError`` at once if it would wait and ``block`` is False.
        """

    def channel_closed(self, channel: Any) -> None:
        """Report a channel's close to whoever observes the connection."""


class ConnectionPort:
    """The ``ChannelPort`` of a running ``Transport`` (core, pump and greenlet)."""

    __slots__ = ("_channels", "_core", "_pump", "_transport")

    def __init__(self, transport: Any, conn: Connection, pump: SocketPump) -> None:
        self._transport = transport  # its greenlet and observer may change after start
        self._channels = conn.channels
        self._core = conn.transport
        self._pump = pump

    @property
    def logger(self) -> Any:
        return self._transport.logger  # ``set_log_channel`` may replace it

    def channel_state(self, chanid: int) -> ChannelView:
        return self._channels.channels[chanid]

    def send_window(self, chanid: int) -> int:
        return self._channels.send_window(chanid)

    def send_data(self, chanid: int, data: memoryview, stream: int) -> int:
        return self._channels.send_data(chanid, data, stream)

    def send_held_back(self, chanid: int) -> bool:
        return self._channels.send_held_back(chanid)

    def lift_send_ahead(self, chanid: int) -> bool:
        return self._channels.lift_send_ahead(chanid)

    def consume(self, chanid: int, length: int) -> None:
        if self._channels.consume(chanid, length):  # the core granted more window
            self._pump.flush()

    def send_request(self, chanid: int, kind: str, want_reply: bool, data: bytes) -> None:
        self._channels.send_request(chanid, kind, want_reply, data)

    def send_eof(self, chanid: int) -> None:
        self._channels.send_eof(chanid)

    def close(self, chanid: int) -> None:
        self._channels.close(chanid)

    def flush_soon(self) -> None:
        self._pump.flush_soon()

    def in_connection_greenlet(self) -> bool:
        return gevent.getcurrent() is self._transport._greenlet

    def wait_clear_to_send(self, gave_up: Callable[[], bool], block: bool) -> None:
        core, pump = self._core, self._pump
        if not core.sending_blocked or self.in_connection_greenlet():
            return  # the connection greenlet runs the key exchange: it never waits
        if not block:
            raise TimeoutError()
        with gevent.Timeout(self._transport.clear_to_send_timeout, False):
            while core.sending_blocked and not pump.ended and not gave_up():
                pump.wait_progress()
        if core.sending_blocked and not pump.ended and not gave_up():
            raise SSHException("Key-exchange timed out waiting for key negotiation")

    def channel_closed(self, channel: Any) -> None:
        observer = self._transport.observer
        if observer is not None:
            observer.channel_closed(self._transport, channel)
