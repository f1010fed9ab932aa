"""Legacy scp (rcp protocol) handler driven by a hand-written peer.

The peer is scripted: its bytes are known in advance (the rcp protocol is
strictly request/ack), ``recv`` hands them out in small odd-sized pieces and
``sendall`` records what the server said. One test at the end runs the real
OpenSSH ``scp -O`` with a stand-in for ssh that serves ScpHandler on stdio.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from geossh.sftp.scp import MAX_LINE, MAX_WARNINGS, ScpHandler, _Peer, parse_scp_command


class ScriptedChannel:
    """Plays the client: fixed input bytes, recorded output."""

    def __init__(self, script: bytes, piece: int = 7777) -> None:
        self.script = script
        self.piece = piece
        self.output = bytearray()
        self.exit_status: int | None = None
        self.closed = False

    def recv(self, n: int) -> bytes:
        chunk = self.script[: min(n, self.piece)]
        self.script = self.script[len(chunk) :]
        return chunk

    def sendall(self, data: bytes) -> None:
        assert not self.closed
        self.output += data

    def send_exit_status(self, status: int) -> None:
        self.exit_status = status

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (path / "hello.txt").write_bytes(b"hello world")
    (path / "sub").mkdir()
    (path / "sub" / "a.txt").write_bytes(b"aaa")
    (path / "sub" / "b.txt").write_bytes(b"")
    return path


def run(root: Path, command: str, script: bytes, **kwargs: object) -> ScriptedChannel:
    channel = ScriptedChannel(script)
    status = ScpHandler(root, **kwargs).run(channel, command.encode())  # type: ignore[arg-type]
    assert status == channel.exit_status
    assert channel.closed
    return channel


# -- command lines ------------------------------------------------------------------------------


def test_parse_commands() -> None:
    opts = parse_scp_command(b"scp -v -r -p -d -t -- '-odd name'")
    assert (opts.sink, opts.recursive, opts.preserve, opts.target_dir) == (True, True, True, True)
    assert opts.paths == ["-odd name"]
    opts = parse_scp_command("/usr/bin/scp -rf 'a b' c")
    assert (opts.sink, opts.recursive, opts.paths) == (False, True, ["a b", "c"])
    for bad in [
        "ls -t x",
        "scp",
        "scp -t",
        "scp -t a b",
        "scp -x -t a",
        "scp -t -f a",
        "scp -t 'x",
    ]:
        with pytest.raises(ValueError):
            parse_scp_command(bad)
    assert ScpHandler.is_scp_command(b"scp -t .")
    assert not ScpHandler.is_scp_command(b"rm -rf /")


def test_bad_command_reports_and_exits_1(root: Path) -> None:
    channel = run(root, "scp -z x", b"")
    assert channel.exit_status == 1
    assert channel.output.startswith(b"\x01scp: ")
    channel = run(root / "missing", "scp -t x", b"")
    assert channel.exit_status == 1


# -- upload (scp -t) ------------------------------------------------------------------------------


def test_upload_single_file_to_a_new_name(root: Path) -> None:
    channel = run(root, "scp -t /dest.txt", b"C0644 5 ignored\nhello\x00")
    assert channel.output == b"\x00\x00\x00"
    assert channel.exit_status == 0
    assert (root / "dest.txt").read_bytes() == b"hello"


def test_upload_into_directory_with_times_and_mode(root: Path) -> None:
    script = b"T1000000000 0 1000000001 0\nC0640 3 f.bin\nabc\x00"
    channel = run(root, "scp -p -t /sub", script)
    assert channel.output == b"\x00" * 4
    st = (root / "sub" / "f.bin").stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_mtime, st.st_atime) == (1000000000, 1000000001)


def test_upload_overwrites_and_truncates(root: Path) -> None:
    run(root, "scp -t /hello.txt", b"C0644 2 x\nhi\x00")
    assert (root / "hello.txt").read_bytes() == b"hi"


def test_recursive_upload(root: Path) -> None:
    script = b"D0755 0 tree\nC0644 3 a\nabc\x00D0500 0 ro\nC0600 0 empty\n\x00E\nE\n"
    channel = run(root, "scp -r -t /", script)
    assert channel.exit_status == 0, channel.output
    assert channel.output == b"\x00" * 9
    assert (root / "tree" / "a").read_bytes() == b"abc"
    assert (root / "tree" / "ro" / "empty").read_bytes() == b""
    assert stat.S_IMODE((root / "tree" / "ro").stat().st_mode) == 0o500 & ~_umask()
    os.chmod(root / "tree" / "ro", 0o700)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_large_upload_in_odd_pieces(root: Path) -> None:
    data = os.urandom(1 << 20)
    channel = ScriptedChannel(b"C0644 %d big\n" % len(data) + data + b"\x00", piece=1000)
    assert ScpHandler(root).run(channel, b"scp -t /") == 0
    assert (root / "big").read_bytes() == data


@pytest.mark.parametrize("name", [b"../evil", b"..", b".", b"a/b", b"/abs", b"x\x00y", b""])
def test_upload_rejects_path_names(root: Path, name: bytes) -> None:
    channel = run(root, "scp -r -t /sub", b"C0644 1 " + name + b"\nx\x00")
    assert channel.exit_status == 1
    assert channel.output.startswith(b"\x00\x01scp: ")
    assert sorted(os.listdir(root / "sub")) == ["a.txt", "b.txt"]
    assert sorted(os.listdir(root.parent)) == ["root", "secret.txt"]


@pytest.mark.parametrize(
    "record",
    ids=lambda record: repr(record[:24]) + f"+{len(record)}",
    argvalues=[
        b"C0644 123456789012345678901 big\n",  # 21 digits
        b"C0644 99999999999999999999 big\n",  # > 2**63
        b"C0644 abc name\n",
        b"C9999 1 name\n",
        b"C644 1 name\n",
        b"X0644 1 name\n",
        b"T1 2 3\n",
        b"T1 2000000 3 0\n",
        b"\n",
        b"E\n",  # E at the top level
        b"C0644 1 " + b"n" * (MAX_LINE + 10) + b"\n",
        b"C0644 1 " + b"n" * (MAX_LINE + 10),  # no newline at all
    ],
)
def test_upload_rejects_bad_records(root: Path, record: bytes) -> None:
    channel = run(root, "scp -t /", record + b"x\x00")
    assert channel.exit_status == 1
    assert channel.output[:1] == b"\x00"
    assert b"\x01scp: " in channel.output
    assert sorted(os.listdir(root)) == ["hello.txt", "sub"]


def test_upload_directory_requires_r(root: Path) -> None:
    channel = run(root, "scp -t /", b"D0755 0 d\nE\n")
    assert channel.exit_status == 1 and b"without -r" in channel.output


def test_upload_target_traversal_stays_inside(root: Path) -> None:
    run(root, "scp -t ../../outside.txt", b"C0644 1 x\nz\x00")
    assert (root / "outside.txt").read_bytes() == b"z"
    assert not (root.parent / "outside.txt").exists()
    os.symlink(root.parent / "secret.txt", root / "evil")
    channel = run(root, "scp -t /evil", b"C0644 1 x\nz\x00")
    assert channel.exit_status == 1  # the link is not followed out of the root
    assert (root.parent / "secret.txt").read_text() == "secret"


def test_upload_open_error_is_reported_and_the_session_goes_on(root: Path) -> None:
    script = b"C0644 1 sub\n" + b"C0644 2 ok\nok\x00"  # no data follows a refused C
    channel = run(root, "scp -t /", script)
    assert channel.output.startswith(b"\x00\x01scp: /sub: Is a directory\n")
    assert channel.output.endswith(b"\x00\x00")
    assert channel.exit_status == 1
    assert (root / "ok").read_bytes() == b"ok"


def test_upload_peer_errors(root: Path) -> None:
    channel = run(root, "scp -t /", b"\x01scp: local warning\nC0644 1 f\nx\x00")
    assert channel.exit_status == 1 and (root / "f").read_bytes() == b"x"
    channel = run(root, "scp -t /", b"\x02scp: fatal\nC0644 1 g\nx\x00")
    assert channel.exit_status == 1 and not (root / "g").exists()


def test_upload_requires_directory_with_d(root: Path) -> None:
    channel = run(root, "scp -d -t /hello.txt", b"C0644 1 f\nx\x00")
    assert channel.exit_status == 1 and b"Not a directory" in channel.output


def test_upload_refused_when_readonly(root: Path) -> None:
    channel = run(root, "scp -t /", b"C0644 1 f\nx\x00", readonly=True)
    assert channel.exit_status == 1 and channel.output.startswith(b"\x01scp: read-only")
    assert not (root / "f").exists()


def test_upload_truncated_data_is_an_error(root: Path) -> None:
    channel = run(root, "scp -t /", b"C0644 10 f\nabc")
    assert channel.exit_status == 1


# -- download (scp -f) ----------------------------------------------------------------------------


def test_download_file(root: Path) -> None:
    channel = run(root, "scp -f /hello.txt", b"\x00" * 3)
    assert channel.output == b"C0644 11 hello.txt\nhello world\x00".replace(
        b"0644", b"%04o" % stat.S_IMODE((root / "hello.txt").stat().st_mode)
    )
    assert channel.exit_status == 0


def test_download_preserve_sends_times(root: Path) -> None:
    os.utime(root / "hello.txt", (1000000001, 1000000000))
    os.chmod(root / "hello.txt", 0o600)
    channel = run(root, "scp -p -f hello.txt", b"\x00" * 4)
    assert channel.output == b"T1000000000 0 1000000001 0\nC0600 11 hello.txt\nhello world\x00"


def test_download_recursive_and_glob(root: Path) -> None:
    os.chmod(root / "sub", 0o755)
    for f in ("a.txt", "b.txt"):
        os.chmod(root / "sub" / f, 0o644)
    channel = run(root, "scp -r -f /sub", b"\x00" * 7)
    assert channel.output == (b"D0755 0 sub\nC0644 3 a.txt\naaa\x00C0644 0 b.txt\n\x00E\n")
    channel = run(root, "scp -f '/sub/*.txt'", b"\x00" * 5)
    assert channel.output == b"C0644 3 a.txt\naaa\x00C0644 0 b.txt\n\x00"
    assert channel.exit_status == 0


def test_download_errors(root: Path) -> None:
    channel = run(root, "scp -f /nope /sub /hello.txt", b"\x00" * 3)
    out = bytes(channel.output)
    assert out.startswith(b"\x01scp: /nope: No such file or directory\n")
    assert b"\x01scp: /sub: not a regular file\n" in out
    assert out.endswith(b"hello world\x00")
    assert channel.exit_status == 1
    channel = run(root, "scp -f '/zz*'", b"\x00")
    assert channel.output == b"\x01scp: /zz*: No such file or directory\n"


def test_download_cannot_escape(root: Path) -> None:
    os.symlink(root.parent / "secret.txt", root / "evil")
    os.symlink("../..", root / "sub" / "up")
    for path in ("../secret.txt", "/../../secret.txt", "/evil", "/sub/up/secret.txt"):
        channel = run(root, f"scp -f {path}", b"\x00" * 3)
        assert channel.exit_status == 1
        assert b"secret" not in channel.output.replace(b"secret.txt", b"")


def test_download_skips_a_file_the_peer_refuses(root: Path) -> None:
    channel = run(root, "scp -f /hello.txt /sub/a.txt", b"\x00\x01scp: no\n\x00\x00")
    assert channel.output.endswith(
        b"C0644 3 a.txt\naaa\x00".replace(b"0644", _mode(root / "sub/a.txt"))
    )
    assert b"hello world" not in channel.output
    assert channel.exit_status == 1


def _mode(path: Path) -> bytes:
    return b"%04o" % stat.S_IMODE(path.stat().st_mode)


def test_download_directory_loop_terminates(root: Path) -> None:
    os.symlink("..", root / "sub" / "loop")
    channel = run(root, "scp -r -f /sub", b"\x00" * 64)
    assert b"directory loop" in channel.output
    assert channel.exit_status == 1


def test_download_lost_connection(root: Path) -> None:
    channel = run(root, "scp -f /hello.txt", b"\x00")  # never acknowledges the C record
    assert channel.exit_status == 1


# -- the real OpenSSH client ------------------------------------------------------------

SHIM = """\
#!{python}
import os, sys
sys.path.insert(0, {repo!r})
from geossh.sftp.scp import MAX_LINE, MAX_WARNINGS, ScpHandler, _Peer, parse_scp_command

