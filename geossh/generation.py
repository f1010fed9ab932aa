"""One serving process's life: readiness, signals, watchdog, reload and drain.

``serve(server)`` runs a single-process server (``workers=1``) until it
has stopped or drained. Signals (main thread only):

* SIGTERM, SIGINT: ``server.stop()`` (sessions get ``stop_timeout`` s).
* SIGHUP: ``reload(server)``: start the next generation (``geossh.reload``)
  on the same sockets; once it is ready, stop accepting and drain.
* SIGUSR1: drain: stop accepting, exit when the last session ends.

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
from typing import TYPE_CHECKING

import gevent
import gevent.select

from geossh.reload import Successor
from geossh.systemd import Notifier

if TYPE_CHECKING:
    from geossh.runner import Server

log = logging.getLogger("geossh.server")


def status(server: Server, workers: int = 1) -> str:
    """The STATUS= line of a serving generation."""
    from geossh.runner import _show

    where = ", ".join(_show(address) for address in server.addresses)
    extra = f", {workers} workers" if workers > 1 else ""
    return f"serving on {where} (pid {os.getpid()}{extra})"


def serve(server: Server) -> None:
    """Start, tell the service manager, and serve until stopped or drained."""
    notifier = server.notifier = Notifier.from_environment()
    server.start()
    notifier.ready(status(server))
    handlers = []
    actions = {
        signal.SIGTERM: lambda: _stop(server),
        signal.SIGINT: lambda: _stop(server),
        signal.SIGHUP: lambda: gevent.spawn(reload, server),
        signal.SIGUSR1: lambda: gevent.spawn(server.drain),
    }
    for signum, action in actions.items():
        try:
            handlers.append(gevent.signal_handler(signum, action))
        except ValueError:  # not the main thread
            break
    watchdog = gevent.spawn(_watchdog, notifier) if notifier.watchdog_interval else None
    try:
        server._stopped.wait()
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
    gevent.spawn(server.stop)


def _watchdog(notifier: Notifier) -> None:
    interval = notifier.watchdog_interval or 1.0
    while True:
        notifier.watchdog()
        gevent.sleep(interval)


def reload(server: Server) -> bool:
    """Hand the sockets to a freshly executed generation; drain once it is ready.

    Returns True if the new generation took over (this one then drains),
    False if the reload failed or could not start (this one keeps serving).
    """
    notifier = server.notifier or Notifier(None)
    if server._reloading or server._stopping or not server.sockets:
        log.warning("reload ignored: %s", _busy(server))
        return False
    server._reloading = True
    try:
        log.info("reload: starting a new generation on %d socket(s)", len(server.sockets))
        notifier.reloading()
        notifier.notify(STATUS="reloading")
        try:
            successor = Successor.start(server.sockets, notifier, server.socket_names)
        except OSError as exc:
            return _failed(server, notifier, f"cannot start a new generation: {exc}")
        failure = successor.wait(gevent.select.select, server.reload_timeout)
        if failure is not None:
            return _failed(server, notifier, failure)
        notifier.notify(MAINPID=successor.pid, READY=1, STATUS=f"reloaded: pid {successor.pid}")
        notifier.address = None  # the new generation is the main process now
        log.info(
            "reload: new generation (pid %d) is serving; draining %d connection(s)",
            successor.pid, len(server.connections),
        )  # fmt: skip
        gevent.spawn(server.drain)
        return True
    finally:
        server._reloading = False


def _busy(server: Server) -> str:
    if server._reloading:
        return "a reload is already in progress"
    return "stopping" if server._stopping else "not accepting"


def _failed(server: Server, notifier: Notifier, why: str) -> bool:
    log.error("reload failed: %s; pid %d keeps serving", why, os.getpid())
    notifier.notify(READY=1, STATUS=f"reload failed: {why}; {status(server)}")
    return False
