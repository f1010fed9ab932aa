"""``RootFS``: a local directory served as ``/``, with chroot-like path resolution.

Owns path confinement for the SFTP local backend and legacy scp. Paths are
resolved one component at a time with ``*at`` system calls relative to
directory descriptors opened with ``O_NOFOLLOW``: the kernel never follows a
symlink on our behalf. Symlinks are followed here, inside the root: ``..``
stops at ``/``, an absolute target means the root's ``/`` (a target that
spells the root's real path is mapped back into it). Nothing outside the
root is ever opened, however the tree's links are arranged. One resolution
walks at most ``MAX_WALK_STEPS`` components (links' targets included; past
that, ELOOP) and calls the ``checkpoint`` it was given between steps.

Attribute changes act on the object resolution found, never on a name
looked up again: it is opened ``O_PATH | O_NOFOLLOW`` and changed through
that descriptor, so a symlink swapped in after the check is not followed.

Symlinks made here stay inside the root for every program, wherever they
are later moved or linked (``symlink``): a relative target without ``..``
is stored as given; any other target is resolved inside the root and stored
as an absolute path under the root's real path. A link not made here that
would point outside the root from its new place is not renamed or
hard-linked elsewhere (EPERM). No descriptor is held between calls (the
root is opened by path and checked to be the same directory each time),
and descriptors are closed with ``posix.close`` at once, also under gevent's
monkey-patching (whose ``os.close`` defers closing directories to the event
loop). Operations raise ``OSError``; callers map errno to their protocol.
POSIX only. Must not import gevent or the engine.
"""

from __future__ import annotations

import errno
import os
import posix
import posixpath
import stat
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_O_PATH = getattr(os, "O_PATH", 0)
_O_DIR = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
#: How a final object is held for an attribute change: a path-only descriptor
#: where the system has one (Linux), else a plain non-blocking read-only open.
_O_OBJECT = (_O_PATH or os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)) | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_SYMLINKS = 40
MAX_PATH = 16384
MAX_COMPONENTS = 1024
#: Components one resolution may walk, links' targets included (40 links of
#: 4 KiB targets could otherwise cost ~80,000 system calls); past it, ELOOP.
MAX_WALK_STEPS = 8192
#: Steps between yield points of a walk.
WALK_STEPS_PER_CHECKPOINT = 32
_OUTSIDE = "Symlink would point outside the root from there"

#: ``os.close`` as the C library does it. gevent's monkey-patched ``os.close``
#: (gevent >= 25.8.1) defers closing anything but regular files to the next
#: loop iteration; requests served inline never yield, so descriptors piled up.
close_fd = posix.close


@dataclass
class Resolved:
    """A resolved path: ``name`` inside directory ``dir_fd`` (``"."`` is the directory itself)."""

    dir_fd: int
    name: str
    vpath: str
    parents: list[str]


def _no_pause() -> None:
    """The default yield point: none (callers on an event loop pass their own)."""


def _err(code: int, path: str, text: str | None = None) -> OSError:
    return OSError(code, text or os.strerror(code), path)


def _climbs_out(target: str, depth: int) -> bool:
    """Does relative ``target``, read lexically from ``depth`` levels below the root, leave it?"""
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part and part != ".":
            depth += 1
    return False


