"""Security review 16 item 2: symlinks stay inside the root wherever they go, and SETSTAT
never follows a symlink swapped in between the check and the change.

"Inside" is judged by the kernel (``os.path.realpath``), as a backup job, a web
server or the user's shell would follow the links, not by geossh's own resolution.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from geossh.sftp import protocol as p, rootfs
from geossh.sftp.attributes import SFTPAttributes
from geossh.sftp.local import LocalSFTPServer

pytestmark = pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="POSIX only")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/root (served) with a/b/c/d/, sub/ and hello.txt; tmp/etc/passwd outside."""
    root = tmp_path / "root"
    (root / "a" / "b" / "c" / "d").mkdir(parents=True)
    (root / "sub").mkdir()
    (root / "hello.txt").write_text("hello")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("outside")
    return root


@pytest.fixture
def si(tree: Path) -> Iterator[LocalSFTPServer]:
    server = LocalSFTPServer(None, tree)
    yield server
    server.session_ended()


def attrs(**fields: int) -> SFTPAttributes:
    raw = p.encode_attrs(None, fields.get("uid"), fields.get("gid"), fields.get("perm"),
                         fields.get("atime"), fields.get("mtime"))  # fmt: skip
    return SFTPAttributes._from_raw(p.decode_attrs(raw, 0, len(raw))[0])


def inside(root: Path, link: Path) -> bool:
    """Does the kernel, following ``link``, stay inside ``root``?"""
    real = os.path.realpath(link)
    return real == str(root) or real.startswith(str(root) + os.sep)


TARGETS = ["/etc", "/etc/passwd", "../../../../../etc", "../../../../hello.txt", "/", "..",
           "../../..", "/a/b/../../hello.txt", "e", "./e/f"]  # fmt: skip


@pytest.mark.parametrize("target", TARGETS)
def test_links_stay_inside_after_rename_and_hardlink(
    si: LocalSFTPServer, tree: Path, target: str
) -> None:
    assert si.symlink(target, "/a/b/c/d/l") == p.SFTP_OK
    assert inside(tree, tree / "a/b/c/d/l")
    before = si.canonicalize("/a/b/c/d/l")
    assert si.hardlink("/a/b/c/d/l", "/h") == p.SFTP_OK
    assert si.rename("/a/b/c/d/l", "/l") == p.SFTP_OK  # the report's case
    assert si.posix_rename("/l", "/sub/l") == p.SFTP_OK
    for place in ("h", "sub/l"):
        assert os.path.islink(tree / place)
        assert inside(tree, tree / place), (place, os.readlink(tree / place))
    if not target.lstrip("./").startswith("e"):  # location-independent targets mean the same
        assert si.canonicalize("/sub/l") == before


def test_renamed_directories_keep_their_links_inside(si: LocalSFTPServer, tree: Path) -> None:
    assert si.symlink("../../../../hello.txt", "/a/b/c/d/up") == p.SFTP_OK
    assert si.symlink("../../../../../etc/passwd", "/a/b/c/d/out") == p.SFTP_OK
    assert si.symlink("d/up", "/a/b/c/down") == p.SFTP_OK
    assert si.rename("/a/b/c", "/c") == p.SFTP_OK
    for name in ("c/d/up", "c/d/out", "c/down"):
        assert inside(tree, tree / name), (name, os.readlink(tree / name))
    assert (tree / "c" / "d" / "up").read_text() == "hello"  # still the same file
    assert (tree / "c" / "down").read_text() == "hello"
    st = si.stat("/c/down")
    assert isinstance(st, SFTPAttributes) and st.st_size == 5


@pytest.fixture
def planted(tree: Path) -> Path:
    """Links put into the root by another program: fine where they are, not elsewhere."""
    os.symlink("../hello.txt", tree / "sub" / "rel")  # /hello.txt from /sub
    os.symlink("../../etc/passwd", tree / "sub" / "out")  # already points out
    os.symlink(tree.parent / "etc", tree / "sub" / "abs")  # absolute, outside
    return tree


@pytest.mark.parametrize("name", ["rel", "out", "abs"])
@pytest.mark.parametrize("dest", ["/moved", "/a/b/moved"])
def test_planted_links_are_not_moved_to_where_they_point_out(
    si: LocalSFTPServer, planted: Path, name: str, dest: str
) -> None:
    escapes = name == "abs" or dest == "/moved"  # read from /a/b, both ".." targets stay in
    expected = p.SFTP_PERMISSION_DENIED if escapes else p.SFTP_OK
    assert si.hardlink(f"/sub/{name}", dest) == expected
    if expected == p.SFTP_OK:
        assert si.remove(dest) == p.SFTP_OK
    assert si.posix_rename(f"/sub/{name}", dest) == expected
    moved = planted / dest.lstrip("/")
    if expected == p.SFTP_OK:  # plant it again (moving it back to /sub may be refused)
        os.symlink(os.readlink(moved), planted / "sub" / name)
        moved.unlink()
    assert si.rename(f"/sub/{name}", dest) == expected
    assert moved.is_symlink() is (not escapes)
    if not escapes:
        assert inside(planted, moved)
    assert os.path.islink(planted / "sub" / name) is escapes


