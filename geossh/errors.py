"""The one exception tree (paramiko's names, plus the protocol-error split).

``SSHException`` is paramiko's root. The protocol errors the pure core
raises (``ProtocolError``, ``LocalProtocolError``, ``RemoteProtocolError``
and its kinds) are defined in ``geossh.proto.errors`` and re-exported here;
everything else is paramiko's tree. Must not import gevent or socket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from geossh.proto.errors import (
    AuthenticationException as AuthenticationException,
    IncompatiblePeer as IncompatiblePeer,
    KexError as KexError,
    LocalProtocolError as LocalProtocolError,
    MACError as MACError,
    MessageOrderError as MessageOrderError,
    PasswordRequiredException as PasswordRequiredException,
    ProtocolError as ProtocolError,
    RemoteProtocolError as RemoteProtocolError,
    SSHException as SSHException,
)


class DisconnectReceived(SSHException):
    """The peer sent SSH_MSG_DISCONNECT."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"Disconnect (code {code}): {description}")
        self.code = code
        self.description = description


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
