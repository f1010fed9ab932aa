#!/usr/bin/env python
"""An SSH server that runs real commands, written against paramiko's server API.

``exec`` runs ``$SHELL -c COMMAND``; ``shell`` runs an interactive shell.
Without a pty the process gets pipes, so stdout and stderr stay separate and
binary data passes untouched; with ``pty-req`` it gets a real
pseudo-terminal with the client's terminal modes and window size
(``geossh.pty``), kept up to date on ``window-change``. ``signal`` requests
reach the process; its exit code goes back as ``exit-status``, or as
``exit-signal`` when a signal killed it, as sshd does. ``env`` requests
matching ``--accept-env`` (sshd's AcceptEnv) are passed on.

Every channel is served by greenlets, so one process serves many clients::

    python examples/exec_server.py --port 2222 --authorized-keys ~/.ssh/id_ed25519.pub
    ssh -p 2222 127.0.0.1 'uname -a; exit 3'; echo $?

Commands run as the user running this script: keep it on 127.0.0.1 (the
default) unless you mean it. This is the by-hand version, for code that
stays on paramiko's API; ``geossh.oscommand.OSCommand`` is the same
behaviour as a ready-made session handler for ``geossh.Server``. It prints
``Listening on HOST:PORT`` once ready (``--port 0`` picks a free port).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hmac
import os
import pty
import signal
import sys
from typing import Any

import gevent
import gevent.os
import gevent.server
import gevent.subprocess

import geossh as paramiko
from geossh.oscommand import default_signals
from geossh.pty import apply_modes, decode_modes, set_winsize

CHUNK = 64 * 1024
_PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "SHELL")


class Session:
    """What the client asked for on one session channel."""

    def __init__(self) -> None:
        self.env: dict[str, str] = {}
        self.pty: tuple[str, int, int, int, int, bytes] | None = None
        self.master: int | None = None  # the pty's master side, once running
        self.proc: Any = None


class ExecServer(paramiko.ServerInterface):
    """Public-key (and optional password) login; exec and shell on sessions."""

    def __init__(self, keys: list[paramiko.PKey], password: str | None, accept_env: list[str]):
        self.keys = keys
        self.password = password
        self.accept_env = accept_env
        self.sessions: dict[int, Session] = {}

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password" if self.password else "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL if key in self.keys else paramiko.AUTH_FAILED

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        given = password.encode() if isinstance(password, str) else password
        if self.password and hmac.compare_digest(given, self.password.encode()):
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind != "session":
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        self.sessions[chanid] = Session()
        return paramiko.OPEN_SUCCEEDED

    def check_channel_env_request(self, channel: Any, name: bytes, value: bytes) -> bool:
        key = name.decode(errors="replace")
        if not any(fnmatch.fnmatchcase(key, pattern) for pattern in self.accept_env):
            return False
        self.sessions[channel.get_id()].env[key] = value.decode(errors="replace")
        return True

    def check_channel_pty_request(self, channel: Any, term: bytes, width: int, height: int,
                                  pw: int, ph: int, modes: bytes) -> bool:  # fmt: skip
        self.sessions[channel.get_id()].pty = (term.decode(errors="replace"), width, height,
                                               pw, ph, modes)  # fmt: skip
        return True

    def check_channel_window_change_request(
        self, channel: Any, width: int, height: int, pw: int, ph: int
    ) -> bool:
        session = self.sessions[channel.get_id()]
        if session.master is not None:
            with contextlib.suppress(OSError):
                set_winsize(session.master, width, height, pw, ph)
        return session.pty is not None

    def check_channel_signal_request(self, channel: Any, name: str) -> bool:
        proc = self.sessions[channel.get_id()].proc
        number = getattr(signal, f"SIG{name}", None)
        if proc is None or number is None or proc.poll() is not None:
            return False
        proc.send_signal(number)
        return True

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        return self._start(channel, command.decode(errors="surrogateescape"))

    def check_channel_shell_request(self, channel: Any) -> bool:
        return self._start(channel, None)

    def _start(self, channel: Any, command: str | None) -> bool:
        session = self.sessions[channel.get_id()]
        if session.proc is not None:
            return False
        shell = os.environ.get("SHELL", "/bin/sh")
        argv = [shell, "-c", command] if command is not None else [shell, "-i"]
        env = {key: value for key, value in os.environ.items() if key in _PASSED_ENV}
        env.update(session.env)
        try:
            if session.pty is not None:
                env["TERM"] = session.pty[0]
                runner = _with_pty(session, argv, env)
            else:
                runner = _with_pipes(session, argv, env)
        except OSError as exc:
            print(f"cannot start {argv!r}: {exc}", file=sys.stderr)
            return False
        # The reply goes out before anything this greenlet sends (geossh's ordering).
        gevent.spawn(_serve, channel, session, runner)
        return True


# -- running the process ---------------------------------------------------------------
# A runner is the list of (fd, role) pairs the server side owns: "stdout" and
# "stderr" are read, "stdin" is written (one fd for both with a pty).
def _with_pipes(session: Session, argv: list[str], env: dict[str, str]) -> list[Any]:
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    try:
        session.proc = gevent.subprocess.Popen(argv, stdin=stdin_r, stdout=stdout_w,
                                               stderr=stderr_w, env=env,
                                               preexec_fn=_new_session)  # fmt: skip
    finally:
        for fd in (stdin_r, stdout_w, stderr_w):
            os.close(fd)
    for fd in (stdin_w, stdout_r, stderr_r):
        os.set_blocking(fd, False)
    return [(stdout_r, "stdout"), (stderr_r, "stderr"), (stdin_w, "stdin")]


def _with_pty(session: Session, argv: list[str], env: dict[str, str]) -> list[Any]:
    assert session.pty is not None
    _, width, height, pw, ph, modes = session.pty
    master, slave = pty.openpty()
    try:
        apply_modes(slave, decode_modes(modes))
        set_winsize(slave, width, height, pw, ph)
        session.proc = gevent.subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                               env=env, preexec_fn=_controlling_tty)  # fmt: skip
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    session.master = master
    return [(master, "stdout"), (master, "stdin")]


def _new_session() -> None:
    """In the child: a new session, signals a client may send at their defaults.

    Ignored signals survive exec: a server started by ``cmd &`` in a script
    has SIGINT and SIGQUIT ignored, and its commands would ignore ``signal``
    requests too.
    """
    os.setsid()
    default_signals()


def _controlling_tty() -> None:
    """In the child: a new session whose controlling terminal is the pty (job control)."""
    import fcntl
    import termios

    _new_session()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _serve(channel: Any, session: Session, runner: list[Any]) -> None:
    """Copy between the channel and the process, then report how it ended."""
    open_fds = {fd for fd, _ in runner}
    send = {"stdout": channel.sendall, "stderr": channel.sendall_stderr}
    copiers = [gevent.spawn(_copy_out, fd, send[name]) for fd, name in runner if name != "stdin"]
    stdin = next(fd for fd, name in runner if name == "stdin")
    feeder = gevent.spawn(_copy_in, channel, session, stdin, open_fds)
    code = session.proc.wait()
    gevent.joinall(copiers)
    feeder.kill()
    for fd in open_fds:
        os.close(fd)  # ours alone: the child's ends were closed after the fork
    if code < 0:
        channel.send_exit_signal(signal.Signals(-code).name.removeprefix("SIG"))
    else:
        channel.send_exit_status(code)
    channel.close()


def _copy_out(fd: int, send: Any) -> None:
    while True:
        try:
            data = gevent.os.nb_read(fd, CHUNK)
        except OSError:  # EIO: the pty's last slave closed
            return
        if not data:
            return
        try:
            send(data)
        except OSError:  # the client went away
            return


def _copy_in(channel: Any, session: Session, fd: int, open_fds: set[int]) -> None:
    while data := channel.recv(CHUNK):
        view = memoryview(data)
        try:
            while view:
                view = view[gevent.os.nb_write(fd, view) :]
        except OSError:  # the process stopped reading
            return
    if channel.closed:  # the client is gone: hang up, as sshd does
        with contextlib.suppress(OSError):
            os.killpg(session.proc.pid, signal.SIGHUP)
    elif session.master is None:  # EOF from the client: close the process's stdin
        open_fds.discard(fd)
        os.close(fd)


# -- serving ---------------------------------------------------------------------------
def serve(args: argparse.Namespace) -> None:
    host_key = (paramiko.PKey.from_path(args.host_key) if args.host_key
                else paramiko.Ed25519Key.generate())  # fmt: skip
    keys = []
    if args.authorized_keys:
        with open(args.authorized_keys) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 2 and not line.startswith("#"):
                    blob = paramiko.PublicBlob.from_string(" ".join(fields[:2]))
                    keys.append(paramiko.PKey.from_type_string(blob.key_type, blob.key_blob))
    password = os.environ.get("EXEC_SERVER_PASSWORD")

    def handle(sock: Any, address: Any) -> None:
        transport = paramiko.Transport(sock)
        transport.add_server_key(host_key)
        transport.start_server(server=ExecServer(keys, password, args.accept_env.split()))
        while transport.accept() is not None:
            pass  # sessions are served from the callbacks; drain the accept queue
        transport.join()

    listener = gevent.server.StreamServer((args.host, args.port), handle)
    listener.start()
    print(f"Listening on {args.host}:{listener.server_port}", flush=True)
    listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2222)
    parser.add_argument("--host-key", help="private host key file (default: a new Ed25519 key)")
    parser.add_argument("--authorized-keys", help="OpenSSH authorized_keys file")
    parser.add_argument("--accept-env", default="LANG LC_*",
                        help="patterns of client env names to accept")  # fmt: skip
    serve(parser.parse_args())


if __name__ == "__main__":
    main()
