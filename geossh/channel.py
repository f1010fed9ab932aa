"""``Channel`` and its file wrappers: paramiko's socket-like channel on greenlets.

A Channel is created by the Transport, never by users. Reads block only
the calling greenlet (``socket.timeout`` on timeout, ``b""`` at EOF); sends
wait for the peer's window. Protocol state lives in the core
(``geossh.proto.channels``); this module holds buffers and waits.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import TYPE_CHECKING, Any

from gevent.event import Event

from geossh._green.pipe import ByteBuffer
from geossh.errors import LocalProtocolError
from geossh.file import BufferedFile
from geossh.proto import wire
from geossh.util import ClosingContextManager

if TYPE_CHECKING:
    from geossh.transport import Transport


class _ReadyPipe:
    """An OS pipe that is readable while a channel has data or is at EOF (``fileno``)."""

    def __init__(self) -> None:
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        self._set = False

    def fileno(self) -> int:
        return self._rfd

    def update(self, ready: bool) -> None:
        if ready and not self._set:
            os.write(self._wfd, b"*")
            self._set = True
        elif not ready and self._set:
            try:
                os.read(self._rfd, 1)
            except BlockingIOError:
                pass
            self._set = False

    def close(self) -> None:
        for fd in (self._rfd, self._wfd):
            try:
                os.close(fd)
            except OSError:
                pass


class Channel(ClosingContextManager):
    """One SSH channel: a socket-like object (paramiko.Channel)."""

    def __init__(self, chanid: int) -> None:
        self.chanid = chanid
        self.remote_chanid = 0
        self.transport: Transport | None = None
        self.active: int | bool = False
        self.closed = False
        self.eof_received: int | bool = 0
        self.eof_sent: int | bool = 0
        self.exit_status = -1
        self.combine_stderr = False
        self.origin_addr: tuple[str, int] | None = None
        self.timeout: float | None = None
        self.kind = "session"
        self.in_buffer = ByteBuffer()
        self.in_stderr_buffer = ByteBuffer()
        self.status_event = Event()
        self.event = Event()  # set when an open we requested was answered
        self._window_event = Event()
        self._name = str(chanid)
        self._pipe: _ReadyPipe | None = None
        self._open_error: tuple[int, str] | None = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        extra = ""
        if self.eof_received:
            extra += " (EOF received)"
        if self.eof_sent:
            extra += " (EOF sent)"
        return (
            f"<geossh.Channel {self.chanid} ({state}){extra} "
            f"in-buffer={len(self.in_buffer)} -> {self.transport!r}>"
        )

    # -- identity -----------------------------------------------------------------
    def get_id(self) -> int:
        """The local channel id."""
        return self.chanid

    def get_name(self) -> str:
        """The label used in log lines."""
        return self._name

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
        if data and self.transport is not None:
            self.transport._consumed(self.chanid, len(data))
        return data

    def recv_ready(self) -> bool:
        """True if data is buffered (False does not mean closed)."""
        return self.in_buffer.read_ready()

    def recv_stderr_ready(self) -> bool:
        """True if stderr data is buffered."""
        return self.in_stderr_buffer.read_ready()

    # -- sending ----------------------------------------------------------------
    def send(self, s: bytes | bytearray | memoryview | str) -> int:
        """Send some of ``s``; return the number of bytes sent (0 after EOF sent)."""
        return self._send(s, 0)

    def send_stderr(self, s: bytes | bytearray | memoryview | str) -> int:
        """Send some of ``s`` as stderr (extended data type 1)."""
        return self._send(s, 1)

    def sendall(self, s: bytes | bytearray | memoryview | str) -> None:
        """Send all of ``s``; ``OSError`` if the channel closes first."""
        self._sendall(s, 0)

    def sendall_stderr(self, s: bytes | bytearray | memoryview | str) -> None:
        """Send all of ``s`` as stderr."""
        self._sendall(s, 1)

    def _sendall(self, s: bytes | bytearray | memoryview | str, stream: int) -> None:
        data = memoryview(s.encode("utf-8") if isinstance(s, str) else s).cast("B")
        while data:
            sent = self._send(data, stream)
            if sent == 0:
                raise OSError("Socket is closed")
            data = data[sent:]

    def _send(self, s: bytes | bytearray | memoryview | str, stream: int) -> int:
        if isinstance(s, str):
            s = s.encode("utf-8")
        if self.closed:
            raise OSError("Socket is closed")
        if self.eof_sent:
            return 0
        transport = self.get_transport()
        if not s:
            return 0
        self._wait_for_window(transport)
        if self.closed or self.eof_sent:
            return 0
        try:
            sent = transport._conn.channels.send_data(self.chanid, s, stream)
        except LocalProtocolError:
            return 0
        transport._flush()
        return sent

    def _wait_for_window(self, transport: Transport) -> None:
        channels = transport._conn.channels
        while not self.closed and not self.eof_sent and channels.send_window(self.chanid) <= 0:
            if self.timeout == 0.0:
                raise socket.timeout()
            self._window_event.clear()
            if not self._window_event.wait(self.timeout):
                raise socket.timeout()

    def send_ready(self) -> bool:
        """True if a send would not block."""
        if self.closed or self.eof_sent or self.transport is None:
            return True
        return self.transport._conn.channels.send_window(self.chanid) > 0

    def send_exit_status(self, status: int) -> None:
        """Send the ``exit-status`` request (RFC 4254 §6.10); call before ``close``."""
        self._send_request("exit-status", wire.u32(status & 0xFFFFFFFF))

    def send_exit_signal(
        self, signal_name: str, core_dumped: bool = False, error_message: str = "", language: str = ""
    ) -> None:
        """Send ``exit-signal`` (RFC 4254 §6.10); ``signal_name`` without "SIG" (e.g. "TERM")."""
        self._send_request(
            "exit-signal",
            wire.string(signal_name)
            + wire.boolean(core_dumped)
            + wire.string(error_message)
            + wire.string(language),
        )

    def _send_request(self, kind: str, data: bytes) -> None:
        transport = self.transport
        if transport is None or self.closed:
            return
        try:
            transport._conn.channels.send_request(self.chanid, kind, False, data)
        except LocalProtocolError:
            return
        transport._flush()

    # -- EOF and close ------------------------------------------------------------
    def shutdown(self, how: int) -> None:
        """0: stop reading; 1: send EOF; 2: both."""
        if how in (0, 2):
            self.eof_received = 1
        if how in (1, 2) and not self.eof_sent:
            self.eof_sent = True
            if self.transport is not None:
                self.transport._conn.channels.send_eof(self.chanid)
                self.transport._flush()

    def shutdown_read(self) -> None:
        """Stop reading (``shutdown(0)``)."""
        self.shutdown(0)

    def shutdown_write(self) -> None:
        """Send EOF (``shutdown(1)``)."""
        self.shutdown(1)

    def close(self) -> None:
        """Send EOF and CLOSE; idempotent. Waiting readers and senders wake up."""
        if self.closed:
            return
        transport = self.transport
        if transport is not None and self.active:
            transport._conn.channels.close(self.chanid)
            transport._flush()
        self._mark_closed()

    def exit_status_ready(self) -> bool:
        """True once an exit status arrived or the channel closed."""
        return self.closed or self.status_event.is_set()

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
        """An fd that is readable while data is buffered or the channel is at EOF."""
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
        """A file object over this channel (``"r"``, ``"w"``, ``"rb"`` …)."""
        return ChannelFile(self, *params)

    def makefile_stderr(self, *params: Any) -> ChannelStderrFile:
        """A file object writing stderr."""
        return ChannelStderrFile(self, *params)

    def makefile_stdin(self, *params: Any) -> ChannelStdinFile:
        """A file object whose ``close`` also sends EOF."""
        return ChannelStdinFile(self, *params)

    # -- called by the Transport -------------------------------------------------
    def _feed(self, data: bytes, stream: int) -> None:
        if stream == 0 or (stream == 1 and self.combine_stderr):
            self.in_buffer.feed(data)
        elif stream == 1:
            self.in_stderr_buffer.feed(data)
        elif self.transport is not None:
            self.transport._consumed(self.chanid, len(data))

    def _feed_eof(self) -> None:
        self.eof_received = True
        self.in_buffer.close()
        self.in_stderr_buffer.close()
        self._update_pipe()

    def _window_opened(self) -> None:
        self._window_event.set()

    def _set_exit_status(self, data: bytes) -> bool:
        if len(data) != 4:
            return False
        self.exit_status = struct.unpack(">I", data)[0]
        self.status_event.set()
        return True

    def _mark_closed(self) -> None:
        self.closed = True
        self.in_buffer.close()
        self.in_stderr_buffer.close()
        self._window_event.set()
        self.status_event.set()
        self.event.set()
        self._update_pipe()


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
