"""geossh._green.heap: the glibc hint raises the trim and mmap thresholds (fresh processes)."""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys

import pytest

from geossh._green import heap

# In a fresh interpreter: is a 1 MiB block served from the heap (True) or mmapped?
# mallinfo2's hblkhd is the total size of mmapped blocks.
PROBE = """
import ctypes, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
        "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
from geossh._green import heap  # both cases import geossh (and gevent) first
if sys.argv[1] == "settle":
    heap.settle()
before = libc.mallinfo2().hblkhd
block = bytearray(1 << 20)
print(libc.mallinfo2().hblkhd == before)
"""


def _glibc() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc(), reason="needs glibc >= 2.33 (mallinfo2)")
@pytest.mark.parametrize(("mode", "from_heap"), [("plain", False), ("settle", True)])
def test_settle_serves_large_buffers_from_the_heap(mode: str, from_heap: bool) -> None:
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* variables: glibc's defaults apply
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(from_heap)


def test_settle_runs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(heap, "_settled", False)
    monkeypatch.setattr(heap, "SETTLE_BYTES", 7)
    monkeypatch.setattr(heap, "bytearray", lambda n: calls.append(n), raising=False)
    heap.settle()
    heap.settle()
    assert calls == [7]
