"""SFTPServer engine driven with raw SFTP packets over a socketpair-backed fake channel.

No SSH connection: ``SocketChannel`` implements the Channel methods the
engine relies on (recv/sendall/close/send_exit_status/get_transport/
get_name/settimeout) over one end of ``gevent.socket.socketpair()``; the
test writes packets to the other end. Each test runs under a gevent.Timeout
and synchronises only on the bytes it reads (or ``gevent.idle()``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import pytest
from gevent import socket as gsocket
from hypothesis import HealthCheck, given, settings, strategies as st

from geossh.sftp import protocol as p
from geossh.sftp.handle import takes_buffer
from geossh.sftp.local import LocalSFTPServer
from geossh.sftp.server import MAX_QUEUED_BYTES, MAX_QUEUED_REQUESTS, SFTPServer
from geossh.sftp_attr import SFTPAttributes
from geossh.sftp_handle import SFTPHandle
from geossh.sftp_si import SFTPServerInterface

RW_CREATE = p.SFTP_FLAG_READ | p.SFTP_FLAG_WRITE | p.SFTP_FLAG_CREATE
TEST_TIMEOUT = 20


class FakeTransport:
    logger = logging.getLogger("geossh.transport")
    local_version = "SSH-2.0-geossh_0.1.0"
    remote_version = "SSH-2.0-OpenSSH_9.2p1"

    def get_log_channel(self) -> str:
        return "geossh.transport"

    def get_hexdump(self) -> bool:
        return False

    def is_active(self) -> bool:
        return True


class SocketChannel:
    """The Channel surface the SFTP engine uses, over a gevent socket."""

    def __init__(self, sock: gsocket.socket) -> None:
        self.sock = sock
        self.transport = FakeTransport()
        self.exit_status: int | None = None
        self.closed = False

    def recv(self, n: int) -> bytes:
        try:
            return self.sock.recv(n)
        except OSError:
            return b""

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_exit_status(self, status: int) -> None:
        self.exit_status = status

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()

    def get_transport(self) -> FakeTransport:
        return self.transport

    def get_name(self) -> str:
        return "7"

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)


class Reply:
    """One parsed server packet."""

    def __init__(self, ptype: int, body: bytes) -> None:
        self.type = ptype
        self.id = struct.unpack_from(">I", body)[0]
        self.version = self.id if ptype == p.CMD_VERSION else None
        self.payload = body[4:]

    def _string(self, pos: int) -> tuple[bytes, int]:
        n = struct.unpack_from(">I", self.payload, pos)[0]
        return self.payload[pos + 4 : pos + 4 + n], pos + 4 + n

    @property
    def status(self) -> tuple[int, str]:
        assert self.type == p.CMD_STATUS, (self.type, self.payload[:60])
        code = struct.unpack_from(">I", self.payload)[0]
        return code, self._string(4)[0].decode()

    @property
    def code(self) -> int:
        return self.status[0]

    @property
    def handle(self) -> bytes:
        assert self.type == p.CMD_HANDLE, self.payload[:60]
        return self._string(0)[0]

    @property
    def data(self) -> bytes:
        assert self.type == p.CMD_DATA, self.payload[:60]
        return self._string(0)[0]

    @property
    def names(self) -> list[tuple[bytes, bytes, p.RawAttrs]]:
        assert self.type == p.CMD_NAME, self.payload[:60]
        count = struct.unpack_from(">I", self.payload)[0]
        pos, out = 4, []
        for _ in range(count):
            name, pos = self._string(pos)
            long, pos = self._string(pos)
            attrs, pos = p.decode_attrs(self.payload, pos, len(self.payload))
            out.append((name, long, attrs))
        return out

    @property
    def attrs(self) -> p.RawAttrs:
        assert self.type == p.CMD_ATTRS, self.payload[:60]
        return p.decode_attrs(self.payload, 0, len(self.payload))[0]


class RawClient:
    """Writes requests and reads replies as raw packets."""

    def __init__(self, sock: gsocket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.next_id = 1

    def send(self, *packets: bytes) -> None:
        self.sock.sendall(b"".join(packets))

    def read(self) -> Reply:
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack_from(">I", self.buf)[0]
                if len(self.buf) >= 4 + n:
                    reply = Reply(self.buf[4], bytes(self.buf[5 : 4 + n]))
                    del self.buf[: 4 + n]
                    return reply
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError
            self.buf += data

    def at_eof(self) -> bool:
        if self.buf:
            return False
        return self.sock.recv(1) == b""

    def packet(self, ptype: int, *values: object) -> tuple[int, bytes]:
        rid = self.next_id
        self.next_id += 1
        return rid, p.encode_request(ptype, rid, *values)

    def call(self, ptype: int, *values: object) -> Reply:
        rid, pkt = self.packet(ptype, *values)
        self.send(pkt)
        reply = self.read()
        assert reply.id == rid
        return reply

    def ext(self, name: str, *values: object) -> Reply:
        return self.call(p.CMD_EXTENDED, name, *values)

    def init(self) -> dict[str, str]:
        self.send(p.packet(p.CMD_INIT, struct.pack(">I", 3)))
        reply = self.read()
        assert reply.type == p.CMD_VERSION
        assert reply.version == 3
        exts, pos = {}, 0
        while pos < len(reply.payload):
            name, pos = reply._string(pos)
            value, pos = reply._string(pos)
            exts[name.decode()] = value.decode()
        return exts

    def open(self, path: str, pflags: int = RW_CREATE, attrs: bytes = p.EMPTY_ATTRS) -> bytes:
        return self.call(p.CMD_OPEN, path, pflags, attrs).handle


class Session:
    def __init__(self, handler: SFTPServer, channel: SocketChannel, client: RawClient) -> None:
        self.handler = handler
        self.channel = channel
        self.client = client

    def end(self) -> None:
        self.client.sock.shutdown(socket.SHUT_WR)
        self.handler.join(TEST_TIMEOUT)
        assert not self.handler.is_alive()


@pytest.fixture
def timeout() -> Iterator[None]:
    with gevent.Timeout(TEST_TIMEOUT, AssertionError("test timed out")):
        yield


def start(
    si_class: type, *args: Any, init: bool = True, client: str = "", **kwargs: Any
) -> Session:
    ours, theirs = gsocket.socketpair()
    channel = SocketChannel(ours)
    if client:
        channel.transport.remote_version = client
    handler = SFTPServer(channel, "sftp", object(), si_class, *args, **kwargs)
    handler.start()
    client = RawClient(theirs)
    if init:
        client.init()
    return Session(handler, channel, client)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    return path


@pytest.fixture
def local(root: Path, timeout: None) -> Iterator[Session]:
    session = start(LocalSFTPServer, root)
    yield session
    session.client.sock.close()
    session.handler.join(TEST_TIMEOUT)


# -- a paramiko-style stub interface, shaped like paramiko's tests/_stub_sftp.py ---------


class StubHandle(SFTPHandle):
    def stat(self) -> Any:
        try:
            return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)

    def chattr(self, attr: SFTPAttributes) -> int:
        try:
            SFTPServer.set_file_attr(self.filename, attr)
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
        return p.SFTP_OK


class StubServer(SFTPServerInterface):
    ROOT = "/nonexistent"

    def _realpath(self, path: str) -> str:
        return self.ROOT + self.canonicalize(path)

    def list_folder(self, path: str) -> Any:
        path = self._realpath(path)
        try:
            out = []
            for name in os.listdir(path):
                attr = SFTPAttributes.from_stat(os.stat(os.path.join(path, name)))
                attr.filename = name
                out.append(attr)
            return out
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)

    def stat(self, path: str) -> Any:
        try:
            return SFTPAttributes.from_stat(os.stat(self._realpath(path)))
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)

    lstat = stat

    def open(self, path: str, flags: int, attr: SFTPAttributes) -> Any:
        path = self._realpath(path)
        try:
            mode = getattr(attr, "st_mode", None)
            fd = os.open(path, flags, mode if mode is not None else 0o666)
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
        if flags & os.O_CREAT and attr is not None:
            attr._flags &= ~attr.FLAG_PERMISSIONS
            SFTPServer.set_file_attr(path, attr)
        if flags & os.O_WRONLY:
            fstr = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            fstr = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            fstr = "rb"
        f = os.fdopen(fd, fstr)
        handle = StubHandle(flags)
        handle.filename = path
        handle.readfile = f
        handle.writefile = f
        return handle

    def remove(self, path: str) -> int:
        try:
            os.remove(self._realpath(path))
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
        return p.SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        try:
            os.rename(self._realpath(oldpath), self._realpath(newpath))
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
        return p.SFTP_OK

    def mkdir(self, path: str, attr: SFTPAttributes) -> int:
        try:
            os.mkdir(self._realpath(path))
            if attr is not None:
                SFTPServer.set_file_attr(self._realpath(path), attr)
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
        return p.SFTP_OK

    def rmdir(self, path: str) -> int:
        try:
            os.rmdir(self._realpath(path))
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
        return p.SFTP_OK

    def chattr(self, path: str, attr: SFTPAttributes) -> int:
        try:
            SFTPServer.set_file_attr(self._realpath(path), attr)
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
        return p.SFTP_OK

    def symlink(self, target_path: str, path: str) -> int:
        try:
            os.symlink(target_path, self._realpath(path))
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
        return p.SFTP_OK

    def readlink(self, path: str) -> Any:
        try:
            return os.readlink(self._realpath(path))
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)


@pytest.fixture
def stub(root: Path, timeout: None) -> Iterator[Session]:
    class Rooted(StubServer):
        ROOT = str(root)

    session = start(Rooted)
    yield session
    session.client.sock.close()
    session.handler.join(TEST_TIMEOUT)


# -- handshake and advertisement --------------------------------------------------------------


def test_version_advertises_openssh_extensions(root: Path, timeout: None) -> None:
    session = start(LocalSFTPServer, root, init=False)
    exts = session.client.init()
    assert exts == {
        "posix-rename@openssh.com": "1",
        "statvfs@openssh.com": "2",
        "fstatvfs@openssh.com": "2",
        "hardlink@openssh.com": "1",
        "fsync@openssh.com": "1",
        "lsetstat@openssh.com": "1",
        "limits@openssh.com": "1",
        "expand-path@openssh.com": "1",
        "home-directory": "1",
        "users-groups-by-id@openssh.com": "1",
        "copy-data": "1",
        "check-file": "md5,sha1,sha256,sha512",
    }
    session.end()
    assert session.channel.exit_status == 0
    assert session.channel.closed


def test_stub_gets_only_what_it_implements(timeout: None) -> None:
    session = start(StubServer, init=False)
    exts = session.client.init()
    assert set(exts) == {
        "limits@openssh.com", "expand-path@openssh.com", "home-directory", "copy-data", "check-file"
    }  # fmt: skip
    session.end()


def test_request_before_init_ends_session(root: Path, timeout: None) -> None:
    session = start(LocalSFTPServer, root, init=False)
    session.client.send(p.encode_request(p.CMD_STAT, 1, "/"))
    session.handler.join(TEST_TIMEOUT)
    assert session.client.at_eof()
    assert session.channel.exit_status == 1


def test_init_and_requests_in_one_write(root: Path, timeout: None) -> None:
    session = start(LocalSFTPServer, root, init=False)
    c = session.client
    c.send(p.packet(p.CMD_INIT, struct.pack(">I", 3)), p.encode_request(p.CMD_REALPATH, 9, "."))
    assert c.read().type == p.CMD_VERSION
    reply = c.read()
    assert reply.id == 9 and reply.names[0][0] == b"/"
    session.end()


# -- every request type --------------------------------------------------------------------------


def test_file_lifecycle(local: Session, root: Path) -> None:
    c = local.client
    h = c.open("/a.txt", RW_CREATE | p.SFTP_FLAG_TRUNC, p.encode_attrs(perm=0o600))
    assert c.call(p.CMD_WRITE, h, 0, b"hello world").code == p.SFTP_OK
    assert c.call(p.CMD_READ, h, 6, 100).data == b"world"
    assert c.call(p.CMD_READ, h, 11, 100).code == p.SFTP_EOF
    assert c.call(p.CMD_FSTAT, h).attrs[1] == 11
    assert c.call(p.CMD_FSETSTAT, h, p.encode_attrs(size=5)).code == p.SFTP_OK
    assert c.call(p.CMD_CLOSE, h).code == p.SFTP_OK
    assert (root / "a.txt").read_text() == "hello"
    assert c.call(p.CMD_STAT, "/a.txt").attrs[1] == 5
    assert c.call(p.CMD_LSTAT, "a.txt").attrs[4] & 0o777 == 0o600 & ~_umask()
    assert c.call(p.CMD_SETSTAT, "/a.txt", p.encode_attrs(atime=1, mtime=2)).code == p.SFTP_OK
    assert (root / "a.txt").stat().st_mtime == 2
    assert c.call(p.CMD_RENAME, "/a.txt", "/b.txt").code == p.SFTP_OK
    assert c.call(p.CMD_REMOVE, "/b.txt").code == p.SFTP_OK
    assert c.call(p.CMD_REMOVE, "/b.txt").code == p.SFTP_NO_SUCH_FILE


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_directories_and_links(local: Session, root: Path) -> None:
    c = local.client
    assert c.call(p.CMD_MKDIR, "/d", p.encode_attrs(perm=0o755)).code == p.SFTP_OK
    for i in range(250):
        (root / "d" / f"f{i:03}").write_bytes(b"x" * i)
    h = c.call(p.CMD_OPENDIR, "/d").handle
    names: list[bytes] = []
    while True:
        reply = c.call(p.CMD_READDIR, h)
        if reply.type == p.CMD_STATUS:
            assert reply.code == p.SFTP_EOF
            break
        batch = reply.names
        assert 0 < len(batch) <= 100
        for name, long, attrs in batch:
            assert long.startswith(b"-rw") and long.endswith(name)
            assert attrs[1] == int(name[1:])
        names += [n for n, _, _ in batch]
    assert sorted(names) == [f"f{i:03}".encode() for i in range(250)]
    assert c.call(p.CMD_CLOSE, h).code == p.SFTP_OK
    assert c.call(p.CMD_READDIR, h).status == (p.SFTP_FAILURE, "Invalid handle")
    # SYMLINK: OpenSSH's order, target first
    assert c.call(p.CMD_SYMLINK, "d/f001", "/link").code == p.SFTP_OK
    assert os.readlink(root / "link") == "d/f001"
    assert c.call(p.CMD_READLINK, "/link").names[0][0] == b"d/f001"
    assert c.call(p.CMD_REALPATH, "/link/..").code == p.SFTP_NO_SUCH_FILE  # ENOTDIR
    assert c.call(p.CMD_SYMLINK, "/d", "/dlink").code == p.SFTP_OK
    assert c.call(p.CMD_REALPATH, "/dlink/./f002").names[0][0] == b"/d/f002"
    assert c.call(p.CMD_REALPATH, "../../..").names[0][0] == b"/"
    assert c.call(p.CMD_RMDIR, "/d").code == p.SFTP_FAILURE
    assert c.call(p.CMD_OPENDIR, "/nope").code == p.SFTP_NO_SUCH_FILE


def test_symlink_argument_order_follows_the_client(root: Path, timeout: None) -> None:
    """asyncssh uses the draft's order with servers not named OpenSSH/paramiko."""
    session = start(LocalSFTPServer, root, client="SSH-2.0-AsyncSSH_2.24.1")
    assert session.client.call(p.CMD_SYMLINK, "/link", "target").code == p.SFTP_OK
    assert os.readlink(root / "link") == "target"
    session.end()


