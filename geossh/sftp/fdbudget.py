"""``HandleBudget``: caps on the files the local SFTP backend holds open.

Owns two counts: open files per owner (one connection: the
``ServerInterface`` an ``SFTPServerInterface`` was made with) and in the
whole process, where every connection's descriptors come out of one
``RLIMIT_NOFILE``. ``PROCESS_BUDGET`` is the process's. Pure bookkeeping:
no I/O beyond reading the limit, no gevent.
"""

from __future__ import annotations

import resource
from typing import Any

#: Share of the soft ``RLIMIT_NOFILE`` the SFTP backend may use by default; the
#: rest stays for sockets (new connections), listeners, logs and short-lived
#: directory descriptors.
PROCESS_SHARE = 0.5
MIN_PROCESS_CAP = 16
UNLIMITED_FALLBACK = 65536


def default_process_cap() -> int:
    """Half the soft ``RLIMIT_NOFILE`` (at least 16)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = UNLIMITED_FALLBACK
    return max(MIN_PROCESS_CAP, int(soft * PROCESS_SHARE))


class HandleBudget:
    """Counts held slots per owner and in total; ``acquire`` refuses past the caps."""

    def __init__(self) -> None:
        self.total = 0
        self._owners: dict[int, list[Any]] = {}  # id(owner) -> [owner, count]

    def held(self, owner: Any) -> int:
        """Slots ``owner`` holds."""
        entry = self._owners.get(id(owner))
        return int(entry[1]) if entry is not None else 0

    def acquire(self, owner: Any, per_owner: int, total: int) -> str | None:
        """Take one slot for ``owner``; None, or why it was refused (nothing taken)."""
        entry = self._owners.get(id(owner))
        count = entry[1] if entry is not None else 0
        if count >= per_owner:
            return f"Too many open files on this connection (limit {per_owner})"
        if self.total >= total:
            return f"Too many open files on this server (limit {total})"
        if entry is None:
            self._owners[id(owner)] = [owner, 1]  # the strong ref keeps id() unique
        else:
            entry[1] += 1
        self.total += 1
        return None

    def release(self, owner: Any) -> None:
        """Give one slot of ``owner``'s back."""
        entry = self._owners.get(id(owner))
        if entry is None:
            return
        entry[1] -= 1
        self.total -= 1
        if entry[1] <= 0:
            del self._owners[id(owner)]


PROCESS_BUDGET = HandleBudget()
