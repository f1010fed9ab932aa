"""Multi-process serving: N forked workers share the listening port; a supervisor runs them.

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
worker's counts when it reaps it.

A worker says when it could accept and accepts once told to: when every
worker is ready the supervisor lets them all go and sends READY=1. A
worker that dies is restarted (a second after it started if it died
sooner, so a crashing worker cannot become a fork loop). Workers get
SIGKILL if their supervisor dies (``PR_SET_PDEATHSIG``): none is orphaned.

Signals to the supervisor (its workers ignore SIGHUP):

* SIGTERM, SIGINT: SIGTERM to every worker, which stops gracefully
  (``Server.stop``); workers still alive ``stop_timeout`` + 10 s later are
  killed, and at once on a second SIGINT. A new generation still starting
  is ended too.
* SIGHUP: reload, as a single process does (``geossh.runner.reload``): the
  program is executed again and inherits every worker's listening socket
  (one group per worker, ``GEOSSH_WORKER_SOCKETS``, so new worker *i* takes
  over old worker *i*'s socket and its queue) and the limits segment (the
  new generation counts in the next ``workers`` slots). Once all its
  workers are ready, this supervisor tells its own to drain (SIGUSR1) and
  exits after the last one; a draining worker that dies is not restarted.
  A failed reload (the new program exits, a new worker dies before it is
  ready, nothing ready within ``reload_timeout``) leaves this one serving.
* SIGUSR1: drain: every worker stops accepting and exits when its last
  session ends; then the supervisor exits.

The supervisor never runs a gevent hub: it waits in ``select`` on a
signal wakeup pipe, its workers' start channels and pidfds.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import gevent
import gevent.monkey
import gevent.socket

from geossh.runner import generation
from geossh.runner.reload import Successor, describe
from geossh.runner.shared import SharedLimits, capacity_for
from geossh.runner.systemd import Notifier

if TYPE_CHECKING:
    from geossh.runner.server import Server

log = logging.getLogger("geossh.server")
RESTART_PAUSE = 1.0
KILL_MARGIN = 10.0
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD)
PR_SET_PDEATHSIG = 1
READY, GO = b"R", b"G"  # worker → supervisor: it could accept; supervisor → worker: accept
_select = gevent.monkey.get_original("select", "select")  # no hub here, patched or not


class StartError(RuntimeError):
    """A new generation's worker died before it was ready: that generation gave up."""


def supervise(server: Server) -> None:
    """Fork the workers and supervise them until they have stopped or drained."""
    server.bind()
    _Supervisor(server).run()


def _spread(server: Server) -> list[list[socket.socket]]:
    """One listening socket per worker and address (``SO_REUSEPORT``), or all the shared ones.

    A reload's inherited groups are kept (new worker *i* takes over socket
    group *i*); only missing groups are made.
    """
    count = server.workers
    groups = [list(group) for group in server.worker_sockets] or [list(server.sockets)]
    made: list[list[socket.socket]] = []
    if getattr(server, "reuse_port", True) and count > 1:
        try:
            while len(groups) + len(made) < count:
                made.append(_siblings(groups[0], server.backlog))
            return groups + made
        except OSError as exc:
            log.warning("supervisor: SO_REUSEPORT unavailable (%s); workers share one socket", exc)
    _close(made + groups[1:])
    return [groups[0]] * count


def _siblings(group: list[socket.socket], backlog: int) -> list[socket.socket]:
    """Another listening socket on each address of ``group``, in its SO_REUSEPORT group."""
    made: list[socket.socket] = []
    try:
        for sock in group:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                raise OSError(f"not a TCP socket: {sock.family!r}")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            made.append(_sibling(sock, backlog))
    except OSError:
        _close([made])
        raise
    return made


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


def _close(groups: list[list[socket.socket]]) -> None:
    for group in groups:
        for sock in group:
            sock.close()


def _limits(server: Server) -> tuple[SharedLimits, int]:
    """The limits segment and the first of this generation's ``workers`` slots in it.

    A reload passed one (``Server._adopt_limits``); otherwise it is made with
    room for ``GENERATIONS`` generations, so reloads can share it.
    """
    from geossh.runner.server import GENERATIONS

    if server.shared is not None:
        return server.shared, server.worker_index
    slots = server.workers * GENERATIONS
    return SharedLimits.create(slots, capacity_for(server.sources)), 0


@dataclass
class _Child:
    """A forked worker: its index, start time and start channel."""

    index: int
    started: float
    channel: socket.socket | None  # until it is told to go (or died first)
    ready: bool = False


def _noop(signum: int, frame: FrameType | None) -> None:
    """The wakeup pipe carries the signal; the loop acts on it."""


