"""Server-wide admission state shared by the worker processes of ``geossh.runner.workers``.

``SharedLimits.create(workers, capacity)`` maps one anonymous memory file
(``memfd``) ``MAP_SHARED`` before the supervisor forks, so every worker
sees the same bytes. It holds:

* one slot per worker index: its open and its unauthenticated connections.
  Totals are sums over the slots. A worker writes only its own slot, so when
  the supervisor reaps a dead worker it zeroes that slot
  (``clear_worker``) and the budget is whole again;
* a table of source blocks (``SharedSources``): per block, a keyed 128-bit
  hash of the block, its penalty (expiry on the system-wide monotonic clock,
  kind, enforced or not) and one unauthenticated count per worker (a column
  per worker, also zeroed on reap). Penalties are not per worker: a crash
  does not forget them.

Every check-and-update runs under one POSIX record lock (``fcntl.lockf``)
on the memfd: the kernel releases it when its holder dies, so a killed
worker cannot leave it held. No gevent call happens while it is held, so
greenlets never wait for each other on it (the lock is per process; a
depth count makes nested uses safe, since POSIX locks do not nest).

The table is open addressing without deletion marks: a block lives in one
of ``WINDOW`` consecutive slots from its hash; lookups scan the whole
window, and a slot is reused once it has no count and no unexpired penalty.
A block whose window is full is not tracked (``overflow:permissive``) or
refused (``overflow:deny-all``); the table has twice ``max-sources`` slots.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import mmap
import os
import secrets
import struct

from geossh.runner.srclimit import (
    PENALTY_KINDS,
    PenaltyPolicy,
    SourceLimits,
    _exempt_networks,
    source_block,
)

WINDOW = 32
_HEADER = struct.Struct("=8sii16s")  # magic, workers, capacity, the hash key
_MAGIC = b"geosshL1"
_SLOT = struct.Struct("=qq")  # per worker: open, unauthenticated
_KEY = 16


def capacity_for(sources: SourceLimits | SharedSources) -> int:
    """Source-table slots: twice ``max-sources`` when a per-source limit is on, else none."""
    if sources.penalties is None and sources.per_source_max_startups is None:
        return 0
    return 2 * (sources.penalties.max_sources if sources.penalties is not None else 65536)


class SharedLimits:
    """The mapped segment: per-worker slots, the source table, and the lock."""

    def __init__(self, fd: int, workers: int, capacity: int, secret: bytes) -> None:
        self.fd = fd
        self.workers = workers
        self.capacity = capacity
        self.secret = secret
        self.entries = capacity + WINDOW - 1 if capacity else 0  # no window wraps
        self.slots_at = _HEADER.size
        self.keys_at = self.slots_at + _SLOT.size * workers
        self.expiry_at = self.keys_at + _KEY * self.entries
        self.meta_at = self.expiry_at + 8 * self.entries
        self.counts_at = self.meta_at + 4 * self.entries
        size = self.counts_at + 4 * self.entries * workers
        if os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)
        self.map = mmap.mmap(fd, size, mmap.MAP_SHARED)
        _HEADER.pack_into(self.map, 0, _MAGIC, workers, capacity, secret)
        self._depth = 0

    @classmethod
    def create(cls, workers: int, capacity: int = 0) -> SharedLimits:
        """A zeroed segment for ``workers`` slots and a ``capacity``-block source table."""
        fd = os.memfd_create("geossh-limits", os.MFD_CLOEXEC)
        return cls(fd, workers, capacity, secrets.token_bytes(16))

    @classmethod
    def adopt(cls, fd: int) -> SharedLimits:
        """Map a segment passed by the previous generation (ValueError if it is not one)."""
        head = os.pread(fd, _HEADER.size, 0)
        if len(head) != _HEADER.size:
            raise ValueError("not a geossh limits segment (too short)")
        magic, workers, capacity, secret = _HEADER.unpack(head)
        if magic != _MAGIC or not 0 < workers <= 1024 or not 0 <= capacity <= 1 << 24:
            raise ValueError("not a geossh limits segment")
        entries = capacity + WINDOW - 1 if capacity else 0
        size = _HEADER.size + _SLOT.size * workers + (28 + 4 * workers) * entries
        if os.fstat(fd).st_size != size:
            raise ValueError("geossh limits segment of the wrong size")
        return cls(fd, workers, capacity, secret)

    def close(self) -> None:
        """Unmap and close (the supervisor, once every worker is gone)."""
        self.map.close()
        os.close(self.fd)

    def locked(self) -> SharedLimits:
        """Hold the segment's lock in a ``with`` block (re-entrant within this process)."""
        return self

    def __enter__(self) -> None:
        if self._depth == 0:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    # -- per-worker slots ---------------------------------------------------------------
    def totals(self) -> tuple[int, int]:
        """(open, unauthenticated) connections of all workers."""
        opened = unauthenticated = 0
        for o, u in _SLOT.iter_unpack(self.map[self.slots_at : self.keys_at]):
            opened += o
            unauthenticated += u
        return opened, unauthenticated

    def add(self, worker: int, opened: int = 0, unauthenticated: int = 0) -> None:
        """Change ``worker``'s counts (call under ``locked()``)."""
        at = self.slots_at + _SLOT.size * worker
        o, u = _SLOT.unpack_from(self.map, at)
        _SLOT.pack_into(self.map, at, o + opened, u + unauthenticated)

    def slot(self, worker: int) -> tuple[int, int]:
        """``worker``'s (open, unauthenticated)."""
        o, u = _SLOT.unpack_from(self.map, self.slots_at + _SLOT.size * worker)
        return int(o), int(u)

    def clear_worker(self, worker: int) -> tuple[int, int]:
        """Forget what a dead worker held; returns its (open, unauthenticated)."""
        with self.locked():
            held = self.slot(worker)
            _SLOT.pack_into(self.map, self.slots_at + _SLOT.size * worker, 0, 0)
            if self.entries:
                at = self.counts_at + 4 * self.entries * worker
                self.map[at : at + 4 * self.entries] = bytes(4 * self.entries)
        return held


