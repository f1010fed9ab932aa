"""Every server example started as a program and exercised with real clients."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.subprocess
import pytest

from tests.conftest import require
from tests.server_kit import ROOT, SSH_OPTIONS, ServerProcess, run, ssh_argv

pytestmark = pytest.mark.interop
EXAMPLES = ROOT / "examples"


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Any]:
    """``launch(name, *args)``: start examples/<name>.py on a free port (always stopped)."""
    started: list[ServerProcess] = []

    def start(name: str, *args: str) -> ServerProcess:
        argv = [str(EXAMPLES / f"{name}.py"), "--port", "0", "--host-key-dir", str(tmp_path / "hk")]
        server = ServerProcess([*argv, *args], tmp_path / f"{name}.log").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# -- sftp_server.py ---------------------------------------------------------------------


def test_sftp_only_server(launch: Any, keydir: Path, tmp_path: Path) -> None:
    require("sftp")
    root = tmp_path / "root"
    root.mkdir()
    (root / "readme.txt").write_text("served\n")
    keys = str(keydir / "user_ed25519.pub")
    server = launch("sftp_server", "--root", str(root), "--authorized-keys", keys)
    key = str(keydir / "user_ed25519")
    upload = tmp_path / "up.bin"
    upload.write_bytes(os.urandom(100_000))
    batch = f"get /readme.txt {tmp_path / 'got.txt'}\nmkdir d\nput {upload} d/up.bin\nls d\n"
    argv = ["sftp", *SSH_OPTIONS, "-i", key, "-P", str(server.port), "-b", "-", "anyone@127.0.0.1"]
    result = run(argv, input=batch.encode())
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "got.txt").read_text() == "served\n"
    assert (root / "d" / "up.bin").read_bytes() == upload.read_bytes()
    refused = run(ssh_argv(server.port, keydir / "user_ed25519", "id", user="anyone"))
    assert refused.returncode != 0 and refused.stdout == b""


# -- git_server.py ----------------------------------------------------------------------


def _git(cwd: Path, key: Path, *args: str) -> Any:
    ssh = " ".join(["ssh", *SSH_OPTIONS, "-i", str(key)])
    env = dict(os.environ, GIT_SSH_COMMAND=ssh, GIT_TERMINAL_PROMPT="0")
    ident = [
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.invalid",
        "-c",
        "init.defaultBranch=main",
    ]
    return run(["git", *ident, *args], cwd=str(cwd), env=env)


def test_git_server_permissions_per_key(launch: Any, keydir: Path, tmp_path: Path) -> None:
    require("git")
    require("ssh")
    alice, bob, stranger = (keydir / n for n in ("user_ed25519", "user_ecdsa", "other_ed25519"))
    access = {
        "users": {
            "alice": [(keydir / "user_ed25519.pub").read_text()],
            "bob": [(keydir / "user_ecdsa.pub").read_text()],
        },
        "repos": {"project.git": {"alice": "RW", "bob": "R"}},
    }
    (tmp_path / "access.json").write_text(json.dumps(access))
    server = launch(
        "git_server", "--repos", str(tmp_path / "repos"), "--access", str(tmp_path / "access.json")
    )
    url = f"ssh://git@127.0.0.1:{server.port}/project.git"
    work = tmp_path / "alice"
    work.mkdir()
    assert _git(work, alice, "init", "-q").returncode == 0
    (work / "file.txt").write_text("v1\n")
    _git(work, alice, "add", "file.txt")
    assert _git(work, alice, "commit", "-q", "-m", "first").returncode == 0
    pushed = _git(work, alice, "push", "-q", url, "HEAD:refs/heads/main")
    assert pushed.returncode == 0, pushed.stderr  # a writer's push creates the repository

    cloned = _git(tmp_path, bob, "clone", "-q", url, "bob")
    assert cloned.returncode == 0, cloned.stderr
    assert (tmp_path / "bob" / "file.txt").read_text() == "v1\n"
    (tmp_path / "bob" / "file.txt").write_text("v2\n")
    _git(tmp_path / "bob", bob, "commit", "-q", "-am", "bob's change")
    denied = _git(tmp_path / "bob", bob, "push", "-q", "origin", "HEAD:main")
    assert denied.returncode != 0 and b"bob may not write project.git" in denied.stderr

    assert _git(tmp_path, stranger, "clone", "-q", url, "nope").returncode != 0
    info = run(ssh_argv(server.port, bob, "info", user="git"))
    assert info.returncode == 0 and b"R  project.git" in info.stdout
    shell = run(ssh_argv(server.port, bob, "sh", "-c", "id", user="git"))
    assert shell.returncode == 1 and b"only git" in shell.stderr


# -- repl_server.py (chat) ---------------------------------------------------------------


class Terminal:
    """An ``ssh -tt`` client whose output is read until an expected text appears."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = gevent.subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.seen = b""

    def expect(self, text: str, timeout: float = 30) -> None:
        want = text.encode()
        with gevent.Timeout(timeout, AssertionError(f"{text!r} not in {self.seen[-500:]!r}")):
            while want not in self.seen:
                chunk = self.proc.stdout.read1(4096)
                if not chunk:
                    raise AssertionError(f"EOF before {text!r}: {self.seen[-500:]!r}")
                self.seen += chunk
        self.seen = self.seen[self.seen.index(want) + len(want) :]

    def type(self, text: str) -> None:
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                return int(self.proc.wait(timeout=30))
            except gevent.subprocess.TimeoutExpired:
                self.proc.kill()
        return int(self.proc.wait())


def test_chat_room(launch: Any, keydir: Path, tmp_path: Path) -> None:
    require("ssh")
    keys = tmp_path / "authorized_keys"
    keys.write_text((keydir / "user_ed25519.pub").read_text())
    server = launch("repl_server", "--authorized-keys", str(keys))
    key = keydir / "user_ed25519"
    alice = Terminal(ssh_argv(server.port, key, user="alice", extra=["-tt"]))
    bob = None
    try:
        alice.expect("welcome to the room, alice")
        bob = Terminal(ssh_argv(server.port, key, user="bob", extra=["-tt"]))
        bob.expect("welcome to the room, bob")
        alice.expect("* bob joined")
        alice.type("hello bob\r")
        bob.expect("[alice] hello bob")
        who = run(ssh_argv(server.port, key, "who", user="carol"))
        assert who.stdout == b"alice\nbob\n"
        assert run(ssh_argv(server.port, key, "say", "hi all", user="carol")).returncode == 0
        alice.expect("[carol] hi all")
        bob.expect("[carol] hi all")
        bob.type("/size\r")
        bob.expect("terminal: ")
        bob.type("/quit\r")
        bob.expect("bye")
        assert bob.close() == 0
        alice.expect("* bob left")
        alice.type("\x04")  # ^D on an empty line: end of input
        alice.expect("bye")
        assert alice.close() == 0
    finally:
        alice.close()
        if bob is not None:
            bob.close()
