"""Multi-process serving: N forked workers share the listening sockets; a supervisor restarts them.

``supervise(server)`` binds the server's sockets, then forks
``server.workers`` children. Each child re-initialises gevent
(``gevent.reinit()``: its own hub) and serves on the inherited sockets;
the kernel hands each new connection to one of them. The parent only
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
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import gevent

from geossh.runner import generation
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


class _Supervisor:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.children: dict[int, tuple[int, float]] = {}  # pid → (index, start time)
        self.stopping = False
        self.notifier = Notifier.from_environment()  # the supervisor speaks for the service

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
            for sock in self.server.sockets:
                sock.close()
            self.server.sockets = []
            self.notifier.close()
            log.info("supervisor: all workers stopped")

    def _reaped(self, pid: int, status: int) -> None:
        entry = self.children.pop(pid, None)
        if entry is None:
            return
        index, started = entry
        how = _describe(status)
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