def test_extensions(local: Session, root: Path) -> None:
    c = local.client
    (root / "x").write_bytes(b"0123456789" * 100)
    assert c.ext("posix-rename@openssh.com", "/x", "/y").code == p.SFTP_OK
    body = c.ext("statvfs@openssh.com", "/").payload
    assert len(body) == 11 * 8 and struct.unpack_from(">Q", body)[0] > 0
    assert c.ext("hardlink@openssh.com", "/y", "/z").code == p.SFTP_OK
    assert (root / "z").stat().st_nlink == 2
    limits = struct.unpack(">4Q", c.ext("limits@openssh.com").payload)
    assert limits == (p.MAX_PACKET, p.MAX_READ, p.MAX_WRITE, 1024)
    assert c.ext("expand-path@openssh.com", "~/y").names[0][0] == b"/y"
    assert c.ext("home-directory", "").names[0][0] == b"/"
    assert c.ext("home-directory", "someone-else").code == p.SFTP_NO_SUCH_FILE
    assert c.ext("lsetstat@openssh.com", "/y", p.encode_attrs(atime=5, mtime=6)).code == 0
    src = c.open("/y", p.SFTP_FLAG_READ)
    dst = c.open("/copy")
    assert len(c.ext("fstatvfs@openssh.com", src).payload) == 88
    assert c.ext("fsync@openssh.com", dst).code == p.SFTP_OK
    assert c.ext("copy-data", src, 0, 0, dst, 0).code == p.SFTP_OK
    assert c.ext("copy-data", src, 0, 0, src, 0).code == p.SFTP_FAILURE
    assert (root / "copy").read_bytes() == (root / "y").read_bytes()
    reply = c.ext("check-file", src, b"sha256,md5", 0, 0, 256)
    assert reply.type == p.CMD_EXTENDED_REPLY
    name, pos = reply._string(0)
    alg, pos = reply._string(pos)
    data = (root / "y").read_bytes()
    expected = b"".join(hashlib.sha256(data[i : i + 256]).digest() for i in range(0, 1000, 256))
    assert (name, alg, reply.payload[pos:]) == (b"check-file", b"sha256", expected)
    assert c.ext("check-file", src, b"crc32", 0, 0, 256).code == p.SFTP_FAILURE
    assert c.ext("check-file", src, b"md5", 0, 0, 16).code == p.SFTP_FAILURE
    assert c.ext("nope@example.com", "x").code == p.SFTP_OP_UNSUPPORTED
    assert c.ext("fsync@openssh.com", b"hx999").status == (p.SFTP_FAILURE, "Invalid handle")


