"""``geossh serve`` applies certificate extensions and key options as sshd does (issue 16: 12).

OpenSSH ``ssh-keygen -s`` signs copies of one user key with different
``-O`` options; the CA is a ``cert-authority`` line of ~/.ssh/authorized_keys,
which also lists a second key with ``no-pty,no-port-forwarding`` and a third
plainly: a certificate of that third key must be judged by the CA line, never
by the unrestricted plain one (paramiko offers only the certificate; OpenSSH
offers the plain key first).
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent.server
import pytest

from tests.conftest import require
from tests.server_kit import ServerProcess, python_env, run, ssh_argv

pytestmark = pytest.mark.interop
ME = getpass.getuser()
HELLO = b"hello through the tunnel\n"
CERTS = {
    "full": [],
    "nopty": ["-O", "no-pty"],
    "nofwd": ["-O", "no-port-forwarding"],
    "clear": ["-O", "clear"],
    "forced": ["-O", "force-command=echo forced by the certificate"],
    "shadow": ["-O", "no-pty"],  # of the key that is also listed plainly
}


def _keygen(*args: str) -> None:
    subprocess.run(["ssh-keygen", "-q", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, keydir: Path) -> Iterator[Any]:
    """geossh serve --forwarding, a hello target, and one certified identity per CERTS entry."""
    require("ssh")
    tmp = tmp_path_factory.mktemp("certs")
    _keygen("-t", "ed25519", "-N", "", "-f", str(tmp / "ca"))
    for name, options in CERTS.items():
        (tmp / name).mkdir()
        source = "user_ed25519" if name == "shadow" else "other_ed25519"
        for suffix in ("", ".pub"):
            shutil.copy(keydir / f"{source}{suffix}", tmp / name / f"id{suffix}")
        (tmp / name / "id").chmod(0o600)
        _keygen("-s", str(tmp / "ca"), "-I", f"{name}-cert", "-n", ME, "-V", "-5m:+1h",
                *options, str(tmp / name / "id.pub"))  # fmt: skip
    home = tmp / "home"
    (home / ".ssh").mkdir(parents=True)
    lines = [
        "cert-authority " + (tmp / "ca.pub").read_text().strip(),
        (keydir / "user_ed25519.pub").read_text().strip(),
        "no-pty,no-port-forwarding " + (keydir / "user_ecdsa.pub").read_text().strip(),
    ]
    (home / ".ssh" / "authorized_keys").write_text("\n".join(lines) + "\n")
    env = python_env(HOME=str(home))
    env.pop("XDG_STATE_HOME", None)
    argv = ["-m", "geossh", "serve", "--port", "0", "--forwarding"]
    server = ServerProcess(argv, tmp / "serve.log", env).start()
    target = gevent.server.StreamServer(("127.0.0.1", 0), lambda sock, _: _hello(sock))
    target.start()
    try:
        yield server, target.server_port, tmp
    finally:
        target.stop()
        server.stop()


def _hello(sock: Any) -> None:
    sock.sendall(HELLO)
    sock.close()


def _ssh(world: Any, identity: str, *remote: str, extra: tuple[str, ...] = ()) -> Any:
    server, _, tmp = world
    key = tmp / identity / "id" if identity in CERTS else Path(identity)
    return run(ssh_argv(server.port, key, *remote, user=ME, extra=extra), input=b"")


def _tty(world: Any, identity: str) -> Any:
    return _ssh(world, identity, "tty", extra=("-tt",))


def _tunnel(world: Any, identity: str) -> Any:
    return _ssh(world, identity, extra=("-W", f"127.0.0.1:{world[1]}"))


def _granted_pty(result: Any) -> bool:
    return result.returncode == 0 and result.stdout.startswith(b"/dev/")


def _refused_pty(result: Any) -> bool:
    return b"PTY allocation request failed" in result.stderr and b"/dev/" not in result.stdout


def test_full_certificate_gets_pty_and_forwarding(world: Any) -> None:
    assert _granted_pty(_tty(world, "full"))
    assert _tunnel(world, "full").stdout == HELLO


def test_certificate_without_permit_pty_is_refused_a_pty(world: Any) -> None:
    assert _refused_pty(_tty(world, "nopty")), _tty(world, "nopty").stderr
    plain = _ssh(world, "nopty", "echo logged in")
    assert plain.returncode == 0 and plain.stdout == b"logged in\n", plain.stderr
    assert _tunnel(world, "nopty").stdout == HELLO  # only the pty is withheld


def test_certificate_without_permit_port_forwarding_is_refused_forwarding(world: Any) -> None:
    result = _tunnel(world, "nofwd")
    assert result.returncode != 0 and result.stdout == b""
    assert b"forwarding failed" in result.stderr, result.stderr
    assert _granted_pty(_tty(world, "nofwd"))


def test_certificate_without_extensions_gets_neither(world: Any) -> None:
    assert _refused_pty(_tty(world, "clear"))
    assert b"forwarding failed" in _tunnel(world, "clear").stderr


def test_certificate_force_command_replaces_the_command(world: Any) -> None:
    result = _ssh(world, "forced", "echo chosen by the client")
    assert result.returncode == 0 and result.stdout == b"forced by the certificate\n"


def test_plain_key_with_no_pty_and_no_port_forwarding(world: Any, keydir: Path) -> None:
    key = str(keydir / "user_ecdsa")
    assert _refused_pty(_tty(world, key))
    assert b"forwarding failed" in _tunnel(world, key).stderr
    result = _ssh(world, key, "echo restricted but in")
    assert result.returncode == 0 and result.stdout == b"restricted but in\n"
    assert _granted_pty(_tty(world, str(keydir / "user_ed25519")))


def test_certificate_is_judged_by_the_ca_line_not_the_plain_key_line(world: Any) -> None:
    """paramiko logs in with only the certificate (``-O no-pty``) of a plainly listed key."""
    from tests.support import in_thread

    server, _, tmp = world

    def body() -> tuple[bool, bytes]:
        import paramiko

        key = paramiko.Ed25519Key.from_private_key_file(str(tmp / "shadow" / "id"))
        key.load_certificate(str(tmp / "shadow" / "id-cert.pub"))
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect("127.0.0.1", server.port, ME, pkey=key, look_for_keys=False,
                       allow_agent=False, timeout=20)  # fmt: skip
        try:
            channel = client.get_transport().open_session(timeout=20)
            try:
                channel.get_pty()
                got_pty = True
            except paramiko.SSHException:
                got_pty = False
            channel = client.get_transport().open_session(timeout=20)  # paramiko closed it
            channel.exec_command("echo in")
            return got_pty, channel.makefile("rb").read()
        finally:
            client.close()

    assert in_thread(body) == (False, b"in\n")
