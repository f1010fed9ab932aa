"""``geossh serve`` keeps host keys and logins out of reach of file-only users (issue 16: 11, 13).

With ``--no-shell --no-exec`` the SFTP/scp root is the only boundary: a root
holding the host keys, an authorized_keys file or ``~/.ssh`` is refused
before any key is made. With a shell it is warned about. Host key files of
ours that the group or others may read are refused, as sshd refuses them.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from geossh.runner import hostkeys
from geossh.runner.cli import UsageError, _build, build_parser
from tests.server_kit import python_env, run

FILES_ONLY = ("--no-shell", "--no-exec")


@pytest.fixture
def home(tmp_path: Path, keydir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME with ~/.ssh/authorized_keys; XDG_STATE_HOME unset (keys go under HOME)."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(keydir / "user_ed25519.pub", home / ".ssh" / "authorized_keys")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    return home


def _build_serve(*flags: str) -> dict:  # type: ignore[type-arg]
    args = build_parser().parse_args(["serve", "--port", "0", "--no-password", *flags])
    return _build(args)[1]


def _geossh(home: Path, *flags: str) -> tuple[int, list[str]]:
    env = python_env(HOME=str(home))
    env.pop("XDG_STATE_HOME", None)
    argv = [sys.executable, "-m", "geossh", "serve", "--port", "0", *flags]
    result = run(argv, env=env, timeout=20)  # a server that starts instead is killed
    assert result.stdout == b""
    return result.returncode, result.stderr.decode().splitlines()


def test_files_only_with_the_home_as_root_is_refused_before_any_key_is_made(home: Path) -> None:
    status, lines = _geossh(home, *FILES_ONLY)
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"geossh: error: the SFTP/scp root {home} contains "), lines
    assert str(home / ".local" / "state" / "geossh") in lines[0]
    assert str(home / ".ssh") in lines[0] and "--root" in lines[0]
    assert not (home / ".local").exists()  # refused before generating host keys


@pytest.mark.parametrize("where", ["host key", "authorized_keys", "~/.ssh itself"])
def test_files_only_roots_holding_secrets_are_refused(
    home: Path, tmp_path: Path, keydir: Path, where: str
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    key = tmp_path / "host_ed25519"
    shutil.copy(keydir / "host_ed25519", key)
    auth = tmp_path / "authorized_keys"
    shutil.copy(keydir / "user_ed25519.pub", auth)
    root = str(served)
    if where == "host key":
        key = served / "sub" / "host_ed25519"
        key.parent.mkdir()
        shutil.copy(keydir / "host_ed25519", key)
    elif where == "authorized_keys":
        auth = served / "authorized_keys"
        shutil.copy(keydir / "user_ed25519.pub", auth)
    else:
        root = str(home / ".ssh")
    flags = ("--root", root, "--host-key", str(key), "--authorized-keys", str(auth))
    with pytest.raises(UsageError, match=r"SFTP/scp root .* contains"):
        _build_serve(*FILES_ONLY, *flags)


def test_files_only_root_without_secrets_is_served(
    home: Path, tmp_path: Path, keydir: Path
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "link").symlink_to(home / ".ssh")  # confined by the root: not a way out
    info = _build_serve(*FILES_ONLY, "--root", str(served), "--state-dir", str(tmp_path / "st"))
    assert info["root"] == str(served)


def test_with_a_shell_the_home_root_is_warned_about(home: Path, keydir: Path) -> None:
    key = ("--host-key", str(keydir / "host_ed25519"))
    info = _build_serve(*key)
    assert info["root"] == str(home)
    ssh = home / ".ssh"
    assert f"root {home} contains {ssh / 'authorized_keys'}, {ssh}:" in info["exposed"]
    assert "--no-shell --no-exec" in info["exposed"]
    (home.parent / "pub").mkdir()
    assert _build_serve(*key, "--root", str(home.parent / "pub"))["exposed"] is None


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_host_key_readable_by_others_is_refused(
    home: Path, tmp_path: Path, keydir: Path, mode: int
) -> None:
    key = tmp_path / "loose_key"
    shutil.copy(keydir / "host_ed25519", key)
    key.chmod(mode)
    (home / "pub").mkdir()
    status, lines = _geossh(home, "--host-key", str(key), "--root", str(home / "pub"))
    assert status == 2 and len(lines) == 1, lines
    assert "UNPROTECTED PRIVATE KEY FILE" in lines[0] and f"mode {mode:04o}" in lines[0]


def test_generated_key_made_loose_later_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (first,) = hostkeys.load_or_create(state, kinds=("ed25519",))
    assert hostkeys.load_or_create(state, kinds=("ed25519",)) == [first]
    hostkeys.key_path(state, "ed25519").chmod(0o640)
    with pytest.raises(hostkeys.HostKeyError, match="UNPROTECTED PRIVATE KEY FILE"):
        hostkeys.load_or_create(state, kinds=("ed25519",))


def test_protected_keys_and_other_owners_keys_load(tmp_path: Path, keydir: Path) -> None:
    key = tmp_path / "key"
    shutil.copy(keydir / "host_ed25519", key)
    key.chmod(0o400)
    assert hostkeys.load_host_key(key).can_sign()
    if os.getuid() != 0:
        return
    # As sshd: a key owned by someone else and shared through its group is not judged.
    os.chown(key, 65534, 65534)
    key.chmod(0o640)
    assert hostkeys.load_host_key(key).can_sign()
