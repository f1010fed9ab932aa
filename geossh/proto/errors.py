"""The errors the core raises: protocol errors, key-loading errors, paramiko's root.

``ProtocolError`` divides into ``LocalProtocolError`` (the caller misused
the API) and ``RemoteProtocolError`` (the peer broke the protocol; it
carries the SSH_MSG_DISCONNECT reason code the driver sends before
closing). ``geossh.errors`` re-exports them beside the rest of paramiko's
exception tree, so one ``except SSHException`` catches both.

Pure: imports only ``geossh.proto.constants``.
"""

from __future__ import annotations

from geossh.proto.constants import DisconnectReason


class SSHException(Exception):
    """Root of every SSH error (paramiko.ssh_exception.SSHException)."""


class ProtocolError(SSHException):
    """A violation of the SSH protocol, by us or by the peer."""


class LocalProtocolError(ProtocolError):
    """The application asked for something the protocol state forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol; ``code`` is the disconnect reason."""

    default_code: DisconnectReason = DisconnectReason.PROTOCOL_ERROR

    def __init__(self, message: str = "", code: DisconnectReason | None = None) -> None:
        super().__init__(message)
        self.code = DisconnectReason(code if code is not None else self.default_code)


class MACError(RemoteProtocolError):
    """A packet failed its integrity check (RFC 4253 §6.4)."""

    default_code = DisconnectReason.MAC_ERROR


class IncompatiblePeer(RemoteProtocolError):
    """No common algorithm, or an unsupported protocol version."""

    default_code = DisconnectReason.KEY_EXCHANGE_FAILED


class MessageOrderError(RemoteProtocolError):
    """A message arrived where strict key exchange forbids it (Terrapin)."""


class KexError(RemoteProtocolError):
    """A key exchange message was malformed or its values invalid."""

    default_code = DisconnectReason.KEY_EXCHANGE_FAILED


class AuthenticationException(SSHException):
    """Authentication failed."""


class PasswordRequiredException(AuthenticationException):
    """A private key is encrypted and no password was given."""
