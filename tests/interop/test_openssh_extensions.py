"""OpenSSH's own client against geossh's extensions: host-bound auth, UpdateHostKeys, ping.

* ``publickey-hostbound-v00@openssh.com``: ``ssh`` uses it once EXT_INFO
  offers it; a destination-constrained key in a real ``ssh-agent``
  (``ssh-add -h``) logs in (the agent's session-bind checks our exchange
  hash signature) and is refused for a server it was not bound to. The
  host key inside host-bound requests is what lets the agent check every
  hop of a forwarded agent.
* ``hostkeys-00`` / ``hostkeys-prove-00``: with ``UpdateHostKeys=yes`` a
  known_hosts file holding one of our keys learns the others after one
  login, which OpenSSH only does once our proofs verified.
* ``ping@openssh.com`` is advertised (OpenSSH 9.2 does not send pings yet;
  the core's unit tests cover the exchange).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import gevent.subprocess
import pytest

import geossh
from geossh.runner.server import Server
from geossh.services.session import Session
from tests.conftest import require
from tests.server_kit import Login, host_key, make_server, run
from tests.support import USER


def _echo(session: Session) -> int:
    session.write(b"hi\n")
    return 0


def _client_options(known_hosts: Path) -> list[str]:
    return [
        "-F", "/dev/null", "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
    ]  # fmt: skip


def _known_line(port: int, key: geossh.PKey) -> str:
    return f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n"


@pytest.fixture
def user_key(keydir: Path) -> geossh.PKey:
    return geossh.PKey.from_path(str(keydir / "user_ed25519"))


def _serve(keydir: Path, user_key: geossh.PKey, **kwargs: Any) -> Server:
    class Keys(Login):
        def __init__(self) -> None:
            super().__init__([user_key])

    server = make_server(keydir, interface=Keys, handler=_echo, **kwargs)
    server.start()
    return server


def test_openssh_uses_hostbound_publickey(
    keydir: Path, user_key: geossh.PKey, tmp_path: Path
) -> None:
    require("ssh")
    server = _serve(keydir, user_key)
    try:
        known = tmp_path / "known_hosts"
        known.write_text(_known_line(server.port, host_key(keydir)))
        argv = [
            "ssh", *_client_options(known), "-vvv", "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-i", str(keydir / "user_ed25519"),
            "-p", str(server.port), f"{USER}@127.0.0.1", "echo",
        ]  # fmt: skip
        result = run(argv)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout == b"hi\n"
        log = result.stderr.decode(errors="replace")
        assert "publickey-hostbound@openssh.com=<0>" in log  # our EXT_INFO
        assert "ping@openssh.com" in log  # 9.2 lists it as unrecognised; 9.5+ uses it
        assert re.search(r"using publickey-hostbound-v00@openssh.com with ED25519", log), log[
            -3000:
        ]
    finally:
        server.stop(timeout=1)


def test_destination_constrained_agent_key(
    keydir: Path, user_key: geossh.PKey, tmp_path: Path
) -> None:
    """``ssh-add -h`` binds the key to our host key: usable here, refused elsewhere."""
    require("ssh")
    agent_bin, add_bin = require("ssh-agent"), require("ssh-add")
    server = _serve(keydir, user_key)
    socket_path = tmp_path / "agent.sock"
    agent = gevent.subprocess.Popen([agent_bin, "-D", "-a", str(socket_path)])
    try:
        known = tmp_path / "known_hosts"
        host = f"[127.0.0.1]:{server.port}"
        known.write_text(_known_line(server.port, host_key(keydir)))
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
        for _ in range(200):  # the agent's socket appears once it listens (bounded)
            if socket_path.exists():
                break
            gevent.sleep(0.05)
        added = run([add_bin, "-H", str(known), "-h", host, str(keydir / "user_ed25519")], env=env)
        assert added.returncode == 0, added.stderr
        argv = [
            "ssh", *_client_options(known), "-o", f"IdentityAgent={socket_path}",
            "-p", str(server.port), f"{USER}@127.0.0.1", "echo",
        ]  # fmt: skip
        result = run(argv, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout == b"hi\n"
        # The same agent refuses the key for a destination it was not bound to.
        other = make_server(keydir, interface=server.interface, handler=_echo,
                            host_keys=[geossh.Ed25519Key.generate()])  # fmt: skip
        other.start()
        try:
            other_known = tmp_path / "other_known_hosts"
            other_known.write_text(_known_line(other.port, other.host_keys[0]))
            argv = [
                "ssh", *_client_options(other_known), "-o", f"IdentityAgent={socket_path}",
                "-p", str(other.port), f"{USER}@127.0.0.1", "echo",
            ]  # fmt: skip
            refused = run(argv, env=env)
            assert refused.returncode == 255, refused.stdout
        finally:
            other.stop(timeout=1)
    finally:
        agent.terminate()
        agent.wait(timeout=10)
        server.stop(timeout=1)


def test_update_host_keys_learns_every_key(
    keydir: Path, user_key: geossh.PKey, tmp_path: Path
) -> None:
    require("ssh")
    rsa = geossh.RSAKey.generate(2048)
    server = _serve(keydir, user_key, host_keys=[host_key(keydir), rsa])
    try:
        known = tmp_path / "known_hosts"
        known.write_text(_known_line(server.port, host_key(keydir)))
        argv = [
            "ssh", *_client_options(known), "-o", "UpdateHostKeys=yes", "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-o", "LogLevel=DEBUG3", "-i", str(keydir / "user_ed25519"),
            "-p", str(server.port), f"{USER}@127.0.0.1", "echo",
        ]  # fmt: skip
        result = run(argv)
        assert result.returncode == 0, result.stderr[-2000:]
        text = known.read_text()
        assert f"[127.0.0.1]:{server.port} ssh-rsa {rsa.get_base64()}" in text, (
            text,
            result.stderr.decode(errors="replace")[-3000:],
        )
        assert host_key(keydir).get_base64() in text
    finally:
        server.stop(timeout=1)