class SharedSources:
    """``srclimit.SourceLimits`` over a ``SharedLimits`` table, as seen by one worker."""

    def __init__(
        self,
        shared: SharedLimits,
        worker: int,
        per_source_max_startups: int | None = None,
        netblock: tuple[int, int] = (32, 128),
        penalties: PenaltyPolicy | None = None,
    ) -> None:
        self.shared = shared
        self.worker = worker
        self.per_source_max_startups = per_source_max_startups
        self.netblock = netblock
        self.penalties = penalties
        self._exempt = _exempt_networks(penalties)
        self._key = functools.lru_cache(maxsize=4096)(self._hash)  # (block + hash: ~12 us)

    def block(self, host: str) -> str:
        """The block ``host`` is counted in."""
        return source_block(host, self.netblock)

    # -- the table ------------------------------------------------------------------
    def _hash(self, host: str) -> bytes:
        return self._block_key(self.block(host))

    def _block_key(self, block: str) -> bytes:
        data = block.encode("utf-8", "surrogateescape")
        return hashlib.blake2b(data, digest_size=_KEY, key=self.shared.secret).digest()

    def load(self, local: SourceLimits, now: float) -> None:
        """Copy one process's counts (into this worker's column) and penalties into the table."""
        with self.shared.locked():
            for block, count in local.unauthenticated.items():
                entry = self._claim(self._block_key(block), now)
                if entry is not None:
                    self._bump(entry, count)
            for block, penalty in local._penalised.items():
                entry = self._claim(self._block_key(block), now)
                if entry is not None and penalty.expiry > now:
                    kind = PENALTY_KINDS.index(penalty.kind) if penalty.kind in PENALTY_KINDS else 0
                    self._set_penalty(entry, penalty.expiry, kind << 1 | int(penalty.active))

    def _find(self, key: bytes) -> int | None:
        shared = self.shared
        if not shared.entries:
            return None
        first = int.from_bytes(key[:8], "little") % shared.capacity
        start = shared.keys_at + _KEY * first
        window = shared.map[start : start + _KEY * WINDOW]
        at = window.find(key)
        while at >= 0:
            if at % _KEY == 0:
                return first + at // _KEY
            at = window.find(key, at + 1)
        return None

    def _count(self, entry: int) -> int:
        shared = self.shared
        total = 0
        for worker in range(shared.workers):
            at = shared.counts_at + 4 * (shared.entries * worker + entry)
            total += struct.unpack_from("=i", shared.map, at)[0]
        return total

    def _penalty(self, entry: int) -> tuple[float, int]:
        shared = self.shared
        (expiry,) = struct.unpack_from("=d", shared.map, shared.expiry_at + 8 * entry)
        (meta,) = struct.unpack_from("=i", shared.map, shared.meta_at + 4 * entry)
        return float(expiry), int(meta)

    def _set_penalty(self, entry: int, expiry: float, meta: int) -> None:
        shared = self.shared
        struct.pack_into("=d", shared.map, shared.expiry_at + 8 * entry, expiry)
        struct.pack_into("=i", shared.map, shared.meta_at + 4 * entry, meta)

    def _claim(self, key: bytes, now: float) -> int | None:
        """The entry of ``key``, made in a free or dead slot of its window if new."""
        entry = self._find(key)
        if entry is not None:
            return entry
        shared = self.shared
        if not shared.entries:
            return None
        first = int.from_bytes(key[:8], "little") % shared.capacity
        for entry in range(first, first + WINDOW):
            at = shared.keys_at + _KEY * entry
            empty = shared.map[at : at + _KEY] == bytes(_KEY)
            if empty or (self._penalty(entry)[0] <= now and self._count(entry) == 0):
                shared.map[at : at + _KEY] = key
                self._set_penalty(entry, 0.0, 0)
                return entry
        return None

    def _room(self, key: bytes, now: float) -> bool:
        """Could ``key`` get an entry (its window has a free or dead slot)?"""
        shared = self.shared
        first = int.from_bytes(key[:8], "little") % shared.capacity
        for entry in range(first, first + WINDOW):
            at = shared.keys_at + _KEY * entry
            if shared.map[at : at + _KEY] == bytes(_KEY):
                return True
            if self._penalty(entry)[0] <= now and self._count(entry) == 0:
                return True
        return False

    # -- admission ------------------------------------------------------------------
    def refusal(self, host: str, now: float) -> str | None:
        """Why a new connection from ``host`` must be refused now, or None to admit it."""
        key = self._key(host)
        with self.shared.locked():
            entry = self._find(key)
            if entry is not None:
                expiry, meta = self._penalty(entry)
                if meta & 1 and now < expiry:
                    kind = PENALTY_KINDS[(meta >> 1) % len(PENALTY_KINDS)]
                    return f"penalty: {kind} ({expiry - now:.0f} s left)"
            policy = self.penalties
            if (
                policy is not None
                and policy.overflow_deny
                and entry is None
                and self.shared.entries
                and not self._room(key, now)
            ):
                return "penalty table full (overflow:deny-all)"
            limit = self.per_source_max_startups
            if limit is not None and entry is not None and self._count(entry) >= limit:
                return f"past PerSourceMaxStartups ({limit} unauthenticated)"
        return None

    def started(self, host: str, now: float = 0.0) -> bool:
        """Count an admitted, unauthenticated connection; False if the table had no room."""
        key = self._key(host)
        with self.shared.locked():
            entry = self._claim(key, now)
            if entry is None:
                return False
            self._bump(entry, 1)
        return True

    def finished(self, host: str) -> None:
        """A connection counted by ``started`` authenticated or ended."""
        key = self._key(host)
        with self.shared.locked():
            entry = self._find(key)
            if entry is not None:
                self._bump(entry, -1)

    def _bump(self, entry: int, delta: int) -> None:
        shared = self.shared
        at = shared.counts_at + 4 * (shared.entries * self.worker + entry)
        (count,) = struct.unpack_from("=i", shared.map, at)
        struct.pack_into("=i", shared.map, at, max(0, count + delta))

    # -- penalties ------------------------------------------------------------------
    def penalise(self, host: str, kind: str, now: float) -> bool:
        """Add a ``kind`` penalty to ``host``'s block; True if it is now enforced."""
        policy = self.penalties
        seconds = policy.duration(kind) if policy is not None else 0.0
        if policy is None or seconds <= 0 or self._is_exempt(host):
            return False
        key = self._key(host)
        with self.shared.locked():
            entry = self._claim(key, now)
            if entry is None:
                return False  # overflow: permissive (or deny-all, checked on admission)
            expiry, meta = self._penalty(entry)
            if now >= expiry:
                expiry, meta = now, 0
            expiry = min(expiry + seconds, now + policy.max)
            was_active = bool(meta & 1)
            active = was_active or expiry - now >= policy.min
            self._set_penalty(entry, expiry, PENALTY_KINDS.index(kind) << 1 | int(active))
        return active and not was_active

    def seconds_left(self, host: str, now: float) -> float:
        """Seconds ``host``'s block stays refused (0 if it is not)."""
        with self.shared.locked():
            entry = self._find(self._key(host))
            if entry is None:
                return 0.0
            expiry, meta = self._penalty(entry)
        return max(0.0, expiry - now) if meta & 1 else 0.0

    def penalised(self, now: float) -> dict[str, float]:
        """Enforced penalties: hashed block → seconds left (the table keeps no names)."""
        shared = self.shared
        if not shared.entries:
            return {}
        found: dict[str, float] = {}
        with shared.locked():
            expiries = struct.unpack_from(f"={shared.entries}d", shared.map, shared.expiry_at)
            metas = struct.unpack_from(f"={shared.entries}i", shared.map, shared.meta_at)
            for entry, (expiry, meta) in enumerate(zip(expiries, metas, strict=True)):
                if meta & 1 and expiry > now:
                    at = shared.keys_at + _KEY * entry
                    found[shared.map[at : at + _KEY].hex()] = expiry - now
        return found

    def _is_exempt(self, host: str) -> bool:
        import ipaddress

        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self._exempt)
