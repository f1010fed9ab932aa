"""Multi-process serving: N forked workers share the listening port; a supervisor restarts them.

``supervise(server)`` binds the server's sockets, then forks
``server.workers`` children. Each child re-initialises gevent
(``gevent.reinit()``: its own hub) and serves on its own listening socket:
the supervisor binds one per worker and address with ``SO_REUSEPORT``
(``server.reuse_port``, default True; on failure, or False, all workers
accept from the one shared socket), so the kernel spreads new connections
evenly over the workers by their address hash. The supervisor keeps every
socket open, so connections waiting for a worker that died are accepted by
its replacement. The limits hold for the whole server: the supervisor maps
a ``geossh.runner.shared.SharedLimits`` segment before forking, and zeroes a dead
worker's counts when it reaps it. The parent only
supervises: a worker that dies is restarted (after a one-second pause if
it died within a second, so a crashing worker cannot become a fork loop).
SIGTERM or SIGINT to the parent forwards SIGTERM to every worker, which
stops gracefully (``Server.stop``); workers still alive ``stop_timeout``
+ 10 s later are killed. A second SIGINT kills them at once.

The parent never runs a gevent hub: it blocks in ``os.waitpid``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import gevent

from geossh.runner import generation
from geossh.runner.shared import SharedLimits, capacity_for
from geossh.runner.systemd import Notifier

if TYPE_CHECKING:
    from geossh.runner.server import Server

log = logging.getLogger("geossh.server")
RESTART_PAUSE = 1.0
KILL_MARGIN = 10.0


def supervise(server: Server) -> None:
    """Fork the workers and supervise them until a stop signal; then stop them all."""
    server.bind()
    _Supervisor(server).run()


def _spread(server: Server) -> list[list[socket.socket]]:
    """One listening socket per worker and address (``SO_REUSEPORT``), or all the shared ones."""
    count = server.workers
    shared = [list(server.sockets) for _ in range(count)]
    if not getattr(server, "reuse_port", True) or count < 2:
        return shared
    columns: list[list[socket.socket]] = []
    try:
        for sock in server.sockets:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                raise OSError(f"not a TCP socket: {sock.family!r}")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            columns.append([sock, *(_sibling(sock, server.backlog) for _ in range(count - 1))])
    except OSError as exc:
        log.warning("supervisor: SO_REUSEPORT unavailable (%s); workers share one socket", exc)
        for column in columns:
            for extra in column[1:]:
                extra.close()
        return shared
    return [[column[index] for column in columns] for index in range(count)]


def _sibling(sock: socket.socket, backlog: int) -> socket.socket:
    """Another listening socket on ``sock``'s address, in its SO_REUSEPORT group."""
    extra = socket.socket(sock.family, socket.SOCK_STREAM)
    try:
        extra.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        extra.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sock.family == socket.AF_INET6:
            extra.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        extra.bind(sock.getsockname())
        extra.listen(backlog)
        extra.setblocking(False)
    except OSError:
        extra.close()
        raise
    return extra


class _Supervisor:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.children: dict[int, tuple[int, float]] = {}  # pid → (index, start time)
        self.stopping = False
        self.notifier = Notifier.from_environment()  # the supervisor speaks for the service
        self.shared = SharedLimits.create(server.workers, capacity_for(server.sources))
        self.listeners = _spread(server)

    def run(self) -> None:
        signals = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP)
        saved = {signum: signal.signal(signum, self._on_signal) for signum in signals}
        log.info("supervisor pid %d starting %d workers", os.getpid(), self.server.workers)
        try:
            for index in range(self.server.workers):
                self._spawn(index)
            self.notifier.ready(generation.status(self.server, self.server.workers))
            while self.children:
                try:
                    pid, status = os.waitpid(-1, 0)
                except ChildProcessError:
                    break
                self._reaped(pid, status)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._kill_all(signal.SIGKILL)
            for signum, handler in saved.items():
                signal.signal(signum, handler)
            for sock in {s for column in self.listeners for s in column} | set(self.server.sockets):
                sock.close()
            self.server.sockets = []
            self.listeners = []
            self.shared.close()
            self.notifier.close()
            log.info("supervisor: all workers stopped")

    def _reaped(self, pid: int, status: int) -> None:
        entry = self.children.pop(pid, None)
        if entry is None:
            return
        index, started = entry
        how = _describe(status)
        opened, unauthenticated = self.shared.clear_worker(index)
        if opened or unauthenticated:
            log.info("worker %d (pid %d) held %d connection(s), %d unauthenticated: released",
                     index, pid, opened, unauthenticated)  # fmt: skip
        if self.stopping:
            log.info("worker %d (pid %d) %s", index, pid, how)
            return
        log.warning("worker %d (pid %d) %s; restarting it", index, pid, how)
        if time.monotonic() - started < RESTART_PAUSE:
            time.sleep(RESTART_PAUSE)
        if not self.stopping:
            self._spawn(index)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:  # not the default action: that would orphan the workers
            log.warning("supervisor: SIGHUP ignored: reload needs workers=1 (restart instead)")
            return
        if signum == signal.SIGALRM or (signum == signal.SIGINT and self.stopping):
            log.warning("supervisor: killing %d worker(s)", len(self.children))
            self._kill_all(signal.SIGKILL)
            return
        if self.stopping:
            return
        self.stopping = True
        self.notifier.stopping()
        log.info("supervisor: signal %d, stopping %d worker(s)", signum, len(self.children))
        self._kill_all(signal.SIGTERM)
        signal.setitimer(signal.ITIMER_REAL, self.server.stop_timeout + KILL_MARGIN)

    def _kill_all(self, signum: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _spawn(self, index: int) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            mine = self.listeners[index]
            for sock in {s for column in self.listeners for s in column} - set(mine):
                sock.close()
            self.server.sockets = list(mine)
            self.server.share(self.shared, index)
            _worker(self.server, index)  # never returns
        self.children[pid] = (index, time.monotonic())


def _worker(server: Server, index: int) -> Any:
    """The child: its own hub on the inherited sockets; exits the process when done."""
    code = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a terminal's hangup: not a reload
        gevent.reinit()
        server.workers = 1
        server.start()
        log.info("worker %d (pid %d) serving", index, os.getpid())
        generation.serve(server, worker=True)
        code = 0
    except BaseException:
        log.exception("worker %d (pid %d) failed", index, os.getpid())
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
