"""``ssh -X``/``-Y`` against ``geossh serve --x11``: real X clients reach a real Xvfb.

Xvfb picks its own display (``-displayfd``) and demands a cookie (``-auth``);
ssh forwards to it with DISPLAY/XAUTHORITY pointing there. The remote command
is ``xdpyinfo``, run by OSCommand with the DISPLAY and XAUTHORITY geossh made:
it must print the Xvfb's screen size. Then the display must be gone (port
closed, XAUTHORITY directory removed), and ``no-X11-forwarding`` keys, a
certificate without ``permit-X11-forwarding`` and a server without ``--x11``
must refuse the x11-req.
"""

from __future__ import annotations

import getpass
import os
import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.os
import gevent.subprocess
import pytest

from tests.conftest import require
from tests.forward_support import wait_until
from tests.server_kit import ServerProcess, python_env, run, ssh_argv

pytestmark = pytest.mark.interop
ME = getpass.getuser()
SCREEN = "1234x567"
PROBE = (
    'echo "display=$DISPLAY xauthority=$XAUTHORITY"; '
    'xdpyinfo | grep -E "dimensions|name of display"'
)


class Xvfb:
    """An Xvfb on a display it chose, with a cookie it demands, stopped by ``stop``."""

    def __init__(self, directory: Path) -> None:
        self.cookie = secrets.token_hex(16)
        server_auth = directory / "server.auth"
        self._xauth(server_auth, "add", ":0", ".", self.cookie)  # the server ignores the name
        read, write = os.pipe()
        try:
            self.proc = gevent.subprocess.Popen(
                ["Xvfb", "-displayfd", str(write), "-auth", str(server_auth), "-nolisten", "tcp",
                 "-screen", "0", f"{SCREEN}x24"],
                pass_fds=(write,), stdout=subprocess.DEVNULL,
                stderr=open(directory / "xvfb.log", "wb"),  # noqa: SIM115 (the child's)
            )  # fmt: skip
        finally:
            os.close(write)
        try:
            os.set_blocking(read, False)
            text = b""
            with gevent.Timeout(30, AssertionError("Xvfb announced no display")):
                while not text.endswith(b"\n"):
                    chunk = gevent.os.nb_read(read, 64)
                    if not chunk:
                        raise AssertionError(f"Xvfb exited: {(directory / 'xvfb.log').read_text()}")
                    text += chunk
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read)
        self.display = f":{int(text)}"
        self.xauthority = directory / "client.auth"
        self._xauth(self.xauthority, "add", self.display, ".", self.cookie)
        self.env = {**os.environ, "DISPLAY": self.display, "XAUTHORITY": str(self.xauthority)}

    @staticmethod
    def _xauth(path: Path, *command: str) -> None:
        gevent.subprocess.run(
            ["xauth", "-q", "-f", str(path), *command], check=True, timeout=30, capture_output=True
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except gevent.subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def xvfb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xvfb]:
    for tool in ("Xvfb", "xdpyinfo", "xauth", "ssh"):
        require(tool)
    server = Xvfb(tmp_path_factory.mktemp("xvfb"))
    try:
        yield server
    finally:
        server.stop()


def _keygen(*args: str) -> None:
    gevent.subprocess.run(["ssh-keygen", "-q", *args], check=True, capture_output=True)


@pytest.fixture
def home(tmp_path: Path, keydir: Path) -> Path:
    """HOME: user_ed25519, ``no-X11-forwarding`` user_ecdsa, a CA; certificates in tmp_path.

    ``cert/id`` is certified with the default extensions (X11 permitted),
    ``nox11/id`` with ``-O no-x11-forwarding``.
    """
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    _keygen("-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca"))
    for name, options in (("cert", []), ("nox11", ["-O", "no-x11-forwarding"])):
        (tmp_path / name).mkdir()
        for suffix in ("", ".pub"):
            shutil.copy(keydir / f"user_rsa{suffix}", tmp_path / name / f"id{suffix}")
        (tmp_path / name / "id").chmod(0o600)
        _keygen("-s", str(tmp_path / "ca"), "-I", name, "-n", ME, "-V", "-5m:+1h", *options,
                str(tmp_path / name / "id.pub"))  # fmt: skip
    lines = [
        (keydir / "user_ed25519.pub").read_text().strip(),
        "no-X11-forwarding " + (keydir / "user_ecdsa.pub").read_text().strip(),
        "cert-authority " + (tmp_path / "ca.pub").read_text().strip(),
    ]
    (home / ".ssh" / "authorized_keys").write_text("\n".join(lines) + "\n")
    return home


