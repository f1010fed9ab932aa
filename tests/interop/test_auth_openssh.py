"""OpenSSH ``ssh`` authenticates to geossh: keys, passwords, keyboard-interactive, more.

Passwords are typed by ``sshpass`` (installed by .ci/run). Every test runs a
real ``ssh`` against the in-process server and checks both sides: the
client's exit status and messages, and what the application was asked.
"""

from __future__ import annotations

import hmac
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent
import gevent.subprocess
import pytest

import geossh
from tests.conftest import require
from tests.support import PASSWORD, USER, ServerHarness, TestServer

pytestmark = pytest.mark.interop


def ssh_ok(server: ServerHarness, **kwargs: Any) -> str:
    """Run ``ssh … echo ok``; assert success; returns the client's stderr."""
    require("ssh")
    result = server.ssh_run("echo", "ok", **kwargs)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, stderr[-3000:]
    assert result.stdout == b"ok\n"
    return stderr


def sshpass(
    server: ServerHarness, secret: str, method: str, *options: str, key: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``sshpass -p secret ssh …`` restricted to ``method`` (password prompts are typed)."""
    require("ssh")
    require("sshpass")
    opts = ["-o", f"PreferredAuthentications={method}", "-o", "NumberOfPasswordPrompts=1"]
    if key is None:
        opts += ["-o", "PubkeyAuthentication=no"]
    argv = ["sshpass", "-p", secret]
    argv += server.ssh_command("echo", "ok", key=key, options=[*opts, *options])
    return gevent.subprocess.run(  # type: ignore[no-any-return]
        argv, capture_output=True, timeout=40, stdin=subprocess.DEVNULL, check=False
    )


def events(server: ServerHarness) -> list[tuple[Any, ...]]:
    return server.servers[0].events  # type: ignore[attr-defined, no-any-return]


# -- public keys ----------


@pytest.mark.parametrize(
    "key,algorithm",
    [
        ("user_ed25519", "ssh-ed25519"),
        ("user_ecdsa", "ecdsa-sha2-nistp256"),
        ("user_rsa", "rsa-sha2-512"),
        ("user_rsa", "rsa-sha2-256"),
    ],
)
def test_publickey(server: ServerHarness, key: str, algorithm: str) -> None:
    log = ssh_ok(server, key=key, options=["-vvv", "-o", f"PubkeyAcceptedAlgorithms={algorithm}"])
    assert f"signing using {algorithm}" in log
    assert 'using "publickey"' in log
    # paramiko's call pattern: the query, then the signed request.
    key_type = "ssh-rsa" if algorithm.startswith("rsa") else algorithm
    assert events(server).count(("publickey", USER, key_type)) == 2


def test_wrong_key_is_refused(server: ServerHarness) -> None:
    require("ssh")
    result = server.ssh_run("echo", "ok", key="other_ed25519")
    assert result.returncode == 255
    assert b"Permission denied (publickey,password,keyboard-interactive)" in result.stderr
    assert not server.transports[0].is_authenticated()


def test_sha1_rsa_signatures_are_refused(server: ServerHarness) -> None:
    """``ssh-rsa`` (SHA-1) is not allowed for user keys by default: FAILURE, as OpenSSH."""
    require("ssh")
    result = server.ssh_run(
        "echo", "ok", key="user_rsa", options=["-o", "PubkeyAcceptedAlgorithms=ssh-rsa"]
    )
    assert result.returncode == 255 and b"Permission denied" in result.stderr
    assert not [e for e in events(server) if e[0] == "publickey"]  # never reached the app


def test_sha1_rsa_when_the_application_enables_it(server: ServerHarness) -> None:
    def configure(transport: geossh.Transport) -> None:
        transport.disabled_algorithms = {}
        transport._preferred_pubkeys = ("rsa-sha2-512", "ssh-rsa")

    server.configure = configure
    log = ssh_ok(server, key="user_rsa", options=["-vvv", "-o", "PubkeyAcceptedAlgorithms=ssh-rsa"])
    assert "signing using ssh-rsa" in log


def wrong_keys(tmp_path: Path, count: int) -> list[str]:
    """``-i`` options for ``count`` fresh keys the server does not know."""
    options = []
    for i in range(count):
        path = tmp_path / f"wrong{i}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
        options += ["-i", str(path)]
    return options


def test_max_auth_tries_disconnects(server: ServerHarness, tmp_path: Path) -> None:
    """Six refused keys: the sixth failure becomes DISCONNECT 14, as sshd's MaxAuthTries."""
    require("ssh")
    result = server.ssh_run("echo", "ok", key=None, options=[
        "-o", "IdentitiesOnly=yes", *wrong_keys(tmp_path, 7)])  # fmt: skip
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 255
    assert ":14: Too many authentication failures" in stderr, stderr
    assert len([e for e in events(server) if e[0] == "publickey"]) == 6


def test_first_none_is_not_counted(server: ServerHarness, tmp_path: Path, keydir: Path) -> None:
    """none (uncounted) + five refused keys, then the right key still gets in."""
    options = ["-o", "IdentitiesOnly=yes", *wrong_keys(tmp_path, 5)]
    ssh_ok(server, key=None, options=[*options, "-i", str(keydir / "user_ed25519")])
    assert server.transports[0]._conn.auth.failures == 5


def test_certificate(server: ServerHarness, tmp_path: Path, keydir: Path) -> None:
    """An OpenSSH user certificate from a CA the application trusts."""
    require("ssh")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca")],
                   check=True)  # fmt: skip
    shutil.copy(keydir / "other_ed25519", tmp_path / "id")
    shutil.copy(keydir / "other_ed25519.pub", tmp_path / "id.pub")
    (tmp_path / "id").chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-s", str(tmp_path / "ca"), "-I", "alice@test",
                    "-n", USER, "-V", "-5m:+5m", str(tmp_path / "id.pub")], check=True)  # fmt: skip
    ca = geossh.PKey.from_path(str(tmp_path / "ca"))

    class CertServer(TestServer):
        def check_auth_cert_authority(self, username: str, ca_key: geossh.PKey) -> bool:
            return ca_key == ca

        def check_auth_certificate(self, username: str, key: geossh.PKey, cert: Any) -> int:
            self.events.append(("certificate", cert.key_id, cert.principals))
            return geossh.AUTH_SUCCESSFUL

    server.interface = CertServer
    result = server.ssh_run("echo", "ok", key=None, options=["-i", str(tmp_path / "id"), "-v"])
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    assert ("certificate", "alice@test", (USER,)) in events(server)
    assert (
        "Server accepts key: " in result.stderr.decode()
        and "ED25519-CERT" in result.stderr.decode()
    )


