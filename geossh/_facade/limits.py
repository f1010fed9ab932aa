"""Per-connection limits, liveness checks and the closing summary of a ``Transport``.

``ConnectionLimits`` is a mixin of ``geossh.Transport``. It owns:

* the limit attributes (OpenSSH-like defaults; docs/limits.md is the table)
  and how they reach the protocol core's ``ServerConfig``;
* the liveness settings, which the core enforces (``geossh/proto/liveness.py``):
  paramiko's fire-and-forget ``set_keepalive``;
  ``client_alive_interval``/``client_alive_count_max`` (sshd's
  ClientAliveInterval/CountMax) and ``unused_connection_timeout`` (sshd's
  UnusedConnectionTimeout), read at ``start_server``;
* ``max_pending_channels``: the cap on channels opened by the client but
  not yet taken by ``accept()`` (the dispatcher refuses more with
  OPEN_FAILURE RESOURCE_SHORTAGE and the connection goes on);
* the one INFO line logged when a connection ends: peer, user, auth method,
  failures, duration, bytes each way, and why it ended (user names and
  reasons are ``repr``-quoted so a peer cannot forge log lines; nothing
  secret is ever logged).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from geossh.proto.config import ServerConfig
from geossh.proto.constants import (
    MAX_PACKET_SIZE,
    MAX_PRE_VERSION_LINES,
    MAX_VERSION_LINE,
)

#: RFC 4253 §6.1: every implementation must accept packets of 35000 bytes.
MIN_PACKET_LIMIT = 35000
#: Largest ``max_packet_size`` geossh accepts as a setting.
MAX_PACKET_LIMIT = 1 << 20
_CORE_DEFAULTS = ServerConfig()


class ConnectionLimits:
    """Limit settings, liveness timers and the closing summary (see module docstring)."""

    # Limits (instance assignments override these class defaults).
    max_packet_size: int = MAX_PACKET_SIZE
    max_version_line: int = MAX_VERSION_LINE
    max_pre_version_lines: int = MAX_PRE_VERSION_LINES
    max_pending_channels: int = 64  # = max_channels: lower it for apps that accept()
    max_pending_global_requests: int = 64
    # Liveness, read at start_server (defaults: the core's, 0 is off as in sshd).
    client_alive_interval: float = _CORE_DEFAULTS.client_alive_interval
    client_alive_count_max: int = _CORE_DEFAULTS.client_alive_count_max
    unused_connection_timeout: float = _CORE_DEFAULTS.unused_connection_timeout
    log_summary: bool = True  # geossh.Server logs its own line instead

    # Set by geossh.Transport.
    _conn: Any
    _pump: Any
    _channels: dict[int, Any]
    server_accepts: list[Any]
    logger: Any
    authenticated: bool
    initial_kex_done: bool
    banner_timeout: float
    handshake_timeout: float
    auth_timeout: float

    def _init_limits(self) -> None:
        self._keepalive = 0.0  # set_keepalive before start_server: applied then
        self._started_at = time.monotonic()
        self.auth_method: str | None = None
        self.close_reason = ""
        self.crashed = False

    def _server_config(self) -> ServerConfig:
        if not MIN_PACKET_LIMIT <= self.max_packet_size <= MAX_PACKET_LIMIT:
            raise ValueError(
                f"max_packet_size must be {MIN_PACKET_LIMIT}-{MAX_PACKET_LIMIT} bytes "
                f"(RFC 4253 §6.1), got {self.max_packet_size}"
            )
        config: ServerConfig = super()._server_config()  # type: ignore[misc]
        return config  # cached: see TransportSettings._server_config

    def _config_key(self) -> tuple[object, ...]:
        key: tuple[object, ...] = super()._config_key()  # type: ignore[misc]
        limits = (self.max_packet_size, self.max_version_line, self.max_pre_version_lines)
        liveness = (
            self.client_alive_interval,
            self.client_alive_count_max,
            self.unused_connection_timeout,
        )
        return (*key, *limits, self.max_pending_global_requests, *liveness)

    def _build_server_config(self) -> ServerConfig:
        config: ServerConfig = super()._build_server_config()  # type: ignore[misc]
        return dataclasses.replace(
            config,
            max_packet_size=self.max_packet_size,
            max_version_line=max(64, self.max_version_line),
            max_pre_version_lines=max(0, self.max_pre_version_lines),
            max_pending_global_requests=max(1, self.max_pending_global_requests),
            client_alive_interval=max(0.0, float(self.client_alive_interval)),
            client_alive_count_max=max(0, int(self.client_alive_count_max)),
            unused_connection_timeout=max(0.0, float(self.unused_connection_timeout)),
        )

    # -- liveness (the checks run in the core: geossh/proto/liveness.py) -------------
    def set_keepalive(self, interval: float) -> None:
        """Send a keepalive global request every ``interval`` s (0: off; paramiko API).

        No reply is asked for; for a dead-peer check use ``client_alive_interval``.
        """
        self._keepalive = float(interval)
        if self._conn is not None:
            self._conn.set_keepalive(self._keepalive, time.monotonic())

    # -- the closing summary ------------------------------------------------------------
    def outcome(self) -> str:
        """How the connection went, for per-source penalties.

        ``authenticated``, ``grace_exceeded`` (a handshake or login deadline
        ended it), ``crash`` (an internal error), ``authfail`` (at least one
        authentication attempt failed) or ``noauth`` (left without one).
        """
        if self.authenticated:
            return "authenticated"
        if self.crashed:
            return "crash"
        elapsed = time.monotonic() - self._started_at
        handshake = self.banner_timeout + self.handshake_timeout
        if elapsed >= self.auth_timeout or (not self.initial_kex_done and elapsed >= handshake):
            return "grace_exceeded"
        core = self._conn
        if core is not None and core.auth.failures > 0:
            return "authfail"
        return "noauth"

    def summary(self) -> dict[str, Any]:
        """Facts about the connection for the closing log line (and for ``Server``)."""
        core, pump = self._conn, self._pump
        return {
            "user": core.auth.username if core is not None else None,
            "auth": self.auth_method if self.authenticated else None,
            "auth_failures": core.auth.failures if core is not None else 0,
            "duration": time.monotonic() - self._started_at,
            "bytes_in": pump.bytes_in if pump is not None else 0,
            "bytes_out": pump.bytes_out if pump is not None else 0,
            "reason": self.close_reason or "connection closed",
            "outcome": self.outcome(),
        }

    def summary_text(self) -> str:
        """The summary as one ``key=value`` line (values that come from the peer quoted)."""
        facts = self.summary()
        return (
            f"user={facts['user']!r} auth={facts['auth'] or '-'} "
            f"auth_failures={facts['auth_failures']} duration={facts['duration']:.3f}s "
            f"bytes_in={facts['bytes_in']} bytes_out={facts['bytes_out']} "
            f"outcome={facts['outcome']} reason={facts['reason']!r}"
        )
