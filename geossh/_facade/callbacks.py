"""Answers connection-protocol events (RFC 4254) by asking the ``ServerInterface``.

Channel opens, channel requests and global requests are parsed here and
passed to paramiko's callbacks with paramiko's argument types (``command``,
``term``, ``modes``, env ``name``/``value`` as bytes). A malformed request
body (including malformed terminal modes) gets a failure reply without
calling the application; so does a session request (``exec``, ``pty-req`` …)
on a channel that is not a session, as in OpenSSH. A callback that raises
fails that one request (logged with its traceback). A channel-open
callback returning anything but an int (None, say) refuses the open
(ADMINISTRATIVELY_PROHIBITED, as paramiko does). At most
``MAX_ENV_REQUESTS`` ``env`` requests per channel are accepted, as in sshd;
later ones fail without asking the application.

Ordering (docs/channels.md): ``answer_channel_request`` closes the channel's send
gate while the callback runs, so a greenlet the callback woke or spawned
cannot put data, EOF or CLOSE on the wire before the reply, even if the
callback yields; sends from the callback itself pass the gate.

Beyond paramiko's ServerInterface, a server may define
``check_channel_signal_request(channel, signal_name)`` (``signal``, name
without "SIG") and ``check_channel_break_request(channel, length_ms)``
(``break``, RFC 4335); without them those requests fail.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from geossh._facade.common import OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED, OPEN_SUCCEEDED
from geossh._facade.message import Message
from geossh.errors import RemoteProtocolError
from geossh.logtext import printable
from geossh.proto import wire
from geossh.proto.termmodes import PtyModesError, decode_modes

if TYPE_CHECKING:
    from geossh._facade.channel import Channel
    from geossh._facade.server import ServerInterface
    from geossh.proto.channels import ChannelLayer
    from geossh.proto.events import ChannelRequestReceived


def call(log: logging.LoggerAdapter[Any], fn: Any, failure: Any, *args: Any) -> Any:
    """Call an application callback; an exception yields ``failure``."""
    if fn is None:
        return failure
    try:
        return fn(*args)
    except Exception:
        log.error("Exception in %s", getattr(fn, "__name__", fn), exc_info=True)
        return failure


def channel_open_result(
    server: ServerInterface, log: logging.LoggerAdapter[Any], chanid: int, kind: str, data: bytes
) -> int:
    """Ask whether a channel the peer opens may exist; returns an OPEN_* code.

    A callback returning something that is not an int (None, say) refuses
    the open, as in paramiko: OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED.
    """
    failure = OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
    try:
        if kind == "direct-tcpip":
            reader = wire.Reader(data)
            host, port = reader.text(1024), reader.u32()
            origin = (reader.text(1024), reader.u32())
            result = call(log, server.check_channel_direct_tcpip_request, failure,
                          chanid, origin, (host, port))  # fmt: skip
        elif kind == "direct-streamlocal@openssh.com":
            reader = wire.Reader(data)
            path = reader.text(4096)
            check = getattr(server, "check_channel_direct_streamlocal_request", None)
            result = call(log, check, failure, chanid, path)
        else:
            result = call(log, server.check_channel_request, failure, kind, chanid)
    except RemoteProtocolError:
        return failure
    return _open_code(log, result, failure)


def _open_code(log: logging.LoggerAdapter[Any], result: Any, failure: int) -> int:
    """An OPEN_* code from a callback's result; anything but an int (or bool) is ``failure``."""
    if isinstance(result, int):  # bool too: False is 0, OPEN_SUCCEEDED (paramiko's semantics)
        return int(result)
    log.warning("channel open callback returned %r, not an OPEN_* code: refused", type(result))
    return failure


def _pty(server: ServerInterface, chan: Channel, r: wire.Reader) -> Any:
    term = r.string(1024)
    width, height, pw, ph = r.u32(), r.u32(), r.u32(), r.u32()
    modes = r.string(4096)
    try:
        decode_modes(modes)
    except PtyModesError as exc:
        raise RemoteProtocolError(f"bad terminal modes: {exc}") from None
    return server.check_channel_pty_request(chan, term, width, height, pw, ph, modes)


def _exec(server: ServerInterface, chan: Channel, r: wire.Reader) -> Any:
    return server.check_channel_exec_request(chan, r.string(256 * 1024))


def _subsystem(server: ServerInterface, chan: Channel, r: wire.Reader) -> Any:
    return server.check_channel_subsystem_request(chan, r.text(1024))


def _window_change(server: ServerInterface, chan: Channel, r: wire.Reader) -> Any:
    width, height, pw, ph = r.u32(), r.u32(), r.u32(), r.u32()
    return server.check_channel_window_change_request(chan, width, height, pw, ph)


def _x11(server: ServerInterface, chan: Channel, r: wire.Reader) -> Any:
    single = r.boolean()
    protocol = r.text(1024)
    cookie = r.string(1024)
    screen = r.u32()
    return server.check_channel_x11_request(chan, single, protocol, cookie, screen)


def _env(server: ServerInterface, chan: Channel, r: wire.Reader) -> Any:
    name = r.string(1024)
    value = r.string(64 * 1024)
    accepted = _ENV_ACCEPTED.get(chan, 0)
    if accepted >= MAX_ENV_REQUESTS:  # sshd's session_env_req: "too many env vars"
        _ENV_ACCEPTED[chan] = MAX_ENV_REQUESTS + 1  # logged once per channel
        raise _Refused(f"{MAX_ENV_REQUESTS} env requests already accepted",
                       first=accepted == MAX_ENV_REQUESTS)  # fmt: skip
    ok = server.check_channel_env_request(chan, name, value)
    if ok:
        _ENV_ACCEPTED[chan] = accepted + 1
    return ok


