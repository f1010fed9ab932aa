"""Summaries, geossh's ratios to each peer, goal checks, and the outputs.

Everything here works on ``results[server][metric] -> [value per repetition]``
and writes the text table, the JSON file and (when matplotlib is installed)
the PNG chart.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

Results = dict[str, dict[str, list[float]]]
BASE = "geossh"
RUNNER_VARIANTS = ("geossh-r1", "geossh-w2")  # compared with each other, not with geossh
#: The paramiko-style application on geossh and on paramiko: compared with each other.
APP, APP_PEER = "geossh-app", "paramiko-app"
PAIRED = (*RUNNER_VARIANTS, APP, APP_PEER)


@dataclass(frozen=True)
class Meta:
    """How to label and judge one metric."""

    label: str
    unit: str
    higher_is_better: bool


def meta(metric: str) -> Meta:
    """Label, unit and direction of a metric name such as ``bulk.aes128-gcm.up_MBps``."""
    parts = metric.split(".")
    what = parts[-1]
    middle = " ".join(parts[1:-1])
    fixed = {
        "conn.cpu_ms": Meta("connection: server CPU per connection", "ms", False),
        "conn.rate": Meta("connection: conn/s, 50 in flight", "conn/s", True),
        "conn.latency_ms": Meta("connection: sequential latency", "ms", False),
        "sftp.put_MBps": Meta("sftp: put", "MB/s", True),
        "sftp.get_MBps": Meta("sftp: get", "MB/s", True),
        "load.p50_ms": Meta("load: exec round trip p50", "ms", False),
        "load.p99_ms": Meta("load: exec round trip p99", "ms", False),
        "load.streams": Meta("load: streaming connections", "conns", True),
        "load.probes": Meta("load: exec round trips measured", "count", True),
        "load.stream_MBps": Meta("load: streamed in total", "MB/s", True),
        "workers.rate": Meta("runner conn/s, 50 in flight (r1 = 1 worker, w2 = 2)", "conn/s", True),
        "ossh.seq_wall_ms": Meta("OpenSSH ssh, sequential: wall per run", "ms", False),
        "ossh.seq_cpu_ms": Meta("OpenSSH ssh, sequential: server CPU/conn", "ms", False),
        "ossh.seq_user_ms": Meta("OpenSSH ssh, sequential: server user CPU/conn", "ms", False),
        "ossh.seq_sys_ms": Meta("OpenSSH ssh, sequential: server sys CPU/conn", "ms", False),
        "ossh.flight_rate": Meta("OpenSSH ssh, 50 in flight: conn/s", "conn/s", True),
        "ossh.flight_cpu_ms": Meta("OpenSSH ssh, 50 in flight: server CPU/conn", "ms", False),
        "ossh.flight_user_ms": Meta("OpenSSH ssh, 50 in flight: server user CPU/conn", "ms", False),
        "ossh.flight_sys_ms": Meta("OpenSSH ssh, 50 in flight: server sys CPU/conn", "ms", False),
    }
    if metric in fixed:
        return fixed[metric]
    by_suffix = {
        "up_MBps": Meta(f"bulk {middle}: up", "MB/s", True),
        "down_MBps": Meta(f"bulk {middle}: down", "MB/s", True),
        "cpu_s_per_GB": Meta(f"bulk {middle}: server CPU, both ways", "s/GB", False),
        "cpu_up_s_per_GB": Meta(f"bulk {middle}: server CPU, up", "s/GB", False),
        "cpu_down_s_per_GB": Meta(f"bulk {middle}: server CPU, down", "s/GB", False),
        "opened": Meta(f"scale {middle}: connections opened", "conns", True),
        "open_s": Meta(f"scale {middle}: time to open all", "s", False),
        "kb_per_conn": Meta(f"scale {middle}: memory per connection", "KB", False),
        "probe_ms": Meta(f"scale {middle}: new exec at N", "ms", False),
    }
    return by_suffix.get(what, Meta(metric, "", True))


def summarize(values: list[float]) -> dict[str, float]:
    """Median, min and max of the repetitions."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def summary(results: Results) -> dict[str, dict[str, dict[str, float]]]:
    """``{metric: {server: {median, min, max, n}}}``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for server, metrics in results.items():
        for metric, values in metrics.items():
            if values:
                out.setdefault(metric, {})[server] = summarize(values)
    return out


def ratios(summ: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """geossh's median divided by each peer's, per metric; under ``APP_PEER``, the
    application on geossh divided by the same application on paramiko."""
    out: dict[str, dict[str, float]] = {}
    for metric, by_server in summ.items():
        base = by_server.get(BASE)
        for server, stats in by_server.items():
            if base is not None and server not in (BASE, *PAIRED) and stats["median"]:
                out.setdefault(metric, {})[server] = base["median"] / stats["median"]
        app, peer = by_server.get(APP), by_server.get(APP_PEER)
        if app is not None and peer is not None and peer["median"]:
            out.setdefault(metric, {})[APP_PEER] = app["median"] / peer["median"]
    return out


def _median(summ: dict[str, Any], metric: str, server: str) -> float | None:
    stats = summ.get(metric, {}).get(server)
    return None if stats is None else float(stats["median"])


def goals(summ: dict[str, Any], scale_ns: list[int]) -> list[dict[str, Any]]:
    """Check issue 8's goals against this run; a goal missing a peer is 'n/a'."""
    rows: list[dict[str, Any]] = []

    def check(name: str, ours: float | None, limit: float | None, at_most: bool) -> None:
        if ours is None or limit is None:
            rows.append({"goal": name, "geossh": ours, "limit": limit, "result": "n/a"})
            return
        ok = ours <= limit if at_most else ours >= limit
        rows.append(
            {"goal": name, "geossh": ours, "limit": limit, "result": "met" if ok else "MISSED"}
        )

    def best(metric: str, peers: tuple[str, ...], lowest: bool) -> float | None:
        got = [v for p in peers if (v := _median(summ, metric, p)) is not None]
        return (min(got) if lowest else max(got)) if got else None

    def scaled(value: float | None, factor: float) -> float | None:
        return None if value is None else value * factor

    py_peers = ("paramiko", "asyncssh")
    check(
        "server CPU/conn <= 0.5x best of paramiko, asyncssh (ms)",
        _median(summ, "conn.cpu_ms", BASE),
        scaled(best("conn.cpu_ms", py_peers, True), 0.5),
        True,
    )
    check(
        "sequential latency <= asyncssh (ms)",
        _median(summ, "conn.latency_ms", BASE),
        _median(summ, "conn.latency_ms", "asyncssh"),
        True,
    )
    for tag, cpu_peers in (("aes128-gcm", py_peers), ("chacha20-poly1305", ("asyncssh",))):
        check(
            f"{tag} server CPU/GB <= 0.6x {'/'.join(cpu_peers)} (s/GB)",
            _median(summ, f"bulk.{tag}.cpu_s_per_GB", BASE),
            scaled(best(f"bulk.{tag}.cpu_s_per_GB", cpu_peers, True), 0.6),
            True,
        )
        for way in ("up", "down"):
            metric = f"bulk.{tag}.{way}_MBps"
            check(
                f"{tag} {way} >= best peer (MB/s)",
                _median(summ, metric, BASE),
                best(metric, ("paramiko", "asyncssh", "sshd"), False),
                False,
            )
    if scale_ns:
        n = max(scale_ns)
        check(
            f"scale {n}: <= 25 KB per connection",
            _median(summ, f"scale.{n}.kb_per_conn", BASE),
            25.0,
            True,
        )
        check(f"scale {n}: all opened", _median(summ, f"scale.{n}.opened", BASE), float(n), False)
        check(
            f"scale {n}: opened faster than asyncssh (s)",
            _median(summ, f"scale.{n}.open_s", BASE),
            _median(summ, f"scale.{n}.open_s", "asyncssh"),
            True,
        )
    for way in ("put", "get"):
        metric = f"sftp.{way}_MBps"
        check(
            f"sftp {way} >= asyncssh and sshd (MB/s)",
            _median(summ, metric, BASE),
            best(metric, ("asyncssh", "sshd"), False),
            False,
        )
    check(
        "sftp put >= 3x paramiko (MB/s)",
        _median(summ, "sftp.put_MBps", BASE),
        scaled(_median(summ, "sftp.put_MBps", "paramiko"), 3.0),
        False,
    )
    _openssh_goals(summ, scale_ns, check, best)
    w2 = _median(summ, "workers.rate", "geossh-w2")
    w1 = _median(summ, "workers.rate", "geossh-r1")
    check(
        "workers=2 conn/s >= 1.7x one worker (x)",
        None if w2 is None or not w1 else w2 / w1,
        1.7 if w2 is not None else None,
        False,
    )
    return rows


