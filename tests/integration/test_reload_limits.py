"""A reload (SIGHUP) does not double the budget: old and new generations count together.

With one process and with two workers (each generation then counts in its own two
slots of the segment, and a killed supervisor's workers die with it).

Verdicts come from what each raw connection receives (the version line, or
a close without it) and from log lines, never from timings.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_reload import closing, serve_cli  # noqa: F401 (a fixture)
from tests.integration.test_worker_limits import Flood


@pytest.mark.parametrize("workers", [1, 2])
def test_max_startups_holds_across_a_reload_and_a_killed_generation(
    tmp_path: Path,
    keydir: Path,
    closing: list[Any],  # noqa: F811
    workers: int,
) -> None:
    flags = ["--max-startups", "3", "--per-source-penalties", "no", "--workers", str(workers)]
    service = serve_cli(tmp_path, keydir, *flags)
    closing.append(service)
    first = service.start().main
    old = Flood(service.port)
    closing.append(old)
    assert _admitted(old.open(2)) == [True, True]  # two unauthenticated on the first generation
    second = service.reload()
    service.wait_line("draining: ", count=workers)
    new = Flood(service.port)
    closing.append(new)
    assert _admitted(new.open(2)) == [True, False]  # 2 + 1 = 3 server-wide: the next one is dropped
    service.wait_line("past MaxStartups (3 unauthenticated)")
    old.close()
    assert service.exited(first)  # drained: its slots are free again
    assert _admitted(new.open(3)) == [True, True, False]
    third = service.reload()  # the second generation drains with 3 unauthenticated
    service.wait_line("draining: ", count=2 * workers)
    service.signal(signal.SIGKILL, second)
    assert service.exited(second)
    service.wait_line(f"previous generation (pid {second}) gone: released 3 connection(s)")
    after = Flood(service.port)
    closing.append(after)
    assert _admitted(after.open(4)) == [True, True, True, False]  # the whole budget, nothing leaked
    service.signal(signal.SIGTERM, third)
    assert service.finished() == 0


def _admitted(firsts: list[bytes]) -> list[bool]:
    """True for each connection the server admitted (it sent its version line)."""
    return [first.startswith(b"SSH-2.0-") for first in firsts]
