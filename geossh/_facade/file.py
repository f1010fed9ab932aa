"""``BufferedFile``: paramiko's file-like wrapper (paramiko.file), used by channel files.

Mode letters: ``r`` read, ``w`` write, ``a`` append, ``+`` both, ``b``
binary (``readline`` and iteration return bytes instead of str), ``U``
universal newlines. ``read`` always returns bytes; ``write`` takes str
(UTF-8) or bytes. ``bufsize`` 0 or negative: unbuffered writes; 1: line
buffered; larger: buffered up to that size.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Iterator

from geossh._facade.util import ClosingContextManager

_CHUNK = 8192


class BufferedFile(ClosingContextManager):
    """A buffered file over ``_read``/``_write`` primitives that subclasses supply."""

    SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
    FLAG_READ, FLAG_WRITE, FLAG_APPEND = 0x1, 0x2, 0x4
    FLAG_BINARY, FLAG_BUFFERED, FLAG_LINE_BUFFERED, FLAG_UNIVERSAL_NEWLINE = 0x10, 0x20, 0x40, 0x80

    def __init__(self) -> None:
        self.newlines: str | tuple[str, ...] | None = None
        self._flags = 0
        self._bufsize = _CHUNK
        self._wbuffer = io.BytesIO()
        self._rbuffer = b""
        self._at_trailing_cr = False
        self._closed = False
        self._pos = self._realpos = 0
        self._size = 0

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # flushing at collection: nowhere to report
            self.close()

    def __iter__(self) -> Iterator[str | bytes]:
        if self._closed:
            raise ValueError("I/O operation on closed file")
        return self

    def __next__(self) -> str | bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    next = __next__

    @property
    def closed(self) -> bool:
        """True after ``close``."""
        return self._closed

    def close(self) -> None:
        """Flush and mark closed (the underlying channel stays open)."""
        if getattr(self, "_closed", True):
            return
        self.flush()
        self._closed = True

    def flush(self) -> None:
        """Write out buffered data."""
        data = self._wbuffer.getvalue()
        if data:
            self._write_all(data)
        self._wbuffer = io.BytesIO()

    def readable(self) -> bool:
        """True if opened for reading."""
        return bool(self._flags & self.FLAG_READ)

    def writable(self) -> bool:
        """True if opened for writing."""
        return bool(self._flags & self.FLAG_WRITE)

    def seekable(self) -> bool:
        """Channel files cannot seek."""
        return False

    def seek(self, offset: int, whence: int = 0) -> int:
        """Not supported on channel files."""
        raise OSError("File does not support seeking.")

    def tell(self) -> int:
        """Current position (bytes read or written so far)."""
        return self._pos

    def readinto(self, buff: bytearray | memoryview) -> int:
        """Read into ``buff``; return the count."""
        data = self.read(len(buff))
        buff[: len(data)] = data
        return len(data)

    def read(self, size: int | None = None) -> bytes:
        """Read up to ``size`` bytes (all until EOF when None or negative)."""
        self._check_readable()
        if size is None or size < 0:
            parts = [self._rbuffer]
            self._rbuffer = b""
            while True:
                data = self._read_some(max(self._bufsize, _CHUNK * 4))
                if data is None:
                    break
                parts.append(data)
            result = b"".join(parts)
            self._pos += len(result)
            return result
        if size > len(self._rbuffer):
            parts, have = [self._rbuffer], len(self._rbuffer)
            while have < size:  # collect parts: one join, not a copy per chunk
                wanted = size - have
                if self._flags & self.FLAG_BUFFERED:  # unbuffered: never read ahead
                    wanted = max(self._bufsize, wanted)
                data = self._read_some(wanted)
                if data is None:
                    break
                parts.append(data)
                have += len(data)
            self._rbuffer = b"".join(parts)
        result, self._rbuffer = self._rbuffer[:size], self._rbuffer[size:]
        self._pos += len(result)
        return result

    def readline(self, size: int | None = None) -> str | bytes:
        """Read one line (str unless the file is binary); at most ``size`` bytes."""
        self._check_readable()
        universal = self._flags & self.FLAG_UNIVERSAL_NEWLINE
        line = bytearray(self._rbuffer)
        scanned = 0  # bytes of ``line`` known to hold no line end
        truncated = False
        while True:
            if self._at_trailing_cr and universal and line:
                if line[:1] == b"\n":
                    del line[:1]
                    self._record_newline("\r\n")
                else:
                    self._record_newline("\r")
                self._at_trailing_cr = False
            if size is not None and size >= 0 and len(line) >= size:
                self._rbuffer = bytes(line[size:])
                del line[size:]
                truncated = True
                break
            pos = line.find(b"\n", scanned)
            if universal:
                rpos = line.find(b"\r", scanned)
                if rpos >= 0 and (rpos < pos or pos < 0):
                    pos = rpos
            if pos >= 0:
                break
            scanned = len(line)
            data = self._read_some(self._bufsize)
            if data is None:
                self._rbuffer = b""
                self._pos += len(line)
                return self._line_result(bytes(line))
            line += data
        if not truncated:
            xpos = pos + 1
            if line[pos : pos + 1] == b"\r" and line[xpos : xpos + 1] == b"\n":
                xpos += 1
            self._rbuffer = bytes(line[xpos:])
            lf = bytes(line[pos:xpos])
            del line[pos:]
            line += b"\n"
            if len(self._rbuffer) == 0 and lf == b"\r":
                self._at_trailing_cr = True
            else:
                self._record_newline(lf.decode("ascii"))
        self._pos += len(line)
        return self._line_result(bytes(line))

    def _line_result(self, line: bytes) -> str | bytes:
        return line if self._flags & self.FLAG_BINARY else line.decode("utf-8")

    def readlines(self, sizehint: int | None = None) -> list[str | bytes]:
        """Read lines until EOF (or about ``sizehint`` bytes)."""
        lines: list[str | bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
            if sizehint is not None and total >= sizehint:
                break
        return lines

    def xreadlines(self) -> BufferedFile:
        """Iterate over lines (kept for compatibility)."""
        return self

    def write(self, data: str | bytes | bytearray | memoryview) -> None:
        """Write str (UTF-8) or bytes, honouring the buffering mode."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if self._closed:
            raise OSError("File is closed")
        if not self._flags & self.FLAG_WRITE:
            raise OSError("File not open for writing")
        if not self._flags & self.FLAG_BUFFERED:
            self._write_all(bytes(data))
            return
        self._wbuffer.write(data)
        if self._flags & self.FLAG_LINE_BUFFERED:
            last = self._wbuffer.getvalue().rfind(b"\n")
            if last >= 0:
                buffered = self._wbuffer.getvalue()
                self._wbuffer = io.BytesIO()
                self._wbuffer.write(buffered[last + 1 :])
                self._write_all(buffered[: last + 1])
            return
        if self._wbuffer.tell() >= self._bufsize:
            self.flush()

    def writelines(self, sequence: Iterable[str | bytes]) -> None:
        """Write each item of ``sequence``."""
        for line in sequence:
            self.write(line)

    def _read_some(self, size: int) -> bytes | None:
        """One ``_read``; None at EOF (``EOFError`` or an empty result, as in paramiko).

        Emptiness is ``len(data) == 0``, not falsiness: an object that is
        empty but truthy (a mock) must end the loop, not spin it forever.
        """
        try:
            data = self._read(size)
        except EOFError:
            return None
        if data is None or len(data) == 0:
            return None
        return data

    # -- for subclasses -------------------------------------------------------
    def _read(self, size: int) -> bytes:
        raise OSError("read not implemented")

    def _write(self, data: bytes) -> int:
        raise OSError("write not implemented")

    def _get_size(self) -> int:
        return 0

    def _set_mode(self, mode: str = "r", bufsize: int = -1) -> None:
        self._bufsize = _CHUNK
        if bufsize < 0:
            bufsize = 0
        if bufsize == 1:
            self._flags |= self.FLAG_BUFFERED | self.FLAG_LINE_BUFFERED
        elif bufsize > 1:
            self._bufsize = bufsize
            self._flags |= self.FLAG_BUFFERED
            self._flags &= ~self.FLAG_LINE_BUFFERED
        if "r" in mode or "+" in mode:
            self._flags |= self.FLAG_READ
        if "w" in mode or "+" in mode:
            self._flags |= self.FLAG_WRITE
        if "a" in mode:
            self._flags |= self.FLAG_WRITE | self.FLAG_APPEND
            self._size = self._get_size()
            self._pos = self._realpos = self._size
        if "b" in mode:
            self._flags |= self.FLAG_BINARY
        if "U" in mode:
            self._flags |= self.FLAG_UNIVERSAL_NEWLINE
            self.newlines = None

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            count = self._write(bytes(view))
            view = view[count:]
            self._pos += count
            self._realpos += count

    def _record_newline(self, newline: str) -> None:
        if not self._flags & self.FLAG_UNIVERSAL_NEWLINE:
            return
        if self.newlines is None:
            self.newlines = newline
        elif self.newlines != newline and isinstance(self.newlines, str):
            self.newlines = (self.newlines, newline)
        elif isinstance(self.newlines, tuple) and newline not in self.newlines:
            self.newlines += (newline,)

    def _check_readable(self) -> None:
        if self._closed:
            raise OSError("File is closed")
        if not self._flags & self.FLAG_READ:
            raise OSError("File is not open for reading")
