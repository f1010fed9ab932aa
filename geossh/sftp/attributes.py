"""``SFTPAttributes``: file attributes as SFTP carries them (paramiko.sftp_attr).

Owns the attribute object, its ``ls -l`` rendering and its conversion to and
from the wire form in ``protocol``. Must not import gevent or the engine.
"""

from __future__ import annotations

import stat
import time
from typing import Any

from geossh.sftp import protocol as p


class SFTPAttributes:
    """Attributes of a file, mirroring ``os.stat`` results.

    Fields (None when absent): ``st_size``, ``st_uid``, ``st_gid``,
    ``st_mode``, ``st_atime``, ``st_mtime``; ``attr`` holds extended
    name→value pairs; listings also set ``filename`` (and may set
    ``longname``). After decoding a client request, ``_flags`` holds the
    client's flags, so ``attr._flags & attr.FLAG_SIZE`` tells what was sent.
    """

    FLAG_SIZE = p.ATTR_SIZE
    FLAG_UIDGID = p.ATTR_UIDGID
    FLAG_PERMISSIONS = p.ATTR_PERMISSIONS
    FLAG_AMTIME = p.ATTR_AMTIME
    FLAG_EXTENDED = p.ATTR_EXTENDED

    filename: str
    longname: str

    def __init__(self) -> None:
        self._flags = 0
        self.st_size: int | None = None
        self.st_uid: int | None = None
        self.st_gid: int | None = None
        self.st_mode: int | None = None
        self.st_atime: float | None = None
        self.st_mtime: float | None = None
        self.attr: dict[Any, Any] = {}

    @classmethod
    def from_stat(cls, obj: Any, filename: str | None = None) -> SFTPAttributes:
        """Build from an ``os.stat`` result (or anything with the same fields)."""
        attr = cls()
        attr.st_size = obj.st_size
        attr.st_uid = obj.st_uid
        attr.st_gid = obj.st_gid
        attr.st_mode = obj.st_mode
        attr.st_atime = obj.st_atime
        attr.st_mtime = obj.st_mtime
        if filename is not None:
            attr.filename = filename
        return attr

    # -- wire form -----------------------------------------------------------
    @classmethod
    def _from_raw(cls, raw: p.RawAttrs) -> SFTPAttributes:
        attr = cls()
        flags, size, uid, gid, perm, atime, mtime, ext = raw
        attr._flags = flags
        attr.st_size = size
        attr.st_uid = uid
        attr.st_gid = gid
        attr.st_mode = perm
        attr.st_atime = atime
        attr.st_mtime = mtime
        attr.attr = dict(ext)
        return attr

    def _to_wire(self) -> bytes:
        """Encode; like paramiko, ``_flags`` is recomputed from the fields present."""
        data = p.encode_attrs(
            self.st_size,
            self.st_uid,
            self.st_gid,
            self.st_mode,
            self.st_atime,
            self.st_mtime,
            self.attr or None,
        )
        self._flags = int.from_bytes(data[:4], "big")
        return data

    # -- rendering -------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<SFTPAttributes: {self._debug_str()}>"

    def _debug_str(self) -> str:
        out = "[ "
        if self.st_size is not None:
            out += f"size={self.st_size} "
        if self.st_uid is not None and self.st_gid is not None:
            out += f"uid={self.st_uid} gid={self.st_gid} "
        if self.st_mode is not None:
            out += "mode=" + oct(self.st_mode) + " "
        if self.st_atime is not None and self.st_mtime is not None:
            out += f"atime={self.st_atime} mtime={self.st_mtime} "
        for key, value in self.attr.items():
            out += f'"{key!s}"={value!r} '
        return out + "]"

    @staticmethod
    def _rwx(n: int, suid: int, sticky: bool = False) -> str:
        special = 2 if suid else 0
        out = "-r"[n >> 2] + "-w"[(n >> 1) & 1]
        return out + ("-xTt" if sticky else "-xSs")[special + (n & 1)]

    def _mode_str(self) -> str:
        mode = self.st_mode
        if mode is None:
            return "?---------"
        kinds = {
            stat.S_IFIFO: "p",
            stat.S_IFCHR: "c",
            stat.S_IFDIR: "d",
            stat.S_IFBLK: "b",
            stat.S_IFREG: "-",
            stat.S_IFLNK: "l",
            stat.S_IFSOCK: "s",
        }
        out = kinds.get(stat.S_IFMT(mode), "?")
        out += self._rwx((mode & 0o700) >> 6, mode & stat.S_ISUID)
        out += self._rwx((mode & 0o70) >> 3, mode & stat.S_ISGID)
        return out + self._rwx(mode & 7, mode & stat.S_ISVTX, True)

    def _date_str(self) -> str:
        mtime = self.st_mtime
        if mtime is None or mtime == 0xFFFFFFFF:
            return "(unknown date)"
        try:
            when = time.localtime(mtime)
        except (OverflowError, OSError, ValueError):
            return "(unknown date)"
        if abs(time.time() - mtime) > 15_552_000:  # about six months
            return time.strftime("%d %b %Y", when)
        return time.strftime("%d %b %H:%M", when)

    def __str__(self) -> str:
        """An ``ls -l``-style line (the NAME longname)."""
        filename = getattr(self, "filename", "?")
        return "%s   1 %-8d %-8d %8d %-12s %s" % (  # noqa: UP031 (paramiko's format)
            self._mode_str(),
            self.st_uid or 0,
            self.st_gid or 0,
            self.st_size or 0,
            self._date_str(),
            filename,
        )

    def asbytes(self) -> bytes:
        """``str(self)`` encoded (UTF-8, surrogates restored)."""
        return p.encode_path(str(self))
