"""What every benchmark server does, independent of the SSH library.

The workload commands are real shell commands, so OpenSSH's sshd runs
them unchanged; the Python servers parse the same strings with
``parse_command`` and emulate them without spawning a process.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from typing import Any

ECHO = "echo"
SINK = "sink"
SOURCE = "source"
ZEROS = bytes(256 * 1024)
_SOURCE = re.compile(r"^head -c (\d+) /dev/zero$")
PROFILE_ENV = "GEOSSH_BENCH_PROFILE"  # a path: run under cProfile, write stats there on exit
SAMPLE_ENV = "GEOSSH_BENCH_SAMPLE"  # a path: sample stacks by CPU time, write them there on exit
PHASES_ENV = "GEOSSH_BENCH_PHASES"  # a path: thread CPU by phase (benchmarks/phases.py)
SAMPLE_INTERVAL = 0.0005  # seconds of process CPU time between samples


@dataclass(frozen=True)
class Command:
    """A parsed workload command: ``kind`` plus the byte count of a source."""

    kind: str
    size: int = 0


def parse_command(command: bytes | str) -> Command | None:
    """Map ``echo hi`` / ``cat > /dev/null`` / ``head -c N /dev/zero``; else None."""
    text = command.decode() if isinstance(command, bytes) else command
    text = text.strip()
    if text == "echo hi":
        return Command(ECHO)
    if text == "cat > /dev/null":
        return Command(SINK)
    match = _SOURCE.match(text)
    if match:
        return Command(SOURCE, int(match.group(1)))
    return None


def server_args(description: str) -> argparse.Namespace:
    """The command line every Python server takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host-key", required=True, help="OpenSSH private key file")
    parser.add_argument("--authorized-key", required=True, help="the client's .pub file")
    parser.add_argument("--sftp-root", required=True, help="directory served over SFTP")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (--runner)")
    parser.add_argument("--runner", action="store_true", help="serve via geossh.runner.Server")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    return args


def announce(port: int) -> None:
    """Tell the harness the server is listening."""
    print(f"READY {port}", flush=True)


def profile_from_env(suffix: str = "") -> None:
    """Profile when the harness asks: cProfile (``GEOSSH_BENCH_PROFILE``) or sampling.

    ``GEOSSH_BENCH_PROFILE=path``: cProfile with CPU time, stats to ``path +
    suffix``. ``GEOSSH_BENCH_SAMPLE=path``: every ``SAMPLE_INTERVAL`` of
    process CPU time (ITIMER_PROF: user + system, so time the process waits
    or is preempted is never sampled, and no call is slowed down) the
    running Python stack is counted; ``path + suffix`` gets them in
    flamegraph's collapsed format (``frame;frame;leaf count``). Either is
    written at SIGTERM (when the harness stops the server); SIGUSR1 starts
    the counts afresh, so a harness can leave its warm-up out. Both cover
    the thread that calls this (every greenlet of a gevent server), not a
    threaded server's other threads. ``GEOSSH_BENCH_PHASES=path``: thread
    CPU by phase (``benchmarks/phases.py``), the same signals.
    """
    if os.environ.get(PHASES_ENV):
        from benchmarks.phases import install

        install(os.environ[PHASES_ENV] + suffix)
        return
    if os.environ.get(SAMPLE_ENV):
        _sample_cpu(os.environ[SAMPLE_ENV] + suffix)
        return
    path = os.environ.get(PROFILE_ENV)
    if not path:
        return
    import cProfile

    current = [cProfile.Profile(time.process_time)]

    def restart(signum: int, frame: Any) -> None:
        current[0].disable()
        current[0] = cProfile.Profile(time.process_time)
        current[0].enable()

    def stop(signum: int, frame: Any) -> None:
        current[0].disable()
        current[0].dump_stats(path + suffix)
        os._exit(0)

    signal.signal(signal.SIGUSR1, restart)
    signal.signal(signal.SIGTERM, stop)
    current[0].enable()


def _sample_cpu(path: str) -> None:
    """Count Python stacks every SAMPLE_INTERVAL of CPU time; write them at SIGTERM."""
    from collections import Counter

    counts: Counter[str] = Counter()

    def sample(signum: int, frame: Any) -> None:
        names = []
        while frame is not None:
            code = frame.f_code
            name = getattr(code, "co_qualname", code.co_name)  # Python 3.11+
            names.append(f"{name} ({code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno})")
            frame = frame.f_back
        counts[";".join(reversed(names))] += 1

    def restart(signum: int, frame: Any) -> None:
        counts.clear()

    def stop(signum: int, frame: Any) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0)
        with open(path, "w") as fh:
            fh.writelines(f"{stack} {n}\n" for stack, n in counts.items())
        os._exit(0)

    signal.signal(signal.SIGPROF, sample)
    signal.signal(signal.SIGUSR1, restart)
    signal.signal(signal.SIGTERM, stop)
    signal.setitimer(signal.ITIMER_PROF, SAMPLE_INTERVAL, SAMPLE_INTERVAL)
