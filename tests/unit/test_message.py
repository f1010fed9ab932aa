"""geossh.message.Message and the paramiko helper modules, against paramiko 5.1.

Every sequence of calls must give byte-identical output in both libraries;
``common`` must hold the same constants, ``util`` the same helpers.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import paramiko
import paramiko.common
import paramiko.message
import paramiko.ssh_exception
import paramiko.util
import pytest
from hypothesis import given, settings, strategies as st

from geossh import common, ssh_exception, util
from geossh._facade.message import Message

U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
BIG = st.integers(-(2**600), 2**600)
TEXT = st.text(max_size=40)
NAMES = st.lists(st.text(alphabet="abc-@.", min_size=1, max_size=8), max_size=5)

OPS = st.one_of(
    st.tuples(st.just("add_bytes"), st.binary(max_size=20)),
    st.tuples(st.just("add_byte"), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just("add_boolean"), st.booleans()),
    st.tuples(st.just("add_int"), U32),
    st.tuples(st.just("add_adaptive_int"), st.integers(0, 2**70)),
    st.tuples(st.just("add_int64"), U64),
    st.tuples(st.just("add_mpint"), BIG),
    st.tuples(st.just("add_string"), st.one_of(st.binary(max_size=30), TEXT)),
    st.tuples(st.just("add_list"), NAMES),
)


def both(ops: list[tuple[str, Any]]) -> tuple[Message, paramiko.Message]:
    ours, theirs = Message(), paramiko.Message()
    for name, arg in ops:
        assert getattr(ours, name)(arg) is ours  # adders chain
        getattr(theirs, name)(arg)
    return ours, theirs


@settings(max_examples=400)
@given(st.lists(OPS, max_size=12))
def test_adders_byte_identical(ops: list[tuple[str, Any]]) -> None:
    ours, theirs = both(ops)
    assert ours.asbytes() == theirs.asbytes() == bytes(ours)
    assert repr(ours) == repr(theirs)


ADD_ITEMS = st.lists(
    st.one_of(st.booleans(), st.integers(0, 2**80), NAMES, TEXT, st.binary(max_size=20)),
    max_size=8,
)


@settings(max_examples=300)
@given(ADD_ITEMS)
def test_add_dispatch_identical(items: list[Any]) -> None:
    ours, theirs = Message(), paramiko.Message()
    assert ours.add(*items) is ours
    theirs.add(*items)
    assert ours.asbytes() == theirs.asbytes()


GETTERS = [
    "get_byte",
    "get_boolean",
    "get_int",
    "get_int64",
    "get_adaptive_int",
    "get_mpint",
    "get_string",
    "get_binary",
    "get_list",
    "get_text",
]


def _call(msg: Any, name: str, arg: int | None) -> Any:
    try:
        return ("ok", getattr(msg, name)(arg) if arg is not None else getattr(msg, name)())
    except Exception as exc:  # compare failure kinds too
        return ("error", type(exc).__name__)


@settings(max_examples=400)
@given(
    st.binary(max_size=64),
    st.lists(
        st.one_of(
            st.sampled_from(GETTERS).map(lambda g: (g, None)),
            st.tuples(st.just("get_bytes"), st.integers(0, 40)),
        ),
        max_size=8,
    ),
)
def test_getters_identical_on_arbitrary_bytes(data: bytes, calls: list[tuple[str, Any]]) -> None:
    ours, theirs = Message(data), paramiko.Message(data)
    for name, arg in calls:
        assert _call(ours, name, arg) == _call(theirs, name, arg)
        assert ours.get_remainder() == theirs.get_remainder()
        assert ours.get_so_far() == theirs.get_so_far()


def test_round_trip_all_types() -> None:
    m = Message()
    m.add_byte(b"\x05").add_boolean(True).add_boolean(False).add_int(7).add_int64(2**40)
    m.add_adaptive_int(5).add_adaptive_int(0xFF000000).add_mpint(-12345).add_mpint(2**100)
    m.add_string("héllo").add_string(b"\x00\xff").add_list(["a", "b"]).add_bytes(b"raw")
    m.rewind()
    assert m.get_byte() == b"\x05"
    assert (m.get_boolean(), m.get_boolean()) == (True, False)
    assert (m.get_int(), m.get_int64()) == (7, 2**40)
    assert (m.get_adaptive_int(), m.get_adaptive_int()) == (5, 0xFF000000)
    assert (m.get_mpint(), m.get_mpint()) == (-12345, 2**100)
    assert m.get_text() == "héllo"
    assert m.get_string() == b"\x00\xff"
    assert m.get_list() == ["a", "b"]
    assert m.get_so_far() + m.get_remainder() == m.asbytes()
    assert m.get_bytes(3) == b"raw"
    assert m.get_remainder() == b""


def test_short_reads_are_zero_padded_below_1mib() -> None:
    m = Message(b"\x00\x00\x00\x10ab")
    assert m.get_string() == b"ab" + b"\x00" * 14
    assert Message(b"").get_int() == 0
    assert Message(b"").get_byte() == b"\x00"
    huge = Message(b"\x00\x10\x00\x00abc")  # 1 MiB: not padded
    assert huge.get_string() == b"abc"
    assert paramiko.Message(b"\x00\x10\x00\x00abc").get_string() == b"abc"


def test_add_string_accepts_objects_with_asbytes() -> None:
    class Blob:
        def asbytes(self) -> bytes:
            return b"blob"

    ours, theirs = Message(), paramiko.Message()
    for value in (Blob(), bytearray(b"ba"), memoryview(b"mv"), "str"):
        ours.add_string(value)
        theirs.add_string(value)
    assert ours.asbytes() == theirs.asbytes()
    nested = Message().add_string(Message(b"inner"))
    assert nested.asbytes() == b"\x00\x00\x00\x05inner"


def test_misc_semantics() -> None:
    m = Message(b"abc")
    assert m.seqno is None
    m.seqno = 5
    assert bool(Message())  # always truthy, as paramiko's
    assert repr(Message(b"\x01")) == "paramiko.Message(b'\\x01')"
    m.get_bytes(1)
    assert m.get_so_far() == b"a" and m.get_remainder() == b"bc"
    m.rewind()
    assert m.get_remainder() == b"abc"
    # writing into a parsed message overwrites at the position, like BytesIO
    ours, theirs = Message(b"abcdef"), paramiko.Message(b"abcdef")
    ours.get_bytes(2), theirs.get_bytes(2)
    ours.add_bytes(b"XY"), theirs.add_bytes(b"XY")
    assert ours.asbytes() == theirs.asbytes() == b"abXYef"
    assert Message().add_list([]).asbytes() == b"\x00\x00\x00\x00"
    assert Message(b"\x00\x00\x00\x00").get_list() == [""]
    with pytest.raises(UnicodeDecodeError):
        Message(b"\x00\x00\x00\x01\xff").get_text()


# -- util ---------------------------------------------------------------------------


@settings(max_examples=500)
@given(st.integers(-(2**300), 2**300), st.booleans())
def test_deflate_inflate_long_match_paramiko(n: int, pad: bool) -> None:
    data = util.deflate_long(n, pad)
    assert data == paramiko.util.deflate_long(n, pad)
    assert util.inflate_long(data) == paramiko.util.inflate_long(data)
    assert util.inflate_long(data, True) == paramiko.util.inflate_long(data, True)
    if pad:
        assert util.inflate_long(data) == n


@pytest.mark.parametrize("n", [0, -1, 1, 127, 128, 255, 256, -128, -129, -256, -257, 2**64])
def test_deflate_long_edges(n: int) -> None:
    for pad in (True, False):
        assert util.deflate_long(n, pad) == paramiko.util.deflate_long(n, pad)


@given(st.binary(max_size=70), st.text(max_size=3))
def test_format_binary_and_safe_string(data: bytes, prefix: str) -> None:
    assert util.format_binary(data, prefix) == paramiko.util.format_binary(data, prefix)
    assert util.safe_string(data) == paramiko.util.safe_string(data)


def test_util_helpers_match_paramiko() -> None:
    salt = b"0123456789"
    for n in (1, 16, 33):
        assert util.generate_key_bytes(
            hashlib.md5, salt, "pw", n
        ) == paramiko.util.generate_key_bytes(hashlib.md5, salt, "pw", n)
    assert util.mod_inverse(3, 11) == paramiko.util.mod_inverse(3, 11) == 4
    assert util.clamp_value(1, 5, 3) == 3 and util.clamp_value(1, -5, 3) == 1
    assert util.bit_length(255) == paramiko.util.bit_length(255) == 8
    assert util.constant_time_bytes_eq(b"abc", b"abc")
    assert not util.constant_time_bytes_eq(b"abc", b"abd")
    assert not util.constant_time_bytes_eq(b"abc", b"ab")
    assert util.constant_time_bytes_eq("abc", "abc")
    assert util.b("é") == "é".encode() and util.b(b"x") == b"x"
    assert util.u(b"\xc3\xa9") == "é" and util.u("x") == "x"
    with pytest.raises(TypeError):
        util.b(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        util.u(1)  # type: ignore[arg-type]
    assert util.asbytes("x") == b"x" and util.asbytes(Message(b"m")) == b"m"
    assert util.asbytes(5) == 5
    assert isinstance(util.get_thread_id(), int)
    assert util.get_thread_id() == util.get_thread_id()
    try:
        raise ValueError("boom")
    except ValueError:
        assert any("boom" in line for line in util.tb_strings())


def test_closing_context_manager() -> None:
    closed = []

    class Thing(util.ClosingContextManager):
        def close(self) -> None:
            closed.append(True)

    with Thing() as thing:
        assert isinstance(thing, Thing)
    assert closed == [True]


def test_logging_helpers(tmp_path: Any) -> None:
    logger = logging.getLogger("paramiko")
    saved = logger.handlers[:], logger.level
    logger.handlers[:] = []
    try:
        util.log_to_file(str(tmp_path / "log"), logging.INFO)
        util.get_logger("paramiko.test").info("hello %s", "there")
        logging.getLogger("paramiko.plain").info("no filter on this logger")
        for handler in logger.handlers:
            handler.flush()
        text = (tmp_path / "log").read_text()
        assert "INF [" in text and "thr=" in text and "paramiko.test: hello there" in text
        assert "no filter on this logger" in text
        util.log_to_file(str(tmp_path / "other"))  # already has a handler: no-op
        assert not (tmp_path / "other").exists()
    finally:
        for handler in logger.handlers:
            handler.close()
        logger.handlers[:], logger.level = saved[0], saved[1]


# -- common and ssh_exception ------------------------------------------------------------


def test_common_constants_match_paramiko() -> None:
    names = [n for n in dir(paramiko.common) if not n.startswith("_")]
    skipped = {"logging", "struct"}
    for name in names:
        if name in skipped:
            continue
        theirs = getattr(paramiko.common, name)
        if callable(theirs):
            continue
        assert getattr(common, name) == theirs, name
    assert common.byte_chr(65) == paramiko.common.byte_chr(65)
    assert common.byte_mask(0x1FF, 0xFF) == b"\xff"
    assert common.byte_ord(b"A") == common.byte_ord(65) == 65
    assert common.io_sleep == 0.01
    assert common.o600 == 0o600 == 384


def test_ssh_exception_names() -> None:
    for name in dir(paramiko.ssh_exception):
        obj = getattr(paramiko.ssh_exception, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, Exception)
            and obj.__module__.startswith("paramiko")
        ):
            ours = getattr(ssh_exception, name)
            assert issubclass(ours, Exception)
    assert issubclass(
        ssh_exception.PasswordRequiredException, ssh_exception.AuthenticationException
    )
    assert issubclass(ssh_exception.AuthenticationException, ssh_exception.SSHException)
    assert issubclass(ssh_exception.NoValidConnectionsError, OSError)


def test_client_side_helpers_are_explicit() -> None:
    with pytest.raises(NotImplementedError, match="client-side"):
        util.load_host_keys("/nonexistent")
    with pytest.raises(NotImplementedError, match="client-side"):
        util.parse_ssh_config(None)
