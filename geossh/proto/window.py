"""Channel flow-control accounting (RFC 4254 §5.2).

``InboundWindow`` tracks what we granted the peer and when to grant more;
``OutboundWindow`` tracks what the peer granted us. Every size is a uint32
on the wire, so windows never exceed 2^32-1. Pure: no I/O.
"""

from __future__ import annotations

from geossh.proto.errors import RemoteProtocolError

MAX_WINDOW = 0xFFFFFFFF
# Largest data payload we put in one packet, whatever the peer advertises:
# OpenSSH refuses packets over 256 KiB, and bigger ones buy no speed.
MAX_OUT_PACKET = 128 * 1024


class InboundWindow:
    """The window we advertise: data the peer may still send us."""

    __slots__ = ("consumed", "max_packet", "remaining", "size")

    def __init__(self, size: int, max_packet: int) -> None:
        self.size = max(1, min(size, MAX_WINDOW))
        self.max_packet = max(1, min(max_packet, MAX_WINDOW))
        self.remaining = self.size
        self.consumed = 0

    def receive(self, length: int) -> None:
        """Account for ``length`` bytes of data; the peer may not exceed the window."""
        if length > self.max_packet:
            raise RemoteProtocolError(
                f"peer sent a {length}-byte data packet, maximum {self.max_packet}"
            )
        if length > self.remaining:
            raise RemoteProtocolError(
                f"peer sent {length} bytes beyond a window of {self.remaining}"
            )
        self.remaining -= length

    def consume(self, length: int) -> int:
        """The application read ``length`` bytes; return the increment to grant, or 0.

        More window is granted once half of it has been consumed, keeping the
        pipe full without an adjust per packet.
        """
        self.consumed += length
        if self.consumed < self.size // 2:
            return 0
        increment, self.consumed = self.consumed, 0
        # The peer's view is remaining + increment, never above our size.
        increment = min(increment, self.size - self.remaining)
        self.remaining += increment
        return increment


class OutboundWindow:
    """The window the peer granted us and its maximum data packet."""

    __slots__ = ("max_packet", "remaining")

    def __init__(self, size: int, max_packet: int) -> None:
        self.remaining = size
        self.max_packet = max(1, min(max_packet, MAX_OUT_PACKET))

    def adjust(self, increment: int) -> None:
        """Add a WINDOW_ADJUST increment; overflowing 2^32-1 is a protocol error."""
        if self.remaining + increment > MAX_WINDOW:
            raise RemoteProtocolError(
                f"window adjust of {increment} overflows a window of {self.remaining}"
            )
        self.remaining += increment

    def take(self, wanted: int) -> int:
        """Reserve up to ``wanted`` bytes of window; return how many."""
        granted = min(wanted, self.remaining)
        self.remaining -= granted
        return granted
