"""Ready-made port forwarding: a policy, a two-way pump and a ServerInterface mixin.

Owns local forwarding (``direct-tcpip``, ``direct-streamlocal@openssh.com``:
``ssh -L``, ``-D``, ``-W``, ``-J``), remote forwarding (``tcpip-forward``,
``streamlocal-forward@openssh.com``: ``ssh -R``), the bookkeeping of X11 and
agent-forwarding requests, and ``pump(channel, sock)``. It reaches the
connection only through the Transport's public calls (``open_channel``,
``add_close_callback``) and its channel-handler hook
(``get_channel_handler``); it must not import the protocol core.

Theory of operation
-------------------
``ForwardingServer`` answers paramiko's callbacks from a ``ForwardingPolicy``.
An accepted ``direct-tcpip`` open gets a ``DirectTCPIPHandler``: the
Transport runs its ``prepare`` in a new greenlet *before* confirming the
channel, so a refused, unresolvable or silent destination becomes
OPEN_FAILURE(CONNECT_FAILED) within ``connect_timeout``, as with sshd; then
``run`` pumps. A ``tcpip-forward`` binds a listener whose accept loop opens a
``forwarded-tcpip`` channel per connection (RFC 4254 §7.2) and pumps.

Every listener and greenlet belongs to the connection's ``ForwardSession``;
the Transport's close callback closes the listeners and kills the greenlets,
and each pump closes its socket on the way out. Memory per forward is
bounded: a pump holds at most ``bufsize`` bytes in flight per direction,
and a peer that stops reading stops it (SSH window or TCP backpressure).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import ipaddress
import logging
import os
import re
import socket
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import gevent
import gevent.pool
import gevent.socket

from geossh._facade.common import (
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_FAILED_CONNECT_FAILED,
    OPEN_FAILED_RESOURCE_SHORTAGE,
    OPEN_SUCCEEDED,
)
from geossh._facade.server import ServerInterface
from geossh.errors import SSHException
from geossh.logtext import PrefixedLog, printable
from geossh.services.x11 import REGISTRY, X11Display, X11Request, check_request, find_xauth

if TYPE_CHECKING:
    from geossh._facade.channel import Channel
    from geossh._facade.transport import Transport

BUFSIZE = 256 * 1024
DIRECT_TCPIP = "direct-tcpip"
DIRECT_STREAMLOCAL = "direct-streamlocal@openssh.com"
FORWARDED_TCPIP = "forwarded-tcpip"
FORWARDED_STREAMLOCAL = "forwarded-streamlocal@openssh.com"

Target = tuple[str, int] | str  # (host, port) or a Unix socket path
Address = tuple[int, Any]  # (address family, sockaddr) as getaddrinfo gives them
Resolver = Callable[[str, int], Sequence[Address]]
_logger = logging.getLogger("geossh.forward")


# -- the pump -------------------------------------------------------------------


def pump(channel: Channel, sock: Any, bufsize: int = BUFSIZE) -> tuple[int, int]:
    """Copy between ``channel`` and ``sock`` both ways until both end; close both.

    Half-close is passed on: socket EOF → ``channel.shutdown_write()``,
    channel EOF → ``sock.shutdown(SHUT_WR)``. If the channel closes (the
    peer's CLOSE or the connection's end) the socket is closed at once.
    Returns ``(bytes channel→socket, bytes socket→channel)``.
    """
    counts = [0, 0]
    down = gevent.spawn(_channel_to_socket, channel, sock, bufsize, counts)
    up = gevent.spawn(_socket_to_channel, sock, channel, bufsize, counts)
    try:
        while not channel.closed and not (down.dead and up.dead):
            waits: list[Any] = [g for g in (down, up) if not g.dead]
            if not channel.status_event.is_set():  # set when the channel closes
                waits.append(channel.status_event)
            gevent.wait(waits, count=1)
    finally:
        close_quietly(sock)
        gevent.killall([down, up])
        channel.close()
    return counts[0], counts[1]


def _channel_to_socket(channel: Channel, sock: Any, bufsize: int, counts: list[int]) -> None:
    try:
        while data := channel.recv(bufsize):
            sock.sendall(data)
            counts[0] += len(data)
        sock.shutdown(socket.SHUT_WR)
    except (OSError, SSHException):
        pass  # the socket failed: stop reading the channel; its window stops the peer


def _socket_to_channel(sock: Any, channel: Channel, bufsize: int, counts: list[int]) -> None:
    buffer = bytearray(bufsize)
    view = memoryview(buffer)
    try:
        while count := sock.recv_into(buffer):
            channel.sendall(view[:count])
            counts[1] += count
    except (OSError, SSHException):
        pass  # a reset reads as EOF, as in OpenSSH; a closed channel ends the copy
    if not channel.closed:
        with contextlib.suppress(OSError, SSHException):
            channel.shutdown_write()


def close_quietly(sock: Any) -> None:
    """Close a socket, ignoring errors."""
    with contextlib.suppress(OSError):
        sock.close()


def connect(target: Target, timeout: float, resolver: Resolver | None = None) -> Any:
    """A cooperative socket connected to ``(host, port)`` or a Unix path within ``timeout``.

    A host is resolved once (``resolver``, default ``resolve``) and its
    addresses are tried in order; a path is connected as ``connect_unix`` does.
    """
    with gevent.Timeout(timeout, TimeoutError("connect timed out")):
        if isinstance(target, str):
            return connect_unix(target)
        return connect_addresses((resolver or resolve)(target[0], target[1]))


def resolve(host: str, port: int) -> list[Address]:
    """``(family, sockaddr)`` of every IPv4/IPv6 address of ``host`` (gevent's resolver)."""
    infos = gevent.socket.getaddrinfo(_checked_host(host), port, 0, socket.SOCK_STREAM)
    return [
        (family, sockaddr)
        for family, _, _, _, sockaddr in infos
        if family in (socket.AF_INET, socket.AF_INET6)
    ]


def connect_addresses(addresses: Sequence[Address]) -> Any:
    """Connect to the first of ``addresses`` that answers (no name is looked up here)."""
    error: OSError = OSError(errno.EHOSTUNREACH, "no address to connect to")
    for family, sockaddr in addresses:
        sock = gevent.socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        _tune(sock)
        return sock
    raise error


def connect_unix(path: str) -> Any:
    """Connect to the Unix socket at ``path``, and only to the file that path names now.

    Where Linux's ``O_PATH`` and ``/proc/self/fd`` exist, the file is opened
    without following a final symlink, checked to be a socket whose path is
    still ``path`` (no component swapped for a symlink meanwhile), and
    connected through its descriptor: what was checked is what is reached.
    """
    sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _pinned(path, directory=False) as pinned:
            sock.connect(pinned)
    except BaseException:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def _pinned(path: str, directory: bool) -> Iterator[str]:
    """A name for exactly the file (or directory) ``path`` names now: ``/proc/self/fd/N``.

    OSError if it is not a socket (a directory) or its resolved path is no
    longer ``path``. Without ``O_PATH`` or ``/proc`` (not Linux), ``path`` itself.
    """
    o_path = getattr(os, "O_PATH", 0)
    if not o_path or not os.path.isdir("/proc/self/fd"):
        yield path
        return
    flags = o_path | os.O_CLOEXEC | (os.O_DIRECTORY if directory else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISDIR(mode) if directory else stat.S_ISSOCK(mode)):
            raise OSError(errno.ECONNREFUSED, f"{path} is not a socket")
        if os.readlink(f"/proc/self/fd/{fd}") != path:
            raise OSError(errno.ECONNREFUSED, f"{path} changed after it was checked")
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _checked_host(host: str) -> str:
    """``host``, or ValueError here rather than a traceback in gevent's resolver thread.

    A NUL is refused: the C resolver would stop there (``127.0.0.1\0.evil``
    resolves as 127.0.0.1).
    """
    if "\0" in host:
        raise ValueError("host name contains NUL")
    host.encode("idna")  # UnicodeError for empty or over-long labels
    return host


def _tune(sock: Any) -> None:
    sock.settimeout(None)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# -- policy -------------------------------------------------------------------------


def _split_hostport(pattern: str) -> tuple[str, str]:
    if pattern.startswith("["):
        host, _, rest = pattern[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = pattern.rpartition(":")
    if not host or not port:
        raise ValueError(f"forwarding pattern {pattern!r} is not host:port")
    _port_matches(port, 0)  # validates
    return host, port


def _port_matches(spec: str, port: int) -> bool:
    if spec == "*":
        return True
    low, _, high = spec.partition("-")
    first, last = int(low), int(high or low)  # ValueError for a malformed spec
    return first <= port <= last


# A host pattern made of digits, dots and wildcards (``10.0.0.*``) or with a colon
# (IPv6, ``[fd00::*]``) is an address pattern; one with "/" a network (CIDR).
_ADDRESS_PATTERN = re.compile(r"[0-9.*?]*[0-9.][0-9.*?]*|[0-9a-fA-F:.*?%]*:[0-9a-fA-F:.*?%]*")


class _Rule(NamedTuple):
    """One ``host:port`` pattern: ``kind`` is "any" (``*``), "name", "address" or "network"."""

    kind: str
    host: str  # lower-cased fnmatch pattern; an exact address in canonical form
    port: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None

    @classmethod
    def parse(cls, pattern: str) -> _Rule:
        host, port = _split_hostport(pattern)
        host = host.lower()
        if host == "*":
            return cls("any", host, port)
        if "/" in host:
            return cls("network", host, port, ipaddress.ip_network(host, strict=False))
        if _ADDRESS_PATTERN.fullmatch(host):
            with contextlib.suppress(ValueError):  # an exact address: canonical form
                host = str(ipaddress.ip_address(host))
            return cls("address", host, port)
        return cls("name", host, port)

    def matches_name(self, host: str, port: int) -> bool:
        return (
            self.kind in ("any", "name")
            and _port_matches(self.port, port)
            and fnmatch.fnmatchcase(host.lower(), self.host)
        )

    def matches_address(self, address: str, port: int) -> bool:
        if self.kind == "name" or not _port_matches(self.port, port):
            return False
        if self.kind == "any":
            return True
        candidates = [ipaddress.ip_address(address)]
        mapped = getattr(candidates[0], "ipv4_mapped", None)
        if mapped is not None:  # ::ffff:10.0.0.5 reaches 10.0.0.5
            candidates.append(mapped)
        if self.network is not None:
            return any(ip in self.network for ip in candidates)
        return any(fnmatch.fnmatchcase(str(ip), self.host) for ip in candidates)


def _rules(patterns: Sequence[str]) -> list[_Rule]:
    return [_Rule.parse(pattern) for pattern in patterns]


def _hostport_matches(patterns: Sequence[str], host: str, port: int) -> bool:
    """``host`` as a name (never as an address: the name may resolve anywhere)."""
    return any(rule.matches_name(host, port) for rule in _rules(patterns))


def _address_matches(patterns: Sequence[str], address: str, port: int) -> bool:
    """One resolved address against the address, network and ``*`` patterns."""
    return any(rule.matches_address(address, port) for rule in _rules(patterns))


def address_text(sockaddr: Any) -> str:
    """The canonical text of a sockaddr's address (``10.0.0.5``, ``::1``, ``fe80::1%eth0``)."""
    return str(ipaddress.ip_address(sockaddr[0]))


def _literal_address(host: str) -> str | None:
    """The canonical form of ``host`` if it is an IP address literal, else None."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def resolve_unix_path(path: str) -> str | None:
    """``path`` resolved (no "..", no symlinks), or None if it is not absolute or has NUL."""
    if not path.startswith("/") or "\0" in path:
        return None
    return os.path.realpath(path)


def _path_matches(patterns: Sequence[str], path: str) -> bool:
    real = resolve_unix_path(path)  # no "..", no symlink escapes
    return real is not None and any(fnmatch.fnmatchcase(real, pattern) for pattern in patterns)


@dataclass
class ForwardingPolicy:
    """What a ``ForwardingServer`` may forward. Denies everything unless told otherwise.

    Patterns are ``"host:port"``; the port is ``*``, a number or
    ``low-high``. The host is one of: ``*`` (anything); an **address**
    pattern (``127.0.0.1``, ``10.0.0.*``, ``[::1]``, ``[fd00::*]``) or a
    network (``10.0.0.0/8``, ``[fd00::/8]``), matched against the addresses
    the destination resolves to, and only those; or a **name** pattern
    (``db.internal``, ``*.corp.example``, case-insensitive ``fnmatch``),
    matched against the name the client sent, which may then resolve to any
    address. So ``10.0.0.*:22`` does not let ``10.0.0.5.attacker.example``
    through: that name is resolved once, each address is checked, and the
    connection goes to an address that was checked and nowhere else.
    Unix patterns are ``fnmatch`` patterns on the resolved absolute path,
    which is also the path connected or bound. ``local``/``local_unix``
    allow ``ssh -L``/``-D`` destinations; ``remote``/``remote_unix`` allow
    ``ssh -R`` listeners. ``resolver(host, port)`` returns ``(family,
    sockaddr)`` pairs (default: ``resolve``, gevent's getaddrinfo).
    Subclass and override the ``permit_*`` methods for other rules.
    """

    local: Sequence[str] = ()
    remote: Sequence[str] = ()
    local_unix: Sequence[str] = ()
    remote_unix: Sequence[str] = ()
    allow_agent: bool = False
    allow_x11: bool = False
    # A ready display per accepted x11-req (``geossh.services.x11``): DISPLAY/XAUTHORITY for
    # OSCommand, X clients carried over x11 channels. False: only recorded.
    x11_display: bool = False
    x11_max_connections: int = 32  # live X clients per display
    max_x11_displays: int = 100  # displays open in this process (all connections)
    xauth_location: str = "xauth"  # sshd's XAuthLocation; no xauth, no display
    allow_privileged_ports: bool = False  # remote listeners on ports 1-1023
    gateway_ports: bool = False  # False: remote listeners bind loopback only (sshd's default)
    # sshd's StreamLocalBindUnlink: a stale socket file at an ``ssh -R /path``
    # is removed before binding (never anything but a socket).
    stream_local_bind_unlink: bool = False
    connect_timeout: float = 10.0
    open_timeout: float = 30.0  # for forwarded-* channels the client must confirm
    max_channels: int = 64  # live forwarded connections per SSH connection
    max_listeners: int = 16
    bufsize: int = BUFSIZE
    resolver: Resolver | None = None

    def __post_init__(self) -> None:
        for pattern in (*self.local, *self.remote):
            _Rule.parse(pattern)

    def permit_connect(self, host: str, port: int) -> bool:
        """May the client reach the **name** ``host`` (any address it resolves to) on ``port``?

        Name and ``*`` patterns of ``local``; address patterns never match
        here (``permit_address`` checks addresses after resolution).
        """
        return _hostport_matches(self.local, host, port)

    def permit_address(self, address: str, port: int) -> bool:
        """May the client reach ``address`` (one the destination resolved to) on ``port``?"""
        return _address_matches(self.local, address, port)

    def permit_resolving(self, host: str, port: int) -> bool:
        """Is ``host`` worth resolving, for ``permit_address`` to check its addresses?

        Asked when ``permit_connect`` said no: by default, when some address
        pattern of ``local`` covers ``port``. A False refuses at once, with
        no DNS query.
        """
        return any(
            rule.kind in ("address", "network") and _port_matches(rule.port, port)
            for rule in _rules(self.local)
        )

    def permit_listen(self, address: str, port: int) -> bool:
        """May the client have us listen on ``address:port`` (``tcpip-forward``)?"""
        if 0 < port < 1024 and not self.allow_privileged_ports:
            return False
        address = address or "*"
        literal = _literal_address(address)
        if literal is not None and _address_matches(self.remote, literal, port):
            return True  # a listen address is bound, not resolved: a literal is what it says
        return _hostport_matches(self.remote, address, port)

    def permit_unix_connect(self, path: str) -> bool:
        """May the client reach the Unix socket ``path`` (``direct-streamlocal``)?"""
        return _path_matches(self.local_unix, path)

    def permit_unix_listen(self, path: str) -> bool:
        """May the client have us listen on the Unix socket ``path``?"""
        return _path_matches(self.remote_unix, path)

    def bind_address(self, address: str) -> str:
        """Where to bind a listener the client asked for on ``address``."""
        if not self.gateway_ports:
            return "::1" if ":" in address else "127.0.0.1"
        if address in ("", "*"):
            return "0.0.0.0"
        return "127.0.0.1" if address == "localhost" else address


def _describe(target: Target) -> str:
    """A forwarding target for logs (the client chose it: escaped)."""
    if isinstance(target, str):
        return printable(target)
    return f"{printable(target[0])}:{printable(target[1], 16)}"


# -- local forwarding (ssh -L / -D) ---------------------------------------------------


class _NotPermitted(Exception):
    """No address a destination resolved to is allowed by the policy."""


class DirectTCPIPHandler:
    """Channel handler for ``direct-tcpip`` and ``direct-streamlocal@openssh.com``.

    ``prepare`` connects to ``target`` before the channel is confirmed (an
    OPEN_* code with a reason on failure); ``run`` pumps; ``close`` releases
    the socket. Return one from ``ServerInterface.get_channel_handler`` to
    use it without ``ForwardingServer``.

    ``target`` is resolved once (``resolver``, default ``resolve``). With
    ``permit_address(address_text, port)``, only addresses it allows are
    connected; when none is (or the name does not resolve), the open is
    refused as ADMINISTRATIVELY_PROHIBITED. A Unix path is connected as
    ``connect_unix`` does.
    """

    def __init__(
        self,
        target: Target,
        connect_timeout: float = 10.0,
        bufsize: int = BUFSIZE,
        on_close: Callable[[], None] | None = None,
        resolver: Resolver | None = None,
        permit_address: Callable[[str, int], bool] | None = None,
    ) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self.bufsize = bufsize
        self.on_close = on_close
        self.resolver = resolver
        self.permit_address = permit_address
        self.sock: Any = None
        self.counts = (0, 0)
        self.log: logging.Logger | logging.LoggerAdapter[Any] = _logger

    def prepare(self) -> int | tuple[int, str]:
        """Connect; OPEN_SUCCEEDED, or ``(OPEN_FAILED_*, reason)``."""
        try:
            with gevent.Timeout(self.connect_timeout, TimeoutError("connect timed out")):
                self.sock = self._connect()
        except _NotPermitted as exc:
            self.log.info(
                "refused forwarding to %s (policy: %s)", _describe(self.target), printable(exc)
            )
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED, "administratively prohibited"
        except TimeoutError:
            reason = "connect timed out"
        except OSError as exc:
            reason = exc.strerror or str(exc)
        except (ValueError, OverflowError) as exc:  # a host name idna or getaddrinfo rejects
            reason = str(exc)
        else:
            return OPEN_SUCCEEDED
        self.log.info("connect to %s failed: %s", _describe(self.target), printable(reason))
        return OPEN_FAILED_CONNECT_FAILED, reason

    def _connect(self) -> Any:
        target = self.target
        if isinstance(target, str):
            return connect_unix(target)
        host, port = target
        check = self.permit_address
        try:
            addresses = list((self.resolver or resolve)(host, port))
        except (OSError, ValueError, OverflowError) as exc:
            if check is None:
                raise
            raise _NotPermitted(f"{host!r} did not resolve") from exc
        if check is not None:
            addresses = [a for a in addresses if check(address_text(a[1]), port)]
            if not addresses:
                raise _NotPermitted(f"no address of {host!r} is allowed")
        return connect_addresses(addresses)

    def run(self, channel: Channel) -> None:
        """Pump until both directions are done."""
        channel.set_name(f"{channel.get_id()} {_describe(self.target)}")
        self.counts = pump(channel, self.sock, self.bufsize)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self.sock is not None:
            close_quietly(self.sock)
        if self.on_close is not None:
            callback, self.on_close = self.on_close, None
            callback()


# -- remote forwarding (ssh -R) ---------------------------------------------------------


def _listen_tcp(host: str, port: int) -> Any:
    family, kind, proto, _, address = gevent.socket.getaddrinfo(
        _checked_host(host), port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )[0]
    sock = gevent.socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def _listen_unix(path: str, unlink: bool = False) -> Any:
    """Listen on the resolved ``path``, in the directory that path names now.

    With ``unlink``, a socket file already there is removed first (a file
    of any other type stays, and the bind fails).
    """
    sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # the socket file is created 0600 (sshd's StreamLocalBindMask)
    try:
        parent, name = os.path.split(path)
        with _pinned(parent or "/", directory=True) as directory:
            pinned = f"{directory}/{name}"
            if unlink:
                _unlink_socket(pinned)
            sock.bind(pinned if len(pinned.encode()) < 108 else path)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old_mask)
    return sock


def _unlink_socket(path: str) -> None:
    """Remove ``path`` if it is a socket (what StreamLocalBindUnlink removes)."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


class _Listener:
    """One ``tcpip-forward``/``streamlocal-forward`` listener and its accept loop."""

    def __init__(
        self, session: ForwardSession, sock: Any, kind: str, reply: Target, path: str = ""
    ) -> None:
        self.session = session
        self.sock = sock
        self.kind = kind
        self.reply = reply  # what forwarded-* channel opens report as the connected address
        self.path = path  # the resolved socket file of a Unix listener
        self.closed = False

    def serve(self) -> None:
        while not self.closed:
            try:
                conn, peer = self.sock.accept()
            except OSError as exc:
                if self.closed or exc.errno == errno.EBADF:
                    return
                self.session.log.warning("accept on %s failed: %s", _describe(self.reply), exc)
                gevent.sleep(0.1)  # back off (e.g. EMFILE) instead of spinning
                continue
            self.session.incoming(self, conn, peer)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        close_quietly(self.sock)
        if self.path:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


# -- per-connection state ---------------------------------------------------------------


class ForwardSession:
    """The forwards of one SSH connection: limits, listeners, greenlets, teardown.

    Created by ``ForwardingServer`` when the Transport starts; closed (every
    listener, pump and socket) when the connection ends.
    """

    def __init__(self, transport: Transport, policy: ForwardingPolicy) -> None:
        self.transport = transport
        self.policy = policy
        self.log = PrefixedLog(_logger, transport._prefix())
        self.greenlets = gevent.pool.Group()  # listener loops and forwarded-* pumps
        self.listeners: dict[Target, _Listener] = {}
        self.channels = 0  # live forwarded connections, both directions
        self.closed = False
        self.x11_requests: dict[int, X11Request] = {}
        self.agent_requested = False
        self._pending: dict[int, tuple[Target, bool]] = {}  # chanid: (target, check addresses)
        self._x11_channels: dict[int, Channel] = {}
        self.x11_displays: dict[int, X11Display] = {}  # chanid: the session's display
        transport.add_close_callback(self.close)

    # -- limits ----------------------------------------------------------------
    def _reserve(self) -> bool:
        if self.closed or self.channels >= self.policy.max_channels:
            return False
        self.channels += 1
        return True

    def _release(self) -> None:
        self.channels -= 1

    def reserve(self) -> bool:
        """Count one more forwarded connection; False at ``max_channels`` (or closed)."""
        return self._reserve()

    def release(self) -> None:
        """A connection counted by ``reserve`` ended."""
        self._release()

    # -- local forwarding --------------------------------------------------------
    def request_direct(self, chanid: int, target: Target) -> int:
        """Decide a ``direct-*`` open; on success a handler waits for ``take_handler``.

        No DNS here (this runs in the connection greenlet): a name the
        policy allows as a name is accepted; an address literal is checked
        now; another name, when address patterns might allow it, is
        resolved and its addresses checked by the handler, before the
        channel is confirmed. A Unix path is resolved once; that path is
        checked and connected.
        """
        decision = self._decide(target)
        if decision is None:
            self.log.info("refused forwarding to %s (policy)", _describe(target))
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        if not self._reserve():
            self.log.info("refused forwarding to %s: %d open", _describe(target), self.channels)
            return OPEN_FAILED_RESOURCE_SHORTAGE
        self._pending[chanid] = decision
        return OPEN_SUCCEEDED

    def _decide(self, target: Target) -> tuple[Target, bool] | None:
        """``(what to connect, check addresses after resolving)``, or None: refused."""
        policy = self.policy
        if isinstance(target, str):
            real = resolve_unix_path(target)
            if real is None or not policy.permit_unix_connect(real):
                return None
            return real, False
        host, port = target
        if not 0 < port < 65536:
            return None
        if policy.permit_connect(host, port):
            return target, False
        literal = _literal_address(host)
        if literal is not None:
            return ((literal, port), False) if policy.permit_address(literal, port) else None
        return (target, True) if policy.permit_resolving(host, port) else None

    def take_handler(self, chanid: int) -> DirectTCPIPHandler | None:
        """The handler for a ``direct-*`` channel that ``request_direct`` accepted."""
        decision = self._pending.pop(chanid, None)
        if decision is None:
            return None
        target, check = decision
        policy = self.policy
        handler = DirectTCPIPHandler(
            target, policy.connect_timeout, policy.bufsize, self._release, policy.resolver,
            policy.permit_address if check else None,
        )  # fmt: skip
        handler.log = self.log
        return handler

    # -- remote forwarding -------------------------------------------------------
    def listen_tcp(self, address: str, port: int) -> int:
        """Listen for ``tcpip-forward``; the bound port, or 0 if refused."""
        if not 0 <= port < 65536 or not self.policy.permit_listen(address, port):
            self.log.info("refused remote forward %s:%d (policy)", printable(address), port)
            return 0
        if self.closed or len(self.listeners) >= self.policy.max_listeners:
            return 0
        try:
            sock = _listen_tcp(self.policy.bind_address(address), port)
        except (OSError, ValueError) as exc:
            self.log.info("remote forward %s:%d: %s", printable(address), port, printable(exc))
            return 0
        bound = int(sock.getsockname()[1])
        self._add_listener(_Listener(self, sock, FORWARDED_TCPIP, (address, bound)))
        return bound

    def listen_unix(self, path: str) -> bool:
        """Listen for ``streamlocal-forward@openssh.com``; False if refused.

        The path is resolved once; the resolved path is checked and bound.
        """
        real = resolve_unix_path(path)
        if real is None or not self.policy.permit_unix_listen(real):
            self.log.info("refused remote forward %s (policy)", printable(path))
            return False
        if self.closed or len(self.listeners) >= self.policy.max_listeners:
            return False
        try:
            sock = _listen_unix(real, self.policy.stream_local_bind_unlink)
        except OSError as exc:
            self.log.info("remote forward %s: %s", printable(path), printable(exc))
            return False
        self._add_listener(_Listener(self, sock, FORWARDED_STREAMLOCAL, path, real))
        return True

    def _add_listener(self, listener: _Listener) -> None:
        self.listeners[listener.reply] = listener
        self.greenlets.spawn(listener.serve)
        self.log.debug("listening for %s on %s", listener.kind, _describe(listener.reply))

    def cancel(self, target: Target) -> bool:
        """Stop a listener (its open connections go on); False if there was none."""
        listener = self.listeners.pop(target, None)
        if listener is None:
            self.log.debug("cancel of unknown forward %s", _describe(target))
            return False
        listener.close()
        return True

    def incoming(self, listener: _Listener, conn: Any, peer: Any) -> None:
        """A connection to a listener: forward it in its own greenlet (or refuse it)."""
        if not self._reserve():
            self.log.info("refused connection to %s: limit reached", _describe(listener.reply))
            close_quietly(conn)
            return
        self.greenlets.spawn(self._forward, listener, conn, peer)

    def _forward(self, listener: _Listener, conn: Any, peer: Any) -> None:
        try:
            _tune(conn)
            origin = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
            chan = self.transport.open_channel(
                listener.kind, listener.reply, origin, timeout=self.policy.open_timeout
            )
            pump(chan, conn, self.policy.bufsize)
        except (SSHException, OSError) as exc:
            self.log.info("%s from %s not opened: %s", listener.kind, peer or "unix", exc)
        finally:
            close_quietly(conn)
            self._release()

    # -- X11 requests ---------------------------------------------------------------
    def record_x11(self, channel: Channel, request: X11Request) -> None:
        """Keep the ``x11-req`` of an open channel (those of closed ones are dropped)."""
        for chanid, chan in list(self._x11_channels.items()):
            if chan.closed:  # ids are reused: a closed channel's request must not linger
                del self._x11_channels[chanid]
                self.x11_requests.pop(chanid, None)
        self._x11_channels[channel.get_id()] = channel
        self.x11_requests[channel.get_id()] = request

    def x11_request(self, channel: Channel) -> X11Request | None:
        """The ``x11-req`` accepted on ``channel`` (this channel, not an earlier one)."""
        if self._x11_channels.get(channel.get_id()) is not channel:
            return None
        return self.x11_requests.get(channel.get_id())

    def open_x11_display(self, channel: Channel, request: X11Request) -> bool:
        """Give ``channel`` a ready display (``geossh.services.x11``); False, logged, if refused."""
        chanid, policy = channel.get_id(), self.policy
        for old, display in list(self.x11_displays.items()):
            if display.closed:  # ids are reused: only open displays are kept
                del self.x11_displays[old]
        current = self.x11_displays.get(chanid)
        if current is not None and current.channel is channel:
            return self._x11_refused("X11 forwarding already active on this channel")
        xauth = find_xauth(policy.xauth_location)
        if xauth is None:
            return self._x11_refused(f"no xauth program ({printable(policy.xauth_location)})")
        live = sum(not display.closed for display in self.x11_displays.values())
        if self.closed or live >= policy.max_listeners:
            return self._x11_refused(f"{live} displays open on this connection")
        bound = REGISTRY.allocate(policy.max_x11_displays)
        if bound is None:
            return self._x11_refused("no free display (or max_x11_displays reached)")
        number, socks = bound
        display = X11Display(self, channel, request, number, socks, xauth,
                             policy.x11_max_connections, pump)  # fmt: skip
        self.x11_displays[chanid] = display
        display.start()
        return True

    def _x11_refused(self, reason: str) -> bool:
        self.log.info("x11-req refused: %s", reason)
        return False

    def x11_display(self, channel: Channel) -> X11Display | None:
        """The open display of session ``channel`` (this channel, not an earlier one)."""
        display = self.x11_displays.get(channel.get_id())
        if display is None or display.closed or display.channel is not channel:
            return None
        return display

    # -- teardown -----------------------------------------------------------------
    def close(self) -> None:
        """Close every listener and stop every pump (the connection ended)."""
        if self.closed:
            return
        self.closed = True
        for listener in list(self.listeners.values()):
            listener.close()
        self.listeners.clear()
        self._pending.clear()
        self._x11_channels.clear()
        self.x11_requests.clear()
        for display in list(self.x11_displays.values()):
            display.close()
        self.x11_displays.clear()
        self.greenlets.kill(block=False)


# -- the ServerInterface mixin ------------------------------------------------------------


class ForwardingServer(ServerInterface):
    """paramiko's forwarding callbacks, answered from a policy, with ready-made pumps.

    Put it before your own ServerInterface class (``class App(ForwardingServer,
    MyServer)``) and pass a ``ForwardingPolicy``; the Transport attaches it when
    ``start_server`` runs. ``ssh -L``/``-D``/``-W`` and ``-R`` (TCP and Unix
    sockets) then work without ``accept()``. One instance serves one
    connection. Override a callback and call ``super()`` to add rules.
    """

    forwarding_policy: ForwardingPolicy = ForwardingPolicy()
    _forwarding: ForwardSession | None = None

    def __init__(self, policy: ForwardingPolicy | None = None) -> None:
        if policy is not None:
            self.forwarding_policy = policy

    def attach_transport(self, transport: Transport) -> None:
        """Called by ``Transport.start_server``: start this connection's forwarding state."""
        current = self._forwarding
        if current is not None and not current.closed and current.transport is not transport:
            raise SSHException(
                "a ForwardingServer serves one connection: create one per connection"
            )
        self._forwarding = ForwardSession(transport, self.forwarding_policy)

    @property
    def forwarding(self) -> ForwardSession:
        """This connection's ``ForwardSession`` (listeners, counts, X11/agent requests)."""
        if self._forwarding is None:
            raise SSHException("ForwardingServer is not attached to a Transport yet")
        return self._forwarding

    # -- local forwarding ---------------------------------------------------------
    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        """``direct-tcpip`` (``ssh -L``/``-D``): allowed by ``policy.local``?"""
        host, port = destination
        return self.forwarding.request_direct(chanid, (str(host), int(port)))

    def check_channel_direct_streamlocal_request(self, chanid: int, path: str) -> int:
        """``direct-streamlocal@openssh.com`` (``ssh -L port:/path``): allowed by ``local_unix``?"""
        return self.forwarding.request_direct(chanid, path)

    def get_channel_handler(self, kind: str, chanid: int) -> DirectTCPIPHandler | None:
        """The pump for a ``direct-*`` channel accepted above (None: use ``accept()``)."""
        if kind not in (DIRECT_TCPIP, DIRECT_STREAMLOCAL) or self._forwarding is None:
            return None
        return self._forwarding.take_handler(chanid)

    # -- remote forwarding --------------------------------------------------------
    def check_port_forward_request(self, address: str, port: int) -> int | bool:
        """``tcpip-forward`` (``ssh -R``): listen and return the bound port (0: refused)."""
        return self.forwarding.listen_tcp(address, port)

    def cancel_port_forward_request(self, address: str, port: int) -> None:
        """``cancel-tcpip-forward``: stop listening (paramiko replies success regardless)."""
        self.forwarding.cancel((address, port))

    def check_streamlocal_forward_request(self, path: str) -> bool:
        """``streamlocal-forward@openssh.com`` (``ssh -R /path:...``): listen on ``path``."""
        return self.forwarding.listen_unix(path)

    def cancel_streamlocal_forward_request(self, path: str) -> bool:
        """``cancel-streamlocal-forward@openssh.com``: False if there was no such forward."""
        return self.forwarding.cancel(path)

    # -- X11 and agent --------------------------------------------------------------
    def check_channel_x11_request(
        self,
        channel: Channel,
        single_connection: bool,
        auth_protocol: str,
        auth_cookie: bytes,
        screen_number: int,
    ) -> bool:
        """``x11-req``: record it (``x11_request(channel)``) if ``policy.allow_x11``.

        With ``policy.x11_display`` the channel also gets a ready display
        (``x11_display(channel)``), or the request fails if none can be made.
        """
        if not self.forwarding_policy.allow_x11:
            return False
        request = X11Request(bool(single_connection), auth_protocol, auth_cookie, screen_number)
        reason = check_request(request)
        if reason is not None:
            self.forwarding.log.info("x11-req refused: %s", reason)
            return False
        if self.forwarding_policy.x11_display and not self.forwarding.open_x11_display(
            channel, request
        ):
            return False
        self.forwarding.record_x11(channel, request)
        return True

    def x11_request(self, channel: Channel) -> X11Request | None:
        """The ``x11-req`` received on ``channel``, if one was accepted."""
        return self.forwarding.x11_request(channel)

    def x11_display(self, channel: Channel) -> X11Display | None:
        """The ready display of session ``channel`` (``policy.x11_display``), if any."""
        forwarding = self._forwarding
        return forwarding.x11_display(channel) if forwarding is not None else None

    def check_channel_forward_agent_request(self, channel: Channel) -> bool:
        """``auth-agent-req@openssh.com``: allowed if ``policy.allow_agent``.

        Then ``geossh.agent.AgentServerProxy(transport)`` reaches the client's agent.
        """
        if not self.forwarding_policy.allow_agent:
            return False
        self.forwarding.agent_requested = True
        return True
