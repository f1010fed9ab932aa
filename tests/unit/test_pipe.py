"""ByteBuffer: the channel read buffer (bytes and memoryview chunks, gathering, EOF)."""

from __future__ import annotations

import pytest

from geossh._green.pipe import ByteBuffer


def views(*chunks: bytes) -> list[memoryview]:
    """Chunks as the decoder hands them over: views of immutable plaintext."""
    return [memoryview(b"\x00" + chunk)[1:] for chunk in chunks]


def test_reads_return_bytes_for_memoryview_chunks() -> None:
    buf = ByteBuffer()
    buf.feed_many(views(b"hello"))
    data = buf.read(100)
    assert type(data) is bytes
    assert data == b"hello"


def test_whole_chunks_that_fit_are_gathered_in_one_read() -> None:
    buf = ByteBuffer()
    buf.feed_many(views(b"a" * 3000, b"b" * 3000, b"c" * 3000))
    assert buf.read(6500) == b"a" * 3000 + b"b" * 3000
    assert len(buf) == 3000
    assert buf.read(6500) == b"c" * 3000
    assert len(buf) == 0


def test_a_read_smaller_than_a_chunk_splits_it_and_keeps_the_rest() -> None:
    buf = ByteBuffer()
    buf.feed_many([b"0123456789", *views(b"abcdef")])
    assert buf.read(4) == b"0123"
    assert buf.read(4) == b"4567"
    # The rest of the first chunk, then the whole second one fits.
    assert buf.read(100) == b"89abcdef"
    assert not buf.read_ready()


def test_a_partly_read_view_chunk_is_returned_as_bytes() -> None:
    buf = ByteBuffer()
    buf.feed_many(views(b"xyzuvw"))
    assert buf.read(2) == b"xy"
    rest = buf.read(10)
    assert type(rest) is bytes
    assert rest == b"zuvw"


def test_empty_chunks_are_ignored_and_eof_reads_empty() -> None:
    buf = ByteBuffer()
    buf.feed_many([b"", *views(b"")])
    assert not buf.read_ready()
    buf.feed(b"last")
    buf.close()
    assert buf.read(10) == b"last"
    assert buf.read(10) == b""


def test_a_non_blocking_read_of_an_empty_buffer_times_out() -> None:
    buf = ByteBuffer()
    with pytest.raises(TimeoutError):
        buf.read(10, timeout=0.0)
    assert buf.take_nowait(10) == b""


def test_on_change_fires_when_readable_and_when_drained() -> None:
    buf = ByteBuffer()
    seen: list[int] = []
    buf.on_change = lambda: seen.append(len(buf))
    buf.feed_many(views(b"abc", b"def"))
    buf.read(6)
    assert seen == [6, 0]