# -- pipelining and throughput shape ---------------------------------------------------------------


def test_pipelined_writes_and_reads_answer_in_order(local: Session, root: Path) -> None:
    c = local.client
    h = c.open("/big")
    chunk = 32768
    blobs = [os.urandom(chunk) for _ in range(64)]
    ids, packets = zip(
        *(c.packet(p.CMD_WRITE, h, i * chunk, b) for i, b in enumerate(blobs)), strict=False
    )
    c.send(*packets)
    replies = [c.read() for _ in ids]
    assert [r.id for r in replies] == list(ids)
    assert all(r.code == p.SFTP_OK for r in replies)
    ids, packets = zip(
        *(c.packet(p.CMD_READ, h, i * chunk, chunk) for i in range(64)), strict=False
    )
    c.send(*packets)
    replies = [c.read() for _ in ids]
    assert [r.id for r in replies] == list(ids)
    assert b"".join(r.data for r in replies) == b"".join(blobs)


def test_read_length_is_capped(local: Session, root: Path) -> None:
    (root / "f").write_bytes(b"z" * (2 * p.MAX_READ))
    c = local.client
    h = c.open("/f", p.SFTP_FLAG_READ)
    assert len(c.call(p.CMD_READ, h, 0, 0xFFFFFFFF).data) == p.MAX_READ
    # a write as large as the advertised limit is accepted
    w = c.open("/w")
    assert c.call(p.CMD_WRITE, w, 0, b"y" * p.MAX_WRITE).code == p.SFTP_OK


