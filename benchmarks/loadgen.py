"""A load-generator process: many concurrent asyncssh client connections.

``python -m benchmarks.loadgen MODE PORT USER KEY COUNT CONCURRENCY [SIZE]``

* ``connect``: COUNT full connections (exec ``echo hi``), CONCURRENCY in
  flight; prints one JSON line and exits.
* ``hold``: opens COUNT connections, each with a session running
  ``cat > /dev/null``; prints a JSON line, waits for a line on stdin, closes.
* ``stream``: opens COUNT connections, each reading ``head -c SIZE
  /dev/zero``; prints a JSON line, streams until a line on stdin, then
  prints the bytes received and exits.

Every wait is bounded; a connection that fails is counted, not retried.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import asyncssh

from benchmarks.clients import Endpoint, connect_exec_close, connect_options

OPEN_TIMEOUT = 600.0


class _Counter(asyncssh.SSHClientSession[bytes]):
    """Counts (and drops) what the server sends."""

    received = 0

    def data_received(self, data: bytes, datatype: Any) -> None:
        _Counter.received += len(data)


def _emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def _bounded(count: int, concurrency: int, factory: Any) -> tuple[list[Any], list[str]]:
    """Run ``factory()`` ``count`` times, ``concurrency`` at once; results and errors."""
    sem = asyncio.Semaphore(concurrency)
    results: list[Any] = []
    errors: list[str] = []

    async def one() -> None:
        async with sem:
            try:
                results.append(await factory())
            except (OSError, asyncssh.Error, asyncio.TimeoutError, RuntimeError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), OPEN_TIMEOUT)
    return results, errors


async def _wait_stdin() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def main_async(
    mode: str, endpoint: Endpoint, count: int, concurrency: int, size: int
) -> None:
    start = time.perf_counter()
    if mode == "connect":
        results, errors = await _bounded(count, concurrency, lambda: connect_exec_close(endpoint))
        _emit(
            done=len(results),
            errors=len(errors),
            first_error=errors[:1],
            elapsed=time.perf_counter() - start,
        )
        return
    command = "cat > /dev/null" if mode == "hold" else f"head -c {size} /dev/zero"

    async def open_one() -> asyncssh.SSHClientConnection:
        conn = await asyncssh.connect(**connect_options(endpoint))
        await conn.create_session(_Counter, command, encoding=None)
        return conn

    conns, errors = await _bounded(count, concurrency, open_one)
    _emit(
        opened=len(conns),
        errors=len(errors),
        first_error=errors[:1],
        elapsed=time.perf_counter() - start,
    )
    streaming_from = time.perf_counter()
    received_before = _Counter.received
    await _wait_stdin()
    received = _Counter.received - received_before
    duration = time.perf_counter() - streaming_from
    for conn in conns:
        conn.close()
    await asyncio.wait_for(
        asyncio.gather(*(c.wait_closed() for c in conns), return_exceptions=True), 30
    )
    _emit(closed=len(conns), received=received, seconds=duration)


def main() -> None:
    mode, port, user, key, count, concurrency = sys.argv[1:7]
    size = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    endpoint = Endpoint(int(port), user, key)
    asyncio.run(main_async(mode, endpoint, int(count), int(concurrency), size))


if __name__ == "__main__":
    main()
