"""Liveness timers of one connection, on the clock the driver passes in.

Three checks, all off by default (as in sshd):

* **keepalive** (paramiko's ``set_keepalive``): every ``interval`` seconds,
  a ``keepalive@lag.net`` global request without a reply, once authenticated;
* **ClientAlive** (sshd's ClientAliveInterval/CountMax): after
  ``client_alive_interval`` seconds without input, a
  ``keepalive@openssh.com`` request that wants a reply; any input resets the
  count; after ``client_alive_count_max`` unanswered the connection ends;
* **UnusedConnectionTimeout** (sshd's): an authenticated connection without
  an open channel for ``unused_connection_timeout`` seconds ends.

``Liveness`` only keeps the times and decides; ``Connection`` feeds it the
time of the latest input and whether channels are open, and carries out what
``expire`` returns. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from geossh.proto.config import ServerConfig
from geossh.proto.constants import DisconnectReason


@dataclass(frozen=True, slots=True)
class Expired:
    """What the connection must do now that a liveness deadline passed."""

    send_keepalive: bool = False  # keepalive@lag.net, no reply wanted
    send_probe: bool = False  # keepalive@openssh.com, reply wanted
    end: tuple[str, DisconnectReason] | None = None  # reason to disconnect with


NOTHING = Expired()


class Liveness:
    """The deadlines of the three checks (see module docstring)."""

    __slots__ = (
        "_keepalive_at",
        "_last_probe",
        "_unused_since",
        "alive_count_max",
        "alive_interval",
        "keepalive",
        "missed",
        "unused_timeout",
    )

    def __init__(self, config: ServerConfig, now: float) -> None:
        self.keepalive = 0.0
        self._keepalive_at = now
        self.alive_interval = config.client_alive_interval
        self.alive_count_max = config.client_alive_count_max
        self.unused_timeout = config.unused_connection_timeout
        self.missed = 0  # probes sent since the latest input
        self._last_probe = now
        self._unused_since: float | None = None

    def set_keepalive(self, interval: float, now: float) -> None:
        """Send a keepalive every ``interval`` seconds from ``now`` (0: off)."""
        self.keepalive = max(0.0, float(interval))
        self._keepalive_at = now

    def deadline(
        self, now: float, last_input: float, authenticated: bool, in_use: bool
    ) -> float | None:
        """The earliest deadline, noting at ``now`` whether the connection is in use."""
        times = []
        if self.keepalive:
            times.append(self._keepalive_at + self.keepalive)
        if authenticated:
            if self.alive_interval > 0:
                times.append(max(last_input, self._last_probe) + self.alive_interval)
            if self.unused_timeout > 0:
                self._note_use(now, in_use)
                if self._unused_since is not None:
                    times.append(self._unused_since + self.unused_timeout)
        return min(times) if times else None

    def expire(self, now: float, last_input: float, authenticated: bool, in_use: bool) -> Expired:
        """What is due at ``now``."""
        keepalive = bool(self.keepalive) and now >= self._keepalive_at + self.keepalive
        if keepalive:
            self._keepalive_at = now
        if not authenticated:
            return NOTHING  # a keepalive goes only to an authenticated peer
        end = self._unused(now, in_use)
        probe = False
        if end is None and self.alive_interval > 0:
            if last_input > self._last_probe:
                self.missed = 0  # the peer spoke since the last probe
            if now >= max(last_input, self._last_probe) + self.alive_interval:
                if self.missed >= self.alive_count_max:
                    reason = f"Timeout, client not responding ({self.missed} keepalives unanswered)"
                    end = (reason, DisconnectReason.CONNECTION_LOST)
                else:
                    self.missed += 1
                    self._last_probe = now
                    probe = True
        if not (keepalive or probe or end):
            return NOTHING
        return Expired(send_keepalive=keepalive, send_probe=probe, end=end)

    def _note_use(self, now: float, in_use: bool) -> None:
        if in_use:
            self._unused_since = None
        elif self._unused_since is None:
            self._unused_since = now

    def _unused(self, now: float, in_use: bool) -> tuple[str, DisconnectReason] | None:
        limit = self.unused_timeout
        if limit <= 0:
            return None
        self._note_use(now, in_use)
        since = self._unused_since
        if since is None or now < since + limit:
            return None
        return (f"no open channel for {limit:g} s (unused_connection_timeout)",
                DisconnectReason.BY_APPLICATION)  # fmt: skip
