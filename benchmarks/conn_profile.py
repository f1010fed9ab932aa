"""Server CPU per ``ssh host 'echo hi'`` connection, precisely, optionally profiled.

A micro-harness for issue 15 (server CPU per connection)::

    python -m benchmarks.conn_profile --servers geossh,geossh-app,paramiko -n 200
    python -m benchmarks.conn_profile --servers geossh -n 300 --profile /tmp/g.prof
    python -m benchmarks.conn_profile --servers geossh,geossh-base --baseline /tmp/base
    python -m benchmarks.conn_profile --servers geossh,geossh-app -n 400 --phases /tmp/ph
    python -m benchmarks.conn_profile --servers geossh-core,geossh -n 300

Each server is one process started as the main harness starts it (same
scripts, same keys); OpenSSH ``ssh`` processes connect ``-n`` times, one
after another or ``--in-flight`` at a time, rounds rotating over the servers.
CPU is utime and stime from /proc/<pid>/stat (clock ticks of 10 ms, exited
threads included): use enough connections (200 x 2 ms = 40 ticks).

With ``--phases`` the server times its phases (``benchmarks/phases.py``: thread
CPU around ~20 functions, exclusive, printed per connection at the end); with
``--profile`` it runs under cProfile (``GEOSSH_BENCH_PROFILE``),
with ``--sample`` under a CPU-time stack sampler (``GEOSSH_BENCH_SAMPLE``,
collapsed stacks for flamegraph.pl; no call is slowed, but on a kernel with
HZ=250 a sample comes only every 4 ms of CPU: use ~2000 connections). Only
this checkout's gevent servers are covered (geossh, geossh-app; the app's
file is ``<path>.<server>.app``). The harness resets the counts after the
warm-up (SIGUSR1), so they cover only the measured connections. With
``--syscalls`` the servers run under ``strace -c -f`` (startup included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import procs
from benchmarks.phases import table
from benchmarks.servers.common import PHASES_ENV, PROFILE_ENV, SAMPLE_ENV

REPO = Path(__file__).resolve().parent.parent
KEX = "curve25519-sha256,curve25519-sha256@libssh.org"
MODULES = {
    "geossh": ["-m", "benchmarks.servers.geossh_server"],
    "geossh-base": ["-m", "benchmarks.servers.geossh_server"],
    # The same core behind the leanest loop: what no driver or facade can beat.
    "geossh-core": ["-m", "benchmarks.servers.geossh_core_server"],
    "paramiko": ["-m", "benchmarks.servers.paramiko_server"],
    "geossh-app": ["-m", "benchmarks.servers.paramiko_style_app", "--impl", "geossh"],
    "geossh-app-base": ["-m", "benchmarks.servers.paramiko_style_app", "--impl", "geossh"],
    "paramiko-app": ["-m", "benchmarks.servers.paramiko_style_app", "--impl", "paramiko"],
}


def ssh_argv(port: int, key: Path, kex: str) -> list[str]:
    """OpenSSH's client with its defaults, kex pinned (as ``--ossh-kex`` does)."""
    return [
        "ssh", "-T", "-o", f"KexAlgorithms={kex}", "-p", str(port), "-F", "/dev/null",
        "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "bench@127.0.0.1", "echo hi",
    ]  # fmt: skip


def run_batch(argv: list[str], count: int, in_flight: int) -> int:
    """Run ``count`` copies of ``argv``, ``in_flight`` at a time; how many failed."""
    running: list[subprocess.Popen[bytes]] = []
    started = failed = 0
    while started < count or running:
        while started < count and len(running) < in_flight:
            running.append(
                subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
                )
            )
            started += 1
        proc = running.pop(0)
        out, err = proc.communicate(timeout=60)
        if proc.returncode != 0 or out != b"hi\n":
            failed += 1
            print(f"ssh failed: rc={proc.returncode} {out!r} {err[-300:]!r}", file=sys.stderr)
    return failed


