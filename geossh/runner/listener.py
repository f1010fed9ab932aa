"""``Listener``: gevent's ``StreamServer`` that keeps answering at the descriptor limit.

Owns what happens when ``accept()`` fails with EMFILE/ENFILE. gevent's
server would log a traceback and stop accepting for up to a second, while
every new client waits unanswered in the backlog. Here one descriptor is
held in reserve: on exhaustion it is released, the waiting connection is
accepted, told in one pre-version line (RFC 4253 §4.2 lets a server send
lines before its version) that the server is out of resources, and closed;
then the reserve is taken again. Sessions already running are not touched.
"""

from __future__ import annotations

import errno
import logging
import os
import posix
import socket
from typing import Any

import gevent.server

log = logging.getLogger("geossh.runner")

_EXHAUSTED = (errno.EMFILE, errno.ENFILE)
BUSY_LINE = b"Server out of file descriptors; try again later\r\n"


def _take_reserve() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


class Listener(gevent.server.StreamServer):  # type: ignore[misc]
    """A ``StreamServer`` that refuses cleanly instead of stalling when out of descriptors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reserve = _take_reserve()
        self.shed = 0

    def do_read(self) -> Any:
        """Accept one connection; at the descriptor limit, shed it and return None."""
        try:
            return super().do_read()
        except OSError as exc:
            if exc.errno not in _EXHAUSTED:
                raise
        self._shed_one()
        return None

    def _shed_one(self) -> None:
        if self._reserve is None:
            self._reserve = _take_reserve()
            return
        posix.close(self._reserve)
        self._reserve = None
        try:
            fd, address = self.socket._accept()
        except OSError:
            address = None
        else:
            conn = socket.socket(fileno=fd)
            try:
                conn.setblocking(False)
                conn.send(BUSY_LINE)
            except OSError:
                pass
            finally:
                conn.close()
        finally:
            self._reserve = _take_reserve()
        if address is None:
            return
        self.shed += 1
        if self.shed == 1 or self.shed % 1000 == 0:
            log.warning(
                "out of file descriptors: refused a connection from %s (%d so far)",
                address[0] if isinstance(address, tuple) else address,
                self.shed,
            )

    def close(self) -> None:
        """Stop serving and give the reserve descriptor back."""
        super().close()
        if self._reserve is not None:
            posix.close(self._reserve)
            self._reserve = None
