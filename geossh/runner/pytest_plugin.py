"""pytest plugin: a throwaway geossh server for tests of SSH *client* code.

Installed with geossh (entry point ``pytest11``), it provides the
``geossh_server`` fixture: a ``geossh.Server`` on ``127.0.0.1:<free port>``
with a fresh Ed25519 host key and a fresh user key, running in a
background thread with its own gevent hub, so blocking client code (
``subprocess.run(["ssh", ...])``, paramiko, fabric) can run in the test's
own thread::

    def test_client(geossh_server):
        result = subprocess.run(
            ["ssh", *geossh_server.ssh_options(), geossh_server.target, "echo hi"],
            capture_output=True)
        assert result.stdout == b"hi\\n"

        client = paramiko.SSHClient()
        client.load_host_keys(geossh_server.known_hosts)
        client.connect(**geossh_server.connect_kwargs())

By default exec and shell requests run real commands (``OSCommand``) and
``sftp``/``scp`` are served from ``geossh_server.root`` (a temporary
directory). Set ``geossh_server.handler = fn`` (a blocking session handler,
see ``geossh.session``) to script the server instead; ``geossh_server.commands``
lists the exec commands received. Log in as ``geossh_server.user`` with
``geossh_server.user_key_path`` or ``geossh_server.password``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from geossh._facade.common import AUTH_FAILED, AUTH_SUCCESSFUL
from geossh._facade.ed25519key import Ed25519Key
from geossh._facade.pkey import OPENSSH, PKey
from geossh._facade.server import ServerInterface
from geossh.services.session import Session, SessionHandler

START_TIMEOUT = 30.0


class _Auth(ServerInterface):
    def __init__(self, fixture: GeosshTestServer) -> None:
        self.fixture = fixture

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_publickey(self, username: str, key: PKey) -> int:
        ok = username == self.fixture.user and key == self.fixture.user_key
        return AUTH_SUCCESSFUL if ok else AUTH_FAILED

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        given = password.encode() if isinstance(password, str) else bytes(password)
        ok = username == self.fixture.user and hmac.compare_digest(
            given, self.fixture.password.encode()
        )
        return AUTH_SUCCESSFUL if ok else AUTH_FAILED


class GeosshTestServer:
    """A geossh server in a background thread, with keys and files for clients."""

    def __init__(self, directory: Path, user: str = "tester") -> None:
        from geossh.services.oscommand import OSCommand

        self.directory = directory
        self.user = user
        self.password = secrets.token_urlsafe(12)
        self.host = "127.0.0.1"
        self.port = 0
        self.root = directory / "root"
        self.root.mkdir(exist_ok=True)
        self.host_key: PKey = Ed25519Key.generate()
        self.user_key: PKey = Ed25519Key.generate()
        self.user_key_path = directory / "id_ed25519"
        self.user_key.write_private_key_file(str(self.user_key_path), file_format=OPENSSH)
        self.known_hosts = directory / "known_hosts"
        self.handler: SessionHandler = OSCommand(cwd=str(self.root))
        self.commands: list[str] = []
        self.server: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._wake: Any = None
        self._error: BaseException | None = None

    @property
    def target(self) -> str:
        """``user@host`` for OpenSSH."""
        return f"{self.user}@{self.host}"

    def ssh_options(self) -> list[str]:
        """OpenSSH options: port, this user key only, this host key only, batch mode."""
        return [
            "-p", str(self.port), "-F", "/dev/null", "-i", str(self.user_key_path),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "LogLevel=ERROR",
        ]  # fmt: skip

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``paramiko.SSHClient.connect``."""
        return {
            "hostname": self.host,
            "port": self.port,
            "username": self.user,
            "key_filename": str(self.user_key_path),
            "look_for_keys": False,
            "allow_agent": False,
        }

    def _session(self, session: Session) -> int | None:
        if session.command is not None:
            self.commands.append(session.command_text)
        return self.handler(session)

    def _build(self) -> Any:
        from geossh.runner.server import Server
        from geossh.sftp import LocalSFTPServer, SFTPServer

        return Server(
            (self.host, 0), lambda: _Auth(self), host_keys=[self.host_key],
            handler=self._session, subsystems={"sftp": (SFTPServer, LocalSFTPServer, self.root)},
            max_startups=None, per_source_penalties=None, stop_timeout=1.0,
        )  # fmt: skip

    def start(self) -> GeosshTestServer:
        """Start serving in a background thread; returns once the port is known."""
        self._thread = threading.Thread(target=self._run, name="geossh-test-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("geossh test server did not start")
        if self._error is not None:
            raise self._error
        line = f"[{self.host}]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}"
        self.known_hosts.write_text(line + "\n")
        return self

    def _run(self) -> None:
        import gevent
        from gevent.event import Event

        hub = gevent.get_hub()
        stop = Event()
        self._wake = hub.loop.async_()
        self._wake.start(stop.set)
        try:
            self.server = self._build()
            self.server.start()
            self.port = self.server.port
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        stop.wait()
        self.server.stop(timeout=1.0)
        self._wake.close()

    def stop(self) -> None:
        """Stop the server (open connections are disconnected) and wait for the thread."""
        if self._thread is None:
            return
        if self._wake is not None:
            self._wake.send()
        self._thread.join(START_TIMEOUT)
        self._thread = None


@pytest.fixture
def geossh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GeosshTestServer]:
    """A geossh server on a free loopback port with throwaway host and user keys."""
    server = GeosshTestServer(tmp_path_factory.mktemp("geossh"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["GeosshTestServer", "geossh_server"]