def test_flood_without_reading_is_bounded(local: Session, root: Path) -> None:
    """A client that never reads blocks itself: the server stops reading."""
    (root / "f").write_bytes(b"abc")
    c = local.client
    h = c.open("/f", p.SFTP_FLAG_READ)
    count = 100_000
    flood = b"".join(p.encode_request(p.CMD_READ, i, h, 0, 1) for i in range(count))
    sender = gevent.spawn(c.sock.sendall, flood)
    gevent.idle()
    assert not sender.ready(), "the server kept reading without being read"
    for i in range(count):
        reply = c.read()
        assert (reply.id, reply.data) == (i, b"a")
    sender.get()


def test_multiple_sessions_interleave(root: Path, timeout: None) -> None:
    sessions = [start(LocalSFTPServer, root) for _ in range(3)]
    handles = [s.client.open(f"/s{i}") for i, s in enumerate(sessions)]
    for i, (s, h) in enumerate(zip(sessions, handles, strict=True)):
        assert s.client.call(p.CMD_WRITE, h, 0, b"%d" % i).code == p.SFTP_OK
    for s in sessions:
        s.end()
        assert s.channel.exit_status == 0
    assert [(root / f"s{i}").read_text() for i in range(3)] == ["0", "1", "2"]


# -- bad input ------------------------------------------------------------------------------------


def test_unknown_and_malformed_requests(local: Session) -> None:
    c = local.client
    c.send(p.packet(99, struct.pack(">I", 77) + b"junk"))
    assert c.read().status[0] == p.SFTP_OP_UNSUPPORTED
    c.send(p.packet(99, b"\x01"), p.packet(p.CMD_INIT, struct.pack(">I", 3)))  # no id: no reply
    c.send(p.packet(p.CMD_STAT, struct.pack(">I", 78) + struct.pack(">I", 500) + b"/x"))
    reply = c.read()
    assert (reply.id, reply.code) == (78, p.SFTP_BAD_MESSAGE)
    bad_attrs = struct.pack(">I", p.ATTR_SIZE) + b"\x00\x00"
    _, pkt = c.packet(p.CMD_OPEN, "/f", RW_CREATE, bad_attrs)
    c.send(pkt)
    assert c.read().code == p.SFTP_BAD_MESSAGE
    assert c.call(p.CMD_REALPATH, ".").names[0][0] == b"/"  # still serving


def test_bad_handles_and_offsets(local: Session, root: Path) -> None:
    (root / "f").write_bytes(b"data")
    c = local.client
    h = c.open("/f")
    invalid = (p.SFTP_FAILURE, "Invalid handle")
    for handle in (b"hx999", b"", b"\xff" * 200):
        assert c.call(p.CMD_READ, handle, 0, 10).status == invalid
        assert c.call(p.CMD_WRITE, handle, 0, b"x").status == invalid
        assert c.call(p.CMD_FSTAT, handle).status == invalid
        assert c.call(p.CMD_FSETSTAT, handle, p.EMPTY_ATTRS).status == invalid
        assert c.call(p.CMD_CLOSE, handle).status == invalid
    assert c.call(p.CMD_READ, h, 2**64 - 1, 10).code == p.SFTP_BAD_MESSAGE
    assert c.call(p.CMD_WRITE, h, 2**63, b"x").code == p.SFTP_BAD_MESSAGE
    assert c.call(p.CMD_READ, h, 2**62, 10).code == p.SFTP_EOF
    d = c.call(p.CMD_OPENDIR, "/").handle
    assert c.call(p.CMD_READ, d, 0, 1).status == invalid  # a directory handle
    assert c.call(p.CMD_CLOSE, h).code == p.SFTP_OK
    assert c.call(p.CMD_READ, h, 0, 10).status == invalid  # stale


