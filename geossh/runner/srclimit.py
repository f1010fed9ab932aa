"""Per-source admission limits of ``geossh.Server`` (OpenSSH's srclimit).

Two policies keyed by source address block (``PerSourceNetBlockSize``,
default 32:128, i.e. every address on its own):

* ``per_source_max_startups``: at most this many unauthenticated
  connections from one block at once (``PerSourceMaxStartups``, default
  none). It applies on top of MaxStartups, whichever refuses first.
* penalties (``PerSourcePenalties``, on by default as in OpenSSH 9.8+): a
  connection that ends badly adds time to its block's penalty -- ``authfail``
  (failed authentication, 5 s), ``noauth`` (left without trying, 1 s),
  ``grace_exceeded`` (login grace time ran out, 10 s), ``crash`` (an
  internal error, 90 s). Penalties accumulate up to ``max`` (10 min) and
  are enforced (new connections from the block are closed at once) only
  once they reach ``min`` (15 s), so a user who mistypes a password is
  never locked out, but a password-guessing or connection-flooding source
  is. Addresses in ``exempt`` are never penalised. At most ``max_sources``
  blocks are tracked; past that, new blocks are not penalised (OpenSSH's
  ``overflow:permissive``) unless ``overflow_deny`` refuses them all.

Pure: no gevent, sockets or clocks; time arrives as ``now``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from typing import Any

PENALTY_KINDS = ("authfail", "noauth", "grace_exceeded", "crash")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class PenaltyPolicy:
    """``PerSourcePenalties``: seconds added per kind of bad ending, and the bounds."""

    authfail: float = 5.0
    noauth: float = 1.0
    grace_exceeded: float = 10.0
    crash: float = 90.0
    max: float = 600.0
    min: float = 15.0
    max_sources: int = 65536
    overflow_deny: bool = False
    exempt: tuple[str, ...] = field(default=())

    def duration(self, kind: str) -> float:
        """Seconds a ``kind`` ending adds (0 for an unknown kind)."""
        return float(getattr(self, kind, 0.0)) if kind in PENALTY_KINDS else 0.0


def parse_duration(text: str) -> float:
    """``"5"``, ``"5s"``, ``"2m"``, ``"1h"`` → seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"bad duration {text!r}: expected e.g. 5s, 2m, 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_penalties(value: str | PenaltyPolicy | None) -> PenaltyPolicy | None:
    """``"yes"``/``"no"`` or OpenSSH keywords (``"authfail:30s min:1m"``) → a policy."""
    if value is None or isinstance(value, PenaltyPolicy):
        return value
    words = value.split()
    if words in (["no"], ["none"]):
        return None
    policy = PenaltyPolicy()
    for word in words:
        if word == "yes":
            continue
        key, _, arg = word.partition(":")
        name = key.replace("-", "_")
        if name in ("max_sources4", "max_sources6", "max_sources"):
            policy = replace(policy, max_sources=_count(word, arg))
        elif name == "overflow":
            if arg not in ("permissive", "deny-all"):
                raise ValueError(f"bad penalty {word!r}: overflow is permissive or deny-all")
            policy = replace(policy, overflow_deny=arg == "deny-all")
        elif name in (*PENALTY_KINDS, "max", "min") and arg:
            durations: dict[str, Any] = {name: parse_duration(arg)}
            policy = replace(policy, **durations)
        else:
            raise ValueError(f"bad penalty {word!r}: see PerSourcePenalties in docs/limits.md")
    return policy


def _count(word: str, arg: str) -> int:
    if not arg.isdigit() or int(arg) < 1:
        raise ValueError(f"bad penalty {word!r}: expected a number >= 1")
    return int(arg)


def parse_netblock(value: str | tuple[int, int]) -> tuple[int, int]:
    """``"32:128"`` or ``"24"`` (IPv4 bits, IPv6 128) → (v4 bits, v6 bits)."""
    if isinstance(value, tuple):
        v4, v6 = value
    else:
        parts = value.split(":")
        try:
            v4, v6 = int(parts[0]), int(parts[1]) if len(parts) > 1 else 128
        except ValueError:
            raise ValueError(f"bad net block size {value!r}: expected v4bits[:v6bits]") from None
        if len(parts) > 2:
            raise ValueError(f"bad net block size {value!r}: expected v4bits[:v6bits]")
    if not (0 <= v4 <= 32 and 0 <= v6 <= 128):
        raise ValueError(f"bad net block size {value!r}: need 0-32 and 0-128 bits")
    return v4, v6


