"""The connection greenlet's I/O: socket → core → events, and core → socket.

``SocketPump.run`` reads large chunks, feeds the core, hands every event to
a dispatcher, and writes what the core produced. Timers come from the
core's ``deadline()`` and are enforced through the socket timeout, so an
idle connection costs no CPU. ``flush`` may be called from any greenlet:
whoever finds output queued writes it, and a greenlet already writing
drains what others queue meanwhile, so output keeps the core's order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent

from geossh.proto.connection import Connection
from geossh.proto.events import Event

RECV_SIZE = 256 * 1024


class ConnectionEnded(Exception):
    """The peer closed the TCP connection."""


class SocketPump:
    """Moves bytes between one socket and one protocol core."""

    def __init__(
        self,
        sock: Any,
        conn: Connection,
        dispatch: Callable[[Event], None],
        extra_deadline: Callable[[], float | None] = lambda: None,
        on_timer: Callable[[float], None] = lambda now: None,
    ) -> None:
        self.sock = sock
        self.conn = conn
        self.dispatch = dispatch
        self.extra_deadline = extra_deadline
        self.on_timer = on_timer
        self.bytes_in = 0
        self.bytes_out = 0
        self._writing = False
        self._write_error: BaseException | None = None

    def run(self) -> None:
        """Read and dispatch until the connection ends; raises why it ended."""
        conn = self.conn
        self.flush()
        while not conn.closed:
            data = self._recv()
            if data is None:
                self.on_timer(time.monotonic())
                conn.handle_timer(time.monotonic())
            elif not data:
                raise ConnectionEnded("EOF from peer")
            else:
                self.bytes_in += len(data)
                conn.receive_data(data, time.monotonic())
            self.drain_events()
            self.flush()

    def drain_events(self) -> None:
        """Hand every ready event to the dispatcher."""
        next_event = self.conn.next_event
        dispatch = self.dispatch
        event = next_event()
        while event is not None:
            dispatch(event)
            event = next_event()

    def _recv(self) -> bytes | None:
        """Read one chunk; None when a deadline passed first."""
        deadline = self.conn.deadline()
        extra = self.extra_deadline()
        if extra is not None and (deadline is None or extra < deadline):
            deadline = extra
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        # A gevent.Timeout rather than the socket's timeout: other greenlets
        # write to the same socket and must never inherit a read deadline.
        with gevent.Timeout(timeout, False):
            return bytes(self.sock.recv(RECV_SIZE))
        return None

    def flush(self) -> None:
        """Write everything the core has queued (from any greenlet)."""
        if self._write_error is not None:
            return
        if self._writing:
            return  # the greenlet already writing will drain our output too
        self._writing = True
        try:
            data = self.conn.data_to_send()
            while data:
                self.bytes_out += len(data)
                self._sendall(data)
                data = self.conn.data_to_send()
        except OSError as exc:
            self._write_error = exc
        finally:
            self._writing = False

    def _sendall(self, data: bytes) -> None:
        sendall = getattr(self.sock, "sendall", None)
        if sendall is not None:
            sendall(data)
            return
        view = memoryview(data)
        while view:
            sent = self.sock.send(view)
            if sent <= 0:
                raise OSError("socket closed during send")
            view = view[sent:]

    @property
    def write_error(self) -> BaseException | None:
        """Why writing stopped, if it did."""
        return self._write_error
