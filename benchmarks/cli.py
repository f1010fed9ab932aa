"""``python -m benchmarks``: start every server, run the workloads interleaved, report.

Servers are started once and stay up for the whole run; for each workload
and repetition the servers take turns in a rotated order, so slow drifts of
the machine hit all of them alike. Everything started is killed at the end.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import procs, report, sshd, workloads
from benchmarks.servers.common import PROFILE_ENV, SAMPLE_ENV
from benchmarks.workloads import Bench, Sizes, Target

REPO = Path(__file__).resolve().parent.parent
ALL_SERVERS = ("geossh", "paramiko", "asyncssh", "sshd", "geossh-app", "paramiko-app")
ALL_WORKLOADS = ("conn", "ossh", "bulk", "scale", "sftp", "load")
#: The paramiko-style application (benchmarks/servers/paramiko_style_app.py) on
#: each implementation: what a migrating user runs. It takes part in these only.
APPS = {"geossh-app": "geossh", "paramiko-app": "paramiko"}
APP_WORKLOADS = frozenset({"ossh", "scale", "sftp"})
ALL_CIPHERS = frozenset({"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"})
PARAMIKO_CIPHERS = frozenset({"aes128-gcm@openssh.com"})
PROCESS_PER_CONNECTION_CAP = 2000  # sshd and paramiko's threads beyond this: opt in

QUICK = Sizes(
    reps=3,
    seq_conns=10,
    rate_conns=80,
    ossh_seq=20,
    ossh_total=100,
    bulk_bytes=64 << 20,
    scale=(200,),
    scale_reps=1,
    sftp_bytes=32 << 20,
    load_conns=50,
    load_probes=60,
    load_seconds=2.5,
    load_reps=2,
)
SMOKE = Sizes(
    reps=1,
    seq_conns=2,
    rate_conns=6,
    in_flight=3,
    ossh_seq=2,
    ossh_total=4,
    ossh_in_flight=2,
    bulk_bytes=1 << 20,
    scale=(4,),
    scale_reps=1,
    sftp_bytes=1 << 20,
    load_conns=3,
    load_probes=5,
    load_seconds=1,
    load_reps=1,
    loadgens=1,
    ciphers=("aes128-gcm@openssh.com",),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Compare geossh with paramiko, asyncssh and OpenSSH sshd on this machine.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 repetitions (< 2 min)")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, help="repetitions per workload (default 5, quick 3)")
    parser.add_argument("--servers", default=",".join(ALL_SERVERS), help="comma-separated subset")
    parser.add_argument(
        "--workloads", default=",".join(ALL_WORKLOADS), help="comma-separated subset"
    )
    parser.add_argument("--scale", help="connection counts for the scale workload, e.g. 1000,10000")
    parser.add_argument("--bulk-mib", type=int, help="bulk transfer size (default 256)")
    parser.add_argument(
        "--ossh-kex",
        metavar="NAME",
        help="pin the OpenSSH-client workload's KexAlgorithms (default: the client's own list)",
    )
    parser.add_argument("--sftp-mib", type=int, help="SFTP file size (default 256)")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks" / "results",
        help="where JSON, text and PNG results go",
    )
    parser.add_argument("--no-install", action="store_true", help="never apt-get install sshd")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also measure the geossh package found in DIR (e.g. a git worktree) as geossh-base",
    )
    parser.add_argument(
        "--uncapped",
        action="store_true",
        help=f"run sshd/paramiko scale cases above {PROCESS_PER_CONNECTION_CAP}",
    )
    return parser.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = SMOKE if args.smoke else QUICK if args.quick else Sizes()
    changes: dict[str, Any] = {}
    if args.reps:
        changes["reps"] = args.reps
    if args.scale:
        changes["scale"] = tuple(int(n) for n in args.scale.split(","))
    if args.bulk_mib:
        changes["bulk_bytes"] = args.bulk_mib << 20
    if args.sftp_mib:
        changes["sftp_bytes"] = args.sftp_mib << 20
    if args.ossh_kex:
        changes["ossh_kex"] = args.ossh_kex
    return replace(sizes, **changes)


class Run:
    """One benchmark run: its processes, scratch directory, targets and results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = sizes_from(args)
        self.procs = procs.ProcessSet()
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() and shutil.disk_usage(shm).free > 2 << 30 else None
        self.workdir = Path(tempfile.mkdtemp(prefix="geossh-bench-", dir=base))
        self.targets: list[Target] = []
        self.results: dict[str, dict[str, list[float]]] = {}
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.sshd_version: str | None = None
        self._servers: dict[str, tuple[subprocess.Popen[bytes], list[str], str]] = {}

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.log(f"note: {text}")

    # -- set-up ---------------------------------------------------------------------------
    def keygen(self) -> None:
        for name in ("host_ed25519", "user_ed25519"):
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    name,
                    "-f",
                    str(self.workdir / name),
                ],
                check=True,
                timeout=30,
            )

    def start_servers(self, names: list[str]) -> None:
        if self.args.baseline and "geossh-base" not in names:
            names = [*names[:1], "geossh-base", *names[1:]]
        limit = procs.raise_nofile(2 * max(self.sizes.scale) + 4096)
        if limit < max(self.sizes.scale) + 1000:  # each process holds at most N sockets
            self.note(f"open-file limit is {limit}: large scale cases may fail")
        for name in names:
            try:
                target = self._start(name)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                self.note(f"{name} not measured: {exc}")
                continue
            if target is not None:
                self.targets.append(target)
        workers = "geossh" in names and "conn" in self.args.workloads.split(",")
        if workers:
            self._start_workers()

    def _python_server(self, name: str, extra: list[str], base: str = "") -> tuple[int, int, Path]:
        root = self.workdir / f"sftp-{name}"
        root.mkdir(exist_ok=True)
        if name in APPS:
            module = "benchmarks.servers.paramiko_style_app"
            extra = ["--impl", APPS[name], *extra]
        else:
            module = f"benchmarks.servers.{name.split('-')[0]}_server"
        # The baseline's geossh must come before this checkout's on sys.path.
        launcher = (
            ["-c", f"import runpy,sys; sys.path.insert(0, {base!r}); "
             f"runpy.run_module({module!r}, run_name='__main__')"]
            if base
            else ["-m", module]
        )  # fmt: skip
        argv = [
            sys.executable,
            *launcher,
            "--host-key",
            str(self.workdir / "host_ed25519"),
            "--authorized-key",
            str(self.workdir / "user_ed25519.pub"),
            "--sftp-root",
            str(root),
            *extra,
        ]
        env = dict(os.environ)
        if base:  # profiles (GEOSSH_BENCH_PROFILE/SAMPLE) are of this checkout's servers
            env.pop(PROFILE_ENV, None)
            env.pop(SAMPLE_ENV, None)
        with open(self.workdir / f"{name}.log", "ab") as log:
            proc, port = self.procs.start_ready(argv, cwd=REPO, stderr=log, env=env)
        self._servers[name] = (proc, extra, base)
        return proc.pid, port, root

    def _restart(self, target: Target) -> None:
        """Replace a Python server by a fresh process (memory is then measured from scratch)."""
        proc, extra, base = self._servers[target.name]
        self.procs.stop(proc)
        if target.name in APPS:
            extra = extra[2:]  # _python_server adds --impl again
        target.pid, target.port, _ = self._python_server(target.name, extra, base)

    def _start(self, name: str) -> Target | None:
        cap = 1 << 30 if self.args.uncapped else PROCESS_PER_CONNECTION_CAP
        if name == "sshd":
            return self._start_sshd(cap)
        base = str(Path(self.args.baseline).resolve()) if name == "geossh-base" else ""
        pid, port, root = self._python_server(name, [], base)
        on_paramiko = name in ("paramiko", "paramiko-app")
        target = Target(name, port, pid, root, PARAMIKO_CIPHERS if on_paramiko else ALL_CIPHERS)
        target.restart = lambda: self._restart(target)
        if name in APPS:
            target.workloads = APP_WORKLOADS
        if on_paramiko:
            target.max_connections = cap
        if name == "geossh":
            try:
                import geossh.sftp.local
                import geossh.sftp.server  # noqa: F401
            except ImportError:
                target.has_sftp = False
                self.note("geossh SFTP server not available yet: SFTP workload skipped for geossh")
        return target

    def _start_sshd(self, cap: int) -> Target | None:
        path, message = sshd.find_or_install(not self.args.no_install)
        self.log(f"sshd: {message}")
        if path is None:
            self.note(message)
            return None
        self.sshd_version = sshd.version(path)
        root = self.workdir / "sftp-sshd"
        root.mkdir()
        sshd_dir = self.workdir / "sshd"
        sshd_dir.mkdir()
        port = procs.free_port()
        config = sshd.write_config(
            sshd_dir,
            port,
            self.workdir / "host_ed25519",
            self.workdir / "user_ed25519.pub",
            root,
            min(cap, max(self.sizes.scale)),
        )
        with open(sshd_dir / "sshd.log", "wb") as log:
            proc = self.procs.start(sshd.argv(path, config), stdout=log, stderr=log)
        if not procs.wait_port(port, time.monotonic() + 15):
            self.procs.stop(proc)
            raise RuntimeError(f"sshd did not start: {(sshd_dir / 'sshd.log').read_text()[-500:]}")
        target = Target("sshd", port, proc.pid, root, ALL_CIPHERS, counts_children=True)
        target.max_connections = cap
        return target

    def _start_workers(self) -> None:
        """geossh.runner.Server with 1 and with 2 workers, for the multi-core metric."""
        try:
            import geossh.runner  # noqa: F401
        except ImportError:
            self.note("geossh.runner.Server (workers) not available: multi-core metric skipped")
            return
        self.workers_targets: list[Target] = []
        for name, count in (("geossh-r1", 1), ("geossh-w2", 2)):
            try:
                pid, port, root = self._python_server(name, ["--runner", "--workers", str(count)])
            except (RuntimeError, OSError) as exc:
                self.note(f"{name} not measured: {exc}")
                self.workers_targets = []
                return
            target = Target(name, port, pid, root, ALL_CIPHERS)
            self.workers_targets.append(target)

    def check_targets(self, bench: Bench) -> None:
        """Drop servers that cannot run ``echo hi`` for an OpenSSH client."""
        from benchmarks import clients

        good = []
        for target in self.targets:
            argv = clients.ssh_argv(bench.endpoint(target), "echo hi")
            result = subprocess.run(argv, capture_output=True, timeout=60, check=False)
            if result.returncode == 0 and result.stdout == b"hi\n":
                good.append(target)
            else:
                self.note(f"{target.name} dropped: echo hi failed: {result.stderr[-300:]!r}")
        self.targets = good

    # -- measuring -------------------------------------------------------------------------
    def workload_plan(
        self,
    ) -> list[tuple[str, int, Callable[[Bench, Target], dict[str, float]], list[Target]]]:
        chosen = self.args.workloads.split(",")
        sizes = self.sizes
        plan: list[tuple[str, int, Callable[[Bench, Target], dict[str, float]], list[Target]]] = []
        if "conn" in chosen:
            plan.append(
                ("connection cost", sizes.reps, workloads.connection_cost, self._in("conn"))
            )
            pair = getattr(self, "workers_targets", [])
            if pair:
                plan.append(("workers", sizes.reps, workloads.workers_rate, pair))
        if "ossh" in chosen:
            plan.append(
                ("OpenSSH client", sizes.reps, workloads.openssh_connections, self._in("ossh"))
            )
        if "bulk" in chosen:
            plan.append(("bulk data", sizes.reps, workloads.bulk, self._in("bulk")))
        if "scale" in chosen:
            for n in sizes.scale:

                def run_scale(bench: Bench, target: Target, n: int = n) -> dict[str, float]:
                    return workloads.scale(bench, target, n)

                targets = [t for t in self._in("scale") if n <= t.max_connections]
                for t in self._in("scale"):
                    if n > t.max_connections:
                        self.note(
                            f"{t.name}: scale {n} skipped (process/thread per connection; "
                            f"--uncapped runs it)"
                        )
                plan.append((f"scale {n}", sizes.scale_reps, run_scale, targets))
        if "sftp" in chosen:
            plan.append(("sftp", sizes.reps, workloads.sftp, self._in("sftp")))
        if "load" in chosen:
            plan.append(
                (
                    "latency under load",
                    min(sizes.reps, sizes.load_reps),
                    workloads.latency_under_load,
                    self._in("load"),
                )
            )
        return plan

    def _in(self, workload: str) -> list[Target]:
        """The servers that take part in ``workload``."""
        return [t for t in self.targets if t.workloads is None or workload in t.workloads]

    def measure(self, bench: Bench) -> None:
        for title, reps, fn, targets in self.workload_plan():
            for rep in range(reps):
                shift = rep % max(1, len(targets))
                order = targets[shift:] + targets[:shift]
                for target in order:
                    self.log(f"[{title}] rep {rep + 1}/{reps}: {target.name}")
                    started = time.monotonic()
                    try:
                        metrics = fn(bench, target)
                    except Exception as exc:  # one failed run must not end the benchmark
                        self.errors.append(f"{title} / {target.name}: {type(exc).__name__}: {exc}")
                        self.log(f"  failed: {exc}")
                        self.log(traceback.format_exc(limit=3))
                        continue
                    for metric, value in metrics.items():
                        self.results.setdefault(target.name, {}).setdefault(metric, []).append(
                            value
                        )
                    shown = ", ".join(f"{k}={v:.3g}" for k, v in metrics.items())
                    self.log(f"  {time.monotonic() - started:.1f}s  {shown}")

    # -- output ------------------------------------------------------------------------------
    def write(self, started: float) -> int:
        for target in self.targets:
            self.notes.extend(f"{target.name}: {note}" for note in target.notes)
        summ = report.summary(self.results)
        servers = [t.name for t in self.targets]
        servers += [s for s in ("geossh-r1", "geossh-w2") if s in self.results]
        metrics = list(dict.fromkeys(m for s in self.results.values() for m in s))
        goal_rows = report.goals(
            summ, list(self.sizes.scale) if "scale" in self.args.workloads else []
        )
        info = report.machine(self.sshd_version)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        mode = "smoke" if self.args.smoke else "quick" if self.args.quick else "full"
        partial = (
            self.args.workloads != ",".join(ALL_WORKLOADS)
            or self.args.baseline
            or self.args.ossh_kex
        )
        if partial or (self.args.servers != ",".join(ALL_SERVERS) and not self.args.smoke):
            mode += "-custom"  # never overwrites latest-full/latest-quick
        text = "\n\n".join(
            [
                f"geossh benchmarks ({mode} run, {stamp}, {time.monotonic() - started:.0f} s; "
                f"median [min-max] of {self.sizes.reps} repetitions (scale "
                f"{self.sizes.scale_reps}, load {min(self.sizes.reps, self.sizes.load_reps)}); "
                "ratio = geossh / peer, "
                f"'+' = geossh better)",
                report.machine_text(info),
                report.table(summ, servers, metrics),
                report.goals_table(goal_rows),
                *(["notes:\n" + "\n".join(f"- {n}" for n in self.notes)] if self.notes else []),
                *(["errors:\n" + "\n".join(f"- {e}" for e in self.errors)] if self.errors else []),
            ]
        )
        print(text)
        out = self.args.out
        out.mkdir(parents=True, exist_ok=True)
        document = {
            "timestamp": stamp,
            "mode": mode,
            "machine": info,
            "sizes": {k: v for k, v in vars(self.sizes).items()},
            "servers": servers,
            "results": self.results,
            "summary": summ,
            "ratios": report.ratios(summ),
            "goals": goal_rows,
            "notes": self.notes,
            "errors": self.errors,
        }
        for name in (f"{stamp}-{mode}", f"latest-{mode}"):
            report.write_json(out / f"{name}.json", document)
            (out / f"{name}.txt").write_text(text + "\n")
        message = report.chart(
            out / f"latest-{mode}.png",
            summ,
            servers,
            metrics,
            f"geossh benchmarks, {mode} run {stamp}: {info['cpu']}, {info['cores']} cores",
        )
        print(message)
        print(f"results: {out / f'latest-{mode}.json'}")
        return 1 if self.errors and not self.results else 0

    def close(self) -> None:
        self.procs.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run = Run(args)
    started = time.monotonic()
    try:
        run.keygen()
        names = [s for s in args.servers.split(",") if s]
        run.start_servers(names)
        bench = Bench(
            run.procs,
            getpass.getuser(),
            str(run.workdir / "user_ed25519"),
            run.workdir,
            run.sizes,
            run.log,
            REPO,
        )
        run.check_targets(bench)
        if not any(t.name == "geossh" for t in run.targets):
            run.note("geossh is not running: no ratios")
        run.measure(bench)
        code = run.write(started)
    finally:
        run.close()
    sys.exit(code)
