"""SFTP request handlers: decoded request → interface call → encoded reply.

Owns the mapping of every request type and extension onto
``SFTPServerInterface``/``SFTPHandle`` calls and the handle tables. The
session loop (``server.py``) owns framing, scheduling and output. Every
handler appends complete reply packets to ``out``; none does I/O itself.
Must not import gevent.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from collections.abc import Callable
from typing import Any

from geossh.sftp import protocol as p
from geossh.sftp.attributes import SFTPAttributes
from geossh.sftp.handle import SFTPHandle, takes_buffer
from geossh.sftp.interface import SFTPServerInterface, overrides

Out = list[bytes]
_MAX_OFFSET = (1 << 63) - 1
_READDIR_BATCH = 100
_NAME_BUDGET = p.MAX_PACKET - 4096
_INVALID_HANDLE = "Invalid handle"
_HASHES: dict[str, Callable[[], Any]] = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}

#: Most user and group ids one users-groups-by-id request may ask about (each
#: lookup may consult the system's user database).
MAX_NAME_LOOKUPS = 1024

# (extension name, version string, interface method that must be overridden or None)
EXTENSIONS: tuple[tuple[str, str, str | None], ...] = (
    ("posix-rename@openssh.com", "1", "posix_rename"),
    ("statvfs@openssh.com", "2", "statvfs"),
    ("fstatvfs@openssh.com", "2", "fstatvfs"),
    ("hardlink@openssh.com", "1", "hardlink"),
    ("fsync@openssh.com", "1", "fsync"),
    ("lsetstat@openssh.com", "1", "lsetstat"),
    ("limits@openssh.com", "1", None),
    ("expand-path@openssh.com", "1", None),
    ("home-directory", "1", None),
    ("users-groups-by-id@openssh.com", "1", "users_groups_by_id"),
    ("copy-data", "1", None),
    ("check-file", "md5,sha1,sha256,sha512", None),
)


def convert_pflags(pflags: int) -> int:
    """SFTP open pflags → ``os.O_*`` flags (filexfer-02 §6.3)."""
    if pflags & p.SFTP_FLAG_READ and pflags & p.SFTP_FLAG_WRITE:
        flags = os.O_RDWR
    elif pflags & p.SFTP_FLAG_WRITE:
        flags = os.O_WRONLY
    else:
        flags = os.O_RDONLY
    if pflags & p.SFTP_FLAG_APPEND:
        flags |= os.O_APPEND
    if pflags & p.SFTP_FLAG_CREATE:
        flags |= os.O_CREAT
    if pflags & p.SFTP_FLAG_TRUNC:
        flags |= os.O_TRUNC
    if pflags & p.SFTP_FLAG_EXCL:
        flags |= os.O_EXCL
    return flags


def attrs_bytes(attr: Any) -> bytes:
    """Encode anything shaped like ``SFTPAttributes`` (duck-typed)."""
    to_wire = getattr(attr, "_to_wire", None)
    if to_wire is not None:
        return bytes(to_wire())
    return p.encode_attrs(
        getattr(attr, "st_size", None),
        getattr(attr, "st_uid", None),
        getattr(attr, "st_gid", None),
        getattr(attr, "st_mode", None),
        getattr(attr, "st_atime", None),
        getattr(attr, "st_mtime", None),
        getattr(attr, "attr", None) or None,
    )


def status(rid: int, code: Any, message: str | None = None) -> bytes:
    """STATUS for an interface return value (anything but an int is FAILURE).

    An int subclass with a ``message`` attribute (``geossh.sftp.local.SFTPStatus``)
    gives the status text.
    """
    if type(code) is not int:
        if message is None:
            message = getattr(code, "message", None)
        code = int(code) if isinstance(code, int) else p.SFTP_FAILURE
    return p.encode_status(rid, code, message)


class RequestHandlers:
    """Mixin for ``SFTPServer``: one method per request type and extension."""

    server: SFTPServerInterface
    file_table: dict[bytes, SFTPHandle]
    folder_table: dict[bytes, SFTPHandle]
    next_handle: int
    max_open_handles: int
    max_request_size: int
    symlink_draft_order: bool
    logger: logging.Logger

    def _pause(self) -> None:
        """Yield point between bounded steps of a long request (the engine's is real)."""

    def _init_handlers(self) -> None:
        self._handlers: dict[int, Callable[..., None]] = {
            p.CMD_OPEN: self._h_open,
            p.CMD_CLOSE: self._h_close,
            p.CMD_LSTAT: self._h_lstat,
            p.CMD_FSTAT: self._h_fstat,
            p.CMD_SETSTAT: self._h_setstat,
            p.CMD_FSETSTAT: self._h_fsetstat,
            p.CMD_OPENDIR: self._h_opendir,
            p.CMD_READDIR: self._h_readdir,
            p.CMD_REMOVE: self._h_remove,
            p.CMD_MKDIR: self._h_mkdir,
            p.CMD_RMDIR: self._h_rmdir,
            p.CMD_REALPATH: self._h_realpath,
            p.CMD_STAT: self._h_stat,
            p.CMD_RENAME: self._h_rename,
            p.CMD_READLINK: self._h_readlink,
            p.CMD_SYMLINK: self._h_symlink,
            p.CMD_EXTENDED: self._h_extended,
        }
        si = self.server
        self._extended: dict[str, Callable[..., None]] = {
            "posix-rename@openssh.com": self._x_posix_rename,
            "statvfs@openssh.com": self._x_statvfs,
            "fstatvfs@openssh.com": self._x_fstatvfs,
            "hardlink@openssh.com": self._x_hardlink,
            "fsync@openssh.com": self._x_fsync,
            "lsetstat@openssh.com": self._x_lsetstat,
            "limits@openssh.com": self._x_limits,
            "expand-path@openssh.com": self._x_expand_path,
            "home-directory": self._x_home_directory,
            "users-groups-by-id@openssh.com": self._x_users_groups_by_id,
            "copy-data": self._x_copy_data,
            "check-file": self._x_check_file,
            "check-file-handle": self._x_check_file,
        }
        self.extensions = [
            (name, version)
            for name, version, method in EXTENSIONS
            if method is None or overrides(si, method)
        ]

    # -- helpers -------------------------------------------------------------------
    def _register(self, rid: int, result: Any, folder: bool, out: Out) -> None:
        if not isinstance(result, SFTPHandle):
            out.append(status(rid, result))
            return
        name = b"hx%d" % self.next_handle
        self.next_handle += 1
        result._set_name(name)
        (self.folder_table if folder else self.file_table)[name] = result
        out.append(p.encode_handle(rid, name))

    def _too_many_handles(self, rid: int, out: Out) -> bool:
        if len(self.file_table) + len(self.folder_table) < self.max_open_handles:
            return False
        out.append(p.encode_status(rid, p.SFTP_FAILURE, "Too many open handles"))
        return True

    def _file(self, rid: int, handle: bytes, out: Out) -> SFTPHandle | None:
        f = self.file_table.get(handle)
        if f is None:
            out.append(p.encode_status(rid, p.SFTP_FAILURE, _INVALID_HANDLE))
        return f

    def _attrs_reply(self, rid: int, result: Any, out: Out) -> None:
        if isinstance(result, int) or result is None:
            out.append(status(rid, result))
        else:
            out.append(p.encode_attrs_reply(rid, attrs_bytes(result)))

    def _name_reply(self, rid: int, result: Any, out: Out) -> None:
        if isinstance(result, (str, bytes)):
            out.append(p.encode_name(rid, [(result, b"", p.EMPTY_ATTRS)]))
        else:
            out.append(status(rid, result))

    # -- hot paths -----------------------------------------------------------------
    def _h_read(self, buf: p.Buffer, start: int, end: int, out: Out) -> int:
        """READ; returns the number of data bytes queued."""
        rid, handle, offset, length = p.decode_read(buf, start, end)
        f = self.file_table.get(handle)
        if f is None:
            out.append(p.encode_status(rid, p.SFTP_FAILURE, _INVALID_HANDLE))
            return 0
        if offset > _MAX_OFFSET:
            out.append(p.encode_status(rid, p.SFTP_BAD_MESSAGE, "Offset out of range"))
            return 0
        if length > p.MAX_READ:
            length = p.MAX_READ
        data = f.read(offset, length)
        if isinstance(data, int):
            out.append(status(rid, data))
            return 0
        if type(data) is not bytes:  # str (paramiko allows it), or a buffer the handle reuses
            data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        n = len(data)
        if not n:
            out.append(p.encode_status(rid, p.SFTP_EOF))
            return 0
        if n > length:
            data = data[:length]
            n = length
        out.append(p.encode_data_header(rid, n))
        out.append(data)
        return n

    def _h_write(self, buf: p.Buffer, start: int, end: int, out: Out) -> None:
        rid, handle, offset, dstart, dend = p.decode_write_span(buf, start, end)
        f = self._writable(rid, handle, offset, out)
        if f is not None:
            if takes_buffer(f):
                data: bytes | memoryview = memoryview(buf)[dstart:dend]
            else:
                data = p.copy_out(buf, dstart, dend)
            code = f.write(offset, data)  # type: ignore[arg-type]
            del data
            self._write_reply(rid, code, out)

    def _h_write_owned(self, rid: int, handle: bytes, offset: int, data: bytes, out: Out) -> None:
        """WRITE whose data the engine already copied out of its receive buffer."""
        f = self._writable(rid, handle, offset, out)
        if f is not None:
            self._write_reply(rid, f.write(offset, data), out)

    def _writable(self, rid: int, handle: bytes, offset: int, out: Out) -> SFTPHandle | None:
        f = self.file_table.get(handle)
        if f is None:
            out.append(p.encode_status(rid, p.SFTP_FAILURE, _INVALID_HANDLE))
        elif offset > _MAX_OFFSET:
            out.append(p.encode_status(rid, p.SFTP_BAD_MESSAGE, "Offset out of range"))
        else:
            return f
        return None

    @staticmethod
    def _write_reply(rid: int, code: Any, out: Out) -> None:
        out.append(p.encode_status_ok(rid) if code == p.SFTP_OK else status(rid, code))

    # -- files and directories -------------------------------------------------------
    def _h_open(self, rid: int, out: Out, path: str, pflags: int, raw: p.RawAttrs) -> None:
        if self._too_many_handles(rid, out):
            return
        attr = SFTPAttributes._from_raw(raw)
        self._register(rid, self.server.open(path, convert_pflags(pflags), attr), False, out)

    def _h_close(self, rid: int, out: Out, handle: bytes) -> None:
        f = self.file_table.pop(handle, None) or self.folder_table.pop(handle, None)
        if f is None:
            out.append(p.encode_status(rid, p.SFTP_FAILURE, _INVALID_HANDLE))
            return
        f.close()
        out.append(p.encode_status_ok(rid))

    def _h_opendir(self, rid: int, out: Out, path: str) -> None:
        if self._too_many_handles(rid, out):
            return
        open_folder = getattr(self.server, "open_folder", None)  # LocalSFTPServer's lazy listing
        result: Any = open_folder(path) if open_folder else self.server.list_folder(path)
        if isinstance(result, list):
            folder = SFTPHandle()
            folder._set_files(result)
            result = folder
        self._register(rid, result, True, out)

    def _h_readdir(self, rid: int, out: Out, handle: bytes) -> None:
        folder = self.folder_table.get(handle)
        if folder is None:
            out.append(p.encode_status(rid, p.SFTP_FAILURE, _INVALID_HANDLE))
            return
        entries: list[tuple[bytes | str, bytes | str, bytes]] = []
        size = 0
        batch = folder._get_next_files(_READDIR_BATCH)
        for i, attr in enumerate(batch):
            longname = getattr(attr, "longname", None) or str(attr)
            entry = (attr.filename, longname, attrs_bytes(attr))
            size += len(p.encode_path(entry[0])) + len(p.encode_path(longname)) + 8
            size += len(entry[2])
            if entries and size > _NAME_BUDGET:
                folder._unget_files(len(batch) - i)
                break
            entries.append(entry)
        if not entries:
            out.append(p.encode_status(rid, p.SFTP_EOF))
        else:
            out.append(p.encode_name(rid, entries))

    def _h_stat(self, rid: int, out: Out, path: str) -> None:
        self._attrs_reply(rid, self.server.stat(path), out)

    def _h_lstat(self, rid: int, out: Out, path: str) -> None:
        self._attrs_reply(rid, self.server.lstat(path), out)

    def _h_fstat(self, rid: int, out: Out, handle: bytes) -> None:
        f = self._file(rid, handle, out)
        if f is not None:
            self._attrs_reply(rid, f.stat(), out)

    def _h_setstat(self, rid: int, out: Out, path: str, raw: p.RawAttrs) -> None:
        out.append(status(rid, self.server.chattr(path, SFTPAttributes._from_raw(raw))))

    def _h_fsetstat(self, rid: int, out: Out, handle: bytes, raw: p.RawAttrs) -> None:
        f = self._file(rid, handle, out)
        if f is not None:
            out.append(status(rid, f.chattr(SFTPAttributes._from_raw(raw))))

    # -- paths -------------------------------------------------------------------------
    def _h_remove(self, rid: int, out: Out, path: str) -> None:
        out.append(status(rid, self.server.remove(path)))

    def _h_mkdir(self, rid: int, out: Out, path: str, raw: p.RawAttrs) -> None:
        out.append(status(rid, self.server.mkdir(path, SFTPAttributes._from_raw(raw))))

    def _h_rmdir(self, rid: int, out: Out, path: str) -> None:
        out.append(status(rid, self.server.rmdir(path)))

    def _h_rename(self, rid: int, out: Out, oldpath: str, newpath: str) -> None:
        out.append(status(rid, self.server.rename(oldpath, newpath)))

    def _h_realpath(self, rid: int, out: Out, path: str) -> None:
        self._name_reply(rid, self.server.canonicalize(path), out)

    def _h_readlink(self, rid: int, out: Out, path: str) -> None:
        self._name_reply(rid, self.server.readlink(path), out)

    def _h_symlink(self, rid: int, out: Out, first: str, second: str) -> None:
        # OpenSSH (and paramiko) send the target first, against the draft.
        target_path, path = (second, first) if self.symlink_draft_order else (first, second)
        out.append(status(rid, self.server.symlink(target_path, path)))

    # -- extensions --------------------------------------------------------------------
    def _h_extended(self, rid: int, out: Out, name: str, *fields: Any) -> None:
        handler = self._extended.get(name)
        if handler is None:
            out.append(p.encode_status(rid, p.SFTP_OP_UNSUPPORTED))
        else:
            handler(rid, out, *fields)

    def _x_posix_rename(self, rid: int, out: Out, oldpath: str, newpath: str) -> None:
        out.append(status(rid, self.server.posix_rename(oldpath, newpath)))

    def _statvfs_reply(self, rid: int, st: Any, out: Out) -> None:
        if isinstance(st, int) or st is None:
            out.append(status(rid, st))
            return
        flag = getattr(st, "f_flag", 0)
        wire_flag = (p.STATVFS_RDONLY if flag & os.ST_RDONLY else 0) | (
            p.STATVFS_NOSUID if flag & os.ST_NOSUID else 0
        )
        fields = [getattr(st, name, 0) or 0 for name in _STATVFS_FIELDS]
        body = p.encode_u64s([*fields, wire_flag, getattr(st, "f_namemax", 0) or 0])
        out.append(p.encode_extended_reply(rid, body))

    def _x_statvfs(self, rid: int, out: Out, path: str) -> None:
        self._statvfs_reply(rid, self.server.statvfs(path), out)

    def _x_fstatvfs(self, rid: int, out: Out, handle: bytes) -> None:
        f = self._file(rid, handle, out)
        if f is not None:
            self._statvfs_reply(rid, self.server.fstatvfs(f), out)

    def _x_hardlink(self, rid: int, out: Out, oldpath: str, newpath: str) -> None:
        out.append(status(rid, self.server.hardlink(oldpath, newpath)))

    def _x_fsync(self, rid: int, out: Out, handle: bytes) -> None:
        f = self._file(rid, handle, out)
        if f is not None:
            out.append(status(rid, self.server.fsync(f)))

    def _x_lsetstat(self, rid: int, out: Out, path: str, raw: p.RawAttrs) -> None:
        out.append(status(rid, self.server.lsetstat(path, SFTPAttributes._from_raw(raw))))

    def _x_limits(self, rid: int, out: Out) -> None:
        packet = min(p.MAX_PACKET, self.max_request_size - 1024)
        values = (packet, p.MAX_READ, min(p.MAX_WRITE, packet - 1024), self.max_open_handles)
        out.append(p.encode_extended_reply(rid, p.encode_u64s(values)))

    def _x_expand_path(self, rid: int, out: Out, path: str) -> None:
        self._name_reply(rid, self.server.expand_path(path), out)

    def _x_home_directory(self, rid: int, out: Out, username: str) -> None:
        self._name_reply(rid, self.server.home_directory(username), out)

    def _x_users_groups_by_id(self, rid: int, out: Out, uids: bytes, gids: bytes) -> None:
        """Names for ids (OpenSSH PROTOCOL 4.12); '' for an id without one."""
        if len(uids) % 4 or len(gids) % 4:
            out.append(p.encode_status(rid, p.SFTP_BAD_MESSAGE, "id lists must be uint32s"))
            return
        ids = [struct.unpack(f">{len(raw) // 4}I", raw) for raw in (uids, gids)]
        if len(ids[0]) + len(ids[1]) > MAX_NAME_LOOKUPS:
            out.append(p.encode_status(rid, p.SFTP_FAILURE, "Too many ids in one request"))
            return
        result = self.server.users_groups_by_id(list(ids[0]), list(ids[1]))
        if isinstance(result, int):
            out.append(status(rid, result))
            return
        users, groups = result
        if len(users) != len(ids[0]) or len(groups) != len(ids[1]):
            out.append(p.encode_status(rid, p.SFTP_FAILURE, "Name lookup failed"))
            return
        body = b"".join(
            p.encode_string(b"".join(p.encode_string(name) for name in names))
            for names in (users, groups)
        )
        out.append(p.encode_extended_reply(rid, body))

    def _x_copy_data(
        self, rid: int, out: Out, src: bytes, src_off: int, length: int, dst: bytes, dst_off: int
    ) -> None:
        reader = self._file(rid, src, out)
        if reader is None:
            return
        writer = self._file(rid, dst, out)
        if writer is None:
            return
        if src == dst:
            out.append(p.encode_status(rid, p.SFTP_FAILURE, "Source and target are the same"))
        elif max(src_off, dst_off, length) > _MAX_OFFSET:
            out.append(p.encode_status(rid, p.SFTP_BAD_MESSAGE, "Offset out of range"))
        else:
            out.append(status(rid, self.server.copy_data(reader, src_off, length, writer, dst_off)))

    def _x_check_file(
        self, rid: int, out: Out, handle: bytes, algs: bytes, start: int, length: int, block: int
    ) -> None:
        """check-file (filexfer-extensions): hashes of a range, per block."""
        f = self._file(rid, handle, out)
        if f is None:
            return
        names = algs.decode("ascii", "replace").split(",")
        alg = next((n for n in names if n in _HASHES), None)
        if alg is None:
            out.append(p.encode_status(rid, p.SFTP_FAILURE, "No supported hash types found"))
            return
        if length == 0:
            st = f.stat()
            if isinstance(st, int) or getattr(st, "st_size", None) is None:
                out.append(status(rid, st, "Unable to stat file"))
                return
            length = max(0, int(st.st_size) - start)
        block = block or length
        if block < 256 or start > _MAX_OFFSET or length > _MAX_OFFSET:
            out.append(p.encode_status(rid, p.SFTP_FAILURE, "Block size too small"))
            return
        if -(-length // block) * _HASHES[alg]().digest_size > _NAME_BUDGET:
            out.append(p.encode_status(rid, p.SFTP_FAILURE, "Too many blocks"))
            return
        digests = self._hash_blocks(f, _HASHES[alg], start, length, block)
        if isinstance(digests, int):
            out.append(status(rid, digests, "Unable to hash file"))
            return
        body = p.encode_string("check-file") + p.encode_string(alg) + digests
        out.append(p.encode_extended_reply(rid, body))

    def _hash_blocks(
        self, f: SFTPHandle, factory: Callable[[], Any], start: int, length: int, block: int
    ) -> bytes | int:
        """Digests of each ``block`` of the range, read in 64 KiB steps with a yield
        point between steps (a client chooses the length, up to the whole file)."""
        digests = []
        offset, stop = start, start + length
        while offset < stop:
            h = factory()
            block_end = min(offset + block, stop)
            while offset < block_end:
                data = f.read(offset, min(65536, block_end - offset))
                if isinstance(data, int):
                    return data
                if not data:
                    return p.SFTP_EOF
                h.update(data)
                offset += len(data)
                self._pause()
            digests.append(h.digest())
        return b"".join(digests)


_STATVFS_FIELDS = (
    "f_bsize",
    "f_frsize",
    "f_blocks",
    "f_bfree",
    "f_bavail",
    "f_files",
    "f_ffree",
    "f_favail",
    "f_fsid",
)