class Stdio:
    def recv(self, n):
        return os.read(0, n)
    def sendall(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]
    def send_exit_status(self, status):
        self.status = status
    def close(self):
        pass

sys.exit(ScpHandler({root!r}).run(Stdio(), sys.argv[-1].encode()))
"""


@pytest.mark.interop
def test_openssh_scp_legacy_mode(root: Path, tmp_path: Path) -> None:
    scp = shutil.which("scp")
    if scp is None:
        pytest.skip("OpenSSH scp not installed")
    shim = tmp_path / "fake-ssh"
    repo = str(Path(__file__).resolve().parents[2])
    shim.write_text(SHIM.format(python=sys.executable, repo=repo, root=str(root)))
    shim.chmod(0o755)
    local = tmp_path / "local"
    (local / "tree" / "deep").mkdir(parents=True)
    (local / "tree" / "deep" / "f.bin").write_bytes(os.urandom(300_000))
    (local / "tree" / "g.txt").write_text("g")

    def scp_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [scp, "-O", "-q", "-S", str(shim), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    result = scp_run("-r", "-p", str(local / "tree"), "host:/up")
    assert result.returncode == 0, result.stderr
    assert (root / "up" / "deep" / "f.bin").read_bytes() == (
        local / "tree" / "deep" / "f.bin"
    ).read_bytes()
    back = tmp_path / "back"
    back.mkdir()
    result = scp_run("-r", "host:/up", "host:hello.txt", str(back))
    assert result.returncode == 0, result.stderr
    assert (back / "up" / "g.txt").read_text() == "g"
    assert (back / "hello.txt").read_text() == "hello world"
    result = scp_run("host:../secret.txt", str(back))
    assert result.returncode != 0 and "No such file" in result.stderr
    assert not (back / "secret.txt").exists()


# -- hostile peers: bounded work, bounded warnings, bounded times --------------------------------


def test_huge_times_are_refused_cleanly(root: Path) -> None:
    for big in (b"9223372036854775807", b"9223372036854775000"):  # floats round to 2**63
        channel = run(root, "scp -p -t /", b"T" + big + b" 0 " + big + b" 0\nC0644 1 f\nx\x00")
        assert channel.exit_status == 1
        assert channel.output == b"\x00\x01scp: protocol error: times out of range\n"
        assert not (root / "f").exists()
    channel = run(root, "scp -p -r -t /", b"T%d 0 1 0\nD0755 0 d\nE\n" % (1 << 62))
    assert channel.exit_status == 0, channel.output  # the largest accepted time is usable


def test_warning_records_are_capped(root: Path) -> None:
    ok = run(root, "scp -t /", b"\x01scp: w\n" * MAX_WARNINGS + b"C0644 1 f\nx\x00")
    assert ok.output == b"\x00\x00\x00" and (root / "f").read_bytes() == b"x"
    channel = run(root, "scp -t /", b"\x01scp: w\n" * (MAX_WARNINGS + 1) + b"C0644 1 g\nx\x00")
    assert channel.exit_status == 1
    assert channel.output == b"\x00\x01scp: protocol error: too many warnings\n"
    assert not (root / "g").exists()


def test_download_warnings_count_too(root: Path) -> None:
    paths = " ".join(["/hello.txt"] * (MAX_WARNINGS + 5))
    channel = run(root, f"scp -f {paths}", b"\x00" + b"\x01scp: no\n" * (MAX_WARNINGS + 5))
    assert channel.exit_status == 1
    assert channel.output.endswith(b"\x01scp: protocol error: too many warnings\n")
    assert channel.output.count(b"C0") == MAX_WARNINGS + 1


def test_peer_reads_records_without_rescanning() -> None:
    """Records are taken from one buffer by offset; each byte is scanned once."""
    records = b"T1 0 1 0\n" * 1000
    peer = _Peer(ScriptedChannel(records, piece=len(records)))
    assert peer.read_byte() == ord("T") and peer.read_line() == b"1 0 1 0"
    buf = peer.buf
    for _ in range(999):
        assert peer.read_byte() == ord("T") and peer.read_line() == b"1 0 1 0"
    assert peer.buf is buf and peer.pos == len(records)  # consumed in place, never copied
    assert peer.read_byte() is None


def test_read_line_bound_counts_only_the_record(root: Path) -> None:
    """MAX_LINE bounds one record, whatever else is already buffered after it."""
    name = b"n" * (MAX_LINE - 9)
    record = b"C0644 0 " + name  # MAX_LINE - 1 bytes
    script = (record + b"\n") * 3  # no data follows a refused C record
    channel = ScriptedChannel(script, piece=len(script))
    assert ScpHandler(root).run(channel, b"scp -t /") == 1  # name too long for the filesystem
    assert channel.output.count(b"\x01scp: /nnnn") == 3
    assert b"protocol error" not in channel.output


def test_buffered_records_yield_to_other_greenlets(root: Path) -> None:
    """A buffer full of records is served in slices: another greenlet runs in between."""
    import gevent

    script = b"T1 0 1 0\n" * 60_000 + b"C0644 1 f\nx\x00"
    channel = ScriptedChannel(script, piece=len(script))
    seen: list[int] = []

    def probe() -> None:
        for _ in range(1_000_000):  # bounded; ends with the transfer
            seen.append(len(channel.output))
            if channel.closed:
                return
            gevent.sleep(0)

    watcher = gevent.spawn(probe)
    worker = gevent.spawn(ScpHandler(root).run, channel, b"scp -p -t /")
    gevent.joinall([worker, watcher], timeout=120)
    assert worker.value == 0
    total = len(channel.output)
    assert any(0 < n < total for n in seen), "the probe never ran during the transfer"
