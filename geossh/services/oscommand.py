"""A ready session handler that runs real OS commands, as the server's own user.

``OSCommand()`` is a blocking session handler (see ``geossh.session``): a
shell request starts the user's login shell, an exec request runs
``$SHELL -c command``. With a pty requested, the program gets a real
pseudo-terminal (``pty.openpty``, the client's terminal modes applied, the
window size kept up to date with TIOCSWINSZ, so SIGWINCH reaches the
program); without one, stdin/stdout/stderr are pipes, so binary data and
separate stderr pass through untouched. All I/O is cooperative: fds are
non-blocking and read/written with ``gevent.os``; the process runs in its
own session (process group), started by ``gevent.subprocess.Popen``.

Environment: HOME, USER, LOGNAME, SHELL, PATH, SSH_CONNECTION, SSH_CLIENT,
TERM and SSH_TTY (with a pty), the server's own variables matching
``pass_env`` (LANG, LC_* by default), then the client's accepted ``env``
requests (``SessionHandlers.accept_env``), DISPLAY and XAUTHORITY when the
session has a ready X11 display (``geossh.services.x11``: ``xauth`` has written the
cookie first, as sshd does), then ``extra_env``.

When the client goes away first the process group gets SIGHUP, then SIGKILL
after ``kill_timeout``. A client ``signal`` request is delivered to the
process. A process killed by a signal ends the session with exit-signal.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import logging
import os
import pty
import pwd
import signal
import subprocess
import termios
from collections.abc import Mapping, Sequence
from typing import Any

import gevent
import gevent.os
import gevent.subprocess

from geossh.services.pty import PtyModesError, apply_modes, decode_modes, set_winsize
from geossh.services.session import PtyInfo, Session

READ_SIZE = 64 * 1024
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
DEFAULT_PASS_ENV = ("LANG", "LC_*", "TZ")
XAUTH_TIMEOUT = 10.0
_log = logging.getLogger("geossh.server")


def set_window_size(fd: int, info: PtyInfo) -> None:
    """TIOCSWINSZ: the kernel then sends SIGWINCH to the terminal's foreground group."""
    with contextlib.suppress(OSError):
        set_winsize(fd, info.width, info.height, info.pixel_width, info.pixel_height)


#: Signals a client may send (RFC 4254 §6.9) that the server's own parent may
#: have left ignored (``cmd &`` in a script ignores INT and QUIT; ``nohup``
#: HUP): ignored dispositions survive exec, so the command gets the defaults.
_CLIENT_SIGNAL_NAMES = "ABRT ALRM FPE HUP ILL INT PIPE QUIT SEGV TERM USR1 USR2"
CLIENT_SIGNALS = tuple(getattr(signal, f"SIG{name}") for name in _CLIENT_SIGNAL_NAMES.split())


def default_signals() -> None:
    """In the child between fork and exec: every client-sendable signal at its default."""
    for number in CLIENT_SIGNALS:
        signal.signal(number, signal.SIG_DFL)


def _new_session() -> None:
    """In the child between fork and exec: a new session with default signals."""
    os.setsid()
    default_signals()


def _controlling_tty() -> None:
    """In the child between fork and exec: a new session whose terminal is stdin."""
    _new_session()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _user_shell() -> str:
    try:
        shell = pwd.getpwuid(os.getuid()).pw_shell
    except KeyError:
        shell = ""
    return os.environ.get("SHELL") or shell or "/bin/sh"


