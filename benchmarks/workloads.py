"""The workloads. Each runs once against one server and returns metrics.

A workload function takes the run's ``Bench`` (keys, sizes, processes) and
one ``Target`` and returns ``{metric: value}``; the harness interleaves
servers and repeats. Server CPU is read from /proc around the measured
part only; see README.md for what each metric means.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import clients, procs
from benchmarks.clients import Endpoint

MB = 1e6
GB = 1e9


@dataclass
class Target:
    """One server under test."""

    name: str
    port: int
    pid: int
    sftp_root: Path
    ciphers: frozenset[str]
    counts_children: bool = False  # sshd: per-connection processes are children
    has_sftp: bool = True
    max_connections: int = 1 << 30
    notes: list[str] = field(default_factory=list)
    restart: Callable[[], None] | None = None  # a fresh server process (Python servers)
    workloads: frozenset[str] | None = None  # the workloads this server is in (None: all)

    def cpu(self) -> float:
        """Server CPU seconds so far (children included for sshd)."""
        times = procs.cpu_times(self.pid)
        return times.total if self.counts_children else times.own

    def cpu_split(self) -> tuple[float, float]:
        """Server (user, system) CPU seconds so far (children included for sshd)."""
        t = procs.cpu_times(self.pid)
        if self.counts_children:
            return t.user + t.children_user, t.system + t.children_system
        return t.user, t.system

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until per-connection child processes are gone (sshd), so their CPU is counted."""
        if not self.counts_children:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(procs.descendants(self.pid)) > 1:
            time.sleep(0.05)


@dataclass
class Sizes:
    """Workload sizes of one run (``--quick`` shrinks them)."""

    reps: int = 5
    seq_conns: int = 40
    rate_conns: int = 300
    in_flight: int = 50
    bulk_bytes: int = 256 << 20
    ciphers: tuple[str, ...] = ("chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com")
    scale: tuple[int, ...] = (1000,)
    scale_reps: int = 2
    sftp_bytes: int = 256 << 20
    load_conns: int = 200
    load_probes: int = 200
    load_seconds: float = 10.0  # probing stops after this long even if fewer probes ran
    load_reps: int = 3
    loadgens: int = 2
    ossh_seq: int = 60  # OpenSSH workload: sequential ssh processes
    ossh_total: int = 300  # ... and ssh processes run with ossh_in_flight at a time
    ossh_in_flight: int = 50
    ossh_kex: str | None = None  # --ossh-kex: pin the OpenSSH client's KexAlgorithms


@dataclass
class Bench:
    """What every workload needs: processes, client identity, scratch space."""

    procs: procs.ProcessSet
    user: str
    key: str
    workdir: Path
    sizes: Sizes
    log: Callable[[str], None]
    repo: Path

    def endpoint(self, target: Target) -> Endpoint:
        return Endpoint(target.port, self.user, self.key)


