"""``Channel`` and its file wrappers: paramiko's socket-like channel on greenlets.

A Channel is created by the Transport, never by users. Reads block only
the calling greenlet (``socket.timeout`` on timeout, ``b""`` at EOF); sends
wait for the peer's window, for a running key exchange to finish and for
the reply to a channel request whose callback is still running (the send
gate, see ``geossh._facade.callbacks``). Protocol state lives in the core
(``geossh.proto.channels``); this module holds buffers and waits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event

from geossh._facade.file import BufferedFile
from geossh._facade.port import ChannelPort, ChannelView
from geossh._facade.util import ClosingContextManager
from geossh._green.pipe import ByteBuffer
from geossh.errors import LocalProtocolError
from geossh.proto import wire
from geossh.proto.channels import SEND_LIMIT

# How long a send held back only by the send-ahead limit (proto/window.py) waits
# for the peer's adjust before the limit gives way: a peer that adjusts only
# past a larger threshold must never stall.
SEND_AHEAD_STALL = 0.2

if TYPE_CHECKING:
    from geossh._facade.transport import Transport

Sendable = bytes | bytearray | memoryview | str


class _ReadyPipe:
    """An OS pipe that is readable while a channel has data or is at EOF (``fileno``)."""

    def __init__(self) -> None:
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._set = False
        self._finalizer = weakref.finalize(self, _close_fds, self._rfd, self._wfd)

    def fileno(self) -> int:
        return self._rfd

    def update(self, ready: bool) -> None:
        if not self._finalizer.alive:
            return
        if ready and not self._set:
            os.write(self._wfd, b"*")
            self._set = True
        elif not ready and self._set:
            with contextlib.suppress(BlockingIOError):
                os.read(self._rfd, 1)
            self._set = False

    def close(self) -> None:
        self._finalizer()


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class Channel(ClosingContextManager):
    """One SSH channel: a socket-like object (paramiko.Channel)."""

    # For observers (geossh.observer), set on first use: data bytes each way, the
    # exit status or signal sent, whether channel_opened was reported (then the close is).
    _bytes_in = _bytes_out = 0
    _exit_sent: int | str | None = None
    _observed = False

    def __init__(self, chanid: int, port: ChannelPort | None = None) -> None:
        self.chanid = chanid
        self.transport: Transport | None = None
        # Everything asked of the connection goes through the port (None: not attached).
        self._port = port
        # paramiko's active/closed/eof_* read the core's record of the channel.
        self._state: ChannelView = _DETACHED if port is None else port.channel_state(chanid)
        self._ended = False  # the connection ended, the open was refused, or closed unopened
        self._read_shut = False  # shutdown(0): paramiko then reports eof_received
        self.exit_status = -1
        self.combine_stderr = False
        self.origin_addr: tuple[str, int] | None = None
        self.timeout: float | None = None
        self.kind = "session"
        self.in_buffer = ByteBuffer()
        self.in_stderr_buffer = ByteBuffer()
        # ``status_event`` and ``event`` (paramiko's) are created on first use.
        self._status_event: Event | None = None
        self._status_done = False  # an exit status arrived, or the channel closed
        self._open_event: Event | None = None
        self._open_done = False  # an open we requested was answered, or closed
        self._window_event: Event | None = None  # created by the first window wait
        # Set while a request callback for this channel runs (``_request_gate``).
        self._gate: Event | None = None
        self._gate_owner: Any = None
        self._replies: list[list[Any]] | None = None  # [Event, result] per request sent
        self._name: str | None = None  # None: the channel id
        self._pipe: _ReadyPipe | None = None
        self._open_error: tuple[int, str] | None = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        extra = ""
        if self.eof_received:
            extra += " (EOF received)"
        if self.eof_sent:
            extra += " (EOF sent)"
        window = ""
        if self._port is not None and not self.closed:
            window = f" window={self._port.send_window(self.chanid)}"
        return (
            f"<geossh.Channel {self.chanid} ({state}){extra}{window} "
            f"in-buffer={len(self.in_buffer)} -> {self.transport!r}>"
        )

    # -- state (read through to the protocol core) --------------------------------
    @property
    def remote_chanid(self) -> int:
        """The peer's id for the channel (0 until the peer confirmed one we opened)."""
        return max(self._state.remote_id, 0)

    @property
    def active(self) -> bool:
        """True once the channel was opened (it stays True after the close, as in paramiko)."""
        return self._state.opened

    @property
    def closed(self) -> bool:
        """True once CLOSE went either way, or the connection ended."""
        state = self._state
        return self._ended or state.close_sent or state.close_received

    @property
    def eof_received(self) -> bool:
        """True once the peer sent EOF, or after ``shutdown(0)`` (paramiko)."""
        return self._read_shut or self._state.eof_received

    @property
    def eof_sent(self) -> bool:
        """True once we sent EOF or CLOSE: no more data will be sent."""
        state = self._state
        return state.eof_sent or state.close_sent

    @property
    def status_event(self) -> Event:
        """Set when the exit status arrived or the channel closed (paramiko)."""
        event = self._status_event
        if event is None:
            event = self._status_event = Event()
            if self._status_done:
                event.set()
        return event

    @status_event.setter
    def status_event(self, event: Event) -> None:
        self._status_event = event

    @property
    def event(self) -> Event:
        """Set when an open we requested was answered, or the channel closed (paramiko)."""
        event = self._open_event
        if event is None:
            event = self._open_event = Event()
            if self._open_done:
                event.set()
        return event

    @event.setter
    def event(self, event: Event) -> None:
        self._open_event = event

    def _set_status_event(self) -> None:
        self._status_done = True
        if self._status_event is not None:
            self._status_event.set()

    def _set_open_event(self) -> None:
        self._open_done = True
        if self._open_event is not None:
            self._open_event.set()

    # -- identity -----------------------------------------------------------------
    def get_id(self) -> int:
        """The local channel id."""
        return self.chanid

    def get_name(self) -> str:
        """The label used in log lines (``[chan <name>]``)."""
        return str(self.chanid) if self._name is None else self._name

    def set_name(self, name: str) -> None:
        """Set the label used in log lines."""
        self._name = name

    def get_transport(self) -> Transport:
        """The owning ``Transport``."""
        assert self.transport is not None
        return self.transport

    def getpeername(self) -> Any:
        """The peer address of the underlying connection."""
        return self.get_transport().getpeername()

    def _log(self, level: int, msg: str, *args: Any) -> None:
        if self._port is not None:
            self._port.logger.log(level, "[chan %s] " + msg, self.get_name(), *args)

    # -- timeouts -------------------------------------------------------------------
    def settimeout(self, timeout: float | None) -> None:
        """Timeout for blocking reads and sends (None: block forever)."""
        self.timeout = timeout

    def gettimeout(self) -> float | None:
        """The current timeout."""
        return self.timeout

    def setblocking(self, blocking: int | bool) -> None:
        """``setblocking(0)`` is ``settimeout(0.0)``; ``setblocking(1)`` is ``settimeout(None)``."""
        self.settimeout(None if blocking else 0.0)

    # -- reading ----------------------------------------------------------------
    def recv(self, nbytes: int) -> bytes:
        """Return 1..nbytes bytes; b"" at EOF; ``socket.timeout`` on timeout."""
        return self._recv_from(self.in_buffer, nbytes)

    def recv_stderr(self, nbytes: int) -> bytes:
        """Like ``recv`` for extended data of type 1 (stderr)."""
        return self._recv_from(self.in_stderr_buffer, nbytes)

    def _recv_from(self, buffer: ByteBuffer, nbytes: int) -> bytes:
        data = buffer.read(nbytes, self.timeout)
        if data and self._port is not None:
            self._port.consume(self.chanid, len(data))
        return data

    def recv_ready(self) -> bool:
        """True if data is buffered (False does not mean closed)."""
        return self.in_buffer.read_ready()

    def recv_stderr_ready(self) -> bool:
        """True if stderr data is buffered."""
        return self.in_stderr_buffer.read_ready()

    # -- sending ----------------------------------------------------------------
    def send(self, s: Sendable) -> int:
        """Send some of ``s``; return how much was sent (0 after EOF sent).

        Blocks while the peer's window is closed; ``socket.timeout`` on
        timeout, ``OSError`` if the channel is closed. For a ``str`` the count
        is in characters, and only whole characters are sent.
        """
        return self._send(s, 0)

    def send_stderr(self, s: Sendable) -> int:
        """Send some of ``s`` as stderr (extended data type 1)."""
        return self._send(s, 1)

    def sendall(self, s: Sendable) -> None:
        """Send all of ``s``; ``OSError`` if the channel closes (or EOF was sent) first."""
        self._sendall(s, 0)

    def sendall_stderr(self, s: Sendable) -> None:
        """Send all of ``s`` as stderr."""
        self._sendall(s, 1)

    def _sendall(self, s: Sendable, stream: int) -> None:
        data = memoryview(s.encode("utf-8") if isinstance(s, str) else s).cast("B")
        while data:
            sent = self._send(data, stream)
            if sent == 0:
                raise OSError("Socket is closed")
            data = data[sent:]
            if data:
                gevent.sleep(0)  # a huge window and a fast peer must not starve the hub

    def _send(self, s: Sendable, stream: int) -> int:
        data = s.encode("utf-8") if isinstance(s, str) else s
        if self.closed:
            raise OSError("Socket is closed")
        if self.eof_sent or not data:
            return 0
        port = self._port
        if port is None:
            raise OSError("Socket is closed")
        self._wait_gate()
        port.wait_clear_to_send(self._send_gave_up, self.timeout != 0.0)
        self._wait_for_window(port)
        if self.closed or self.eof_sent:
            return 0
        if isinstance(s, str):
            limit = min(len(data), port.send_window(self.chanid), SEND_LIMIT)
            data = data[: _utf8_boundary(data, limit)]
        try:
            sent = port.send_data(self.chanid, memoryview(data), stream)
        except LocalProtocolError:
            return 0
        port.flush_soon()
        self._bytes_out += sent
        if isinstance(s, str):
            return len(bytes(data[:sent]).decode("utf-8", "ignore"))
        return sent

    def _wait_gate(self) -> None:
        """Wait while another greenlet runs a request callback for this channel."""
        gate = self._gate
        if gate is None or gate.is_set() or gevent.getcurrent() is self._gate_owner:
            return
        if self.timeout == 0.0 or not gate.wait(self.timeout):
            raise TimeoutError()

    def _send_gave_up(self) -> bool:
        return self.closed

    def _wait_for_window(self, port: ChannelPort) -> None:
        chanid = self.chanid
        while not self.closed and not self.eof_sent and port.send_window(chanid) <= 0:
            held = port.send_held_back(chanid)  # by the send-ahead limit alone
            if self.timeout == 0.0 or port.in_connection_greenlet():
                if held and port.lift_send_ahead(chanid):
                    continue  # a sender that cannot wait for an adjust is not held back
                if self.timeout == 0.0:
                    raise TimeoutError()
                # Only this greenlet reads the window adjust we would wait for.
                self._log(logging.WARNING, "send from a callback needs more window than granted")
                raise TimeoutError("no window: send from a callback would deadlock")
            event = self._window_event
            if event is None:
                event = self._window_event = Event()
            else:
                event.clear()
            wait = self.timeout
            stall_check = held and (wait is None or wait > SEND_AHEAD_STALL)
            if event.wait(SEND_AHEAD_STALL if stall_check else wait):
                continue
            if held and port.lift_send_ahead(chanid):
                continue  # no adjust came in time: the limit gives way
            if not stall_check:
                raise TimeoutError()

    def send_ready(self) -> bool:
        """True if a send would not block.

        A caller that polls before sending cannot wait for an adjust, so the
        send-ahead limit gives way here too (as for a non-blocking send).
        """
        if self.closed or self.eof_sent or self._port is None:
            return True
        port = self._port
        if port.send_window(self.chanid) > 0:
            return True
        return port.send_held_back(self.chanid) and port.lift_send_ahead(self.chanid)

    def send_exit_status(self, status: int) -> None:
        """Send the ``exit-status`` request (RFC 4254 §6.10); call before ``close``."""
        self._exit_sent = status
        self._send_request("exit-status", wire.u32(status & 0xFFFFFFFF))

    def send_exit_signal(
        self,
        signal_name: str,
        core_dumped: bool = False,
        error_message: str = "",
        language: str = "",
    ) -> None:
        """Send ``exit-signal`` (RFC 4254 §6.10) instead of an exit status; call before ``close``.

        ``signal_name`` is given without "SIG" (``"TERM"``, ``"KILL"``), as sshd
        sends it when the command was killed by a signal.
        """
        self._exit_sent = signal_name.removeprefix("SIG")
        self._send_request(
            "exit-signal",
            wire.string(signal_name.removeprefix("SIG"))
            + wire.boolean(core_dumped)
            + wire.string(error_message)
            + wire.string(language),
        )

    def send_request(
        self, kind: str, data: bytes = b"", want_reply: bool = False, timeout: float | None = None
    ) -> bool | None:
        """Send a CHANNEL_REQUEST (geossh extension; e.g. ``keepalive@openssh.com``).

        ``data`` is the request-specific, already encoded part. With
        ``want_reply``, wait for the peer's answer and return True/False (None
        on timeout or close); without, return None at once.
        """
        waiter: list[Any] | None = [Event(), None] if want_reply else None
        if not self._send_request(kind, data, waiter):
            return None
        if waiter is None:
            return None
        waiter[0].wait(timeout)
        return waiter[1]  # type: ignore[no-any-return]

    def _send_request(self, kind: str, data: bytes, waiter: list[Any] | None = None) -> bool:
        port = self._port
        if port is None or self.closed:
            return False
        self._wait_gate()
        try:
            port.send_request(self.chanid, kind, waiter is not None, data)
        except LocalProtocolError:
            return False
        if waiter is not None:
            if self._replies is None:
                self._replies = []
            self._replies.append(waiter)
        port.flush_soon()
        return True

    # -- EOF and close ------------------------------------------------------------
    def shutdown(self, how: int) -> None:
        """0: stop reading; 1: send EOF; 2: both."""
        if how in (0, 2):
            self._read_shut = True
        if how in (1, 2) and self.active and not self.eof_sent and self._port is not None:
            self._wait_gate()
            self._port.send_eof(self.chanid)
            self._port.flush_soon()

    def shutdown_read(self) -> None:
        """Stop reading (``shutdown(0)``)."""
        self.shutdown(0)

    def shutdown_write(self) -> None:
        """Send EOF (``shutdown(1)``)."""
        self.shutdown(1)

    def close(self) -> None:
        """Send EOF and CLOSE; idempotent. Waiting readers and senders wake up.

        The ``fileno()`` pipe is closed too (only when the application closes,
        as in paramiko).
        """
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        if self.closed:
            return
        port = self._port
        if port is not None and self.active:
            gate = self._gate
            if gate is not None and gevent.getcurrent() is not self._gate_owner:
                gate.wait()
            port.close(self.chanid)
            port.flush_soon()
        self._mark_closed()

    def exit_status_ready(self) -> bool:
        """True once an exit status arrived or the channel closed."""
        event = self._status_event
        return self.closed or (event.is_set() if event is not None else self._status_done)

    def recv_exit_status(self) -> int:
        """Wait for the peer's exit status (-1 if none came)."""
        self.status_event.wait()
        return self.exit_status

    def set_combine_stderr(self, combine: bool) -> bool:
        """Deliver stderr through ``recv``; returns the previous setting."""
        old, self.combine_stderr = self.combine_stderr, bool(combine)
        if combine and not old:
            pending = self.in_stderr_buffer.take_nowait(len(self.in_stderr_buffer))
            self.in_buffer.feed(pending)
        return old

    # -- select support -----------------------------------------------------------
    def fileno(self) -> int:
        """An fd readable while data is buffered or the channel is at EOF/closed.

        Works with ``gevent.select`` (and ``select`` after monkey-patching);
        costs two file descriptors until ``close()``.
        """
        if self._pipe is None:
            self._pipe = _ReadyPipe()
            self.in_buffer.on_change = self._update_pipe
            self.in_stderr_buffer.on_change = self._update_pipe
            self._update_pipe()
        return self._pipe.fileno()

    def _update_pipe(self) -> None:
        if self._pipe is not None:
            ready = (
                self.closed
                or self.in_buffer.closed
                or self.in_buffer.read_ready()
                or self.in_stderr_buffer.read_ready()
            )
            self._pipe.update(ready)

    # -- files ----------------------------------------------------------------
    def makefile(self, *params: Any) -> ChannelFile:
        """A file object over this channel (``"r"``, ``"w"``, ``"rb"``, ``"rU"`` …)."""
        return ChannelFile(self, *params)

    def makefile_stderr(self, *params: Any) -> ChannelStderrFile:
        """A file object over the stderr stream (writes send stderr)."""
        return ChannelStderrFile(self, *params)

    def makefile_stdin(self, *params: Any) -> ChannelStdinFile:
        """A file object whose ``close`` also sends EOF."""
        return ChannelStdinFile(self, *params)

    # -- called by the Transport -------------------------------------------------
    @contextlib.contextmanager
    def _request_gate(self) -> Iterator[None]:
        """Hold other greenlets' sends while a request callback runs (and its reply queues)."""
        gate = self._gate = Event()
        self._gate_owner = gevent.getcurrent()
        try:
            yield
        finally:
            self._gate_owner = None
            self._gate = None
            gate.set()

    def _feed(self, data: bytes, stream: int) -> None:
        self._feed_parts((data,), stream)

    def _feed_parts(self, parts: Iterable[bytes], stream: int) -> None:
        parts = tuple(parts)  # the same tuple when given one
        self._bytes_in += sum(map(len, parts))
        if stream == 0 or (stream == 1 and self.combine_stderr):
            self.in_buffer.feed_many(parts)
        elif stream == 1:
            self.in_stderr_buffer.feed_many(parts)
        else:
            self._log(logging.DEBUG, "dropping extended data of type %d", stream)
            if self._port is not None:
                self._port.consume(self.chanid, sum(len(data) for data in parts))

    def _feed_eof(self) -> None:
        self.in_buffer.close()
        self.in_stderr_buffer.close()
        self._update_pipe()

    def _window_opened(self) -> None:
        if self._window_event is not None:
            self._window_event.set()

    def _reply_received(self, success: bool) -> None:
        if self._replies:
            waiter = self._replies.pop(0)
            waiter[1] = success
            waiter[0].set()

    def _set_exit_status(self, data: bytes) -> bool:
        if len(data) != 4:
            return False
        self.exit_status = struct.unpack(">I", data)[0]
        self._set_status_event()
        return True

    def _mark_closed(self) -> None:
        self._ended = True
        self.in_buffer.close()
        self.in_stderr_buffer.close()
        if self._window_event is not None:
            self._window_event.set()
        if self._gate is not None:
            self._gate.set()
        self._set_status_event()
        self._set_open_event()
        while self._replies:
            self._replies.pop(0)[0].set()
        self._replies = None
        self._update_pipe()
        if self._observed and self._port is not None:  # reported once, however it closes
            self._observed = False
            self._port.channel_closed(self)