def _signal(server: ServerInterface, chan: Channel, r: wire.Reader) -> Any:
    check = getattr(server, "check_channel_signal_request", None)
    return check(chan, r.ascii(64)) if check is not None else False


def _break(server: ServerInterface, chan: Channel, r: wire.Reader) -> Any:
    check = getattr(server, "check_channel_break_request", None)
    return check(chan, r.u32()) if check is not None else False


def _exit_status(server: ServerInterface, chan: Channel, r: wire.Reader) -> Any:
    return chan._set_exit_status(r.rest())


class _Refused(Exception):
    """A request refused before the application is asked (a per-channel cap)."""

    def __init__(self, reason: str, first: bool = True) -> None:
        super().__init__(reason)
        self.first = first  # logged at INFO the first time, then at DEBUG


#: Accepted ``env`` requests per channel; later ones fail unasked (sshd stops at 128).
MAX_ENV_REQUESTS = 128
_ENV_ACCEPTED: weakref.WeakKeyDictionary[Channel, int] = weakref.WeakKeyDictionary()

_Handler = Callable[["ServerInterface", "Channel", wire.Reader], Any]
_REQUESTS: dict[str, _Handler] = {
    "pty-req": _pty,
    "shell": lambda server, chan, r: server.check_channel_shell_request(chan),
    "exec": _exec,
    "subsystem": _subsystem,
    "window-change": _window_change,
    "x11-req": _x11,
    "auth-agent-req@openssh.com": (
        lambda server, chan, r: server.check_channel_forward_agent_request(chan)
    ),
    "env": _env,
    "signal": _signal,
    "break": _break,
    "exit-status": _exit_status,
    "xon-xoff": lambda server, chan, r: True,
}
# Requests that only make sense on a session channel (RFC 4254 §6).
_SESSION_ONLY = frozenset(_REQUESTS) - {"exit-status", "xon-xoff"}


def channel_request_result(
    server: ServerInterface, log: logging.LoggerAdapter[Any], chan: Channel, kind: str, data: bytes
) -> bool:
    """Ask the application about one channel request; True means success."""
    handler = _REQUESTS.get(kind)
    if handler is None:
        log.debug("[chan %s] Unhandled channel request %r", chan.get_name(), kind)
        return False
    if kind in _SESSION_ONLY and chan.kind != "session":
        log.info("[chan %s] Refused %r on a %s channel", chan.get_name(), kind, chan.kind)
        return False
    try:
        result = handler(server, chan, wire.Reader(data))
    except _Refused as exc:
        level = logging.INFO if exc.first else logging.DEBUG
        log.log(level, "[chan %s] Refused %r: %s", chan.get_name(), kind, printable(exc))
        return False
    except RemoteProtocolError as exc:
        log.warning("[chan %s] Malformed %s request: %s", chan.get_name(), kind, printable(exc))
        return False
    except Exception:
        log.error("[chan %s] Exception in %s request handler", chan.get_name(), kind, exc_info=True)
        return False
    return bool(result)


def answer_channel_request(
    server: ServerInterface | None,
    log: logging.LoggerAdapter[Any],
    core: ChannelLayer,
    chan: Channel | None,
    event: ChannelRequestReceived,
) -> None:
    """Run the request's callback behind the channel's send gate, then queue the reply.

    Other greenlets' sends on ``chan`` wait until the reply is queued, so it
    reaches the wire first (want_reply false: no reply, the gate still holds).
    """
    if chan is None or server is None:
        if event.want_reply:
            core.reply_channel_request(event.channel_id, False)
        return
    with chan._request_gate():
        ok = channel_request_result(server, log, chan, event.kind, event.data)
        if event.want_reply:
            core.reply_channel_request(event.channel_id, ok)


_STREAMLOCAL_FORWARD = {
    "streamlocal-forward@openssh.com": "check_streamlocal_forward_request",
    "cancel-streamlocal-forward@openssh.com": "cancel_streamlocal_forward_request",
}


def global_request_reply(
    server: ServerInterface, log: logging.LoggerAdapter[Any], kind: str, data: bytes
) -> tuple[bool, bytes]:
    """Ask the application about a global request; returns (success, reply data)."""
    try:
        if kind in ("tcpip-forward", "cancel-tcpip-forward"):
            reader = wire.Reader(data)
            address, port = reader.text(1024), reader.u32()
            if kind == "cancel-tcpip-forward":
                call(log, server.cancel_port_forward_request, None, address, port)
                return True, b""
            bound = call(log, server.check_port_forward_request, False, address, port)
            if not bound:
                return False, b""
            return True, wire.u32(port if bound is True else int(bound))
        if kind in _STREAMLOCAL_FORWARD:  # OpenSSH PROTOCOL §2.4; optional callbacks
            path = wire.Reader(data).text(4096)
            check = getattr(server, _STREAMLOCAL_FORWARD[kind], None)
            return bool(call(log, check, False, path)), b""
    except RemoteProtocolError:
        return False, b""
    result = call(log, server.check_global_request, False, kind, Message(data))
    if not result:
        return False, b""
    if isinstance(result, tuple):
        return True, Message().add(*result).asbytes()
    return True, b""


def open_succeeded(result: Any) -> bool:
    """paramiko's int semantics: 0 (and False) accept, anything else refuses."""
    return bool(result == OPEN_SUCCEEDED)
