"""SFTP v3 codec: framing bounds, request decoding, reply encoding, attributes."""

from __future__ import annotations

import ast
import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from geossh.sftp import protocol as p
from geossh.sftp.attributes import SFTPAttributes


def body_of(packet: bytes) -> tuple[int, bytes]:
    length, ptype = struct.unpack_from(">IB", packet)
    assert length == len(packet) - 4
    return ptype, packet[5:]


def decode(packet: bytes) -> tuple[int, tuple[object, ...]]:
    ptype, body = body_of(packet)
    return p.decode_request(ptype, body, 0, len(body))


# -- purity ----------------------------------------------------------------------------


def test_protocol_module_is_pure() -> None:
    source = Path(p.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"gevent", "socket", "threading", "select", "time", "asyncio"}


# -- framing -----------------------------------------------------------------------------


def test_frame_at_complete_and_partial() -> None:
    pkt = p.encode_request(p.CMD_STAT, 7, "/x")
    assert p.frame_at(pkt, 0, len(pkt)) == (p.CMD_STAT, 5, len(pkt))
    for cut in range(len(pkt)):
        assert p.frame_at(pkt, 0, cut) is None
    two = pkt + pkt
    assert p.frame_at(two, len(pkt), len(two)) == (p.CMD_STAT, len(pkt) + 5, len(two))


@pytest.mark.parametrize("length", [0, p.MAX_PACKET_ACCEPTED + 1, 0xFFFFFFFF])
def test_frame_at_rejects_bad_lengths_from_the_header_alone(length: int) -> None:
    header = struct.pack(">I", length)
    with pytest.raises(p.ProtocolViolation):
        p.frame_at(header, 0, 4)  # nothing beyond the length field is needed
    with pytest.raises(p.ProtocolViolation):
        p.frame_at(header + b"\x03", 0, 5)


def test_frame_at_accepts_max_packet() -> None:
    header = struct.pack(">IB", p.MAX_PACKET_ACCEPTED, p.CMD_WRITE)
    assert p.frame_at(header, 0, 5) is None


# -- requests -------------------------------------------------------------------------------

ATTRS_FULL = p.encode_attrs(10, 1, 2, 0o100644, 3, 4, {b"k": b"v"})

REQUESTS = [
    (p.CMD_OPEN, ("/a", p.SFTP_FLAG_READ, ATTRS_FULL)),
    (p.CMD_CLOSE, (b"hx1",)),
    (p.CMD_READ, (b"hx1", 2**40, 32768)),
    (p.CMD_WRITE, (b"hx1", 5, b"data")),
    (p.CMD_LSTAT, ("/a",)),
    (p.CMD_FSTAT, (b"hx1",)),
    (p.CMD_SETSTAT, ("/a", p.EMPTY_ATTRS)),
    (p.CMD_FSETSTAT, (b"hx1", ATTRS_FULL)),
    (p.CMD_OPENDIR, ("/",)),
    (p.CMD_READDIR, (b"hx2",)),
    (p.CMD_REMOVE, ("/a",)),
    (p.CMD_MKDIR, ("/d", p.encode_attrs(perm=0o755))),
    (p.CMD_RMDIR, ("/d",)),
    (p.CMD_REALPATH, (".",)),
    (p.CMD_STAT, ("/ü",)),
    (p.CMD_RENAME, ("/a", "/b")),
    (p.CMD_READLINK, ("/l",)),
    (p.CMD_SYMLINK, ("target", "/l")),
]


def _expected(kinds: tuple[int, ...], values: tuple[object, ...]) -> tuple[object, ...]:
    out: list[object] = []
    for kind, value in zip(kinds, values, strict=True):
        if kind == p.ATTRS:
            out.append(p.decode_attrs(value, 0, len(value))[0])  # type: ignore[arg-type]
        else:
            out.append(value)
    return tuple(out)


@pytest.mark.parametrize(("ptype", "values"), REQUESTS)
def test_request_round_trip(ptype: int, values: tuple[object, ...]) -> None:
    rid, fields = decode(p.encode_request(ptype, 0xDEADBEEF, *values))
    assert rid == 0xDEADBEEF
    assert fields == _expected(p.REQUEST_FIELDS[ptype], values)


@pytest.mark.parametrize(("ptype", "values"), REQUESTS)
def test_every_truncation_is_bad_message_with_the_id(
    ptype: int, values: tuple[object, ...]
) -> None:
    _, body = body_of(p.encode_request(ptype, 42, *values))
    for cut in range(len(body)):
        try:
            p.decode_request(ptype, body, 0, cut)
        except p.MalformedRequest as exc:
            assert exc.request_id == (42 if cut >= 4 else None)
            assert exc.code == p.SFTP_BAD_MESSAGE
        else:  # only possible when the cut drops nothing but optional trailing data
            pytest.fail(f"cut at {cut} of {len(body)} decoded")