class Server:
    """One server process under measurement."""

    def __init__(self, name: str, workdir: Path, pset: procs.ProcessSet, args: argparse.Namespace):
        self.name = name
        module = MODULES[name]
        base = str(Path(args.baseline).resolve()) if name.endswith("-base") else ""
        if base:
            launcher = [
                "-c",
                f"import runpy,sys; sys.path.insert(0, {base!r}); sys.argv[1:1] = {module[2:]!r}; "
                f"runpy.run_module({module[1]!r}, run_name='__main__')",
            ]
        else:
            launcher = module
        root = workdir / f"sftp-{name}"
        root.mkdir(exist_ok=True)
        env = dict(os.environ)
        env.pop(PROFILE_ENV, None)
        env.pop(SAMPLE_ENV, None)
        env.pop(PHASES_ENV, None)
        self.profile = ""
        wanted = args.profile or args.sample or args.phases
        # Not a threaded server (its threads are not covered), nor a baseline's
        # script (it may not know SIGUSR1).
        if wanted and not name.startswith("paramiko") and not base:
            mode = PHASES_ENV if args.phases else SAMPLE_ENV if args.sample else PROFILE_ENV
            env[mode] = f"{wanted}.{name}"
            self.profile = f"{wanted}.{name}" + (".app" if "-app" in name else "")
        argv = [
            sys.executable, *launcher, "--host-key", str(workdir / "host_ed25519"),
            "--authorized-key", str(workdir / "user_ed25519.pub"), "--sftp-root", str(root),
        ]  # fmt: skip
        if args.syscalls:
            argv = ["strace", "-c", "-f", "-o", str(workdir / f"strace-{name}.txt"), *argv]
        self.proc, self.port = pset.start_ready(argv, cwd=REPO, env=env)
        self.pid = self._python_pid()
        self.ssh = ssh_argv(self.port, workdir / "user_ed25519", args.kex)
        self.total: list[float] = []  # CPU seconds per connection, one value per round
        self.user: list[float] = []
        self.sys: list[float] = []

    def _python_pid(self) -> int:
        """The server's own pid (the child of strace when traced)."""
        if Path(f"/proc/{self.proc.pid}/comm").read_text().strip() != "strace":
            return self.proc.pid
        for _ in range(100):
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            if children.split():
                return int(children.split()[0])
            time.sleep(0.05)
        raise RuntimeError("strace started no child")

    def measure(self, count: int, in_flight: int) -> None:
        """One round: ``count`` connections; appends per-connection CPU."""
        time.sleep(0.3)  # let the previous round's closes finish
        before = procs.cpu_times(self.pid)
        failed = run_batch(self.ssh, count, in_flight)
        if failed > count // 10:
            raise RuntimeError(f"{self.name}: {failed} of {count} connections failed")
        time.sleep(0.3)
        after = procs.cpu_times(self.pid)
        self.total.append((after.own - before.own) / count)
        self.user.append((after.user - before.user) / count)
        self.sys.append((after.system - before.system) / count)


def _spread(values: list[float], scale: float) -> str:
    med = statistics.median(values) * scale
    return f"{med:6.3f} [{min(values) * scale:.3f}-{max(values) * scale:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="geossh,geossh-app,paramiko,paramiko-app")
    parser.add_argument("-n", "--count", type=int, default=200, help="connections per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--kex", default=KEX)
    parser.add_argument(
        "--baseline", help="a checkout whose geossh runs as geossh-base and geossh-app-base"
    )
    parser.add_argument("--profile", help="cProfile stats to <path>.<server>")
    parser.add_argument(
        "--sample", help="CPU-time stack samples (collapsed format) to <path>.<server>"
    )
    parser.add_argument(
        "--phases", help="thread CPU by phase (benchmarks/phases.py) to <path>.<server>"
    )
    parser.add_argument("--syscalls", action="store_true", help="run the servers under strace -c")
    args = parser.parse_args()
    names = args.servers.split(",")
    with tempfile.TemporaryDirectory(prefix="connprof-") as tmp:
        workdir = Path(tmp)
        for name in ("host_ed25519", "user_ed25519"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / name)],
                check=True,
            )
        pset = procs.ProcessSet()
        try:
            servers = [Server(name, workdir, pset, args) for name in names]
            for server in servers:  # warm-up: first-use imports are not measured
                run_batch(server.ssh, 5, 1)
                if server.profile:
                    os.kill(server.pid, signal.SIGUSR1)
            for round_ in range(args.rounds):
                order = servers[round_ % len(servers) :] + servers[: round_ % len(servers)]
                for server in order:
                    server.measure(args.count, args.in_flight)
        finally:
            for server in locals().get("servers", []):
                if args.syscalls or server.profile:  # written when the server exits
                    os.kill(server.pid, signal.SIGTERM)
            time.sleep(0.5)
            pset.close()
        print(
            f"server CPU per connection (ms), {args.count} conns x {args.rounds} rounds, "
            f"{args.in_flight} in flight: median [min-max]"
        )
        print(f"{'server':14} {'user+sys':>24} {'user (ticks)':>24} {'sys (ticks)':>24}")
        for server in servers:
            print(
                f"{server.name:14} {_spread(server.total, 1e3):>24} "
                f"{_spread(server.user, 1e3):>24} {_spread(server.sys, 1e3):>24}"
            )
        print("per round (ms, user+sys, in measuring order):")
        for server in servers:
            print(f"{server.name:14} " + " ".join(f"{v * 1e3:.3f}" for v in server.total))
        if args.phases:
            for server in servers:
                if server.profile and Path(server.profile).exists():
                    print(f"\n{server.name}: CPU by phase")
                    print(table(server.profile, args.count * args.rounds))
        if args.syscalls:
            for name in names:
                text = (workdir / f"strace-{name}.txt").read_text()
                dest = Path(tempfile.gettempdir()) / f"strace-{name}.txt"
                shutil.copy(workdir / f"strace-{name}.txt", dest)
                print(f"\n{name}: strace -c -f (also {dest})\n{text[:2500]}")


if __name__ == "__main__":
    main()