def _openssh_goals(summ: dict[str, Any], scale_ns: list[int], check: Any, best: Any) -> None:
    """Issue 15's goals: OpenSSH's client, and the paramiko-style application migrated."""
    wall = best("ossh.seq_wall_ms", ("paramiko", "asyncssh", "sshd"), True)
    for server, what in ((BASE, "native"), (APP, "migrated")):
        check(
            f"OpenSSH seq wall, {what} <= best of paramiko, asyncssh, sshd (ms)",
            _median(summ, "ossh.seq_wall_ms", server),
            wall,
            True,
        )

    def vs(metric: str, ours: str, peer: str, factor: float) -> tuple[float | None, float | None]:
        theirs = _median(summ, metric, peer)
        return _median(summ, metric, ours), None if theirs is None else theirs * factor

    for label, ours, peer, factor in (
        ("migrated app", APP, APP_PEER, 0.6),
        ("native", BASE, "paramiko", 0.6),
        ("native (stretch)", BASE, "paramiko", 0.5),
    ):
        check(
            f"OpenSSH seq server CPU/conn, {label} <= {factor}x paramiko (ms)",
            *vs("ossh.seq_cpu_ms", ours, peer, factor),
            True,
        )
    check(
        "OpenSSH 50 in flight server CPU/conn, migrated app <= 0.5x paramiko (ms)",
        *vs("ossh.flight_cpu_ms", APP, APP_PEER, 0.5),
        True,
    )
    for way, factor in (("get", 2.0), ("put", 5.0)):
        metric = f"sftp.{way}_MBps"
        check(
            f"sftp {way}, app's SFTPServerInterface >= {factor:g}x paramiko (MB/s)",
            *vs(metric, APP, APP_PEER, factor),
            False,
        )
        check(
            f"sftp {way}, app's SFTPServerInterface >= 0.8x LocalSFTPServer (MB/s)",
            *vs(metric, APP, BASE, 0.8),
            False,
        )
    if scale_ns:
        n = max(scale_ns)
        check(
            f"scale {n}: migrated app <= 40 KB per idle session",
            _median(summ, f"scale.{n}.kb_per_conn", APP),
            40.0,
            True,
        )


