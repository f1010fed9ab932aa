"""Per-direction payload compression: ``none``, ``zlib`` and ``zlib@openssh.com``.

Owns the compression algorithm names and the zlib streams of one direction
(RFC 4253 §6.2; OpenSSH's delayed ``zlib@openssh.com``, which starts only
after user authentication). Each packet's payload is compressed with
``Z_SYNC_FLUSH`` so the peer can decode it on its own; inbound output is
bounded so a small packet can never inflate into a large allocation.

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

import zlib

from geossh.proto.constants import DisconnectReason
from geossh.proto.errors import LocalProtocolError, RemoteProtocolError

NONE = "none"
ZLIB = "zlib"
ZLIB_OPENSSH = "zlib@openssh.com"

#: Every supported name, in our preference order (``none`` first, as sshd).
COMPRESSIONS: tuple[str, ...] = (NONE, ZLIB_OPENSSH, ZLIB)

#: zlib level used outbound (OpenSSH uses 6).
LEVEL = 6

#: Upper bound on one decompressed payload (OpenSSH's PACKET_MAX_SIZE).
MAX_DECOMPRESSED = 256 * 1024


def check_name(name: str) -> None:
    """Raise ``LocalProtocolError`` unless ``name`` is a supported method."""
    if name not in COMPRESSIONS:
        raise LocalProtocolError(f"unsupported compression {name!r}")


def is_active(name: str, authenticated: bool) -> bool:
    """Whether ``name`` compresses now (delayed zlib waits for authentication)."""
    check_name(name)
    if name == ZLIB:
        return True
    return name == ZLIB_OPENSSH and authenticated


class Compressor:
    """Outbound zlib stream: one ``compress()`` per packet payload."""

    __slots__ = ("_obj",)

    def __init__(self, level: int = LEVEL) -> None:
        self._obj = zlib.compressobj(level)

    def compress(self, payload: bytes | bytearray | memoryview) -> bytes:
        """Compress one payload and sync-flush so it is decodable alone."""
        obj = self._obj
        return obj.compress(payload) + obj.flush(zlib.Z_SYNC_FLUSH)


class Decompressor:
    """Inbound zlib stream with a per-packet output bound."""

    __slots__ = ("_limit", "_obj")

    def __init__(self, limit: int = MAX_DECOMPRESSED) -> None:
        self._obj = zlib.decompressobj()
        self._limit = limit

    def decompress(self, data: bytes) -> bytes:
        """Inflate one packet's payload.

        Raises ``RemoteProtocolError(COMPRESSION_ERROR)`` on corrupt input,
        on output over the bound (a decompression bomb), or on data after
        the end of the zlib stream.
        """
        obj = self._obj
        limit = self._limit
        try:
            # Ask for one byte more than allowed: if zlib stops short of that
            # it ran out of input, so no output is left pending inside it.
            out = obj.decompress(data, limit + 1)
        except zlib.error as exc:
            raise RemoteProtocolError(
                f"decompression failed: {exc}", DisconnectReason.COMPRESSION_ERROR
            ) from None
        if len(out) > limit or obj.unconsumed_tail:
            raise RemoteProtocolError(
                f"decompressed payload exceeds {limit} bytes", DisconnectReason.COMPRESSION_ERROR
            )
        if obj.unused_data:
            raise RemoteProtocolError(
                "data after the end of the compressed stream", DisconnectReason.COMPRESSION_ERROR
            )
        return out
