"""What every benchmark server does, independent of the SSH library.

The workload commands are real shell commands, so OpenSSH's sshd runs
them unchanged; the Python servers parse the same strings with
``parse_command`` and emulate them without spawning a process.
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass

ECHO = "echo"
SINK = "sink"
SOURCE = "source"
ZEROS = bytes(256 * 1024)
_SOURCE = re.compile(r"^head -c (\d+) /dev/zero$")


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
