"""Zero-downtime reload: re-execute the program on the same listening sockets.

``Successor.start(sockets, notifier)`` forks and, in the child, execs the
program again (``sys.executable`` with the interpreter's original
arguments, ``sys.orig_argv``), so freshly imported code and a freshly read
configuration take effect. The listening sockets are passed as fds 3, 4,
... with ``LISTEN_FDS``/``LISTEN_PID`` exactly as systemd's socket
activation passes them: the new program adopts them (``geossh.runner.systemd``)
and binds nothing, so the kernel's accept queue is shared by both
generations and no connection attempt is refused during the switch.

``GEOSSH_HANDOVER_SOCKET`` names an abstract datagram socket the old
generation listens on; the new one sends ``READY=1`` there (not to the
service manager) once it accepts. ``wait()`` returns None on READY, or why
the reload failed: the successor exited first (it logs the reason on the
shared stderr: an import error, a bad flag, an unreadable host key), or
did not get ready within the limit (then it is killed). Only the
successor's own messages count (SO_PASSCRED): the abstract name is visible
to every local user. The old generation then stops accepting and drains,
or keeps serving if the reload failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import struct
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from geossh.runner.systemd import FIRST_FD, Notifier

log = logging.getLogger("geossh.server")
READY_TIMEOUT = 60.0
Select = Callable[..., Any]
CREDENTIALS = struct.Struct("=iII")  # struct ucred: pid, uid, gid
CHILD_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class Successor:
    """A new generation being started; ``wait()`` until it is ready or has failed."""

    def __init__(self, pid: int, handover: socket.socket, pidfd: int) -> None:
        self.pid = pid
        self._handover = handover
        self._pidfd = pidfd
        self._forged = 0  # handover messages from other processes

    @classmethod
    def start(
        cls,
        sockets: Sequence[socket.socket],
        notifier: Notifier,
        names: Sequence[str] = (),
        limits: tuple[int, int, range] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Successor:
        """Fork and exec the program again with ``sockets`` as its inherited listeners.

        ``limits``: (fd, first slot, the slots this generation holds) of the
        ``geossh.runner.shared`` segment the new generation counts its
        connections in (passed after the sockets). ``extra``: more variables.
        """
        name = f"@geossh-handover-{os.getpid()}-{secrets.token_hex(8)}"
        handover = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        handover.bind("\0" + name[1:])
        handover.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # who sent each message
        env = {**os.environ, **notifier.environment(), **(extra or {})}
        env["GEOSSH_HANDOVER_SOCKET"] = name
        env["LISTEN_FDS"] = str(len(sockets))
        env["LISTEN_FDNAMES"] = ":".join(names) if names else ":".join("ssh" for _ in sockets)
        argv = [sys.executable, *sys.orig_argv[1:]]
        fds = [sock.fileno() for sock in sockets]
        if limits is not None:
            env["GEOSSH_LIMITS_FD"] = str(FIRST_FD + len(fds))
            env["GEOSSH_LIMITS_SLOT"] = str(limits[1])
            held = limits[2]
            env["GEOSSH_LIMITS_PREVIOUS"] = f"{os.getpid()}:{held.start}:{held.stop}"
            fds.append(limits[0])
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # Signals stay pending across the fork: the child takes them with the default
        # action once it has reset its handlers, not in the inherited ones (lost there).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover (the child execs)
                _exec(argv, env, fds)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            handover.close()
            raise
        return cls(pid, handover, pidfd)

    def wait(self, select: Select, timeout: float = READY_TIMEOUT) -> str | None:
        """None once the successor said READY=1; otherwise why not (it is then gone).

        On READY the pidfd stays open for ``join()``.
        """
        deadline = _clock() + timeout
        try:
            while True:
                left = deadline - _clock()
                if left <= 0:
                    return self.expire(timeout)
                readable, _, _ = select(self.fds(), [], [], left)
                done, failure = self.poll(readable)
                if done:
                    return failure
        except BaseException:
            self.close()
            raise

    def fds(self) -> list[Any]:
        """What to select on while it starts (its handover socket and its pidfd)."""
        return [self._handover, self._pidfd]

    def poll(self, readable: Collection[Any]) -> tuple[bool, str | None]:
        """(done, why it failed) after a select on ``fds()``: (False, None) while it starts.

        Done, the handover socket is closed; on a failure the pidfd too.
        """
        if self._handover in readable and self._ready():
            self._handover.close()
            return True, None
        if self._pidfd in readable:
            how = _ended(self.pid) or "see its log lines above"
            self.close()
            return True, f"new generation (pid {self.pid}) exited before it was ready ({how})"
        return False, None

    def expire(self, timeout: float) -> str:
        """Not ready within ``timeout``: kill it (it serves nothing yet); why it failed."""
        self.kill()
        self.close()
        return f"new generation (pid {self.pid}) not ready within {timeout:g} s"

    @property
    def pidfd(self) -> int:
        """Readable once the successor has exited (-1 once closed)."""
        return self._pidfd

    def join(self, select: Select) -> str:
        """Wait until the successor (which took over) exits; reap it; how it ended."""
        try:
            if self._pidfd >= 0:
                select([self._pidfd], [], [])
            return _ended(self.pid) or "exited"
        finally:
            self.close()

    def _ready(self) -> bool:
        """Read one handover message: READY=1 from the successor itself?

        The socket's name is visible to every local user (/proc/net/unix):
        a message from any other process is logged and ignored.
        """
        data, ancillary, _, _ = self._handover.recvmsg(4096, socket.CMSG_SPACE(CREDENTIALS.size))
        sender = None
        for level, kind, payload in ancillary:
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS):
                sender = CREDENTIALS.unpack(payload[: CREDENTIALS.size])[0]
        if sender != self.pid:
            self._forged += 1
            if self._forged == 1:  # once: a flood must not flood the log
                log.warning("reload: ignored a handover message from pid %s (not the new "
                            "generation, pid %d)", sender, self.pid)  # fmt: skip
            return False
        return "READY=1" in data.decode(errors="replace").split("\n")

    def terminate(self) -> bool:
        """SIGTERM the successor while it starts (through its pidfd: never another process)."""
        if self._pidfd < 0:
            return False
        try:
            signal.pidfd_send_signal(self._pidfd, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """End a successor that is not ready (SIGKILL; it serves nothing yet)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        _ended(self.pid)

    def close(self) -> None:
        self._handover.close()
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1


