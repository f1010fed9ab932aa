"""``LocalSFTPServer``: an ``SFTPServerInterface`` over a real directory.

Owns the mapping of SFTP operations onto ``RootFS`` (which owns
confinement), the errno → status map, read-only mode and the caps on open
files (``HandleBudget``). Clients see ``/`` = the root; relative paths are
relative to ``home``. Implements the OpenSSH extensions (posix-rename,
statvfs, fstatvfs, hardlink, fsync, lsetstat, copy-data).
"""

from __future__ import annotations

import errno
import functools
import grp
import os
import pwd
from collections.abc import Callable
from typing import Any, TypeVar

from geossh._green import fairness
from geossh.sftp.attributes import SFTPAttributes
from geossh.sftp.fdbudget import PROCESS_BUDGET, HandleBudget, default_process_cap
from geossh.sftp.handle import SFTPHandle, convert_errno
from geossh.sftp.interface import SFTPServerInterface
from geossh.sftp.protocol import (
    SFTP_BAD_MESSAGE,
    SFTP_EOF,
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)
from geossh.sftp.rootfs import DirectoryReader, RootFS, close_fd

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_COPY_CHUNK = 1024 * 1024

_EXTRA_ERRNO = {
    errno.EPERM: SFTP_PERMISSION_DENIED,
    errno.ELOOP: SFTP_NO_SUCH_FILE,
    errno.EBADF: SFTP_NO_SUCH_FILE,
    errno.EINVAL: SFTP_BAD_MESSAGE,
    errno.ENAMETOOLONG: SFTP_BAD_MESSAGE,
    errno.ENOSYS: SFTP_OP_UNSUPPORTED,
    errno.EOPNOTSUPP: SFTP_OP_UNSUPPORTED,
}


class SFTPStatus(int):
    """A status code with the text to send with it (the engine uses ``message``)."""

    message: str

    def __new__(cls, code: int, message: str) -> SFTPStatus:
        self = super().__new__(cls, code)
        self.message = message
        return self


def errno_status(exc: BaseException) -> int:
    """``convert_errno`` plus OpenSSH's extra cases (EPERM, ELOOP, EINVAL, ...)."""
    if isinstance(exc, OSError):
        code = getattr(exc, "errno", None)
        if code in (errno.EMFILE, errno.ENFILE):
            return SFTPStatus(SFTP_FAILURE, "Too many open files")
        return _EXTRA_ERRNO.get(code, convert_errno(code)) if code else SFTP_FAILURE
    if isinstance(exc, (ValueError, OverflowError)):  # NUL in a path, huge offsets
        return SFTP_BAD_MESSAGE
    return SFTP_FAILURE


