"""Events the protocol core emits, in past tense; frozen, slotted dataclasses.

The driver reads them with ``Connection.next_event()`` and answers through
the connection's commands. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


class Event:
    """Base class of every core event."""

    __slots__ = ()


# -- transport ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VersionReceived(Event):
    """The peer's identification line arrived."""

    version: str


@dataclass(frozen=True, slots=True)
class KexCompleted(Event):
    """A key exchange finished; ``initial`` for the first one."""

    initial: bool


@dataclass(frozen=True, slots=True)
class DisconnectReceived(Event):
    """The peer sent SSH_MSG_DISCONNECT; the connection is over."""

    code: int
    description: str


# -- authentication (RFC 4252) --------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuthServiceStarted(Event):
    """``ssh-userauth`` was accepted: the moment to send a banner."""


@dataclass(frozen=True, slots=True)
class AuthRequested(Event):
    """A USERAUTH_REQUEST (or INFO_RESPONSE) that needs the application's decision.

    ``method`` is ``none``, ``password``, ``publickey``, ``keyboard-interactive``,
    ``keyboard-interactive-response``, ``hostbased`` or ``password-change``.
    ``details`` holds the method's fields (see ``proto/auth.py``).
    """

    username: str
    method: str
    details: dict[str, object]


@dataclass(frozen=True, slots=True)
class AuthSucceeded(Event):
    """USERAUTH_SUCCESS was sent."""

    username: str
    method: str


# -- connection protocol (RFC 4254) --------------------------------------------
@dataclass(frozen=True, slots=True)
class GlobalRequestReceived(Event):
    """A GLOBAL_REQUEST; answer with ``reply_global_request`` if ``want_reply``."""

    kind: str
    want_reply: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class GlobalReplyReceived(Event):
    """REQUEST_SUCCESS / REQUEST_FAILURE for a global request we sent."""

    success: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class ChannelOpenRequested(Event):
    """CHANNEL_OPEN from the peer; answer with ``accept_channel``/``reject_channel``."""

    channel_id: int
    kind: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ChannelOpenConfirmed(Event):
    """The peer accepted a channel we opened."""

    channel_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ChannelOpenFailed(Event):
    """The peer refused a channel we opened."""

    channel_id: int
    code: int
    description: str


@dataclass(frozen=True, slots=True)
class ChannelRequestReceived(Event):
    """CHANNEL_REQUEST; answer with ``reply_channel_request`` if ``want_reply``."""

    channel_id: int
    kind: str
    want_reply: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class ChannelReplyReceived(Event):
    """CHANNEL_SUCCESS / CHANNEL_FAILURE for a request we sent."""

    channel_id: int
    success: bool


@dataclass(frozen=True, slots=True)
class ChannelDataReceived(Event):
    """CHANNEL_DATA (``stream`` 0) or EXTENDED_DATA (``stream`` = its type)."""

    channel_id: int
    data: bytes
    stream: int


@dataclass(frozen=True, slots=True)
class ChannelDataRunReceived(Event):
    """Data of back-to-back CHANNEL_DATA (or EXTENDED_DATA of one type) for one channel.

    ``parts`` holds each packet's data in order; they are not joined, so a
    run costs no large allocation. ``data`` joins them.
    """

    channel_id: int
    parts: tuple[bytes, ...]
    stream: int

    @property
    def data(self) -> bytes:
        """The run's data as one string."""
        return b"".join(self.parts)


@dataclass(frozen=True, slots=True)
class ChannelWindowOpened(Event):
    """The peer granted more window: sends may proceed."""

    channel_id: int


@dataclass(frozen=True, slots=True)
class ChannelEOFReceived(Event):
    """The peer will send no more data on the channel."""

    channel_id: int


@dataclass(frozen=True, slots=True)
class ChannelClosed(Event):
    """The channel is closed both ways and its id is free again."""

    channel_id: int


@dataclass(frozen=True, slots=True)
class LivenessExpired(Event):
    """A liveness check ended the connection (proto/liveness.py); DISCONNECT is queued."""

    reason: str
