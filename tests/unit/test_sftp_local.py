"""LocalSFTPServer and RootFS: operations, permissions, and confinement to the root."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from geossh.sftp import protocol as p
from geossh.sftp.attributes import SFTPAttributes
from geossh.sftp.local import LocalSFTPHandle, LocalSFTPServer, errno_status
from geossh.sftp.rootfs import RootFS
from geossh.sftp.server import SFTPServer

pytestmark = pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="POSIX only")

RDWR_CREATE = os.O_RDWR | os.O_CREAT


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/root (served) beside tmp/secret.txt and tmp/outside/ (must stay unreachable)."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("top secret")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "file.txt").write_text("outside")
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_text("inner")
    (root / "hello.txt").write_text("hello world")
    return root


@pytest.fixture
def si(tree: Path) -> LocalSFTPServer:
    server = LocalSFTPServer(None, tree)
    yield server
    server.session_ended()


def attrs(**fields: int) -> SFTPAttributes:
    raw = p.encode_attrs(
        fields.get("size"),
        fields.get("uid"),
        fields.get("gid"),
        fields.get("perm"),
        fields.get("atime"),
        fields.get("mtime"),
    )
    return SFTPAttributes._from_raw(p.decode_attrs(raw, 0, len(raw))[0])


def read_all(handle: LocalSFTPHandle) -> bytes:
    out = b""
    while True:
        data = handle.read(len(out), 65536)
        assert isinstance(data, bytes)
        if not data:
            return out
        out += data


# -- ordinary operations ----------------------------------------------------------------------


def test_open_read_write_stat(si: LocalSFTPServer, tree: Path) -> None:
    h = si.open("/new.bin", RDWR_CREATE | os.O_EXCL, attrs(perm=0o600))
    assert isinstance(h, LocalSFTPHandle)
    assert h.write(0, b"abc") == p.SFTP_OK
    assert h.write(10, memoryview(b"xyz")) == p.SFTP_OK
    assert h.read(0, 100) == b"abc" + b"\0" * 7 + b"xyz"
    assert h.read(100, 10) == b""
    st = h.stat()
    assert isinstance(st, SFTPAttributes) and st.st_size == 13
    assert stat.S_IMODE((tree / "new.bin").stat().st_mode) == 0o600 & ~_umask()
    h.close()
    h.close()  # idempotent
    assert si.open("/new.bin", RDWR_CREATE | os.O_EXCL, attrs()) == p.SFTP_FAILURE


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_append_mode(si: LocalSFTPServer, tree: Path) -> None:
    h = si.open("hello.txt", os.O_WRONLY | os.O_APPEND, attrs())
    assert isinstance(h, LocalSFTPHandle)
    assert h.write(0, b"!") == p.SFTP_OK
    h.close()
    assert (tree / "hello.txt").read_text() == "hello world!"


def test_list_folder_and_stat(si: LocalSFTPServer) -> None:
    entries = si.list_folder("/")
    assert isinstance(entries, list)
    names = {a.filename: a for a in entries}
    assert set(names) == {"sub", "hello.txt"}
    assert stat.S_ISDIR(names["sub"].st_mode or 0)
    assert si.list_folder("/nope") == p.SFTP_NO_SUCH_FILE
    assert si.list_folder("/hello.txt") == p.SFTP_NO_SUCH_FILE  # ENOTDIR
    st = si.stat("/sub/inner.txt")
    assert isinstance(st, SFTPAttributes) and st.st_size == 5
    assert si.stat("/missing") == p.SFTP_NO_SUCH_FILE


def test_mkdir_rmdir_remove_rename(si: LocalSFTPServer, tree: Path) -> None:
    assert si.mkdir("/d", attrs(perm=0o700)) == p.SFTP_OK
    assert stat.S_IMODE((tree / "d").stat().st_mode) == 0o700 & ~_umask()
    assert si.mkdir("/d", attrs()) == p.SFTP_FAILURE
    assert si.rename("/hello.txt", "/d/h.txt") == p.SFTP_OK
    (tree / "other.txt").write_text("other")
    assert si.rename("/other.txt", "/d/h.txt") == p.SFTP_FAILURE  # no overwrite
    assert si.posix_rename("/other.txt", "/d/h.txt") == p.SFTP_OK
    assert (tree / "d" / "h.txt").read_text() == "other"
    assert si.rmdir("/d") == p.SFTP_FAILURE  # not empty
    assert si.remove("/d/h.txt") == p.SFTP_OK
    assert si.rmdir("/d") == p.SFTP_OK
    assert si.remove("/sub") != p.SFTP_OK
    assert si.rmdir("/") != p.SFTP_OK
    assert si.remove("/") != p.SFTP_OK


def test_setstat_size_keeps_content(si: LocalSFTPServer, tree: Path) -> None:
    """paramiko's set_file_attr empties the file first; geossh truncates."""
    assert si.chattr("/hello.txt", attrs(size=5)) == p.SFTP_OK
    assert (tree / "hello.txt").read_text() == "hello"
    target = tree / "sub" / "inner.txt"
    SFTPServer.set_file_attr(str(target), attrs(size=3, perm=0o640, atime=1000, mtime=2000))
    assert target.read_text() == "inn"
    st = target.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime == 2000