def format_value(value: float | None) -> str:
    """A value as the tables print it (rounded by magnitude; "-" when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(summ: dict[str, Any], servers: list[str], metrics: list[str]) -> str:
    """Median [min-max] per server and geossh's ratio to each peer, one metric a row."""
    peers = [s for s in servers if s != BASE and s not in PAIRED]
    if APP in servers and APP_PEER in servers:
        peers.append(APP_PEER)
    rat = ratios(summ)
    titles = ["app geossh/paramiko" if p == APP_PEER else f"geossh/{p}" for p in peers]
    header = ["metric (unit)", *servers, *titles]
    rows = [header]
    for metric in metrics:
        m = meta(metric)
        row = [f"{m.label} ({m.unit})"]
        for server in servers:
            stats = summ.get(metric, {}).get(server)
            if stats is None:
                row.append("-")
            else:
                low, high = format_value(stats["min"]), format_value(stats["max"])
                row.append(f"{format_value(stats['median'])} [{low}-{high}]")
        for peer in peers:
            r = rat.get(metric, {}).get(peer)
            if r is None:
                row.append("-")
            else:
                better = r > 1 if m.higher_is_better else r < 1
                row.append(f"{r:.2f}x {'+' if better else '-'}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def goals_table(rows: list[dict[str, Any]]) -> str:
    """The goal checks as text."""
    width = max(len(r["goal"]) for r in rows)
    out = [f"{'goal'.ljust(width)}  {'geossh':>9}  {'target':>9}  result"]
    for r in rows:
        ours, limit = format_value(r["geossh"]), format_value(r["limit"])
        out.append(f"{r['goal'].ljust(width)}  {ours:>9}  {limit:>9}  {r['result']}")
    return "\n".join(out)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(sshd_version: str | None) -> dict[str, Any]:
    """A description of this machine and the software measured."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo") as fh:
            mem_kb = int(fh.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "geossh": _version("geossh"),
        "gevent": _version("gevent"),
        "cryptography": _version("cryptography"),
        "paramiko": _version("paramiko"),
        "asyncssh": _version("asyncssh"),
        "openssh_client": ssh,
        "sshd": sshd_version or "not measured",
    }


def machine_text(info: dict[str, Any]) -> str:
    """One paragraph describing the machine."""
    return (
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, Python {info['python']}\n"
        f"software: gevent {info['gevent']}, cryptography {info['cryptography']}, "
        f"paramiko {info['paramiko']}, asyncssh {info['asyncssh']}, "
        f"client {info['openssh_client']}, sshd {info['sshd']}"
    )


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` as indented JSON."""
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")


def chart(
    path: Path, summ: dict[str, Any], servers: list[str], metrics: list[str], title: str
) -> str:
    """Bar chart (median, min-max whiskers) per metric; returns a message."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install matplotlib)"
    counts = (".opened", "load.streams", "load.probes")  # sanity counts, not results
    shown = [
        m
        for m in metrics
        if len(summ.get(m, {})) > 1
        and not m.endswith(counts)
        and (BASE in summ[m] or "workers" in m)
    ]
    if not shown:
        return "chart skipped: nothing to compare"
    cols = 4
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False)
    colours = {
        "geossh": "#2a9d8f",
        "geossh-base": "#a8dadc",
        "geossh-r1": "#52b788",
        "geossh-w2": "#74c69d",
        "paramiko": "#e76f51",
        "asyncssh": "#457b9d",
        "sshd": "#8d99ae",
    }
    for ax, metric in zip(axes.flat, shown, strict=False):
        m = meta(metric)
        names = [s for s in servers if s in summ[metric]]
        med = [summ[metric][s]["median"] for s in names]
        lo = [summ[metric][s]["median"] - summ[metric][s]["min"] for s in names]
        hi = [summ[metric][s]["max"] - summ[metric][s]["median"] for s in names]
        ax.bar(
            names, med, yerr=[lo, hi], capsize=3, color=[colours.get(s, "#999999") for s in names]
        )
        positive = [v for v in med if v > 0]
        if positive and max(positive) > 30 * min(positive):
            ax.set_yscale("log")  # e.g. sshd's memory per connection next to greenlets'
        arrow = "higher is better" if m.higher_is_better else "lower is better"
        ax.set_title(f"{m.label}\n{m.unit}, {arrow}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return f"chart: {path}"
