"""paramiko's ``Message``: build or pick apart SSH wire data field by field.

Byte-for-byte compatible with ``paramiko.message.Message`` (including its
quirks: short reads are zero-padded, ``add_mpint(0)`` writes one zero byte,
``get_list`` of an empty string is ``[""]``). Used by callbacks and the
paramiko-compatible facade; the protocol core has its own codec
(``geossh.proto.wire``) and never uses this class on the data path.
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

from geossh._facade.util import asbytes, deflate_long, inflate_long

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_MAX_PAD = 1 << 20  # get_bytes pads short reads only below 1 MiB


class Message:
    """A stream of SSH data types: bytes, booleans, uint32/64, mpints, strings."""

    big_int = 0xFF000000
    seqno: int | None = None  # set by the transport on received messages

    def __init__(self, content: bytes | bytearray | memoryview | None = None) -> None:
        """Create an empty message, or one to parse ``content`` from its start."""
        self.packet = BytesIO(content) if content is not None else BytesIO()

    def __bytes__(self) -> bytes:
        return self.asbytes()

    def __repr__(self) -> str:
        return "paramiko.Message(" + repr(self.packet.getvalue()) + ")"

    def asbytes(self) -> bytes:
        """The whole content, regardless of the read position."""
        return self.packet.getvalue()

    def rewind(self) -> None:
        """Move the read position back to the start."""
        self.packet.seek(0)

    def get_remainder(self) -> bytes:
        """The bytes not parsed yet (the position does not move)."""
        return self.packet.getvalue()[self.packet.tell() :]

    def get_so_far(self) -> bytes:
        """The bytes parsed so far (the position does not move)."""
        return self.packet.getvalue()[: self.packet.tell()]

    # -- getters ------------------------------------------------------------

    def get_bytes(self, n: int) -> bytes:
        """The next ``n`` raw bytes; a short read below 1 MiB is padded with zeros."""
        b = self.packet.read(n)
        if len(b) < n < _MAX_PAD:
            return b + b"\x00" * (n - len(b))
        return b

    def get_byte(self) -> bytes:
        """The next byte, as a 1-byte ``bytes`` (``b"\\x00"`` past the end)."""
        return self.get_bytes(1)

    def get_boolean(self) -> bool:
        """A boolean (any non-zero byte is true)."""
        return self.get_bytes(1) != b"\x00"

    def get_adaptive_int(self) -> int:
        """An int written by ``add_adaptive_int`` (uint32, or 0xFF + mpint)."""
        first = self.get_bytes(1)
        if first == b"\xff":
            return inflate_long(self.get_binary())
        return int(_U32.unpack(first + self.get_bytes(3))[0])

    def get_int(self) -> int:
        """A uint32."""
        return int(_U32.unpack(self.get_bytes(4))[0])

    def get_int64(self) -> int:
        """A uint64."""
        return int(_U64.unpack(self.get_bytes(8))[0])

    def get_mpint(self) -> int:
        """An mpint (two's complement)."""
        return inflate_long(self.get_binary())

    def get_string(self) -> bytes:
        """An SSH string, as ``bytes``."""
        return self.get_bytes(self.get_int())

    def get_text(self) -> str:
        """An SSH string decoded as UTF-8."""
        return self.get_string().decode("utf-8")

    def get_binary(self) -> bytes:
        """An SSH string, as ``bytes`` (alias of ``get_string``)."""
        return self.get_bytes(self.get_int())

    def get_list(self) -> list[str]:
        """A name-list, as a list of ``str``."""
        return self.get_text().split(",")

    # -- adders (each returns self) -----------------------------------------

    def add_bytes(self, b: bytes) -> Message:
        """Append raw bytes."""
        self.packet.write(b)
        return self

    def add_byte(self, b: bytes) -> Message:
        """Append one raw byte (a 1-byte ``bytes``)."""
        self.packet.write(b)
        return self

    def add_boolean(self, b: bool) -> Message:
        """Append a boolean."""
        self.packet.write(b"\x01" if b else b"\x00")
        return self

    def add_int(self, n: int) -> Message:
        """Append a uint32."""
        self.packet.write(_U32.pack(n))
        return self

    def add_adaptive_int(self, n: int) -> Message:
        """Append a uint32, or 0xFF + mpint string when ``n >= 0xFF000000``."""
        if n >= Message.big_int:
            self.packet.write(b"\xff")
            self.add_string(deflate_long(n))
        else:
            self.packet.write(_U32.pack(n))
        return self

    def add_int64(self, n: int) -> Message:
        """Append a uint64."""
        self.packet.write(_U64.pack(n))
        return self

    def add_mpint(self, z: int) -> Message:
        """Append an mpint."""
        self.add_string(deflate_long(z))
        return self

    def add_string(self, s: Any) -> Message:
        """Append an SSH string: bytes-like, ``str`` (UTF-8) or an object with ``asbytes()``."""
        data = asbytes(s)
        self.packet.write(_U32.pack(len(data)))
        self.packet.write(data)
        return self

    def add_list(self, l: list[str]) -> Message:  # noqa: E741 (paramiko's name)
        """Append a name-list (comma-joined string)."""
        self.add_string(",".join(l))
        return self

    def _add(self, i: Any) -> Message:
        if type(i) is bool:
            return self.add_boolean(i)
        if isinstance(i, int):
            return self.add_adaptive_int(i)
        if type(i) is list:
            return self.add_list(i)
        return self.add_string(i)

    def add(self, *seq: Any) -> Message:
        """Append items by type: bool, int (adaptive), list (name-list), else string."""
        for item in seq:
            self._add(item)
        return self