def test_setstat_and_fsetstat(si: LocalSFTPServer, tree: Path) -> None:
    assert si.chattr("/hello.txt", attrs(perm=0o6755, atime=10, mtime=20)) == p.SFTP_OK
    st = (tree / "hello.txt").stat()
    assert stat.S_IMODE(st.st_mode) == 0o755  # setuid/setgid are never set
    assert (st.st_atime, st.st_mtime) == (10, 20)
    h = si.open("/hello.txt", os.O_RDWR, attrs())
    assert isinstance(h, LocalSFTPHandle)
    assert h.chattr(attrs(size=2, perm=0o600, mtime=5, atime=5)) == p.SFTP_OK
    h.close()
    assert (tree / "hello.txt").read_text() == "he"
    assert stat.S_IMODE((tree / "hello.txt").stat().st_mode) == 0o600


def test_symlinks_and_lsetstat(si: LocalSFTPServer, tree: Path) -> None:
    assert si.symlink("hello.txt", "/link") == p.SFTP_OK
    assert si.readlink("/link") == "hello.txt"
    lst = si.lstat("/link")
    assert isinstance(lst, SFTPAttributes) and stat.S_ISLNK(lst.st_mode or 0)
    st = si.stat("/link")
    assert isinstance(st, SFTPAttributes) and st.st_size == 11
    assert si.lsetstat("/link", attrs(size=1)) == p.SFTP_BAD_MESSAGE
    assert si.lsetstat("/link", attrs(perm=0o600)) == p.SFTP_OP_UNSUPPORTED
    assert si.lsetstat("/link", attrs(atime=1, mtime=2)) == p.SFTP_OK
    assert os.lstat(tree / "link").st_mtime == 2
    assert (tree / "hello.txt").stat().st_mtime != 2
    assert si.readlink("/hello.txt") == p.SFTP_BAD_MESSAGE  # EINVAL: not a link


def test_hardlink_statvfs_fsync_copy_data(si: LocalSFTPServer, tree: Path) -> None:
    assert si.hardlink("/hello.txt", "/hard.txt") == p.SFTP_OK
    assert (tree / "hard.txt").stat().st_nlink == 2
    vfs = si.statvfs("/")
    assert not isinstance(vfs, int) and vfs.f_bsize > 0
    src = si.open("/hello.txt", os.O_RDONLY, attrs())
    dst = si.open("/copy.txt", os.O_WRONLY | os.O_CREAT, attrs())
    assert isinstance(src, LocalSFTPHandle) and isinstance(dst, LocalSFTPHandle)
    assert not isinstance(si.fstatvfs(src), int)
    assert si.fsync(dst) == p.SFTP_OK
    assert si.copy_data(src, 6, 0, dst, 0) == p.SFTP_OK
    assert si.copy_data(src, 0, 100, dst, 5) == p.SFTP_EOF  # length past EOF
    assert si.copy_data(src, 0, 5, src, 20) == p.SFTP_FAILURE  # same file
    src.close()
    dst.close()
    assert (tree / "copy.txt").read_text() == "worldhello world"


