"""Test kit: key generation, an in-process geossh server, and real-client runners.

``ServerHarness`` serves ``TestServer`` (a small exec/shell application over
paramiko's ServerInterface) on a free loopback port. ``ssh_run`` drives
OpenSSH's ``ssh``; ``in_thread`` runs blocking paramiko/asyncssh client code
in gevent's thread pool so the hub keeps serving meanwhile.
"""

from __future__ import annotations

import hashlib
import hmac
import shlex
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import gevent
import gevent.server
import gevent.subprocess
import pytest

import geossh
from geossh._facade.channel import Channel
from geossh.proto.kex.hybrid import MLKEM_AVAILABLE
from geossh.proto.kex.sntrup import SNTRUP_AVAILABLE
from geossh.sftp.local import LocalSFTPServer
from geossh.sftp.scp import ScpHandler

T = TypeVar("T")
#: For tests of mlkem768x25519-sha256, which exists only where the backend has ML-KEM.
needs_mlkem = pytest.mark.skipif(not MLKEM_AVAILABLE, reason="cryptography's OpenSSL lacks ML-KEM")
#: For tests of sntrup761x25519-sha512, which needs the optional pqcrypto (geossh[pq]).
needs_sntrup = pytest.mark.skipif(
    not SNTRUP_AVAILABLE, reason="pqcrypto (geossh[pq]) not installed"
)
USER = "alice"
PASSWORD = "correct horse"
HOST_KEYS = {
    "host_ed25519": ["-t", "ed25519"],
    "host_ecdsa": ["-t", "ecdsa", "-b", "256"],
    "host_ecdsa384": ["-t", "ecdsa", "-b", "384"],
    "host_ecdsa521": ["-t", "ecdsa", "-b", "521"],
    "host_rsa": ["-t", "rsa", "-b", "2048"],
}
USER_KEYS = {
    "user_ed25519": ["-t", "ed25519"],
    "user_ecdsa": ["-t", "ecdsa", "-b", "256"],
    "user_rsa": ["-t", "rsa", "-b", "2048"],
    "other_ed25519": ["-t", "ed25519"],
}


def generate_keys(path: Path) -> None:
    """Create every host and user key the tests use, with ssh-keygen."""
    for name, args in {**HOST_KEYS, **USER_KEYS}.items():
        subprocess.run(
            ["ssh-keygen", "-q", "-N", "", "-C", name, "-f", str(path / name), *args], check=True
        )