class _Detached:
    """The state of a channel with no connection: never opened, nothing sent."""

    opened = eof_received = eof_sent = close_received = close_sent = False
    remote_id = -1


_DETACHED = _Detached()


def _utf8_boundary(data: bytes | bytearray | memoryview, limit: int) -> int:
    """The largest cut at or below ``limit`` that does not split a UTF-8 character."""
    if limit >= len(data):
        return len(data)
    cut = limit
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut or limit  # a window smaller than one character: send what fits


class ChannelFile(BufferedFile):
    """A file over a channel's stdout stream (paramiko.ChannelFile)."""

    def __init__(self, channel: Channel, mode: str = "r", bufsize: int = -1) -> None:
        self.channel = channel
        BufferedFile.__init__(self)
        self._set_mode(mode, bufsize)

    def __repr__(self) -> str:
        return f"<geossh.ChannelFile from {self.channel!r}>"

    def _read(self, size: int) -> bytes:
        return self.channel.recv(size)

    def _write(self, data: bytes) -> int:
        self.channel.sendall(data)
        return len(data)


class ChannelStderrFile(ChannelFile):
    """A file over a channel's stderr stream."""

    def _read(self, size: int) -> bytes:
        return self.channel.recv_stderr(size)

    def _write(self, data: bytes) -> int:
        self.channel.sendall_stderr(data)
        return len(data)


class ChannelStdinFile(ChannelFile):
    """A channel file whose ``close`` also shuts down writing."""

    def close(self) -> None:
        super().close()
        self.channel.shutdown_write()
