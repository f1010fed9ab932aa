"""``geossh serve --metrics``: known OpenSSH traffic, scraped (urllib), parsed (prometheus_client).

Two key logins that run a command, one wrong key, one wrong password (sshpass)
and one peer that leaves during the version exchange; then the scrape must
count exactly that, with one process and with two workers (their totals add up).
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import urllib.request
from pathlib import Path
from typing import Any

import gevent.select
import gevent.socket
import pytest

from tests.conftest import require
from tests.forward_support import free_port, wait_until
from tests.server_kit import SSH_OPTIONS, ServerProcess, python_env, run, ssh_argv
from tests.support import in_thread

parser = pytest.importorskip("prometheus_client.parser")
pytestmark = pytest.mark.interop
ME = getpass.getuser()
PASSWORD = "metrics pass 42"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """GET the metrics page with urllib and parse it with prometheus_client's parser."""

    def get() -> str:
        with urllib.request.urlopen(url, timeout=20) as response:
            assert response.status == 200
            return str(response.read().decode())

    text = in_thread(get)
    samples: Samples = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a labelled counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    """The sum of a metric's samples over all label values."""
    return sum(v for (n, _), v in samples.items() if n == name)


@pytest.fixture
def home(tmp_path: Path, keydir: Path) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(keydir / "user_ed25519.pub", home / ".ssh" / "authorized_keys")
    return home


