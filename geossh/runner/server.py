"""``Server``: the accept loop, host keys, limits, graceful stop and worker processes.

``Server(listen, interface_factory, host_keys=..., handler=...)`` listens on
one or more addresses (or already-bound sockets) with
``gevent.server.StreamServer`` and runs one ``Transport`` per connection.
Each connection gets a fresh ``ServerInterface`` from the factory, wrapped
in a ``SessionDispatcher`` so blocking session handlers serve exec, shell
and subsystem requests (``geossh.session``).

Limits (docs/limits.md has the table): ``max_connections`` (past it, a new
connection gets one ``Too many connections`` line and is closed), ``max_startups``
(OpenSSH's ``start:rate:full`` random early drop of unauthenticated
connections), ``per_source_max_startups``, ``per_source_netblock`` and
``per_source_penalties`` (``geossh.runner.srclimit``: sshd's PerSourceMaxStartups,
PerSourceNetBlockSize and PerSourcePenalties), and per connection
``login_grace_time``, ``max_auth_tries``, ``max_channels`` and any other
Transport limit through ``limits={name: value}`` (e.g.
``client_alive_interval``, ``unused_connection_timeout``).

``proxy_protocol=True`` reads a PROXY v1/v2 header first
(``geossh.runner.proxyproto``) on connections from the trusted balancers
(``proxy_from``: addresses or networks; default this host's loopback);
its client address is what logs, limits, ``transport.getpeername()`` and
the interface see. A trusted peer without a valid header is closed; any
other peer is an ordinary client under its own address, so a header it
forges is never believed (it fails the version exchange).

Algorithms: the Transport's defaults minus ``HARDENED_DISABLED_ALGORITHMS``
(the NIST P-curve key exchanges and ECDSA host-key signatures, which
ssh-audit fails); ``disabled_algorithms={}`` offers them again.

``stop(timeout)`` stops accepting, refuses new sessions, lets running
sessions finish for up to ``timeout`` seconds, then disconnects the rest
with DISCONNECT BY_APPLICATION. ``workers=N`` forks N processes that share
the listening sockets (``geossh.runner.workers``); the limits then hold for
all of them together (``geossh.runner.shared``).

Logs connection, authentication and session events under ``geossh.server``
with ``[conn=N ip:port]``: one line when a connection opens and one when it
closes (user, auth method, failures, duration, bytes, outcome, reason).
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import ipaddress
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gevent
import gevent.pool
import gevent.server
from gevent.event import Event

from geossh._facade.observer import Observer, Observers
from geossh._facade.pkey import PKey
from geossh._facade.server import ServerInterface, SubsystemHandler
from geossh._facade.transport import Transport
from geossh.logtext import PrefixedLog, printable
from geossh.proto.config import ServerConfig
from geossh.runner import generation, proxyproto, systemd
from geossh.runner.hostkeys import default_state_dir, load_or_create
from geossh.runner.listener import Listener
from geossh.runner.shared import SharedLimits, SharedSources, capacity_for
from geossh.runner.srclimit import PenaltyPolicy, SourceLimits, parse_netblock, parse_penalties
from geossh.runner.systemd import Notifier
from geossh.services.session import (
    DEFAULT_ACCEPT_ENV,
    SessionDispatcher,
    SessionHandler,
    SessionHandlers,
)

Address = tuple[str, int] | socket.socket
log = logging.getLogger("geossh.server")
#: Sent (before the version line, RFC 4253 §4.2) to a connection past ``max_connections``.
FULL_LINE = b"Too many connections; try again later\r\n"
#: Slots of the segment a single process shares with the generations a reload starts.
GENERATIONS = 4
_LIMITS_ENV = ("GEOSSH_LIMITS_FD", "GEOSSH_LIMITS_SLOT", "GEOSSH_LIMITS_PREVIOUS")
#: How many per-worker groups the inherited listening sockets form (a supervisor's reload).
GROUPS_ENV = "GEOSSH_WORKER_SOCKETS"


#: What ``Server`` turns off on top of the Transport's defaults: the NIST
#: P-curve key exchanges and ECDSA host-key signatures, which ssh-audit
#: fails. ``geossh.Transport`` keeps OpenSSH's list for paramiko code.
HARDENED_DISABLED_ALGORITHMS: Mapping[str, tuple[str, ...]] = {
    "kex": ("ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521"),
    "keys": ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"),
}
#: Transport attributes ``Server(limits=...)`` may set (docs/limits.md).
TRANSPORT_LIMITS = frozenset({
    "banner_timeout", "handshake_timeout", "auth_timeout", "max_auth_tries", "max_channels",
    "max_pending_channels", "max_pending_global_requests", "max_packet_size",
    "max_version_line", "max_pre_version_lines", "client_alive_interval",
    "client_alive_count_max", "unused_connection_timeout", "rekey_bytes", "rekey_seconds",
    "default_window_size", "default_max_packet_size",
})  # fmt: skip


class ListenError(OSError):
    """An address could not be bound (the message names it and says why)."""


#: Who may send PROXY headers when ``proxy_protocol=True`` names no one: a
#: balancer on this host. Anything else must be listed (``proxy_from``).
DEFAULT_PROXY_FROM = ("127.0.0.0/8", "::1/128")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: str | Sequence[str | Network]) -> tuple[Network, ...]:
    """``"10.0.0.0/8,192.0.2.7"`` or a list of such → networks (ValueError if invalid)."""
    if isinstance(specs, str):
        specs = specs.split(",")
    networks = []
    for item in specs:
        spec = str(item).strip()
        if not spec:
            continue
        try:
            networks.append(ipaddress.ip_network(spec, strict=False))
        except ValueError:
            raise ValueError(f"not an address or network: {spec!r}") from None
    if not networks:
        raise ValueError("no trusted PROXY source given")
    return tuple(networks)


def _within(address: Any, networks: Sequence[Network]) -> bool:
    """Is the socket peer ``address`` (a TCP address tuple) inside one of ``networks``?"""
    try:
        ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
    except (ValueError, IndexError, TypeError):
        return False  # a Unix socket peer, or nothing: not a trusted balancer
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


def parse_max_startups(value: str | Sequence[int] | None) -> tuple[int, int, int] | None:
    """``"10:30:100"`` (start:rate:full) or ``"10"`` (drop all past 10) → a tuple."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parts = [int(part) for part in value.split(":")]
        except ValueError:
            raise ValueError(f"bad MaxStartups {value!r}: expected start:rate:full") from None
    else:
        parts = [int(part) for part in value]
    if len(parts) == 1:
        parts = [parts[0], 100, parts[0]]
    if len(parts) != 3:
        raise ValueError(f"bad MaxStartups {value!r}: expected start:rate:full")
    start, rate, full = parts
    if start < 1 or full < start or not 0 <= rate <= 100:
        raise ValueError(f"bad MaxStartups {value!r}: need 1 <= start <= full, 0 <= rate <= 100")
    return start, rate, full


