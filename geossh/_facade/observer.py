"""What a server reports about its connections: the ``Observer`` hooks.

``geossh.Server`` sets ``transport.observer`` on every connection it runs;
the transport, the authentication bridge, the session dispatcher and the
server itself call these hooks at the moments they name. Observers turn
them into an audit log (``geossh.audit``) or Prometheus metrics
(``geossh.metrics``). Every hook is a no-op here: subclass and override
what you need. Hooks run in the connection's greenlet: they must be quick
and must not block. Nothing secret passes through them: no password, no
private key, no session data (only sizes).

``Observers`` fans one call out to several observers; an observer that
raises is logged and the connection goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("geossh.server")


class Observer:
    """No-op hooks; ``transport`` is a ``geossh.Transport``, ``channel`` a ``Channel``."""

    def refused(self, peer: Any, reason: str) -> None:
        """Closed at once: ``max_startups``, ``per_source``, ``penalty``, ``max_connections``."""

    def opened(self, transport: Any) -> None:
        """A connection was admitted (before the version exchange)."""

    def kex_done(self, transport: Any) -> None:
        """The first key exchange of ``transport`` completed."""

    def auth(self, transport: Any, username: str, method: str, result: str, details: Any) -> None:
        """An authentication request was answered.

        ``result`` is ``accepted``, ``partial`` or ``refused``; ``details``
        are the core's parsed request fields (``key``, ``certificate``, ...):
        read only the public ones, never ``password``.
        """

    def closed(self, transport: Any) -> None:
        """The connection ended (``transport.summary()`` has its facts)."""

    def channel_opened(self, transport: Any, channel: Any, target: Any = None) -> None:
        """A channel is open; ``target`` is a forward's destination (host, port) or path."""

    def channel_closed(self, transport: Any, channel: Any) -> None:
        """A channel that ``channel_opened`` reported is closed."""

    def session_started(self, transport: Any, channel: Any, kind: str, what: Any) -> None:
        """``exec`` (``what``: the command, bytes), ``shell`` or ``subsystem`` (its name)."""


class Observers(Observer):
    """Calls every hook on each of ``observers`` in turn."""

    def __init__(self, observers: Iterable[Observer]) -> None:
        self.observers = tuple(observers)

    def _each(self, name: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, name)(*args)
            except Exception:
                log.error("observer %s.%s failed", type(observer).__name__, name, exc_info=True)

    def refused(self, peer: Any, reason: str) -> None:
        self._each("refused", peer, reason)

    def opened(self, transport: Any) -> None:
        self._each("opened", transport)

    def kex_done(self, transport: Any) -> None:
        self._each("kex_done", transport)

    def auth(self, transport: Any, username: str, method: str, result: str, details: Any) -> None:
        self._each("auth", transport, username, method, result, details)

    def closed(self, transport: Any) -> None:
        self._each("closed", transport)

    def channel_opened(self, transport: Any, channel: Any, target: Any = None) -> None:
        self._each("channel_opened", transport, channel, target)

    def channel_closed(self, transport: Any, channel: Any) -> None:
        self._each("channel_closed", transport, channel)

    def session_started(self, transport: Any, channel: Any, kind: str, what: Any) -> None:
        self._each("session_started", transport, channel, kind, what)
