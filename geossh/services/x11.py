"""Ready X11 displays for ``ssh -X``/``-Y``: one per session that sent ``x11-req``, as sshd.

Owns X11Request, X11Display and the process-wide DisplayRegistry; must not import
``geossh.forward`` (which imports this module and hands a display its pump).

Theory of operation
-------------------
sshd with ``X11UseLocalhost=yes`` and ``X11DisplayOffset=10``: an accepted
``x11-req`` binds the first free display number N >= 10 on loopback (TCP port
6000+N on 127.0.0.1, and on ::1 where IPv6 exists, so a client that tries
::1 first cannot reach someone else's listener). The session's program gets
``DISPLAY=localhost:N.S`` and a private ``XAUTHORITY`` file (0600 in a 0700
directory) into which ``xauth add unix:N.S MIT-MAGIC-COOKIE-1 <cookie>`` put
the client's (fake) cookie: X libraries look up a loopback TCP display under
the local ("unix") family, which is why sshd writes the ``unix:`` form.
Each X client that connects gets an ``x11`` channel to the SSH client
(RFC 4254 §6.3.2, originator = the X client's address), pumped by
``geossh.forward.pump``; the SSH client checks the fake cookie and swaps in
the real one.

Bounds: the request is checked (``check_request``: MIT-MAGIC-COOKIE-1, a
hex cookie, a screen number <= 255), ``max_connections`` live X clients per
display, ``single_connection`` closes the listener after the first, and
``DisplayRegistry`` caps displays per process. Teardown: the display closes
when its session channel closes or the connection ends: listeners closed, X
connections' channels closed, the XAUTHORITY directory removed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import gevent
import gevent.pool
import gevent.socket

from geossh.errors import SSHException

if TYPE_CHECKING:
    from geossh._facade.channel import Channel

X11_BASE_PORT = 6000
DISPLAY_OFFSET = 10  # sshd's X11DisplayOffset default
MAX_DISPLAY_NUMBER = 1000  # sshd's MAX_DISPLAYS: numbers offset .. 999
MAX_SCREEN = 255  # an X server has at most 255 screens (a CARD8 in the setup reply)
AUTH_PROTOCOL = "MIT-MAGIC-COOKIE-1"
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){1,512}")
_logger = logging.getLogger("geossh.forward")


class X11Request(NamedTuple):
    """An ``x11-req`` as paramiko's ``check_channel_x11_request`` receives it."""

    single_connection: bool
    auth_protocol: str
    auth_cookie: bytes
    screen_number: int


class Forwarding(Protocol):
    """What a display needs of its connection's ``geossh.forward.ForwardSession``."""

    transport: Any
    policy: Any  # ForwardingPolicy: open_timeout, bufsize
    log: Any
    greenlets: gevent.pool.Group

    def reserve(self) -> bool: ...
    def release(self) -> None: ...


Pump = Callable[["Channel", Any, int], Any]  # geossh.forward.pump


def check_request(request: X11Request) -> str | None:
    """Why ``request`` cannot be served (a log reason), or None if it can.

    The cookie and protocol go into an ``xauth`` command line, so only
    MIT-MAGIC-COOKIE-1 and an even-length hex cookie pass (sshd's
    ``xauth_valid_string`` stops the same injection less strictly).
    """
    if request.auth_protocol != AUTH_PROTOCOL:
        return "unsupported auth protocol"
    cookie = request.auth_cookie
    text = cookie.decode("ascii", "replace") if isinstance(cookie, bytes) else str(cookie)
    if not _HEX.fullmatch(text):
        return "auth cookie is not hex"
    if not 0 <= request.screen_number <= MAX_SCREEN:
        return f"screen number over {MAX_SCREEN}"
    return None


