"""Micro-benchmark: the SFTP engine alone (no SSH), per interface, for READ and WRITE.

Not a test. Drives ``SFTPServer`` over an in-memory channel the way OpenSSH's
``sftp`` drives it (255 KiB requests, the requests of one batch in one recv)
and prints the engine's CPU seconds per GiB moved for ``LocalSFTPServer`` and
for a paramiko-style interface (``os.fdopen`` files and the default
``SFTPHandle.read``/``write``, like ``benchmarks/servers/paramiko_style_app.py``).
The file lives in a temporary directory (tmpfs when ``/dev/shm`` exists).

    python -m benchmarks.micro_sftp [--mib 256] [--reps 5] [--chunk 261120]   (from the repo root)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import tempfile
import time
from typing import Any

import gevent

from geossh._green import heap
from geossh.sftp import protocol as p
from geossh.sftp.attributes import SFTPAttributes
from geossh.sftp.handle import SFTPHandle, convert_errno
from geossh.sftp.interface import SFTPServerInterface
from geossh.sftp.local import LocalSFTPServer
from geossh.sftp.server import SFTPServer

RECV = 256 * 1024


class StubHandle(SFTPHandle):
    """paramiko's test stub: ``readfile``/``writefile`` and the default read/write."""

    readfile: Any
    writefile: Any

    def stat(self) -> Any:
        return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))


class StubServer(SFTPServerInterface):
    """Files below ``ROOT`` opened with ``os.open``/``os.fdopen`` (paramiko's test stub)."""

    def __init__(self, server: Any, root: str) -> None:
        super().__init__(server)
        self.root = root

    def open(self, path: str, flags: int, attr: Any) -> Any:
        try:
            fd = os.open(self.root + str(self.canonicalize(path)), flags, 0o644)
        except OSError as e:
            return convert_errno(e.errno)
        mode = "wb" if flags & os.O_WRONLY else "r+b" if flags & os.O_RDWR else "rb"
        handle = StubHandle(flags)
        handle.readfile = handle.writefile = os.fdopen(fd, mode)
        return handle


class FakeTransport:
    local_version = "SSH-2.0-geossh"
    remote_version = "SSH-2.0-OpenSSH_9.2p1"

    def get_log_channel(self) -> str:
        return "geossh.bench"

    def get_hexdump(self) -> bool:
        return False


class MemoryChannel:
    """recv hands out prepared chunks (after a yield); sendall counts what the engine writes."""

    closed = False

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks[::-1]
        self.sent = 0
        self.sends = 0

    def recv(self, n: int) -> bytes:
        gevent.sleep(0)  # a real recv waits for the network: other greenlets run meanwhile
        return self.chunks.pop() if self.chunks else b""

    def sendall(self, data: Any) -> None:
        self.sent += len(data)
        self.sends += 1

    def send_exit_status(self, status: int) -> None:
        pass

    def close(self) -> None:
        pass

    def get_transport(self) -> FakeTransport:
        return FakeTransport()

    def get_name(self) -> str:
        return "0"


def _packet(ptype: int, body: bytes) -> bytes:
    return struct.pack(">IB", len(body) + 1, ptype) + body


def _open(rid: int, pflags: int) -> bytes:
    body = struct.pack(">I", rid) + p.encode_string("bench.bin") + struct.pack(">II", pflags, 0)
    return _packet(p.CMD_OPEN, body)


def session(kind: str, size: int, chunk: int) -> list[bytes]:
    """The client's byte stream, cut into recv-sized pieces: INIT, OPEN, READs or WRITEs, CLOSE."""
    handle = p.encode_string(b"hx1")
    head = _packet(p.CMD_INIT, struct.pack(">I", 3))
    if kind == "read":
        head += _open(1, p.SFTP_FLAG_READ)
        pieces = [
            _packet(p.CMD_READ, struct.pack(">I", 2 + i) + handle + struct.pack(">QI", off, chunk))
            for i, off in enumerate(range(0, size, chunk))
        ]
        batches = [b"".join(pieces[i : i + 8]) for i in range(0, len(pieces), 8)]
    else:
        head += _open(1, p.SFTP_FLAG_WRITE | p.SFTP_FLAG_CREATE | p.SFTP_FLAG_TRUNC)
        data = os.urandom(chunk)
        stream = b"".join(
            _packet(
                p.CMD_WRITE,
                struct.pack(">I", 2 + i) + handle + struct.pack(">Q", off) + p.encode_string(data),
            )
            for i, off in enumerate(range(0, size, chunk))
        )
        batches = [stream[i : i + RECV] for i in range(0, len(stream), RECV)]
    tail = _packet(p.CMD_CLOSE, struct.pack(">I", 1 << 30) + handle)
    return [head, *batches, tail]


def run(interface: type[SFTPServerInterface], root: str, kind: str, size: int, chunk: int) -> float:
    """CPU seconds the engine spends on one session."""
    if kind == "write":  # truncating the last run's file is not the engine's work
        os.unlink(os.path.join(root, "bench.bin"))
    chunks = session(kind, size, chunk)
    channel = MemoryChannel(chunks)
    server = SFTPServer(channel, "sftp", None, interface, root)  # type: ignore[arg-type]
    start = time.process_time()
    server.start_subsystem("sftp", channel.get_transport(), channel)  # type: ignore[arg-type]
    elapsed = time.process_time() - start
    server.finish_subsystem()
    expected = size + 13 * (-(-size // chunk)) if kind == "read" else 0
    if kind == "read" and channel.sent < expected:
        raise RuntimeError(f"read {channel.sent} of {expected} bytes")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=p.MAX_READ, help="request length")
    parser.add_argument("--only", default="", help="one case, e.g. write:paramiko-style")
    args = parser.parse_args()
    heap.settle()  # as a server process does (geossh._green.pump)
    size = args.mib << 20
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    root = tempfile.mkdtemp(prefix="micro-sftp-", dir=base)
    cases = [("LocalSFTPServer", LocalSFTPServer), ("paramiko-style", StubServer)]
    try:
        with open(os.path.join(root, "bench.bin"), "wb") as fh:
            fh.write(os.urandom(size))
        print(f"{'interface':18} {'op':6} {'s/GiB (median [min-max])':>28}")
        for kind in ("write", "read"):
            for name, interface in cases:
                if args.only and args.only not in (f"{kind}:{name}", kind):
                    continue
                times = [run(interface, root, kind, size, args.chunk) for _ in range(args.reps)]
                per = [t * (1 << 30) / size for t in times]
                low, high = min(per), max(per)
                cell = f"{statistics.median(per):.3f} [{low:.3f}-{high:.3f}]"
                print(f"{name:18} {kind:6} {cell:>28}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
