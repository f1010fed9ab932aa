"""Peer-supplied text made safe for one log line.

Owns one rule: a string the peer chose (a version line, a DISCONNECT
description, a user name, a channel or request type, a forwarding target, a
PROXY address, a path) is logged through ``printable`` so it can neither end
the line (and forge the next one) nor carry terminal escapes, bidi controls
or unbounded length. Pure: no I/O.
"""

from __future__ import annotations

import logging
from typing import Any

#: Default bound on the escaped text, in characters.
LIMIT = 256
_ELLIPSIS = "..."


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: object, limit: int = LIMIT) -> str:
    """``text`` with control and other non-printable characters (and ``\\``) as
    ``\\xNN``/``\\uNNNN`` escapes, cut to at most ``limit`` characters (ending ``...``).

    Bytes are decoded as UTF-8 (invalid bytes become ``\\xNN``); other objects
    go through ``str()``.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text[: limit * 4 + 4]).decode("utf-8", "surrogateescape")
    text = text if isinstance(text, str) else str(text)
    if len(text) <= limit and text.isprintable() and "\\" not in text:
        return text  # the common case: nothing to do
    pieces = [_show(ch) for ch in text[: limit + 1]]
    if len(text) <= limit and sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    out: list[str] = []
    room = max(limit - len(_ELLIPSIS), 0)
    for piece in pieces:  # never cut an escape in two
        room -= len(piece)
        if room < 0:
            break
        out.append(piece)
    return "".join(out) + _ELLIPSIS


def _show(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    return ch if ch.isprintable() else _escape(ch)


class PrefixedLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger whose lines start with ``[prefix]`` (one connection's, e.g. ``conn=7 ip:port``).

    ``prefix`` is ours to compose; escape the peer's parts with ``printable``.
    """

    def __init__(self, logger: logging.Logger, prefix: str) -> None:
        super().__init__(logger, None)  # no ``extra`` dict: 180 bytes per connection
        self.prefix = prefix

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.prefix}] {msg}", kwargs


__all__ = ["LIMIT", "PrefixedLog", "printable"]
