"""Event dispatch of one ``Transport``: core events → ServerInterface calls and channels.

``EventDispatcher`` is owned by the Transport and is the pump's dispatcher:
its handlers run in the connection greenlet, one core event at a time, in
the order the events occurred on the wire. It also applies the caps on
what the client opens (``max_pending_channels``) and notes what the closing
summary reports (the auth method, a DISCONNECT's reason, a liveness
timeout).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent.pool
from gevent.event import Event

from geossh._facade.callbacks import (
    answer_channel_request,
    call,
    channel_open_result,
    global_request_reply,
    open_succeeded,
)
from geossh._facade.channel import Channel
from geossh._facade.common import (
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_FAILED_CONNECT_FAILED,
    OPEN_FAILED_RESOURCE_SHORTAGE,
    OPEN_SUCCEEDED,
)
from geossh._facade.server import ServerInterface
from geossh.logtext import printable
from geossh.proto import events as ev
from geossh.proto.window import MAX_WINDOW

if TYPE_CHECKING:
    from geossh._facade.transport import Transport

# The longest round trip (seconds) on which channels limit their send-ahead:
# 512 KiB per millisecond still streams at 512 MB/s.
SHORT_PATH = 0.001


class _RefuseHandler:
    """A channel handler that refuses the open (its factory raised)."""

    def prepare(self) -> int:
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def run(self, channel: Channel) -> None:
        """Never called: the open is refused."""

    def close(self) -> None:
        """Nothing to release."""


class ReplyWaiter(Event):  # type: ignore[misc]
    """Waits for the reply to one global request we sent (``reply`` once it came)."""

    __slots__ = ("reply",)

    def __init__(self) -> None:
        super().__init__()
        self.reply: ev.GlobalReplyReceived | None = None


class EventDispatcher:
    """Handlers for every core event of one Transport (see ``_HANDLERS`` at the end)."""

    __slots__ = ("_channels", "transport")

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._channels = transport._channels  # the same dict: one lookup less per event

    def _dispatch(self, event: ev.Event) -> None:
        """Handle one core event (the pump's ``PumpOwner`` interface)."""
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _on_data(self, event: ev.ChannelDataReceived) -> None:
        chan = self._channels.get(event.channel_id)
        if chan is not None:
            chan._feed(event.data, event.stream)

    def _on_data_run(self, event: ev.ChannelDataRunReceived) -> None:
        chan = self._channels.get(event.channel_id)
        if chan is not None:
            chan._feed_parts(event.parts, event.stream)

    def _on_version(self, event: ev.VersionReceived) -> None:
        log = self.transport.logger
        if log.isEnabledFor(logging.INFO):
            version, _, client = event.version[4:].partition("-")
            log.info("Connected (version %s, client %s)", printable(version), printable(client))

    def _on_kex(self, event: ev.KexCompleted) -> None:
        t = self.transport
        if event.initial:
            if t.observer is not None:
                t.observer.kex_done(t)
            if t.completion_event is not None:
                t.completion_event.set()
        t._wake_kex()

    def _on_disconnect(self, event: ev.DisconnectReceived) -> None:
        t = self.transport
        if t.logger.isEnabledFor(logging.INFO):
            t.logger.info("Disconnect (code %d): %s", event.code, printable(event.description))
        text = event.description[:200]
        t.close_reason = f"client sent DISCONNECT (code {event.code}: {text!r})"

    def _on_liveness_expired(self, event: ev.LivenessExpired) -> None:
        t = self.transport
        t.logger.info("Closing: %s", event.reason)
        t.close_reason = event.reason

    def _on_auth_service(self, event: ev.AuthServiceStarted) -> None:
        self.transport._auth_bridge().banner()

    def _on_auth(self, event: ev.AuthRequested) -> None:
        self.transport._auth_bridge().handle(event)

    def _on_auth_success(self, event: ev.AuthSucceeded) -> None:
        t = self.transport
        t.auth_method = event.method
        t._auth = None  # the core ignores any further request (RFC 4252 §5.1)
        self._limit_send_ahead()
        if t.on_authenticated is not None:
            call(t.logger, t.on_authenticated, None, t)

    def _limit_send_ahead(self) -> None:
        """On a short path, keep channels from sending far ahead of the peer (proto/window.py).

        Short: the shortest round trip the kernel measured during the handshake
        is at most ``SHORT_PATH``, and the peer is the socket's own (not a client behind
        a PROXY header, whose path the socket does not show).
        """
        t = self.transport
        limit = min(max(0, int(t.send_ahead_limit)), MAX_WINDOW)
        if not limit or t.peer_address is not None or t._pump is None:
            return
        rtt = t._pump.min_round_trip()
        if rtt is not None and rtt <= SHORT_PATH:
            t._conn.channels.limit_send_ahead(limit)

    def _on_channel_open(self, event: ev.ChannelOpenRequested) -> None:
        t = self.transport
        waiting = len(t.server_accepts)
        if waiting >= t.max_pending_channels:
            t.logger.warning(
                "Refused %s channel %d: %d channels await accept() (max_pending_channels)",
                printable(event.kind), event.channel_id, waiting,
            )  # fmt: skip
            t._conn.channels.reject_channel(
                event.channel_id, OPEN_FAILED_RESOURCE_SHORTAGE, "too many pending channels"
            )
            return
        server = t.server_object
        assert server is not None
        chanid = event.channel_id
        if event.kind == "session" and t._no_more_sessions:
            result: Any = 1
        else:
            result = channel_open_result(server, t.logger, chanid, event.kind, event.data)
        if not open_succeeded(result):
            t.logger.debug("Rejected %s channel %d (%s)", printable(event.kind), chanid, result)
            t._conn.channels.reject_channel(chanid, int(result) or 1, "")
            return
        chan = Channel(chanid, t._channel_port)
        chan.transport = t
        chan.kind = event.kind
        self._channels[chanid] = chan
        if self._start_channel_handler(server, chan):
            return
        t._conn.channels.accept_channel(chanid)
        t._observe_open(chan)
        t.server_accepts.append(chan)
        t._wake_accept()
        if t.logger.isEnabledFor(logging.DEBUG):
            t.logger.debug("Secsh channel %d (%s) opened.", chanid, printable(event.kind))

    def _start_channel_handler(self, server: ServerInterface, chan: Channel) -> bool:
        """Give an accepted channel to ``server.get_channel_handler(kind, chanid)`` if any.

        geossh extension: the handler's ``prepare()`` runs in its own greenlet
        before the channel is confirmed and returns an OPEN_* code (or
        ``(code, description)``); then ``run(channel)``; ``close()`` always
        follows. Such channels never enter the ``accept()`` queue.
        """
        get_handler = getattr(server, "get_channel_handler", None)
        if get_handler is None:
            return False
        t = self.transport
        try:
            handler = get_handler(chan.kind, chan.chanid)
        except Exception:
            t.logger.error("Exception in get_channel_handler", exc_info=True)
            handler = _RefuseHandler()
        if handler is None:
            return False
        if not isinstance(t._handler_greenlets, gevent.pool.Group):
            t._handler_greenlets = gevent.pool.Group()
        t._handler_greenlets.spawn(self._serve_channel, chan, handler)
        return True

    def _serve_channel(self, chan: Channel, handler: Any) -> None:
        t = self.transport
        try:
            result = call(t.logger, handler.prepare, OPEN_FAILED_CONNECT_FAILED)
            code, text = result if isinstance(result, tuple) else (result, "")
            if self._finish_open(chan, int(code), str(text)):
                t._observe_open(chan, getattr(handler, "target", None))
                handler.run(chan)
        except Exception:
            kind = printable(chan.kind)
            t.logger.error("Exception in %s channel handler", kind, exc_info=True)
        finally:
            call(t.logger, handler.close, None)
            chan.close()

    def _finish_open(self, chan: Channel, code: int, description: str) -> bool:
        """Confirm (code 0) or refuse a channel a handler held open; True if confirmed."""
        t = self.transport
        if not t.active or chan.closed:
            return False
        kind = printable(chan.kind)
        if code != OPEN_SUCCEEDED:
            self._channels.pop(chan.chanid, None)
            chan._mark_closed()
            t._conn.channels.reject_channel(chan.chanid, code or 1, description)
            t.logger.debug("Refused %s channel %d (%d %s)", kind, chan.chanid, code, description)
        else:
            t._conn.channels.accept_channel(chan.chanid)
            t.logger.debug("Secsh channel %d (%s) opened.", chan.chanid, kind)
        t._flush()
        return code == OPEN_SUCCEEDED

    def _on_channel_request(self, event: ev.ChannelRequestReceived) -> None:
        t = self.transport
        chan = self._channels.get(event.channel_id)
        answer_channel_request(t.server_object, t.logger, t._conn.channels, chan, event)

    def _on_channel_reply(self, event: ev.ChannelReplyReceived) -> None:
        chan = self._channels.get(event.channel_id)
        if chan is not None:
            chan._reply_received(event.success)

    def _on_eof(self, event: ev.ChannelEOFReceived) -> None:
        chan = self._channels.get(event.channel_id)
        if chan is not None:
            chan._feed_eof()

    def _on_window(self, event: ev.ChannelWindowOpened) -> None:
        chan = self._channels.get(event.channel_id)
        if chan is not None:
            chan._window_opened()

    def _on_closed(self, event: ev.ChannelClosed) -> None:
        chan = self._channels.pop(event.channel_id, None)
        if chan is not None:
            chan._mark_closed()
            accepts = self.transport.server_accepts
            if chan in accepts:
                accepts.remove(chan)

    def _on_open_reply(self, event: ev.ChannelOpenConfirmed | ev.ChannelOpenFailed) -> None:
        channels = self.transport._conn.channels
        chan = self._channels.get(event.channel_id)
        if chan is None:
            if isinstance(event, ev.ChannelOpenConfirmed):  # open_channel gave up waiting
                channels.close(event.channel_id)
            return
        if isinstance(event, ev.ChannelOpenFailed):
            chan._open_error = (event.code, event.description)
            self._channels.pop(event.channel_id, None)
        chan._set_open_event()

    def _on_global_request(self, event: ev.GlobalRequestReceived) -> None:
        t = self.transport
        assert t.server_object is not None
        if event.kind == "no-more-sessions@openssh.com":
            t._no_more_sessions = True
            ok, data = True, b""
        else:
            ok, data = global_request_reply(t.server_object, t.logger, event.kind, event.data)
        if event.want_reply:
            t._conn.channels.reply_global_request(ok, data)

    def _on_global_reply(self, event: ev.GlobalReplyReceived) -> None:
        waiters = self.transport._global_replies
        if waiters:
            waiter = waiters.pop(0)
            waiter.reply = event
            waiter.set()


_HANDLERS: dict[type, Callable[[EventDispatcher, Any], None]] = {
    ev.ChannelDataReceived: EventDispatcher._on_data,
    ev.ChannelDataRunReceived: EventDispatcher._on_data_run,
    ev.ChannelWindowOpened: EventDispatcher._on_window,
    ev.VersionReceived: EventDispatcher._on_version,
    ev.KexCompleted: EventDispatcher._on_kex,
    ev.DisconnectReceived: EventDispatcher._on_disconnect,
    ev.LivenessExpired: EventDispatcher._on_liveness_expired,
    ev.AuthServiceStarted: EventDispatcher._on_auth_service,
    ev.AuthRequested: EventDispatcher._on_auth,
    ev.AuthSucceeded: EventDispatcher._on_auth_success,
    ev.ChannelOpenRequested: EventDispatcher._on_channel_open,
    ev.ChannelRequestReceived: EventDispatcher._on_channel_request,
    ev.ChannelReplyReceived: EventDispatcher._on_channel_reply,
    ev.ChannelEOFReceived: EventDispatcher._on_eof,
    ev.ChannelClosed: EventDispatcher._on_closed,
    ev.ChannelOpenConfirmed: EventDispatcher._on_open_reply,
    ev.ChannelOpenFailed: EventDispatcher._on_open_reply,
    ev.GlobalRequestReceived: EventDispatcher._on_global_request,
    ev.GlobalReplyReceived: EventDispatcher._on_global_reply,
}