def bind(address: Address, backlog: int = 128) -> socket.socket:
    """A non-blocking listening socket for ``(host, port)`` (or a given socket)."""
    if isinstance(address, socket.socket):
        sock = address
    else:
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            in_use = exc.errno == errno.EADDRINUSE
            reason = "address already in use" if in_use else exc.strerror or str(exc)
            error = ListenError(f"cannot listen on {_show((host, port))}: {reason}")
            error.errno = exc.errno
            raise error from None
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def next_slots(own: range, total: int) -> int:
    """The first limit slot of the next generation: after ``own``, else from 0 (same size)."""
    after = own.stop
    return after if after + len(own) <= total else 0


def _previous(text: str, slot: int, total: int) -> tuple[int, range]:
    """``GEOSSH_LIMITS_PREVIOUS``: ``pid:start:stop`` (its slots), or a single process's pid."""
    parts = [int(part) for part in text.split(":")] if text else [0]
    if len(parts) == 3 and 0 <= parts[1] < parts[2] <= total:
        return parts[0], range(parts[1], parts[2])
    before = (slot - 1) % total
    return parts[0], range(before, before + 1)


def _show(address: Any) -> str:
    """``host:port`` for logs (a PROXY header chose it: escaped)."""
    host, port = printable(address[0], 128), printable(address[1], 16)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _addresses(listen: Address | Sequence[Address]) -> list[Address]:
    """One address, socket or a list of them → a non-empty list."""
    single = isinstance(listen, socket.socket) or (
        isinstance(listen, tuple) and len(listen) == 2 and isinstance(listen[0], str)
    )
    addresses: Any = [listen] if single else list(listen)  # type: ignore[arg-type]
    if not addresses:
        raise ValueError("no address to listen on")
    return list(addresses)


def _takes_transport(factory: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in kinds and p.default is p.empty for p in params)