def _serve(tmp_path: Path, home: Path, *flags: str) -> ServerProcess:
    env = python_env(HOME=str(home), TMPDIR=str(tmp_path))  # displays' directories here
    env.pop("XDG_STATE_HOME", None)
    argv = ["-m", "geossh", "serve", "--port", "0", *flags]
    return ServerProcess(argv, tmp_path / "serve.log", env).start()


@pytest.fixture
def serve(tmp_path: Path, home: Path, xvfb: Xvfb) -> Iterator[ServerProcess]:
    server = _serve(tmp_path, home, "--x11")
    try:
        yield server
    finally:
        server.stop()


def _ssh(server: ServerProcess, key: Path, xvfb: Xvfb, *options: str) -> Any:
    argv = ssh_argv(server.port, key, PROBE, user=ME, extra=list(options))
    return run(argv, env=xvfb.env, timeout=60)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("mode", ["-X", "-Y"])
def test_xdpyinfo_reaches_xvfb_through_the_session_display(
    serve: ServerProcess, keydir: Path, xvfb: Xvfb, tmp_path: Path, mode: str
) -> None:
    result = _ssh(serve, keydir / "user_ed25519", xvfb, mode)
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, (out, err, serve.log()[-3000:])
    assert f"dimensions:    {SCREEN} pixels" in out, out
    found = re.search(r"display=localhost:(\d+)\.0 xauthority=(\S+)", out)
    assert found, out
    number, xauthority = int(found.group(1)), Path(found.group(2))
    assert number >= 10  # sshd's X11DisplayOffset
    assert xauthority.parent.parent == tmp_path  # a private directory under TMPDIR
    # The session is over: its listener is closed and its XAUTHORITY directory removed.
    wait_until(lambda: not xauthority.parent.exists(), what="the XAUTHORITY directory removed")
    wait_until(lambda: _refused(6000 + number), what="the display's listener closed")
    assert "X11 display localhost:" in serve.log()
    assert "forward open: kind=x11" in serve.log()  # the audit line of each X client


def test_certificate_permitting_x11(serve: ServerProcess, tmp_path: Path, xvfb: Xvfb) -> None:
    result = _ssh(serve, tmp_path / "cert" / "id", xvfb, "-Y")
    assert f"dimensions:    {SCREEN} pixels" in result.stdout.decode(), result.stderr


@pytest.mark.parametrize("identity", ["no-X11-forwarding key", "certificate without X11"])
def test_x11_refused_where_not_permitted(
    serve: ServerProcess, keydir: Path, tmp_path: Path, xvfb: Xvfb, identity: str
) -> None:
    key = keydir / "user_ecdsa" if identity.endswith("key") else tmp_path / "nox11" / "id"
    result = _ssh(serve, key, xvfb, "-Y")
    out, err = result.stdout.decode(), result.stderr.decode()
    assert "X11 forwarding request failed" in err, err
    assert "display= xauthority=" in out, out  # no DISPLAY was set for the command
    assert "dimensions" not in out


def test_server_without_x11_flag_refuses(
    tmp_path: Path, home: Path, keydir: Path, xvfb: Xvfb
) -> None:
    server = _serve(tmp_path, home)
    try:
        result = _ssh(server, keydir / "user_ed25519", xvfb, "-Y")
    finally:
        server.stop()
    assert "X11 forwarding request failed" in result.stderr.decode(), result.stderr
    assert "dimensions" not in result.stdout.decode()
    assert not list(tmp_path.glob("geossh-x11-*"))
