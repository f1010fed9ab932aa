"""Real SFTP clients against geossh's SFTP server over SSH: OpenSSH, paramiko, asyncssh."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import gevent.subprocess
import paramiko
import pytest

from tests.conftest import require
from tests.support import PASSWORD, USER, ServerHarness, in_thread, pattern_block

pytestmark = pytest.mark.interop


@pytest.fixture
def sftp_server(server: ServerHarness, tmp_path: Path) -> ServerHarness:
    root = tmp_path / "root"
    root.mkdir()
    server.sftp_root = root
    return server.start()


def _client_options(server: ServerHarness) -> list[str]:
    return [
        "-F", "/dev/null", "-P", str(server.port), "-i", str(server.keydir / "user_ed25519"),
        "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
    ]  # fmt: skip


def _sftp_batch(server: ServerHarness, batch: str, cwd: Path) -> gevent.subprocess.CompletedProcess:
    require("sftp")
    argv = ["sftp", *_client_options(server), "-b", "-", f"{USER}@127.0.0.1"]
    return gevent.subprocess.run(
        argv, input=batch.encode(), capture_output=True, timeout=60, cwd=cwd, check=False
    )


def test_openssh_sftp_batch_every_command(sftp_server: ServerHarness, tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    payload = pattern_block(3 << 20)
    (local / "up.bin").write_bytes(payload)
    batch = "\n".join([
        "pwd", "mkdir dir", "cd dir", "put up.bin", "ls -l", "rename up.bin moved.bin",
        "chmod 600 moved.bin", "symlink moved.bin link.bin", "ln moved.bin hard.bin",
        "get link.bin down.bin", "df -h", "rm hard.bin", "mkdir empty", "rmdir empty",
        "ls", "cd ..", "ls -la dir",
    ])  # fmt: skip
    result = _sftp_batch(sftp_server, batch, local)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    root = sftp_server.sftp_root
    assert root is not None
    moved = root / "dir" / "moved.bin"
    assert moved.read_bytes() == payload
    assert stat.S_IMODE(moved.stat().st_mode) == 0o600
    assert os.readlink(root / "dir" / "link.bin").endswith("moved.bin")
    assert not (root / "dir" / "hard.bin").exists()
    assert not (root / "dir" / "empty").exists()
    assert (local / "down.bin").read_bytes() == payload
    out = result.stdout.decode()
    assert "moved.bin" in out and "Size" in out  # ls and df output


def test_openssh_sftp_cannot_escape_root(sftp_server: ServerHarness, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret")
    local = tmp_path / "local"
    local.mkdir()
    batch = "\n".join([
        "-get ../secret.txt a.txt", f"-get {outside} b.txt", "-get /../../secret.txt c.txt",
        f"-symlink {tmp_path} escape", "-get escape/secret.txt d.txt", "-put /etc/hostname ../x",
    ])  # fmt: skip
    result = _sftp_batch(sftp_server, batch, local)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert sorted(p.name for p in local.iterdir()) == []
    assert not (tmp_path / "x").exists()


def test_scp_sftp_mode_and_legacy(sftp_server: ServerHarness, tmp_path: Path) -> None:
    require("scp")
    payload = pattern_block(2 << 20)
    source = tmp_path / "src.bin"
    source.write_bytes(payload)
    root = sftp_server.sftp_root
    assert root is not None
    for mode, name in ((["-s"], "sftp-mode.bin"), (["-O"], "legacy.bin")):
        argv = ["scp", *mode, *_client_options(sftp_server), str(source),
                f"{USER}@127.0.0.1:{name}"]  # fmt: skip
        result = gevent.subprocess.run(argv, capture_output=True, timeout=60, check=False)
        assert result.returncode == 0, (mode, result.stderr)
        assert (root / name).read_bytes() == payload
        back = tmp_path / f"back-{name}"
        argv = ["scp", *mode, *_client_options(sftp_server), f"{USER}@127.0.0.1:{name}",
                str(back)]  # fmt: skip
        result = gevent.subprocess.run(argv, capture_output=True, timeout=60, check=False)
        assert result.returncode == 0, (mode, result.stderr)
        assert back.read_bytes() == payload


def test_legacy_scp_refuses_traversal(sftp_server: ServerHarness, tmp_path: Path) -> None:
    require("scp")
    back = tmp_path / "stolen"
    argv = ["scp", "-O", *_client_options(sftp_server), f"{USER}@127.0.0.1:../../etc/passwd",
            str(back)]  # fmt: skip
    result = gevent.subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert result.returncode != 0
    assert not back.exists()


def _paramiko_session(port: int, root: Path) -> dict[str, object]:
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.connect(username=USER, password=PASSWORD)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        data = pattern_block(4 << 20)
        with sftp.open("p.bin", "wb") as handle:
            handle.set_pipelined(True)
            handle.write(data)
        sftp.mkdir("sub")
        sftp.posix_rename("p.bin", "sub/q.bin")
        sftp.symlink("q.bin", "sub/link")
        sftp.chmod("sub/q.bin", 0o640)
        sftp.truncate("sub/q.bin", 1 << 20)
        with sftp.open("sub/link", "rb") as handle:
            handle.prefetch()
            back = handle.read()
        listing = sorted(sftp.listdir("sub"))
        stat_mode = sftp.stat("sub/q.bin").st_mode
        try:
            sftp.open("../outside", "w")
            escaped = True
        except OSError:
            escaped = False
        sftp.close()
        return {"back": back, "expected": data[: 1 << 20], "listing": listing,
                "mode": stat_mode, "escaped": escaped}  # fmt: skip
    finally:
        transport.close()


def test_paramiko_sftp_client(sftp_server: ServerHarness) -> None:
    root = sftp_server.sftp_root
    assert root is not None
    result = in_thread(_paramiko_session, sftp_server.port, root)
    assert result["back"] == result["expected"]
    assert result["listing"] == ["link", "q.bin"]
    assert stat.S_IMODE(int(result["mode"])) == 0o640  # type: ignore[call-overload]
    assert (root / "outside").exists() or not result["escaped"]
    assert not (root.parent / "outside").exists()


async def _asyncssh_session(port: int) -> tuple[str, str, int]:
    import asyncssh

    data = pattern_block(3 << 20)
    async with (
        asyncssh.connect(
            "127.0.0.1", port, username=USER, password=PASSWORD, known_hosts=None, client_keys=None
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        async with sftp.open("a.bin", "wb") as handle:
            await handle.write(data)
        await sftp.copy("a.bin", "b.bin")
        await sftp.rename("b.bin", "c.bin", flags=0)
        async with sftp.open("c.bin", "rb") as handle:
            back = await handle.read()
        vfs = await sftp.statvfs(".")
        return hashlib.sha256(back).hexdigest(), hashlib.sha256(data).hexdigest(), vfs.bsize


def test_asyncssh_sftp_client(sftp_server: ServerHarness) -> None:
    got, expected, block_size = in_thread(lambda: asyncio.run(_asyncssh_session(sftp_server.port)))
    assert got == expected
    assert block_size > 0


def test_openssh_sftp_ls_shows_owner_names(sftp_server: ServerHarness, tmp_path: Path) -> None:
    """OpenSSH >= 9.1 asks users-groups-by-id@openssh.com for ``ls -l``; the longname
    alone has numeric ids."""
    import grp
    import pwd

    root = sftp_server.sftp_root
    assert root is not None
    (root / "owned.txt").write_text("mine")
    result = _sftp_batch(sftp_server, "ls -l owned.txt", tmp_path)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    lines = result.stdout.decode().splitlines()
    line = next(x for x in lines if x.endswith("owned.txt") and not x.startswith("sftp>"))
    fields = line.split()
    assert fields[2] == pwd.getpwuid(os.getuid()).pw_name, line
    assert fields[3] == grp.getgrgid(os.getgid()).gr_name, line


def test_openssh_sftp_get_within_the_send_ahead_limit(
    sftp_server: ServerHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On loopback a download keeps at most the limit in flight once the client adjusted
    (OpenSSH's buffers then stay small), and arrives whole."""
    from geossh.proto import window as window_module

    seen: dict[str, int] = {"worst": 0, "adjust": 0}
    take = window_module.OutboundWindow.take

    def recording_take(self: window_module.OutboundWindow, wanted: int) -> int:
        granted = take(self, wanted)
        if self.ahead and granted:  # a send under the limit
            seen["worst"] = max(seen["worst"], self.in_flight)
            seen["adjust"] = max(seen["adjust"], self.largest_adjust)
        return granted

    monkeypatch.setattr(window_module.OutboundWindow, "take", recording_take)
    root = sftp_server.sftp_root
    assert root is not None
    payload = pattern_block(16 << 20)
    (root / "big.bin").write_bytes(payload)
    result = _sftp_batch(sftp_server, "get big.bin back.bin", tmp_path)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert (tmp_path / "back.bin").read_bytes() == payload
    core = sftp_server.transports[-1]._conn
    assert core.channels.send_ahead == window_module.SEND_AHEAD_LIMIT
    limit = max(window_module.SEND_AHEAD_LIMIT, 2 * seen["adjust"])
    assert 0 < seen["worst"] <= limit  # (the limit itself: OpenSSH adjusts ~300 KiB at a time)


def _authenticate_with_paramiko(port: int) -> None:
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.connect(username=USER, password=PASSWORD)
        channel = transport.open_session()  # a round trip after the auth success
        channel.close()
    finally:
        transport.close()


@pytest.mark.parametrize("setting", ["default", "relayed", "off"])
def test_send_ahead_limit_applies_only_to_a_known_short_path(
    server: ServerHarness, setting: str
) -> None:
    from geossh.proto.window import SEND_AHEAD_LIMIT

    def configure(transport: Any) -> None:
        if setting == "relayed":  # a client behind a PROXY header: its path is unknown
            transport.peer_address = ("192.0.2.7", 40000)
        elif setting == "off":
            transport.send_ahead_limit = 0

    server.configure = configure
    server.start()
    in_thread(_authenticate_with_paramiko, server.port)
    expected = SEND_AHEAD_LIMIT if setting == "default" else 0
    assert server.transports[-1]._conn.channels.send_ahead == expected