def test_planted_links_move_within_their_directory(si: LocalSFTPServer, planted: Path) -> None:
    assert si.rename("/sub/rel", "/sub/rel2") == p.SFTP_OK
    assert si.rename("/sub/out", "/sub/out2") == p.SFTP_OK  # no worse than it was
    assert si.hardlink("/sub/abs", "/sub/abs2") == p.SFTP_OK
    assert (planted / "sub" / "rel2").read_text() == "hello"


def test_a_link_swapped_in_during_rename_is_removed_again(
    si: LocalSFTPServer, planted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checked source is replaced by a planted link just before the rename runs."""
    assert si.symlink("hello.txt", "/sub/safe") == p.SFTP_OK
    real_rename = os.rename

    def swap_then_rename(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(os, "rename", real_rename)
        real_rename(planted / "sub" / "rel", planted / "sub" / "safe")  # attacker wins
        real_rename(*args, **kwargs)

    monkeypatch.setattr(os, "rename", swap_then_rename)
    assert si.rename("/sub/safe", "/moved") == p.SFTP_PERMISSION_DENIED
    assert not os.path.lexists(planted / "moved")


# -- SETSTAT: the race between check and use ----------------------------------------------


@pytest.fixture
def victim(tree: Path) -> Iterator[tuple[Path, Path]]:
    """root/victim (0600) and the outside file the attacker wants changed (0600)."""
    inner = tree / "victim"
    inner.write_text("mine")
    outside = tree.parent / "etc" / "passwd"
    for path in (inner, outside):
        path.chmod(0o600)
        os.utime(path, (1000, 1000))
    yield inner, outside


def _swap_before(
    monkeypatch: pytest.MonkeyPatch, names: list[str], swap: Callable[[], None]
) -> list[str]:
    """Run ``swap`` once, just before the first of ``names`` (os.chmod, ...) is called."""
    fired: list[str] = []
    for name in names:
        real = getattr(os, name)

        def hooked(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            if not fired:
                fired.append(_name)
                swap()
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, hooked)
    return fired


@pytest.mark.parametrize(
    "change",
    [
        {"perm": 0o666},
        {"atime": 5, "mtime": 6},
        {"uid": os.getuid(), "gid": os.getgid(), "perm": 0o644, "atime": 7, "mtime": 8},
    ],
)
def test_setstat_does_not_follow_a_symlink_swapped_in_before_use(
    si: LocalSFTPServer,
    tree: Path,
    victim: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, int],
) -> None:
    inner, outside = victim

    def swap() -> None:  # what a second connection does with posix-rename
        os.replace(inner, tree / "victim.orig")
        os.symlink(outside, inner)

    fired = _swap_before(monkeypatch, ["chmod", "chown", "utime", "fchmod", "fchown"], swap)
    assert si.chattr("/victim", attrs(**change)) == p.SFTP_OK
    assert fired, "the attribute change never ran"
    st = os.stat(outside)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime == 1000  # untouched
    changed = os.stat(tree / "victim.orig")  # the object that was checked got the change
    if "perm" in change:
        assert stat.S_IMODE(changed.st_mode) == change["perm"]
    if "mtime" in change:
        assert changed.st_mtime == change["mtime"]


def test_lsetstat_on_a_link_to_outside_changes_only_the_link(
    si: LocalSFTPServer, tree: Path, victim: tuple[Path, Path]
) -> None:
    _, outside = victim
    os.symlink(outside, tree / "planted")
    assert si.lsetstat("/planted", attrs(atime=3, mtime=4)) == p.SFTP_OK
    assert os.lstat(tree / "planted").st_mtime == 4
    assert si.lsetstat("/planted", attrs(perm=0o666)) == p.SFTP_OP_UNSUPPORTED
    assert si.chattr("/planted", attrs(perm=0o666)) == p.SFTP_NO_SUCH_FILE  # not followed out
    st = os.stat(outside)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime == 1000


def test_setstat_uses_a_path_descriptor(
    si: LocalSFTPServer, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Structurally: the object is opened O_PATH|O_NOFOLLOW, and changed through that fd."""
    if not getattr(os, "O_PATH", 0) or not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs O_PATH and /proc")
    (tree / "f").write_text("x")
    opened: list[int] = []
    real_open = os.open

    def spy(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        if path == "f":
            assert flags & os.O_PATH and flags & os.O_NOFOLLOW
            opened.append(fd)
        return fd

    changed: list[Any] = []
    real_chmod = os.chmod
    monkeypatch.setattr(os, "open", spy)
    monkeypatch.setattr(os, "chmod", lambda path, *a, **k: (changed.append(path),
                                                            real_chmod(path, *a, **k)))  # fmt: skip
    assert si.chattr("/f", attrs(perm=0o640)) == p.SFTP_OK
    assert changed == [f"/proc/self/fd/{opened[0]}"]
    assert stat.S_IMODE((tree / "f").stat().st_mode) == 0o640


def test_portable_targets() -> None:
    fs = rootfs.RootFS("/")
    assert fs.portable("a/b") and fs.portable("/x/y") and not fs.portable("a/../b")
    assert rootfs._climbs_out("../x", 0) and not rootfs._climbs_out("../x", 1)
    assert rootfs._climbs_out("a/../../../x", 1) and not rootfs._climbs_out("a/../../x", 1)
    assert not rootfs._climbs_out("./a/..", 0)
