"""paramiko's ``ssh_exception`` module: the exception classes by their old names.

Every class is the one defined in ``geossh.errors`` (the single exception
tree), so ``except paramiko.ssh_exception.SSHException`` catches geossh's.
"""

from __future__ import annotations

from geossh.errors import (
    AuthenticationException,
    BadAuthenticationType,
    BadHostKeyException,
    ChannelException,
    ConfigParseError,
    CouldNotCanonicalize,
    IncompatiblePeer,
    MessageOrderError,
    NoValidConnectionsError,
    PartialAuthentication,
    PasswordRequiredException,
    ProxyCommandFailure,
    SSHException,
    UnableToAuthenticate,
)

__all__ = [
    "AuthenticationException",
    "BadAuthenticationType",
    "BadHostKeyException",
    "ChannelException",
    "ConfigParseError",
    "CouldNotCanonicalize",
    "IncompatiblePeer",
    "MessageOrderError",
    "NoValidConnectionsError",
    "PartialAuthentication",
    "PasswordRequiredException",
    "ProxyCommandFailure",
    "SSHException",
    "UnableToAuthenticate",
]
