"""Settings of one server-side connection core, with OpenSSH-like defaults.

Pure data: the facade (``geossh.Transport``) fills it before the core starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from geossh.proto.algorithms import DEFAULT_USER_KEY_ALGORITHMS, ServerPreferences
from geossh.proto.constants import (
    DEFAULT_MAX_PACKET_SIZE,
    DEFAULT_WINDOW_SIZE,
    MAX_PACKET_SIZE,
    MAX_PRE_VERSION_LINES,
    MAX_VERSION_LINE,
)
from geossh.proto.keys import SSHKey


@dataclass
class ServerConfig:
    """Everything the core needs to serve one connection."""

    host_keys: dict[str, SSHKey] = field(default_factory=dict)  # key type -> key
    preferences: ServerPreferences = field(default_factory=ServerPreferences)
    server_version: str = "SSH-2.0-geossh"
    pubkey_algorithms: tuple[str, ...] = DEFAULT_USER_KEY_ALGORITHMS
    server_sig_algs: tuple[str, ...] = DEFAULT_USER_KEY_ALGORITHMS
    moduli: Sequence[tuple[int, int]] = ()
    max_packet_size: int = MAX_PACKET_SIZE
    max_version_line: int = MAX_VERSION_LINE
    max_pre_version_lines: int = MAX_PRE_VERSION_LINES
    # Re-key after this many bytes in either direction or this many seconds.
    rekey_bytes: int = 1 << 30
    rekey_seconds: float | None = 3600.0
    # Deadlines measured from the start of the connection.
    banner_timeout: float = 15.0
    handshake_timeout: float = 15.0
    # Our first KEXINIT answers the client's (so every client flight gets a
    # reply and its Nagle never waits for a delayed ACK); a client that waits
    # for ours instead gets it this long after its version line.
    kexinit_wait: float = 0.05
    auth_timeout: float = 120.0
    max_auth_tries: int = 6
    max_username_length: int = 256
    max_password_length: int = 1024
    max_interactive_rounds: int = 10
    # Connection protocol.
    default_window_size: int = DEFAULT_WINDOW_SIZE
    default_max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
    max_channels: int = 64
    max_pending_global_requests: int = 64
    # Liveness (proto/liveness.py), 0: off, as in sshd.
    client_alive_interval: float = 0.0
    client_alive_count_max: int = 3
    unused_connection_timeout: float = 0.0
    # OpenSSH extensions (PROTOCOL): EXT_INFO advertises publickey-hostbound
    # and ping; after authentication the client hears every host key we hold
    # (hostkeys-00) and may ask us to prove them (hostkeys-prove-00).
    hostbound_auth: bool = True
    ping: bool = True
    announce_host_keys: bool = True
