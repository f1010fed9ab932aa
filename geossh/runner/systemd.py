"""systemd integration: socket activation and ``sd_notify``, without libsystemd.

``listen_sockets()`` adopts the sockets a service manager passed
(``LISTEN_FDS``/``LISTEN_PID``/``LISTEN_FDNAMES``, starting at fd 3), once
per process; the variables are removed from the environment so shells and
commands never inherit them. ``Notifier`` sends ``READY=1``,
``RELOADING=1``, ``STOPPING=1``, ``STATUS=...`` and ``WATCHDOG=1`` datagrams
to ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace); it
also takes the variable out of the environment (a user's shell must not
be able to talk to the service manager). Both do nothing when the
variables are absent. The same two mechanisms carry a reload's handover
(``geossh.runner.reload``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("geossh.server")
FIRST_FD = 3  # SD_LISTEN_FDS_START
ENV_LISTEN = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
ENV_NOTIFY = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class ActivationError(OSError):
    """An inherited descriptor is not a listening TCP socket (the message says which)."""


_taken: dict[str, str] | None = None


def _take(names: tuple[str, ...]) -> dict[str, str]:
    return {name: os.environ.pop(name) for name in names if name in os.environ}


def listen_sockets(
    env: Mapping[str, str] | None = None, first_fd: int = FIRST_FD
) -> list[tuple[socket.socket, str]]:
    """The inherited listening sockets with their names (``[]`` if none were passed).

    Reads (and removes) the ``LISTEN_*`` variables; they count only when
    ``LISTEN_PID`` is this process. The sockets are ``first_fd`` on (3,
    as systemd passes them; tests choose another). Each socket is made non-blocking and
    close-on-exec. Anything but a listening IPv4/IPv6 stream socket
    raises ``ActivationError``.
    """
    values = dict(env) if env is not None else _take(ENV_LISTEN)
    if "LISTEN_FDS" not in values:
        return []
    try:
        count, pid = int(values["LISTEN_FDS"]), int(values.get("LISTEN_PID", "0"))
    except ValueError:
        raise ActivationError(f"bad LISTEN_FDS/LISTEN_PID {values}") from None
    if pid != os.getpid() or count <= 0:
        return []
    names = values.get("LISTEN_FDNAMES", "").split(":")
    found = []
    for index in range(count):
        fd = first_fd + index
        name = names[index] if index < len(names) and names[index] else f"fd{fd}"
        found.append((_adopt(fd, name), name))
    return found


def _adopt(fd: int, name: str) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ActivationError(f"inherited fd {fd} ({name}): {exc.strerror or exc}") from None
    kind = (sock.family, sock.type)
    listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or kind[1] != socket.SOCK_STREAM:
        sock.detach()
        raise ActivationError(f"inherited fd {fd} ({name}) is not a TCP socket")
    if not listening:
        sock.detach()
        raise ActivationError(f"inherited fd {fd} ({name}) is not listening (Accept=no needed)")
    sock.set_inheritable(False)
    sock.setblocking(False)
    return sock


def _address(text: str) -> str | bytes:
    return "\0" + text[1:] if text.startswith("@") else text


class Notifier:
    """``sd_notify`` to ``$NOTIFY_SOCKET`` (and, during a reload, to the predecessor).

    ``Notifier.from_environment()`` takes the variables out of
    ``os.environ`` the first time and remembers them for later calls (and
    for a successor's environment). ``watchdog_interval`` is half of
    ``WATCHDOG_USEC`` in seconds, or None.
    """

    def __init__(
        self, address: str | None, watchdog_usec: int | None = None, handover: str | None = None
    ) -> None:
        self.address = address or None
        self.handover = handover or None
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None

    @classmethod
    def from_environment(cls) -> Notifier:
        """The process's notifier (its variables read once, then removed)."""
        global _taken
        if _taken is None:
            _taken = _take((*ENV_NOTIFY, "GEOSSH_HANDOVER_SOCKET"))
        usec: int | None = None
        watchdog_pid = _taken.get("WATCHDOG_PID")
        if _taken.get("WATCHDOG_USEC", "").isdigit() and watchdog_pid in (None, str(os.getpid())):
            usec = int(_taken["WATCHDOG_USEC"]) or None
        return cls(_taken.get("NOTIFY_SOCKET"), usec, _taken.pop("GEOSSH_HANDOVER_SOCKET", None))

    @property
    def watchdog_interval(self) -> float | None:
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def environment(self) -> dict[str, str]:
        """The notify variables a successor process should get (WATCHDOG_PID set by it)."""
        env = {}
        if self.address:
            env["NOTIFY_SOCKET"] = self.address
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
        return env

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines (``notify(READY=1, STATUS="...")``) to the service manager.

        During a reload, READY and failures go to the predecessor instead
        (it tells the service manager about the new main process).
        """
        message = "".join(f"{key}={value}\n" for key, value in fields.items())
        if self.handover is not None and ("READY" in fields or "ERRNO" in fields):
            handover, self.handover = self.handover, None  # said once; then the manager hears
            return self._send(handover, message)
        return self._send(self.address, message) if self.address else False

    def ready(self, status: str) -> None:
        self.notify(READY=1, STATUS=status, MAINPID=os.getpid())

    def reloading(self) -> None:
        self.notify(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self, status: str = "stopping") -> None:
        self.notify(STOPPING=1, STATUS=status)

    def watchdog(self) -> None:
        self.notify(WATCHDOG=1)

    def _send(self, address: str | None, message: str) -> bool:
        if not address:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), _address(address))
            return True
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", address, exc)
            return False

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
