"""``RootFS``: a local directory served as ``/``, with chroot-like path resolution.

Owns path confinement for the SFTP local backend and legacy scp. Paths are
resolved one component at a time with ``*at`` system calls relative to
directory descriptors opened with ``O_NOFOLLOW``: the kernel never follows a
symlink on our behalf. Symlinks are followed here, inside the root: ``..``
stops at ``/``, an absolute target means the root's ``/`` (a target that
spells the root's real path is mapped back into it). Nothing outside the
root is ever opened, however the tree's links are arranged.

New symlinks are stored as relative links from their own directory to the
target's canonical place, so a process following them with the kernel's
rules stays inside the root too. Operations raise ``OSError``; callers map
errno to their protocol. POSIX only. Must not import gevent or the engine.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)
_O_DIR = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
MAX_SYMLINKS = 40
MAX_PATH = 16384
MAX_COMPONENTS = 1024


@dataclass
class Resolved:
    """A resolved path: ``name`` inside directory ``dir_fd`` (``"."`` is the directory itself)."""

    dir_fd: int
    name: str
    vpath: str
    parents: list[str]


def _err(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


class RootFS:
    """File operations on ``root``, addressed by virtual paths (``/`` = root).

    Relative virtual paths are relative to ``home`` (a virtual directory).
    """

    def __init__(self, root: str | os.PathLike[str], home: str = "/") -> None:
        real = os.path.realpath(os.fspath(root))
        if not os.path.isdir(real):
            raise NotADirectoryError(errno.ENOTDIR, "SFTP root is not a directory", real)
        self.root = real
        self.home = posixpath.normpath("/" + home.lstrip("/")) if home else "/"
        self._root_fd = os.open(real, _O_PATH | _O_DIR)

    def close(self) -> None:
        """Release the root directory descriptor."""
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    def __del__(self) -> None:
        with suppress(Exception):
            self.close()

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

    def _link_target(self, dir_fd: int, name: str) -> tuple[bool, list[str]]:
        """Read a symlink: (absolute?, components), mapping the root's real path to ``/``."""
        target = os.readlink(name, dir_fd=dir_fd)
        if target == self.root or target.startswith(self.root.rstrip("/") + "/"):
            target = "/" + target[len(self.root) :].lstrip("/")
        return target.startswith("/"), [c for c in target.split("/") if c and c != "."]

    @contextmanager
    def resolve(self, path: str, follow: bool = True, lenient: bool = False) -> Iterator[Resolved]:
        """Resolve ``path`` inside the root; yield a ``Resolved`` whose ``dir_fd`` is open.

        ``follow`` follows a symlink in the last component. A missing last
        component is fine (it may be created); a missing directory raises
        ENOENT unless ``lenient`` (then the rest is taken lexically, with
        ``dir_fd`` the deepest existing directory and ``name`` "").
        """
        fds = [os.dup(self._root_fd)]
        names: list[str] = []
        try:
            final = self._walk(self._components(path), fds, names, follow, lenient)
            vpath = "/" + "/".join(names + ([final] if final not in (".", "") else []))
            yield Resolved(fds[-1], final, vpath, names)
        finally:
            for fd in fds:
                os.close(fd)

    def _walk(
        self, todo: deque[str], fds: list[int], names: list[str], follow: bool, lenient: bool
    ) -> str:
        links = 0
        while todo:
            comp = todo.popleft()
            if comp == "..":
                if len(fds) > 1:
                    os.close(fds.pop())
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
                        os.close(fds.pop())
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

    def listdir(self, path: str) -> list[tuple[str, os.stat_result]]:
        """Entries of a directory with their ``lstat`` results (no ``.``/``..``)."""
        with self.resolve(path) as r:
            fd = os.open(r.name, os.O_RDONLY | _O_DIR, dir_fd=r.dir_fd)
        try:
            out = []
            with os.scandir(fd) as it:
                for entry in it:
                    try:
                        out.append((entry.name, entry.stat(follow_symlinks=False)))
                    except FileNotFoundError:
                        continue
            return out
        finally:
            os.close(fd)

    def readlink(self, path: str) -> str:
        """A symlink's target, with the root's real path shown as ``/``."""
        with self.resolve(path, follow=False) as r:
            target = os.readlink(r.name, dir_fd=r.dir_fd)
        if target == self.root or target.startswith(self.root.rstrip("/") + "/"):
            target = "/" + target[len(self.root) :].lstrip("/")
        return target

    def statvfs(self, path: str) -> os.statvfs_result:
        """File-system statistics for the file system holding ``path``."""
        with self.resolve(path) as r:
            fd = os.open(r.name, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=r.dir_fd)
        try:
            return os.statvfs(fd)
        finally:
            os.close(fd)

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
                os.close(fd)
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
        """Rename; without ``overwrite`` an existing ``new`` is an error (EEXIST)."""
        with self.resolve(old, follow=False) as src, self.resolve(new, follow=False) as dst:
            if "." in (src.name, dst.name):
                raise _err(errno.EBUSY, old)
            if not overwrite and _exists(dst):
                raise _err(errno.EEXIST, new)
            os.rename(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd)

    def link(self, old: str, new: str) -> None:
        """Create hard link ``new`` to ``old`` (a symlink itself is linked)."""
        with self.resolve(old, follow=False) as src, self.resolve(new, follow=False) as dst:
            os.link(
                src.name,
                dst.name,
                src_dir_fd=src.dir_fd,
                dst_dir_fd=dst.dir_fd,
                follow_symlinks=False,
            )

    def symlink(self, target: str, path: str) -> None:
        """Create symlink ``path`` → ``target``, stored relative and confined."""
        if not target:
            raise _err(errno.ENOENT, target)
        with self.resolve(path, follow=False) as link:
            if link.name == ".":
                raise _err(errno.EEXIST, path)
            link_dir = "/" + "/".join(link.parents)
            base = target if target.startswith("/") else posixpath.join(link_dir, target)
            with self.resolve(base, follow=False, lenient=True) as dest:
                canonical = dest.vpath
            stored = posixpath.relpath(canonical, link_dir)
            os.symlink(stored, link.name, dir_fd=link.dir_fd)

    def truncate(self, path: str, size: int) -> None:
        """Set a regular file's size (never follows a final symlink the kernel sees)."""
        fd, _ = self.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)

    def chattr(
        self,
        path: str,
        follow: bool = True,
        mode: int | None = None,
        owner: tuple[int, int] | None = None,
        times: tuple[float, float] | None = None,
    ) -> None:
        """chmod/chown/utime on a path (symlinks are not followed by the kernel)."""
        with self.resolve(path, follow) as r:
            st = os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)
            if mode is not None:
                if stat.S_ISLNK(st.st_mode):
                    raise _err(errno.EOPNOTSUPP, path)
                os.chmod(r.name, mode, dir_fd=r.dir_fd)
            if owner is not None:
                os.chown(r.name, owner[0], owner[1], dir_fd=r.dir_fd, follow_symlinks=False)
            if times is not None:
                os.utime(r.name, times, dir_fd=r.dir_fd, follow_symlinks=False)


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
