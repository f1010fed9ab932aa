"""SSH data types (RFC 4251 §5): encoders and a bounds-checked ``Reader``.

Every decoder checks lengths against the bytes actually present before it
slices, so a hostile length can never cause an allocation or a read past the
end; violations raise ``RemoteProtocolError``. Pure: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from geossh.proto.errors import RemoteProtocolError

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
u32_pack = _U32.pack
u64_pack = _U64.pack
u32_unpack_from = _U32.unpack_from


def byte(value: int) -> bytes:
    """Encode one byte."""
    return bytes((value,))


def boolean(value: bool) -> bytes:
    """Encode a boolean."""
    return b"\x01" if value else b"\x00"


def u32(value: int) -> bytes:
    """Encode a uint32."""
    return _U32.pack(value)


def u64(value: int) -> bytes:
    """Encode a uint64."""
    return _U64.pack(value)


def string(value: bytes | bytearray | memoryview | str) -> bytes:
    """Encode an SSH string (str is UTF-8 encoded)."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    return _U32.pack(len(value)) + bytes(value)


def mpint(value: int) -> bytes:
    """Encode a multiple-precision integer in two's complement (RFC 4251 §5)."""
    if value == 0:
        return b"\x00\x00\x00\x00"
    length = (value.bit_length() + 8) // 8  # room for the sign bit
    return _U32.pack(length) + value.to_bytes(length, "big", signed=True)


def mpint_from_unsigned(data: bytes) -> bytes:
    """Encode big-endian unsigned bytes as an mpint (e.g. a curve25519 secret)."""
    data = data.lstrip(b"\x00")
    if data and data[0] & 0x80:
        data = b"\x00" + data
    return _U32.pack(len(data)) + data


def name_list(names: Iterable[str | bytes]) -> bytes:
    """Encode a comma-separated name-list."""
    parts = [n.encode("ascii") if isinstance(n, str) else n for n in names]
    return string(b",".join(parts))


class Reader:
    """Sequential, bounds-checked reader over one message's bytes."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview, start: int = 0) -> None:
        self._data = bytes(data) if not isinstance(data, bytes) else data
        self._pos = start
        self._end = len(self._data)

    @property
    def position(self) -> int:
        """Offset of the next unread byte."""
        return self._pos

    @property
    def remaining(self) -> int:
        """Number of unread bytes."""
        return self._end - self._pos

    def _need(self, n: int, what: str) -> int:
        pos = self._pos
        if n < 0 or pos + n > self._end:
            raise RemoteProtocolError(f"truncated message reading {what}")
        self._pos = pos + n
        return pos

    def byte(self) -> int:
        """Read one byte."""
        pos = self._need(1, "byte")
        return self._data[pos]

    def boolean(self) -> bool:
        """Read a boolean (any non-zero byte is true, RFC 4251 §5)."""
        return self.byte() != 0

    def u32(self) -> int:
        """Read a uint32."""
        pos = self._pos
        if pos + 4 > self._end:
            raise RemoteProtocolError("truncated message reading uint32")
        self._pos = pos + 4
        return _U32.unpack_from(self._data, pos)[0]  # type: ignore[no-any-return]

    def u64(self) -> int:
        """Read a uint64."""
        pos = self._need(8, "uint64")
        return _U64.unpack_from(self._data, pos)[0]  # type: ignore[no-any-return]

    def raw(self, n: int) -> bytes:
        """Read exactly ``n`` raw bytes."""
        pos = self._need(n, "bytes")
        return self._data[pos : pos + n]

    def string(self, limit: int | None = None) -> bytes:
        """Read an SSH string; ``limit`` bounds its length."""
        # The bounds checks of ``u32`` and ``_need``, inlined: the hottest reader.
        pos = self._pos
        end = self._end
        if pos + 4 > end:
            raise RemoteProtocolError("truncated message reading uint32")
        length: int = _U32.unpack_from(self._data, pos)[0]
        if limit is not None and length > limit:
            self._pos = pos + 4
            raise RemoteProtocolError(f"string of {length} bytes exceeds limit {limit}")
        start = pos + 4
        stop = start + length
        if stop > end:
            self._pos = start
            raise RemoteProtocolError("truncated message reading string")
        self._pos = stop
        return self._data[start:stop]

    def text(self, limit: int | None = None) -> str:
        """Read a UTF-8 string."""
        try:
            return self.string(limit).decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError("invalid UTF-8 in string") from None

    def ascii(self, limit: int | None = None) -> str:
        """Read a US-ASCII string (algorithm and request names)."""
        try:
            return self.string(limit).decode("ascii")
        except UnicodeDecodeError:
            raise RemoteProtocolError("non-ASCII name") from None

    def mpint(self, limit: int = 16384 // 8 + 1) -> int:
        """Read an mpint (two's complement, big-endian)."""
        data = self.string(limit)
        if not data:
            return 0
        return int.from_bytes(data, "big", signed=True)

    def name_list(self, limit: int = 64 * 1024) -> list[str]:
        """Read a name-list; empty names are a protocol error (RFC 4251 §5)."""
        try:
            data = self.string(limit).decode("ascii")
        except UnicodeDecodeError:
            raise RemoteProtocolError("non-ASCII name") from None
        if not data:
            return []
        names = data.split(",")
        if "" in names:
            raise RemoteProtocolError("empty name in name-list")
        return names

    def rest(self) -> bytes:
        """Read every remaining byte."""
        pos = self._pos
        self._pos = self._end
        return self._data[pos:]

    def check_end(self) -> None:
        """Raise if unread bytes remain (a trailing-garbage check)."""
        if self._pos != self._end:
            raise RemoteProtocolError(f"{self._end - self._pos} unexpected trailing bytes")