class RootFS:
    """File operations on ``root``, addressed by virtual paths (``/`` = root).

    Relative virtual paths are relative to ``home`` (a virtual directory).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        home: str = "/",
        checkpoint: Callable[[], object] | None = None,
    ) -> None:
        real = os.path.realpath(os.fspath(root))
        if not os.path.isdir(real):
            raise NotADirectoryError(errno.ENOTDIR, "SFTP root is not a directory", real)
        self.root = real
        self._prefix = real.rstrip("/") + "/"
        self.home = posixpath.normpath("/" + home.lstrip("/")) if home else "/"
        st = os.stat(real)
        self._root_id = (st.st_dev, st.st_ino)
        self._checkpoint = checkpoint or _no_pause

    def close(self) -> None:
        """Nothing to release (kept for callers written against the fd-holding version)."""

    def _open_root(self) -> int:
        fd = os.open(self.root, _O_PATH | _O_DIR)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self._root_id:
            close_fd(fd)
            raise _err(errno.ENOENT, "/", "SFTP root was moved or replaced")
        return fd

    # -- resolution --------------------------------------------------------------------
    def absolute(self, path: str) -> str:
        """The virtual path made absolute against ``home`` (not normalised)."""
        if len(path) > MAX_PATH:
            raise _err(errno.ENAMETOOLONG, path[:64])
        return path if path.startswith("/") else posixpath.join(self.home, path)

    def _components(self, path: str) -> deque[str]:
        parts = deque(c for c in self.absolute(path).split("/") if c and c != ".")
        if len(parts) > MAX_COMPONENTS:
            raise _err(errno.ENAMETOOLONG, path[:64])
        return parts

    def _virtual(self, target: str) -> str:
        """A stored link target with the root's real path shown as ``/``."""
        if target == self.root or target.startswith(self._prefix):
            return "/" + target[len(self.root) :].lstrip("/")
        return target

    def _link_target(self, dir_fd: int, name: str) -> tuple[bool, list[str]]:
        """Read a symlink: (absolute?, components), mapping the root's real path to ``/``."""
        target = self._virtual(os.readlink(name, dir_fd=dir_fd))
        return target.startswith("/"), [c for c in target.split("/") if c and c != "."]

    def portable(self, target: str) -> bool:
        """Does a stored link target stay inside the root from every place in it?

        True for relative targets without ``..`` and for absolute ones under
        the root's real path without ``..`` (what ``symlink`` stores).
        """
        if ".." in target.split("/"):
            return False
        return not target.startswith("/") or target == self.root or target.startswith(self._prefix)

    @contextmanager
    def resolve(self, path: str, follow: bool = True, lenient: bool = False) -> Iterator[Resolved]:
        """Resolve ``path`` inside the root; yield a ``Resolved`` whose ``dir_fd`` is open.

        ``follow`` follows a symlink in the last component. A missing last
        component is fine (it may be created); a missing directory raises
        ENOENT unless ``lenient`` (then the rest is taken lexically, with
        ``dir_fd`` the deepest existing directory and ``name`` "").
        """
        fds = [self._open_root()]
        names: list[str] = []
        try:
            final = self._walk(self._components(path), fds, names, follow, lenient)
            vpath = "/" + "/".join(names + ([final] if final not in (".", "") else []))
            yield Resolved(fds[-1], final, vpath, names)
        finally:
            for fd in fds:
                close_fd(fd)

    def _walk(
        self, todo: deque[str], fds: list[int], names: list[str], follow: bool, lenient: bool
    ) -> str:
        links = steps = 0
        while todo:
            steps += 1
            if steps % WALK_STEPS_PER_CHECKPOINT == 0:
                if steps > MAX_WALK_STEPS:
                    raise _err(errno.ELOOP, todo[0], "Path resolution too long")
                self._checkpoint()
            comp = todo.popleft()
            if comp == "..":
                if len(fds) > 1:
                    close_fd(fds.pop())
                    names.pop()
                continue
            last = not todo
            if last and not follow:
                return comp
            try:
                st = os.stat(comp, dir_fd=fds[-1], follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return comp
                if not lenient:
                    raise
                return self._lexical(comp, todo, names)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise _err(errno.ELOOP, comp)
                absolute, parts = self._link_target(fds[-1], comp)
                if absolute:
                    while len(fds) > 1:
                        close_fd(fds.pop())
                        names.pop()
                todo.extendleft(reversed(parts))
                continue
            if last:
                return comp
            if not stat.S_ISDIR(st.st_mode):
                raise _err(errno.ENOTDIR, comp)
            fds.append(os.open(comp, _O_PATH | _O_DIR, dir_fd=fds[-1]))
            names.append(comp)
        return "."

    @staticmethod
    def _lexical(comp: str, todo: deque[str], names: list[str]) -> str:
        rest = [comp, *todo]
        todo.clear()
        tail: list[str] = []
        for part in rest:
            if part != "..":
                tail.append(part)
            elif tail:
                tail.pop()
            elif names:
                names.pop()  # only the virtual name; dir_fd stays the deepest real dir
        names.extend(tail)
        return ""

    def realpath(self, path: str) -> str:
        """Canonical virtual path; the last component need not exist."""
        with self.resolve(path) as r:
            return r.vpath

    # -- queries ------------------------------------------------------------------------
    def stat(self, path: str, follow: bool = True) -> os.stat_result:
        """``os.stat``/``os.lstat`` of a virtual path."""
        with self.resolve(path, follow) as r:
            return os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)

    def opendir(self, path: str) -> int:
        """A read descriptor of a directory inside the root (the caller closes it)."""
        with self.resolve(path) as r:
            return os.open(r.name, os.O_RDONLY | _O_DIR, dir_fd=r.dir_fd)

    def listdir(self, path: str) -> list[tuple[str, os.stat_result]]:
        """Entries of a directory with their ``lstat`` results (no ``.``/``..``)."""
        fd = self.opendir(path)
        try:
            with DirectoryReader(fd) as reader:
                return reader.read(-1)
        finally:
            close_fd(fd)

    def readlink(self, path: str) -> str:
        """A symlink's target, with the root's real path shown as ``/``."""
        with self.resolve(path, follow=False) as r:
            return self._virtual(os.readlink(r.name, dir_fd=r.dir_fd))

    def statvfs(self, path: str) -> os.statvfs_result:
        """File-system statistics for the file system holding ``path``."""
        with self.resolve(path) as r:
            fd = os.open(r.name, _O_OBJECT, dir_fd=r.dir_fd)
        try:
            return os.statvfs(fd)
        finally:
            close_fd(fd)

    # -- files ----------------------------------------------------------------------------
    def open(self, path: str, flags: int, mode: int = 0o644) -> tuple[int, str]:
        """Open a regular file: ``(fd, canonical virtual path)``; others are refused."""
        with self.resolve(path) as r:
            try:
                st = os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None:
                _require_regular(st, r.vpath)
            fd = os.open(r.name, flags | _O_FILE, mode, dir_fd=r.dir_fd)
            try:
                _require_regular(os.fstat(fd), r.vpath)
            except OSError:
                close_fd(fd)
                raise
            return fd, r.vpath

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        """Create a directory."""
        with self.resolve(path, follow=False) as r:
            os.mkdir(r.name, mode, dir_fd=r.dir_fd)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory."""
        with self.resolve(path, follow=False) as r:
            if r.name == ".":
                raise _err(errno.EBUSY, path)
            os.rmdir(r.name, dir_fd=r.dir_fd)

    def unlink(self, path: str) -> None:
        """Remove a file or symlink (not a directory)."""
        with self.resolve(path, follow=False) as r:
            if r.name == ".":
                raise _err(errno.EISDIR, path)
            os.unlink(r.name, dir_fd=r.dir_fd)

    def rename(self, old: str, new: str, overwrite: bool = False) -> None:
        """Rename; without ``overwrite`` an existing ``new`` is an error (EEXIST).

        A symlink whose target would leave the root from its new place is
        refused (EPERM); see ``_movable``.
        """
        with self.resolve(old, follow=False) as src, self.resolve(new, follow=False) as dst:
            if "." in (src.name, dst.name):
                raise _err(errno.EBUSY, old)
            if not overwrite and _exists(dst):
                raise _err(errno.EEXIST, new)
            moved = self._movable(src, dst, old)
            os.rename(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd)
            self._recheck(src, dst, moved, new)

    def link(self, old: str, new: str) -> None:
        """Create hard link ``new`` to ``old`` (a symlink is linked itself, as for ``rename``)."""
        with self.resolve(old, follow=False) as src, self.resolve(new, follow=False) as dst:
            linked = self._movable(src, dst, old)
            os.link(
                src.name,
                dst.name,
                src_dir_fd=src.dir_fd,
                dst_dir_fd=dst.dir_fd,
                follow_symlinks=False,
            )
            self._recheck(src, dst, linked, new)

    def _movable(self, src: Resolved, dst: Resolved, path: str) -> tuple[int, int] | None:
        """Refuse (EPERM) to give a symlink a new place from where it points out of the root.

        Allowed: portable targets, moves within one directory, and targets
        that read lexically from the new directory stay inside. Returns the
        ``(st_dev, st_ino)`` checked (None if ``src`` is missing).
        """
        try:
            st = os.stat(src.name, dir_fd=src.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(src.name, dir_fd=src.dir_fd)
            if not self._stays(target, src.dir_fd, dst):
                raise _err(errno.EPERM, path, _OUTSIDE)
        return (st.st_dev, st.st_ino)

    def _stays(self, target: str, src_dir_fd: int, dst: Resolved) -> bool:
        """Would a link to ``target`` moved from ``src_dir_fd`` into ``dst`` stay inside?"""
        if self.portable(target) or _same_dir(src_dir_fd, dst.dir_fd):
            return True
        return not target.startswith("/") and not _climbs_out(target, len(dst.parents))

    def _recheck(
        self, src: Resolved, dst: Resolved, checked: tuple[int, int] | None, path: str
    ) -> None:
        """After the rename/link: if another link was swapped in at the source in between
        and it points out of the root from here, remove it again (EPERM)."""
        try:
            st = os.stat(dst.name, dir_fd=dst.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == checked or not stat.S_ISLNK(st.st_mode):
            return
        if self._stays(os.readlink(dst.name, dir_fd=dst.dir_fd), src.dir_fd, dst):
            return
        os.unlink(dst.name, dir_fd=dst.dir_fd)
        raise _err(errno.EPERM, path, _OUTSIDE)

    def symlink(self, target: str, path: str) -> None:
        """Create symlink ``path`` → ``target`` so that it stays inside the root wherever it goes.

        A relative target without ``..`` is stored as given. Any other
        target (absolute, or climbing with ``..``) is resolved inside the
        root from the link's directory and stored as an absolute path under
        the root's real path (``readlink`` shows it as ``/...``).
        """
        if not target:
            raise _err(errno.ENOENT, target)
        with self.resolve(path, follow=False) as link:
            if link.name == ".":
                raise _err(errno.EEXIST, path)
            stored = target
            if not self.portable(target) or target.startswith("/"):
                link_dir = "/" + "/".join(link.parents)
                virtual = self._virtual(target)
                base = virtual if virtual.startswith("/") else posixpath.join(link_dir, virtual)
                stored = self._host_path(base)
            os.symlink(stored, link.name, dir_fd=link.dir_fd)

    def _host_path(self, vpath: str) -> str:
        """Where virtual ``vpath`` is on the host: lexical without ``..``, else resolved."""
        parts = [c for c in vpath.split("/") if c and c != "."]
        if ".." in parts:
            with self.resolve(vpath, follow=False, lenient=True) as dest:
                parts = [c for c in dest.vpath.split("/") if c]
        return posixpath.join(self.root, *parts) if parts else self.root

    def truncate(self, path: str, size: int) -> None:
        """Set a regular file's size (never follows a final symlink the kernel sees)."""
        fd, _ = self.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
        finally:
            close_fd(fd)

    def chattr(
        self,
        path: str,
        follow: bool = True,
        mode: int | None = None,
        owner: tuple[int, int] | None = None,
        times: tuple[float, float] | None = None,
    ) -> None:
        """chmod/chown/utime on the object ``path`` resolves to, through a descriptor.

        The object is opened ``O_PATH | O_NOFOLLOW`` and changed through
        ``/proc/self/fd/N`` (no name is looked up again, so a symlink swapped
        in meanwhile is not followed). A symlink itself (``follow=False``)
        gets owner and times with ``AT_SYMLINK_NOFOLLOW``; its mode cannot be
        set (EOPNOTSUPP).
        """
        with self.resolve(path, follow) as r:
            fd = os.open(r.name, _O_OBJECT, dir_fd=r.dir_fd)
            try:
                if stat.S_ISLNK(os.fstat(fd).st_mode):
                    if follow:  # resolution followed it: it was swapped in since
                        raise _err(errno.ELOOP, path)
                    _link_chattr(r, path, mode, owner, times)
                else:
                    _fd_chattr(fd, path, mode, owner, times)
            finally:
                close_fd(fd)