def _clock() -> float:
    import time

    return time.monotonic()


def _ended(pid: int) -> str | None:
    """Reap ``pid`` (it has exited or is about to); how it ended, or None if reaped already."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:  # reaped by someone else (gevent's SIGCHLD watcher)
        return None
    return describe(status)


def describe(status: int) -> str:
    """``killed by SIGKILL`` or ``status 3`` for a ``waitpid`` status."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"status {os.waitstatus_to_exitcode(status)}"


def _exec(argv: list[str], env: dict[str, str], fds: list[int]) -> None:  # pragma: no cover
    """In the forked child: listeners to fds 3.. (LISTEN_FDS-style), then exec."""
    try:
        for signum in CHILD_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        high = [os.dup(fd) for fd in fds]  # above every target, so no dup2 clobbers a source
        high = [fcntl_dup_above(fd, FIRST_FD + len(fds)) for fd in high]
        for index, fd in enumerate(high):
            os.dup2(fd, FIRST_FD + index, inheritable=True)
            os.close(fd)
        env["LISTEN_PID"] = str(os.getpid())
        if "WATCHDOG_USEC" in env:
            env["WATCHDOG_PID"] = str(os.getpid())
        os.execve(argv[0], argv, env)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            os.write(2, f"geossh: reload: cannot start {argv[0]}: {exc}\n".encode())
    os._exit(127)


def fcntl_dup_above(fd: int, lowest: int) -> int:
    """A duplicate of ``fd`` numbered at least ``lowest`` (the original is closed)."""
    import fcntl

    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)
    os.close(fd)
    return new
