"""At the descriptor limit the server still answers every connection attempt.

``geossh serve`` runs in a subprocess with a small ``RLIMIT_NOFILE``; the
test holds open more connections than it has descriptors for. Each one
must get an answer — the SSH version line, or the one-line "out of file
descriptors" refusal and a close — never silence in the backlog; once the
hoarders go, a real OpenSSH client logs in.
"""

from __future__ import annotations

import getpass
import shutil
import socket
from pathlib import Path

import pytest

from geossh.runner.listener import BUSY_LINE
from tests.conftest import require
from tests.server_kit import ServerProcess, python_env, run, ssh_argv

FD_LIMIT = 64
HOARDERS = 90
ANSWER_TIMEOUT = 30  # a bound for a broken server, never reached by a working one

SERVE_WITH_LIMIT = """
import resource, runpy, sys
soft = int(sys.argv[1])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
sys.argv = ["geossh", *sys.argv[2:]]
runpy.run_module("geossh", run_name="__main__", alter_sys=True)
"""


def _first_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(256)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def limited_server(tmp_path: Path, keydir: Path) -> ServerProcess:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(keydir / "user_ed25519.pub", home / ".ssh" / "authorized_keys")
    env = python_env(HOME=str(home))
    env.pop("XDG_STATE_HOME", None)
    limits = ["--max-startups", "500:100:500", "--per-source-penalties", "no"]
    argv = ["-c", SERVE_WITH_LIMIT, str(FD_LIMIT), "serve", "--port", "0", *limits]
    server = ServerProcess(argv, tmp_path / "serve.log", env).start()
    yield server
    server.stop()


def test_every_attempt_is_answered_at_the_descriptor_limit(
    limited_server: ServerProcess, keydir: Path
) -> None:
    require("ssh")
    hoarders = []
    answers = []
    try:
        for _ in range(HOARDERS):
            sock = socket.create_connection(("127.0.0.1", limited_server.port))
            sock.settimeout(ANSWER_TIMEOUT)
            hoarders.append(sock)
            answers.append(_first_line(sock))
    finally:
        for sock in hoarders:
            sock.close()
    served = [a for a in answers if a.startswith(b"SSH-2.0-")]
    refused = [a for a in answers if a == BUSY_LINE]
    assert served and refused, answers[-3:]
    assert len(served) + len(refused) == HOARDERS  # no attempt went unanswered
    assert "out of file descriptors: refused a connection" in limited_server.log()
    assert "Traceback" not in limited_server.log()
    key = keydir / "user_ed25519"
    result = run(
        ssh_argv(limited_server.port, key, "echo", "still here", user=getpass.getuser()), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"still here"
