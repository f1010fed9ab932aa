"""Blocking byte buffers for channel reads, woken by data, EOF or close.

One reader at a time: a second concurrent reader is an error (it would
steal the first one's data unpredictably). Waiting blocks only the calling
greenlet; ``close`` wakes it. ``on_change`` is called when the buffer
becomes readable, drained or closed (it drives ``Channel.fileno``). Memory
is bounded by the channel window, not here: the peer may not send more
than we granted. Chunks may be bytes or memoryviews of immutable bytes
(bulk data arrives as views of the decrypted packet); a read always
returns ``bytes``, gathering the whole chunks that fit in one copy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from gevent.event import Event
from gevent.exceptions import ConcurrentObjectUseError

#: A read gathers whole chunks up to this size: larger joins would be fresh
#: mmap-sized allocations (page faults) costing more than the calls saved.
GATHER_LIMIT = 64 * 1024


class PipeTimeout(TimeoutError):
    """A read timed out (paramiko.buffered_pipe.PipeTimeout; also a ``socket.timeout``)."""


class ByteBuffer:
    """An in-memory byte stream with a blocking ``read``.

    The chunk queue exists only while bytes are buffered and the event only
    once a reader waited, so an idle channel's buffers cost about 100 bytes.
    """

    __slots__ = ("_chunks", "_closed", "_event", "_offset", "_reading", "_size", "on_change")

    def __init__(self) -> None:
        self._chunks: deque[bytes | memoryview] | None = None  # None while empty
        self._offset = 0  # consumed bytes of _chunks[0]
        self._size = 0
        self._closed = False
        self._event: Event | None = None  # created by the first wait
        self._reading = False
        self.on_change: Callable[[], None] | None = None

    def __len__(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        """True after EOF: no more data will arrive."""
        return self._closed

    def feed(self, data: bytes | str) -> None:
        """Append data (a ``str`` is UTF-8 encoded, as paramiko does) and wake the reader."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if data:
            self.feed_many((data,))

    def feed_many(self, parts: Iterable[bytes]) -> None:
        """Append several chunks in order and wake the reader once."""
        chunks = self._chunks
        if chunks is None:
            chunks = self._chunks = deque()
        size = self._size
        for data in parts:
            if data:
                chunks.append(data)
                size += len(data)
        if size == self._size:
            if not size:
                self._chunks = None
            return
        self._size = size
        if self._event is not None:
            self._event.set()
        if self.on_change is not None:
            self.on_change()

    def close(self) -> None:
        """Mark EOF; a blocked reader drains what is left, then gets b""."""
        self._closed = True
        if self._event is not None:
            self._event.set()
        if self.on_change is not None:
            self.on_change()

    def read_ready(self) -> bool:
        """True if at least one byte is buffered."""
        return self._size > 0

    def wait(self, timeout: float | None) -> bool:
        """Block until data or EOF; False on timeout."""
        if self._size or self._closed:
            return True
        if self._reading:
            raise ConcurrentObjectUseError("another greenlet is already reading this channel")
        self._reading = True
        try:
            event = self._event
            if event is None:
                event = self._event = Event()
            else:
                event.clear()
            return bool(event.wait(timeout)) or bool(self._size) or self._closed
        finally:
            self._reading = False

    def read(self, nbytes: int, timeout: float | None = None) -> bytes:
        """Return 1..nbytes bytes; b"" at EOF; ``PipeTimeout`` (a ``socket.timeout``) on timeout."""
        if nbytes <= 0:
            return b""
        if not self._size:
            if self._closed:
                return b""
            if timeout == 0.0 or not self.wait(timeout):
                raise PipeTimeout()
            if not self._size:
                return b""
        return self._take(nbytes)

    def take_nowait(self, nbytes: int) -> bytes:
        """Return up to ``nbytes`` buffered bytes without waiting."""
        return self._take(nbytes) if self._size and nbytes > 0 else b""

    def _take(self, nbytes: int) -> bytes:
        chunks = self._chunks
        assert chunks is not None  # _size > 0
        first = chunks[0]
        start = self._offset
        available = len(first) - start
        if nbytes < available:
            data = bytes(first[start : start + nbytes])
            self._offset = start + nbytes
        else:
            chunks.popleft()
            self._offset = 0
            piece = first[start:] if start else first
            limit = min(nbytes, GATHER_LIMIT)
            if chunks and available + len(chunks[0]) <= limit:
                # Whole chunks that fit are gathered: one read, one copy.
                parts = [piece]
                got = available
                while chunks and got + len(chunks[0]) <= limit:
                    chunk = chunks.popleft()
                    parts.append(chunk)
                    got += len(chunk)
                data = b"".join(parts)
            else:
                data = bytes(piece)  # a no-op for bytes; copies a memoryview
        self._size -= len(data)
        if not self._size:
            self._chunks = None
            if self.on_change is not None:
                self.on_change()
        return data
