"""Processes under test: start, wait for readiness, measure from /proc, kill.

Every process is started in its own process group and registered with a
``ProcessSet``, whose ``close()`` kills each group (SIGTERM, then SIGKILL)
so nothing outlives the run. CPU time comes from /proc/<pid>/stat
(utime + stime, plus cutime + cstime for reaped children, which is how
sshd's per-connection processes are counted); memory is the PSS of the
process tree from /proc/<pid>/smaps_rollup (RSS where that is unreadable).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

_TICK = float(os.sysconf("SC_CLK_TCK"))


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds of one process, user and system, its own and its reaped children's."""

    user: float
    system: float
    children_user: float
    children_system: float

    @property
    def own(self) -> float:
        return self.user + self.system

    @property
    def children(self) -> float:
        return self.children_user + self.children_system

    @property
    def total(self) -> float:
        return self.own + self.children


def cpu_times(pid: int) -> CpuTimes:
    """utime, stime, cutime and cstime of ``pid`` in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) / _TICK for v in fields[11:15])
    return CpuTimes(utime, stime, cutime, cstime)


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, ()))
    return out


def _memory_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory_kb(pid: int) -> int:
    """PSS (KiB) summed over ``pid``'s process tree; RSS where PSS is unreadable."""
    return sum(_memory_kb(p) for p in descendants(pid))


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards ``wanted`` (as far as the hard limit allows)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


def wait_port(port: int, deadline: float) -> bool:
    """Poll until something accepts on 127.0.0.1:``port`` or ``deadline`` passes."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class ProcessSet:
    """Owns every process the harness starts; ``close()`` kills them all."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a new process group and remember it."""
        proc = subprocess.Popen(list(argv), start_new_session=True, **kwargs)  # type: ignore[call-overload]
        self._procs.append(proc)
        return proc  # type: ignore[no-any-return]

    def start_ready(
        self, argv: Sequence[str], timeout: float = 30.0, **kwargs: object
    ) -> tuple[subprocess.Popen[bytes], int]:
        """Start a server that prints ``READY <port>``; return it and the port."""
        proc = self.start(argv, stdout=subprocess.PIPE, **kwargs)
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(proc.stdout.fileno(), False)
        buf = b""
        while time.monotonic() < deadline:
            chunk = proc.stdout.read()
            if chunk:
                buf += chunk
                for line in buf.splitlines():
                    if line.startswith(b"READY "):
                        return proc, int(line.split()[1])
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop(proc)
        raise RuntimeError(f"{argv[0]}... did not become ready (output {buf[-500:]!r})")

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
        """Kill ``proc``'s process group: SIGTERM, then SIGKILL after ``grace``."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        if proc in self._procs:
            self._procs.remove(proc)

    def close(self) -> None:
        """Kill everything still running."""
        for proc in list(self._procs):
            self.stop(proc)
