"""``SFTPHandle``: an open file or directory of an SFTP session (paramiko.sftp_handle).

Owns the default read/write over ``readfile``/``writefile`` file objects and
the cached directory listing. Must not import the engine at module level.
"""

from __future__ import annotations

import errno
import io
import os
from types import TracebackType
from typing import Any

from geossh.sftp.protocol import (
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)


def convert_errno(e: int | None) -> int:
    """paramiko's errno → SFTP status map: EACCES→3, ENOENT/ENOTDIR→2, else 4."""
    if e == errno.EACCES:
        return SFTP_PERMISSION_DENIED
    if e in (errno.ENOENT, errno.ENOTDIR):
        return SFTP_NO_SUCH_FILE
    return SFTP_FAILURE


#: File objects whose ``write`` copies or writes what it is given and keeps no
#: reference to it (exact types: a subclass may do anything).
_BUFFER_SAFE_FILES = (io.BufferedWriter, io.BufferedRandom, io.FileIO)


def takes_buffer(handle: SFTPHandle) -> bool:
    """May ``handle.write`` get a ``memoryview`` into the engine's receive buffer?

    True when the handle says so (``write_accepts_buffer``), or when it uses the
    default ``write`` over a standard binary file object (``open``/``os.fdopen``),
    which writes the data before returning and keeps no reference to it.
    """
    if handle.write_accepts_buffer:
        return True
    return (
        type(handle).write is SFTPHandle.write
        and type(getattr(handle, "writefile", None)) in _BUFFER_SAFE_FILES
    )


class SFTPHandle:
    """An open file (or directory) that a client refers to by a handle string.

    Subclass it: set ``readfile``/``writefile`` to a file object to get
    ``read``/``write``/``close`` for free, and override ``stat`` and
    ``chattr``. ``flags`` are the ``os.O_*`` flags given to
    ``SFTPServerInterface.open`` (``O_APPEND`` disables seeking on write).
    Usable as a context manager (closes on exit).
    """

    write_accepts_buffer = False
    """geossh extension: True if ``write`` takes any bytes-like object (a
    ``memoryview`` into the receive buffer, saving a copy) and keeps no
    reference to it after returning."""

    def __init__(self, flags: int = 0) -> None:
        self.__flags = flags
        self.__name: bytes | None = None
        self.__files: list[Any] = []
        self.__next_file = 0
        self.__tell: int | None = None

    def __enter__(self) -> SFTPHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Called when the client closes the handle: closes readfile/writefile."""
        readfile = getattr(self, "readfile", None)
        if readfile is not None:
            readfile.close()
        writefile = getattr(self, "writefile", None)
        if writefile is not None:
            writefile.close()

    def read(self, offset: int, length: int) -> bytes | int:
        """Up to ``length`` bytes at ``offset``; ``b""`` (or SFTP_EOF) at EOF, or a code."""
        readfile = getattr(self, "readfile", None)
        if readfile is None:
            return SFTP_OP_UNSUPPORTED
        try:
            if self.__tell is None:
                self.__tell = readfile.tell()
            if offset != self.__tell:
                readfile.seek(offset)
                self.__tell = offset
            data: bytes = readfile.read(length)
        except OSError as e:
            self.__tell = None
            return convert_errno(e.errno)
        self.__tell += len(data)
        return data

    def write(self, offset: int, data: bytes) -> int:
        """Write all of ``data`` at ``offset`` (no partial writes); return a code."""
        writefile = getattr(self, "writefile", None)
        if writefile is None:
            return SFTP_OP_UNSUPPORTED
        try:
            if not self.__flags & os.O_APPEND:
                if self.__tell is None:
                    self.__tell = writefile.tell()
                if offset != self.__tell:
                    writefile.seek(offset)
                    self.__tell = offset
            writefile.write(data)
            writefile.flush()
        except OSError as e:
            self.__tell = None
            return convert_errno(e.errno)
        if self.__tell is not None:
            self.__tell += len(data)
        return SFTP_OK

    def stat(self) -> Any:
        """``SFTPAttributes`` of the open file, or a code (default: unsupported)."""
        return SFTP_OP_UNSUPPORTED

    def chattr(self, attr: Any) -> int:
        """Change attributes (only the fields the client sent); return a code."""
        return SFTP_OP_UNSUPPORTED

    # -- internals used by the engine ------------------------------------------
    def _set_files(self, files: list[Any]) -> None:
        self.__files = list(files)
        self.__next_file = 0

    def _get_next_files(self, count: int = 16) -> list[Any]:
        start = self.__next_file
        out = self.__files[start : start + count]
        self.__next_file = start + len(out)
        return out

    def _unget_files(self, count: int) -> None:
        """Put back the last ``count`` entries returned by ``_get_next_files``."""
        self.__next_file = max(0, self.__next_file - count)

    def _get_name(self) -> bytes | None:
        return self.__name

    def _set_name(self, name: bytes) -> None:
        self.__name = name
