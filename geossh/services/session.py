"""Blocking session handlers: plain functions that serve exec, shell and subsystem requests.

A handler is ``handler(session) -> int | None``. It runs in its own
greenlet for one session request and writes sequential blocking code:
``session.stdin.read()``, ``session.write("hi\\n")``, ``session.readline()``.
Returning ends the session with that exit status (None is 0);
``session.exit(status)`` and ``session.exit_signal("TERM")`` end it from
anywhere. A handler that raises ends its session with exit status 1 and a
log line; other sessions and the server carry on.

``SessionDispatcher`` is the ``ServerInterface`` adapter that does this: it
wraps the application's interface (which keeps deciding authentication and
anything without a handler) and answers the session channel requests
(pty-req, env, window-change, signal, exec, shell, subsystem) from a
``SessionHandlers`` table. ``geossh.Server`` puts one in front of every
connection's interface.

Owns: Session, PtyInfo, SessionExit, SessionHandlers, SessionDispatcher.
Must not import geossh.runner.
"""

from __future__ import annotations

import codecs
import fnmatch
import logging
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import gevent
from gevent.event import Event

from geossh._facade.common import OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED, OPEN_SUCCEEDED
from geossh._facade.server import ServerInterface

if TYPE_CHECKING:
    from geossh._facade.channel import Channel, ChannelFile
    from geossh._facade.transport import Transport

SessionHandler = Callable[["Session"], "int | None"]
DEFAULT_ACCEPT_ENV = ("LANG", "LC_*", "TZ")
MAX_LINE = 4096
#: Environment kept per session: variables (sshd's cap) and bytes of names and values.
MAX_ENV_VARS = 128
MAX_ENV_BYTES = 64 * 1024
#: Received ``signal`` requests a session keeps unread (without ``on_signal``).
MAX_SIGNALS = 64
_LONE_LF = re.compile(rb"(?<!\r)\n")
_log = logging.getLogger("geossh.server")


@dataclass
class PtyInfo:
    """The terminal a client asked for: type, size in characters/pixels, encoded modes."""

    term: str
    width: int
    height: int
    pixel_width: int = 0
    pixel_height: int = 0
    modes: bytes = b""


class SessionExit(Exception):
    """Raised by ``Session.exit``/``exit_signal``: end the session with this status."""

    def __init__(
        self, status: int = 0, signal: str | None = None, core_dumped: bool = False,
        message: str = "",
    ) -> None:  # fmt: skip
        super().__init__(status if signal is None else signal)
        self.status = status
        self.signal = signal
        self.core_dumped = core_dumped
        self.message = message


@dataclass
class SessionHandlers:
    """Which handler serves which session request (a None entry defers to the interface).

    ``accept_env`` are fnmatch patterns of ``env`` names accepted (like
    sshd's AcceptEnv); ``allow_pty`` refuses ``pty-req`` when False.
    """

    exec: SessionHandler | None = None
    shell: SessionHandler | None = None
    subsystems: dict[str, SessionHandler] = field(default_factory=dict)
    accept_env: tuple[str, ...] = DEFAULT_ACCEPT_ENV
    allow_pty: bool = True

    def __bool__(self) -> bool:
        return bool(self.exec or self.shell or self.subsystems)

    def env_allowed(self, name: str) -> bool:
        """True if ``name`` matches one of ``accept_env``."""
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.accept_env)


