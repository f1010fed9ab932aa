"""Benchmark: how connections spread over workers, and what server-wide limits cost.

Not a test. Two parts:

* **spread**: a ``Server(workers=2)`` (``--workers``) per accept strategy
  (``reuse_port=True``: a ``SO_REUSEPORT`` socket per worker, the default;
  ``False``: all workers accept from one shared socket), ``--connections``
  full SSH connections (asyncssh client, ``none`` auth, exec; ``--in-flight``
  at a time); each exec answers its worker's pid. Prints the count per pid.
* **cost**: the shared accounting one admitted connection does
  (``geossh.runner.shared``: max_connections slot, MaxStartups check and count,
  per-source check, count and uncount, slot release: 6 lock round trips),
  timed in a loop against the one-process counters (``srclimit.SourceLimits``).

Writes everything to ``--out`` (default ``benchmarks/results/worker-spread.json``)::

    python -m benchmarks.worker_spread [--connections 200] [--in-flight 20]   (from the repo root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

SERVER = textwrap.dedent(
    """
    import os, sys
    import geossh
    from geossh.runner.server import Server
    from geossh._facade.server import ServerInterface, AUTH_SUCCESSFUL

    class Anyone(ServerInterface):
        def get_allowed_auths(self, username):
            return "none"
        def check_auth_none(self, username):
            return AUTH_SUCCESSFUL

    def pid(session):
        session.write(f"{os.getpid()}\\n")
        return 0

    server = Server(("127.0.0.1", 0), Anyone, host_keys=[geossh.PKey.from_path(sys.argv[1])],
                    handler=pid, workers=int(sys.argv[2]), max_startups=None,
                    per_source_penalties="no", observers=[])
    server.reuse_port = sys.argv[3] == "1"
    server.bind()
    print(f"READY {server.port}", flush=True)
    server.serve_forever()
    """
)
ROOT = Path(__file__).resolve().parent.parent


def spread(key: Path, workers: int, reuse_port: bool, count: int, in_flight: int) -> dict[str, Any]:
    """Serve ``count`` connections; {pid: connections} and the elapsed time."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "server.py"
        script.write_text(SERVER)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, str(script), str(key), str(workers), "1" if reuse_port else "0"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            if not line.startswith("READY "):
                raise SystemExit(f"server did not start: {line!r}")
            port = int(line.split()[1])
            time.sleep(1.0)  # let every worker reach its accept loop (a benchmark, not a test)
            start = time.monotonic()
            pids = asyncio.run(_clients(port, count, in_flight))
            elapsed = time.monotonic() - start
        finally:
            proc.terminate()
            proc.wait(30)
    per_pid = Counter(pids)
    return {
        "strategy": "reuse_port" if reuse_port else "shared socket",
        "workers": workers,
        "connections": count,
        "in_flight": in_flight,
        "per_pid": {str(pid): n for pid, n in sorted(per_pid.items())},
        "busiest_share": max(per_pid.values()) / count,
        "seconds": round(elapsed, 2),
    }


async def _clients(port: int, count: int, in_flight: int) -> list[int]:
    import asyncssh

    gate = asyncio.Semaphore(in_flight)

    async def one() -> int:
        async with gate, asyncssh.connect(
            "127.0.0.1", port, username="bench", known_hosts=None, client_keys=None,
            agent_path=None, kex_algs=["curve25519-sha256"],
        ) as conn:  # fmt: skip
            result = await conn.run("pid", check=True)
            return int(str(result.stdout))

    return list(await asyncio.gather(*(one() for _ in range(count))))


def cost(rounds: int) -> dict[str, float]:
    """Microseconds per admitted connection: shared (2 workers) against one process."""
    from geossh.runner.shared import SharedLimits, SharedSources
    from geossh.runner.srclimit import PenaltyPolicy, SourceLimits

    shared = SharedLimits.create(2, 2 * PenaltyPolicy().max_sources)
    sources = SharedSources(shared, 0, 10, (32, 128), PenaltyPolicy())
    local = SourceLimits(10, (32, 128), PenaltyPolicy())
    few = [f"192.0.2.{i % 250}" for i in range(rounds)]  # repeat sources: hashes cached
    many = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(rounds)]  # all new

    def shared_one(host: str) -> None:
        with shared.locked():  # Server._handle: the max_connections slot
            shared.totals()
            shared.add(0, opened=1)
        with shared.locked():  # Server._start: MaxStartups, per source, count
            shared.totals()
            sources.refusal(host, 1.0)
            sources.started(host, 1.0)
            with shared.locked():
                shared.add(0, unauthenticated=1)
        with shared.locked():  # authenticated
            shared.add(0, unauthenticated=-1)
        sources.finished(host)
        with shared.locked():  # closed
            shared.add(0, opened=-1)

    def local_one(host: str) -> None:
        local.refusal(host, 1.0)
        local.started(host, 1.0)
        local.finished(host)

    result = {}
    for hosts, label in ((few, "250_sources"), (many, "new_source_each")):
        for name, one in (("shared_us", shared_one), ("one_process_us", local_one)):
            start = time.perf_counter()
            for host in hosts:
                one(host)
            result[f"{label}.{name}"] = (time.perf_counter() - start) / rounds * 1e6
        result[f"{label}.added_us"] = (
            result[f"{label}.shared_us"] - result[f"{label}.one_process_us"]
        )
    shared.close()
    return {k: round(v, 2) for k, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=20000, help="cost loop iterations")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/worker-spread.json")
    args = parser.parse_args()
    import geossh

    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "host_ed25519"
        geossh.Ed25519Key.generate().write_private_key_file(str(key))
        runs = [
            spread(key, args.workers, reuse, args.connections, args.in_flight)
            for reuse in (True, False)
        ]
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release()},
        "spread": runs,
        "cost_per_connection": cost(args.rounds),
    }  # fmt: skip
    for run in runs:
        print(f"{run['strategy']:>14}: {run['per_pid']}  busiest {run['busiest_share']:.0%}"
              f"  ({run['connections']} connections, {run['in_flight']} in flight,"
              f" {run['seconds']} s)")  # fmt: skip
    c = report["cost_per_connection"]
    for label in ("250_sources", "new_source_each"):
        print(f"shared accounting, {label}: {c[label + '.shared_us']} us per connection "
              f"(one process: {c[label + '.one_process_us']} us;"
              f" added {c[label + '.added_us']} us)")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
