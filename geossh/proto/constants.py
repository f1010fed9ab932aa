"""Protocol numbers: message types, disconnect reasons, channel-open failures.

Owns every number the SSH RFCs assign. Imports nothing from geossh.
"""

from __future__ import annotations

import enum


class MSG(enum.IntEnum):
    """SSH message numbers (RFC 4250 §4.1, RFC 8308, RFC 4256, RFC 4419)."""

    DISCONNECT = 1
    IGNORE = 2
    UNIMPLEMENTED = 3
    DEBUG = 4
    SERVICE_REQUEST = 5
    SERVICE_ACCEPT = 6
    EXT_INFO = 7
    KEXINIT = 20
    NEWKEYS = 21
    # Key-exchange method specific (30-49); names per method family.
    KEX_30 = 30
    KEX_31 = 31
    KEX_32 = 32
    KEX_33 = 33
    KEX_34 = 34
    USERAUTH_REQUEST = 50
    USERAUTH_FAILURE = 51
    USERAUTH_SUCCESS = 52
    USERAUTH_BANNER = 53
    USERAUTH_60 = 60  # PK_OK / PASSWD_CHANGEREQ / INFO_REQUEST
    USERAUTH_INFO_RESPONSE = 61
    GLOBAL_REQUEST = 80
    REQUEST_SUCCESS = 81
    REQUEST_FAILURE = 82
    CHANNEL_OPEN = 90
    CHANNEL_OPEN_CONFIRMATION = 91
    CHANNEL_OPEN_FAILURE = 92
    CHANNEL_WINDOW_ADJUST = 93
    CHANNEL_DATA = 94
    CHANNEL_EXTENDED_DATA = 95
    CHANNEL_EOF = 96
    CHANNEL_CLOSE = 97
    CHANNEL_REQUEST = 98
    CHANNEL_SUCCESS = 99
    CHANNEL_FAILURE = 100
    PING = 192  # OpenSSH's transport ping (PROTOCOL 1.8, "ping@openssh.com")
    PONG = 193


# Aliases for the method-specific numbers, so call sites read naturally.
KEXDH_INIT = KEX_ECDH_INIT = KEX_HYBRID_INIT = 30
KEXDH_REPLY = KEX_ECDH_REPLY = KEX_HYBRID_REPLY = 31
KEX_DH_GEX_REQUEST_OLD = 30
KEX_DH_GEX_GROUP = 31
KEX_DH_GEX_INIT = 32
KEX_DH_GEX_REPLY = 33
KEX_DH_GEX_REQUEST = 34
USERAUTH_PK_OK = USERAUTH_PASSWD_CHANGEREQ = USERAUTH_INFO_REQUEST = 60


class DisconnectReason(enum.IntEnum):
    """SSH_MSG_DISCONNECT reason codes (RFC 4253 §11.1)."""

    HOST_NOT_ALLOWED_TO_CONNECT = 1
    PROTOCOL_ERROR = 2
    KEY_EXCHANGE_FAILED = 3
    RESERVED = 4
    MAC_ERROR = 5
    COMPRESSION_ERROR = 6
    SERVICE_NOT_AVAILABLE = 7
    PROTOCOL_VERSION_NOT_SUPPORTED = 8
    HOST_KEY_NOT_VERIFIABLE = 9
    CONNECTION_LOST = 10
    BY_APPLICATION = 11
    TOO_MANY_CONNECTIONS = 12
    AUTH_CANCELLED_BY_USER = 13
    NO_MORE_AUTH_METHODS_AVAILABLE = 14
    ILLEGAL_USER_NAME = 15


class OpenFailure(enum.IntEnum):
    """SSH_MSG_CHANNEL_OPEN_FAILURE reason codes (RFC 4254 §5.1)."""

    ADMINISTRATIVELY_PROHIBITED = 1
    CONNECT_FAILED = 2
    UNKNOWN_CHANNEL_TYPE = 3
    RESOURCE_SHORTAGE = 4


EXTENDED_DATA_STDERR = 1

# Limits shared by the core (docs/limits.md; OpenSSH values).
MAX_PACKET_SIZE = 256 * 1024  # whole packet incl. length field, like sshd
MIN_PACKET_SIZE_ACCEPTED = 35000  # RFC 4253 §6.1: must accept at least this
MAX_VERSION_LINE = 255  # RFC 4253 §4.2, incl. CR LF
MAX_PRE_VERSION_LINES = 1024
MAX_PRE_VERSION_BYTES = 64 * 1024
MAX_NAME_LIST = 64 * 1024  # bytes in one KEXINIT name-list
DEFAULT_WINDOW_SIZE = 2 * 1024 * 1024
DEFAULT_MAX_PACKET_SIZE = 32768