# -- passwords, keyboard-interactive, banner ----------------------------------------------------


def test_password(server: ServerHarness) -> None:
    result = sshpass(server, PASSWORD, "password")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"ok\n"
    assert events(server)[0] == ("password", USER)


def test_wrong_password(server: ServerHarness) -> None:
    result = sshpass(server, "wrong", "password")
    assert result.returncode != 0 and result.stdout == b""
    assert not server.transports[0].is_authenticated()


def test_keyboard_interactive(server: ServerHarness) -> None:
    result = sshpass(server, PASSWORD, "keyboard-interactive")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"ok\n"


def test_keyboard_interactive_wrong_answer(server: ServerHarness) -> None:
    result = sshpass(server, "nope", "keyboard-interactive")
    assert result.returncode != 0 and result.stdout == b""


def test_banner_is_shown(server: ServerHarness) -> None:
    class BannerServer(TestServer):
        def get_banner(self) -> tuple[str, str]:
            return ("Authorized users only.\r\n", "en-US")

    server.interface = BannerServer
    log = ssh_ok(server, options=["-v"])
    assert "Authorized users only." in log
    assert log.index("Authorized users only.") < log.index("Server accepts key")


class PasswordThenKey(TestServer):
    """Two factors: a password (partial success), then a key; like AuthenticationMethods."""

    def __init__(self, harness: ServerHarness) -> None:
        super().__init__(harness)
        self.password_ok = False

    def get_allowed_auths(self, username: str) -> str:
        return "publickey" if self.password_ok else "password"

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        self.events.append(("password", username))
        ok = username == USER and hmac.compare_digest(str(password).encode(), PASSWORD.encode())
        self.password_ok = self.password_ok or ok
        return geossh.AUTH_PARTIALLY_SUCCESSFUL if ok else geossh.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: geossh.PKey) -> int:
        self.events.append(("publickey", username, key.get_name()))
        if self.password_ok and key in self.harness.authorized_keys:
            return geossh.AUTH_SUCCESSFUL
        return geossh.AUTH_FAILED


def test_two_factor_partial_success(server: ServerHarness) -> None:
    server.interface = PasswordThenKey
    result = sshpass(server, PASSWORD, "password,publickey", "-v", key="user_ed25519")
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, stderr[-3000:]
    assert 'Authenticated using "password" with partial success.' in stderr
    assert 'using "publickey"' in stderr
    assert server.transports[0]._conn.auth.failures == 0


def test_two_factor_needs_both(server: ServerHarness) -> None:
    server.interface = PasswordThenKey
    result = server.ssh_run("echo", "ok", key="user_ed25519")  # key alone
    assert result.returncode == 255 and b"Permission denied (password)" in result.stderr


# -- examples/authorized_keys_server.py, run as its own process ----------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "authorized_keys_server.py"
EXAMPLE_PASSWORD = "example secret"