class _Supervisor:
    """The parent of the workers: forks, restarts, reloads, drains and stops them."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.count = server.workers
        self.children: dict[int, _Child] = {}  # pid → child
        self.restarts: dict[int, float] = {}  # index → when to fork its replacement
        self.stopping = False  # SIGTERM/SIGINT: workers stop
        self.draining = False  # handed over, or SIGUSR1: workers drain, none is restarted
        self.announced = False  # every worker was ready once; READY=1 sent
        self.failed: str | None = None
        self.kill_at: float | None = None
        self.successor: Successor | None = None  # a new generation while it starts
        self.deadline = 0.0  # its reload_timeout
        self.after: Successor | None = None  # the one that took over (reaped if it exits first)
        self.notifier = Notifier.from_environment()  # the supervisor speaks for the service
        self.candidate = self.notifier.handover is not None  # started by a reload
        self.shared, self.base = _limits(server)
        self.listeners = _spread(server)
        self.previous = self._watch_previous()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def _watch_previous(self) -> tuple[int, range, int] | None:
        """(pid, slots, pidfd) of the generation before, whose slots go back when it exits."""
        if self.server.previous_generation is None:
            return None
        pid, slots = self.server.previous_generation
        try:
            return pid, slots, os.pidfd_open(pid)
        except OSError:
            self.server.release(pid, slots)  # gone already
            return None

    # -- the loop ------------------------------------------------------------------
    def run(self) -> None:
        saved = {signum: signal.signal(signum, _noop) for signum in SIGNALS}
        wakeup = signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        self.server._supervisor_pid = os.getpid()
        log.info("supervisor pid %d starting %d workers", os.getpid(), self.count)
        try:
            for index in range(self.count):
                self._spawn(index)
            while self.children or self.restarts or self.successor is not None:
                self._step()
        finally:
            signal.set_wakeup_fd(wakeup)
            for signum, handler in saved.items():
                signal.signal(signum, handler)
            self._finish()
        if self.failed is not None:
            raise StartError(self.failed)

    def _step(self) -> None:
        readable = set(_select(self._fds(), [], [], self._timeout())[0])
        if self.wake_r in readable:
            self._signals()
        for pid, child in list(self.children.items()):
            if child.channel is not None and child.channel in readable:
                self._heard(pid, child)
        self._reap()
        if self.successor is not None:
            self._poll_successor(readable)
        if self.after is not None and self.after.pidfd in readable:
            how = self.after.join(_select)
            log.info("reload: pid %d (the generation after this one) exited (%s)",
                     self.after.pid, how)  # fmt: skip
            self.after = None
        if self.previous is not None and self.previous[2] in readable:
            pid, slots, pidfd = self.previous
            os.close(pidfd)
            self.previous = None
            self.server.release(pid, slots)
        self._timers()

    def _fds(self) -> list[Any]:
        fds: list[Any] = [self.wake_r]
        fds += [child.channel for child in self.children.values() if child.channel is not None]
        if self.successor is not None:
            fds += self.successor.fds()
        if self.after is not None:
            fds.append(self.after.pidfd)
        if self.previous is not None:
            fds.append(self.previous[2])
        return fds

    def _timeout(self) -> float | None:
        due = list(self.restarts.values())
        if self.kill_at is not None:
            due.append(self.kill_at)
        if self.successor is not None:
            due.append(self.deadline)
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _timers(self) -> None:
        now = time.monotonic()
        for index, when in list(self.restarts.items()):
            if when <= now:
                del self.restarts[index]
                self._spawn(index)
        if self.kill_at is not None and self.kill_at <= now:
            self.kill_at = None
            self._kill_now()
        if self.successor is not None and self.deadline <= now:
            successor, self.successor = self.successor, None
            self._reload_failed(successor.expire(self.server.reload_timeout))

    def _signals(self) -> None:
        with contextlib.suppress(BlockingIOError):
            for signum in os.read(self.wake_r, 512):
                if signum == signal.SIGHUP:
                    self._reload()
                elif signum == signal.SIGUSR1 and not (self.stopping or self.draining):
                    self.notifier.stopping("draining")
                    self._drain("signal: draining")
                elif signum in (signal.SIGTERM, signal.SIGINT):
                    self._stop(signum)

    # -- workers -------------------------------------------------------------------
    def _spawn(self, index: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        supervisor = os.getpid()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # none runs our handlers there
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover (the child)
                ours.close()
                self._become_worker(index, theirs, supervisor, mask)  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        theirs.close()
        self.children[pid] = _Child(index, time.monotonic(), ours)

    def _become_worker(
        self, index: int, channel: socket.socket, supervisor: int, mask: set[Any]
    ) -> None:  # pragma: no cover (runs in the child)
        """In the forked child: drop the supervisor's state, then serve as worker ``index``."""
        code = 1
        try:
            _die_with(supervisor)
            signal.set_wakeup_fd(-1)
            for signum in SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a terminal's hangup: not a reload
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            for fd in self._private_fds():
                with contextlib.suppress(OSError):
                    os.close(fd)
            mine = self.listeners[index]
            _close([[s for s in {s for g in self.listeners for s in g} if s not in mine]])
            self.server.sockets = list(mine)
            self.server.worker_sockets = []
            self.server.share(self.shared, self.base + index)
            code = _worker(self.server, index, channel)
        except BaseException:
            log.exception("worker %d (pid %d) failed", index, os.getpid())
        finally:
            _exit(code)

    def _private_fds(self) -> list[int]:
        """The supervisor's descriptors a worker must not hold."""
        fds = [self.wake_r, self.wake_w]
        fds += [c.channel.fileno() for c in self.children.values() if c.channel is not None]
        for successor in (self.successor, self.after):
            if successor is not None:
                fds += [fd if isinstance(fd, int) else fd.fileno() for fd in successor.fds()]
        if self.previous is not None:
            fds.append(self.previous[2])
        return [fd for fd in fds if fd >= 0]

    def _heard(self, pid: int, child: _Child) -> None:
        """A worker's start channel is readable: it is ready, or it died before."""
        try:
            said = child.channel.recv(1) if child.channel is not None else b""
        except OSError:
            said = b""
        if said != READY:
            self._hang_up(child)
            return
        child.ready = True
        if self.announced:  # a replacement: it goes at once
            self._go(child)
        elif not self.stopping and not self.draining and self._all_ready():
            for ready in self.children.values():
                self._go(ready)
            self.announced = True
            log.info("supervisor: %d workers ready", self.count)
            self.notifier.ready(generation.status(self.server))

    def _all_ready(self) -> bool:
        ready = {child.index for child in self.children.values() if child.ready}
        return len(ready) == self.count

    def _go(self, child: _Child) -> None:
        if child.channel is not None:
            with contextlib.suppress(OSError):
                child.channel.sendall(GO)
        self._hang_up(child)

    @staticmethod
    def _hang_up(child: _Child) -> None:
        if child.channel is not None:
            child.channel.close()
            child.channel = None

    def _reap(self) -> None:
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                self._reaped(pid, status)

    def _reaped(self, pid: int, status: int) -> None:
        child = self.children.pop(pid)
        self._hang_up(child)
        index, how = child.index, _describe(status)
        opened, unauthenticated = self.shared.clear_worker(self.base + index)
        if opened or unauthenticated:
            log.info("worker %d (pid %d) held %d connection(s), %d unauthenticated: released",
                     index, pid, opened, unauthenticated)  # fmt: skip
        if self.stopping or (self.draining and os.WIFEXITED(status)):
            log.info("worker %d (pid %d) %s", index, pid, how)
        elif self.draining:
            log.warning("worker %d (pid %d) %s while draining; not restarted", index, pid, how)
        elif self.candidate and not self.announced:
            self.failed = f"worker {index} (pid {pid}) {how} before it was ready"
            log.error("supervisor: %s; this generation gives up", self.failed)
            self._stop(signal.SIGTERM)
        else:
            log.warning("worker %d (pid %d) %s; restarting it", index, pid, how)
            soon = time.monotonic() - child.started < RESTART_PAUSE
            self.restarts[index] = time.monotonic() + (RESTART_PAUSE if soon else 0.0)

    def _kill_all(self, signum: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _kill_now(self) -> None:
        log.warning("supervisor: killing %d worker(s)", len(self.children))
        self._kill_all(signal.SIGKILL)
        if self.successor is not None:
            self.successor.kill()

    # -- stopping and draining ---------------------------------------------------------
    def _stop(self, signum: int) -> None:
        if signum == signal.SIGINT and self.stopping:
            self._kill_now()
            return
        if self.stopping:
            return
        self.stopping = True
        self.restarts.clear()
        self.notifier.stopping()
        log.info("supervisor: signal %d, stopping %d worker(s)", signum, len(self.children))
        self._abandon()
        for child in self.children.values():
            self._hang_up(child)  # one not yet told to go never accepts
        self._kill_all(signal.SIGTERM)
        self.kill_at = time.monotonic() + self.server.stop_timeout + KILL_MARGIN

    def _drain(self, why: str) -> None:
        """Tell every worker to stop accepting and to exit after its last session."""
        if self.stopping or self.draining:
            return
        self.draining = True
        self.restarts.clear()
        log.info("supervisor: %s %d worker(s)", why, len(self.children))
        self._abandon()
        for child in self.children.values():
            self._hang_up(child)
        _close(self._groups())  # the new generation (or nobody) accepts from them now
        self.listeners = []
        self.server.sockets = []
        self._kill_all(signal.SIGUSR1)

    def _groups(self) -> list[list[socket.socket]]:
        """The distinct listening socket groups (one per worker, or the one shared)."""
        return list({id(group): group for group in self.listeners}.values())

    def _abandon(self) -> None:
        """End a new generation that is still starting (it has no sessions yet)."""
        if self.successor is not None and self.successor.terminate():
            log.warning("reload abandoned: ending the new generation (pid %d)",
                        self.successor.pid)  # fmt: skip

    # -- reload --------------------------------------------------------------------
    def _busy(self) -> str | None:
        if self.server._handed_over:
            return f"this generation handed over to pid {self.server._handed_over} and is draining"
        if self.successor is not None:
            return "a reload is already in progress"
        if self.stopping or self.draining:
            return "stopping" if self.stopping else "draining"
        return None if self.announced else "the workers are still starting"

    def _reload(self) -> None:
        busy = self._busy()
        if busy is not None:
            log.warning("reload ignored: %s", busy)
            return
        groups = self._groups()
        sockets = [sock for group in groups for sock in group]
        names = (self.server.socket_names or ["ssh"] * len(groups[0])) * len(groups)
        own = range(self.base, self.base + self.count)
        from geossh.runner.server import GROUPS_ENV, next_slots

        limits = (self.shared.fd, next_slots(own, self.shared.workers), own)
        log.info("reload: starting a new generation on %d socket(s) in %d group(s)",
                 len(sockets), len(groups))  # fmt: skip
        self.notifier.reloading()
        self.notifier.notify(STATUS="reloading")
        try:
            self.successor = Successor.start(
                sockets, self.notifier, names, limits, {GROUPS_ENV: str(len(groups))}
            )
        except OSError as exc:
            self._reload_failed(f"cannot start a new generation: {exc}")
            return
        self.deadline = time.monotonic() + self.server.reload_timeout

    def _poll_successor(self, readable: set[Any]) -> None:
        assert self.successor is not None
        done, failure = self.successor.poll(readable)
        if not done:
            return
        successor, self.successor = self.successor, None
        if self.stopping or self.draining:
            log.info("reload abandoned: pid %d is stopping", os.getpid())
            if failure is None:  # ready all the same: it stops too
                successor.terminate()
                self.after = successor
        elif failure is not None:
            self._reload_failed(failure)
        else:
            self._hand_over(successor)

    def _reload_failed(self, why: str) -> None:
        if not self.stopping and not self.draining:
            generation._failed(self.server, self.notifier, why)

    def _hand_over(self, successor: Successor) -> None:
        self.server._handed_over = successor.pid
        self.after = successor
        self.notifier.notify(
            MAINPID=successor.pid, READY=1, STATUS=f"reloaded: pid {successor.pid}"
        )
        self.notifier.address = None  # the new generation is the main process now
        self._drain(f"reload: new generation (pid {successor.pid}) is serving; draining")

    def _finish(self) -> None:
        """After the loop (or an error in it): nothing of this supervisor is left running."""
        self._kill_all(signal.SIGKILL)
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self._hang_up(self.children.pop(pid))
        if self.successor is not None:
            self.successor.kill()
            self.successor.close()
        if self.after is not None:
            self.after.close()
        if self.previous is not None:
            os.close(self.previous[2])
        _close(self._groups())
        _close([list(self.server.sockets)])
        self.listeners, self.server.sockets, self.server.worker_sockets = [], [], []
        self.shared.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        self.notifier.close()
        log.info("supervisor: all workers stopped")


def _die_with(supervisor: int) -> None:  # pragma: no cover (runs in the child)
    """SIGKILL this worker when its supervisor dies; exit now if it died already."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != supervisor:
        os._exit(1)


def _worker(server: Server, index: int, channel: socket.socket) -> int:  # pragma: no cover
    """The child: its own hub on its sockets; accepts once the supervisor says go."""
    gevent.reinit()
    server.workers = 1
    server._supervisor_pid = os.getppid()
    link = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=channel.detach())
    generation.serve(server, worker=lambda: _await_go(server, index, link))
    return 0


def _await_go(server: Server, index: int, link: Any) -> bool:  # pragma: no cover
    """Tell the supervisor this worker is ready; True once it says go (False: stopped first)."""
    try:
        link.sendall(READY)
        reader = gevent.spawn(link.recv, 1)
        gevent.wait([reader, server._stopped], count=1)
        go = reader.successful() and reader.value == GO
        reader.kill()
    finally:
        link.close()
    if go and not server._stopping:
        log.info("worker %d (pid %d) serving", index, os.getpid())
        return True
    return False


def _exit(code: int) -> None:  # pragma: no cover (runs in the child)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _describe(status: int) -> str:
    how = describe(status)
    return how if os.WIFSIGNALED(status) else f"exited with {how}"
