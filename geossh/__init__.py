"""geossh: an SSH server toolkit on gevent with a paramiko-compatible API.

``import geossh as paramiko`` keeps paramiko server code working: the same
``ServerInterface``, ``Transport``, ``Channel``, SFTP server, keys,
constants and exceptions, with one greenlet per connection instead of
threads.
"""

from __future__ import annotations

__author__ = "geossh developers"
__license__ = "LGPL-2.1-or-later"

# paramiko's submodules are attributes after ``import paramiko`` (``paramiko.util``, ...).
from geossh import (
    agent as agent,
    buffered_pipe as buffered_pipe,
    channel as channel,
    common as common,
    ecdsakey as ecdsakey,
    ed25519key as ed25519key,
    file as file,
    message as message,
    packetizer as packetizer,
    pkey as pkey,
    rsakey as rsakey,
    server as server,
    sftp_attr as sftp_attr,
    sftp_handle as sftp_handle,
    sftp_server as sftp_server,
    sftp_si as sftp_si,
    ssh_exception as ssh_exception,
    transport as transport,
    util as util,
)
from geossh._version import __version__ as __version__
from geossh.agent import AgentKey
from geossh.channel import Channel, ChannelFile, ChannelStderrFile, ChannelStdinFile
from geossh.common import (
    AUTH_FAILED,
    AUTH_PARTIALLY_SUCCESSFUL,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_FAILED_CONNECT_FAILED,
    OPEN_FAILED_RESOURCE_SHORTAGE,
    OPEN_FAILED_UNKNOWN_CHANNEL_TYPE,
    OPEN_SUCCEEDED,
    io_sleep,
)
from geossh.errors import (
    AuthenticationException,
    BadAuthenticationType,
    BadHostKeyException,
    ChannelException,
    ConfigParseError,
    CouldNotCanonicalize,
    IncompatiblePeer,
    MessageOrderError,
    PasswordRequiredException,
    ProxyCommandFailure,
    SSHException,
)
from geossh.file import BufferedFile
from geossh.message import Message
from geossh.pkey import (
    ECDSAKey,
    Ed25519Key,
    PKey,
    PublicBlob,
    RSAKey,
    UnknownKeyType,
    key_classes,
)
from geossh.proto.auth import AUTH_PASSWORD_CHANGE_REQUIRED
from geossh.runner import Server
from geossh.server import InteractiveQuery, ServerInterface, SubsystemHandler
from geossh.session import PtyInfo, Session, SessionExit
from geossh.sftp import (
    SFTP_BAD_MESSAGE,
    SFTP_CONNECTION_LOST,
    SFTP_EOF,
    SFTP_FAILURE,
    SFTP_NO_CONNECTION,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
    BaseSFTP,
    SFTPAttributes,
    SFTPError,
    SFTPHandle,
    SFTPServer,
    SFTPServerInterface,
)
from geossh.transport import SecurityOptions, Transport

__all__ = [
    "AUTH_FAILED",
    "AUTH_PARTIALLY_SUCCESSFUL",
    "AUTH_PASSWORD_CHANGE_REQUIRED",
    "AUTH_SUCCESSFUL",
    "OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED",
    "OPEN_FAILED_CONNECT_FAILED",
    "OPEN_FAILED_RESOURCE_SHORTAGE",
    "OPEN_FAILED_UNKNOWN_CHANNEL_TYPE",
    "OPEN_SUCCEEDED",
    "SFTP_BAD_MESSAGE",
    "SFTP_CONNECTION_LOST",
    "SFTP_EOF",
    "SFTP_FAILURE",
    "SFTP_NO_CONNECTION",
    "SFTP_NO_SUCH_FILE",
    "SFTP_OK",
    "SFTP_OP_UNSUPPORTED",
    "SFTP_PERMISSION_DENIED",
    "AgentKey",
    "AuthenticationException",
    "BadAuthenticationType",
    "BadHostKeyException",
    "BaseSFTP",
    "BufferedFile",
    "Channel",
    "ChannelException",
    "ChannelFile",
    "ChannelStderrFile",
    "ChannelStdinFile",
    "ConfigParseError",
    "CouldNotCanonicalize",
    "ECDSAKey",
    "Ed25519Key",
    "IncompatiblePeer",
    "InteractiveQuery",
    "Message",
    "MessageOrderError",
    "PKey",
    "PasswordRequiredException",
    "ProxyCommandFailure",
    "PtyInfo",
    "PublicBlob",
    "RSAKey",
    "SFTPAttributes",
    "SFTPError",
    "SFTPHandle",
    "SFTPServer",
    "SFTPServerInterface",
    "SSHException",
    "SecurityOptions",
    "Server",
    "ServerInterface",
    "Session",
    "SessionExit",
    "SubsystemHandler",
    "Transport",
    "UnknownKeyType",
    "io_sleep",
    "key_classes",
]
