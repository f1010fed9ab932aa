"""Channel flow-control accounting (RFC 4254 §5.2).

``InboundWindow`` tracks what we granted the peer and when to grant more;
``OutboundWindow`` tracks what the peer granted us. Pure: no I/O.
"""

from __future__ import annotations

from geossh.errors import RemoteProtocolError

MAX_WINDOW = 0xFFFFFFFF


class InboundWindow:
    """The window we advertise: data the peer may still send us."""

    __slots__ = ("consumed", "max_packet", "remaining", "size")

    def __init__(self, size: int, max_packet: int) -> None:
        self.size = size
        self.max_packet = max_packet
        self.remaining = size
        self.consumed = 0

    def receive(self, length: int) -> None:
        """Account for ``length`` bytes of data; the peer may not exceed the window."""
        if length > self.remaining:
            raise RemoteProtocolError(f"peer sent {length} bytes with {self.remaining} window")
        if length > self.max_packet:
            raise RemoteProtocolError(f"peer sent a {length}-byte packet, max {self.max_packet}")
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
        self.remaining += increment
        return increment


class OutboundWindow:
    """The window the peer granted us."""

    __slots__ = ("max_packet", "remaining")

    def __init__(self, size: int, max_packet: int) -> None:
        self.remaining = size
        self.max_packet = max(1, max_packet)

    def adjust(self, increment: int) -> None:
        """Add a WINDOW_ADJUST increment; overflowing 2^32-1 is a protocol error."""
        if self.remaining + increment > MAX_WINDOW:
            raise RemoteProtocolError("window adjust overflows 2^32-1")
        self.remaining += increment

    def take(self, wanted: int) -> int:
        """Reserve up to ``wanted`` bytes of window; return how many."""
        granted = min(wanted, self.remaining)
        self.remaining -= granted
        return granted
