"""One hint to glibc's allocator: keep freed memory at the top of the heap.

glibc gives the top of its heap back to the kernel whenever more than
``M_TRIM_THRESHOLD`` bytes (128 KiB at start) are free there. A connection
receiving a stream frees about that much after every read (the decrypted
packets the application consumed), so the heap would shrink and grow again
on each read, and every regrowth faults in fresh zeroed pages: some 20,000
page faults per 512 MiB received, ~9 % of the server's CPU.

glibc raises that threshold by itself the first time a program frees a large
memory-mapped block: to twice the block's size. ``settle`` frees one such
block (``SETTLE_BYTES``) once per process, so the heap keeps up to twice that
at its top. A process that sets ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``
or ``MALLOC_MMAP_THRESHOLD_`` keeps its own values (glibc then ignores the
hint); other allocators ignore it too.
"""

from __future__ import annotations

SETTLE_BYTES = 1 << 21  # glibc then trims only beyond 4 MiB free at the top
_settled = False


def settle() -> None:
    """Give glibc the hint, once per process (cheap: one mmap and munmap)."""
    global _settled
    if not _settled:
        _settled = True
        bytearray(SETTLE_BYTES)  # above the mmap threshold: mapped, then freed at once