class Session:
    """One session request being served: what was asked, and the channel's streams.

    Attributes: ``kind`` ("exec", "shell", "subsystem"), ``command`` (bytes,
    exec only), ``subsystem`` (name), ``pty`` (``PtyInfo`` or None), ``env``
    (accepted variables), ``username``, ``peer`` (client address),
    ``server`` (the connection's ``ServerInterface``), ``channel``,
    ``transport``, and binary file objects ``stdin``/``stdout``/``stderr``.
    ``window_changed`` is set on every window-change (the new size is in
    ``pty``); ``on_window_change(pty)`` and ``on_signal(name)`` are optional
    callbacks, run in the connection greenlet, so they must not block.
    ``signals`` lists the names of ``signal`` requests received while no
    ``on_signal`` was set, oldest first; a handler may clear it. It holds at
    most ``MAX_SIGNALS``: later ones are refused (failure reply) until it
    shrinks. With ``on_signal`` set, signals go to it and are not kept.
    """

    def __init__(
        self, channel: Channel, kind: str, server: Any, pty: PtyInfo | None = None,
        env: dict[str, str] | None = None, command: bytes | None = None,
        subsystem: str | None = None,
    ) -> None:  # fmt: skip
        self.channel = channel
        self.transport: Transport = channel.get_transport()
        self.kind = kind
        self.server = server
        self.pty = pty
        self.env = dict(env or {})
        self.command = command
        self.subsystem = subsystem
        self.username: str | None = self.transport.get_username()
        self.peer = self.transport.getpeername()
        self.stdin: ChannelFile = channel.makefile("rb")
        self.stdout: ChannelFile = channel.makefile("wb", 0)
        self.stderr: ChannelFile = channel.makefile_stderr("wb", 0)
        self.window_changed = Event()
        self.signals: list[str] = []
        self.on_window_change: Callable[[PtyInfo], None] | None = None
        self.on_signal: Callable[[str], None] | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def __repr__(self) -> str:
        what = self.command if self.kind == "exec" else self.subsystem or ""
        return f"<geossh.Session {self.kind} {what!r} user={self.username!r} peer={self.peer}>"

    @property
    def command_text(self) -> str:
        """The exec command decoded as UTF-8 ("" when not exec)."""
        return (self.command or b"").decode("utf-8", "replace")

    # -- ending ---------------------------------------------------------------
    def exit(self, status: int = 0) -> NoReturn:
        """End the session now with ``status``."""
        raise SessionExit(status)

    def exit_signal(self, name: str, core_dumped: bool = False, message: str = "") -> NoReturn:
        """End the session as killed by signal ``name`` (without "SIG", e.g. "TERM")."""
        raise SessionExit(128, name.removeprefix("SIG"), core_dumped, message)

    # -- output ------------------------------------------------------------------
    def _encode(self, data: str | bytes) -> bytes:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        return _LONE_LF.sub(b"\r\n", raw) if self.pty is not None else raw

    def write(self, data: str | bytes) -> None:
        """Send to stdout; on a pty, ``\\n`` becomes ``\\r\\n`` (as a tty's ONLCR does)."""
        self.channel.sendall(self._encode(data))

    def write_stderr(self, data: str | bytes) -> None:
        """Send to stderr (newlines translated on a pty, as ``write``)."""
        self.channel.sendall_stderr(self._encode(data))

    # -- input -------------------------------------------------------------------
    def readline(self, prompt: str = "", echo: bool = True) -> str | None:
        """One line of input without its newline; None at end of input.

        Without a pty this reads up to ``\\n``. On a pty (the client's terminal
        is raw, so the server edits the line as a tty would): input is echoed
        unless ``echo`` is False, Backspace and ^U edit, ^C discards the line
        (returns ""), ^D on an empty line is end of input, escape sequences
        (arrow keys) are ignored. Lines are capped at ``MAX_LINE`` characters.
        """
        if prompt:
            self.write(prompt)
        if self.pty is None:
            line = self.stdin.readline(MAX_LINE)
            if not line:
                return None
            text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
            return text.rstrip("\r\n")
        return self._edit_line(echo)

    def _edit_line(self, echo: bool) -> str | None:
        chars: list[str] = []
        while True:
            byte = self.stdin.read(1)
            if not byte:
                return "".join(chars) if chars else None
            ch = byte[0]
            if ch in (0x0D, 0x0A):
                self._echo(b"\r\n", True)
                return "".join(chars)
            if ch in (0x7F, 0x08):
                if chars:
                    chars.pop()
                    self._echo(b"\b \b", echo)
            elif ch == 0x15:  # ^U
                self._echo(b"\b \b" * len(chars), echo)
                chars.clear()
            elif ch == 0x03:  # ^C
                self._echo(b"^C\r\n", True)
                return ""
            elif ch == 0x04:  # ^D
                if not chars:
                    return None
            elif ch == 0x1B:
                self._skip_escape()
            elif ch >= 0x20 or ch == 0x09:
                text = self._decoder.decode(byte)
                if text and len(chars) < MAX_LINE:
                    chars.append(text)
                    self._echo(text.encode("utf-8"), echo)

    def _echo(self, data: bytes, echo: bool) -> None:
        if echo:
            self.channel.sendall(data)

    def _skip_escape(self) -> None:
        """Consume a CSI/SS3 sequence (``ESC [ ... final`` or ``ESC O x``)."""
        intro = self.stdin.read(1)
        if intro == b"O":
            self.stdin.read(1)
        elif intro == b"[":
            for _ in range(16):
                byte = self.stdin.read(1)
                if not byte or 0x40 <= byte[0] <= 0x7E:
                    return

    # -- called from the connection greenlet ---------------------------------------
    def _window_change(self, width: int, height: int, pw: int, ph: int) -> None:
        if self.pty is None:
            self.pty = PtyInfo("", width, height, pw, ph)
        else:
            self.pty.width, self.pty.height = width, height
            self.pty.pixel_width, self.pty.pixel_height = pw, ph
        self.window_changed.set()
        if self.on_window_change is not None:
            self.on_window_change(self.pty)

    def _signal(self, name: str) -> bool:
        """Deliver one ``signal`` request; False (refused) when ``signals`` is full."""
        if self.on_signal is not None:
            self.on_signal(name)
            return True
        if len(self.signals) >= MAX_SIGNALS:
            return False
        self.signals.append(name)
        return True