def _fd_chattr(
    fd: int,
    path: str,
    mode: int | None,
    owner: tuple[int, int] | None,
    times: tuple[float, float] | None,
) -> None:
    """Change the object behind ``fd`` (a path descriptor: via its /proc magic link)."""
    if not _O_PATH:
        if mode is not None:
            os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, *owner)
        if times is not None:
            os.utime(fd, times)
        return
    proc = f"/proc/self/fd/{fd}"
    try:
        if mode is not None:
            os.chmod(proc, mode)
        if owner is not None:
            os.chown(proc, *owner)
        if times is not None:
            os.utime(proc, times)
    except FileNotFoundError:  # no /proc: refuse rather than look the name up again
        raise _err(errno.EOPNOTSUPP, path) from None


def _link_chattr(
    r: Resolved,
    path: str,
    mode: int | None,
    owner: tuple[int, int] | None,
    times: tuple[float, float] | None,
) -> None:
    """lsetstat on a symlink itself: never followed, and inside ``r.dir_fd`` (in the root)."""
    if mode is not None:
        raise _err(errno.EOPNOTSUPP, path)
    if owner is not None:
        os.chown(r.name, owner[0], owner[1], dir_fd=r.dir_fd, follow_symlinks=False)
    if times is not None:
        os.utime(r.name, times, dir_fd=r.dir_fd, follow_symlinks=False)