def test_too_many_handles(local: Session) -> None:
    local.handler.max_open_handles = 3
    c = local.client
    for i in range(3):
        c.open(f"/h{i}")
    reply = c.call(p.CMD_OPEN, "/h3", RW_CREATE, p.EMPTY_ATTRS)
    assert reply.status == (p.SFTP_FAILURE, "Too many open handles")
    assert c.call(p.CMD_OPENDIR, "/").code == p.SFTP_FAILURE


@pytest.mark.parametrize("length", [p.MAX_PACKET_ACCEPTED + 1, 0x7FFFFFFF, 0])
def test_oversized_or_empty_packet_ends_session(local: Session, length: int) -> None:
    local.client.send(struct.pack(">I", length))
    local.handler.join(TEST_TIMEOUT)
    assert not local.handler.is_alive()
    assert local.channel.exit_status == 1
    assert local.client.at_eof()


def test_traversal_attempts(local: Session, root: Path) -> None:
    c = local.client
    os.symlink(root.parent / "secret.txt", root / "evil")
    assert c.call(p.CMD_STAT, "/../secret.txt").code == p.SFTP_NO_SUCH_FILE
    assert c.call(p.CMD_OPEN, "../../secret.txt", 1, p.EMPTY_ATTRS).code == p.SFTP_NO_SUCH_FILE
    assert c.call(p.CMD_OPEN, "/evil", 1, p.EMPTY_ATTRS).code == p.SFTP_NO_SUCH_FILE
    assert c.call(p.CMD_OPENDIR, "/..").type == p.CMD_HANDLE  # "/.." is "/"
    assert c.call(p.CMD_RENAME, "/evil", "/../../stolen").code == p.SFTP_OK
    assert os.path.islink(root / "stolen") and not (root.parent / "stolen").exists()
    assert c.call(p.CMD_SYMLINK, "/etc/passwd", "/pw").code == p.SFTP_OK
    assert os.readlink(root / "pw") == str(root / "etc" / "passwd")  # absolute, under the root
    assert c.ext("hardlink@openssh.com", "/../secret.txt", "/h").code == p.SFTP_NO_SUCH_FILE
    assert (root.parent / "secret.txt").read_text() == "secret"


# -- interface behaviour ---------------------------------------------------------------------------


class Exploding(SFTPServerInterface):
    def stat(self, path: str) -> Any:
        raise RuntimeError("boom")

    def lstat(self, path: str) -> Any:
        return None  # neither attributes nor a code

    def canonicalize(self, path: str) -> Any:
        return p.SFTP_PERMISSION_DENIED  # paramiko would emit a broken packet


def test_interface_errors_fail_only_that_request(timeout: None, caplog: Any) -> None:
    session = start(Exploding)
    c = session.client
    with caplog.at_level(logging.ERROR):
        assert c.call(p.CMD_STAT, "/x").code == p.SFTP_FAILURE
    assert "boom" in caplog.text
    assert c.call(p.CMD_LSTAT, "/x").code == p.SFTP_FAILURE
    assert c.call(p.CMD_REALPATH, "/x").code == p.SFTP_PERMISSION_DENIED
    assert c.call(p.CMD_OPEN, "/x", 1, p.EMPTY_ATTRS).code == p.SFTP_OP_UNSUPPORTED
    assert c.ext("posix-rename@openssh.com", "/a", "/b").code == p.SFTP_OP_UNSUPPORTED
    session.end()
    assert session.channel.exit_status == 0


class Recording(LocalSFTPServer):
    events: list[str] = []

    def session_started(self) -> None:
        self.events.append("started")

    def session_ended(self) -> None:
        self.events.append("ended")
        super().session_ended()


def test_end_of_session_closes_handles(root: Path, timeout: None) -> None:
    Recording.events = []
    session = start(Recording, root)
    c = session.client
    h = c.open("/open-at-eof")
    c.call(p.CMD_OPENDIR, "/")
    handle = session.handler.file_table[h]
    assert handle.fd >= 0
    session.end()
    assert handle.fd == -1
    assert session.handler.file_table == {} and session.handler.folder_table == {}
    assert Recording.events == ["started", "ended"]
    assert session.channel.exit_status == 0


# -- the paramiko-style stub and lane scheduling -------------------------------------------------


def test_stub_interface_works_unchanged(stub: Session, root: Path) -> None:
    c = stub.client
    h = c.open("/f.txt", RW_CREATE | p.SFTP_FLAG_TRUNC)
    for i in range(10):
        assert c.call(p.CMD_WRITE, h, i * 3, b"abc").code == p.SFTP_OK
    assert c.call(p.CMD_READ, h, 3, 6).data == b"abcabc"
    assert c.call(p.CMD_FSTAT, h).attrs[1] == 30
    assert c.call(p.CMD_FSETSTAT, h, p.encode_attrs(perm=0o640)).code == p.SFTP_OK
    assert c.call(p.CMD_CLOSE, h).code == p.SFTP_OK
    assert (root / "f.txt").read_bytes() == b"abc" * 10
    assert c.call(p.CMD_MKDIR, "/d", p.EMPTY_ATTRS).code == p.SFTP_OK
    assert c.call(p.CMD_RENAME, "/f.txt", "/d/g.txt").code == p.SFTP_OK
    d = c.call(p.CMD_OPENDIR, "/d").handle
    assert [n for n, _, _ in c.call(p.CMD_READDIR, d).names] == [b"g.txt"]
    assert c.call(p.CMD_READDIR, d).code == p.SFTP_EOF
    assert c.call(p.CMD_SYMLINK, "g.txt", "/d/l").code == p.SFTP_OK
    assert c.call(p.CMD_READLINK, "/d/l").names[0][0] == b"g.txt"
    assert c.call(p.CMD_STAT, "/missing").code == p.SFTP_NO_SUCH_FILE
    assert c.ext("expand-path@openssh.com", "~/d").names[0][0] == b"/d"
    src = c.open("/d/g.txt", p.SFTP_FLAG_READ)
    dst = c.open("/copy.txt")
    assert c.ext("copy-data", src, 0, 0, dst, 0).code == p.SFTP_OK
    assert c.call(p.CMD_CLOSE, dst).code == p.SFTP_OK
    assert (root / "copy.txt").read_bytes() == b"abc" * 10