@dataclass
class _Pending:
    """What a session channel asked for before its exec/shell/subsystem request."""

    pty: PtyInfo | None = None
    env: dict[str, str] = field(default_factory=dict)
    env_bytes: int = 0  # names and values in ``env``, UTF-8
    env_full: bool = False  # a request was refused for the caps (logged once)
    session: Session | None = None

    def set_env(self, name: str, value: str) -> bool:
        """Keep ``name=value`` unless that passes ``MAX_ENV_VARS`` or ``MAX_ENV_BYTES``."""
        old = self.env.get(name)
        size = len(name.encode()) + len(value.encode())
        total = self.env_bytes + size
        if old is not None:
            total -= len(name.encode()) + len(old.encode())
        elif len(self.env) >= MAX_ENV_VARS:
            return False
        if total > MAX_ENV_BYTES:
            return False
        self.env[name] = value
        self.env_bytes = total
        return True


def _overrides(server: Any, name: str) -> bool:
    """True if ``server`` implements ``name`` beyond ServerInterface's default."""
    method = getattr(type(server), name, None)
    return method is not None and method is not getattr(ServerInterface, name, None)


class SessionDispatcher:
    """A ``ServerInterface`` adapter: session requests go to handlers, the rest to ``server``.

    Every attribute not defined here is the wrapped interface's, so its
    authentication callbacks, forwarding policy and paramiko-style
    subsystem handlers keep working. ``accepting = False`` refuses new
    session channels (graceful stop). ``kill_sessions()`` ends handlers
    still running when the connection is gone.
    """

    def __init__(
        self, server: Any, handlers: SessionHandlers,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:  # fmt: skip
        self.server = server
        self.handlers = handlers
        self.log = logger if logger is not None else _log
        self.accepting = True
        self.greenlets: set[gevent.Greenlet[Any, Any]] = set()
        self._pending: weakref.WeakKeyDictionary[Channel, _Pending] = weakref.WeakKeyDictionary()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)

    def _state(self, channel: Channel) -> _Pending:
        return self._pending.setdefault(channel, _Pending())

    # -- channel open -------------------------------------------------------------
    def check_channel_request(self, kind: str, chanid: int) -> int:
        """Sessions are accepted when handlers exist (unless the interface decides)."""
        if kind == "session" and not self.accepting:
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        if (
            kind == "session"
            and self.handlers
            and not _overrides(self.server, "check_channel_request")
        ):
            return OPEN_SUCCEEDED
        return int(self.server.check_channel_request(kind, chanid))

    # -- requests before the session starts -------------------------------------------
    def check_channel_pty_request(
        self, channel: Channel, term: bytes, width: int, height: int, pw: int, ph: int,
        modes: bytes,
    ) -> bool:  # fmt: skip
        """Record the pty (or ask the interface when no handler would use it)."""
        if not self.handlers or _overrides(self.server, "check_channel_pty_request"):
            ok = self.server.check_channel_pty_request(channel, term, width, height, pw, ph, modes)
            if not ok or not self.handlers:
                return bool(ok)
        elif not self.handlers.allow_pty:
            return False
        name = term.decode("ascii", "replace") if isinstance(term, bytes) else str(term)
        self._state(channel).pty = PtyInfo(name, width, height, pw, ph, bytes(modes))
        return True

    def check_channel_env_request(self, channel: Channel, name: bytes, value: bytes) -> bool:
        """Keep variables ``accept_env`` allows (or the interface accepts).

        A session keeps at most ``MAX_ENV_VARS`` variables and
        ``MAX_ENV_BYTES`` of them; requests beyond fail (the interface is
        not asked).
        """
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        state = self._state(channel)
        if text not in state.env and len(state.env) >= MAX_ENV_VARS:
            return self._env_refused(state, text)
        ok = self.handlers.env_allowed(text) or bool(
            self.server.check_channel_env_request(channel, name, value)
        )
        if ok and not state.set_env(text, raw):
            return self._env_refused(state, text)
        return ok

    def _env_refused(self, state: _Pending, name: str) -> bool:
        if not state.env_full:  # one line per session, however many follow
            state.env_full = True
            self.log.info("env %r refused: session environment full (%d variables, "
                          "%d bytes)", name, len(state.env), state.env_bytes)  # fmt: skip
        return False

    def check_channel_window_change_request(
        self, channel: Channel, width: int, height: int, pw: int, ph: int
    ) -> bool:
        """Update the session's pty size and notify its handler."""
        state = self._pending.get(channel)
        if state is None or (state.session is None and state.pty is None):
            return bool(
                self.server.check_channel_window_change_request(channel, width, height, pw, ph)
            )
        if state.session is not None:
            state.session._window_change(width, height, pw, ph)
        elif state.pty is not None:
            state.pty.width, state.pty.height = width, height
        return True

    def check_channel_signal_request(self, channel: Channel, name: str) -> bool:
        """Hand a client's ``signal`` request to the running session."""
        state = self._pending.get(channel)
        if state is None or state.session is None:
            check = getattr(self.server, "check_channel_signal_request", None)
            return bool(check(channel, name)) if check is not None else False
        return state.session._signal(name)

    # -- session start ------------------------------------------------------------
    def check_channel_exec_request(self, channel: Channel, command: bytes) -> bool:
        """Run the exec handler (or ask the interface when there is none)."""
        if self.handlers.exec is None:
            ok = bool(self.server.check_channel_exec_request(channel, command))
        else:
            ok = self._start(channel, "exec", self.handlers.exec, command=bytes(command))
        return _observed(channel, "exec", bytes(command), ok)

    def check_channel_shell_request(self, channel: Channel) -> bool:
        """Run the shell handler (or ask the interface when there is none)."""
        if self.handlers.shell is None:
            ok = bool(self.server.check_channel_shell_request(channel))
        else:
            ok = self._start(channel, "shell", self.handlers.shell)
        return _observed(channel, "shell", None, ok)

    def check_channel_subsystem_request(self, channel: Channel, name: str) -> bool:
        """Run a subsystem handler; others go to the interface (``set_subsystem_handler``)."""
        handler = self.handlers.subsystems.get(name)
        if handler is None:
            ok = bool(self.server.check_channel_subsystem_request(channel, name))
        else:
            ok = self._start(channel, "subsystem", handler, subsystem=name)
        return _observed(channel, "subsystem", name, ok)

    def _start(self, channel: Channel, kind: str, handler: SessionHandler, **what: Any) -> bool:
        state = self._state(channel)
        if state.session is not None:
            return False  # one program per session channel (RFC 4254 §6.5)
        session = Session(channel, kind, self.server, state.pty, state.env, **what)
        state.session = session
        greenlet = gevent.spawn(self._run, session, handler)
        self.greenlets.add(greenlet)
        greenlet.link(self.greenlets.discard)
        return True

    def _run(self, session: Session, handler: SessionHandler) -> None:
        # Command lines can carry secrets: INFO names only the kind (and a
        # subsystem's name); the command itself goes to DEBUG, as in sshd.
        what = session.subsystem or ""
        self.log.info("session %s %r started (user %r)", session.kind, what, session.username)
        if session.kind == "exec":
            self.log.debug("session exec command %r", session.command_text)
        end = SessionExit(0)
        try:
            result = handler(session)
            end = SessionExit(0 if result is None else int(result))
        except SessionExit as exc:
            end = exc
        except gevent.GreenletExit:
            end = SessionExit(255, "KILL", message="server stopped")
            raise
        except Exception as exc:
            if session.channel.closed:
                self.log.info("session %s %r: channel closed (%s)", session.kind, what, exc)
            else:
                self.log.error("session %s %r: handler raised", session.kind, what, exc_info=True)
            end = SessionExit(1)
        finally:
            _finish(session, end)
            status = end.signal or end.status
            self.log.info("session %s %r ended (%s)", session.kind, what, status)

    def kill_sessions(self, grace: float = 0.0) -> None:
        """End every handler still running ``grace`` s from now (the connection is gone)."""
        if grace > 0 and self.greenlets:
            gevent.joinall(list(self.greenlets), timeout=grace)
        for greenlet in list(self.greenlets):
            greenlet.kill(block=False)


def _observed(channel: Channel, kind: str, what: Any, ok: bool) -> bool:
    """Tell the transport's observer that a session started (if it did); returns ``ok``."""
    transport = channel.transport
    observer = getattr(transport, "observer", None)
    if ok and observer is not None:
        observer.session_started(transport, channel, kind, what)
    return ok


def _finish(session: Session, end: SessionExit) -> None:
    """EOF, exit-status or exit-signal, then close (RFC 4254 §6.10)."""
    channel = session.channel
    if channel.closed:
        return
    try:
        channel.shutdown_write()
        if end.signal is not None:
            channel.send_exit_signal(end.signal, end.core_dumped, end.message)
        else:
            channel.send_exit_status(end.status)
        channel.close()
    except OSError:
        pass
