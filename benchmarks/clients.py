"""The load generators' client side: OpenSSH argv builders and asyncssh calls.

OpenSSH ``ssh``/``sftp`` run as real processes; the asyncssh client runs in
process (``asyncssh_connect``) for sequential latency and probes, and in
``loadgen`` subprocesses for many concurrent connections. Every client
uses kex curve25519-sha256, an ssh-ed25519 host key and an Ed25519 user
key, so all servers do the same cryptographic work per connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

KEX = ["curve25519-sha256", "curve25519-sha256@libssh.org"]
HOST_KEY_ALGS = ["ssh-ed25519"]
#: Cipher of the connection workloads (every server under test has it).
CONNECT_CIPHER = "aes128-gcm@openssh.com"


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom a client connects."""

    port: int
    user: str
    key: str  # private key file (Ed25519)


def ssh_options(endpoint: Endpoint, cipher: str = CONNECT_CIPHER) -> list[str]:
    """OpenSSH options shared by ``ssh`` and ``sftp``: no config, no agent, fixed algorithms."""
    return [
        "-F",
        "/dev/null",
        "-i",
        endpoint.key,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "BatchMode=yes",
        "-o",
        "Compression=no",
        "-o",
        "ConnectTimeout=30",
        "-o",
        f"KexAlgorithms={','.join(KEX)}",
        "-o",
        f"HostKeyAlgorithms={','.join(HOST_KEY_ALGS)}",
        "-c",
        cipher,
    ]


def ssh_argv(endpoint: Endpoint, command: str, cipher: str = CONNECT_CIPHER) -> list[str]:
    """``ssh`` running ``command`` (no tty)."""
    return [
        "ssh",
        "-T",
        "-p",
        str(endpoint.port),
        *ssh_options(endpoint, cipher),
        f"{endpoint.user}@127.0.0.1",
        command,
    ]


def default_ssh_argv(endpoint: Endpoint, command: str, kex: str | None = None) -> list[str]:
    """``ssh`` as a user runs it: OpenSSH's default kex, cipher and MAC lists.

    Only what a benchmark cannot leave to chance is set: no config file,
    agent or known_hosts, the Ed25519 key, batch mode. Each server then
    negotiates the client's first choice it supports. ``kex`` pins
    KexAlgorithms (to compare servers doing the same exchange).
    """
    pinned = ["-o", f"KexAlgorithms={kex}"] if kex else []
    return [
        "ssh",
        "-T",
        *pinned,
        "-p",
        str(endpoint.port),
        "-F",
        "/dev/null",
        "-i",
        endpoint.key,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=30",
        f"{endpoint.user}@127.0.0.1",
        command,
    ]


def sftp_argv(endpoint: Endpoint, batch: str, cipher: str = CONNECT_CIPHER) -> list[str]:
    """``sftp -b batch`` against the endpoint."""
    return [
        "sftp",
        "-q",
        "-b",
        batch,
        "-P",
        str(endpoint.port),
        *ssh_options(endpoint, cipher),
        f"{endpoint.user}@127.0.0.1",
    ]


def connect_options(endpoint: Endpoint, cipher: str = CONNECT_CIPHER) -> dict[str, Any]:
    """Keyword arguments of ``asyncssh.connect`` for this endpoint."""
    return {
        "host": "127.0.0.1",
        "port": endpoint.port,
        "username": endpoint.user,
        "client_keys": [endpoint.key],
        "known_hosts": None,
        "agent_path": None,
        "kex_algs": KEX,
        "server_host_key_algs": HOST_KEY_ALGS,
        "encryption_algs": [cipher],
        "compression_algs": None,
        "connect_timeout": 60,
    }


async def connect_exec_close(endpoint: Endpoint) -> float:
    """One full connection (connect, kex, auth, exec ``echo hi``, close); seconds."""
    import asyncssh

    start = time.perf_counter()
    async with asyncssh.connect(**connect_options(endpoint)) as conn:
        result = await conn.run("echo hi", check=True)
        if result.stdout != "hi\n":
            raise RuntimeError(f"unexpected output {result.stdout!r}")
    return time.perf_counter() - start


def sequential_latencies(endpoint: Endpoint, count: int, timeout: float) -> list[float]:
    """``count`` full connections one after another, in process; seconds each."""

    async def run() -> list[float]:
        out = []
        for _ in range(count):
            out.append(await connect_exec_close(endpoint))
        return out

    return asyncio.run(asyncio.wait_for(run(), timeout))


async def exec_round_trips(
    endpoint: Endpoint, count: int, pause: float, max_seconds: float
) -> list[float]:
    """Up to ``count`` exec ``echo hi`` round trips on one connection (at least 5,
    then stopping after ``max_seconds``); seconds each."""
    import asyncssh

    out: list[float] = []
    async with asyncssh.connect(**connect_options(endpoint)) as conn:
        await conn.run("echo hi", check=True)
        stop = time.perf_counter() + max_seconds
        for _ in range(count):
            if len(out) >= 5 and time.perf_counter() > stop:
                break
            start = time.perf_counter()
            result = await conn.run("echo hi", check=True)
            out.append(time.perf_counter() - start)
            if result.stdout != "hi\n":
                raise RuntimeError(f"unexpected output {result.stdout!r}")
            await asyncio.sleep(pause)
    return out


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