@pytest.fixture
def example(tmp_path: Path, keydir: Path) -> Any:
    """The example server on a free port, with an authorized_keys file of every kind of line."""
    require("ssh")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca")],
                   check=True)  # fmt: skip
    shutil.copy(keydir / "other_ed25519", tmp_path / "ops")
    shutil.copy(keydir / "other_ed25519.pub", tmp_path / "ops.pub")
    (tmp_path / "ops").chmod(0o600)
    sign = ["ssh-keygen", "-q", "-s", str(tmp_path / "ca"), "-I", "ops-cert", "-n", "ops"]
    subprocess.run([*sign, "-V", "-5m:+5m", str(tmp_path / "ops.pub")], check=True)

    def line(name: str) -> str:
        kind, blob = (keydir / f"{name}.pub").read_text().split()[:2]
        return f"{kind} {blob}"

    ca_kind, ca_blob = (tmp_path / "ca.pub").read_text().split()[:2]
    (tmp_path / "authorized_keys").write_text(
        "# geossh example\n"
        f"{line('user_ed25519')} alice-laptop\n"
        f'command="backup --daily",no-pty {line("user_ecdsa")} backup-robot\n'
        f'from="10.0.0.0/8" {line("user_rsa")} only-from-the-office\n'
        f'cert-authority,principals="ops" {ca_kind} {ca_blob} ops-ca\n'
    )
    argv = [sys.executable, str(EXAMPLE), "--user", USER, "--port", "0",
            "--authorized-keys", str(tmp_path / "authorized_keys"),
            "--host-key", str(keydir / "host_ed25519")]  # fmt: skip
    root = str(EXAMPLE.parents[1])  # geossh importable even when not installed
    pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "GEOSSH_EXAMPLE_PASSWORD": EXAMPLE_PASSWORD, "PYTHONPATH": pythonpath}
    with open(tmp_path / "server.log", "wb") as log:
        proc = gevent.subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=env)
    try:
        first = proc.stdout.readline().decode()
        assert first.startswith("listening on 127.0.0.1:"), first
        yield SimpleNamespace(port=int(first.rsplit(":", 1)[1]), dir=tmp_path)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def example_ssh(
    example: Any, identity: Path | None, *remote: str, password: str | None = None,
    options: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    argv = ["ssh", "-F", "/dev/null", "-p", str(example.port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]  # fmt: skip
    if identity is not None:
        argv += ["-i", str(identity), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
    else:
        require("sshpass")
        argv = ["sshpass", "-p", password or "", *argv, "-o", "PubkeyAuthentication=no"]
        argv += ["-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1"]
    argv += [*options, f"{USER}@127.0.0.1", *remote]
    return gevent.subprocess.run(argv, capture_output=True, timeout=40, stdin=subprocess.DEVNULL)


def test_example_plain_key(example: Any, keydir: Path) -> None:
    result = example_ssh(example, keydir / "user_ed25519", "uptime", "-p")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        f"hello {USER}", "key: alice-laptop", "command: uptime -p"]  # fmt: skip


def test_example_forced_command_and_no_pty(example: Any, keydir: Path) -> None:
    refused = example_ssh(example, keydir / "user_ecdsa", "top", options=("-tt",))
    assert refused.returncode == 255  # no-pty: a forced tty request is fatal for ssh
    assert b"PTY allocation request failed" in refused.stderr
    result = example_ssh(example, keydir / "user_ecdsa", "rm", "-rf", "/")
    assert result.returncode == 0, result.stderr
    assert "forced command: backup --daily" in result.stdout.decode()
    assert "original command: rm -rf /" in result.stdout.decode()


def test_example_from_option_refuses_other_addresses(example: Any, keydir: Path) -> None:
    result = example_ssh(example, keydir / "user_rsa", "true")
    assert result.returncode == 255 and b"Permission denied" in result.stderr


def test_example_unknown_key_refused(example: Any, keydir: Path) -> None:
    result = example_ssh(example, keydir / "other_ed25519", "true")
    assert result.returncode == 255 and b"Permission denied (publickey,password)" in result.stderr


def test_example_certificate_through_cert_authority_line(example: Any) -> None:
    result = example_ssh(example, example.dir / "ops", "deploy")
    assert result.returncode == 0, result.stderr
    assert "command: deploy" in result.stdout.decode()


def test_example_certificate_without_permit_pty_gets_no_pty(example: Any, keydir: Path) -> None:
    """authorize_certificate narrows the cert-authority entry by the certificate's extensions."""
    for suffix in ("", ".pub"):
        shutil.copy(keydir / f"other_ed25519{suffix}", example.dir / f"ops-nopty{suffix}")
    (example.dir / "ops-nopty").chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-s", str(example.dir / "ca"), "-I", "ops-nopty",
                    "-n", "ops", "-O", "no-pty", str(example.dir / "ops-nopty.pub")],
                   check=True)  # fmt: skip
    refused = example_ssh(example, example.dir / "ops-nopty", "top", options=("-tt",))
    assert b"PTY allocation request failed" in refused.stderr, refused.stderr
    result = example_ssh(example, example.dir / "ops-nopty", "deploy")
    assert result.returncode == 0 and "command: deploy" in result.stdout.decode()
    full = example_ssh(example, example.dir / "ops", "top", options=("-tt",))
    assert full.returncode == 0 and b"PTY allocation request failed" not in full.stderr


def test_example_password(example: Any) -> None:
    result = example_ssh(example, None, "id", password=EXAMPLE_PASSWORD)
    assert result.returncode == 0, result.stderr
    assert "command: id" in result.stdout.decode()
    wrong = example_ssh(example, None, "id", password="not it")
    assert wrong.returncode != 0 and wrong.stdout == b""
