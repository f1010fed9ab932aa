"""The audit log: one line per login, session and forward, as sshd's auth log has them.

``AuditLog`` is the ``Observer`` every ``geossh.Server`` has unless told
otherwise. It logs at INFO under ``geossh.audit``:

* ``login accepted|refused|partial``: user, method, the key's type and
  ``SHA256:`` fingerprint (publickey, hostbased), a certificate's key id,
  serial and CA fingerprint, the client address and the connection id.
  Refused ``none`` requests (every OpenSSH client starts with one) are not
  logged; a refused key offer is (``signed=false``).
* ``session start`` and ``session end``: kind (exec, shell, subsystem), the
  command (cut to ``COMMAND_LIMIT`` characters) or subsystem name, and at the
  end the exit status or signal, data bytes each way and duration.
* ``forward open``: a forwarding channel (``direct-tcpip``, ``forwarded-tcpip``,
  streamlocal) and its target.

Each record carries its fields as ``record.audit`` (a dict), which
``geossh.runner.logformat.JsonFormatter`` writes as JSON members; the text line
is ``event result key=value ...``. Peer-chosen strings go through
``geossh.logtext.printable`` (no line breaks, control or bidi characters,
bounded length). Never logged: passwords, keyboard-interactive answers,
private keys, session data.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from geossh._facade.observer import Observer
from geossh.logtext import printable

log = logging.getLogger("geossh.audit")
COMMAND_LIMIT = 1024
FORWARD_KINDS = frozenset({
    "direct-tcpip", "forwarded-tcpip", "direct-streamlocal@openssh.com",
    "forwarded-streamlocal@openssh.com", "x11",
})  # fmt: skip
_NEEDS_QUOTES = frozenset(' "=')


def client_fields(transport: Any) -> dict[str, Any]:
    """``conn``, ``client`` and ``client_port`` of a connection (escaped)."""
    peer = transport.getpeername()
    fields: dict[str, Any] = {"conn": transport._conn_id}
    if isinstance(peer, tuple) and len(peer) >= 2:
        fields["client"] = printable(peer[0], 128)
        fields["client_port"] = peer[1] if isinstance(peer[1], int) else printable(peer[1], 16)
    else:
        fields["client"] = printable(peer or "unix", 128)
    return fields


def key_fields(details: Any) -> dict[str, Any]:
    """A public key's type and fingerprint; a certificate's id, serial and CA."""
    fields: dict[str, Any] = {}
    key = details.get("key") if isinstance(details, dict) else None
    if key is not None:
        fields["key_type"] = key.key_type
        fields["fingerprint"] = key.fingerprint_sha256()
    cert = details.get("certificate") if isinstance(details, dict) else None
    if cert is not None:
        fields["cert_id"] = printable(cert.key_id)
        fields["cert_serial"] = int(cert.serial)
        fields["ca_fingerprint"] = cert.signature_key.fingerprint_sha256()
    return fields


def format_value(value: Any) -> str:
    """One ``key=value`` value: escaped, double-quoted when it holds a space, quote or =."""
    text = printable(value) if not isinstance(value, (bool, int, float)) else str(value).lower()
    if text and not _NEEDS_QUOTES.intersection(text):
        return text
    return '"' + text.replace('"', "\\x22") + '"'


def emit(event: str, result: str, fields: dict[str, Any], level: int = logging.INFO) -> None:
    """Log one audit record (``event`` and ``result`` lead the fields)."""
    text = " ".join(f"{name}={format_value(value)}" for name, value in fields.items())
    fields = {"event": event, "result": result, **fields}
    log.log(level, "%s %s: %s", event, result, text, extra={"audit": fields})


class _Session:
    __slots__ = ("fields", "started")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.started = time.monotonic()


class AuditLog(Observer):
    """Logs logins, sessions and forwards under ``geossh.audit`` (see module docstring)."""

    def __init__(self) -> None:
        self._sessions: dict[Any, _Session] = {}  # open session channels

    def auth(self, transport: Any, username: str, method: str, result: str, details: Any) -> None:
        if method == "none" and result == "refused":
            return
        if not log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {"user": printable(username, 128), "method": printable(method)}
        fields.update(key_fields(details))
        if method == "publickey" and isinstance(details, dict) and "signed" in details:
            fields["signed"] = bool(details["signed"])
        if isinstance(details, dict) and details.get("rejected"):
            fields["reason"] = printable(details["rejected"])
        fields.update(client_fields(transport))
        emit("login", result, fields)

    def session_started(self, transport: Any, channel: Any, kind: str, what: Any) -> None:
        fields: dict[str, Any] = {"kind": kind, "channel": channel.chanid}
        if kind == "exec":
            fields["command"] = printable(what or b"", COMMAND_LIMIT)
        elif kind == "subsystem":
            fields["subsystem"] = printable(what, 64)
        fields["user"] = printable(transport.get_username() or "", 128)
        fields.update(client_fields(transport))
        self._sessions[channel] = _Session(fields)
        if log.isEnabledFor(logging.INFO):
            emit("session", "start", fields)

    def channel_opened(self, transport: Any, channel: Any, target: Any = None) -> None:
        if channel.kind not in FORWARD_KINDS or not log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {"kind": channel.kind, "channel": channel.chanid}
        if isinstance(target, tuple) and len(target) >= 2:
            fields["target"] = printable(target[0], 256)
            fields["target_port"] = target[1] if isinstance(target[1], int) else 0
        elif target is not None:
            fields["target"] = printable(target, 256)
        fields["user"] = printable(transport.get_username() or "", 128)
        fields.update(client_fields(transport))
        emit("forward", "open", fields)

    def channel_closed(self, transport: Any, channel: Any) -> None:
        session = self._sessions.pop(channel, None)
        if session is None:
            return
        if not log.isEnabledFor(logging.INFO):
            return
        fields = dict(session.fields)
        status = channel._exit_sent
        if isinstance(status, str):
            fields["signal"] = printable(status, 32)
        elif status is not None:
            fields["exit_status"] = status
        fields["bytes_in"] = channel._bytes_in
        fields["bytes_out"] = channel._bytes_out
        fields["duration"] = round(time.monotonic() - session.started, 3)
        emit("session", "end", fields)
