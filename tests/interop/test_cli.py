"""``geossh serve`` as a subprocess, driven by OpenSSH ssh, sftp and scp (and paramiko)."""

from __future__ import annotations

import functools
import getpass
import hashlib
import os
import shutil
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import gevent
import pytest

from tests.conftest import require
from tests.server_kit import SSH_OPTIONS, ServerProcess, python_env, run, ssh_argv
from tests.support import in_thread

pytestmark = pytest.mark.interop
ME = getpass.getuser()


@pytest.fixture
def home(tmp_path: Path, keydir: Path) -> Path:
    """A fresh HOME whose ~/.ssh/authorized_keys lists the test user key."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(keydir / "user_ed25519.pub", home / ".ssh" / "authorized_keys")
    return home


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = python_env(HOME=str(home), **extra)
    env.pop("XDG_STATE_HOME", None)
    return env


def _serve(tmp_path: Path, home: Path, *flags: str, **env: str) -> ServerProcess:
    argv = ["-m", "geossh", "serve", "--port", "0", *flags]
    return ServerProcess(argv, tmp_path / "serve.log", _env(home, **env)).start()


@pytest.fixture
def serve(tmp_path: Path, home: Path) -> Any:
    require("ssh")
    server = _serve(tmp_path, home)
    try:
        yield server
    finally:
        server.stop()


def _ssh(server: ServerProcess, keydir: Path, *remote: str, **kwargs: Any) -> Any:
    extra = kwargs.pop("extra", ())
    return run(
        ssh_argv(server.port, keydir / "user_ed25519", *remote, user=ME, extra=extra), **kwargs
    )


def test_announces_how_to_connect(serve: ServerProcess, home: Path) -> None:
    text = serve.expect("connect: ")
    assert f"serving on 127.0.0.1:{serve.port} for user {ME!r}" in text
    assert f"connect: ssh -p {serve.port} {ME}@127.0.0.1" in text
    state = home / ".local" / "state" / "geossh"
    for kind in ("ed25519", "ecdsa", "rsa"):
        assert (state / f"ssh_host_{kind}_key").stat().st_mode & 0o777 == 0o600
    assert "ssh-ed25519" in (state / "ssh_host_ed25519_key.pub").read_text()


def test_exec_runs_real_commands(serve: ServerProcess, keydir: Path, home: Path) -> None:
    result = _ssh(serve, keydir, 'echo "$HOME"; pwd; echo err >&2; exit 7')
    assert result.returncode == 7
    assert result.stdout.decode().split() == [str(home), str(home)]
    assert result.stderr == b"err\n"
    data = os.urandom(300_000)
    piped = _ssh(serve, keydir, "cat", input=data)
    assert piped.returncode == 0 and piped.stdout == data


def test_shell_with_forced_tty(serve: ServerProcess, keydir: Path) -> None:
    script = b"tty && echo shell-$((6*7)) && echo TERM=$TERM\nexit 4\n"
    result = _ssh(serve, keydir, extra=["-tt", "-o", "SetEnv=TERM=vt220"], input=script)
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 4, out + result.stderr.decode(errors="replace")
    assert "/dev/pts/" in out and "shell-42" in out


def test_sftp_and_scp(serve: ServerProcess, keydir: Path, home: Path, tmp_path: Path) -> None:
    require("sftp")
    require("scp")
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(200_000))
    batch = f"put {local} up.bin\nget up.bin {tmp_path / 'down.bin'}\nls\n".encode()
    opts = [*SSH_OPTIONS, "-i", str(keydir / "user_ed25519"), "-P", str(serve.port)]
    result = run(["sftp", *opts, "-b", "-", f"{ME}@127.0.0.1"], input=batch)
    assert result.returncode == 0, result.stderr
    assert (home / "up.bin").read_bytes() == local.read_bytes()
    assert (tmp_path / "down.bin").read_bytes() == local.read_bytes()
    target = f"{ME}@127.0.0.1"
    assert run(["scp", *opts, str(local), f"{target}:via-scp.bin"]).returncode == 0
    assert run(["scp", "-O", *opts, str(local), f"{target}:legacy.bin"]).returncode == 0
    back = run(["scp", "-O", *opts, f"{target}:legacy.bin", str(tmp_path / "back.bin")])
    assert back.returncode == 0, back.stderr
    for name in ("via-scp.bin", "legacy.bin"):
        assert (home / name).read_bytes() == local.read_bytes()
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()


def test_root_flag_confines_sftp(tmp_path: Path, home: Path, keydir: Path) -> None:
    require("sftp")
    root = tmp_path / "jail"
    root.mkdir()
    (root / "inside.txt").write_text("in\n")
    server = _serve(tmp_path, home, "--root", str(root))
    try:
        opts = [*SSH_OPTIONS, "-i", str(keydir / "user_ed25519"), "-P", str(server.port)]
        batch = f"get /inside.txt {tmp_path / 'got.txt'}\nget ../../etc/passwd {tmp_path / 'x'}\n"
        result = run(["sftp", *opts, "-b", "-", f"{ME}@127.0.0.1"], input=batch.encode())
        assert (tmp_path / "got.txt").read_text() == "in\n"
        assert result.returncode != 0 and not (tmp_path / "x").exists()
    finally:
        server.stop()


def test_password_from_environment(tmp_path: Path, home: Path) -> None:
    from tests.server_kit import paramiko_client

    server = _serve(tmp_path, home, "--password-env", "GEOSSH_PW", GEOSSH_PW="s3cret pass")
    try:
        login = functools.partial(paramiko_client, server.port, username=ME)
        client = in_thread(functools.partial(login, password="s3cret pass"))
        _, out, _ = in_thread(client.exec_command, "echo via-password")
        assert in_thread(out.read) == b"via-password\n"
        in_thread(client.close)
        import paramiko

        with pytest.raises(paramiko.AuthenticationException):
            in_thread(functools.partial(login, password="wrong"))
    finally:
        server.stop()


def test_fresh_machine_gets_a_one_time_password(tmp_path: Path) -> None:
    """No authorized_keys and no password flag: a generated password is printed and works."""
    require("sshpass")
    bare = tmp_path / "bare-home"
    bare.mkdir()
    server = _serve(tmp_path, bare)
    try:
        text = server.expect("connect: ")
        marker = "password (generated for this run; no usable key found): "
        assert marker in text
        password = text.split(marker, 1)[1].split()[0]
        argv = ["sshpass", "-p", password, "ssh", "-o", "BatchMode=no", *SSH_OPTIONS,
                "-p", str(server.port),
                "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
                f"{ME}@127.0.0.1", "echo logged-in"]  # fmt: skip
        result = run(argv)
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"logged-in\n"
    finally:
        server.stop()


def test_usable_keys_generate_no_password(serve: ServerProcess) -> None:
    assert "generated for this run" not in serve.expect("connect: ")


def test_no_password_flag_keeps_a_keyless_server_closed(tmp_path: Path) -> None:
    bare = tmp_path / "bare-home"
    bare.mkdir()
    server = _serve(tmp_path, bare, "--no-password")
    try:
        text = server.expect("connect: ")
        assert "generated for this run" not in text
        auth_line = text.split("auth: ", 1)[1].splitlines()[0]
        assert auth_line.startswith("publickey (") and not auth_line.endswith(", password")
    finally:
        server.stop()


BAD_FLAGS = [
    ["--bogus"],
    ["--port", "70000"],
    ["--port", "http"],
    ["--listen", "[::1"],
    ["--workers", "0"],
    ["--max-startups", "10:x:20"],
    ["--login-grace-time", "-1"],
    ["--log-level", "LOUD"],
    ["--host-key", "/nonexistent/key"],
    ["--host-key", "/etc"],
    ["--host-key", "/etc/hostname"],
    ["--root", "/nonexistent/dir"],
    ["--authorized-keys", "/nonexistent/authorized_keys"],
    ["--password-env", "GEOSSH_UNSET_VARIABLE"],
    ["frobnicate"],
]


@pytest.mark.parametrize("flags", BAD_FLAGS, ids=lambda f: " ".join(f))
def test_bad_input_is_one_line_and_status_2(flags: list[str], home: Path) -> None:
    result = run([sys.executable, "-m", "geossh", *flags], env=_env(home), timeout=60)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("geossh: error: "), lines
    assert result.stdout == b""


def test_port_in_use(home: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        argv = [sys.executable, "-m", "geossh", "serve", "--port", str(port)]
        result = run(argv, env=_env(home), timeout=60)
    finally:
        taken.close()
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        f"geossh: error: cannot listen on 127.0.0.1:{port}: address already in use"
    )


def test_version_via_python_m() -> None:
    result = run([sys.executable, "-m", "geossh", "--version"], env=python_env())
    assert result.returncode == 0 and result.stdout.startswith(b"geossh ")


def test_sigterm_lets_a_session_finish(serve: ServerProcess, keydir: Path) -> None:
    import gevent.subprocess

    argv = ssh_argv(serve.port, keydir / "user_ed25519", "echo ready; read x; echo got $x", user=ME)
    session = gevent.subprocess.Popen(
        argv, stdin=gevent.subprocess.PIPE, stdout=gevent.subprocess.PIPE
    )
    assert session.stdout.readline() == b"ready\n"
    serve.signal(signal.SIGTERM)
    with gevent.Timeout(30, AssertionError(serve.log())):
        while "stopping: 1 connection(s) open" not in serve.log():
            gevent.sleep(0.05)
    out, _ = session.communicate(b"late\n", timeout=30)
    assert out == b"got late\n" and session.returncode == 0
    assert serve.wait(30) == 0


def _upload_until_cut(port: int, acked: list[int], halfway: threading.Event) -> BaseException:
    """Write 8 KiB blocks, each acknowledged, until the server goes away."""
    from tests.server_kit import paramiko_client

    client = paramiko_client(port, username=ME, key_filename=acked.pop(), password=None)
    try:
        handle = client.open_sftp().open("upload.bin", "wb")
        handle.set_pipelined(False)
        for index in range(20_000):
            handle.write(_block(index))  # returns once the server acknowledged it
            acked[0] += 1
            if index == 20:
                halfway.set()
        return AssertionError("the server never cut the upload")
    except Exception as exc:
        return exc
    finally:
        halfway.set()
        client.close()


def _block(index: int) -> bytes:
    return hashlib.sha256(str(index).encode()).digest() * 256  # 8 KiB


def test_sigterm_during_sftp_upload_keeps_acknowledged_writes(
    tmp_path: Path, home: Path, keydir: Path
) -> None:
    server = _serve(tmp_path, home, "--stop-timeout", "0.3")
    try:
        acked = [0, str(keydir / "user_ed25519")]
        halfway = threading.Event()
        job = gevent.get_hub().threadpool.spawn(_upload_until_cut, server.port, acked, halfway)
        while not in_thread(halfway.wait, 1):
            pass  # bounded by the test timeout
        server.signal(signal.SIGTERM)
        error = job.get()
        assert server.wait(30) == 0
    finally:
        server.stop()
    assert not isinstance(error, AssertionError), error
    count = acked[0]
    print(f"acknowledged {count} blocks before the cut: {error!r}")
    assert count > 20
    data = (home / "upload.bin").read_bytes()
    expected = b"".join(_block(i) for i in range(count))
    assert data[: len(expected)] == expected  # nothing acknowledged was lost


@pytest.mark.parametrize("enabled", [True, False])
def test_forwarding_flag(tmp_path: Path, home: Path, keydir: Path, enabled: bool) -> None:
    require("ssh")
    import gevent.server

    def hello(sock: Any, address: Any) -> None:
        sock.sendall(b"hello through the tunnel\n")
        sock.close()

    target = gevent.server.StreamServer(("127.0.0.1", 0), hello)
    target.start()
    server = _serve(tmp_path, home, *(["--forwarding"] if enabled else []))
    try:
        stdio = f"127.0.0.1:{target.server_port}"
        result = _ssh(server, keydir, extra=["-W", stdio], input=b"")
    finally:
        server.stop()
        target.stop()
    if enabled:
        assert result.stdout == b"hello through the tunnel\n", result.stderr
    else:
        assert result.returncode != 0 and b"forwarding failed" in result.stderr