def test_fast_read_and_write_decoders() -> None:
    _, body = body_of(p.encode_request(p.CMD_READ, 9, b"h", 123, 456))
    assert p.decode_read(body, 0, len(body)) == (9, b"h", 123, 456)
    _, body = body_of(p.encode_request(p.CMD_WRITE, 9, b"h", 7, b"payload"))
    assert p.decode_write(body, 0, len(body)) == (9, b"h", 7, b"payload")
    _rid, _handle, _offset, start, end = p.decode_write_span(body, 0, len(body))
    assert body[start:end] == b"payload"
    for cut in range(len(body) - 1):
        with pytest.raises(p.MalformedRequest):
            p.decode_write(body, 0, cut)


def test_handle_length_is_bounded() -> None:
    handle = b"h" * (p.MAX_HANDLE + 1)
    for ptype, values in [
        (p.CMD_READ, (handle, 0, 1)),
        (p.CMD_WRITE, (handle, 0, b"x")),
        (p.CMD_CLOSE, (handle,)),
    ]:
        with pytest.raises(p.MalformedRequest) as info:
            _, body = body_of(p.encode_request(ptype, 3, *values))
            if ptype == p.CMD_READ:
                p.decode_read(body, 0, len(body))
            elif ptype == p.CMD_WRITE:
                p.decode_write(body, 0, len(body))
            else:
                p.decode_request(ptype, body, 0, len(body))
        assert info.value.request_id == 3


def test_huge_string_length_does_not_allocate() -> None:
    body = struct.pack(">II", 5, 0xFFFFFFF0) + b"abc"
    with pytest.raises(p.MalformedRequest) as info:
        p.decode_request(p.CMD_STAT, body, 0, len(body))
    assert info.value.request_id == 5


def test_huge_extended_attribute_count_is_bounded_by_the_packet() -> None:
    attrs = struct.pack(">II", p.ATTR_EXTENDED, 0xFFFFFFFF) + p.encode_string(b"k")
    _, body = body_of(p.encode_request(p.CMD_SETSTAT, 8, "/a", attrs))
    with pytest.raises(p.MalformedRequest):
        p.decode_request(p.CMD_SETSTAT, body, 0, len(body))


def test_trailing_bytes_are_ignored_like_openssh() -> None:
    _, body = body_of(p.encode_request(p.CMD_STAT, 1, "/x"))
    assert p.decode_request(p.CMD_STAT, body + b"junk", 0, len(body) + 4) == (1, ("/x",))


def test_non_utf8_paths_survive_as_surrogates() -> None:
    raw = b"/caf\xe9"
    body = struct.pack(">I", 1) + p.encode_string(raw)
    _rid, (path,) = p.decode_request(p.CMD_STAT, body, 0, len(body))
    assert p.encode_path(path) == raw  # type: ignore[arg-type]


def test_extended_requests() -> None:
    rid, fields = decode(
        p.encode_request(p.CMD_EXTENDED, 4, "posix-rename@openssh.com", "/a", "/b")
    )
    assert (rid, fields) == (4, ("posix-rename@openssh.com", "/a", "/b"))
    rid, fields = decode(p.encode_request(p.CMD_EXTENDED, 5, "limits@openssh.com"))
    assert fields == ("limits@openssh.com",)
    values = (b"h1", 1, 2, b"h2", 3)
    rid, fields = decode(p.encode_request(p.CMD_EXTENDED, 6, "copy-data", *values))
    assert fields == ("copy-data", *values)
    # unknown extension: name only, whatever follows
    body = struct.pack(">I", 7) + p.encode_string("nope@example.com") + b"\x01\x02"
    assert p.decode_request(p.CMD_EXTENDED, body, 0, len(body)) == (7, ("nope@example.com",))


def test_lane_key() -> None:
    def key(pkt: bytes) -> bytes | None:
        ptype, body = body_of(pkt)
        return p.lane_key(ptype, body, 0, len(body))

    assert key(p.encode_request(p.CMD_READ, 1, b"hx9", 0, 1)) == b"hx9"
    assert key(p.encode_request(p.CMD_CLOSE, 1, b"hx9")) == b"hx9"
    assert key(p.encode_request(p.CMD_STAT, 1, "/a")) is None
    assert key(p.encode_request(p.CMD_EXTENDED, 1, "fsync@openssh.com", b"hx3")) == b"hx3"
    assert key(p.encode_request(p.CMD_EXTENDED, 1, "statvfs@openssh.com", "/")) is None
    assert p.lane_key(p.CMD_READ, b"\x00", 0, 1) is None  # malformed: no exception


# -- replies ----------------------------------------------------------------------------------


