"""One SFTP client's costly requests never hold the hub from another connection.

Two engines run in this process over socketpairs, as two connections would.
The attacker pipelines requests whose cost it chooses (check-file over a
large sparse file, REALPATH through chains of long symlinks, READDIR of a
big directory); once its first reply is back, a probe connection sends one
STAT. Checked by the order of events, not by time: the probe's reply must
arrive while the attacker still has requests unanswered. Served without
yielding (the old engine), every attacker reply came back in one batch after
all its work, so the probe always came last.

The slice clock is a counter here (every reading is 30 µs later than the
last), so where the engine yields depends on the code path, not on how fast
this machine is.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from geossh._green import fairness
from geossh.sftp import protocol as p, rootfs
from geossh.sftp.local import LocalFolderHandle, LocalSFTPServer
from tests.integration.test_sftp_engine import RawClient, Session, local, root, start, timeout

__all__ = ["local", "root", "timeout"]  # fixtures shared with the engine tests

SPARSE_SIZE = 64 * 1024 * 1024
LINKS = rootfs.MAX_SYMLINKS - 1
CLOCK_STEP = 30e-6


@pytest.fixture(autouse=True)
def counting_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    ticks = itertools.count()
    monkeypatch.setattr(fairness, "_clock", lambda: next(ticks) * CLOCK_STEP)
    fairness.begin()
    yield
    fairness.begin()


def _check_file(client: RawClient, handle: bytes) -> tuple[int, bytes]:
    return client.packet(p.CMD_EXTENDED, "check-file-handle", handle, b"sha256", 0, 0, 0)


def _symlink_chain(root: Path) -> str:
    """Links whose targets each walk ``d/..`` hundreds of times before the next link."""
    (root / "d").mkdir()
    detour = "d/../" * 800
    for i in range(LINKS):
        os.symlink(f"{detour}l{i + 1}", root / f"l{i}")
    (root / f"l{LINKS}").mkdir()
    return "/l0"


def _run_attack(root: Path, requests: Callable[[RawClient], list[tuple[int, bytes]]]) -> int:
    """Pipeline the attacker's requests and probe once its first reply is back.

    Returns how many of the attacker's requests had been answered when the
    probe's reply arrived (what the attacker's socket holds by then). Every
    attacker reply is small, so the server never waits for us to read.
    """
    attacker = start(LocalSFTPServer, root)
    probe = start(LocalSFTPServer, root)
    packets = requests(attacker.client)
    try:
        attacker.client.send(*(pkt for _rid, pkt in packets))
        attacker.client.read()
        reply = probe.client.call(p.CMD_STAT, "/")
        assert reply.type == p.CMD_ATTRS
        return 1 + _replies_waiting(attacker.client)
    finally:
        attacker.channel.close()  # the transport closing the channel ends the attack
        for session in (attacker, probe):
            _end(session)


def _replies_waiting(client: RawClient) -> int:
    """Complete replies already received or waiting in the socket, read without blocking."""
    client.sock.settimeout(0)
    with contextlib.suppress(BlockingIOError):
        for _ in range(10_000):
            data = client.sock.recv(1 << 20)
            if not data:
                break
            client.buf += data
    count = pos = 0
    while len(client.buf) - pos >= 4:
        pos += 4 + struct.unpack_from(">I", client.buf, pos)[0]
        if pos > len(client.buf):
            break
        count += 1
    return count


def _end(session: Session) -> None:
    session.client.sock.close()
    session.handler.join(30)
    assert not session.handler.is_alive()


def _assert_probe_overtook(answered: int, total: int) -> None:
    """The probe was answered within the first quarter of the attack: an engine that
    held its replies while a request yielded (the bug this guards) answered 40 of 40."""
    assert answered <= max(1, total // 4), (
        f"the probe waited for {answered} of the attacker's {total} requests"
    )


def test_check_file_over_a_sparse_file_does_not_stall_others(root: Path, timeout: None) -> None:
    with open(root / "sparse", "wb") as f:
        f.truncate(SPARSE_SIZE)
    count = 4

    def requests(client: RawClient) -> list[tuple[int, bytes]]:
        handle = client.open("/sparse", p.SFTP_FLAG_READ)
        return [_check_file(client, handle) for _ in range(count)]

    _assert_probe_overtook(_run_attack(root, requests), count)


def test_realpath_through_long_symlink_chains_does_not_stall_others(
    root: Path, timeout: None
) -> None:
    path = _symlink_chain(root)
    count = 40

    def requests(client: RawClient) -> list[tuple[int, bytes]]:
        return [client.packet(p.CMD_REALPATH, path) for _ in range(count)]

    _assert_probe_overtook(_run_attack(root, requests), count)


def test_worst_mix_does_not_stall_others(root: Path, timeout: None) -> None:
    with open(root / "sparse", "wb") as f:
        f.truncate(SPARSE_SIZE)
    path = _symlink_chain(root)
    big = root / "big"
    big.mkdir()
    for i in range(3000):
        (big / f"entry-{i:05d}-{'x' * 40}").touch()

    def requests(client: RawClient) -> list[tuple[int, bytes]]:
        handle = client.open("/sparse", p.SFTP_FLAG_READ)
        mix = []
        for _ in range(3):
            mix.append(_check_file(client, handle))
            mix += [client.packet(p.CMD_REALPATH, path) for _ in range(10)]
            mix += [client.packet(p.CMD_OPENDIR, "/big") for _ in range(5)]
        return mix

    _assert_probe_overtook(_run_attack(root, requests), 48)


def test_symlink_walk_is_bounded(root: Path, timeout: None) -> None:
    """A path whose links' targets add up to more than MAX_WALK_STEPS components is
    refused (ELOOP, reported as NO_SUCH_FILE like any symlink loop), not walked."""
    path = _symlink_chain(root)
    fs = rootfs.RootFS(root)
    with pytest.raises(OSError, match="too long") as info:
        fs.realpath(path)
    assert info.value.errno == rootfs.errno.ELOOP
    os.symlink("d", root / "short")
    assert fs.realpath("/short/../l39") == "/l39"


def test_walk_yields_between_bounded_steps(root: Path) -> None:
    calls = []
    fs = rootfs.RootFS(root, checkpoint=lambda: calls.append(1))
    (root / "d").mkdir()
    assert fs.realpath("/" + "d/../" * 100 + "d") == "/d"
    assert len(calls) == 201 // rootfs.WALK_STEPS_PER_CHECKPOINT


def test_opendir_holds_no_copy_of_the_listing(local: Session, root: Path) -> None:
    big = root / "big"
    big.mkdir()
    names = {f"f{i:04d}" for i in range(1000)}
    for name in names:
        (big / name).touch()
    c = local.client
    handle = c.call(p.CMD_OPENDIR, "/big").handle
    folder = local.handler.folder_table[handle]
    assert isinstance(folder, LocalFolderHandle)
    first = c.call(p.CMD_READDIR, handle)
    assert 0 < len(first.names) <= 100  # one batch read from the stream, nothing more
    seen = {n.decode() for n, _long, _attrs in first.names}
    for _ in range(len(names)):
        reply = c.call(p.CMD_READDIR, handle)
        if reply.type == p.CMD_STATUS:
            assert reply.code == p.SFTP_EOF
            break
        seen |= {n.decode() for n, _long, _attrs in reply.names}
    assert seen == names
    assert c.call(p.CMD_CLOSE, handle).code == p.SFTP_OK
    assert folder.fd == -1


def test_open_directories_count_against_the_open_file_cap(root: Path, timeout: None) -> None:
    class Small(LocalSFTPServer):
        max_handles_per_connection = 3

    session = start(Small, root)
    c = session.client
    handles = [c.call(p.CMD_OPENDIR, "/").handle for _ in range(2)]
    handles.append(c.open("/f"))
    refused = c.call(p.CMD_OPENDIR, "/")
    assert refused.status == (p.SFTP_FAILURE, "Too many open files on this connection (limit 3)")
    assert c.call(p.CMD_CLOSE, handles[0]).code == p.SFTP_OK
    assert c.call(p.CMD_OPENDIR, "/").type == p.CMD_HANDLE
    _end(session)


def test_subclass_overriding_list_folder_is_served_its_list(root: Path, timeout: None) -> None:
    class Filtered(LocalSFTPServer):
        def list_folder(self, path: str):  # type: ignore[no-untyped-def]
            listing = super().list_folder(path)
            return [a for a in listing if not a.filename.startswith(".")]

    (root / ".hidden").touch()
    (root / "shown").touch()
    session = start(Filtered, root)
    c = session.client
    handle = c.call(p.CMD_OPENDIR, "/").handle
    names = [n for n, _long, _attrs in c.call(p.CMD_READDIR, handle).names]
    assert names == [b"shown"]
    _end(session)


def test_closed_channel_stops_a_long_request(root: Path, timeout: None) -> None:
    """Hashing stops at the next step once the channel is closed, instead of
    finishing a request whose answer no one can read."""
    with open(root / "huge", "wb") as f:
        f.truncate(1 << 40)  # a terabyte of holes: hashing it all would take hours
    session = start(LocalSFTPServer, root)
    c = session.client
    handle = c.open("/huge", p.SFTP_FLAG_READ)
    steps = []
    pause = session.handler._pause

    def peer_closes_during_the_hash() -> None:
        steps.append(1)
        session.channel.close()
        pause()

    session.handler._pause = peer_closes_during_the_hash  # type: ignore[method-assign]
    c.send(_check_file(c, handle)[1])
    session.handler.join(30)
    assert not session.handler.is_alive()
    assert steps == [1]
