"""One serving process's life: readiness, signals, watchdog, reload and drain.

``serve(server)`` runs a single-process server (``workers=1``) until it
has stopped or drained. Signals (main thread only):

* SIGTERM, SIGINT: ``server.stop()`` (sessions get ``stop_timeout`` s); a
  new generation still starting is ended too.
* SIGHUP: ``reload(server)``: start the next generation (``geossh.runner.reload``)
  on the same sockets; once it is ready, stop accepting and drain. Ignored
  (logged) during a reload and once this generation has handed over.
* SIGUSR1: drain: stop accepting, exit when the last session ends (or
  ``drain_limit`` s later).

The service manager hears READY=1 with a STATUS line once accepting,
RELOADING=1 during a reload (then MAINPID= of the new generation and
READY=1, or READY=1 and a STATUS saying why it failed), STOPPING=1 when
stopping, and WATCHDOG=1 every half ``WATCHDOG_USEC``. A generation that
has handed over is silent: the new one is the main process.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

import gevent
import gevent.pool
import gevent.select

from geossh.runner.reload import Successor
from geossh.runner.systemd import Notifier

if TYPE_CHECKING:
    from geossh.runner.server import Server

log = logging.getLogger("geossh.server")


def status(server: Server) -> str:
    """The STATUS= line of a serving generation (a supervisor's counts its workers)."""
    from geossh.runner.server import _show

    where = ", ".join(_show(address) for address in server.addresses)
    extra = f", {server.workers} workers" if server.workers > 1 else ""
    return f"serving on {where} (pid {os.getpid()}{extra})"


def serve(server: Server, worker: Callable[[], bool] | None = None) -> None:
    """Start, tell the service manager, and serve until stopped or drained.

    The signal handlers are in place before READY=1 is sent: the next
    reload's SIGHUP may come the moment the service manager hears it.
    A worker of ``geossh.runner.workers`` neither reloads nor notifies (its
    supervisor is the service's main process): ``worker`` is called before
    it accepts, and returns whether to go on (False: stopped meanwhile).
    """
    notifier = server.notifier = (
        Notifier(None) if worker is not None else Notifier.from_environment()
    )
    if server.previous_generation is not None and worker is None:
        gevent.spawn(server.release_when_gone, *server.previous_generation)
    reloads = gevent.pool.Group()
    actions = {
        signal.SIGTERM: lambda: _stop(server),
        signal.SIGINT: lambda: _stop(server),
        signal.SIGUSR1: lambda: gevent.spawn(server.drain),
    }
    if worker is None:
        actions[signal.SIGHUP] = lambda: reloads.spawn(reload, server)
    handlers = []
    for signum, action in actions.items():
        try:
            handlers.append(gevent.signal_handler(signum, action))
        except ValueError:  # not the main thread
            break
    watchdog = None
    try:
        if worker is not None and not worker():
            return
        server.start()
        notifier.ready(status(server))
        if notifier.watchdog_interval:
            watchdog = gevent.spawn(_watchdog, notifier)
        server._stopped.wait()
        _abandon(server)  # stopped during a reload: the new generation goes too
        reloads.join(timeout=server.reload_timeout)
    finally:
        for handler in handlers:
            handler.cancel()
        if watchdog is not None:
            watchdog.kill(block=False)
        notifier.close()


def _stop(server: Server) -> None:
    log.info("signal: stopping gracefully (up to %g s)", server.stop_timeout)
    if server.notifier is not None:
        server.notifier.stopping()
    _abandon(server)
    gevent.spawn(server.stop)


def _abandon(server: Server) -> None:
    """End a new generation that is still starting (SIGTERM: it has no sessions yet)."""
    successor = server._successor
    if successor is not None and successor.terminate():
        log.warning("reload abandoned: stopping; ending the new generation (pid %d)",
                    successor.pid)  # fmt: skip


def _watchdog(notifier: Notifier) -> None:
    interval = notifier.watchdog_interval or 1.0
    while True:
        notifier.watchdog()
        gevent.sleep(interval)


def reload(server: Server) -> bool:
    """Hand the sockets to a freshly executed generation; drain once it is ready.

    Returns True if the new generation took over (this one then drains),
    False if the reload failed, could not start or was abandoned because
    this generation is stopping (this one keeps serving, or stops).
    """
    notifier = server.notifier or Notifier(None)
    if server._reloading or server._stopping or server._handed_over or not server.sockets:
        log.warning("reload ignored: %s", _busy(server))
        return False
    server._reloading = True
    try:
        log.info("reload: starting a new generation on %d socket(s)", len(server.sockets))
        notifier.reloading()
        notifier.notify(STATUS="reloading")
        try:
            limits = server.share_for_reload()  # the new generation counts with this one
            successor = Successor.start(server.sockets, notifier, server.socket_names, limits)
        except OSError as exc:
            return _failed(server, notifier, f"cannot start a new generation: {exc}")
        server._successor = successor
        try:
            failure = successor.wait(gevent.select.select, server.reload_timeout)
        finally:
            server._successor = None
        if server._stopping:  # SIGTERM came during the reload: no one takes over
            if failure is None:
                _end(successor)
            log.info("reload abandoned: pid %d is stopping", os.getpid())
            return False
        if failure is not None:
            return _failed(server, notifier, failure)
        server._handed_over = successor.pid
        notifier.notify(MAINPID=successor.pid, READY=1, STATUS=f"reloaded: pid {successor.pid}")
        notifier.address = None  # the new generation is the main process now
        log.info(
            "reload: new generation (pid %d) is serving; draining %d connection(s)",
            successor.pid, len(server.connections),
        )  # fmt: skip
        gevent.spawn(server.drain)
        gevent.spawn(_reap, successor)
        return True
    finally:
        server._reloading = False


def _reap(successor: Successor) -> None:
    """The new generation is our child: reap it if it exits first (no zombie left)."""
    how = successor.join(gevent.select.select)
    log.info("reload: pid %d (the generation after this one) exited (%s)", successor.pid, how)


def _end(successor: Successor) -> None:
    """SIGTERM a new generation that got ready too late (it stops gracefully)."""
    if successor.terminate():
        log.warning("reload abandoned: stopping the new generation (pid %d) too", successor.pid)
    successor.close()


def _busy(server: Server) -> str:
    if server._handed_over:
        return f"this generation handed over to pid {server._handed_over} and is draining"
    if server._reloading:
        return "a reload is already in progress"
    return "stopping" if server._stopping else "not accepting"


def _failed(server: Server, notifier: Notifier, why: str) -> bool:
    log.error("reload failed: %s; pid %d keeps serving", why, os.getpid())
    notifier.notify(READY=1, STATUS=f"reload failed: {why}; {status(server)}")
    return False