def test_canonicalize_home_and_expand(tree: Path) -> None:
    (tree / "home" / "u").mkdir(parents=True)
    si = LocalSFTPServer(None, tree, home="/home/u")
    try:
        assert si.canonicalize(".") == "/home/u"
        assert si.canonicalize("") == "/home/u"
        assert si.canonicalize("..") == "/home"
        assert si.canonicalize("../../../..") == "/"
        assert si.canonicalize("/sub/./../sub/") == "/sub"
        assert si.canonicalize("/sub/x/..") == p.SFTP_NO_SUCH_FILE  # like OpenSSH
        assert si.canonicalize("/sub/newfile") == "/sub/newfile"  # last part may not exist
        assert si.canonicalize("/nodir/newfile") == p.SFTP_NO_SUCH_FILE
        assert si.expand_path("~") == "/home/u"
        assert si.expand_path("~/x") == "/home/u/x"
        assert si.expand_path("~root/x") == p.SFTP_NO_SUCH_FILE
        assert si.expand_path("/sub") == "/sub"
        h = si.open("rel.txt", RDWR_CREATE, attrs())
        assert isinstance(h, LocalSFTPHandle) and h.filename == "/home/u/rel.txt"
        h.close()
        assert (tree / "home" / "u" / "rel.txt").exists()
    finally:
        si.session_ended()


def test_readonly(tree: Path) -> None:
    si = LocalSFTPServer(None, tree, readonly=True)
    try:
        assert si.open("/hello.txt", os.O_WRONLY, attrs()) == p.SFTP_PERMISSION_DENIED
        assert si.mkdir("/x", attrs()) == p.SFTP_PERMISSION_DENIED
        assert si.remove("/hello.txt") == p.SFTP_PERMISSION_DENIED
        assert si.chattr("/hello.txt", attrs(perm=0o777)) == p.SFTP_PERMISSION_DENIED
        h = si.open("/hello.txt", os.O_RDONLY, attrs())
        assert isinstance(h, LocalSFTPHandle)
        assert read_all(h) == b"hello world"
        h.close()
    finally:
        si.session_ended()


def test_readonly_refuses_fsetstat_on_a_read_handle(tree: Path) -> None:
    """Review 16 item 3: a handle opened for reading must not change mode, owner or times."""
    si = LocalSFTPServer(None, tree, readonly=True)
    before = (tree / "hello.txt").stat()
    h = si.open("/hello.txt", os.O_RDONLY, attrs())
    assert isinstance(h, LocalSFTPHandle)
    try:
        for change in ({"perm": 0o777}, {"atime": 1, "mtime": 2}, {"size": 0},
                       {"uid": os.getuid(), "gid": os.getgid()}):  # fmt: skip
            assert h.chattr(attrs(**change)) == p.SFTP_PERMISSION_DENIED, change
    finally:
        h.close()
        si.session_ended()
    after = (tree / "hello.txt").stat()
    assert (after.st_mode, after.st_mtime, after.st_size) == (
        before.st_mode, before.st_mtime, before.st_size)  # fmt: skip


def test_bad_input_maps_to_codes(si: LocalSFTPServer) -> None:
    assert si.stat("/a\x00b") == p.SFTP_BAD_MESSAGE
    assert si.stat("/" + "a/" * 5000) == p.SFTP_BAD_MESSAGE
    assert si.stat("x" * 20000) == p.SFTP_BAD_MESSAGE
    h = si.open("/hello.txt", os.O_RDONLY, attrs())
    assert isinstance(h, LocalSFTPHandle)
    assert h.read(2**63 + 5, 10) == p.SFTP_BAD_MESSAGE
    assert h.write(0, b"x") == p.SFTP_NO_SUCH_FILE  # EBADF: opened read-only
    h.close()
    assert errno_status(OSError(errno.EACCES, "x")) == p.SFTP_PERMISSION_DENIED
    assert errno_status(RuntimeError()) == p.SFTP_FAILURE


def test_special_files_are_refused_without_blocking(si: LocalSFTPServer, tree: Path) -> None:
    os.mkfifo(tree / "fifo")
    assert si.open("/fifo", os.O_RDONLY, attrs()) == p.SFTP_PERMISSION_DENIED
    assert si.open("/fifo", os.O_WRONLY, attrs()) == p.SFTP_PERMISSION_DENIED
    assert si.open("/sub", os.O_RDONLY, attrs()) == p.SFTP_FAILURE  # EISDIR


