"""Helpers for the Server/CLI/example tests: logins, in-process servers, server subprocesses.

``ServerProcess`` runs a server program (``python -m geossh ...`` or an
example) with its stdout on a pipe, waits for its "listening"/"serving"
line to learn the port, and always ends the process (SIGTERM, then SIGKILL).
Paramiko client helpers are blocking: call them through ``in_thread``.
"""

from __future__ import annotations

import hmac
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gevent
import gevent.subprocess

import geossh
from geossh.runner.server import Server
from tests.support import PASSWORD, USER

ROOT = Path(__file__).resolve().parents[1]
SSH_OPTIONS = [
    "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
    "-o", "ConnectTimeout=20",
]  # fmt: skip


class Login(geossh.ServerInterface):
    """USER with PASSWORD or with one of ``keys``; records the peer it was made for."""

    def __init__(self, keys: Sequence[geossh.PKey] = (), transport: Any = None) -> None:
        self.keys = list(keys)
        self.peer = transport.getpeername() if transport is not None else None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        given = password.encode() if isinstance(password, str) else password
        ok = username == USER and hmac.compare_digest(given, PASSWORD.encode())
        return geossh.AUTH_SUCCESSFUL if ok else geossh.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: geossh.PKey) -> int:
        ok = username == USER and key in self.keys
        return geossh.AUTH_SUCCESSFUL if ok else geossh.AUTH_FAILED


def host_key(keydir: Path) -> geossh.PKey:
    """The ssh-keygen-made Ed25519 host key of the test key directory."""
    return geossh.PKey.from_path(str(keydir / "host_ed25519"))


def make_server(keydir: Path, **kwargs: Any) -> Server:
    """A Server on 127.0.0.1:0 with the test host key and ``Login`` (override via kwargs)."""
    kwargs.setdefault("host_keys", [host_key(keydir)])
    kwargs.setdefault("max_startups", None)
    listen = kwargs.pop("listen", ("127.0.0.1", 0))
    interface = kwargs.pop("interface", Login)
    return Server(listen, interface, **kwargs)


def paramiko_client(port: int, **kwargs: Any) -> Any:
    """A connected paramiko SSHClient (password login unless kwargs say otherwise)."""
    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    options = {"username": USER, "password": PASSWORD, "look_for_keys": False}
    options.update(allow_agent=False, timeout=20, banner_timeout=20, auth_timeout=20)
    options.update(kwargs)
    client.connect("127.0.0.1", port, **options)
    return client


def paramiko_exec(port: int, command: str, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    """Run one command with paramiko: (exit status, stdout, stderr)."""
    client = paramiko_client(port)
    try:
        chan = client.get_transport().open_session()
        chan.exec_command(command)
        if stdin:
            chan.sendall(stdin)
        chan.shutdown_write()
        out, err = chan.makefile("rb").read(), chan.makefile_stderr("rb").read()
        return chan.recv_exit_status(), out, err
    finally:
        client.close()


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a server subprocess: this checkout importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class ServerProcess:
    """A server subprocess whose stdout announces ``<host>:<port>``."""

    ADDRESS = re.compile(r"(?:listening|serving) on (\S+):(\d+)")

    def __init__(self, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv = [sys.executable, *argv]
        self.log_path = log
        self.env = env or python_env()
        self.proc: Any = None
        self.port = 0
        self.output: list[str] = []

    def start(self, timeout: float = 30) -> ServerProcess:
        """Start and wait for the announcement line; AssertionError if it never comes."""
        log = open(self.log_path, "wb")  # noqa: SIM115 (kept open for the process)
        self.proc = gevent.subprocess.Popen(
            self.argv, stdout=gevent.subprocess.PIPE, stderr=log, env=self.env, cwd=str(ROOT)
        )
        log.close()
        with gevent.Timeout(timeout, AssertionError(f"no address line; log: {self.log()}")):
            while True:
                line = self.proc.stdout.readline().decode(errors="replace")
                if not line:
                    raise AssertionError(f"server exited: {self.log()}")
                self.output.append(line)
                match = self.ADDRESS.search(line)
                if match:
                    self.port = int(match.group(2))
                    return self

    def expect(self, text: str, timeout: float = 30) -> str:
        """Read stdout lines until one contains ``text``; returns everything read so far."""
        with gevent.Timeout(timeout, AssertionError(f"{text!r} never printed: {self.output}")):
            while not any(text in line for line in self.output):
                line = self.proc.stdout.readline().decode(errors="replace")
                if not line:
                    raise AssertionError(f"{text!r} not printed: {self.output}")
                self.output.append(line)
        return "".join(self.output)

    def log(self) -> str:
        """What the server wrote on stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Send a signal to the server process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        """Wait for the process to exit; its status."""
        return int(self.proc.wait(timeout=timeout))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in 20 s (always reaps)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except gevent.subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def ssh_argv(port: int, key: Path, *remote: str, user: str = USER, extra: Sequence[str] = ()):  # type: ignore[no-untyped-def]
    """An OpenSSH ``ssh`` command line for 127.0.0.1:port with one identity."""
    return [
        "ssh",
        *SSH_OPTIONS,
        "-p",
        str(port),
        "-i",
        str(key),
        *extra,
        f"{user}@127.0.0.1",
        *remote,
    ]


def run(argv: Sequence[str], input: bytes | None = None, timeout: float = 60, **kw: Any) -> Any:
    """``gevent.subprocess.run`` capturing output (never blocks the hub)."""
    return gevent.subprocess.run(
        list(argv), input=input, capture_output=True, timeout=timeout, check=False, **kw
    )
