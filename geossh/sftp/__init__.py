"""SFTP server support: protocol version 3, a local-filesystem backend, legacy scp.

This package also stands in for paramiko's ``paramiko.sftp`` module: it
exports the ``CMD_*``/``SFTP_*`` constants, ``SFTP_DESC``, ``CMD_NAMES``,
``int64``, ``BaseSFTP`` and ``SFTPError``. The server classes are loaded on
first use (``geossh.sftp.SFTPServer`` etc.) so the pure codec can be
imported without gevent.
"""

from __future__ import annotations

from logging import DEBUG
from typing import Any

from geossh.errors import SFTPError
from geossh.sftp.base import BaseSFTP, int64
from geossh.sftp.protocol import (
    _VERSION,
    CMD_ATTRS,
    CMD_CLOSE,
    CMD_DATA,
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_FSETSTAT,
    CMD_FSTAT,
    CMD_HANDLE,
    CMD_INIT,
    CMD_LSTAT,
    CMD_MKDIR,
    CMD_NAME,
    CMD_NAMES,
    CMD_OPEN,
    CMD_OPENDIR,
    CMD_READ,
    CMD_READDIR,
    CMD_READLINK,
    CMD_REALPATH,
    CMD_REMOVE,
    CMD_RENAME,
    CMD_RMDIR,
    CMD_SETSTAT,
    CMD_STAT,
    CMD_STATUS,
    CMD_SYMLINK,
    CMD_VERSION,
    CMD_WRITE,
    SFTP_BAD_MESSAGE,
    SFTP_CONNECTION_LOST,
    SFTP_DESC,
    SFTP_EOF,
    SFTP_FAILURE,
    SFTP_FLAG_APPEND,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_EXCL,
    SFTP_FLAG_READ,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    SFTP_NO_CONNECTION,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)

_LAZY = {
    "SFTPServer": "geossh.sftp.server",
    "SFTPServerInterface": "geossh.sftp.interface",
    "SFTPHandle": "geossh.sftp.handle",
    "SFTPAttributes": "geossh.sftp.attributes",
    "LocalSFTPServer": "geossh.sftp.local",
    "LocalSFTPHandle": "geossh.sftp.local",
    "ScpHandler": "geossh.sftp.scp",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'geossh.sftp' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CMD_ATTRS",
    "CMD_CLOSE",
    "CMD_DATA",
    "CMD_EXTENDED",
    "CMD_EXTENDED_REPLY",
    "CMD_FSETSTAT",
    "CMD_FSTAT",
    "CMD_HANDLE",
    "CMD_INIT",
    "CMD_LSTAT",
    "CMD_MKDIR",
    "CMD_NAME",
    "CMD_NAMES",
    "CMD_OPEN",
    "CMD_OPENDIR",
    "CMD_READ",
    "CMD_READDIR",
    "CMD_READLINK",
    "CMD_REALPATH",
    "CMD_REMOVE",
    "CMD_RENAME",
    "CMD_RMDIR",
    "CMD_SETSTAT",
    "CMD_STAT",
    "CMD_STATUS",
    "CMD_SYMLINK",
    "CMD_VERSION",
    "CMD_WRITE",
    "DEBUG",
    "SFTP_BAD_MESSAGE",
    "SFTP_CONNECTION_LOST",
    "SFTP_DESC",
    "SFTP_EOF",
    "SFTP_FAILURE",
    "SFTP_FLAG_APPEND",
    "SFTP_FLAG_CREATE",
    "SFTP_FLAG_EXCL",
    "SFTP_FLAG_READ",
    "SFTP_FLAG_TRUNC",
    "SFTP_FLAG_WRITE",
    "SFTP_NO_CONNECTION",
    "SFTP_NO_SUCH_FILE",
    "SFTP_OK",
    "SFTP_OP_UNSUPPORTED",
    "SFTP_PERMISSION_DENIED",
    "_VERSION",
    "BaseSFTP",
    "SFTPError",
    "int64",
]