def test_non_utf8_names(si: LocalSFTPServer, tree: Path) -> None:
    raw = os.fsencode(str(tree)) + b"/caf\xe9"
    with open(raw, "wb") as f:
        f.write(b"x")
    name = next(a.filename for a in si.list_folder("/") if a.filename.startswith("caf"))  # type: ignore[union-attr]
    assert p.encode_path(name) == b"caf\xe9"
    st = si.stat("/" + name)
    assert isinstance(st, SFTPAttributes) and st.st_size == 1


# -- confinement -------------------------------------------------------------------------------

ESCAPES = [
    "/../secret.txt",
    "../secret.txt",
    "../../../../../secret.txt",
    "/sub/../../secret.txt",
    "/./../outside/file.txt",
    "//..//secret.txt",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_dotdot_cannot_escape(si: LocalSFTPServer, tree: Path, path: str) -> None:
    assert si.stat(path) == p.SFTP_NO_SUCH_FILE
    assert si.open(path, os.O_RDONLY, attrs()) == p.SFTP_NO_SUCH_FILE
    h = si.open(path, RDWR_CREATE, attrs())
    if isinstance(h, LocalSFTPHandle):  # created inside the root, never outside
        assert h.filename.count("/") <= 2 and not h.filename.startswith("/..")
        h.close()
    assert (tree.parent / "secret.txt").read_text() == "top secret"
    assert (tree.parent / "outside" / "file.txt").read_text() == "outside"


@pytest.fixture
def evil_links(tree: Path) -> Path:
    """Symlinks planted inside the root (as an admin or another program could)."""
    outside = tree.parent
    os.symlink(outside / "secret.txt", tree / "abs_file")
    os.symlink("../secret.txt", tree / "rel_file")
    os.symlink(outside / "outside", tree / "abs_dir")
    os.symlink("../../outside", tree / "sub" / "rel_dir")
    os.symlink(outside / "nowhere.txt", tree / "dangling")
    os.symlink("loop2", tree / "loop1")
    os.symlink("loop1", tree / "loop2")
    return tree


@pytest.mark.parametrize(
    "path", ["/abs_file", "/rel_file", "/abs_dir/file.txt", "/sub/rel_dir/file.txt"]
)
def test_symlinks_pointing_outside_are_not_followed_out(
    si: LocalSFTPServer, evil_links: Path, path: str
) -> None:
    assert si.stat(path) == p.SFTP_NO_SUCH_FILE
    assert si.open(path, os.O_RDONLY, attrs()) == p.SFTP_NO_SUCH_FILE
    assert si.open(path, os.O_WRONLY | os.O_TRUNC, attrs()) == p.SFTP_NO_SUCH_FILE
    assert si.chattr(path, attrs(size=0)) == p.SFTP_NO_SUCH_FILE
    assert si.chattr(path, attrs(perm=0o777)) == p.SFTP_NO_SUCH_FILE
    outside = evil_links.parent
    assert (outside / "secret.txt").read_text() == "top secret"
    assert (outside / "outside" / "file.txt").read_text() == "outside"
    assert stat.S_IMODE((outside / "secret.txt").stat().st_mode) != 0o777


def test_symlinked_dirs_outside_cannot_be_listed_or_written(
    si: LocalSFTPServer, evil_links: Path
) -> None:
    assert si.list_folder("/abs_dir") == p.SFTP_NO_SUCH_FILE
    assert si.list_folder("/sub/rel_dir") == p.SFTP_NO_SUCH_FILE
    assert si.mkdir("/abs_dir/new", attrs()) == p.SFTP_NO_SUCH_FILE
    assert si.open("/abs_dir/new.txt", RDWR_CREATE, attrs()) == p.SFTP_NO_SUCH_FILE
    assert si.open("/dangling", RDWR_CREATE, attrs()) == p.SFTP_NO_SUCH_FILE
    assert si.hardlink("/abs_file", "/hl") == p.SFTP_OK  # links the symlink itself
    assert si.stat("/hl") == p.SFTP_NO_SUCH_FILE
    assert si.rename("/abs_dir/file.txt", "/stolen") == p.SFTP_NO_SUCH_FILE
    assert si.stat("/loop1") == p.SFTP_NO_SUCH_FILE  # ELOOP
    assert not (evil_links.parent / "nowhere.txt").exists()
    assert sorted(os.listdir(evil_links.parent / "outside")) == ["file.txt"]


def test_absolute_links_to_the_roots_real_path_work(si: LocalSFTPServer, tree: Path) -> None:
    os.symlink(tree / "sub", tree / "real_abs")
    st = si.stat("/real_abs/inner.txt")
    assert isinstance(st, SFTPAttributes) and st.st_size == 5
    assert si.readlink("/real_abs") == "/sub"
    assert si.canonicalize("/real_abs/inner.txt") == "/sub/inner.txt"


@pytest.mark.parametrize(
    ("target", "stored", "shown"),
    [  # "@" is the root's real path: only relative targets without ".." stay relative
        ("/etc/passwd", "@/etc/passwd", "/etc/passwd"),
        ("../../../../etc/passwd", "@/etc/passwd", "/etc/passwd"),
        ("inner.txt", "inner.txt", "inner.txt"),
        ("./x/./y", "./x/./y", "./x/./y"),
        ("/sub/inner.txt", "@/sub/inner.txt", "/sub/inner.txt"),
        ("/sub/../hello.txt", "@/hello.txt", "/hello.txt"),
        ("../hello.txt", "@/hello.txt", "/hello.txt"),
        ("/", "@", "/"),
        ("..", "@", "/"),
        ("@/sub/inner.txt", "@/sub/inner.txt", "/sub/inner.txt"),
    ],
)
def test_created_symlinks_stay_inside(
    si: LocalSFTPServer, tree: Path, target: str, stored: str, shown: str
) -> None:
    assert si.symlink(target.replace("@", str(tree)), "/sub/l") == p.SFTP_OK
    assert os.readlink(tree / "sub" / "l") == stored.replace("@", str(tree))
    assert si.readlink("/sub/l") == shown
    real = os.path.realpath(tree / "sub" / "l")
    assert real == str(tree) or real.startswith(str(tree) + os.sep)


def test_symlink_through_a_link_chain_stays_inside(si: LocalSFTPServer, tree: Path) -> None:
    assert si.symlink("/", "/sub/up") == p.SFTP_OK  # stored as ".."
    assert si.symlink("up/../..", "/sub/l2") == p.SFTP_OK
    real = os.path.realpath(tree / "sub" / "l2")
    assert real == str(tree) or real.startswith(str(tree) + os.sep)
    assert si.symlink("", "/sub/empty") == p.SFTP_NO_SUCH_FILE
    assert si.symlink("x", "/") == p.SFTP_FAILURE


def test_rootfs_rejects_non_directories(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        RootFS(tmp_path / "f")


def test_rootfs_resolve_closes_descriptors(tree: Path) -> None:
    fs = RootFS(tree)
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    for _ in range(50):
        fs.realpath("/sub/inner.txt")
        with pytest.raises(FileNotFoundError):
            fs.stat("/nope/x")
    after = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    fs.close()
    assert after == before


def test_open_files_are_capped_per_connection_and_per_process(tree: Path) -> None:
    """Review 16 item 6: past a cap OPEN fails with SFTP_FAILURE and a message; close frees."""
    from geossh.sftp.fdbudget import HandleBudget

    class Capped(LocalSFTPServer):
        max_handles_per_connection = 2
        max_handles_per_process = 3
        handle_budget = HandleBudget()

    first, second = Capped(object(), tree), Capped(object(), tree)
    held = [first.open("/hello.txt", os.O_RDONLY, attrs()) for _ in range(2)]
    assert all(isinstance(h, LocalSFTPHandle) for h in held)
    refused = first.open("/hello.txt", os.O_RDONLY, attrs())
    assert refused == p.SFTP_FAILURE and "connection" in refused.message  # type: ignore[union-attr]
    other = second.open("/hello.txt", os.O_RDONLY, attrs())
    assert isinstance(other, LocalSFTPHandle)
    refused = second.open("/hello.txt", os.O_RDONLY, attrs())
    assert refused == p.SFTP_FAILURE and "server" in refused.message  # type: ignore[union-attr]
    held[0].close()
    held[0].close()  # idempotent: the slot is given back once
    again = second.open("/hello.txt", os.O_RDONLY, attrs())
    assert isinstance(again, LocalSFTPHandle)
    assert Capped.handle_budget.total == 3
    for handle in (held[1], other, again):
        handle.close()
    assert Capped.handle_budget.total == 0
