"""The one exception tree (paramiko's names, plus the protocol-error split).

``SSHException`` is paramiko's root. ``ProtocolError`` divides into
``LocalProtocolError`` (the caller misused the API) and
``RemoteProtocolError`` (the peer broke the protocol; it carries the
SSH_MSG_DISCONNECT reason code the driver sends before closing).

Must not import gevent or socket: the pure core raises these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


class DisconnectReceived(SSHException):
    """The peer sent SSH_MSG_DISCONNECT."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"Disconnect (code {code}): {description}")
        self.code = code
        self.description = description


class AuthenticationException(SSHException):
    """Authentication failed."""


class PasswordRequiredException(AuthenticationException):
    """A private key is encrypted and no password was given."""


class BadAuthenticationType(AuthenticationException):
    """The server does not allow this authentication type."""

    allowed_types: list[str] = []
    explanation: str = ""

    def __init__(self, explanation: str, types: Sequence[str]) -> None:
        AuthenticationException.__init__(self, explanation, types)
        self.explanation = explanation
        self.allowed_types = list(types)

    def __str__(self) -> str:
        return f"{self.explanation}; allowed types: {self.allowed_types!r}"


class PartialAuthentication(AuthenticationException):
    """Authentication partly succeeded; more methods are needed."""

    allowed_types: list[str] = []

    def __init__(self, types: Sequence[str]) -> None:
        AuthenticationException.__init__(self, types)
        self.allowed_types = list(types)

    def __str__(self) -> str:
        return f"Partial authentication; allowed types: {self.allowed_types!r}"


class UnableToAuthenticate(AuthenticationException):
    """No usable authentication method."""


class ChannelException(SSHException):
    """A channel could not be opened; ``code`` is the OPEN_FAILED_* reason."""

    def __init__(self, code: int, text: str) -> None:
        SSHException.__init__(self, code, text)
        self.code = code
        self.text = text

    def __str__(self) -> str:
        return f"ChannelException({self.code!r}, {self.text!r})"


class BadHostKeyException(SSHException):
    """The host key given by the server did not match what was expected."""

    def __init__(self, hostname: str, got_key: object, expected_key: object) -> None:
        SSHException.__init__(self, hostname, got_key, expected_key)
        self.hostname = hostname
        self.key = got_key
        self.expected_key = expected_key

    def __str__(self) -> str:
        return f"Host key for server {self.hostname!r} does not match!"


class ProxyCommandFailure(SSHException):
    """A proxy command failed (client side; kept for compatibility)."""

    def __init__(self, command: str, error: str) -> None:
        SSHException.__init__(self, command, error)
        self.command = command
        self.error = error

    def __str__(self) -> str:
        return f'ProxyCommand("{self.command}") returned nonzero exit status: {self.error}'


class NoValidConnectionsError(OSError):
    """Every address of a host refused the connection (client side)."""

    def __init__(self, errors: Mapping[tuple[object, ...], Exception]) -> None:
        addrs = sorted(str(key[0]) for key in errors)
        super().__init__(None, f"Unable to connect to port on {', '.join(addrs)}")
        self.errors = dict(errors)

    def __reduce__(self) -> tuple[type, tuple[dict[tuple[object, ...], Exception]]]:
        return (self.__class__, (self.errors,))


class CouldNotCanonicalize(SSHException):
    """Hostname canonicalization failed (client side)."""


class ConfigParseError(SSHException):
    """An ssh_config file could not be parsed (client side)."""


class SFTPError(Exception):
    """An SFTP request failed (paramiko.sftp.SFTPError)."""