class _Connection:
    """What the server tracks for one connection."""

    __slots__ = (
        "authenticated", "counted", "dispatcher", "log", "own", "peer", "proxied", "source",
        "transport",
    )  # fmt: skip

    def __init__(self, peer: tuple[Any, ...]) -> None:
        self.peer = peer
        self.proxied = False  # from a trusted balancer: a PROXY header is expected
        self.own = False  # the balancer's own connection (a health check), not a client's
        self.counted = False  # in Server.unauthenticated (MaxStartups) until authenticated
        self.authenticated = False
        self.source: str | None = None  # the host counted in Server.sources, while it is
        self.transport: Transport | None = None
        self.dispatcher: SessionDispatcher | None = None
        self.log: logging.LoggerAdapter[Any] = PrefixedLog(log, _show(peer))


class Server:
    """An SSH server: binds, accepts, runs a Transport per connection, stops gracefully.

    ``interface``: a ``ServerInterface`` factory called once per connection
    (with the ``Transport`` if it takes one positional argument, else with
    none). ``host_keys``, or ``host_key_dir`` where ed25519, ecdsa and rsa
    keys are created on first start (default: ``~/.local/state/geossh``).
    ``handler`` serves exec and shell requests unless ``exec_handler`` /
    ``shell_handler`` are given; ``subsystems`` maps names to blocking
    handlers, to ``SubsystemHandler`` classes or to ``(class, *args)``
    (e.g. ``{"sftp": (SFTPServer, LocalSFTPServer, root)}``). ``configure``
    is called with each new Transport before it starts. The limits are
    described in the module docstring and docs/limits.md.
    """

    def __init__(
        self,
        listen: Address | Sequence[Address] = ("127.0.0.1", 2222),
        interface: Callable[..., ServerInterface] | None = None,
        *,
        host_keys: Sequence[PKey] | None = None,
        host_key_dir: str | os.PathLike[str] | None = None,
        handler: SessionHandler | None = None,
        exec_handler: SessionHandler | None = None,
        shell_handler: SessionHandler | None = None,
        subsystems: Mapping[str, Any] | None = None,
        accept_env: Sequence[str] = DEFAULT_ACCEPT_ENV,
        max_connections: int | None = None,
        max_startups: str | Sequence[int] | None = "10:30:100",
        login_grace_time: float = ServerConfig.auth_timeout,
        max_channels: int = ServerConfig.max_channels,
        max_auth_tries: int = ServerConfig.max_auth_tries,
        per_source_max_startups: int | None = None,
        per_source_netblock: str | tuple[int, int] = (32, 128),
        per_source_penalties: str | PenaltyPolicy | None = "yes",
        limits: Mapping[str, Any] | None = None,
        disabled_algorithms: Mapping[str, Sequence[str]] | None = None,
        proxy_protocol: bool = False,
        proxy_protocol_timeout: float = 10.0,
        proxy_from: str | Sequence[str | Network] | None = None,
        workers: int = 1,
        stop_timeout: float = 10.0,
        drain_limit: float | None = None,
        reload_timeout: float = 60.0,
        configure: Callable[[Transport], None] | None = None,
        backlog: int = 128,
        observers: Sequence[Observer] | None = None,
    ) -> None:
        self.listen = _addresses(listen)
        self.interface = interface or ServerInterface
        self._pass_transport = _takes_transport(self.interface)
        if host_keys is None:
            host_keys = load_or_create(host_key_dir or default_state_dir())
        if not host_keys:
            raise ValueError("at least one host key is needed")
        self.host_keys = list(host_keys)
        blocking, self.subsystem_classes = _split_subsystems(subsystems or {})
        self.handlers = SessionHandlers(
            exec=exec_handler or handler, shell=shell_handler or handler,
            subsystems=blocking, accept_env=tuple(accept_env),
        )  # fmt: skip
        self.max_connections = max_connections
        self.max_startups = parse_max_startups(max_startups)
        self.login_grace_time = login_grace_time
        self.max_channels = max_channels
        self.transport_limits = _transport_limits(
            limits, auth_timeout=login_grace_time, max_channels=max_channels,
            max_auth_tries=max_auth_tries,
        )  # fmt: skip
        self.sources: SourceLimits | SharedSources = SourceLimits(
            per_source_max_startups,
            parse_netblock(per_source_netblock),
            parse_penalties(per_source_penalties),
        )
        self.disabled_algorithms = _disabled(disabled_algorithms, self.host_keys)
        self.proxy_protocol = bool(proxy_protocol or proxy_from)
        self.proxy_protocol_timeout = proxy_protocol_timeout
        self.proxy_from = parse_networks(proxy_from or DEFAULT_PROXY_FROM)
        self.workers = max(1, int(workers))
        self.stop_timeout = stop_timeout
        self.drain_limit = drain_limit
        self.reload_timeout = reload_timeout
        self.configure = configure
        self.backlog = backlog
        self.reuse_port = True  # workers: a socket each (SO_REUSEPORT); False: one shared
        if observers is None:  # the audit log (geossh.audit) unless told otherwise
            from geossh.runner.audit import AuditLog

            observers = [AuditLog()]
        self.observer = Observers(observers)
        self._init_state()

    def _init_state(self) -> None:
        self.random: Callable[[], float] = random.random
        self.clock: Callable[[], float] = time.monotonic
        self.sockets: list[socket.socket] = []
        self.socket_names: list[str] = []  # as LISTEN_FDNAMES gave them
        self.worker_sockets: list[list[socket.socket]] = []  # inherited: one group per worker
        self.previous_generation: tuple[int, range] | None = None  # its pid, its limit slots
        self._supervisor_pid: int | None = None  # with workers: who reloads (SIGHUP)
        self.notifier: Notifier | None = None
        self._reloading = False
        self._successor: Any = None  # a new generation while it starts (geossh.runner.reload)
        self._handed_over: int | None = None  # its pid once it took over; this one drains
        self.addresses: list[tuple[Any, ...]] = []  # what was bound, as (host, port)
        self.connections: set[_Connection] = set()
        self.unauthenticated = 0
        self.dropped = 0
        self.refused = 0  # by PerSourceMaxStartups or a penalty
        self.full = 0  # refused past max_connections
        self.open = 0  # connections this process holds a max_connections slot for
        self.shared: SharedLimits | None = None  # with workers: the server-wide counts
        self.worker_index = 0
        self._pool = gevent.pool.Pool(None)  # max_connections refuses; it never queues
        self._servers: list[Listener] = []
        self._stopped = Event()
        self._stopping = False

    # -- binding and starting ---------------------------------------------------------
    def bind(self) -> list[tuple[Any, ...]]:
        """Create the listening sockets (idempotent); returns the bound addresses."""
        if not self.sockets and self._adopt_inherited():
            return self.addresses
        if not self.sockets:
            bound: list[socket.socket] = []
            try:
                for address in self.listen:
                    bound.append(bind(address, self.backlog))
            except BaseException:
                for sock in bound:
                    sock.close()
                raise
            self.sockets = bound
            self.addresses = [sock.getsockname()[:2] for sock in bound]
        return self.addresses

    def _adopt_inherited(self) -> bool:
        """Serve on sockets passed by systemd or a reload (LISTEN_FDS); bind nothing."""
        limits = {name: os.environ.pop(name, "") for name in _LIMITS_ENV}
        groups = os.environ.pop(GROUPS_ENV, "")
        inherited = systemd.listen_sockets()
        if not inherited:
            return False
        if limits["GEOSSH_LIMITS_FD"]:  # a reload: count with the generation before
            self._adopt_limits(limits)
        self.worker_sockets = self._groups(inherited, groups)
        self.sockets = list(self.worker_sockets[0])
        self.socket_names = [name for _, name in inherited[: len(self.sockets)]]
        self.addresses = [sock.getsockname()[:2] for sock in self.sockets]
        log.info("inherited %d listening socket(s): %s", len(inherited),
                 ", ".join(name for _, name in inherited))  # fmt: skip
        return True

    def _groups(
        self, inherited: list[tuple[socket.socket, str]], groups: str
    ) -> list[list[socket.socket]]:
        """The inherited sockets as one group per worker (a reload of workers), else one group.

        Groups past this server's worker count are closed (a reload to fewer workers).
        """
        socks = [sock for sock, _ in inherited]
        count = int(groups) if groups.isdigit() and int(groups) > 0 else 1
        if len(socks) % count:
            log.warning("reload: %d sockets in %d groups? one group", len(socks), count)
            count = 1
        size = len(socks) // count
        split = [socks[at : at + size] for at in range(0, len(socks), size)]
        for extra in split[self.workers :]:
            log.warning("reload: %d worker(s) now; closing a listening socket group", self.workers)
            for sock in extra:
                sock.close()
        return split[: self.workers]

    def _adopt_limits(self, limits: dict[str, str]) -> None:
        """Join the previous generation's shared segment (its fd comes after the sockets)."""
        fd = -1
        try:
            fd, slot = int(limits["GEOSSH_LIMITS_FD"]), int(limits["GEOSSH_LIMITS_SLOT"])
            os.set_inheritable(fd, False)
            shared = SharedLimits.adopt(fd)
            previous = _previous(limits["GEOSSH_LIMITS_PREVIOUS"], slot, shared.workers)
            if not 0 <= slot <= shared.workers - self.workers:
                raise ValueError(f"slots {slot}+{self.workers} out of range")
        except (ValueError, OSError) as exc:
            log.warning("reload: not sharing limits with the previous generation: %s", exc)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
            return
        for stale in range(slot, slot + self.workers):  # a generation long ago died in them?
            shared.clear_worker(stale)
        self.share(shared, slot)
        log.info("sharing connection limits with the previous generation (pid %d)", previous[0])
        if previous[0] > 0:
            self.previous_generation = previous

    def release_when_gone(self, pid: int, slots: range) -> None:
        """When the previous generation exits (even SIGKILLed), give its slots back."""
        import gevent.select

        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = None  # gone already
        if pidfd is not None:
            try:
                gevent.select.select([pidfd], [], [])
            finally:
                os.close(pidfd)
        self.release(pid, slots)

    def release(self, pid: int, slots: range) -> None:
        """Zero the limit slots of the previous generation ``pid``, which has exited."""
        if self.shared is None:
            return
        held = sum(self.shared.clear_worker(slot)[0] for slot in slots)
        if held:
            log.info("previous generation (pid %d) gone: released %d connection(s)", pid, held)

    def share_for_reload(self) -> tuple[int, int, range]:
        """(fd, first slot, own slots) of the segment the next generation counts in.

        A single process counts in its own memory until its first reload;
        then its counts and penalties move into a ``geossh.runner.shared`` segment
        that each later generation inherits, so old and new generations
        share one budget. The segment is made now if needed.
        """
        if self.shared is None:
            shared = SharedLimits.create(GENERATIONS, capacity_for(self.sources))
            local = self.sources
            with shared.locked():
                shared.add(0, self.open, self.unauthenticated)
                self.share(shared, 0)
                if isinstance(local, SourceLimits) and isinstance(self.sources, SharedSources):
                    self.sources.load(local, self.clock())
        assert self.shared is not None
        own = range(self.worker_index, self.worker_index + 1)
        return self.shared.fd, next_slots(own, self.shared.workers), own

    @property
    def port(self) -> int:
        """The port of the first listening socket (binds first if needed; for port 0)."""
        return int((self.addresses or self.bind())[0][1])

    def start(self) -> None:
        """Bind if needed and start accepting in this process's hub; returns at once."""
        if self._servers:
            return
        self.bind()
        self._stopped.clear()
        self._stopping = False
        for sock in self.sockets:
            server = Listener(sock, self._handle, spawn=self._pool)
            server.start()
            self._servers.append(server)
        log.info("listening on %s", ", ".join(_show(a) for a in self.addresses))

    def serve_forever(self) -> None:
        """Serve until ``stop()`` or SIGTERM/SIGINT (then stop gracefully)."""
        if self.workers > 1:
            from geossh.runner.workers import supervise

            supervise(self)
            return
        generation.serve(self)

    def reload(self) -> bool:
        """Zero-downtime reload (as SIGHUP): re-execute the program on the same sockets.

        The new generation runs freshly imported code; once it accepts, this
        one stops accepting and drains. Returns whether the new generation
        took over (False: this one goes on). With workers, it asks the supervisor
        (SIGHUP, which does the same for all workers) and returns True at once:
        the outcome is in the supervisor's log (and told to the service manager).
        """
        if self._supervisor_pid is not None:
            log.info("reload: asking the supervisor (pid %d)", self._supervisor_pid)
            try:
                os.kill(self._supervisor_pid, signal.SIGHUP)
            except ProcessLookupError:
                return False
            return True
        return generation.reload(self)

    def drain(self, limit: float | None = None) -> None:
        """Stop accepting; serve open connections until they end (or ``limit`` s); stop."""
        limit = self.drain_limit if limit is None else limit
        for server in self._servers:
            server.close()
        self._servers = []
        self.sockets = []
        log.info("draining: %d connection(s) open%s", len(self.connections),
                 "" if limit is None else f" (for up to {limit:g} s)")  # fmt: skip
        self._pool.join(timeout=limit)
        self.stop(timeout=0)
        log.info("drained")

    # -- stopping ---------------------------------------------------------------------
    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting; let sessions finish for ``timeout`` s; disconnect the rest."""
        if self._stopping:
            self._stopped.wait()
            return
        self._stopping = True
        timeout = self.stop_timeout if timeout is None else timeout
        for server in self._servers:
            server.close()
        self._servers = []
        self.sockets = []
        log.info("stopping: %d connection(s) open", len(self.connections))
        for conn in list(self.connections):
            if conn.dispatcher is not None:
                conn.dispatcher.accepting = False
            if not conn.authenticated and conn.transport is not None:
                conn.transport.close()
        self._pool.join(timeout=timeout)
        for conn in list(self.connections):
            conn.log.info("disconnecting: server stopping")
            if conn.transport is not None:
                conn.transport.close()
        self._pool.join(timeout=5)
        self._pool.kill(block=True, timeout=5)
        self._stopped.set()

    close = stop

    # -- one connection ---------------------------------------------------------------
    def _past_max_startups(self) -> bool:
        """OpenSSH's MaxStartups: drop with probability rising from rate% to 100%."""
        if self.max_startups is None:
            return False
        start, rate, full = self.max_startups
        count = self._totals()[1]
        if count >= full:
            return True
        if count < start:
            return False
        chance = rate + (100 - rate) * (count - start) / max(1, full - start)
        return self.random() * 100 < chance

    def share(self, shared: SharedLimits, worker: int) -> None:
        """Count this worker's connections in ``shared`` (called by ``runner.workers``)."""
        self.shared, self.worker_index = shared, worker
        local = self.sources
        self.sources = SharedSources(
            shared, worker, local.per_source_max_startups, local.netblock, local.penalties
        )

    def _admission(self) -> Any:
        """The server-wide lock with workers (check and count at once), else nothing."""
        return self.shared.locked() if self.shared is not None else contextlib.nullcontext()

    def _totals(self) -> tuple[int, int]:
        """Open and unauthenticated connections of the whole server."""
        if self.shared is not None:
            return self.shared.totals()
        return self.open, self.unauthenticated

    def _count(self, opened: int = 0, unauthenticated: int = 0) -> None:
        self.open += opened
        self.unauthenticated += unauthenticated
        if self.shared is not None:
            with self.shared.locked():
                self.shared.add(self.worker_index, opened, unauthenticated)

    def _handle(self, sock: Any, address: tuple[Any, ...]) -> None:
        if self._stopping:
            sock.close()
            return
        with self._admission():
            opened = self._totals()[0]
            admitted = self.max_connections is None or opened < self.max_connections
            if admitted:
                self._count(opened=1)
        if not admitted:
            self._refuse_full(sock, address, opened)
            return
        try:
            self._handle_admitted(sock, address)
        finally:
            self._count(opened=-1)

    def _refuse_full(self, sock: Any, address: tuple[Any, ...], opened: int) -> None:
        """Past ``max_connections``: say so in one line and close (never queue)."""
        self.full += 1
        self.observer.refused(address, "max_connections")
        log.warning("drop connection from %s: past max_connections (%d open)",
                    _show(address), opened)  # fmt: skip
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            sock.send(FULL_LINE)
        sock.close()

    def _handle_admitted(self, sock: Any, address: tuple[Any, ...]) -> None:
        conn = _Connection(address)
        conn.proxied = self.proxy_protocol and _within(address, self.proxy_from)
        if not conn.proxied and not self._start(conn):  # a relayed one: once its header is read
            sock.close()
            return
        self.connections.add(conn)
        try:
            self._serve(conn, sock)
        except proxyproto.ProxyProtocolError as exc:
            conn.log.warning("closing: bad PROXY protocol header: %s", printable(exc))
        except Exception:
            conn.log.error("connection failed", exc_info=True)
        finally:
            if conn.counted and not conn.authenticated:
                self._count(unauthenticated=-1)
            self._settle(conn)
            self.connections.discard(conn)
            if conn.dispatcher is not None:
                conn.dispatcher.kill_sessions(grace=1.0)
            if conn.transport is not None:
                conn.transport.close()
            sock.close()

    def _serve(self, conn: _Connection, sock: Any) -> None:
        proxied = False
        if conn.proxied:  # a trusted balancer: its header must come first
            timeout = min(self.proxy_protocol_timeout, self.login_grace_time)
            try:
                header = read_proxy_header(sock, timeout)
            except HeaderlessClose:
                conn.log.debug("closed before a PROXY header: a TCP health check")
                return
            conn.own = _balancer_own(header, conn.peer, sock)
            if not conn.own and header.source is not None:  # (without one, it is own)
                conn.peer, proxied = header.source, True
                conn.log = PrefixedLog(log, _show(conn.peer))
                if not self._start(conn):
                    return
        transport = self._make_transport(conn, sock, proxied)
        conn.log = PrefixedLog(log, f"conn={transport._conn_id} {_show(conn.peer)}")
        factory: Callable[..., Any] = self.interface
        interface = factory(transport) if self._pass_transport else factory()
        conn.dispatcher = SessionDispatcher(interface, self.handlers, conn.log)
        level = logging.DEBUG if conn.own else logging.INFO  # health checks: not news
        conn.log.log(level, "connection from %s", _show(conn.peer))
        if self._stopping:
            return
        transport.start_server(event=Event(), server=conn.dispatcher)  # type: ignore[arg-type]
        transport.join()
        if conn.log.isEnabledFor(level):
            conn.log.log(level, "connection closed: %s", transport.summary_text())

    # -- per-source limits ------------------------------------------------------------
    def _start(self, conn: _Connection) -> bool:
        """MaxStartups, then the per-source limits; if admitted, counted as unauthenticated."""
        with self._admission():  # with workers: no other worker admits in between
            return self._start_locked(conn)

    def _start_locked(self, conn: _Connection) -> bool:
        if self._past_max_startups():
            self.dropped += 1
            self.observer.refused(conn.peer, "max_startups")
            log.warning(
                "drop connection from %s: past MaxStartups (%d unauthenticated)",
                _show(conn.peer),
                self._totals()[1],
            )
            return False
        if not self._admit(conn):
            return False
        conn.counted = True
        self._count(unauthenticated=1)
        return True

    def _admit(self, conn: _Connection) -> bool:
        """Apply PerSourceMaxStartups and penalties; count the connection if admitted."""
        host = str(conn.peer[0])
        refusal = self.sources.refusal(host, self.clock())
        if refusal is not None:
            self.refused += 1
            penalty = refusal.startswith("penalty")
            self.observer.refused(conn.peer, "penalty" if penalty else "per_source")
            level = logging.DEBUG if penalty else logging.WARNING
            log.log(level, "drop connection from %s: %s", _show(conn.peer), refusal)
            return False
        if self.sources.started(host, self.clock()):  # (False: a full shared table)
            conn.source = host
        return True

    def _uncount(self, conn: _Connection) -> None:
        if conn.source is not None:
            self.sources.finished(conn.source)
            conn.source = None

    def _settle(self, conn: _Connection) -> None:
        """At the end of a connection: uncount it, and penalise its source if it went badly."""
        self._uncount(conn)
        transport = conn.transport
        if transport is not None and transport.observer is not None:
            transport.observer.closed(transport)
        if transport is None or self._stopping or conn.own:  # never penalise the balancer
            return
        outcome = transport.outcome()
        if outcome == "authenticated":
            return
        host = str(conn.peer[0])
        if self.sources.penalise(host, outcome, self.clock()):
            seconds = self.sources.seconds_left(host, self.clock())
            conn.log.info(
                "penalty: %s refused for %.0f s (%s; PerSourcePenalties)",
                self.sources.block(host), seconds, outcome,
            )  # fmt: skip

    def _make_transport(self, conn: _Connection, sock: Any, proxied: bool) -> Transport:
        transport = Transport(sock)
        if proxied:
            transport.peer_address = conn.peer
            transport.set_log_channel(transport.get_log_channel())  # refresh the log prefix
        for key in self.host_keys:
            transport.add_server_key(key)
        transport.disabled_algorithms = dict(self.disabled_algorithms)
        for name, value in self.transport_limits.items():
            setattr(transport, name, value)
        transport.log_summary = False  # the server logs the closing line
        for name, (cls, args) in self.subsystem_classes.items():
            transport.set_subsystem_handler(name, cls, *args)

        def authenticated(t: Transport) -> None:
            if not conn.authenticated:
                conn.authenticated = True
                if conn.counted:
                    self._count(unauthenticated=-1)
                self._uncount(conn)
                conn.log.info("authenticated as %r", t.get_username())

        transport.on_authenticated = authenticated
        if not conn.own:  # a balancer's health check is no client's connection
            transport.observer = self.observer
            self.observer.opened(transport)
        if self.configure is not None:
            self.configure(transport)
        conn.transport = transport
        return transport

    def statistics(self) -> dict[str, int]:
        """Counters: open and unauthenticated connections, refusals, penalised sources.

        With workers, ``server_open`` and ``server_unauthenticated`` are the
        totals of all workers; the rest are this process's.
        """
        server_open, server_unauthenticated = self._totals()
        return {
            "connections": len(self.connections),
            "unauthenticated": self.unauthenticated,
            "server_open": server_open,
            "server_unauthenticated": server_unauthenticated,
            "dropped": self.dropped,
            "refused": self.refused,
            "full": self.full,
            "penalised": len(self.sources.penalised(self.clock())),
        }