def _same_dir(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _exists(r: Resolved) -> bool:
    try:
        os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _require_regular(st: os.stat_result, vpath: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise _err(errno.EISDIR, vpath)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EPERM, "Not a regular file", vpath)


class DirectoryReader:
    """Entries of an open directory, read lazily (``os.scandir`` on a descriptor).

    Holds the kernel's directory stream, not a copy of the listing: memory
    stays bounded however large the directory. ``read(n)`` gives up to
    ``n`` entries (all when negative) as ``(name, lstat result)``; entries
    removed meanwhile are skipped. The stream has its own duplicate of ``fd``.
    """

    def __init__(self, fd: int) -> None:
        self._it = os.scandir(fd)

    def __enter__(self) -> DirectoryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, count: int) -> list[tuple[str, os.stat_result]]:
        """Up to ``count`` entries (every remaining one when ``count`` < 0)."""
        out: list[tuple[str, os.stat_result]] = []
        while count < 0 or len(out) < count:
            entry = next(self._it, None)
            if entry is None:
                break
            found = _lstat_entry(entry)
            if found is not None:
                out.append(found)
        return out

    def close(self) -> None:
        """Close the stream (idempotent)."""
        self._it.close()


def _lstat_entry(entry: os.DirEntry[str]) -> tuple[str, os.stat_result] | None:
    try:
        return entry.name, entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None
