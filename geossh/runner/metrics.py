"""Prometheus metrics of a geossh server (the optional extra ``geossh[metrics]``).

``Metrics`` is an ``Observer`` (``geossh.observer``) that counts with the
official ``prometheus_client``; pass it to ``Server(observers=[AuditLog(),
Metrics()])`` or run ``geossh serve --metrics HOST:PORT``. ``serve(address)``
answers scrapes from a thread. docs/deployment.md lists every metric.

Across processes (``workers > 1``, and the generations of a SIGHUP reload)
the totals are kept in prometheus_client's multiprocess mode:
``prepare_multiprocess()`` (called before anything imports prometheus_client)
sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory, which forked workers
and re-executed generations inherit; each process writes its own files
there and a scrape sums them (gauges over live processes only). The HTTP
socket has ``SO_REUSEPORT`` so a new generation can bind it while the old
one drains; both answer with the same sums.

Costs: a few counter updates per connection and per channel, nothing per
packet. Bytes of open connections are added every ``FLUSH_INTERVAL``
seconds and at close.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import gevent

from geossh._facade.observer import Observer

FLUSH_INTERVAL = 5.0
ENV = "PROMETHEUS_MULTIPROC_DIR"
_OWNED = "geossh-made"  # marks a directory prepare_multiprocess created (and may remove)
KEX_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
AUTH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0)
METHODS = frozenset({"none", "password", "publickey", "keyboard-interactive", "hostbased"})
SESSION_KINDS = frozenset({"exec", "shell", "subsystem"})
FORWARD_KINDS = {
    "direct-tcpip": "direct-tcpip",
    "forwarded-tcpip": "forwarded-tcpip",
    "direct-streamlocal@openssh.com": "direct-streamlocal",
    "forwarded-streamlocal@openssh.com": "forwarded-streamlocal",
    "x11": "x11",
}
OUTCOMES = frozenset({"authenticated", "authfail", "noauth", "grace_exceeded", "crash"})
_LIVE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db$")


def prepare_multiprocess() -> str:
    """The multiprocess directory: an inherited ``PROMETHEUS_MULTIPROC_DIR``, or a new one.

    Call before prometheus_client is imported: it picks its value store then.
    """
    path = os.environ.get(ENV)
    if path and os.path.isdir(path):
        return path
    path = tempfile.mkdtemp(prefix="geossh-metrics-")
    with open(os.path.join(path, _OWNED), "w"):
        pass
    os.environ[ENV] = path
    return path


def remove_multiprocess(path: str | None = None) -> None:
    """Remove the directory if ``prepare_multiprocess`` made it (not one an operator set)."""
    path = path or os.environ.get(ENV)
    if path and os.path.exists(os.path.join(path, _OWNED)):
        shutil.rmtree(path, ignore_errors=True)


def _forget_dead(path: str) -> None:
    """Drop live-gauge files of processes that are gone (a worker that died)."""
    from prometheus_client import multiprocess

    for name in glob.glob(os.path.join(path, "gauge_live*.db")):
        match = _LIVE_FILE.search(name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


def serve(address: tuple[str, int], registry: Any = None) -> tuple[Any, threading.Thread]:
    """Answer ``GET /metrics`` on ``address`` from a daemon thread; (server, thread).

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set) the answer sums
    every process's files; else it is ``registry`` (default: the global one).
    """
    from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    path = os.environ.get(ENV)
    if path:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    metrics_app = make_wsgi_app(registry or REGISTRY)

    def app(environ: Any, start_response: Any) -> Any:
        if path:
            _forget_dead(path)
        return metrics_app(environ, start_response)

    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(ThreadingWSGIServer):  # type: ignore[misc,unused-ignore]  # Any without it
        address_family = family

        def server_bind(self) -> None:
            if hasattr(socket, "SO_REUSEPORT"):  # a reload's next generation binds it too
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            super().server_bind()

    httpd = make_server(host, port, app, Server, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="geossh-metrics", daemon=True)
    thread.start()
    return httpd, thread


def _label(value: str, known: frozenset[str]) -> str:
    return value if value in known else "other"


class _Open:
    """Per open connection: bytes already counted, when the first kex completed."""

    __slots__ = ("bytes_in", "bytes_out", "kex_at")

    def __init__(self) -> None:
        self.bytes_in = self.bytes_out = 0
        self.kex_at: float | None = None


class Metrics(Observer):
    """Counts connections, logins, sessions, channels and bytes (docs/deployment.md)."""

    def __init__(self, registry: Any = None, namespace: str = "geossh") -> None:
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        reg = registry or REGISTRY
        ns = namespace

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return Counter(name, doc, labels, namespace=ns, registry=reg)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            return Gauge(name, doc, labels, namespace=ns, registry=reg, multiprocess_mode="livesum")

        self.connections_open = gauge("connections_open", "Connections open now")
        self.connections = counter(
            "connections", "Connections ended, by outcome (refused: never admitted)", ("outcome",)
        )
        self.refusals = counter(
            "source_refusals",
            "Connections refused at once: max_startups, per_source, penalty",
            ("reason",),
        )
        self.handshake_failures = counter(
            "handshake_failures", "Connections that ended before the first key exchange",
            ("reason",),
        )  # fmt: skip
        self.logins = counter("logins", "Successful authentications, by method", ("method",))
        self.auth_failures = counter(
            "auth_failures", "Refused authentication requests (not 'none'), by method", ("method",)
        )
        self.sessions = counter("sessions", "Sessions started, by kind", ("kind",))
        self.sessions_open = gauge("sessions_open", "Sessions running now, by kind", ("kind",))
        self.channels_open = gauge("channels_open", "Channels open now")
        self.forwards_open = gauge("forwards_open", "Forwarding channels open now", ("kind",))
        self.forwards = counter("forwards", "Forwarding channels opened, by kind", ("kind",))
        self.bytes_received = counter("received_bytes", "Bytes received from clients")
        self.bytes_sent = counter("sent_bytes", "Bytes sent to clients")
        self.kex_seconds = Histogram(
            "kex_duration_seconds", "From accept to the first key exchange done",
            namespace=ns, registry=reg, buckets=KEX_BUCKETS,
        )  # fmt: skip
        self.auth_seconds = Histogram(
            "auth_duration_seconds", "From the first key exchange to a successful login",
            namespace=ns, registry=reg, buckets=AUTH_BUCKETS,
        )  # fmt: skip
        self.reloads = counter("reloads", "Generations started by a reload (SIGHUP)")
        self._open: dict[Any, _Open] = {}  # transport -> its state
        self._sessions: dict[Any, str] = {}  # session channel -> kind
        self._flusher: Any = None
        self._flusher_pid = 0

    # -- connections --------------------------------------------------------------------
    def refused(self, peer: Any, reason: str) -> None:
        self.refusals.labels(reason).inc()
        self.connections.labels("refused").inc()

    def opened(self, transport: Any) -> None:
        self._open[transport] = _Open()
        self.connections_open.inc()
        if self._flusher_pid != os.getpid():  # one flusher per process (forked workers)
            self._flusher_pid = os.getpid()
            self._flusher = gevent.spawn(self._flush_forever)

    def kex_done(self, transport: Any) -> None:
        state = self._open.get(transport)
        now = time.monotonic()
        if state is not None:
            state.kex_at = now
        self.kex_seconds.observe(max(0.0, now - transport._started_at))

    def auth(self, transport: Any, username: str, method: str, result: str, details: Any) -> None:
        name = _label(method, METHODS)
        if result == "accepted":
            self.logins.labels(name).inc()
            state = self._open.get(transport)
            if state is not None and state.kex_at is not None:
                self.auth_seconds.observe(max(0.0, time.monotonic() - state.kex_at))
        elif result == "refused" and method != "none":
            self.auth_failures.labels(name).inc()

    def closed(self, transport: Any) -> None:
        state = self._open.pop(transport, None)
        if state is None:
            return
        self.connections_open.dec()
        self._add_bytes(transport, state)
        outcome = transport.outcome()
        self.connections.labels(_label(outcome, OUTCOMES)).inc()
        if not transport.initial_kex_done:
            self.handshake_failures.labels(failure_reason(transport)).inc()

    def _add_bytes(self, transport: Any, state: _Open) -> None:
        pump = transport._pump
        if pump is None:
            return
        new_in, new_out = pump.bytes_in - state.bytes_in, pump.bytes_out - state.bytes_out
        state.bytes_in, state.bytes_out = pump.bytes_in, pump.bytes_out
        if new_in > 0:
            self.bytes_received.inc(new_in)
        if new_out > 0:
            self.bytes_sent.inc(new_out)

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL)
            for transport, state in list(self._open.items()):
                self._add_bytes(transport, state)

    # -- channels and sessions ----------------------------------------------------------
    def channel_opened(self, transport: Any, channel: Any, target: Any = None) -> None:
        self.channels_open.inc()
        kind = FORWARD_KINDS.get(channel.kind)
        if kind is not None:
            self.forwards.labels(kind).inc()
            self.forwards_open.labels(kind).inc()

    def session_started(self, transport: Any, channel: Any, kind: str, what: Any) -> None:
        if channel in self._sessions:  # one program per channel: counted once
            return
        kind = _label(kind, SESSION_KINDS)
        self._sessions[channel] = kind
        self.sessions.labels(kind).inc()
        self.sessions_open.labels(kind).inc()

    def channel_closed(self, transport: Any, channel: Any) -> None:
        self.channels_open.dec()
        forward = FORWARD_KINDS.get(channel.kind)
        if forward is not None:
            self.forwards_open.labels(forward).dec()
        session = self._sessions.pop(channel, None)
        if session is not None:
            self.sessions_open.labels(session).dec()


def failure_reason(transport: Any) -> str:
    """Why a connection ended before its first key exchange, as a short label."""
    from geossh.errors import RemoteProtocolError

    if transport.outcome() == "grace_exceeded":
        return "timeout"
    if getattr(transport, "crashed", False):
        return "internal_error"
    exc = transport.saved_exception
    if isinstance(exc, RemoteProtocolError):
        with contextlib.suppress(AttributeError, TypeError):
            return str(exc.code.name).lower()
        return "protocol_error"
    reason = transport.close_reason or ""
    for prefix, label in (
        ("client sent DISCONNECT", "client_disconnect"),
        ("client closed", "client_closed"),
        ("socket error", "socket_error"),
        ("write failed", "socket_error"),
        ("closed by application", "server_closed"),
        ("Timeout", "timeout"),
    ):
        if reason.startswith(prefix):
            return label
    return "other"