class DisplayRegistry:
    """The display numbers in use in this process, capped (locked: servers may run in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.numbers: set[int] = set()

    def allocate(self, limit: int, offset: int = DISPLAY_OFFSET) -> tuple[int, list[Any]] | None:
        """Bind the first free display number >= ``offset``: ``(number, sockets)``, or None."""
        with self._lock:
            if len(self.numbers) >= limit:
                return None
            for number in range(offset, MAX_DISPLAY_NUMBER):
                if number in self.numbers:
                    continue
                socks = _bind_display(number)
                if socks:
                    self.numbers.add(number)
                    return number, socks
        return None

    def release(self, number: int) -> None:
        """The display ``number`` is closed."""
        with self._lock:
            self.numbers.discard(number)


REGISTRY = DisplayRegistry()


def _bind_display(number: int) -> list[Any]:
    """Listening sockets on 127.0.0.1 and ::1 port 6000+number, or [] if either is taken."""
    port = X11_BASE_PORT + number
    socks: list[Any] = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            sock = gevent.socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 here
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(16)
        except OSError as exc:
            sock.close()
            if family == socket.AF_INET6 and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                continue  # no ::1 on this host
            for other in socks:
                other.close()
            return []
        socks.append(sock)
    return socks


class X11Display:
    """One session's display: listeners, the X clients' channels, the XAUTHORITY file.

    ``display`` is the DISPLAY value, ``auth_display`` the name ``xauth``
    gets, ``xauth`` the program (sshd's XAuthLocation), resolved at request time.
    """

    def __init__(
        self, forwarding: Forwarding, channel: Channel, request: X11Request,
        number: int, socks: list[Any], xauth: str, max_connections: int, pump: Pump,
        registry: DisplayRegistry = REGISTRY,
    ) -> None:  # fmt: skip
        self.forwarding = forwarding
        self.pump = pump
        self.channel = channel
        self.request = request
        self.number = number
        self.socks = socks
        self.xauth = xauth
        self.max_connections = max_connections
        self.registry = registry
        self.connections = 0  # X clients connected now
        self.accepted = 0  # X clients accepted in all
        self.closed = False
        self._registered = True  # ``number`` is held in ``registry``
        self.log = forwarding.log
        self.greenlets = gevent.pool.Group()
        self._directory: str | None = None
        screen = request.screen_number
        self.display = f"localhost:{number}.{screen}"
        self.auth_display = f"unix:{number}.{screen}"

    def start(self) -> None:
        """Accept X clients; close when the session channel closes."""
        for sock in self.socks:
            self.greenlets.spawn(self._serve, sock)
        self.forwarding.greenlets.spawn(self._close_with_channel)
        self.log.info("X11 display %s for channel %d", self.display, self.channel.get_id())

    # -- the session's side ------------------------------------------------------
    def xauthority(self) -> str:
        """The private XAUTHORITY file's path (its 0700 directory is made on first use)."""
        if self.closed:
            raise SSHException("X11 display closed")
        if self._directory is None:
            self._directory = tempfile.mkdtemp(prefix="geossh-x11-")
        return os.path.join(self._directory, "Xauthority")

    def xauth_input(self) -> bytes:
        """What ``xauth -q -f FILE -`` reads: sshd's remove + add of the cookie."""
        cookie = self.request.auth_cookie
        text = cookie.decode("ascii") if isinstance(cookie, bytes) else str(cookie)
        lines = f"remove {self.auth_display}\nadd {self.auth_display} {AUTH_PROTOCOL} {text}\n"
        return lines.encode("ascii")

    def environment(self) -> dict[str, str]:
        """DISPLAY and XAUTHORITY for the session's program."""
        return {"DISPLAY": self.display, "XAUTHORITY": self.xauthority()}

    # -- X clients ---------------------------------------------------------------
    def _serve(self, sock: Any) -> None:
        while not self.closed and sock in self.socks:
            try:
                conn, peer = sock.accept()
            except OSError as exc:
                if self.closed or sock not in self.socks or exc.errno == errno.EBADF:
                    return
                self.log.warning("accept on X11 display %s failed: %s", self.display, exc)
                gevent.sleep(0.1)  # back off (e.g. EMFILE) instead of spinning
                continue
            self._incoming(conn, peer)

    def _incoming(self, conn: Any, peer: Any) -> None:
        if self.closed or self.connections >= self.max_connections:
            self.log.info("refused X11 connection on %s: %d open", self.display, self.connections)
            _close_quietly(conn)
            return
        if not self.forwarding.reserve():
            self.log.info("refused X11 connection on %s: channel limit reached", self.display)
            _close_quietly(conn)
            return
        self.connections += 1
        self.accepted += 1
        if self.request.single_connection:
            self._stop_listening()  # sshd: single-connection closes the listener
        self.greenlets.spawn(self._forward, conn, peer)

    def _forward(self, conn: Any, peer: Any) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            origin = (str(peer[0]), int(peer[1]))
            chan = self.forwarding.transport.open_channel(
                "x11", src_addr=origin, timeout=self.forwarding.policy.open_timeout
            )
            self.pump(chan, conn, self.forwarding.policy.bufsize)
        except (SSHException, OSError) as exc:
            self.log.info("x11 channel for %s not opened: %s", self.display, exc)
        finally:
            _close_quietly(conn)
            self.connections -= 1
            self.forwarding.release()

    # -- teardown ------------------------------------------------------------------
    def _close_with_channel(self) -> None:
        channel = self.channel
        while not channel.closed and not self.closed:
            channel.status_event.wait()
            if not channel.closed:
                channel.status_event.clear()  # an exit status, not the close
        self.close()

    def _stop_listening(self) -> None:
        for sock in self.socks:
            _close_quietly(sock)
        self.socks = []
        if self._registered:
            self._registered = False
            self.registry.release(self.number)

    def close(self) -> None:
        """Close the listeners and the X clients' channels; remove the XAUTHORITY directory."""
        if self.closed:
            return
        self.closed = True
        self._stop_listening()
        self.greenlets.kill(block=False)  # each pump closes its socket and channel
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
        self.log.debug("X11 display %s closed", self.display)


def _close_quietly(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def find_xauth(program: str) -> str | None:
    """The path of the ``xauth`` program (sshd's XAuthLocation), or None if there is none."""
    return shutil.which(program)