def test_stub_pipelined_writes(stub: Session, root: Path) -> None:
    c = stub.client
    h = c.open("/p.bin")
    blobs = [os.urandom(4096) for _ in range(200)]
    ids, packets = zip(
        *(c.packet(p.CMD_WRITE, h, i * 4096, b) for i, b in enumerate(blobs)), strict=False
    )
    c.send(*packets)
    assert [c.read().id for _ in ids] == list(ids)
    assert c.call(p.CMD_CLOSE, h).code == p.SFTP_OK
    assert (root / "p.bin").read_bytes() == b"".join(blobs)


class KeepingHandle(StubHandle):
    """A user handle that keeps every object ``write`` is given (as a buffering backend may)."""

    def __init__(self, flags: int = 0) -> None:
        super().__init__(flags)
        self.kept: list[Any] = []

    def write(self, offset: int, data: bytes) -> int:
        self.kept.append(data)
        return super().write(offset, data)


@pytest.mark.parametrize("concurrency", [0, 4])
def test_user_write_gets_bytes_it_may_keep(root: Path, timeout: None, concurrency: int) -> None:
    """An overridden ``write`` gets bytes of its own in both modes, never a view into
    the receive buffer the engine goes on reusing."""
    handles: list[KeepingHandle] = []

    class Keeping(StubServer):
        ROOT = str(root)
        request_concurrency = concurrency

        def open(self, path: str, flags: int, attr: SFTPAttributes) -> Any:
            inner = super().open(path, flags, attr)
            handle = KeepingHandle(flags)
            handle.filename, handle.readfile, handle.writefile = (
                inner.filename,
                inner.readfile,
                inner.writefile,
            )
            handles.append(handle)
            return handle

    session = start(Keeping)
    c = session.client
    h = c.open("/k.bin")
    blobs = [os.urandom(40_000) for _ in range(60)]  # spans many reads of the engine's buffer
    ids, packets = zip(
        *(c.packet(p.CMD_WRITE, h, i * 40_000, b) for i, b in enumerate(blobs)), strict=False
    )
    c.send(*packets)
    assert [(r.id, r.code) for r in (c.read() for _ in ids)] == [(i, p.SFTP_OK) for i in ids]
    assert c.call(p.CMD_CLOSE, h).code == p.SFTP_OK
    (handle,) = handles
    assert [type(d) for d in handle.kept] == [bytes] * len(blobs)
    assert handle.kept == blobs
    assert (root / "k.bin").read_bytes() == b"".join(blobs)
    session.end()


def test_default_write_takes_a_view_only_over_standard_files(tmp_path: Path) -> None:
    class Sink:
        def write(self, data: bytes) -> int:
            return len(data)

    class Own(SFTPHandle):
        write_accepts_buffer = True

    with open(tmp_path / "b", "wb") as buffered, open(tmp_path / "r", "wb", buffering=0) as raw:
        for writefile, expected in ((buffered, True), (raw, True), (Sink(), False), (None, False)):
            handle = SFTPHandle()
            handle.writefile = writefile
            assert takes_buffer(handle) is expected
        keeping = KeepingHandle()
        keeping.writefile = buffered
        assert not takes_buffer(keeping)  # its own write: it gets bytes
    assert takes_buffer(Own())


def test_inline_stub_writes_and_reads(root: Path, timeout: None) -> None:
    class Inline(StubServer):
        ROOT = str(root)
        request_concurrency = 0

    session = start(Inline)
    c = session.client
    h = c.open("/i.bin", RW_CREATE | p.SFTP_FLAG_TRUNC)
    blobs = [os.urandom(30_000) for _ in range(40)]
    ids, packets = zip(
        *(c.packet(p.CMD_WRITE, h, i * 30_000, b) for i, b in enumerate(blobs)), strict=False
    )
    c.send(*packets)
    assert [c.read().code for _ in ids] == [p.SFTP_OK] * len(ids)
    assert c.call(p.CMD_READ, h, 29_990, 20).data == blobs[0][-10:] + blobs[1][:10]
    assert c.call(p.CMD_CLOSE, h).code == p.SFTP_OK
    assert (root / "i.bin").read_bytes() == b"".join(blobs)
    session.end()


class SlowStat(StubServer):
    gate = gevent.event.Event()

    def stat(self, path: str) -> Any:
        if path == "/slow":
            self.gate.wait()
        return super().stat(path)


def test_slow_request_does_not_block_other_handles(root: Path, timeout: None) -> None:
    class Rooted(SlowStat):
        ROOT = str(root)
        gate = gevent.event.Event()

    (root / "f").write_bytes(b"0123456789")
    session = start(Rooted)
    c = session.client
    h = c.open("/f", p.SFTP_FLAG_READ)
    slow_id, slow = c.packet(p.CMD_STAT, "/slow")
    reads = [c.packet(p.CMD_READ, h, i, 1) for i in range(5)]
    c.send(slow, *(pkt for _, pkt in reads))
    got = [c.read() for _ in reads]
    assert [r.id for r in got] == [rid for rid, _ in reads]  # in order, before the STAT
    assert b"".join(r.data for r in got) == b"01234"
    Rooted.gate.set()
    reply = c.read()
    assert (reply.id, reply.code) == (slow_id, p.SFTP_NO_SUCH_FILE)
    session.end()


def test_lane_mode_flood_is_bounded(root: Path, timeout: None) -> None:
    class Rooted(StubServer):
        ROOT = str(root)

    (root / "f").write_bytes(b"abc")
    session = start(Rooted)
    c = session.client
    h = c.open("/f", p.SFTP_FLAG_READ)
    count = 50_000
    flood = b"".join(p.encode_request(p.CMD_READ, i, h, 0, 1) for i in range(count))
    sender = gevent.spawn(c.sock.sendall, flood)
    gevent.idle()
    assert not sender.ready()
    assert session.handler._queued <= MAX_QUEUED_REQUESTS
    assert session.handler._queued_bytes <= MAX_QUEUED_BYTES + p.MAX_PACKET_ACCEPTED
    for i in range(count):
        reply = c.read()
        assert (reply.id, reply.data) == (i, b"a")
    sender.get()
    session.end()
    assert session.channel.exit_status == 0


