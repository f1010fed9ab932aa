"""SFTP version 3 wire codec (draft-ietf-secsh-filexfer-02, as OpenSSH speaks it).

Owns the protocol numbers, the limits geossh enforces, request decoding and
response encoding. Decoders work on ``(buf, start, end)`` windows of the
receive buffer so the hot READ/WRITE paths copy nothing but the write data;
every length is checked against ``end`` before it is used.

Pure: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

from geossh.errors import SFTPError

Buffer = bytes | bytearray | memoryview

# -- packet types (filexfer-02 §3) ------------------------------------------
(
    CMD_INIT,
    CMD_VERSION,
    CMD_OPEN,
    CMD_CLOSE,
    CMD_READ,
    CMD_WRITE,
    CMD_LSTAT,
    CMD_FSTAT,
    CMD_SETSTAT,
    CMD_FSETSTAT,
    CMD_OPENDIR,
    CMD_READDIR,
    CMD_REMOVE,
    CMD_MKDIR,
    CMD_RMDIR,
    CMD_REALPATH,
    CMD_STAT,
    CMD_RENAME,
    CMD_READLINK,
    CMD_SYMLINK,
) = range(1, 21)
(CMD_STATUS, CMD_HANDLE, CMD_DATA, CMD_NAME, CMD_ATTRS) = range(101, 106)
(CMD_EXTENDED, CMD_EXTENDED_REPLY) = range(200, 202)

CMD_NAMES = {
    CMD_INIT: "init",
    CMD_VERSION: "version",
    CMD_OPEN: "open",
    CMD_CLOSE: "close",
    CMD_READ: "read",
    CMD_WRITE: "write",
    CMD_LSTAT: "lstat",
    CMD_FSTAT: "fstat",
    CMD_SETSTAT: "setstat",
    CMD_FSETSTAT: "fsetstat",
    CMD_OPENDIR: "opendir",
    CMD_READDIR: "readdir",
    CMD_REMOVE: "remove",
    CMD_MKDIR: "mkdir",
    CMD_RMDIR: "rmdir",
    CMD_REALPATH: "realpath",
    CMD_STAT: "stat",
    CMD_RENAME: "rename",
    CMD_READLINK: "readlink",
    CMD_SYMLINK: "symlink",
    CMD_STATUS: "status",
    CMD_HANDLE: "handle",
    CMD_DATA: "data",
    CMD_NAME: "name",
    CMD_ATTRS: "attrs",
    CMD_EXTENDED: "extended",
    CMD_EXTENDED_REPLY: "extended_reply",
}

# -- status codes (filexfer-02 §7) ------------------------------------------
SFTP_OK = 0
(
    SFTP_EOF,
    SFTP_NO_SUCH_FILE,
    SFTP_PERMISSION_DENIED,
    SFTP_FAILURE,
    SFTP_BAD_MESSAGE,
    SFTP_NO_CONNECTION,
    SFTP_CONNECTION_LOST,
    SFTP_OP_UNSUPPORTED,
) = range(1, 9)

SFTP_DESC = [
    "Success",
    "End of file",
    "No such file",
    "Permission denied",
    "Failure",
    "Bad message",
    "No connection",
    "Connection lost",
    "Operation unsupported",
]

# -- OPEN pflags (filexfer-02 §6.3) -----------------------------------------
SFTP_FLAG_READ = 0x1
SFTP_FLAG_WRITE = 0x2
SFTP_FLAG_APPEND = 0x4
SFTP_FLAG_CREATE = 0x8
SFTP_FLAG_TRUNC = 0x10
SFTP_FLAG_EXCL = 0x20

# -- attribute flags (filexfer-02 §5) ---------------------------------------
ATTR_SIZE = 0x1
ATTR_UIDGID = 0x2
ATTR_PERMISSIONS = 0x4
ATTR_AMTIME = 0x8
ATTR_EXTENDED = 0x80000000

# statvfs@openssh.com f_flag bits (OpenSSH PROTOCOL §4.4)
STATVFS_RDONLY = 0x1
STATVFS_NOSUID = 0x2

_VERSION = 3
SFTP_VERSION = _VERSION

# -- limits (reported by limits@openssh.com) --------------------------------
MAX_PACKET = 256 * 1024
"""Largest SFTP packet (after the length field) a client should send."""
MAX_PACKET_ACCEPTED = MAX_PACKET + 1024
"""Hard bound: a longer declared length ends the session."""
MAX_READ = MAX_PACKET - 1024
"""READ lengths are clamped to this (like OpenSSH)."""
MAX_WRITE = MAX_PACKET - 1024
MAX_HANDLE = 256
"""Longest handle string accepted in a request."""

_HEADER = struct.Struct(">IB")
_HEADER_ID = struct.Struct(">IBI")
_DATA_HEADER = struct.Struct(">IBII")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_U32x2 = struct.Struct(">II")
_U64_U32 = struct.Struct(">QI")
_ATTR_U32X2 = struct.Struct(">II")
_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


class MalformedRequest(SFTPError):
    """A request could not be decoded; ``request_id`` is set when it was readable."""

    code = SFTP_BAD_MESSAGE

    def __init__(self, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class ProtocolViolation(SFTPError):
    """The byte stream is unusable (bad framing); the session must end."""


# ---------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------


def frame_at(
    buf: Buffer, pos: int, end: int, limit: int = MAX_PACKET_ACCEPTED
) -> tuple[int, int, int] | None:
    """Locate the packet starting at ``pos``: ``(type, body_start, body_end)``.

    ``body`` is what follows the type byte. Returns None when the packet is
    not complete yet; raises ``ProtocolViolation`` for a declared length of
    zero or above ``limit`` (checked before anything is buffered beyond the
    5-byte header).
    """
    if end - pos < 5:
        if end - pos >= 4:
            _check_length(_U32.unpack_from(buf, pos)[0], limit)
        return None
    length, ptype = _HEADER.unpack_from(buf, pos)
    _check_length(length, limit)
    stop = pos + 4 + length
    if stop > end:
        return None
    return ptype, pos + 5, stop


def _check_length(length: int, limit: int = MAX_PACKET_ACCEPTED) -> None:
    if length == 0:
        raise ProtocolViolation("zero-length SFTP packet")
    if length > limit:
        raise ProtocolViolation(f"SFTP packet of {length} bytes exceeds {limit}")


def copy_out(buf: Buffer, start: int, end: int) -> bytes:
    """``buf[start:end]`` as bytes, copied once (``bytes(bytearray[a:b])`` copies twice)."""
    with memoryview(buf) as view:
        return view[start:end].tobytes()


def request_id(buf: Buffer, start: int, end: int) -> int | None:
    """The request id at the start of a body, or None if it is truncated."""
    if end - start < 4:
        return None
    return int(_U32.unpack_from(buf, start)[0])


# ---------------------------------------------------------------------------
# Field decoders
# ---------------------------------------------------------------------------

U32, U64, STRING, TEXT, HANDLE, ATTRS = range(6)

RawAttrs = tuple[
    int, int | None, int | None, int | None, int | None, int | None, int | None, dict[bytes, bytes]
]
"""Decoded attributes: (flags, size, uid, gid, permissions, atime, mtime, extended)."""


def _u32(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    if pos + 4 > end:
        raise MalformedRequest("truncated uint32")
    return int(_U32.unpack_from(buf, pos)[0]), pos + 4


def _u64(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    if pos + 8 > end:
        raise MalformedRequest("truncated uint64")
    return int(_U64.unpack_from(buf, pos)[0]), pos + 8


def _string(buf: Buffer, pos: int, end: int, limit: int | None = None) -> tuple[bytes, int]:
    if pos + 4 > end:
        raise MalformedRequest("truncated string length")
    length = _U32.unpack_from(buf, pos)[0]
    pos += 4
    if pos + length > end:
        raise MalformedRequest("truncated string")
    if limit is not None and length > limit:
        raise MalformedRequest(f"string of {length} bytes exceeds {limit}")
    return bytes(buf[pos : pos + length]), pos + length


def decode_path(data: bytes) -> str:
    """Wire path → str: UTF-8, with undecodable bytes kept as surrogates (like os.fsdecode)."""
    return data.decode("utf-8", "surrogateescape")


def encode_path(path: str | bytes) -> bytes:
    """str → wire bytes, the inverse of ``decode_path``."""
    if isinstance(path, str):
        return path.encode("utf-8", "surrogateescape")
    return bytes(path)


def decode_attrs(buf: Buffer, pos: int, end: int) -> tuple[RawAttrs, int]:
    """Decode an ATTRS structure (filexfer-02 §5); unknown flag bits are ignored."""
    flags, pos = _u32(buf, pos, end)
    size = uid = gid = perm = atime = mtime = None
    ext: dict[bytes, bytes] = {}
    if flags & ATTR_SIZE:
        size, pos = _u64(buf, pos, end)
    if flags & ATTR_UIDGID:
        if pos + 8 > end:
            raise MalformedRequest("truncated uid/gid")
        uid, gid = _ATTR_U32X2.unpack_from(buf, pos)
        pos += 8
    if flags & ATTR_PERMISSIONS:
        perm, pos = _u32(buf, pos, end)
    if flags & ATTR_AMTIME:
        if pos + 8 > end:
            raise MalformedRequest("truncated times")
        atime, mtime = _ATTR_U32X2.unpack_from(buf, pos)
        pos += 8
    if flags & ATTR_EXTENDED:
        count, pos = _u32(buf, pos, end)
        for _ in range(count):  # each pair consumes >= 8 bytes, so bounded by end
            key, pos = _string(buf, pos, end)
            ext[key], pos = _string(buf, pos, end)
    return (flags, size, uid, gid, perm, atime, mtime, ext), pos


def decode_fields(
    kinds: Sequence[int], buf: Buffer, pos: int, end: int
) -> tuple[tuple[object, ...], int]:
    """Decode fields of the given kinds; trailing bytes are left (OpenSSH ignores them)."""
    out: list[object] = []
    for kind in kinds:
        value: object
        if kind == TEXT:
            raw, pos = _string(buf, pos, end)
            value = decode_path(raw)
        elif kind == HANDLE:
            value, pos = _string(buf, pos, end, MAX_HANDLE)
        elif kind == U32:
            value, pos = _u32(buf, pos, end)
        elif kind == U64:
            value, pos = _u64(buf, pos, end)
        elif kind == STRING:
            value, pos = _string(buf, pos, end)
        else:
            value, pos = decode_attrs(buf, pos, end)
        out.append(value)
    return tuple(out), pos


# Request bodies after the request id (READ and WRITE have fast decoders).
REQUEST_FIELDS: dict[int, tuple[int, ...]] = {
    CMD_OPEN: (TEXT, U32, ATTRS),
    CMD_CLOSE: (HANDLE,),
    CMD_READ: (HANDLE, U64, U32),
    CMD_WRITE: (HANDLE, U64, STRING),
    CMD_LSTAT: (TEXT,),
    CMD_FSTAT: (HANDLE,),
    CMD_SETSTAT: (TEXT, ATTRS),
    CMD_FSETSTAT: (HANDLE, ATTRS),
    CMD_OPENDIR: (TEXT,),
    CMD_READDIR: (HANDLE,),
    CMD_REMOVE: (TEXT,),
    CMD_MKDIR: (TEXT, ATTRS),
    CMD_RMDIR: (TEXT,),
    CMD_REALPATH: (TEXT,),
    CMD_STAT: (TEXT,),
    CMD_RENAME: (TEXT, TEXT),
    CMD_READLINK: (TEXT,),
    CMD_SYMLINK: (TEXT, TEXT),
}

# EXTENDED request bodies after the extension name.
EXTENDED_FIELDS: dict[str, tuple[int, ...]] = {
    "posix-rename@openssh.com": (TEXT, TEXT),
    "statvfs@openssh.com": (TEXT,),
    "fstatvfs@openssh.com": (HANDLE,),
    "hardlink@openssh.com": (TEXT, TEXT),
    "fsync@openssh.com": (HANDLE,),
    "lsetstat@openssh.com": (TEXT, ATTRS),
    "limits@openssh.com": (),
    "expand-path@openssh.com": (TEXT,),
    "home-directory": (TEXT,),
    "users-groups-by-id@openssh.com": (STRING, STRING),
    "copy-data": (HANDLE, U64, U64, HANDLE, U64),
    "check-file": (HANDLE, STRING, U64, U64, U32),
    "check-file-handle": (HANDLE, STRING, U64, U64, U32),
}

HANDLE_REQUESTS = frozenset({CMD_CLOSE, CMD_READ, CMD_WRITE, CMD_FSTAT, CMD_FSETSTAT, CMD_READDIR})
HANDLE_EXTENSIONS = frozenset(
    {"fstatvfs@openssh.com", "fsync@openssh.com", "copy-data", "check-file", "check-file-handle"}
)


def decode_request(ptype: int, buf: Buffer, start: int, end: int) -> tuple[int, tuple[object, ...]]:
    """Decode a request body: ``(request_id, fields)``.

    For CMD_EXTENDED the fields are ``(name, ...)`` with the extension's own
    fields after the name, or just ``(name,)`` for an unknown extension.
    Raises ``MalformedRequest`` (with the id when it was readable).
    """
    rid = request_id(buf, start, end)
    if rid is None:
        raise MalformedRequest("truncated request id")
    try:
        if ptype == CMD_EXTENDED:
            raw, pos = _string(buf, start + 4, end)
            name = raw.decode("utf-8", "replace")
            kinds = EXTENDED_FIELDS.get(name)
            if kinds is None:
                return rid, (name,)
            fields, _ = decode_fields(kinds, buf, pos, end)
            return rid, (name, *fields)
        fields, _ = decode_fields(REQUEST_FIELDS[ptype], buf, start + 4, end)
    except MalformedRequest as exc:
        exc.request_id = rid
        raise
    return rid, fields


def decode_read(buf: Buffer, start: int, end: int) -> tuple[int, bytes, int, int]:
    """Fast READ decoder: ``(id, handle, offset, length)``."""
    if end - start < 8:
        raise MalformedRequest("truncated READ", request_id(buf, start, end))
    rid, hlen = _U32x2.unpack_from(buf, start)
    pos = start + 8 + hlen
    if hlen > MAX_HANDLE or pos + 12 > end:
        raise MalformedRequest("malformed READ", rid)
    offset, length = _U64_U32.unpack_from(buf, pos)
    return rid, bytes(buf[start + 8 : pos]), offset, length


def decode_write_span(buf: Buffer, start: int, end: int) -> tuple[int, bytes, int, int, int]:
    """Fast WRITE decoder: ``(id, handle, offset, data_start, data_end)``; data stays in ``buf``."""
    if end - start < 8:
        raise MalformedRequest("truncated WRITE", request_id(buf, start, end))
    rid, hlen = _U32x2.unpack_from(buf, start)
    pos = start + 8 + hlen
    if hlen > MAX_HANDLE or pos + 12 > end:
        raise MalformedRequest("malformed WRITE", rid)
    offset, dlen = _U64_U32.unpack_from(buf, pos)
    pos += 12
    if pos + dlen > end:
        raise MalformedRequest("truncated WRITE data", rid)
    return rid, bytes(buf[start + 8 : start + 8 + hlen]), offset, pos, pos + dlen


def decode_write(buf: Buffer, start: int, end: int) -> tuple[int, bytes, int, bytes]:
    """WRITE decoder: ``(id, handle, offset, data)``."""
    rid, handle, offset, dstart, dend = decode_write_span(buf, start, end)
    return rid, handle, offset, copy_out(buf, dstart, dend)


def lane_key(ptype: int, buf: Buffer, start: int, end: int) -> bytes | None:
    """The handle a request is ordered by, or None for path requests.

    Never raises: an undecodable request gets None (it fails in decoding).
    """
    try:
        if ptype in HANDLE_REQUESTS:
            return _string(buf, start + 4, end, MAX_HANDLE)[0]
        if ptype == CMD_EXTENDED:
            raw, pos = _string(buf, start + 4, end)
            if raw.decode("utf-8", "replace") in HANDLE_EXTENSIONS:
                return _string(buf, pos, end, MAX_HANDLE)[0]
    except MalformedRequest:
        pass
    return None


def decode_init(buf: Buffer, start: int, end: int) -> int:
    """INIT body → client version (extension pairs are ignored)."""
    return _u32(buf, start, end)[0]


# ---------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------


def _s(value: bytes | str) -> bytes:
    data = encode_path(value)
    return _U32.pack(len(data)) + data


def packet(ptype: int, body: bytes) -> bytes:
    """Frame a body: uint32 length, type byte, body."""
    return _HEADER.pack(len(body) + 1, ptype) + body


def encode_version(extensions: Iterable[tuple[str, str]], version: int = _VERSION) -> bytes:
    """VERSION with extension-pairs (filexfer-02 §4)."""
    body = _U32.pack(version) + b"".join(_s(k) + _s(v) for k, v in extensions)
    return packet(CMD_VERSION, body)


def _status_tail(code: int, message: str) -> bytes:
    return _U32.pack(code) + _s(message) + _s(b"")


_STATUS_TAILS = {code: _status_tail(code, desc) for code, desc in enumerate(SFTP_DESC)}


def encode_status(rid: int, code: int, message: str | None = None) -> bytes:
    """STATUS(code, message, language "") — default texts are pre-encoded."""
    tail = _STATUS_TAILS.get(code) if message is None else None
    if tail is None:
        text = message if message is not None else "Unknown"
        tail = _status_tail(code & _MASK32, text)
    return _HEADER_ID.pack(len(tail) + 5, CMD_STATUS, rid) + tail


STATUS_OK_TAIL = _STATUS_TAILS[SFTP_OK]
_OK_LEN = len(STATUS_OK_TAIL) + 5
_pack_header_id = _HEADER_ID.pack


def encode_status_ok(rid: int) -> bytes:
    """The hot WRITE reply."""
    return _pack_header_id(_OK_LEN, CMD_STATUS, rid) + STATUS_OK_TAIL


def encode_data_header(rid: int, length: int) -> bytes:
    """Header of DATA; the caller sends the ``length`` data bytes after it."""
    return _DATA_HEADER.pack(length + 9, CMD_DATA, rid, length)


def encode_handle(rid: int, handle: bytes) -> bytes:
    """HANDLE reply."""
    return _HEADER_ID.pack(len(handle) + 9, CMD_HANDLE, rid) + _U32.pack(len(handle)) + handle


def encode_attrs(
    size: int | None = None,
    uid: int | None = None,
    gid: int | None = None,
    perm: int | None = None,
    atime: float | None = None,
    mtime: float | None = None,
    extended: dict[bytes | str, bytes | str] | None = None,
) -> bytes:
    """ATTRS structure; flags come from which fields are present (uid+gid, atime+mtime)."""
    flags = 0
    parts = [b""]
    if size is not None:
        flags |= ATTR_SIZE
        parts.append(_U64.pack(int(size) & _MASK64))
    if uid is not None and gid is not None:
        flags |= ATTR_UIDGID
        parts.append(_ATTR_U32X2.pack(int(uid) & _MASK32, int(gid) & _MASK32))
    if perm is not None:
        flags |= ATTR_PERMISSIONS
        parts.append(_U32.pack(int(perm) & _MASK32))
    if atime is not None and mtime is not None:
        flags |= ATTR_AMTIME
        parts.append(_ATTR_U32X2.pack(int(atime) & _MASK32, int(mtime) & _MASK32))
    if extended:
        flags |= ATTR_EXTENDED
        parts.append(_U32.pack(len(extended)))
        parts.extend(_s(k) + _s(v) for k, v in extended.items())
    parts[0] = _U32.pack(flags)
    return b"".join(parts)


EMPTY_ATTRS = b"\x00\x00\x00\x00"


def encode_attrs_reply(rid: int, attrs: bytes) -> bytes:
    """ATTRS reply around an encoded attribute structure."""
    return _HEADER_ID.pack(len(attrs) + 5, CMD_ATTRS, rid) + attrs


def encode_name(rid: int, entries: Sequence[tuple[bytes | str, bytes | str, bytes]]) -> bytes:
    """NAME reply: entries of (filename, longname, encoded attrs)."""
    body = b"".join(_s(name) + _s(long) + attrs for name, long, attrs in entries)
    return _HEADER_ID.pack(len(body) + 9, CMD_NAME, rid) + _U32.pack(len(entries)) + body


def encode_extended_reply(rid: int, body: bytes) -> bytes:
    """EXTENDED_REPLY with an extension-specific body."""
    return _HEADER_ID.pack(len(body) + 5, CMD_EXTENDED_REPLY, rid) + body


def encode_u64s(values: Iterable[int]) -> bytes:
    """Concatenated uint64s (statvfs and limits reply bodies)."""
    return b"".join(_U64.pack(int(v) & _MASK64) for v in values)


def encode_string(value: bytes | str) -> bytes:
    """An SSH string (str is UTF-8 with surrogateescape)."""
    return _s(value)


# ---------------------------------------------------------------------------
# Request encoders (used by tests and by anything that plays the client)
# ---------------------------------------------------------------------------


def encode_fields(kinds: Sequence[int], values: Sequence[Any]) -> bytes:
    """Encode fields; ATTRS values are pre-encoded bytes."""
    out = []
    for kind, value in zip(kinds, values, strict=True):
        if kind == U32:
            out.append(_U32.pack(value))
        elif kind == U64:
            out.append(_U64.pack(value))
        elif kind == ATTRS:
            out.append(bytes(value))
        else:
            out.append(_s(value))
    return b"".join(out)


def encode_request(ptype: int, rid: int, *values: object) -> bytes:
    """A complete request packet (for clients and tests)."""
    if ptype == CMD_EXTENDED:
        name = str(values[0])
        kinds = EXTENDED_FIELDS.get(name, (STRING,) * (len(values) - 1))
        body = _s(name) + encode_fields(kinds, values[1:])
    else:
        body = encode_fields(REQUEST_FIELDS[ptype], values)
    return packet(ptype, _U32.pack(rid) + body)