def start(tmp_path: Path, home: Path, *flags: str) -> tuple[ServerProcess, str]:
    env = python_env(HOME=str(home), GEOSSH_TEST_PW=PASSWORD)
    env.pop("XDG_STATE_HOME", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv = ["-m", "geossh", "serve", "--port", "0", "--metrics", "127.0.0.1:0"]
    argv += ["--password-env", "GEOSSH_TEST_PW", "--per-source-penalties", "no", *flags]
    server = ServerProcess(argv, tmp_path / "serve.log", env).start()
    text = server.expect("metrics on http://")
    url = text.split("metrics on ", 1)[1].split()[0]
    return server, url


def wrong_password(port: int) -> Any:
    """One password attempt with a wrong password (sshpass types it)."""
    at = SSH_OPTIONS.index("BatchMode=yes")
    options = SSH_OPTIONS[: at - 1] + SSH_OPTIONS[at + 1 :]  # ssh keeps an option's first value
    argv = ["sshpass", "-p", "not the password", "ssh", *options, "-o", "BatchMode=no"]
    argv += ["-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no"]
    argv += ["-o", "NumberOfPasswordPrompts=1", "-p", str(port), f"{ME}@127.0.0.1", "true"]
    return run(argv)


def leave_during_version_exchange(port: int) -> None:
    """A peer that sends a non-SSH line and closes: a handshake failure."""
    sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        sock.sendall(b"hello, this is not ssh\r\n")
        sock.shutdown(gevent.socket.SHUT_WR)
        while sock.recv(4096):
            pass
    finally:
        sock.close()


def known_traffic(port: int, keydir: Path) -> None:
    for command, status in (("echo one", 0), ("exit 3", 3)):
        result = run(ssh_argv(port, keydir / "user_ed25519", command, user=ME))
        assert result.returncode == status, result.stderr
    bad_key = run(ssh_argv(port, keydir / "other_ed25519", "true", user=ME))
    assert bad_key.returncode == 255
    assert wrong_password(port).returncode != 0
    leave_during_version_exchange(port)


@pytest.mark.parametrize("workers", [1, 2])
def test_scraped_metrics_count_known_traffic(
    tmp_path: Path, home: Path, keydir: Path, workers: int
) -> None:
    require("ssh")
    require("sshpass")
    server, url = start(tmp_path, home, "--workers", str(workers))
    try:
        known_traffic(server.port, keydir)

        def settled() -> Samples | None:
            samples = scrape(url)
            ended = total(samples, "geossh_connections_total")
            open_now = value(samples, "geossh_connections_open")
            return samples if ended == 5 and open_now == 0 else None

        samples = wait_until(settled, 30, "five connections counted as ended")
    finally:
        server.stop()
    log = server.log()
    assert value(samples, "geossh_connections_total", outcome="authenticated") == 2, log
    assert value(samples, "geossh_connections_total", outcome="authfail") == 2
    assert value(samples, "geossh_connections_total", outcome="noauth") == 1
    assert total(samples, "geossh_handshake_failures_total") == 1
    assert value(samples, "geossh_logins_total", method="publickey") == 2
    assert value(samples, "geossh_auth_failures_total", method="publickey") == 1
    assert value(samples, "geossh_auth_failures_total", method="password") == 1
    assert total(samples, "geossh_auth_failures_total") == 2  # 'none' probes are not failures
    assert value(samples, "geossh_sessions_total", kind="exec") == 2
    assert value(samples, "geossh_sessions_open", kind="exec") == 0
    assert value(samples, "geossh_channels_open") == 0
    assert value(samples, "geossh_kex_duration_seconds_count") == 4
    assert value(samples, "geossh_auth_duration_seconds_count") == 2
    assert value(samples, "geossh_received_bytes_total") > 2000
    assert value(samples, "geossh_sent_bytes_total") > 2000
    assert value(samples, "geossh_reloads_total") == 0
    assert total(samples, "geossh_source_refusals_total") == 0
    assert PASSWORD not in log and "not the password" not in log


def test_totals_go_on_across_a_reload(tmp_path: Path, home: Path, keydir: Path) -> None:
    """SIGHUP: the new generation binds the same metrics port and keeps counting."""
    require("ssh")
    env = python_env(HOME=str(home))
    env.pop("XDG_STATE_HOME", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    mport = free_port()
    argv = ["-m", "geossh", "serve", "--port", "0", "--metrics", f"127.0.0.1:{mport}"]
    server = ServerProcess(argv, tmp_path / "serve.log", env).start()
    url = f"http://127.0.0.1:{mport}/metrics"
    successor = None
    try:
        login = ssh_argv(server.port, keydir / "user_ed25519", "true", user=ME)
        assert run(login, input=b"").returncode == 0
        server.signal(signal.SIGHUP)
        found = wait_until(lambda: re.search(r"new generation \(pid (\d+)\)", server.log()), 60,
                           "the new generation")  # fmt: skip
        successor = os.pidfd_open(int(found.group(1)))
        assert server.wait(30) == 0  # the old generation drained (nothing open) and exited
        assert run(login, input=b"").returncode == 0

        def counted() -> Samples | None:
            samples = scrape(url)
            done = total(samples, "geossh_connections_total") == 2
            return samples if done and value(samples, "geossh_connections_open") == 0 else None

        samples = wait_until(counted, 30, "both logins counted")
        assert value(samples, "geossh_logins_total", method="publickey") == 2
        assert value(samples, "geossh_reloads_total") == 1
    finally:
        server.stop()
        if successor is not None:
            os.kill(int(found.group(1)), signal.SIGTERM)
            if not gevent.select.select([successor], [], [], 30)[0]:
                os.kill(int(found.group(1)), signal.SIGKILL)
            os.close(successor)


def test_penalty_refusals_are_counted(tmp_path: Path, home: Path, keydir: Path) -> None:
    """A failed login earns 127.0.0.1 a penalty: its next connection is refused and counted."""
    require("ssh")
    penalties = ("--per-source-penalties", "authfail:30s min:15s")  # after start()'s "no": wins
    server, url = start(tmp_path, home, *penalties)
    try:
        bad_key = run(ssh_argv(server.port, keydir / "other_ed25519", "true", user=ME))
        assert bad_key.returncode == 255

        def ended(outcome: str) -> Samples | None:
            samples = scrape(url)
            return samples if value(samples, "geossh_connections_total", outcome=outcome) else None

        wait_until(lambda: ended("authfail"), 30, "the failed login counted")
        refused = run(ssh_argv(server.port, keydir / "user_ed25519", "true", user=ME))
        assert refused.returncode == 255
        samples = wait_until(lambda: ended("refused"), 30, "the refusal counted")
    finally:
        server.stop()
    assert value(samples, "geossh_source_refusals_total", reason="penalty") == 1
    assert value(samples, "geossh_connections_total", outcome="refused") == 1
    assert value(samples, "geossh_logins_total", method="publickey") == 0