def test_status_encoding() -> None:
    ptype, body = body_of(p.encode_status(3, p.SFTP_NO_SUCH_FILE))
    assert ptype == p.CMD_STATUS
    assert body == struct.pack(">II", 3, 2) + p.encode_string("No such file") + p.encode_string("")
    assert p.encode_status_ok(3) == p.encode_status(3, p.SFTP_OK)
    _, body = body_of(p.encode_status(3, 99))
    assert b"Unknown" in body
    _, body = body_of(p.encode_status(3, p.SFTP_FAILURE, "Invalid handle"))
    assert b"Invalid handle" in body


def test_data_handle_name_attrs_extended_replies() -> None:
    header = p.encode_data_header(5, 3)
    assert body_of(header + b"abc") == (p.CMD_DATA, struct.pack(">II", 5, 3) + b"abc")
    assert body_of(p.encode_handle(5, b"hx1")) == (p.CMD_HANDLE, struct.pack(">II", 5, 3) + b"hx1")
    ptype, body = body_of(
        p.encode_name(6, [("a", "long", p.EMPTY_ATTRS), (b"b", b"", p.EMPTY_ATTRS)])
    )
    assert ptype == p.CMD_NAME and body[4:8] == struct.pack(">I", 2)
    ptype, body = body_of(p.encode_attrs_reply(7, ATTRS_FULL))
    assert ptype == p.CMD_ATTRS and body[4:] == ATTRS_FULL
    ptype, body = body_of(p.encode_extended_reply(8, p.encode_u64s([1, 2])))
    assert ptype == p.CMD_EXTENDED_REPLY and len(body) == 4 + 16


def test_version_reply_lists_extensions() -> None:
    ptype, body = body_of(p.encode_version([("limits@openssh.com", "1")]))
    assert ptype == p.CMD_VERSION
    assert body == struct.pack(">I", 3) + p.encode_string("limits@openssh.com") + p.encode_string(
        "1"
    )


@given(
    size=st.none() | st.integers(0, 2**64 - 1),
    ids=st.none() | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    perm=st.none() | st.integers(0, 2**32 - 1),
    times=st.none() | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    ext=st.dictionaries(st.binary(max_size=8), st.binary(max_size=8), max_size=3),
)
def test_attrs_round_trip(size, ids, perm, times, ext) -> None:  # type: ignore[no-untyped-def]
    uid, gid = ids or (None, None)
    atime, mtime = times or (None, None)
    data = p.encode_attrs(size, uid, gid, perm, atime, mtime, ext or None)
    (flags, *fields), end = p.decode_attrs(data, 0, len(data))
    assert end == len(data)
    assert fields == [size, uid, gid, perm, atime, mtime, ext]
    attr = SFTPAttributes._from_raw((flags, *fields))  # type: ignore[arg-type]
    assert attr._flags == flags
    assert attr._to_wire() == data


def test_attrs_out_of_range_values_are_masked_not_raised() -> None:
    data = p.encode_attrs(size=-1, uid=-2, gid=2**40, perm=None, atime=-5.5, mtime=2**33)
    (_flags, size, uid, gid, _perm, atime, mtime, _), _ = p.decode_attrs(data, 0, len(data))
    assert size == 2**64 - 1 and uid == 2**32 - 2 and gid == 0
    assert atime == (-5 & 0xFFFFFFFF) and mtime == 0


@given(st.binary(max_size=64))
def test_random_bodies_decode_or_raise_malformed(data: bytes) -> None:
    for ptype in (*p.REQUEST_FIELDS, p.CMD_EXTENDED):
        with contextlib.suppress(p.MalformedRequest):
            p.decode_request(ptype, data, 0, len(data))
    for decoder in (p.decode_read, p.decode_write):
        with contextlib.suppress(p.MalformedRequest):
            decoder(data, 0, len(data))


# -- SFTPAttributes ---------------------------------------------------------------------------


def test_attributes_str_is_ls_style() -> None:
    attr = SFTPAttributes()
    attr.st_mode = 0o100644
    attr.st_size = 1234
    attr.st_uid = 1000
    attr.st_gid = 100
    attr.st_mtime = 0
    attr.filename = "f.txt"
    text = str(attr)
    assert text.startswith("-rw-r--r--   1 1000     100          1234 ")
    assert text.endswith(" f.txt")
    assert attr.asbytes() == text.encode()
    attr.st_mode = 0o41777
    assert str(attr).startswith("drwxrwxrwt")
    assert str(SFTPAttributes()).startswith(
        "?---------   1 0        0               0 (unknown date) ?"
    )
    assert repr(attr).startswith("<SFTPAttributes: [ size=1234 uid=1000 gid=100 mode=")


def test_attributes_from_stat_and_flags() -> None:
    import os

    attr = SFTPAttributes.from_stat(os.stat("/"), "root")
    assert attr.filename == "root" and attr.st_mode is not None
    assert attr._flags == 0  # like paramiko: flags are computed when encoding
    attr._to_wire()
    assert attr._flags == (
        attr.FLAG_SIZE | attr.FLAG_UIDGID | attr.FLAG_PERMISSIONS | attr.FLAG_AMTIME
    )