def _run(argv: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(argv, capture_output=True, timeout=timeout, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {result.returncode}: {result.stderr[-400:]!r}")
    return result


def _rate(size: int, seconds: float, setup: float) -> float:
    """MB/s over ``seconds`` less the connection set-up (at most 3/4 of it is subtracted)."""
    return size / MB / max(seconds - setup, seconds / 4, 1e-6)


def _timed_ssh(bench: Bench, target: Target, command: str, cipher: str, **kw: Any) -> float:
    start = time.perf_counter()
    _run(clients.ssh_argv(bench.endpoint(target), command, cipher), 600, **kw)
    return time.perf_counter() - start


# -- 1. connection cost -------------------------------------------------------------------
def _loadgens(
    bench: Bench, target: Target, mode: str, total: int, in_flight: int, size: int = 0
) -> list[subprocess.Popen[bytes]]:
    """Start the load-generator processes, splitting ``total`` and ``in_flight``."""
    count = max(1, min(bench.sizes.loadgens, total))
    out = []
    for i in range(count):
        share = total // count + (1 if i < total % count else 0)
        conc = max(1, in_flight // count)
        argv = [
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            mode,
            str(target.port),
            bench.user,
            bench.key,
            str(share),
            str(conc),
            str(size),
        ]
        out.append(
            bench.procs.start(argv, cwd=bench.repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        )
    return out


def _read_json(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """The next JSON line a load generator prints (bounded wait)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        chunk = proc.stdout.readline()
        if chunk:
            buf += chunk
            if buf.endswith(b"\n"):
                return dict(json.loads(buf))
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.01)
    raise RuntimeError(f"load generator gave no result (exit {proc.poll()})")


def connection_cost(bench: Bench, target: Target) -> dict[str, float]:
    """Sequential latency, then connections/s and server CPU per connection at 50 in flight."""
    sizes = bench.sizes
    latencies = clients.sequential_latencies(bench.endpoint(target), sizes.seq_conns, 300)
    target.settle()
    cpu0 = target.cpu()
    gens = _loadgens(bench, target, "connect", sizes.rate_conns, sizes.in_flight)
    try:
        reports = [_read_json(gen, 600) for gen in gens]
    finally:
        for gen in gens:
            bench.procs.stop(gen)
    target.settle()
    cpu = target.cpu() - cpu0
    done = sum(int(r["done"]) for r in reports)
    errors = sum(int(r["errors"]) for r in reports)
    if errors:
        bench.log(f"  {target.name}: {errors} connections failed: {reports[0]['first_error']}")
    elapsed = max(float(r["elapsed"]) for r in reports)
    latencies.sort()
    return {
        "conn.latency_ms": 1000 * latencies[len(latencies) // 2],
        "conn.rate": done / elapsed,
        "conn.cpu_ms": 1000 * cpu / max(1, done),
    }


# -- 1b. connection cost with OpenSSH's own client ---------------------------------------------
def openssh_connections(bench: Bench, target: Target) -> dict[str, float]:
    """A new ``ssh host 'echo hi'`` process per connection, OpenSSH's defaults.

    First ``ossh_seq`` one after another (wall time per run, server CPU per
    connection), then ``ossh_total`` with ``ossh_in_flight`` running at
    once (connections/s, server CPU per connection). CPU is reported as
    user and system separately; the server's own idle work (an
    application's ``accept(1)`` loop) is part of what it costs.
    """
    sizes = bench.sizes
    argv = clients.default_ssh_argv(bench.endpoint(target), "echo hi", sizes.ossh_kex)
    _note_negotiated(target, argv)  # also the warm-up: first-use imports are not measured
    target.settle()
    user0, sys0 = target.cpu_split()
    walls = []
    for _ in range(sizes.ossh_seq):
        start = time.perf_counter()
        _check_echo(argv)
        walls.append(time.perf_counter() - start)
    target.settle()
    user1, sys1 = target.cpu_split()
    start = time.perf_counter()
    failures = _run_in_flight(argv, sizes.ossh_total, sizes.ossh_in_flight)
    elapsed = time.perf_counter() - start
    target.settle()
    user2, sys2 = target.cpu_split()
    if failures:
        bench.log(f"  {target.name}: {failures} of {sizes.ossh_total} ssh runs failed")
    seq, flight = sizes.ossh_seq, max(1, sizes.ossh_total - failures)
    walls.sort()
    return {
        "ossh.seq_wall_ms": 1000 * walls[len(walls) // 2],
        "ossh.seq_cpu_ms": 1000 * (user1 - user0 + sys1 - sys0) / seq,
        "ossh.seq_user_ms": 1000 * (user1 - user0) / seq,
        "ossh.seq_sys_ms": 1000 * (sys1 - sys0) / seq,
        "ossh.flight_rate": flight / elapsed,
        "ossh.flight_cpu_ms": 1000 * (user2 - user1 + sys2 - sys1) / flight,
        "ossh.flight_user_ms": 1000 * (user2 - user1) / flight,
        "ossh.flight_sys_ms": 1000 * (sys2 - sys1) / flight,
    }


def _note_negotiated(target: Target, argv: list[str]) -> None:
    """Record (once) which kex and cipher OpenSSH's defaults end up with on ``target``.

    The client's own cost differs by kex: sntrup761x25519 (OpenSSH 9.0-9.8's
    first choice, offered by sshd and by geossh with the ``pq`` extra) costs
    the 9.2 client ~100 ms of its own CPU per connection, curve25519 ~1 ms.
    """
    result = _run([*argv[:2], "-v", *argv[2:]], 120)
    if result.stdout != b"hi\n":
        raise RuntimeError(f"ssh echo hi printed {result.stdout[:100]!r}")
    if any(n.startswith("OpenSSH defaults negotiate") for n in target.notes):
        return
    text = result.stderr.decode(errors="replace")
    kex = re.search(r"kex: algorithm: (\S+)", text)
    cipher = re.search(r"kex: server->client cipher: (\S+)", text)
    target.notes.append(
        f"OpenSSH defaults negotiate kex {kex.group(1) if kex else '?'}, "
        f"cipher {cipher.group(1) if cipher else '?'}"
    )


def _check_echo(argv: list[str]) -> None:
    result = _run(argv, 120)
    if result.stdout != b"hi\n":
        raise RuntimeError(f"ssh echo hi printed {result.stdout[:100]!r}")


def _run_in_flight(argv: list[str], total: int, in_flight: int) -> int:
    """Run ``total`` copies of ``argv``, ``in_flight`` at a time; how many failed.

    A run is over when its stdout reaches EOF (then it is reaped); other
    children of the harness (the servers) are never waited for here.
    """
    running: dict[int, tuple[subprocess.Popen[bytes], bytearray]] = {}
    started = failures = 0
    deadline = time.monotonic() + 600
    with selectors.DefaultSelector() as selector:
        while (started < total or running) and time.monotonic() < deadline:
            while started < total and len(running) < in_flight:
                proc = subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip
                assert proc.stdout is not None
                running[proc.stdout.fileno()] = (proc, bytearray())
                selector.register(proc.stdout.fileno(), selectors.EVENT_READ)
                started += 1
            for key, _events in selector.select(timeout=5):
                proc, out = running[key.fd]
                chunk = os.read(key.fd, 4096)
                if chunk:
                    out += chunk
                    continue
                selector.unregister(key.fd)
                del running[key.fd]
                assert proc.stdout is not None
                proc.stdout.close()
                failures += proc.wait(timeout=60) != 0 or out != b"hi\n"
        for proc, _out in running.values():  # only after the deadline
            proc.kill()
            proc.wait()
            failures += 1
    return failures


# -- 2. bulk data ------------------------------------------------------------------------
def bulk(bench: Bench, target: Target) -> dict[str, float]:
    """256 MiB up (``cat > /dev/null``) and down (``head -c``) over one channel, per cipher."""
    out: dict[str, float] = {}
    size = bench.sizes.bulk_bytes
    for cipher in bench.sizes.ciphers:
        if cipher not in target.ciphers:
            continue
        tag = cipher.split("@")[0]
        setup = _timed_ssh(bench, target, "echo hi", cipher)
        target.settle()
        cpu0 = target.cpu()
        with subprocess.Popen(
            ["head", "-c", str(size), "/dev/zero"], stdout=subprocess.PIPE
        ) as src:
            up = _timed_ssh(bench, target, "cat > /dev/null", cipher, stdin=src.stdout)
        target.settle()
        cpu1 = target.cpu()
        start = time.perf_counter()
        down_bytes = _download(bench, target, size, cipher)
        down = time.perf_counter() - start
        target.settle()
        cpu2 = target.cpu()
        if down_bytes != size:
            raise RuntimeError(f"downloaded {down_bytes} of {size} bytes")
        out[f"bulk.{tag}.up_MBps"] = _rate(size, up, setup)
        out[f"bulk.{tag}.down_MBps"] = _rate(size, down, setup)
        out[f"bulk.{tag}.cpu_s_per_GB"] = (cpu2 - cpu0) / (2 * size / GB)
        out[f"bulk.{tag}.cpu_up_s_per_GB"] = (cpu1 - cpu0) / (size / GB)
        out[f"bulk.{tag}.cpu_down_s_per_GB"] = (cpu2 - cpu1) / (size / GB)
    return out


def _download(bench: Bench, target: Target, size: int, cipher: str) -> int:
    """Run ``head -c size /dev/zero`` remotely into ``wc -c``; bytes received."""
    argv = clients.ssh_argv(bench.endpoint(target), f"head -c {size} /dev/zero", cipher)
    with (
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as ssh,
        subprocess.Popen(["wc", "-c"], stdin=ssh.stdout, stdout=subprocess.PIPE) as wc,
    ):
        assert ssh.stdout is not None
        ssh.stdout.close()
        counted, _ = wc.communicate(timeout=600)
        ssh.wait(timeout=30)
    return int(counted.split()[0])


# -- 3. scale --------------------------------------------------------------------------------
def scale(bench: Bench, target: Target, count: int) -> dict[str, float]:
    """Open ``count`` connections each holding a session; memory, time, and a probe at N."""
    if count > target.max_connections:
        return {}
    prefix = f"scale.{count}"
    procs.raise_nofile(count + 1024)
    if target.restart is not None:
        # A fresh process: otherwise memory freed by the previous repetition is
        # reused and the growth per connection reads too low.
        target.restart()
    clients.sequential_latencies(bench.endpoint(target), 1, 60)  # warm: first-use imports
    target.settle()
    mem0 = procs.tree_memory_kb(target.pid)
    in_flight = bench.sizes.in_flight
    gens = _loadgens(bench, target, "hold", count, in_flight)
    try:
        reports = [_read_json(gen, 900) for gen in gens]
        time.sleep(0.5)  # let the last sessions' commands start
        mem1 = procs.tree_memory_kb(target.pid)
        probe = clients.sequential_latencies(bench.endpoint(target), 3, 120)
        for gen in gens:
            assert gen.stdin is not None
            gen.stdin.write(b"close\n")
            gen.stdin.flush()
        for gen in gens:
            _read_json(gen, 120)
    finally:
        for gen in gens:
            bench.procs.stop(gen)
    target.settle(30)
    opened = sum(int(r["opened"]) for r in reports)
    errors = sum(int(r["errors"]) for r in reports)
    if errors:
        bench.log(f"  {target.name}: {errors} of {count} failed: {reports[0]['first_error']}")
    probe.sort()
    return {
        f"{prefix}.opened": opened,
        f"{prefix}.open_s": max(float(r["elapsed"]) for r in reports),
        f"{prefix}.kb_per_conn": (mem1 - mem0) * 1.024 / max(1, opened),
        f"{prefix}.probe_ms": 1000 * probe[1],
    }


# -- 4. SFTP -------------------------------------------------------------------------------
def sftp(bench: Bench, target: Target) -> dict[str, float]:
    """OpenSSH ``sftp -b``: put then get of one file; MB/s with session set-up subtracted."""
    if not target.has_sftp:
        return {}
    size = bench.sizes.sftp_bytes
    source = bench.workdir / f"sftp-src-{size}"
    if not source.exists() or source.stat().st_size != size:
        block = os.urandom(1 << 20)
        with open(source, "wb") as fh:
            for _ in range(size >> 20):
                fh.write(block)
            fh.write(block[: size & ((1 << 20) - 1)])
    local = bench.workdir / f"sftp-get-{target.name}"
    remote = target.sftp_root / "bench.bin"
    batches = {
        "setup": "pwd\n",
        "put": f"put {source} bench.bin\n",
        "get": f"get bench.bin {local}\n",
    }
    timings = {}
    try:
        for step, text in batches.items():
            batch = bench.workdir / f"batch-{step}"
            batch.write_text(text)
            start = time.perf_counter()
            _run(clients.sftp_argv(bench.endpoint(target), str(batch)), 600)
            timings[step] = time.perf_counter() - start
        if local.stat().st_size != size:
            raise RuntimeError(f"sftp get returned {local.stat().st_size} of {size} bytes")
    finally:
        for path in (local, remote):
            path.unlink(missing_ok=True)
    return {
        "sftp.put_MBps": _rate(size, timings["put"], timings["setup"]),
        "sftp.get_MBps": _rate(size, timings["get"], timings["setup"]),
    }


# -- 5. latency under load -------------------------------------------------------------
def latency_under_load(bench: Bench, target: Target) -> dict[str, float]:
    """Exec round trips (p50/p99) on one connection while N others stream downloads."""
    sizes = bench.sizes
    endpoint = bench.endpoint(target)
    gens = _loadgens(bench, target, "stream", sizes.load_conns, sizes.in_flight, 1 << 40)
    try:
        opened = sum(int(_read_json(gen, 600)["opened"]) for gen in gens)
        time.sleep(0.5)
        samples = asyncio.run(
            asyncio.wait_for(
                clients.exec_round_trips(endpoint, sizes.load_probes, 0.005, sizes.load_seconds),
                600,
            )
        )
        received = 0.0
        seconds = 0.0
        for gen in gens:
            assert gen.stdin is not None
            gen.stdin.write(b"stop\n")
            gen.stdin.flush()
        for gen in gens:
            report = _read_json(gen, 120)
            received += float(report["received"])
            seconds = max(seconds, float(report["seconds"]))
    finally:
        for gen in gens:
            bench.procs.stop(gen)
    target.settle(30)
    return {
        "load.streams": opened,
        "load.probes": len(samples),
        "load.p50_ms": 1000 * clients.percentile(samples, 50),
        "load.p99_ms": 1000 * clients.percentile(samples, 99),
        "load.stream_MBps": received / MB / max(1e-6, seconds),
    }


# -- multi-core --------------------------------------------------------------------------
def workers_rate(bench: Bench, target: Target) -> dict[str, float]:
    """Connections/s at 50 in flight only (geossh with one worker vs ``workers=2``)."""
    sizes = bench.sizes
    gens = _loadgens(bench, target, "connect", sizes.rate_conns, sizes.in_flight)
    try:
        reports = [_read_json(gen, 600) for gen in gens]
    finally:
        for gen in gens:
            bench.procs.stop(gen)
    done = sum(int(r["done"]) for r in reports)
    return {"workers.rate": done / max(float(r["elapsed"]) for r in reports)}