class OSCommand:
    """Session handler running the shell or the exec'd command as a real process.

    ``shell``: the program (default: $SHELL, else the passwd entry, else
    /bin/sh); ``cwd``: where it starts (default: home); ``pass_env``:
    fnmatch patterns of the server's variables to pass on; ``extra_env``:
    variables to set last; ``drain_timeout``: how long to keep copying
    output after the process exited (a background job may hold it open);
    ``kill_timeout``: SIGHUP → SIGKILL grace when the client is gone.
    """

    def __init__(
        self, shell: str | None = None, cwd: str | None = None,
        pass_env: Sequence[str] = DEFAULT_PASS_ENV, extra_env: Mapping[str, str] | None = None,
        drain_timeout: float = 2.0, kill_timeout: float = 5.0,
    ) -> None:  # fmt: skip
        self.shell = shell or _user_shell()
        self.cwd = cwd or os.path.expanduser("~")
        self.pass_env = tuple(pass_env)
        self.extra_env = dict(extra_env or {})
        self.drain_timeout = drain_timeout
        self.kill_timeout = kill_timeout

    def __call__(self, session: Session) -> int | None:
        """Run the session's program; return its exit status (exit-signal if killed)."""
        if session.kind == "subsystem":
            session.write_stderr(f"subsystem {session.subsystem!r} not supported\n")
            return 1
        proc, io = self._spawn(session)
        waiter = gevent.spawn(_wait, proc)
        closed = gevent.spawn(_wait_closed, session.channel)
        try:
            gevent.wait([waiter, closed], count=1)
            if not waiter.dead:
                session.exit_signal("HUP")  # the client went away; ``finally`` hangs up
            gevent.joinall(io.outputs, timeout=self.drain_timeout)
        finally:
            # Cleanup must survive a kill of this greenlet (the connection is gone):
            # signal at once, then reap and close in a greenlet of its own.
            if proc.returncode is None:
                _signal_group(proc, signal.SIGHUP, signal.SIGCONT)
            closed.kill(block=False)
            gevent.spawn(self._clean_up, proc, io, waiter)
        code: int | None = proc.returncode
        if code is not None and code < 0:
            name = signal.Signals(-code).name.removeprefix("SIG")
            session.exit_signal(name)
        return code

    def environment(self, session: Session, tty: str | None = None) -> dict[str, str]:
        """The child's environment for ``session``."""
        home = os.path.expanduser("~")
        user = session.username or os.environ.get("USER", "")
        env = {
            "HOME": home,
            "USER": user,
            "LOGNAME": user,
            "SHELL": self.shell,
            "PATH": os.environ.get("PATH", DEFAULT_PATH),
        }
        for name, value in os.environ.items():
            if any(fnmatch.fnmatchcase(name, p) for p in self.pass_env):
                env[name] = value
        peer, local = session.peer, _local_address(session)
        env["SSH_CLIENT"] = f"{peer[0]} {peer[1]} {local[1]}"
        env["SSH_CONNECTION"] = f"{peer[0]} {peer[1]} {local[0]} {local[1]}"
        if session.pty is not None:
            env["TERM"] = session.pty.term or "dumb"
            if tty:
                env["SSH_TTY"] = tty
        env.update(session.env)
        display = x11_display(session)
        if display is not None:
            env.update(display.environment())
        env.update(self.extra_env)
        return env

    def argv(self, session: Session) -> tuple[list[str], str]:
        """(argv, executable): a login shell, or ``shell -c command``."""
        name = os.path.basename(self.shell)
        if session.kind == "shell":
            return [f"-{name}"], self.shell
        return [name, "-c", session.command_text], self.shell

    def _spawn(self, session: Session) -> tuple[Any, _ProcessIO]:
        display = x11_display(session)
        if display is not None:
            _run_xauth(display)
        if session.pty is not None:
            return self._spawn_pty(session, session.pty)
        return self._spawn_pipes(session)

    def _spawn_pty(self, session: Session, info: PtyInfo) -> tuple[Any, _ProcessIO]:
        master, slave = pty.openpty()
        try:
            with contextlib.suppress(termios.error, OSError, PtyModesError):
                apply_modes(slave, decode_modes(info.modes))
            set_window_size(master, info)
            argv, executable = self.argv(session)
            proc = _popen(
                argv, executable=executable, stdin=slave, stdout=slave, stderr=slave,
                cwd=self.cwd, env=self.environment(session, os.ttyname(slave)),
                preexec_fn=_controlling_tty,
            )  # fmt: skip
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        channel = session.channel
        session.on_window_change = lambda size: set_window_size(master, size)
        session.on_signal = lambda name: _deliver(proc, name)
        io = _ProcessIO([master])
        io.outputs.append(gevent.spawn(_copy_out, master, channel.sendall))
        io.others.append(gevent.spawn(_copy_in, channel, master, False))
        return proc, io

    def _spawn_pipes(self, session: Session) -> tuple[Any, _ProcessIO]:
        fds = [*os.pipe(), *os.pipe(), *os.pipe()]
        stdin_r, stdin_w, out_r, out_w, err_r, err_w = fds
        try:
            argv, executable = self.argv(session)
            proc = _popen(
                argv, executable=executable, stdin=stdin_r, stdout=out_w, stderr=err_w,
                cwd=self.cwd, env=self.environment(session), preexec_fn=_new_session,
            )  # fmt: skip
        except BaseException:
            for fd in (stdin_w, out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (stdin_r, out_w, err_w):
                os.close(fd)
        for fd in (stdin_w, out_r, err_r):
            os.set_blocking(fd, False)
        channel = session.channel
        session.on_signal = lambda name: _deliver(proc, name)
        io = _ProcessIO([stdin_w, out_r, err_r])
        io.outputs.append(gevent.spawn(_copy_out, out_r, channel.sendall))
        io.outputs.append(gevent.spawn(_copy_out, err_r, channel.sendall_stderr))
        io.others.append(gevent.spawn(_copy_in, channel, stdin_w, True, io))
        return proc, io

    def _clean_up(self, proc: Any, io: _ProcessIO, waiter: Any) -> None:
        """Stop the copies, close our fds, and reap the process (SIGKILL if it lingers)."""
        io.close()
        if proc.returncode is None and _wait(proc, self.kill_timeout) is None:
            _signal_group(proc, signal.SIGKILL)
            _wait(proc, self.kill_timeout)
        waiter.kill(block=False)


class _ProcessIO:
    """The parent's ends of the child's stdio and the greenlets copying them."""

    def __init__(self, fds: list[int]) -> None:
        self.fds = fds
        self.outputs: list[gevent.Greenlet[Any, Any]] = []
        self.others: list[gevent.Greenlet[Any, Any]] = []

    def close_fd(self, fd: int) -> None:
        if fd in self.fds:
            self.fds.remove(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        gevent.killall([*self.outputs, *self.others], block=True, timeout=5)
        for fd in list(self.fds):
            self.close_fd(fd)


def _copy_out(fd: int, send: Any) -> None:
    """Process output → channel, until EOF (or EIO: the pty's last writer closed)."""
    while True:
        try:
            data = gevent.os.nb_read(fd, READ_SIZE)
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EBADF):
                return
            raise
        if not data:
            return
        try:
            send(data)
        except OSError:
            return


def _copy_in(channel: Any, fd: int, close_at_eof: bool, io: _ProcessIO | None = None) -> None:
    """Channel → process input; at the client's EOF close the pipe (a pty stays open)."""
    while True:
        data = channel.recv(READ_SIZE)
        if not data:
            if close_at_eof and io is not None:
                io.close_fd(fd)
            return
        view = memoryview(data)
        try:
            while view:
                view = view[gevent.os.nb_write(fd, view) :]
        except OSError:  # EPIPE: the process stopped reading
            return


def _popen(argv: list[str], **kwargs: Any) -> Any:
    """gevent's Popen in the main thread's hub; the stdlib's in another thread's hub.

    gevent watches children only from the default loop (the main thread), so
    a server running in a thread (the pytest plugin) waits in a pool thread.
    """
    if getattr(gevent.get_hub().loop, "default", True):
        return gevent.subprocess.Popen(argv, **kwargs)
    return subprocess.Popen(argv, **kwargs)


def _wait(proc: Any, timeout: float | None = None) -> int | None:
    """Wait for the process cooperatively; its return code, or None on timeout."""
    if isinstance(proc, gevent.subprocess.Popen):
        try:
            return proc.wait(timeout=timeout)  # type: ignore[no-any-return]
        except gevent.subprocess.TimeoutExpired:
            return None
    with gevent.Timeout(timeout, False):
        return gevent.get_hub().threadpool.apply(proc.wait)  # type: ignore[no-any-return]
    return None


def _wait_closed(channel: Any) -> None:
    """Return once the channel is closed (its status event is also set on close)."""
    while not channel.closed:
        channel.status_event.wait()
        if not channel.closed:
            channel.status_event.clear()


def _signal_group(proc: Any, *signals: int) -> None:
    """Send ``signals`` to the process's group (it leads its own session)."""
    for number in signals:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, number)