# -- byte-at-a-time and fuzzed input ---------------------------------------------------------------


def _script(root: Path) -> list[bytes]:
    (root / "f").write_bytes(b"0123456789")
    return [
        p.encode_request(p.CMD_OPEN, 1, "/f", RW_CREATE, p.EMPTY_ATTRS),
        p.encode_request(p.CMD_WRITE, 2, b"hx1", 10, b"abc"),
        p.encode_request(p.CMD_READ, 3, b"hx1", 8, 100),
        p.encode_request(p.CMD_STAT, 4, "/f"),
        p.encode_request(p.CMD_REALPATH, 5, "/x/../f"),
        p.packet(77, struct.pack(">I", 6)),
        p.encode_request(p.CMD_EXTENDED, 7, "limits@openssh.com"),
        p.encode_request(p.CMD_CLOSE, 8, b"hx1"),
    ]


@pytest.mark.parametrize("concurrency", [0, 4])
def test_input_fed_one_byte_at_a_time(root: Path, timeout: None, concurrency: int) -> None:
    class Local(LocalSFTPServer):
        request_concurrency = concurrency

    data = b"".join(_script(root))
    session = start(Local, root)
    c = session.client
    for i in range(len(data)):
        c.sock.sendall(data[i : i + 1])
        gevent.sleep(0)  # let the server see each byte on its own, not for synchronisation
    arrived = [c.read() for _ in range(8)]
    handle_order = [r.id for r in arrived if r.id in (2, 3, 8)]
    assert handle_order == [2, 3, 8]  # one handle: in order (lanes may reorder the rest)
    replies = sorted(arrived, key=lambda r: r.id)
    assert [r.id for r in replies] == list(range(1, 9))
    if not concurrency:
        assert [r.id for r in arrived] == list(range(1, 9))
    assert replies[2].data == b"89abc"
    assert replies[5].code == p.SFTP_OP_UNSUPPORTED
    session.end()
    assert session.channel.exit_status == 0


frames = st.tuples(st.integers(0, 255), st.binary(max_size=48)).map(
    lambda t: p.packet(t[0], t[1]) if t[0] != p.CMD_INIT else p.packet(99, t[1])
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(frames, max_size=12))
def test_random_requests_never_break_the_session(tmp_path: Path, packets: list[bytes]) -> None:
    root = tmp_path / f"fuzz{os.getpid()}"
    root.mkdir(exist_ok=True)
    with gevent.Timeout(TEST_TIMEOUT, AssertionError("fuzz example timed out")):
        session = start(LocalSFTPServer, root)
        c = session.client
        c.send(*packets, p.encode_request(p.CMD_REALPATH, 0xFFFFFFFF, "/"))
        while True:
            reply = c.read()
            if reply.id == 0xFFFFFFFF and reply.type == p.CMD_NAME:
                break
        session.end()
        assert session.channel.exit_status == 0


@pytest.mark.parametrize("concurrency", [0, 4])
def test_client_vanishing_mid_flood_ends_the_session(
    root: Path, timeout: None, concurrency: int
) -> None:
    class Local(LocalSFTPServer):
        request_concurrency = concurrency

    (root / "f").write_bytes(b"x" * 100_000)
    session = start(Local, root)
    c = session.client
    h = c.open("/f", p.SFTP_FLAG_READ)
    flood = b"".join(p.encode_request(p.CMD_READ, i, h, 0, 65536) for i in range(2000))
    sender = gevent.spawn(c.sock.sendall, flood)
    gevent.idle()
    c.sock.close()
    session.handler.join(TEST_TIMEOUT)
    assert not session.handler.is_alive()
    assert session.handler.file_table == {}
    sender.kill()


# -- OpenSSH's sftp and scp (SFTP mode) against the engine, without SSH ---------------------------
# ``sftp -D prog`` / ``scp -D prog`` speak SFTP over the stdin/stdout of a local program.

SFTP_SHIM = """\
#!{python}
import os, sys
sys.path.insert(0, {repo!r})
from gevent.socket import wait_read, wait_write
from geossh.sftp.local import LocalSFTPServer
from geossh.sftp.server import SFTPServer

class Transport:
    import logging
    logger = logging.getLogger("shim")
    def get_log_channel(self):
        return "shim"
    def get_hexdump(self):
        return False

class Stdio:
    exit_status = None
    def recv(self, n):
        wait_read(0)  # cooperative: lanes run while the reader waits
        return os.read(0, n)
    def sendall(self, data):
        view = memoryview(data)
        while view:
            wait_write(1)
            view = view[os.write(1, view):]
    def send_exit_status(self, status):
        self.exit_status = status
    def close(self):
        pass
    def get_transport(self):
        return Transport()
    def get_name(self):
        return "stdio"

channel = Stdio()
server = SFTPServer(channel, "sftp", None, {interface}, {root!r}{home})
server.start()
server.join()
sys.exit(channel.exit_status)
"""


STUB_INTERFACE = """
from geossh.sftp_attr import SFTPAttributes
from geossh.sftp_handle import SFTPHandle
from geossh.sftp_si import SFTPServerInterface

class StubHandle(SFTPHandle):
    def stat(self):
        return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
    def chattr(self, attr):
        return 0

class Stub(SFTPServerInterface):
    request_concurrency = int(os.environ.get("STUB_CONCURRENCY", "8"))
    def __init__(self, server, root):
        super().__init__(server)
        self.root = root
    def _path(self, path):
        return self.root + self.canonicalize(path)
    def stat(self, path):
        try:
            return SFTPAttributes.from_stat(os.stat(self._path(path)))
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
    lstat = stat
    def open(self, path, flags, attr):
        try:
            fd = os.open(self._path(path), flags, 0o644)
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
        mode = "wb" if flags & os.O_WRONLY else "r+b" if flags & os.O_RDWR else "rb"
        handle = StubHandle(flags)
        handle.readfile = handle.writefile = os.fdopen(fd, mode)
        return handle
"""