def _transport_limits(limits: Mapping[str, Any] | None, **named: Any) -> dict[str, Any]:
    """The Transport attributes to set on every connection (names checked)."""
    merged = {**named, **(limits or {})}
    unknown = sorted(set(merged) - TRANSPORT_LIMITS)
    if unknown:
        raise ValueError(f"unknown transport limit(s) {', '.join(unknown)}")
    return merged


def _disabled(
    disabled: Mapping[str, Sequence[str]] | None, host_keys: Sequence[PKey]
) -> dict[str, tuple[str, ...]]:
    """``disabled_algorithms`` for every Transport; checks a host key stays usable."""
    result = {k: tuple(v) for k, v in (HARDENED_DISABLED_ALGORITHMS if disabled is None
                                         else disabled).items()}  # fmt: skip
    names = {key.get_name() for key in host_keys}
    if not names - set(result.get("keys", ())):
        raise ValueError(
            f"no usable host key: {', '.join(sorted(names))} signatures are disabled "
            "(ssh-audit fails NIST curves); add an Ed25519 or RSA host key, or pass "
            "disabled_algorithms={} to offer them"
        )
    return result


def _split_subsystems(
    subsystems: Mapping[str, Any],
) -> tuple[dict[str, SessionHandler], dict[str, tuple[Any, tuple[Any, ...]]]]:
    """Blocking handlers vs paramiko-style ``SubsystemHandler`` classes (with args)."""
    blocking: dict[str, SessionHandler] = {}
    classic: dict[str, tuple[Any, tuple[Any, ...]]] = {}
    for name, spec in subsystems.items():
        cls, args = (spec[0], tuple(spec[1:])) if isinstance(spec, tuple) else (spec, ())
        if isinstance(cls, type) and issubclass(cls, SubsystemHandler):
            classic[name] = (cls, args)
        elif callable(spec):
            blocking[name] = spec
        else:
            raise TypeError(f"subsystem {name!r}: expected a handler or a SubsystemHandler class")
    return blocking, classic


