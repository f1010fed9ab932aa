"""``SFTPServerInterface``: what an SFTP server does with requests (paramiko.sftp_si).

Owns the overridable operations and their defaults. Every method returns a
success value or an ``SFTP_*`` status code; an exception fails that one
request with ``SFTP_FAILURE`` (the engine logs it) and the session goes on.
Must not import the engine or gevent.
"""

from __future__ import annotations

import os
from typing import Any

from geossh.sftp.attributes import SFTPAttributes
from geossh.sftp.handle import SFTPHandle
from geossh.sftp.protocol import SFTP_EOF, SFTP_NO_SUCH_FILE, SFTP_OK, SFTP_OP_UNSUPPORTED

_COPY_CHUNK = 64 * 1024


class SFTPServerInterface:
    """Override these methods to serve SFTP; the defaults refuse with OP_UNSUPPORTED.

    Paths are ``str`` (UTF-8; bytes that are not UTF-8 arrive as surrogate
    escapes, as ``os.fsdecode`` makes them) and may be relative or absolute:
    normalise them yourself and beware of ``..``. Methods run in the SFTP
    session's greenlet and may block on cooperative I/O.

    ``request_concurrency`` sets how many requests of one session may be in
    progress at once (requests on one handle, and path requests, still run
    in order). ``0`` serves every request inline in arrival order, the
    fastest choice for backends that never wait (a local filesystem).
    """

    request_concurrency: int = 8

    def __init__(self, server: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    def session_started(self) -> None:
        """The session began (after INIT/VERSION)."""

    def session_ended(self) -> None:
        """The session ended, cleanly or not."""

    def open(self, path: str, flags: int, attr: SFTPAttributes) -> SFTPHandle | int:
        """Open a file: return an ``SFTPHandle`` or a code.

        ``flags`` are ``os.O_*`` (one of O_RDONLY/O_WRONLY/O_RDWR, plus
        O_APPEND, O_CREAT, O_TRUNC, O_EXCL); ``attr`` holds what the client
        asked for a new file (often just permissions).
        """
        return SFTP_OP_UNSUPPORTED

    def list_folder(self, path: str) -> list[SFTPAttributes] | int:
        """The entries of a directory, each with ``filename`` set, or a code."""
        return SFTP_OP_UNSUPPORTED

    def stat(self, path: str) -> SFTPAttributes | int:
        """Attributes of ``path``, following symlinks."""
        return SFTP_OP_UNSUPPORTED

    def lstat(self, path: str) -> SFTPAttributes | int:
        """Attributes of ``path`` itself (a symlink is not followed)."""
        return SFTP_OP_UNSUPPORTED

    def remove(self, path: str) -> int:
        """Delete a file."""
        return SFTP_OP_UNSUPPORTED

    def rename(self, oldpath: str, newpath: str) -> int:
        """Rename; should fail when ``newpath`` exists (SFTP RENAME semantics)."""
        return SFTP_OP_UNSUPPORTED

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        """``posix-rename@openssh.com``: rename, replacing ``newpath`` if it exists."""
        return SFTP_OP_UNSUPPORTED

    def mkdir(self, path: str, attr: SFTPAttributes) -> int:
        """Create a directory; ``attr`` (maybe empty) is a hint."""
        return SFTP_OP_UNSUPPORTED

    def rmdir(self, path: str) -> int:
        """Remove an empty directory."""
        return SFTP_OP_UNSUPPORTED

    def chattr(self, path: str, attr: SFTPAttributes) -> int:
        """SETSTAT: change the attributes present in ``attr`` (see ``attr._flags``)."""
        return SFTP_OP_UNSUPPORTED

    def canonicalize(self, path: str) -> str | int:
        """REALPATH: the absolute, normalised form of ``path`` (relative to ``/``)."""
        out = os.path.normpath(path if os.path.isabs(path) else "/" + path)
        if os.sep == "\\":
            out = out.replace("\\", "/")
        return out

    def readlink(self, path: str) -> str | int:
        """The target of a symbolic link, or a code."""
        return SFTP_OP_UNSUPPORTED

    def symlink(self, target_path: str, path: str) -> int:
        """Create symlink ``path`` pointing at ``target_path``."""
        return SFTP_OP_UNSUPPORTED

    # -- OpenSSH extensions (advertised only when overridden, except as noted) --
    def statvfs(self, path: str) -> Any:
        """``statvfs@openssh.com``: an ``os.statvfs_result``-like object, or a code."""
        return SFTP_OP_UNSUPPORTED

    def fstatvfs(self, handle: SFTPHandle) -> Any:
        """``fstatvfs@openssh.com`` on an open file."""
        return SFTP_OP_UNSUPPORTED

    def hardlink(self, oldpath: str, newpath: str) -> int:
        """``hardlink@openssh.com``: create ``newpath`` as a hard link to ``oldpath``."""
        return SFTP_OP_UNSUPPORTED

    def fsync(self, handle: SFTPHandle) -> int:
        """``fsync@openssh.com``: flush an open file to stable storage."""
        return SFTP_OP_UNSUPPORTED

    def lsetstat(self, path: str, attr: SFTPAttributes) -> int:
        """``lsetstat@openssh.com``: like ``chattr`` but a symlink is not followed."""
        return SFTP_OP_UNSUPPORTED

    def expand_path(self, path: str) -> str | int:
        """``expand-path@openssh.com``: expand ``~`` and ``~/x`` against the home
        directory (what ``canonicalize(".")`` returns), then canonicalize.

        Always advertised; ``~user`` gives SFTP_NO_SUCH_FILE by default.
        """
        if path in ("", "~"):
            return self.canonicalize(".")
        if path.startswith("~/"):
            return self.canonicalize(path[2:] or ".")
        if path.startswith("~"):
            return SFTP_NO_SUCH_FILE
        return self.canonicalize(path)

    def home_directory(self, username: str) -> str | int:
        """``home-directory``: the home directory of ``username`` ('' = this user).

        Always advertised; by default this user's home is what
        ``canonicalize(".")`` returns and any other user gives
        SFTP_NO_SUCH_FILE.
        """
        if username == "":
            return self.canonicalize(".")
        return SFTP_NO_SUCH_FILE

    def users_groups_by_id(
        self, uids: list[int], gids: list[int]
    ) -> tuple[list[str], list[str]] | int:
        """``users-groups-by-id@openssh.com``: a name per id, in order ('' if none).

        Advertised only when overridden; OpenSSH's ``sftp ls -l`` then shows
        these names.
        """
        return SFTP_OP_UNSUPPORTED

    def copy_data(
        self,
        read_handle: SFTPHandle,
        read_offset: int,
        length: int,
        write_handle: SFTPHandle,
        write_offset: int,
    ) -> int:
        """``copy-data``: copy ``length`` bytes (0 = to EOF) between open files.

        The default loops over the handles' ``read``/``write``; always
        advertised.
        """
        remaining = length if length else -1
        while remaining:
            want = _COPY_CHUNK if remaining < 0 else min(_COPY_CHUNK, remaining)
            data = read_handle.read(read_offset, want)
            if isinstance(data, int):
                return SFTP_OK if data == SFTP_EOF and remaining < 0 else data
            if not data:
                return SFTP_OK if remaining < 0 else SFTP_EOF
            code = write_handle.write(write_offset, bytes(data))
            if code != SFTP_OK:
                return code
            read_offset += len(data)
            write_offset += len(data)
            if remaining > 0:
                remaining -= len(data)
        return SFTP_OK


def overrides(obj: object, name: str) -> bool:
    """True when ``obj``'s class replaces ``SFTPServerInterface.<name>``."""
    base = getattr(SFTPServerInterface, name, None)
    return getattr(type(obj), name, base) is not base
