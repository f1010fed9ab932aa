"""Channel flow-control accounting (RFC 4254 §5.2).

``InboundWindow`` tracks what we granted the peer and when to grant more;
``OutboundWindow`` tracks what the peer granted us. Every size is a uint32
on the wire, so windows never exceed 2^32-1.

Send-ahead limit
----------------
A peer's window says how much it may buffer, not how much it should: OpenSSH's
``sftp`` grants 2 MiB, and with all of it in flight its buffers grow by
realloc and copy (tens of thousands of page faults per 32 MiB on the client)
and a download runs at half speed. On a short path (the driver decides: a
round trip of a millisecond or less) ``OutboundWindow.limit_ahead`` keeps the
bytes sent but not yet given back by a WINDOW_ADJUST ("in flight") under a
limit; 512 KiB per millisecond is still 512 MB/s.

The limit must never stop a peer from adjusting. A peer returns window once
it consumed some threshold (OpenSSH: more than three maximum packets, or half
its window; paramiko: a tenth; asyncssh: half), so the limit applies only
after the first adjust, and is never below twice the largest increment seen
(an increment is at least the threshold that triggered it). A peer whose
threshold grows beyond that is caught by the sender: ``lift`` removes the
limit until the next adjust, which teaches the new threshold. Pure: no I/O.
"""

from __future__ import annotations

from geossh.proto.errors import RemoteProtocolError

MAX_WINDOW = 0xFFFFFFFF
# Largest data payload we put in one packet, whatever the peer advertises:
# OpenSSH refuses packets over 256 KiB, and bigger ones buy no speed.
MAX_OUT_PACKET = 128 * 1024
# The default send-ahead limit on a short path (see the module docstring).
SEND_AHEAD_LIMIT = 512 * 1024


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
    """The window the peer granted us, its maximum data packet, the send-ahead limit."""

    __slots__ = ("ahead", "base", "in_flight", "largest_adjust", "max_packet", "remaining")

    def __init__(self, size: int, max_packet: int) -> None:
        self.remaining = size
        self.max_packet = max(1, min(max_packet, MAX_OUT_PACKET))
        self.in_flight = 0  # sent and not yet given back by an adjust
        self.largest_adjust = 0
        self.base = 0  # the send-ahead limit asked for (0: none)
        self.ahead = 0  # the limit in force now (0: none)

    def limit_ahead(self, limit: int) -> None:
        """Keep at most ``limit`` bytes in flight once the peer adjusted (0: no limit)."""
        self.base = limit
        self.ahead = max(limit, 2 * self.largest_adjust) if limit and self.largest_adjust else 0

    @property
    def room(self) -> int:
        """Bytes we may send now: the window, within the send-ahead limit."""
        ahead = self.ahead
        if ahead:
            return max(0, min(self.remaining, ahead - self.in_flight))
        return self.remaining

    @property
    def held_back(self) -> bool:
        """True when only the send-ahead limit stops a send."""
        return bool(self.ahead) and self.in_flight >= self.ahead and self.remaining > 0

    def lift(self) -> bool:
        """Lift the send-ahead limit until the next adjust; True if it was holding a send back.

        The sender calls this when it waited too long for an adjust: the peer
        may only adjust past a threshold above the limit.
        """
        held = self.held_back
        self.ahead = 0
        return held

    def adjust(self, increment: int) -> None:
        """Add a WINDOW_ADJUST increment; overflowing 2^32-1 is a protocol error."""
        if self.remaining + increment > MAX_WINDOW:
            raise RemoteProtocolError(
                f"window adjust of {increment} overflows a window of {self.remaining}"
            )
        self.remaining += increment
        self.in_flight = max(0, self.in_flight - increment)
        if increment > self.largest_adjust:
            self.largest_adjust = increment
        if self.base:
            self.ahead = max(self.base, 2 * self.largest_adjust)

    def take(self, wanted: int) -> int:
        """Reserve up to ``wanted`` bytes of room; return how many."""
        granted = min(wanted, self.room)
        self.remaining -= granted
        self.in_flight += granted
        return granted
