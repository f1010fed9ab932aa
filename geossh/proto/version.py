"""Identification-string exchange (RFC 4253 §4.2).

The server sends its line first. The client's ``SSH-2.0-…`` line may be
preceded by other lines only from servers, but lenient servers (OpenSSH,
paramiko) skip a bounded number of them; so do we. Every line is bounded;
a line over the limit, too many lines, or a protocol version other than 2.0
(or 1.99) ends the connection. So does a PROXY protocol header: the
listener consumes the headers of trusted balancers before the core sees
a byte, so one that reaches us was sent by a peer not trusted to send it.
Pure: no I/O.
"""

from __future__ import annotations

from geossh.proto.constants import (
    MAX_PRE_VERSION_BYTES,
    MAX_PRE_VERSION_LINES,
    MAX_VERSION_LINE,
    DisconnectReason,
)
from geossh.proto.errors import RemoteProtocolError


class VersionParser:
    """Collects bytes until the peer's identification line is complete."""

    def __init__(
        self,
        max_line: int = MAX_VERSION_LINE,
        max_lines: int = MAX_PRE_VERSION_LINES,
        max_bytes: int = MAX_PRE_VERSION_BYTES,
    ) -> None:
        self._buffer = bytearray()
        self._max_line = max_line
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._lines = 0
        self._consumed = 0

    def feed(self, data: bytes) -> tuple[str, bytes] | None:
        """Add bytes; return ``(version, leftover)`` once the line is complete."""
        self._buffer += data
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > self._max_line:
                    raise RemoteProtocolError(
                        "identification line too long",
                        DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
                    )
                return None
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if newline + 1 > self._max_line:
                raise RemoteProtocolError(
                    "identification line too long",
                    DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
                )
            if line.startswith(b"SSH-"):
                return _check_version(line.rstrip(b"\r")), bytes(self._buffer)
            if line.startswith(b"PROXY "):
                raise RemoteProtocolError("PROXY header from a peer not trusted to send one")
            if b"\x00" in line:
                # Binary data (e.g. a packet sent without a version line).
                raise RemoteProtocolError("NUL before the identification line")
            self._lines += 1
            self._consumed += newline + 1
            if self._lines > self._max_lines or self._consumed > self._max_bytes:
                raise RemoteProtocolError(
                    "too many lines before the identification line",
                    DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
                )


def _check_version(line: bytes) -> str:
    if b"\x00" in line:
        raise RemoteProtocolError("NUL in identification line")
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        # RFC 4253 §4.2: US-ASCII only.
        raise RemoteProtocolError("non-ASCII identification line") from None
    parts = text.split("-", 2)
    if len(parts) < 3 or parts[1] not in ("2.0", "1.99"):
        raise RemoteProtocolError(
            f"unsupported protocol version {text[:64]!r}",
            DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
        )
    return text