class HeaderlessClose(proxyproto.ProxyProtocolError):
    """The peer closed (or reset) without sending a byte: a balancer's plain TCP check."""


def _balancer_own(header: proxyproto.ProxyHeader, peer: Any, sock: Any) -> bool:
    """Does ``header`` speak for the balancer itself (a health check), not for a client?

    v2 LOCAL and v1 UNKNOWN carry no address; HAProxy's v1 checks name the
    check connection's own two ends, which no relayed client can have.
    """
    if header.source is None:
        return True
    try:
        local = sock.getsockname()
    except OSError:
        return False
    ends = (_endpoint(header.source), _endpoint(header.destination))
    return None not in ends and ends == (_endpoint(peer), _endpoint(local))


def _endpoint(address: Any) -> tuple[Any, int] | None:
    """(IP address, port) of a socket address, IPv4-mapped IPv6 as IPv4; None if not IP."""
    try:
        ip: Any = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
        port = int(address[1])
    except (ValueError, IndexError, TypeError):
        return None
    return (getattr(ip, "ipv4_mapped", None) or ip), port


def read_proxy_header(sock: Any, timeout: float) -> proxyproto.ProxyHeader:
    """Read exactly one PROXY header off ``sock`` (peeking, so no SSH byte is lost)."""
    buf = b""
    error = proxyproto.ProxyProtocolError(f"no complete header within {timeout:g} s")
    with gevent.Timeout(timeout, error):
        while True:
            try:
                peeked = sock.recv(proxyproto.MAX_HEADER_LENGTH - len(buf), socket.MSG_PEEK)
            except OSError:  # reset
                peeked = b""
            if not peeked and not buf:
                raise HeaderlessClose("connection closed before the header")
            if not peeked:
                raise proxyproto.ProxyProtocolError("connection closed inside the header")
            header = proxyproto.parse(buf + peeked)
            take = len(peeked) if header is None else header.length - len(buf)
            while take > 0:  # these bytes are already buffered: recv does not wait
                chunk = sock.recv(take)
                if not chunk:
                    raise proxyproto.ProxyProtocolError("connection closed inside the header")
                buf += chunk
                take -= len(chunk)
            if header is not None:
                return header
