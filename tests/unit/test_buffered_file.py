"""``BufferedFile`` ends its read loops on paramiko's notion of EOF (issue 20, item 3)."""

from __future__ import annotations

from geossh._facade.file import BufferedFile


class EmptyButTruthy(bytes):
    """An empty read result that is truthy, as a mocked channel may return."""

    def __bool__(self) -> bool:
        return True


class Source(BufferedFile):
    """Yields ``chunks`` then an empty-but-truthy object forever."""

    def __init__(self, chunks: list[bytes], flags: str = "r") -> None:
        super().__init__()
        self._chunks = list(chunks)
        self.reads = 0
        self._set_mode(flags)

    def _read(self, size: int) -> bytes:
        self.reads += 1
        assert self.reads < 100, "the read loop spins on an empty result"
        return self._chunks.pop(0) if self._chunks else EmptyButTruthy()


def test_read_all_stops_at_an_empty_but_truthy_result() -> None:
    assert Source([b"ab", b"cd"]).read() == b"abcd"


def test_sized_read_and_readline_stop_too() -> None:
    assert Source([b"ab"]).read(10) == b"ab"
    assert Source([b"no newline"], "rb").readline() == b"no newline"


def test_eoferror_from_read_is_eof() -> None:
    class Raising(Source):
        def _read(self, size: int) -> bytes:
            raise EOFError

    assert Raising([]).read() == b""
