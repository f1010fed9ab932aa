"""Event dispatch of a ``Transport``: core events → ServerInterface calls and channels.

``EventDispatch`` is a mixin of ``geossh.Transport``; its handlers run in the
connection greenlet, one core event at a time, in the order the events
occurred on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    OPEN_SUCCEEDED,
)
from geossh._facade.server import ServerInterface
from geossh.logtext import printable
from geossh.proto import events as ev


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


class EventDispatch:
    """Handlers for every core event (see ``_event_handlers`` at the end)."""

    # The attributes and methods these handlers use belong to geossh.Transport.
    _conn: Any
    _auth: Any
    _auth_bridge: Callable[[], Any]
    _channels: dict[int, Channel]
    _channel_port: Any
    _accept_event: Event | None
    _kex_event: Event | None
    _handler_greenlets: Any
    _global_replies: list[ReplyWaiter] | None
    logger: Any
    server_object: ServerInterface | None
    server_accepts: list[Channel]
    completion_event: Any
    on_authenticated: Any
    observer: Any
    active: bool
    _flush: Callable[[], None]

    # -- waiters, created by the greenlets that wait --------------------------------
    def _kex_waiter(self) -> Event:
        """The event the next completed key exchange sets (cleared now)."""
        if self._kex_event is None:
            self._kex_event = Event()
        else:
            self._kex_event.clear()
        return self._kex_event

    def _wake_kex(self) -> None:
        if self._kex_event is not None:
            self._kex_event.set()

    def _wake_accept(self) -> None:
        if self._accept_event is not None:
            self._accept_event.set()

    def _expect_global_reply(self, waiter: ReplyWaiter) -> None:
        """Queue ``waiter`` for the reply to the global request about to be sent."""
        if self._global_replies is None:
            self._global_replies = []
        self._global_replies.append(waiter)

    def _dispatch(self, event: ev.Event) -> None:
        handler = self._event_handlers.get(type(event))
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
        self.remote_version = event.version
        version, _, client = event.version[4:].partition("-")
        self.logger.info("Connected (version %s, client %s)", printable(version), printable(client))

    def _on_kex(self, event: ev.KexCompleted) -> None:
        core = self._conn.transport
        negotiated = core.negotiated
        assert negotiated is not None
        self.session_id = core.session_id
        self.host_key_type = negotiated.host_key
        self.local_cipher, self.remote_cipher = negotiated.cipher_s2c, negotiated.cipher_c2s
        self.local_mac, self.remote_mac = negotiated.mac_s2c, negotiated.mac_c2s
        self.local_compression = negotiated.compression_s2c
        self.remote_compression = negotiated.compression_c2s
        self.agreed_on_strict_kex = core.strict_kex
        if event.initial:
            self.initial_kex_done = True
            if self.observer is not None:
                self.observer.kex_done(self)
            if self.completion_event is not None:
                self.completion_event.set()
        self._wake_kex()

    def _on_disconnect(self, event: ev.DisconnectReceived) -> None:
        self.logger.info("Disconnect (code %d): %s", event.code, printable(event.description))

    def _on_auth_service(self, event: ev.AuthServiceStarted) -> None:
        self._auth_bridge().banner()

    def _on_auth(self, event: ev.AuthRequested) -> None:
        self._auth_bridge().handle(event)

    def _on_auth_success(self, event: ev.AuthSucceeded) -> None:
        self.authenticated = True
        self._auth = None  # the core ignores any further request (RFC 4252 §5.1)
        if self.on_authenticated is not None:
            call(self.logger, self.on_authenticated, None, self)

    def _on_channel_open(self, event: ev.ChannelOpenRequested) -> None:
        server = self.server_object
        assert server is not None
        chanid = event.channel_id
        if event.kind == "session" and self._no_more_sessions:
            result: Any = 1
        else:
            result = channel_open_result(server, self.logger, chanid, event.kind, event.data)
        if not open_succeeded(result):
            self.logger.debug("Rejected %s channel %d (%s)", printable(event.kind), chanid, result)
            self._conn.channels.reject_channel(chanid, int(result) or 1, "")
            return
        chan = Channel(chanid, self._channel_port)
        chan.transport = self  # type: ignore[assignment]  # self is the Transport
        chan.kind = event.kind
        chan.active = 1
        chan.remote_chanid = self._conn.channels.channels[chanid].remote_id
        self._channels[chanid] = chan
        if self._start_channel_handler(server, chan):
            return
        self._conn.channels.accept_channel(chanid)
        self._observe_open(chan)
        self.server_accepts.append(chan)
        self._wake_accept()
        self.logger.debug("Secsh channel %d (%s) opened.", chanid, printable(event.kind))

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
        try:
            handler = get_handler(chan.kind, chan.chanid)
        except Exception:
            self.logger.error("Exception in get_channel_handler", exc_info=True)
            handler = _RefuseHandler()
        if handler is None:
            chan.active = 1
            return False
        chan.active = 0
        if not isinstance(self._handler_greenlets, gevent.pool.Group):
            self._handler_greenlets = gevent.pool.Group()
        self._handler_greenlets.spawn(self._serve_channel, chan, handler)
        return True

    def _serve_channel(self, chan: Channel, handler: Any) -> None:
        opened = False
        try:
            result = call(self.logger, handler.prepare, OPEN_FAILED_CONNECT_FAILED)
            code, text = result if isinstance(result, tuple) else (result, "")
            opened = self._finish_open(chan, int(code), str(text))
            if opened:
                self._observe_open(chan, getattr(handler, "target", None))
                handler.run(chan)
        except Exception:
            kind = printable(chan.kind)
            self.logger.error("Exception in %s channel handler", kind, exc_info=True)
        finally:
            call(self.logger, handler.close, None)
            chan.close()

    def _finish_open(self, chan: Channel, code: int, description: str) -> bool:
        """Confirm (code 0) or refuse a channel a handler held open; True if confirmed."""
        if not self.active or chan.closed:
            return False
        if code != OPEN_SUCCEEDED:
            self._channels.pop(chan.chanid, None)
            chan._mark_closed()
            self._conn.channels.reject_channel(chan.chanid, code or 1, description)
            self.logger.debug("Refused %s channel %d (%d %s)", printable(chan.kind), chan.chanid,
                              code, description)  # fmt: skip
        else:
            self._conn.channels.accept_channel(chan.chanid)
            chan.active = 1
            self.logger.debug("Secsh channel %d (%s) opened.", chan.chanid, printable(chan.kind))
        self._flush()
        return code == OPEN_SUCCEEDED

    def _observe_open(self, chan: Channel, target: Any = None) -> None:
        """Report an open channel to the observer (which then hears of its close)."""
        if self.observer is not None:
            chan._observed = True
            self.observer.channel_opened(self, chan, target)

    def _on_channel_request(self, event: ev.ChannelRequestReceived) -> None:
        chan = self._channels.get(event.channel_id)
        answer_channel_request(self.server_object, self.logger, self._conn.channels, chan, event)

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
            if chan in self.server_accepts:
                self.server_accepts.remove(chan)

    def _on_open_reply(self, event: ev.ChannelOpenConfirmed | ev.ChannelOpenFailed) -> None:
        chan = self._channels.get(event.channel_id)
        if chan is None:
            if isinstance(event, ev.ChannelOpenConfirmed):  # open_channel gave up waiting
                self._conn.channels.close(event.channel_id)
            return
        if isinstance(event, ev.ChannelOpenFailed):
            chan._open_error = (event.code, event.description)
            self._channels.pop(event.channel_id, None)
        else:
            chan.active = 1
            chan.remote_chanid = self._conn.channels.channels[event.channel_id].remote_id
        chan._set_open_event()

    def _on_global_request(self, event: ev.GlobalRequestReceived) -> None:
        assert self.server_object is not None
        if event.kind == "no-more-sessions@openssh.com":
            self._no_more_sessions = True
            ok, data = True, b""
        else:
            ok, data = global_request_reply(self.server_object, self.logger, event.kind, event.data)
        if event.want_reply:
            self._conn.channels.reply_global_request(ok, data)

    def _on_global_reply(self, event: ev.GlobalReplyReceived) -> None:
        if self._global_replies:
            waiter = self._global_replies.pop(0)
            waiter.reply = event
            waiter.set()

    _event_handlers: dict[type, Any] = {
        ev.ChannelDataReceived: _on_data,
        ev.ChannelDataRunReceived: _on_data_run,
        ev.ChannelWindowOpened: _on_window,
        ev.VersionReceived: _on_version,
        ev.KexCompleted: _on_kex,
        ev.DisconnectReceived: _on_disconnect,
        ev.AuthServiceStarted: _on_auth_service,
        ev.AuthRequested: _on_auth,
        ev.AuthSucceeded: _on_auth_success,
        ev.ChannelOpenRequested: _on_channel_open,
        ev.ChannelRequestReceived: _on_channel_request,
        ev.ChannelReplyReceived: _on_channel_reply,
        ev.ChannelEOFReceived: _on_eof,
        ev.ChannelClosed: _on_closed,
        ev.ChannelOpenConfirmed: _on_open_reply,
        ev.ChannelOpenFailed: _on_open_reply,
        ev.GlobalRequestReceived: _on_global_request,
        ev.GlobalReplyReceived: _on_global_reply,
    }