def _deliver(proc: Any, name: str) -> None:
    """A client ``signal`` request ("INT", "TERM", ...) → the process."""
    number = getattr(signal, f"SIG{name}", None)
    if number is not None and proc.returncode is None:
        with contextlib.suppress(OSError):
            proc.send_signal(number)


def x11_display(session: Session) -> Any:
    """The session's ready X11 display (``ForwardingServer.x11_display``), or None."""
    find = getattr(session.server, "x11_display", None)
    return find(session.channel) if callable(find) else None


def _run_xauth(display: Any) -> None:
    """``xauth -q -f XAUTHORITY -`` with sshd's remove + add lines; failures are logged."""
    argv = [display.xauth, "-q", "-f", display.xauthority(), "-"]
    try:
        proc = _popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    except OSError as exc:
        _log.warning("xauth for X11 display %s: %s", display.display, exc)
        return
    try:
        with contextlib.suppress(OSError):
            proc.stdin.write(display.xauth_input())  # well under a pipe's buffer
            proc.stdin.close()
        code = _wait(proc, XAUTH_TIMEOUT)
    finally:
        if proc.returncode is None:
            _signal_group(proc, signal.SIGKILL)
            _wait(proc, XAUTH_TIMEOUT)
    if code != 0:
        _log.warning("xauth for X11 display %s exited with %s", display.display, code)


def _local_address(session: Session) -> tuple[str, int]:
    sock = getattr(session.transport, "sock", None)
    try:
        address = sock.getsockname() if sock is not None else ("0.0.0.0", 0)
    except OSError:
        address = ("0.0.0.0", 0)
    if not isinstance(address, tuple):
        return ("0.0.0.0", 0)
    return (str(address[0]), int(address[1]))