def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking (thread-based) client code without blocking the gevent hub."""
    return gevent.get_hub().threadpool.apply(fn, args)  # type: ignore[no-any-return]


class TestServer(geossh.ServerInterface):
    """A paramiko-style application: password and key auth, exec, shell, env, pty."""

    __test__ = False

    def __init__(self, harness: ServerHarness) -> None:
        self.harness = harness
        self.env: dict[bytes, bytes] = {}
        self.pty: tuple[bytes, int, int, bytes] | None = None
        self.events: list[tuple[Any, ...]] = []

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password,keyboard-interactive"

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        self.events.append(("password", username))
        ok = isinstance(password, str) and hmac.compare_digest(password.encode(), PASSWORD.encode())
        return geossh.AUTH_SUCCESSFUL if ok and username == USER else geossh.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: geossh.PKey) -> int:
        self.events.append(("publickey", username, key.get_name()))
        if username == USER and key in self.harness.authorized_keys:
            return geossh.AUTH_SUCCESSFUL
        return geossh.AUTH_FAILED

    def check_auth_interactive(self, username: str, submethods: bytes) -> Any:
        if username != USER:
            return geossh.AUTH_FAILED
        return geossh.InteractiveQuery("", "", ("Password: ", False))

    def check_auth_interactive_response(self, responses: list[str]) -> Any:
        ok = len(responses) == 1 and hmac.compare_digest(
            str(responses[0]).encode(), PASSWORD.encode()
        )
        return geossh.AUTH_SUCCESSFUL if ok else geossh.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return geossh.OPEN_SUCCEEDED if kind == "session" else 1

    def check_channel_env_request(self, channel: Channel, name: bytes, value: bytes) -> bool:
        self.env[name] = value
        return True

    def check_channel_pty_request(
        self, channel: Channel, term: bytes, w: int, h: int, pw: int, ph: int, modes: bytes
    ) -> bool:
        self.pty = (term, w, h, modes)
        return True

    def check_channel_window_change_request(
        self, channel: Channel, w: int, h: int, pw: int, ph: int
    ) -> bool:
        self.events.append(("window-change", w, h))
        return True

    def check_channel_exec_request(self, channel: Channel, command: bytes) -> bool:
        root = self.harness.sftp_root
        if root is not None and ScpHandler.is_scp_command(command):
            gevent.spawn(ScpHandler(str(root)).run, channel, command)
            return True
        gevent.spawn(run_command, self, channel, command)
        return True

    def check_channel_shell_request(self, channel: Channel) -> bool:
        gevent.spawn(run_shell, self, channel)
        return True


def _finish(channel: Channel, status: int) -> None:
    channel.send_exit_status(status)
    channel.close()


def run_command(server: TestServer, channel: Channel, command: bytes) -> None:
    """The toy command set used by the exec tests."""
    argv = shlex.split(command.decode())
    name, args = (argv[0], argv[1:]) if argv else ("", [])
    if name == "echo":
        channel.sendall((" ".join(args) + "\n").encode())
        _finish(channel, 0)
    elif name == "fail":
        channel.sendall_stderr(b"failing\n")
        _finish(channel, int(args[0]))
    elif name == "cat":
        while data := channel.recv(65536):
            channel.sendall(data)
        _finish(channel, 0)
    elif name == "sha256":
        digest = hashlib.sha256()
        while data := channel.recv(1 << 20):
            digest.update(data)
        channel.sendall(digest.hexdigest().encode() + b"\n")
        _finish(channel, 0)
    elif name == "generate":
        total, chunk = int(args[0]), pattern_block()
        while total > 0:
            piece = chunk[: min(total, len(chunk))]
            channel.sendall(piece)
            total -= len(piece)
        _finish(channel, 0)
    elif name == "env":
        channel.sendall(server.env.get(args[0].encode(), b"<unset>") + b"\n")
        _finish(channel, 0)
    elif name == "pty":
        channel.sendall(repr(server.pty).encode() + b"\n")
        _finish(channel, 0)
    else:
        channel.sendall_stderr(f"unknown command {name!r}\n".encode())
        _finish(channel, 127)


def run_shell(server: TestServer, channel: Channel) -> None:
    """A line-based toy shell: echoes lines back; ``exit`` ends it."""
    stream = channel.makefile("rU")
    channel.sendall(b"welcome\r\n$ ")
    for line in stream:
        text = str(line).strip()
        if text == "exit":
            break
        channel.sendall(f"got: {text}\r\n$ ".encode())
    _finish(channel, 0)


def pattern_block(size: int = 1 << 20) -> bytes:
    """Deterministic non-repeating-looking data for transfer tests."""
    seed = hashlib.sha256(b"geossh").digest()
    return (seed * (size // len(seed) + 1))[:size]


class ServerHarness:
    """An in-process geossh server on a free loopback port."""

    def __init__(self, keydir: Path) -> None:
        self.keydir = keydir
        self.host_keys: list[geossh.PKey] = [
            geossh.PKey.from_path(str(keydir / name)) for name in HOST_KEYS
        ]
        self.authorized_keys = [
            geossh.PKey.from_path(str(keydir / name))
            for name in ("user_ed25519", "user_ecdsa", "user_rsa")
        ]
        self.interface: Callable[[ServerHarness], geossh.ServerInterface] = TestServer
        self.configure: Callable[[geossh.Transport], None] = lambda transport: None
        self.sftp_root: Path | None = None  # set to serve SFTP and scp from this directory
        self.transports: list[geossh.Transport] = []
        self.servers: list[geossh.ServerInterface] = []
        self._server: gevent.server.StreamServer | None = None
        self.port = 0

    def start(self) -> ServerHarness:
        """Start listening (idempotent); returns self."""
        if self._server is None:
            self._server = gevent.server.StreamServer(("127.0.0.1", 0), self._handle)
            self._server.start()
            self.port = self._server.server_port
        return self

    def _handle(self, sock: Any, address: Any) -> None:
        transport = geossh.Transport(sock)
        for key in self.host_keys:
            transport.add_server_key(key)
        if self.sftp_root is not None:
            transport.set_subsystem_handler(
                "sftp", geossh.SFTPServer, LocalSFTPServer, root=str(self.sftp_root)
            )
        self.configure(transport)
        interface = self.interface(self)
        self.transports.append(transport)
        self.servers.append(interface)
        transport.start_server(event=gevent.event.Event(), server=interface)
        transport.join()

    def stop(self) -> None:
        """Close every connection and stop listening."""
        for transport in self.transports:
            transport.close()
        if self._server is not None:
            self._server.stop(timeout=5)

    # -- OpenSSH client ---------------------------------------------------------
    def ssh_command(
        self, *remote: str, user: str = USER, key: str | None = "user_ed25519",
        options: Sequence[str] = (),
    ) -> list[str]:  # fmt: skip
        """The argv of an OpenSSH ``ssh`` run against this server."""
        self.start()
        argv = ["ssh", "-F", "/dev/null", "-p", str(self.port)]
        argv += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        argv += ["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"]
        if key is not None:
            argv += ["-i", str(self.keydir / key), "-o", "IdentitiesOnly=yes"]
        argv += list(options)
        return [*argv, f"{user}@127.0.0.1", *remote]

    def ssh_run(
        self, *remote: str, input: bytes | None = None, timeout: float = 40, **kwargs: Any
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``ssh`` to completion; returns the completed process."""
        options = ["-o", "BatchMode=yes", *kwargs.pop("options", ())]
        argv = self.ssh_command(*remote, options=options, **kwargs)
        return gevent.subprocess.run(  # type: ignore[no-any-return]
            argv, input=input, capture_output=True, timeout=timeout, check=False
        )
