"""The closing summary of a ``Transport``: how it went, for the one log line and penalties.

One INFO line is logged when a connection ends: peer, user, auth method,
failures, duration, bytes each way, and why it ended (user names and
reasons are ``repr``-quoted so a peer cannot forge log lines; nothing
secret is ever logged). ``geossh.Server`` uses ``outcome`` for per-source
penalties.
"""

from __future__ import annotations

import time
from typing import Any


def outcome(transport: Any) -> str:
    """How the connection went, for per-source penalties.

    ``authenticated``, ``grace_exceeded`` (a handshake or login deadline
    ended it), ``crash`` (an internal error), ``authfail`` (at least one
    authentication attempt failed) or ``noauth`` (left without one).
    """
    if transport.authenticated:
        return "authenticated"
    if transport.crashed:
        return "crash"
    elapsed = time.monotonic() - transport._started_at
    handshake = transport.banner_timeout + transport.handshake_timeout
    if elapsed >= transport.auth_timeout or (
        not transport.initial_kex_done and elapsed >= handshake
    ):
        return "grace_exceeded"
    core = transport._conn
    if core is not None and core.auth.failures > 0:
        return "authfail"
    return "noauth"


def summary(transport: Any) -> dict[str, Any]:
    """Facts about the connection for the closing log line (and for ``Server``)."""
    core, pump = transport._conn, transport._pump
    return {
        "user": core.auth.username if core is not None else None,
        "auth": transport.auth_method if transport.authenticated else None,
        "auth_failures": core.auth.failures if core is not None else 0,
        "duration": time.monotonic() - transport._started_at,
        "bytes_in": pump.bytes_in if pump is not None else 0,
        "bytes_out": pump.bytes_out if pump is not None else 0,
        "reason": transport.close_reason or "connection closed",
        "outcome": outcome(transport),
    }


def summary_text(transport: Any) -> str:
    """The summary as one ``key=value`` line (values that come from the peer quoted)."""
    facts = summary(transport)
    return (
        f"user={facts['user']!r} auth={facts['auth'] or '-'} "
        f"auth_failures={facts['auth_failures']} duration={facts['duration']:.3f}s "
        f"bytes_in={facts['bytes_in']} bytes_out={facts['bytes_out']} "
        f"outcome={facts['outcome']} reason={facts['reason']!r}"
    )