def _codes(func: _F) -> _F:
    """Turn OSError/ValueError raised by ``func`` into SFTP status codes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (OSError, ValueError, OverflowError) as exc:
            return errno_status(exc)

    return wrapper  # type: ignore[return-value]


def _times(attr: SFTPAttributes) -> tuple[float, float] | None:
    if attr._flags & attr.FLAG_AMTIME and attr.st_atime is not None:
        return (attr.st_atime, attr.st_mtime if attr.st_mtime is not None else attr.st_atime)
    return None


def _owner(attr: SFTPAttributes) -> tuple[int, int] | None:
    if attr._flags & attr.FLAG_UIDGID and attr.st_uid is not None and attr.st_gid is not None:
        return (attr.st_uid, attr.st_gid)
    return None


class LocalSFTPHandle(SFTPHandle):
    """An open regular file of a ``LocalSFTPServer`` (positional I/O on ``fd``).

    ``readonly`` refuses FSETSTAT; ``on_close`` is called once when closed
    (the server gives the file's slot in its ``HandleBudget`` back).
    """

    write_accepts_buffer = True

    def __init__(
        self,
        fd: int,
        flags: int,
        filename: str,
        mode_mask: int = 0o1777,
        readonly: bool = False,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(flags)
        self.fd = fd
        self.filename = filename
        self._append = bool(flags & os.O_APPEND)
        self._mode_mask = mode_mask
        self._readonly = readonly
        self._on_close = on_close

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        fd, self.fd = self.fd, -1
        on_close, self._on_close = self._on_close, None
        try:
            if fd >= 0:
                close_fd(fd)
        finally:
            if on_close is not None:
                on_close()

    @_codes
    def read(self, offset: int, length: int) -> bytes | int:
        """``pread``: bytes, ``b""`` at EOF, or a code."""
        return os.pread(self.fd, length, offset)

    @_codes
    def write(self, offset: int, data: bytes | memoryview) -> int:
        """Write all of ``data`` at ``offset`` (appends when opened with O_APPEND)."""
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view) if self._append else os.pwrite(self.fd, view, offset)
            if n <= 0:
                return SFTP_FAILURE
            view = view[n:]
            offset += n
        return SFTP_OK

    @_codes
    def stat(self) -> SFTPAttributes | int:
        """``fstat`` of the open file."""
        return SFTPAttributes.from_stat(os.fstat(self.fd))

    @_codes
    def chattr(self, attr: SFTPAttributes) -> int:
        """FSETSTAT: size, owner, permissions and times on the open file."""
        if self._readonly:
            return SFTP_PERMISSION_DENIED
        if attr._flags & attr.FLAG_SIZE and attr.st_size is not None:
            os.ftruncate(self.fd, attr.st_size)
        owner = _owner(attr)
        if owner is not None:
            os.fchown(self.fd, *owner)
        if attr._flags & attr.FLAG_PERMISSIONS and attr.st_mode is not None:
            os.fchmod(self.fd, attr.st_mode & self._mode_mask)
        times = _times(attr)
        if times is not None:
            os.utime(self.fd, times)
        return SFTP_OK


class LocalFolderHandle(SFTPHandle):
    """An open directory of a ``LocalSFTPServer``: entries are read from the
    directory stream one READDIR batch at a time, never copied whole."""

    def __init__(self, fd: int, on_close: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.fd = fd
        self._on_close = on_close
        self._reader = DirectoryReader(fd)
        self._last: list[SFTPAttributes] = []
        self._back: list[SFTPAttributes] = []

    def _get_next_files(self, count: int = 16) -> list[Any]:
        out, self._back = self._back[:count], self._back[count:]
        if len(out) < count and self.fd >= 0:
            out += [
                SFTPAttributes.from_stat(st, name)
                for name, st in self._reader.read(count - len(out))
            ]
        self._last = out
        return out

    def _unget_files(self, count: int) -> None:
        if count > 0:
            self._back[:0] = self._last[-count:]
            self._last = self._last[:-count]

    def close(self) -> None:
        """Close the directory stream and descriptor (idempotent)."""
        fd, self.fd = self.fd, -1
        on_close, self._on_close = self._on_close, None
        try:
            if fd >= 0:
                self._reader.close()
                close_fd(fd)
        finally:
            if on_close is not None:
                on_close()


class LocalSFTPServer(SFTPServerInterface):
    """Serve the directory ``root`` as ``/``; nothing outside it is reachable.

    ``home`` is the virtual directory relative paths start from (what
    ``REALPATH "."`` and ``~`` give). ``readonly`` refuses every change,
    FSETSTAT on a handle opened for reading included. New files get the
    client's permissions (``& 0o777``) or 0o644, new directories 0o755, both
    under the process umask; SETSTAT never sets setuid/setgid bits
    (``mode_mask``). SETSTAT and lsetstat change the object the path
    resolved to, through an ``O_PATH`` descriptor: a symlink swapped in
    meanwhile is never followed.

    Symlinks (SYMLINK) stay inside the root for every program that reads
    the directory, wherever they are later renamed or hard-linked: a
    relative target without ``..`` is stored as given; an absolute target,
    or one that climbs with ``..``, is resolved inside the root and stored
    as an absolute path under the root's real path (READLINK shows it as
    ``/...``; such links break if the root directory is moved on the host).
    RENAME and hardlink refuse (PERMISSION_DENIED) to move a symlink not
    made this way (planted by another program) to where it would point out
    of the root. SECURITY.md has the details.

    Open files are capped per connection (``max_handles_per_connection``,
    counted per ``ServerInterface`` object, which ``geossh.runner`` makes
    per connection) and per process (``max_handles_per_process``, default
    half the soft ``RLIMIT_NOFILE``); past a cap OPEN fails with
    SFTP_FAILURE "Too many open files ...". Use with
    ``transport.set_subsystem_handler("sftp", SFTPServer, LocalSFTPServer, root)``.
    """

    request_concurrency = 0  # local file operations never wait on the hub
    mode_mask = 0o1777
    max_handles_per_connection = 256
    max_handles_per_process: int | None = None  # None: half the soft RLIMIT_NOFILE
    handle_budget: HandleBudget = PROCESS_BUDGET

    def __init__(
        self, server: Any, root: str | os.PathLike[str], home: str = "/", readonly: bool = False
    ) -> None:
        super().__init__(server)
        self.fs = RootFS(root, home, checkpoint=fairness.checkpoint)
        self.readonly = readonly
        self._owner: Any = server if server is not None else self
        self._process_cap = self.max_handles_per_process or default_process_cap()

    def session_ended(self) -> None:
        """Nothing to release: ``RootFS`` holds no descriptor between calls."""
        self.fs.close()

    def _writable(self) -> None:
        if self.readonly:
            raise PermissionError(errno.EACCES, "read-only")

    # -- files ----------------------------------------------------------------------------
    @_codes
    def open(self, path: str, flags: int, attr: SFTPAttributes) -> SFTPHandle | int:
        """Open a regular file inside the root."""
        if flags & _WRITE_FLAGS:
            self._writable()
        mode = 0o644
        if attr is not None and attr._flags & attr.FLAG_PERMISSIONS and attr.st_mode is not None:
            mode = attr.st_mode & 0o777
        opened = self._with_slot(self.fs.open, path, flags, mode)
        if isinstance(opened, SFTPStatus):
            return opened
        (fd, vpath), release = opened
        return LocalSFTPHandle(fd, flags, vpath, self.mode_mask, self.readonly, release)

    def _with_slot(
        self, opener: Callable[..., _T], *args: Any
    ) -> tuple[_T, Callable[[], None]] | SFTPStatus:
        """Take a slot in the open-file caps and call ``opener``: ``(result, release)``,
        or the refusal status (the slot is given back if ``opener`` raises)."""
        budget, owner = self.handle_budget, self._owner
        refusal = budget.acquire(owner, self.max_handles_per_connection, self._process_cap)
        if refusal is not None:
            return SFTPStatus(SFTP_FAILURE, refusal)
        try:
            result = opener(*args)
        except BaseException:
            budget.release(owner)
            raise
        return result, functools.partial(budget.release, owner)

    @_codes
    def list_folder(self, path: str) -> list[SFTPAttributes] | int:
        """Directory entries (``lstat`` results)."""
        return [SFTPAttributes.from_stat(st, name) for name, st in self.fs.listdir(path)]

    @_codes
    def open_folder(self, path: str) -> SFTPHandle | int:
        """OPENDIR without a copy of the listing: a ``LocalFolderHandle`` on the
        directory stream, counted in the open-file caps like a file. A subclass
        that overrides ``list_folder`` gets its list served instead."""
        if type(self).list_folder is not LocalSFTPServer.list_folder:
            result = self.list_folder(path)
            if not isinstance(result, list):
                return result
            folder = SFTPHandle()
            folder._set_files(result)
            return folder
        opened = self._with_slot(self.fs.opendir, path)
        if isinstance(opened, SFTPStatus):
            return opened
        fd, release = opened
        return LocalFolderHandle(fd, release)

    @_codes
    def stat(self, path: str) -> SFTPAttributes | int:
        """STAT (follows symlinks, inside the root)."""
        return SFTPAttributes.from_stat(self.fs.stat(path))

    @_codes
    def lstat(self, path: str) -> SFTPAttributes | int:
        """LSTAT."""
        return SFTPAttributes.from_stat(self.fs.stat(path, follow=False))

    @_codes
    def remove(self, path: str) -> int:
        """Delete a file or symlink."""
        self._writable()
        self.fs.unlink(path)
        return SFTP_OK

    @_codes
    def rename(self, oldpath: str, newpath: str) -> int:
        """RENAME: fails if ``newpath`` exists."""
        self._writable()
        self.fs.rename(oldpath, newpath)
        return SFTP_OK

    @_codes
    def posix_rename(self, oldpath: str, newpath: str) -> int:
        """posix-rename@openssh.com: replaces ``newpath``."""
        self._writable()
        self.fs.rename(oldpath, newpath, overwrite=True)
        return SFTP_OK

    @_codes
    def mkdir(self, path: str, attr: SFTPAttributes) -> int:
        """MKDIR with the client's permissions (``& 0o777``) or 0o755."""
        self._writable()
        mode = 0o755
        if attr is not None and attr._flags & attr.FLAG_PERMISSIONS and attr.st_mode is not None:
            mode = attr.st_mode & 0o777
        self.fs.mkdir(path, mode)
        return SFTP_OK

    @_codes
    def rmdir(self, path: str) -> int:
        """RMDIR."""
        self._writable()
        self.fs.rmdir(path)
        return SFTP_OK

    def _setstat(self, path: str, attr: SFTPAttributes, follow: bool) -> int:
        self._writable()
        if attr._flags & attr.FLAG_SIZE and attr.st_size is not None:
            if not follow:
                return SFTP_BAD_MESSAGE  # nonsensical for links (like OpenSSH)
            self.fs.truncate(path, attr.st_size)
        mode = None
        if attr._flags & attr.FLAG_PERMISSIONS and attr.st_mode is not None:
            mode = attr.st_mode & self.mode_mask
        self.fs.chattr(path, follow, mode, _owner(attr), _times(attr))
        return SFTP_OK

    @_codes
    def chattr(self, path: str, attr: SFTPAttributes) -> int:
        """SETSTAT (size via truncate, then owner, permissions, times)."""
        return self._setstat(path, attr, True)

    @_codes
    def lsetstat(self, path: str, attr: SFTPAttributes) -> int:
        """lsetstat@openssh.com: SETSTAT without following a final symlink."""
        return self._setstat(path, attr, False)

    # -- paths and links ------------------------------------------------------------------
    def users_groups_by_id(
        self, uids: list[int], gids: list[int]
    ) -> tuple[list[str], list[str]] | int:
        """This host's user and group names (as sshd's sftp-server gives them)."""
        return _names(uids, _user_name), _names(gids, _group_name)

    @_codes
    def canonicalize(self, path: str) -> str | int:
        """REALPATH: canonical path inside the root (the last component may be missing)."""
        return self.fs.realpath(path)

    @_codes
    def readlink(self, path: str) -> str | int:
        """READLINK."""
        return self.fs.readlink(path)

    @_codes
    def symlink(self, target_path: str, path: str) -> int:
        """SYMLINK, stored so that it stays inside the root wherever it is moved."""
        self._writable()
        self.fs.symlink(target_path, path)
        return SFTP_OK

    @_codes
    def hardlink(self, oldpath: str, newpath: str) -> int:
        """hardlink@openssh.com (a symlink is refused where it would point outside)."""
        self._writable()
        self.fs.link(oldpath, newpath)
        return SFTP_OK

    # -- extensions on handles and file systems -------------------------------------------
    @_codes
    def statvfs(self, path: str) -> Any:
        """statvfs@openssh.com."""
        return self.fs.statvfs(path)

    @_codes
    def fstatvfs(self, handle: SFTPHandle) -> Any:
        """fstatvfs@openssh.com."""
        if not isinstance(handle, LocalSFTPHandle):
            return SFTP_OP_UNSUPPORTED
        return os.statvfs(handle.fd)

    @_codes
    def fsync(self, handle: SFTPHandle) -> int:
        """fsync@openssh.com."""
        if not isinstance(handle, LocalSFTPHandle):
            return SFTP_OP_UNSUPPORTED
        os.fsync(handle.fd)
        return SFTP_OK

    @_codes
    def copy_data(
        self,
        read_handle: SFTPHandle,
        read_offset: int,
        length: int,
        write_handle: SFTPHandle,
        write_offset: int,
    ) -> int:
        """copy-data between two open files (refuses copying a file onto itself)."""
        local = LocalSFTPHandle
        if not (isinstance(read_handle, local) and isinstance(write_handle, local)):
            return super().copy_data(read_handle, read_offset, length, write_handle, write_offset)
        self._writable()
        src, dst = os.fstat(read_handle.fd), os.fstat(write_handle.fd)
        if (src.st_dev, src.st_ino) == (dst.st_dev, dst.st_ino):
            return SFTP_FAILURE
        remaining = length if length else -1
        while remaining:
            want = _COPY_CHUNK if remaining < 0 else min(_COPY_CHUNK, remaining)
            data = os.pread(read_handle.fd, want, read_offset)
            if not data:
                return SFTP_OK if remaining < 0 else SFTP_EOF
            code = write_handle.write(write_offset, data)
            if code != SFTP_OK:
                return code
            read_offset += len(data)
            write_offset += len(data)
            remaining -= len(data) if remaining > 0 else 0
            fairness.checkpoint()  # a long copy lets other connections run
        return SFTP_OK


def _user_name(uid: int) -> str:
    return pwd.getpwuid(uid).pw_name


def _group_name(gid: int) -> str:
    return grp.getgrgid(gid).gr_name


def _names(ids: list[int], lookup: Callable[[int], str]) -> list[str]:
    """A name per id ('' where there is none), yielding between lookups that may be slow."""
    out = []
    for index, ident in enumerate(ids):
        if index % 32 == 31:
            fairness.checkpoint()
        try:
            out.append(lookup(ident))
        except (KeyError, OverflowError):
            out.append("")
    return out
