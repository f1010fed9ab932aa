"""``Transport``: paramiko's server-side Transport API over one greenlet per connection.

The connection greenlet (``start_server``) runs ``SocketPump``: it feeds
the pure protocol core and dispatches its events here, calling the
``ServerInterface`` synchronously where paramiko's transport thread does.
Application greenlets use ``accept()``, ``open_channel()`` and the
``Channel`` objects. Nothing polls: every wait is a gevent primitive.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket as stdlib_socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gevent
import gevent.pool
import gevent.socket
from gevent.event import Event

from geossh._facade import settings, summary
from geossh._facade.authentication import AuthBridge
from geossh._facade.callbacks import (
    call,
)
from geossh._facade.channel import Channel
from geossh._facade.common import (
    CONNECTION_FAILED_CODE,
    DEFAULT_MAX_PACKET_SIZE,
    DEFAULT_WINDOW_SIZE,
)
from geossh._facade.dispatch import EventDispatcher, ReplyWaiter
from geossh._facade.message import Message
from geossh._facade.packetizer import Packetizer
from geossh._facade.pkey import PKey
from geossh._facade.port import ConnectionPort
from geossh._facade.security import SecurityOptions
from geossh._facade.server import ServerInterface
from geossh._facade.settings import Preferred
from geossh._facade.util import ClosingContextManager
from geossh._green.pump import ConnectionEnded, SocketPump
from geossh._version import __version__
from geossh.errors import ChannelException, RemoteProtocolError, SSHException
from geossh.logtext import PrefixedLog, printable
from geossh.proto import wire
from geossh.proto.config import ServerConfig
from geossh.proto.connection import Connection
from geossh.proto.constants import DisconnectReason
from geossh.proto.kex import load_moduli
from geossh.proto.window import SEND_AHEAD_LIMIT

_conn_ids = itertools.count(1)
_MODULI_PATHS = ("/etc/ssh/moduli", "/usr/local/etc/moduli")


def _cooperative(sock: Any) -> tuple[Any, Any]:
    """A gevent-cooperative socket for ``sock`` (and the original to close too)."""
    if isinstance(sock, (tuple, str)):
        raise SSHException("geossh's Transport is server-side: pass an accepted socket")
    if isinstance(sock, gevent.socket.socket):
        green, original = sock, None
    elif isinstance(sock, stdlib_socket.socket):
        green = gevent.socket.socket(
            sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno())
        )
        original = sock
    else:
        return sock, None  # a socket-like object: used as it is
    green.settimeout(None)
    if green.family in (stdlib_socket.AF_INET, stdlib_socket.AF_INET6):
        with contextlib.suppress(OSError):
            green.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)
    return green, original


class _InEffect:
    """A read-only view of one algorithm the current keys use (``before`` until then)."""

    def __init__(self, field: str, before: str | None, doc: str) -> None:
        self.field, self.before, self.__doc__ = field, before, doc

    def __get__(self, transport: Any, owner: type | None = None) -> Any:
        if transport is None:
            return self
        core = transport._conn
        agreed = core.transport.in_effect if core is not None else None
        return getattr(agreed, self.field) if agreed is not None else self.before


class Transport(ClosingContextManager):
    """One SSH connection, server side (paramiko.Transport).

    Composed of the core's ``Connection``, the ``SocketPump`` that drives
    it, the ``EventDispatcher`` that answers its events and the
    ``ConnectionPort`` its channels talk to; ``settings.server_config``
    turns the attributes below into the core's configuration.
    """

    # Slots, not a dict: an idle connection's 60-entry instance dict cost 1.6 KB.
    # ``ClosingContextManager`` has no slots, so an instance ``__dict__``
    # (created on first use) keeps every other attribute settable: instance
    # overrides of the class-level limits, attributes of subclasses and
    # applications.
    __slots__ = (
        "_accept_event",
        "_auth",
        "_channel_port",
        "_channels",
        "_close_callbacks",
        "_conn",
        "_conn_id",
        "_dispatcher",
        "_global_replies",
        "_greenlet",
        "_handler_greenlets",
        "_hexdump",
        "_keepalive",
        "_kex_event",
        "_linger",
        "_log_name",
        "_name",
        "_no_more_sessions",
        "_original_sock",
        "_pump",
        "_started_at",
        "active",
        "advertise_strict_kex",
        "auth_method",
        "auth_timeout",
        "banner_timeout",
        "channel_timeout",
        "clear_to_send_timeout",
        "close_reason",
        "completion_event",
        "crashed",
        "daemon",
        "default_max_packet_size",
        "default_window_size",
        "disabled_algorithms",
        "handshake_timeout",
        "hostname",
        "local_version",
        "logger",
        "max_auth_tries",
        "max_channels",
        "observer",
        "on_authenticated",
        "peer_address",
        "rekey_bytes",
        "rekey_seconds",
        "saved_exception",
        "server_accepts",
        "server_key_dict",
        "server_mode",
        "server_object",
        "server_sig_algs",
        "sock",
        "subsystem_table",
    )

    _PROTO_ID = "2.0"
    _CLIENT_ID = f"geossh_{__version__}"

    # paramiko's class-level algorithm tables: subclass Transport or assign to change them.
    _preferred_kex = settings.PREFERRED_KEX
    _preferred_keys = settings.PREFERRED_KEYS
    _preferred_pubkeys = settings.PREFERRED_PUBKEYS
    _preferred_ciphers = settings.PREFERRED_CIPHERS
    _preferred_macs = settings.PREFERRED_MACS
    _preferred_compression = settings.PREFERRED_COMPRESSION
    _cipher_info = settings.CIPHER_INFO
    _mac_info = settings.MAC_INFO
    _key_info = settings.KEY_INFO
    _kex_info = settings.KEX_INFO
    _compression_info = settings.COMPRESSION_INFO
    _modulus_pack: list[tuple[int, int]] | None = None
    preferred_kex = Preferred("kex", "Kex algorithms offered (after ``disabled_algorithms``).")
    preferred_keys = Preferred("keys", "Host-key algorithms offered.")
    preferred_pubkeys = Preferred("pubkeys", "Public-key algorithms accepted for user auth.")
    preferred_ciphers = Preferred("ciphers", "Ciphers offered.")
    preferred_macs = Preferred("macs", "MACs offered.")
    preferred_compression = Preferred("compression", "Compression offered (never plain zlib).")

    # Limits: instance assignments override these (docs/limits.md). Defaults are
    # the core's: ServerConfig's field defaults, the one place the numbers are written.
    max_packet_size: int = ServerConfig.max_packet_size
    max_version_line: int = ServerConfig.max_version_line
    max_pre_version_lines: int = ServerConfig.max_pre_version_lines
    max_pending_channels: int = 64  # = max_channels: lower it for apps that accept()
    max_pending_global_requests: int = ServerConfig.max_pending_global_requests
    # Liveness, read at start_server and checked by the core (proto/liveness.py).
    client_alive_interval: float = ServerConfig.client_alive_interval
    client_alive_count_max: int = ServerConfig.client_alive_count_max
    unused_connection_timeout: float = ServerConfig.unused_connection_timeout
    log_summary: bool = True  # geossh.Server logs its own line instead
    # Most bytes in flight per channel on a short path (proto/window.py); 0: the
    # peer's whole window, always. Read once the client authenticated.
    send_ahead_limit: int = SEND_AHEAD_LIMIT

    def __init__(
        self,
        sock: Any,
        default_window_size: int = DEFAULT_WINDOW_SIZE,
        default_max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        disabled_algorithms: Mapping[str, Iterable[str]] | None = None,
        server_sig_algs: bool = True,
        strict_kex: bool = True,
        packetizer_class: Any = None,
        gss_kex: bool = False,
        gss_deleg_creds: bool = True,
    ) -> None:
        """Wrap an accepted socket (paramiko 5.1's parameter order).

        ``gss_kex``/``gss_deleg_creds`` are accepted, and ignored, so paramiko
        4.x code still starts; ``packetizer_class`` is ignored.
        """
        self.sock, self._original_sock = _cooperative(sock)
        self.default_window_size = default_window_size
        self.default_max_packet_size = default_max_packet_size
        self.disabled_algorithms = {k: tuple(v) for k, v in (disabled_algorithms or {}).items()}
        self.server_sig_algs = server_sig_algs
        self.advertise_strict_kex = strict_kex
        # Interned: one string for every connection, not a copy each.
        self.local_version = sys.intern(f"SSH-{self._PROTO_ID}-{self._CLIENT_ID}")
        self.banner_timeout = ServerConfig.banner_timeout
        self.handshake_timeout = ServerConfig.handshake_timeout
        self.auth_timeout = ServerConfig.auth_timeout  # login grace time (server side)
        self.max_auth_tries = ServerConfig.max_auth_tries
        self.max_channels = ServerConfig.max_channels
        self.channel_timeout = 3600.0  # open_channel's wait for the client's answer
        self.clear_to_send_timeout = 30.0  # a send's wait for a key exchange to end
        self.rekey_bytes = ServerConfig.rekey_bytes
        self.rekey_seconds: float | None = ServerConfig.rekey_seconds
        self.server_mode = False
        self.server_object: ServerInterface | None = None
        self.server_key_dict: dict[str, PKey] = {}
        self.server_accepts: list[Channel] = []
        self.subsystem_table: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]] = {}
        self.active = False
        self.hostname = None
        self.completion_event: Any = None
        self.saved_exception: BaseException | None = None
        self._name: str | None = None  # see ``name``
        self.daemon = True
        self._conn_id = next(_conn_ids)
        self._log_name = "geossh.transport"
        self._hexdump = False
        self._keepalive = 0.0  # set_keepalive before start_server: applied then
        self._started_at = time.monotonic()
        self.auth_method: str | None = None
        self.close_reason = ""
        self.crashed = False
        self._channels: dict[int, Channel] = {}
        # Created by the first greenlet that waits for them (most never do).
        self._accept_event: Event | None = None
        # Lives from the client's service request until authentication succeeded.
        self._auth: AuthBridge | None = None
        self._kex_event: Event | None = None
        self._global_replies: list[ReplyWaiter] | None = None  # oldest first
        self._greenlet: gevent.Greenlet[..., Any] | None = None
        self._conn: Connection = None  # type: ignore[assignment]
        self._pump: SocketPump | None = None
        self._dispatcher: EventDispatcher | None = None  # core events → callbacks, channels
        self._channel_port: ConnectionPort | None = None  # what every Channel talks to
        self._linger = False  # drain input before closing (after our DISCONNECT)
        self._no_more_sessions = False
        # A list once one is added; None once the connection ended.
        self._close_callbacks: list[Callable[[], Any]] | tuple[()] | None = ()
        # Channel handlers (geossh.forward): a gevent.pool.Group once one is started.
        self._handler_greenlets: Any = ()
        # geossh.Server hooks: the client address from a PROXY protocol header
        # (reported by getpeername) and a callback run once authentication succeeds.
        self.peer_address: Any = None
        self.on_authenticated: Any = None
        self.observer: Any = None  # a geossh.observer.Observer
        self.logger = PrefixedLog(logging.getLogger(self._log_name), self._prefix())

    # -- the core's state, read through (never a copy that could disagree) --------
    @property
    def authenticated(self) -> bool:
        """True once the client authenticated."""
        return self._conn is not None and self._conn.auth.authenticated

    @property
    def initial_kex_done(self) -> bool:
        """True once the first key exchange completed."""
        return self._conn is not None and self._conn.transport.initial_kex_done

    @property
    def session_id(self) -> bytes | None:
        """The exchange hash of the first key exchange (None before it)."""
        return self._conn.transport.session_id if self._conn is not None else None

    @property
    def remote_version(self) -> str:
        """The client's identification line ("" before it arrived)."""
        core = self._conn
        return (core.transport.client_version or "") if core is not None else ""

    @property
    def agreed_on_strict_kex(self) -> bool:
        """True if both sides agreed on strict key exchange (the Terrapin fix)."""
        return self._conn is not None and self._conn.transport.strict_kex

    host_key_type = _InEffect("host_key", None, "The host-key algorithm (None before kex).")
    local_cipher = _InEffect("cipher_s2c", "", "The cipher we send with.")
    remote_cipher = _InEffect("cipher_c2s", "", "The cipher the client sends with.")
    local_mac = _InEffect("mac_s2c", "", "The MAC we send with.")
    remote_mac = _InEffect("mac_c2s", "", "The MAC the client sends with.")
    local_compression = _InEffect("compression_s2c", "none", "Compression we send with.")
    remote_compression = _InEffect("compression_c2s", "none", "Compression the client uses.")

    # -- identity and logging -------------------------------------------------
    @property
    def name(self) -> str:
        """The Thread API's name (``geossh.Transport-<id>`` unless set)."""
        return self._name if self._name is not None else f"geossh.Transport-{id(self):x}"

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def _prefix(self) -> str:
        peer = self.getpeername()  # a PROXY header may have chosen it: escaped
        if isinstance(peer, tuple) and len(peer) >= 2:
            return f"conn={self._conn_id} {printable(peer[0], 128)}:{printable(peer[1], 16)}"
        return f"conn={self._conn_id} {printable(peer or 'unix', 128)}"  # AF_UNIX: '' or a path

    def __repr__(self) -> str:
        out = f"<geossh.Transport at {id(self):#x}"
        if not self.active:
            out += " (unconnected)"
        elif self.local_cipher:
            out += f" (cipher {self.local_cipher})"
            if self.authenticated:
                out += f" (active; {len(self._channels)} open channel(s))"
            else:
                out += " (connected; awaiting auth)"
        else:
            out += " (connecting)"
        return out + ">"

    def set_log_channel(self, name: str) -> None:
        """Log under ``name`` instead of ``geossh.transport``."""
        self._log_name = name
        self.logger = PrefixedLog(logging.getLogger(name), self._prefix())

    def get_log_channel(self) -> str:
        """The logger name this transport uses."""
        return self._log_name

    def set_hexdump(self, hexdump: bool) -> None:
        """Record whether packet dumps are wanted (dumps go to TRACE logging)."""
        self._hexdump = bool(hexdump)

    def get_hexdump(self) -> bool:
        """Whether packet dumps were asked for."""
        return self._hexdump

    def getpeername(self) -> Any:
        """The peer's address (``peer_address`` if set), or ``("unknown", 0)``."""
        if self.peer_address is not None:
            return self.peer_address
        getter = getattr(self.sock, "getpeername", None)
        if getter is None:
            return ("unknown", 0)
        try:
            return getter()
        except OSError:
            return ("unknown", 0)

    # -- settings (before start_server; settings.server_config reads them) -----------
    @property
    def packetizer(self) -> Packetizer:
        """paramiko's ``REKEY_BYTES`` / ``REKEY_PACKETS`` knobs, settable after start too."""
        view: Packetizer | None = self.__dict__.get("_packetizer_view")
        if view is None:
            view = self.__dict__["_packetizer_view"] = Packetizer(self)
        return view

    def get_security_options(self) -> SecurityOptions:
        """A view whose lists can be changed before ``start_server``."""
        return SecurityOptions(self)

    def use_compression(self, compress: bool = True) -> None:
        """Offer zlib@openssh.com compression (only before ``start_server``)."""
        self._preferred_compression = settings.WITH_COMPRESSION if compress else ("none",)

    def set_gss_host(
        self, gss_host: Any, trust_dns: bool = True, gssapi_requested: bool = True
    ) -> None:
        """Accepted for paramiko 4.x code; geossh has no GSSAPI."""

    def add_server_key(self, key: PKey) -> None:
        """Add a host key (one per type; a later one replaces an earlier)."""
        if not isinstance(key, PKey):  # say, a key loaded with paramiko
            kind = f"{type(key).__module__}.{type(key).__qualname__}"
            raise TypeError(f"host key must be a geossh key, not {kind}: load it with geossh")
        if not key.can_sign():
            raise SSHException("host key must include its private part")
        self.server_key_dict[key.get_name()] = key
        if key.get_name() == "ssh-rsa":
            self.server_key_dict["rsa-sha2-256"] = key
            self.server_key_dict["rsa-sha2-512"] = key

    def get_server_key(self) -> PKey | None:
        """The host key of the negotiated type (None before key exchange)."""
        if self.host_key_type is None:
            return None
        return self.server_key_dict.get(self.host_key_type)

    def set_subsystem_handler(self, name: str, handler: Any, *args: Any, **kwargs: Any) -> None:
        """Register ``handler(channel, name, server, *args, **kwargs)`` for a subsystem."""
        self.subsystem_table[name] = (handler, args, kwargs)

    def _get_subsystem_handler(self, name: str) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        return self.subsystem_table.get(name, (None, (), {}))

    def set_keepalive(self, interval: float) -> None:
        """Send a keepalive global request every ``interval`` s (0: off; paramiko API).

        No reply is asked for; for a dead-peer check use ``client_alive_interval``.
        """
        self._keepalive = float(interval)
        if self._conn is not None:
            self._conn.set_keepalive(self._keepalive, time.monotonic())

    def _server_config(self) -> ServerConfig:
        """The core's configuration these settings give (validated; shared when alike)."""
        return settings.server_config(self)

    # -- the closing summary (geossh.Server's log line and penalties) ----------------
    def outcome(self) -> str:
        """How the connection went: see ``geossh._facade.summary.outcome``."""
        return summary.outcome(self)

    def summary(self) -> dict[str, Any]:
        """Facts about the connection for the closing log line (and for ``Server``)."""
        return summary.summary(self)

    def summary_text(self) -> str:
        """The summary as one ``key=value`` line (values that come from the peer quoted)."""
        return summary.summary_text(self)

    @staticmethod
    def load_server_moduli(filename: str | None = None) -> bool:
        """Load primes for diffie-hellman-group-exchange (class-wide); True on success."""
        for path in ([filename] if filename else []) + list(_MODULI_PATHS):
            try:
                with open(path) as handle:
                    moduli = load_moduli(handle.read())
            except OSError:
                continue
            if moduli:
                Transport._modulus_pack = moduli
                return True
        return False

    # -- lifecycle ------------------------------------------------------------------
    def start_server(self, event: Any = None, server: ServerInterface | None = None) -> None:
        """Start serving; with ``event``, return at once and set it after the first kex.

        Without ``event``, block until the first key exchange completed (raising
        the reason if it failed). Authentication continues in the background.
        """
        if self._greenlet is not None:
            raise SSHException("Transport already started")
        self.server_mode = True
        self.server_object = server if server is not None else ServerInterface()
        attach = getattr(self.server_object, "attach_transport", None)
        if attach is not None:  # geossh extension (e.g. geossh.forward.ForwardingServer)
            attach(self)
        self.active = True
        self.completion_event = event
        now = time.monotonic()  # one float for every start time
        self._conn = Connection(self._server_config(), now)
        self._started_at = now
        if self._keepalive:
            self._conn.set_keepalive(self._keepalive, now)
        self._dispatcher = EventDispatcher(self)
        self._pump = SocketPump(self.sock, self._conn, self._dispatcher)
        self._channel_port = ConnectionPort(self, self._conn, self._pump)
        self._greenlet = gevent.spawn(self._run)
        if event is not None:
            return
        self._kex_waiter().wait()
        if not self.initial_kex_done:
            exc = self.get_exception()
            raise exc if exc is not None else SSHException("Negotiation failed.")

    def _run(self) -> None:
        assert self._pump is not None
        self.logger.debug("starting greenlet (server mode)")
        try:
            self._pump.run()
            if self._pump.write_error is not None:
                self.logger.debug("write failed: %s", self._pump.write_error)
                self._ended(f"write failed: {self._pump.write_error}")
        except RemoteProtocolError as exc:
            self.logger.warning("Disconnecting: %s (reason %d)", printable(exc), exc.code)
            self._ended(f"{exc} (reason {int(exc.code)})")
            self.saved_exception = exc
            self._conn.send_disconnect(exc.code, str(exc))
            self._final_flush(linger=True)
        except (ConnectionEnded, EOFError):
            self.logger.debug("EOF in transport greenlet")
            self._ended("client closed the TCP connection")
        except OSError as exc:
            self.logger.debug("Socket exception: %s", exc)
            self._ended(f"socket error: {exc}")
            self.saved_exception = exc
        except gevent.GreenletExit:
            self._ended("closed by application")
        except Exception as exc:
            self.logger.error("Unknown exception: %s", exc, exc_info=True)
            self.crashed = True
            self._ended("internal error")
            self.saved_exception = exc
            self._conn.send_disconnect(DisconnectReason.PROTOCOL_ERROR, "internal error")
            self._final_flush(linger=True)
        finally:
            self._shutdown()
            if self.log_summary and self.logger.isEnabledFor(logging.INFO):
                self.logger.info("Connection closed: %s", self.summary_text())

    def _auth_bridge(self) -> AuthBridge:
        """The authentication bridge, created when the client asks for the service."""
        if self._auth is None:
            assert self.server_object is not None
            self._auth = AuthBridge(self.server_object, self._conn.auth, self.logger)
            self._auth.transport = self
            peer = self.getpeername()
            self._auth.peer_address = str(peer[0] if isinstance(peer, tuple) else peer)
        return self._auth

    def _ended(self, reason: str) -> None:
        """Record why the connection ended (the first reason found wins)."""
        if not self.close_reason:
            self.close_reason = reason

    def _final_flush(self, linger: bool = False) -> None:
        """Write what is queued (the DISCONNECT); with ``linger``, also drain input.

        Closing a socket with unread input makes the kernel send RST, which can
        destroy the DISCONNECT before the peer reads it; lingering (bounded in
        time and bytes) lets it arrive. Only the connection greenlet may linger.
        """
        if self._pump is not None:
            with gevent.Timeout(5, False):
                self._pump.flush()
            self._linger = linger

    def _shutdown(self) -> None:
        self.active = False
        for chan in list(self._channels.values()):
            chan._mark_closed()
        self._channels.clear()
        self._wake_accept()
        self._wake_kex()
        for waiter in self._global_replies or ():
            waiter.set()
        sockets = [sock for sock in (self.sock, self._original_sock) if sock is not None]
        if self._linger and self._pump is not None:
            gevent.spawn(self._pump.linger, sockets)  # closes them when done
        else:
            for sock in sockets:
                with contextlib.suppress(Exception):  # socket-like objects may raise anything
                    sock.close()
        if self.completion_event is not None:
            self.completion_event.set()
        if self._handler_greenlets:
            self._handler_greenlets.kill(block=False)
        callbacks, self._close_callbacks = self._close_callbacks or (), None
        for fn in callbacks:
            call(self.logger, fn, None)

    def add_close_callback(self, fn: Callable[[], Any]) -> None:
        """Call ``fn()`` once when the connection ends (at once if it already has)."""
        if self._close_callbacks is None:
            call(self.logger, fn, None)
        elif isinstance(self._close_callbacks, list):
            self._close_callbacks.append(fn)
        else:
            self._close_callbacks = [fn]

    def close(self) -> None:
        """Send DISCONNECT (by application), close every channel and the socket."""
        if self._greenlet is None:
            self._shutdown()
            return
        if not self.active:
            return
        self._ended("closed by application")
        self._conn.send_disconnect(DisconnectReason.BY_APPLICATION, "closed by application")
        if gevent.getcurrent() is self._greenlet:
            return  # the loop sees the closed core and ends after this callback
        self._final_flush()
        self._greenlet.kill(block=True, timeout=5)

    def atfork(self) -> None:
        """After fork: drop the connection without speaking on it."""
        self._shutdown()

    def is_active(self) -> bool:
        """True until the connection ends."""
        return self.active

    def is_authenticated(self) -> bool:
        """True once the client authenticated (and the connection is up)."""
        return self.active and self.authenticated

    def get_username(self) -> str | None:
        """The user name of the first authentication request (paramiko semantics)."""
        if not self.active or self._conn is None:
            return None
        return self._conn.auth.username

    def get_exception(self) -> BaseException | None:
        """Return and clear the error that ended the connection."""
        exc, self.saved_exception = self.saved_exception, None
        return exc

    def get_banner(self) -> None:
        """Client-side only: a server receives no banner."""
        return None

    # -- Thread API -------------------------------------------------------------------
    def join(self, timeout: float | None = None) -> None:
        """Wait until the connection's greenlet ends.

        Called without a timeout right after ``start_server`` (before the
        connection greenlet first ran), the connection runs in the calling
        greenlet instead: one parked greenlet less per connection.
        """
        greenlet = self._greenlet
        if greenlet is None:
            return
        current = gevent.getcurrent()
        if (
            timeout is None
            and greenlet.gr_frame is None  # not started yet
            and not greenlet.dead
            and isinstance(current, gevent.Greenlet)
            and current is not greenlet
        ):
            greenlet.kill(block=False)  # cancelled before it ever ran
            del greenlet  # this frame lives as long as the connection
            self._greenlet = current
            self._run()
            return
        greenlet.join(timeout)

    def is_alive(self) -> bool:
        """True while the connection's greenlet runs."""
        return self._greenlet is not None and not self._greenlet.dead

    isAlive = is_alive

    @property
    def ident(self) -> int | None:
        """An identifier of the connection greenlet (Thread API)."""
        return id(self._greenlet) if self._greenlet is not None else None

    # -- waiters, created by the greenlets that wait ---------------------------------
    def _kex_waiter(self) -> Event:
        """The event the next completed key exchange sets (cleared now)."""
        if self._kex_event is None:
            self._kex_event = Event()
        else:
            self._kex_event.clear()
        return self._kex_event

    def _wake_kex(self) -> None:
        if self._kex_event is not None:
            self._kex_event.set()

    def _wake_accept(self) -> None:
        if self._accept_event is not None:
            self._accept_event.set()

    def _expect_global_reply(self, waiter: ReplyWaiter) -> None:
        """Queue ``waiter`` for the reply to the global request about to be sent."""
        if self._global_replies is None:
            self._global_replies = []
        self._global_replies.append(waiter)

    def _observe_open(self, chan: Channel, target: Any = None) -> None:
        """Report an open channel to the observer (which then hears of its close)."""
        if self.observer is not None:
            chan._observed = True
            self.observer.channel_opened(self, chan, target)

    # -- I/O helpers -------------------------------------------------------------------
    def _flush(self) -> None:
        if self._pump is not None:
            self._pump.flush()

    # -- application calls ------------------------------------------------------------
    def accept(self, timeout: float | None = None) -> Channel | None:
        """The oldest channel the client opened; waits once, None on timeout or close."""
        if not self.server_accepts and self.active:
            if self._accept_event is None:
                self._accept_event = Event()
            self._accept_event.clear()
            self._accept_event.wait(timeout)
        if self.server_accepts:
            return self.server_accepts.pop(0)
        return None

    def open_channel(
        self,
        kind: str,
        dest_addr: tuple[str, int] | str | None = None,
        src_addr: tuple[str, int] | None = None,
        window_size: int | None = None,
        max_packet_size: int | None = None,
        timeout: float | None = None,
    ) -> Channel:
        """Open a channel to the client and wait for its answer."""
        if not self.active or self._conn is None:
            raise SSHException("SSH session not active")
        data = b""
        if kind in ("forwarded-tcpip", "direct-tcpip"):
            assert isinstance(dest_addr, tuple) and src_addr is not None
            data = wire.string(dest_addr[0]) + wire.u32(dest_addr[1])
            data += wire.string(src_addr[0]) + wire.u32(src_addr[1])
        elif kind == "x11":
            assert src_addr is not None
            data = wire.string(src_addr[0]) + wire.u32(src_addr[1])
        elif kind == "forwarded-streamlocal@openssh.com":  # OpenSSH PROTOCOL §2.4
            assert dest_addr is not None
            path = dest_addr if isinstance(dest_addr, str) else dest_addr[0]
            data = wire.string(path) + wire.string(b"")
        window = max(32768, min(window_size or self.default_window_size, 0xFFFFFFFF))
        packet = max(4096, min(max_packet_size or self.default_max_packet_size, 0xFFFFFFFF))
        chanid = self._conn.channels.open_channel(kind, data, window, packet)
        chan = Channel(chanid, self._channel_port)
        chan.transport = self
        chan.kind = kind
        self._channels[chanid] = chan
        self._flush()
        chan.event.wait(self.channel_timeout if timeout is None else timeout)
        if chan._open_error is not None:
            code, _ = chan._open_error
            raise ChannelException(code, CONNECTION_FAILED_CODE.get(code, "Unknown error"))
        if not chan.active:
            self._channels.pop(chanid, None)
            if not self.active:
                raise SSHException("Unable to open channel.")
            raise SSHException("Timeout opening channel.")
        self._observe_open(chan, src_addr if kind == "x11" else dest_addr)
        return chan

    def open_session(
        self,
        window_size: int | None = None,
        max_packet_size: int | None = None,
        timeout: float | None = None,
    ) -> Channel:
        """Open a session channel to the peer."""
        return self.open_channel("session", None, None, window_size, max_packet_size, timeout)

    def open_forwarded_tcpip_channel(
        self, src_addr: tuple[str, int], dest_addr: tuple[str, int]
    ) -> Channel:
        """Open ``forwarded-tcpip`` for a connection to a remote-forwarded port."""
        return self.open_channel("forwarded-tcpip", dest_addr, src_addr)

    def open_x11_channel(self, src_addr: tuple[str, int] | None = None) -> Channel:
        """Open an ``x11`` channel to the client."""
        return self.open_channel("x11", src_addr=src_addr or ("127.0.0.1", 0))

    def open_forward_agent_channel(self) -> Channel:
        """Open ``auth-agent@openssh.com`` to reach the client's agent."""
        return self.open_channel("auth-agent@openssh.com")

    def global_request(
        self, kind: str, data: Iterable[Any] | None = None, wait: bool = True
    ) -> Message | None:
        """Send a global request; with ``wait``, return the reply Message or None."""
        if not self.active:
            return None
        body = Message().add(*data).asbytes() if data else b""
        waiter = ReplyWaiter() if wait else None
        if waiter is not None:
            self._expect_global_reply(waiter)
        self._conn.channels.send_global_request(kind, wait, body)
        self._flush()
        if waiter is None:
            return None
        waiter.wait()
        reply = waiter.reply
        if reply is None or not reply.success:
            return None
        return Message(reply.data)

    def send_ignore(self, byte_count: int | None = None) -> None:
        """Send SSH_MSG_IGNORE with random bytes (10-41 by default)."""
        if not self.active:
            return
        count = byte_count if byte_count is not None else 10 + os.urandom(1)[0] % 32
        self._conn.transport.send_ignore(os.urandom(count))
        self._flush()

    def renegotiate_keys(self) -> None:
        """Start a key re-exchange and wait for it to finish."""
        if not self.active:
            raise SSHException("SSH session not active")
        event = self._kex_waiter()
        self._conn.transport.start_rekey()
        self._flush()
        event.wait(self.clear_to_send_timeout)
        if not self.active:
            raise SSHException("Negotiation failed.")

    def run(self) -> None:
        """Thread API: the body of the connection greenlet."""
        self._run()

    def stop_thread(self) -> None:
        """Stop the connection greenlet (used by ``close``)."""
        self.close()
