"""The connection greenlet's I/O: socket → core → events, and core → socket.

``SocketPump.run`` reads large chunks, feeds the core, hands every event to
a dispatcher, and writes what the core produced. Timers come from the
core's ``deadline()`` and are enforced through the socket timeout, so an
idle connection costs no CPU. ``flush`` may be called from any greenlet:
whoever finds output queued writes it, and a greenlet already writing
drains what others queue meanwhile, so output keeps the core's order.

Output is written straight from the core's buffer (no copy). Backpressure:
while one greenlet is blocked writing (a peer that does not read), others
leave their output in the core and wait once it holds more than
``HIGH_WATER`` bytes, so a sender blocks instead of growing memory.
``wait_progress`` lets a greenlet wait for the next round of the read loop
or of the writer (e.g. for a key exchange to finish).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from typing import Any, Protocol

import gevent
import gevent.socket
from gevent.event import Event as GreenEvent
from gevent.exceptions import ConcurrentObjectUseError
from gevent.monkey import get_original

from geossh._green import heap
from geossh.proto.connection import Connection
from geossh.proto.events import Event

RECV_SIZE = 256 * 1024
# Reads start this small (a handshake message fits); one that fills it
# switches to reading RECV_SIZE into the core's buffer (a stream).
SMALL_READ = 32 * 1024
# After a read shorter than this (a handshake message, a request) the next
# read waits for the socket to become readable instead of trying first.
DRAINED_BELOW = 4096
# After this long without input a connection frees what it can rebuild; so
# does one that waits after a short read with less than QUIET_BELOW bytes moved
# since its previous such wait (a busy one never does: nothing is rebuilt
# while data flows).
IDLE_AFTER = 0.25
QUIET_BELOW = 64 * 1024
HIGH_WATER = 1 << 20  # encoded bytes queued behind a blocked writer
# An application greenlet that wrote this much since it last yielded yields
# once (gevent.sleep(0)) after its flush, so bulk senders take turns in small
# slices and a short request on another connection is not queued behind whole
# channel windows (benchmarks: exec p99 under 200 streams 630 ms -> ~120 ms).
YIELD_AFTER = 64 * 1024
# ``flush_soon`` writes at once (blocking) when this much output is queued.
FLUSH_NOW = 64 * 1024
# While a packet is partly received and at least this many of its bytes are
# missing, the socket's SO_RCVLOWAT makes it readable only once they are all
# there: a bulk sender slower than us wakes us once per packet, not per segment.
LOWAT_FROM = 2048
# After a read of at least BULK_READ bytes (a stream is arriving) the reader
# waits up to COALESCE_WAIT seconds for COALESCE_BYTES, so one wake-up moves
# several packets (interrupt coalescing; only a bulk sender sees the delay).
BULK_READ = 16 * 1024
COALESCE_BYTES = 224 * 1024  # under RECV_SIZE: one read takes it all
COALESCE_WAIT = 0.001


_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_TCP_INFO = getattr(socket, "TCP_INFO", None)  # Linux
_TCPI_MIN_RTT = struct.Struct("=I")  # struct tcp_info's tcpi_min_rtt (microseconds) ...
_TCPI_MIN_RTT_AT = 148  # ... at this offset since Linux 4.6
#: ``.view``: a SMALL_READ buffer for message-sized reads, one per OS thread (one
#: hub). The unpatched thread-local: under ``monkey.patch_all()`` ``threading.local``
#: is per greenlet, which gave every connection its own 32 KiB buffer.
_scratch = get_original("_thread", "_local")()


class PumpOwner(Protocol):
    """What the pump calls back (the Transport's ``EventDispatcher``)."""

    def _dispatch(self, event: Event) -> None:
        """Handle one event of the core."""


class ConnectionEnded(Exception):
    """The peer closed the TCP connection."""


_TIMED_OUT = object()  # what the deadline timer wakes a parked reader with


class SocketPump:
    """Moves bytes between one socket and one protocol core."""

    __slots__ = (
        "_bulk",
        "_drained",
        "_flush_scheduled",
        "_green",
        "_hub",
        "_idle",
        "_lowat",
        "_progress",
        "_quiet_mark",
        "_run_greenlet",
        "_streaming",
        "_unyielded",
        "_write_error",
        "_writing",
        "bytes_in",
        "bytes_out",
        "conn",
        "ended",
        "owner",
        "sock",
    )

    def __init__(self, sock: Any, conn: Connection, owner: PumpOwner) -> None:
        self.sock = sock
        self.conn = conn
        self.owner = owner  # one reference, not three bound methods (64 bytes each)
        self.bytes_in = 0
        self.bytes_out = 0
        self._writing = False
        self._write_error: BaseException | None = None
        self._progress: GreenEvent | None = None
        self.ended = False  # the read loop has stopped
        # A gevent socket is read through its OS socket (see ``_receive``).
        self._green = isinstance(sock, gevent.socket.socket)
        # SO_RCVLOWAT now (1: the default), or 0 where it is not used (not TCP).
        self._lowat = 1 if self._green and sock.family in _TCP_FAMILIES else 0
        self._streaming = False  # reading into the core's buffer (see ``_receive``)
        self._bulk = False  # the last read was a stream's: coalesce the next wake-up
        self._drained = False  # the last read was short: wait before reading again
        self._idle = False  # freed what it could since the last input (see IDLE_AFTER)
        self._quiet_mark = 0  # bytes_in + bytes_out at the last wait after a short read
        self._run_greenlet: Any = None
        self._unyielded = 0  # bytes written by application greenlets since one yielded
        self._hub = gevent.get_hub()
        self._flush_scheduled = False  # a ``_deferred_flush`` is queued in the hub
        heap.settle()

    def run(self) -> None:
        """Read and dispatch until the connection ends; raises why it ended."""
        conn = self.conn
        self._run_greenlet = gevent.getcurrent()
        try:
            self.flush_soon()
            while not conn.closed:
                if not self._receive():
                    conn.handle_timer(time.monotonic())
                self.drain_events()
                if self._flush_scheduled or conn.closed:  # input kept coming, or the end
                    self.flush()
                else:
                    self.flush_soon()
                self._signal_progress()
        finally:
            self.ended = True
            self._signal_progress()

    def drain_events(self) -> None:
        """Hand every ready event to the dispatcher."""
        next_event = self.conn.next_event
        dispatch = self.owner._dispatch
        event = next_event()
        while event is not None:
            dispatch(event)
            event = next_event()

    def _receive(self) -> bool:
        """Read one chunk into the core; False when a deadline passed first.

        Raises ``ConnectionEnded`` at EOF. A gevent socket is read without
        blocking first (under load the data is usually there, and no timer is
        armed then), into the core's own buffer once a read filled
        ``SMALL_READ``: a stream is then read into the same memory each time.
        """
        if not self._green:
            return self._receive_blocking()
        while True:
            if self._drained:  # a short read emptied the socket: a new try would fail
                self._drained = False
                moved = self.bytes_in + self.bytes_out
                if moved - self._quiet_mark < QUIET_BELOW and not self._idle:
                    # Little traffic since the last such wait (a handshake, a
                    # request, a keystroke): free now what the next packet can
                    # rebuild, so other connections reuse the memory at once.
                    self._idle = True
                    self.conn.idle()
                self._quiet_mark = moved
                if not self._wait_readable():
                    return False
            count = self._read_nowait()
            if count > 0:
                return True
            if count == 0:
                raise ConnectionEnded("EOF from peer")
            if not self._wait_readable():
                return False

    def _read_nowait(self) -> int:
        """One non-blocking read into the core: the byte count, 0 at EOF, -1 if none."""
        raw = self.sock._sock
        conn = self.conn
        view = conn.receive_buffer(RECV_SIZE) if self._streaming else None
        if view is None:
            # Into this thread's scratch buffer, then copied at its real size:
            # no 32 KiB allocation per message (that fragments the heap).
            scratch = getattr(_scratch, "view", None)
            if scratch is None:
                scratch = _scratch.view = memoryview(bytearray(SMALL_READ))
            try:
                count = raw.recv_into(scratch)
            except BlockingIOError:
                return -1
            if count:
                data = scratch[:count].tobytes()
                self.bytes_in += count
                conn.receive_data(data, time.monotonic())
                self._idle = False
                self._streaming = self._bulk = count == SMALL_READ
                # A message-sized read: the peer now waits for our answer.
                self._drained = count < DRAINED_BELOW
            return int(count)
        try:
            count = raw.recv_into(view)
        except BlockingIOError:
            return -1
        finally:
            view.release()
        if count:
            self.bytes_in += count
            conn.received(count, time.monotonic())
            self._idle = False
            self._drained = count < RECV_SIZE  # the socket is empty: wait, do not retry
        self._bulk = count >= BULK_READ
        return int(count)

    def _wait_readable(self) -> bool:
        """Wait until the socket is readable; False when a deadline passed first.

        After ``IDLE_AFTER`` seconds without input the connection gives back
        what its next packet can rebuild (``Connection.idle``: the receive
        buffer of a stream, cipher state); a busy connection never pauses
        that long, so nothing is rebuilt while it streams.
        """
        if self._lowat:
            if self._bulk and self._wait_coalesced():
                return True
            self._set_lowat(self.conn.bytes_missing())
        deadline = self.conn.deadline()
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            idle_cap = not self._idle and (timeout is None or timeout > IDLE_AFTER)
            if self._park(IDLE_AFTER if idle_cap else timeout):
                return True
            if not idle_cap:
                return False
            self._idle = True
            self._streaming = False
            self.conn.idle()

    def _park(self, seconds: float | None) -> bool:
        """Wait until the socket is readable (True) or ``seconds`` passed (False).

        What ``gevent.socket.wait`` does, leaner while parked: the greenlet's
        own ``switch`` is the callback of the read watcher and of the deadline
        (a bare loop timer, not the socket's timeout: other greenlets write to
        the same socket and must never inherit a read deadline), with no
        Waiter, Timeout or exception. A spurious wake-up only costs a read
        that finds nothing. Raises if the socket is closed meanwhile (gevent
        throws into the greenlet its read watcher would wake).
        """
        watcher = self.sock._read_event
        if watcher.callback is not None:
            raise ConcurrentObjectUseError(f"socket already read by {watcher.callback!r}")
        switch = gevent.getcurrent().switch
        timer = None
        if seconds is not None:
            timer = self._hub.loop.timer(seconds)
            timer.start(switch, _TIMED_OUT)
        watcher.start(switch)
        try:
            return self._hub.switch() is not _TIMED_OUT
        finally:
            watcher.stop()
            if timer is not None:
                timer.close()

    def _wait_coalesced(self) -> bool:
        """While a stream arrives, wait briefly for ``COALESCE_BYTES``; False if none came.

        Only the reader waits: a peer that stops early (the end of a stream,
        a full window) costs at most ``COALESCE_WAIT`` of delay, after which
        the mark drops back to the packet being received.
        """
        self._set_lowat(max(self.conn.bytes_missing(), COALESCE_BYTES))
        if not self._lowat:
            return False
        if self._park(COALESCE_WAIT):
            return True
        self._bulk = False
        return False

    def _set_lowat(self, missing: int) -> None:
        """Be woken once ``missing`` bytes are there (SO_RCVLOWAT), or at once if few.

        EOF, errors and our deadlines still wake the reader; with no packet
        pending the mark is back at 1 byte, so a small message is never held.
        """
        lowat = missing if missing >= LOWAT_FROM else 1
        if lowat != self._lowat:
            try:
                self.sock._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
            except OSError:
                self._lowat = 0  # not supported here: read as before
                return
            self._lowat = lowat

    def _receive_blocking(self) -> bool:
        """Socket-like objects other than gevent sockets: one blocking ``recv``."""
        deadline = self.conn.deadline()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        data = None
        with gevent.Timeout(timeout, False):
            try:
                data = bytes(self.sock.recv(RECV_SIZE))
            except OSError:
                raise
            except Exception as exc:  # a socket-like object's "peer gone" (EOFError...)
                raise ConnectionEnded(f"recv: {exc!r}") from exc
        if data is None:
            return False
        if not data:
            raise ConnectionEnded("EOF from peer")
        self.bytes_in += len(data)
        self.conn.receive_data(data, time.monotonic())
        return True

    def min_round_trip(self) -> float | None:
        """The shortest round trip the kernel measured on this TCP connection, in seconds.

        The path's length: unlike the smoothed estimate (``tcpi_rtt``, which
        a handshake's computing and delayed ACKs inflate to milliseconds on
        loopback), the minimum is what the wire itself takes. None where it
        is not known (not TCP, not Linux 4.6 or later, no sample yet).
        """
        if _TCP_INFO is None or getattr(self.sock, "family", None) not in _TCP_FAMILIES:
            return None
        size = _TCPI_MIN_RTT_AT + _TCPI_MIN_RTT.size
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, size)
        except OSError:
            return None
        if len(info) < size:
            return None
        rtt = _TCPI_MIN_RTT.unpack_from(info, _TCPI_MIN_RTT_AT)[0]
        return rtt / 1e6 if rtt and rtt != 0xFFFFFFFF else None

    def linger(self, close: list[Any], timeout: float = 2.0, limit: int = 1 << 20) -> None:
        """Half-close, discard input until EOF, ``timeout`` or ``limit`` bytes, then close.

        Runs in its own greenlet after a final DISCONNECT, so the kernel does
        not answer unread input with RST (which can destroy the DISCONNECT
        in flight) and nobody waits for it.
        """
        try:
            self.sock.shutdown(1)  # SHUT_WR: the peer sees our DISCONNECT, then EOF
            received = 0
            with gevent.Timeout(timeout, False):
                while received < limit:
                    data = self.sock.recv(65536)
                    if not data:
                        break
                    received += len(data)
        except Exception:
            pass
        finally:
            for sock in close:
                with contextlib.suppress(Exception):
                    sock.close()

    def flush(self) -> None:
        """Write everything the core has queued (from any greenlet).

        If another greenlet is writing, it sends our output too; we only wait
        while more than ``HIGH_WATER`` bytes are queued behind it.
        """
        if self._write_error is not None:
            return
        if self._writing:
            while self._writing and self.conn.output_pending > HIGH_WATER:
                self.wait_progress()
            return
        self._write()

    def _write(self) -> None:
        """Write the core's output until none is left (may block this greenlet).

        Output queued by other greenlets while this one waits for the socket
        goes out in the same loop, so the core's order is kept.
        """
        self._writing = True
        before = self.bytes_out
        try:
            while self.conn.output_pending:
                if self._green:
                    self._send_from_core(wait=True)
                else:
                    self._sendall_blocking(self.conn.data_to_send())
                self._signal_progress()
        except OSError as exc:
            self._write_error = exc
        finally:
            self._writing = False
            self._signal_progress()
        written = self.bytes_out - before
        if written and gevent.getcurrent() is not self._run_greenlet:
            self._unyielded += written
            if self._unyielded >= YIELD_AFTER:
                self._unyielded = 0
                gevent.sleep(0)

    def _send_from_core(self, wait: bool) -> None:
        """One ``send`` straight from the core's output buffer (no copy).

        The view is released before any wait: other greenlets may queue more
        output (growing the buffer) meanwhile. With ``wait``, a full socket
        is waited for (the socket's timeout applies); without, it is left
        to a writing greenlet.
        """
        view = self.conn.output()
        try:
            sent = self.sock._sock.send(view)
        except BlockingIOError:
            sent = 0
        finally:
            view.release()
        if sent:
            self.conn.output_sent(sent)
            self.bytes_out += sent
        elif wait:
            self.sock._wait(self.sock._write_event)

    def flush_soon(self) -> None:
        """Write the core's output once the calling greenlet yields (small output).

        Output queued by several calls before the next switch (data, then
        exit-status, EOF and CLOSE; the replies to a burst of requests) then
        goes out in one system call. Output of ``FLUSH_NOW`` bytes or more is
        written at once, as ``flush`` does, so a bulk sender still waits for
        the socket.
        """
        if self._write_error is not None:
            return
        if self._writing:
            self.flush()  # the writer takes it (we may wait behind it)
            return
        pending = self.conn.output_pending
        if pending >= FLUSH_NOW and gevent.getcurrent() is not self._hub:
            self._write()
        elif pending and not self._flush_scheduled:
            self._flush_scheduled = True
            self._hub.loop.run_callback(self._deferred_flush)

    def _deferred_flush(self) -> None:
        """Runs in the hub: write without blocking; a greenlet finishes what is left."""
        self._flush_scheduled = False
        if self._writing or self._write_error is not None or not self.conn.output_pending:
            return  # a writer drains the output, or the connection is gone
        if self._green:
            try:
                self._send_from_core(wait=False)
            except OSError as exc:
                self._write_error = exc
                self._signal_progress()
                return
            self._signal_progress()
        if self.conn.output_pending:  # the socket is full: a greenlet waits for it
            gevent.spawn(self.flush)

    def wait_progress(self, timeout: float | None = None) -> bool:
        """Wait until the writer sent a chunk or the read loop ran once; False on timeout."""
        if self._progress is None:
            self._progress = GreenEvent()
        return bool(self._progress.wait(timeout))

    def _signal_progress(self) -> None:
        event, self._progress = self._progress, None
        if event is not None:
            event.set()

    def _sendall_blocking(self, data: bytes) -> None:
        """Socket-like objects other than gevent sockets: ``sendall`` (or ``send`` in a loop)."""
        self.bytes_out += len(data)
        try:
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
        except OSError:
            raise
        except Exception as exc:  # a socket-like object's "peer gone" (EOFError...)
            raise OSError(f"send: {exc!r}") from exc

    @property
    def write_error(self) -> BaseException | None:
        """Why writing stopped, if it did."""
        return self._write_error