def _write_shim(path: Path, root: Path, interface: str, home: str = "", code: str = "") -> Path:
    """An ``sftp -D`` program serving ``root`` with ``interface`` (``code`` defines it)."""
    repo = str(Path(__file__).resolve().parents[2])
    text = SFTP_SHIM.format(
        python=sys.executable, repo=repo, root=str(root), interface=interface, home=home
    )
    path.write_text(text.replace("\nchannel = Stdio()", code + "\nchannel = Stdio()"))
    path.chmod(0o755)
    return path


@pytest.fixture
def stub_shim(root: Path, tmp_path: Path) -> Path:
    """``sftp -D`` program serving ``root`` through a paramiko-style interface."""
    return _write_shim(tmp_path / "stub-shim", root, "Stub", code=STUB_INTERFACE)


@pytest.fixture
def shim(root: Path, tmp_path: Path) -> Path:
    path = _write_shim(tmp_path / "sftp-shim", root, "LocalSFTPServer", home=', home="/home"')
    (root / "home").mkdir()
    return path


def _openssh(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"OpenSSH {tool} not installed")
    return path


def _sftp_batch(sftp: str, shim: Path, batch: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run an ``sftp -b -`` batch against the ``sftp -D`` program ``shim``."""
    return subprocess.run(
        [sftp, "-q", "-D", str(shim), "-b", "-"],
        input=batch,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


@pytest.mark.interop
def test_openssh_sftp_batch(shim: Path, root: Path, tmp_path: Path) -> None:
    sftp = _openssh("sftp")
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    batch = f"""\
pwd
put {local} up.bin
rename up.bin moved.bin
ln -s moved.bin link
mkdir d
chmod 600 moved.bin
df
ls -l
get moved.bin {tmp_path}/back.bin
rmdir d
"""
    result = _sftp_batch(sftp, shim, batch)
    assert result.returncode == 0, result.stderr
    assert "Remote working directory: /home" in result.stdout
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
    assert (root / "home" / "moved.bin").read_bytes() == local.read_bytes()
    assert stat.S_IMODE((root / "home" / "moved.bin").stat().st_mode) == 0o600
    assert os.readlink(root / "home" / "link") == "moved.bin"
    assert not (root / "home" / "d").exists()


@pytest.mark.interop
@pytest.mark.parametrize("concurrency", ["8", "0"])
def test_openssh_sftp_through_a_paramiko_style_interface(
    stub_shim: Path, root: Path, tmp_path: Path, concurrency: str
) -> None:
    """OpenSSH's sftp (255 KiB requests, 64 in flight) through the default
    SFTPHandle.read/write over os.fdopen files, in lane and inline mode."""
    sftp = _openssh("sftp")
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(5 * 1024 * 1024 + 4097))
    back, resumed = tmp_path / "back.bin", tmp_path / "resumed.bin"
    resumed.write_bytes(local.read_bytes()[: 1024 * 1024 + 3])  # get -a reads from there on
    batch = f"put {local} up.bin\nget up.bin {back}\nget -a up.bin {resumed}\n"
    result = _sftp_batch(sftp, stub_shim, batch, STUB_CONCURRENCY=concurrency)
    assert result.returncode == 0, result.stderr
    assert (root / "up.bin").read_bytes() == local.read_bytes()
    assert back.read_bytes() == local.read_bytes()
    assert resumed.read_bytes() == local.read_bytes()


@pytest.mark.interop
def test_openssh_scp_sftp_mode(shim: Path, root: Path, tmp_path: Path) -> None:
    scp = _openssh("scp")
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("f")

    def scp_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [scp, "-q", "-D", str(shim), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    result = scp_run("-r", str(src), "host:~/copied")
    assert result.returncode == 0, result.stderr
    assert (root / "home" / "copied" / "sub" / "f.txt").read_text() == "f"
    back = tmp_path / "back.txt"
    result = scp_run("host:~/copied/sub/f.txt", str(back))
    assert result.returncode == 0, result.stderr
    assert back.read_text() == "f"
    result = scp_run("host:/../../etc/passwd", str(tmp_path / "pw"))
    assert result.returncode != 0
    assert not (tmp_path / "pw").exists()


def _names(blob: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(blob):
        (n,) = struct.unpack_from(">I", blob, pos)
        out.append(blob[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def test_users_groups_by_id(local: Session) -> None:
    """OpenSSH PROTOCOL 4.12: a name per id in request order, '' for unknown ids."""
    import grp
    import pwd

    c = local.client
    uid, gid = os.getuid(), os.getgid()
    unknown = 0xFFFFFFF0
    reply = c.ext(
        "users-groups-by-id@openssh.com",
        struct.pack(">3I", uid, unknown, uid),
        struct.pack(">I", gid),
    )
    assert reply.type == p.CMD_EXTENDED_REPLY
    (ulen,) = struct.unpack_from(">I", reply.payload)
    users = _names(reply.payload[4 : 4 + ulen])
    groups = _names(reply.payload[8 + ulen :])
    me = pwd.getpwuid(uid).pw_name.encode()
    assert users == [me, b"", me]
    assert groups == [grp.getgrgid(gid).gr_name.encode()]
    assert c.ext("users-groups-by-id@openssh.com", b"\x00\x01", b"").code == p.SFTP_BAD_MESSAGE
    too_many = struct.pack(">1025I", *([uid] * 1025))
    assert c.ext("users-groups-by-id@openssh.com", too_many, b"").code == p.SFTP_FAILURE
    assert c.ext("users-groups-by-id@openssh.com", b"", b"").payload == b"\x00" * 8