def source_block(host: str, netblock: tuple[int, int] = (32, 128)) -> str:
    """The address block ``host`` belongs to (a non-IP peer is its own block)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    bits = netblock[0] if address.version == 4 else netblock[1]
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def _exempt_networks(
    policy: PenaltyPolicy | None,
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if policy is None:
        return []
    return [ipaddress.ip_network(item, strict=False) for item in policy.exempt]


class _Penalty:
    __slots__ = ("active", "expiry", "kind")

    def __init__(self, expiry: float, kind: str) -> None:
        self.expiry = expiry
        self.kind = kind
        self.active = False


class SourceLimits:
    """Admission by source: unauthenticated counts per block and penalties."""

    def __init__(
        self,
        per_source_max_startups: int | None = None,
        netblock: tuple[int, int] = (32, 128),
        penalties: PenaltyPolicy | None = None,
    ) -> None:
        if per_source_max_startups is not None and per_source_max_startups < 1:
            raise ValueError("per_source_max_startups must be >= 1 (or None)")
        self.per_source_max_startups = per_source_max_startups
        self.netblock = netblock
        self.penalties = penalties
        self._exempt = _exempt_networks(penalties)
        self.unauthenticated: dict[str, int] = {}
        self._penalised: dict[str, _Penalty] = {}
        self._next_sweep = float("-inf")

    def block(self, host: str) -> str:
        """The block ``host`` is counted in."""
        return source_block(host, self.netblock)

    # -- admission ------------------------------------------------------------------
    def refusal(self, host: str, now: float) -> str | None:
        """Why a new connection from ``host`` must be refused now, or None to admit it."""
        block = self.block(host)
        penalty = self._penalised.get(block)
        if penalty is not None and now >= penalty.expiry:
            del self._penalised[block]
            penalty = None
        if penalty is not None and penalty.active:
            return f"penalty: {penalty.kind} ({penalty.expiry - now:.0f} s left)"
        policy = self.penalties
        if (
            policy is not None
            and policy.overflow_deny
            and penalty is None
            and len(self._penalised) >= policy.max_sources
            and not self._make_room(now)
        ):
            return "penalty table full (overflow:deny-all)"
        limit = self.per_source_max_startups
        if limit is not None and self.unauthenticated.get(block, 0) >= limit:
            return f"past PerSourceMaxStartups ({limit} unauthenticated)"
        return None

    def started(self, host: str, now: float = 0.0) -> bool:
        """Count an admitted, unauthenticated connection from ``host`` (``now``: unused)."""
        block = self.block(host)
        self.unauthenticated[block] = self.unauthenticated.get(block, 0) + 1
        return True

    def finished(self, host: str) -> None:
        """A connection counted by ``started`` authenticated or ended."""
        block = self.block(host)
        left = self.unauthenticated.get(block, 0) - 1
        if left > 0:
            self.unauthenticated[block] = left
        else:
            self.unauthenticated.pop(block, None)

    # -- penalties ------------------------------------------------------------------
    def penalise(self, host: str, kind: str, now: float) -> bool:
        """Add a ``kind`` penalty to ``host``'s block; True if it is now enforced."""
        policy = self.penalties
        seconds = policy.duration(kind) if policy is not None else 0.0
        if policy is None or seconds <= 0 or self._is_exempt(host):
            return False
        block = self.block(host)
        penalty = self._penalised.get(block)
        if penalty is not None and now >= penalty.expiry:
            del self._penalised[block]
            penalty = None
        if penalty is None:
            if len(self._penalised) >= policy.max_sources and not self._make_room(now):
                return False  # overflow: permissive (or deny-all, checked on admission)
            penalty = self._penalised[block] = _Penalty(now, kind)
        penalty.expiry = min(penalty.expiry + seconds, now + policy.max)
        penalty.kind = kind
        was_active = penalty.active
        penalty.active = penalty.active or penalty.expiry - now >= policy.min
        return penalty.active and not was_active

    def seconds_left(self, host: str, now: float) -> float:
        """Seconds ``host``'s block stays refused (0 if it is not)."""
        return max(0.0, self.penalised(now).get(self.block(host), 0.0))

    def penalised(self, now: float) -> dict[str, float]:
        """Enforced penalties: block → seconds left."""
        return {
            block: p.expiry - now
            for block, p in self._penalised.items()
            if p.active and p.expiry > now
        }

    def _is_exempt(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self._exempt)

    def _make_room(self, now: float) -> bool:
        """Forget expired penalties (one sweep a second at most); True if there is room."""
        if now >= self._next_sweep:
            self._next_sweep = now + 1.0
            expired = [block for block, p in self._penalised.items() if now >= p.expiry]
            for block in expired:
                del self._penalised[block]
        return self.penalties is None or len(self._penalised) < self.penalties.max_sources
