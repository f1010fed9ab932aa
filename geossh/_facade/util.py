"""paramiko's ``util`` helpers, kept for migrated code (docs/compatibility.md).

Logging set-up (``log_to_file``, ``get_logger``), byte/str coercion, the
big-integer codecs behind ``Message``, and a few small helpers. New geossh
code should not grow this module: put things where they belong.
"""

from __future__ import annotations

import hmac
import logging
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

from geossh._facade.common import DEBUG, byte_ord


def inflate_long(s: bytes, always_positive: bool = False) -> int:
    """Big-endian bytes → int (two's complement unless ``always_positive``)."""
    return int.from_bytes(s, "big", signed=not always_positive)


def deflate_long(n: int, add_sign_padding: bool = True) -> bytes:
    """int → shortest big-endian two's complement bytes, as paramiko writes them.

    ``0`` → ``b"\\x00"``, ``-1`` → ``b"\\xff"``. Without sign padding a
    positive value may start with a high bit, a negative one may not.
    """
    n = int(n)
    if n >= 0:
        s = n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
        if add_sign_padding and s[0] & 0x80:
            s = b"\x00" + s
        return s
    s = n.to_bytes(((~n).bit_length() + 8) // 8, "big", signed=True)
    if not add_sign_padding:
        s = s.lstrip(b"\xff") or b"\xff"
    return s


def format_binary(data: bytes, prefix: str = "") -> list[str]:
    """Hex-dump lines (16 bytes each) with ``prefix`` on each."""
    out = [format_binary_line(data[x : x + 16]) for x in range(0, len(data), 16)]
    return [prefix + line for line in out]


def format_binary_line(data: bytes) -> str:
    """One hex-dump line: hex bytes, then printable characters or dots."""
    left = " ".join(f"{byte_ord(c):02X}" for c in data)
    right = "".join(chr(c) if 32 <= c < 127 else "." for c in (byte_ord(c) for c in data))
    return f"{left:50s} {right}"


def safe_string(s: bytes) -> bytes:
    """Printable bytes kept, others written as ``%XX``."""
    out = bytearray()
    for c in s:
        i = byte_ord(c)
        out += bytes((i,)) if 32 <= i <= 127 else b"%" + f"{i:02X}".encode()
    return bytes(out)


def bit_length(n: int) -> int:
    """Number of bits needed to represent ``n``."""
    return n.bit_length()


def tb_strings() -> list[str]:
    """The current exception's traceback, as lines."""
    return "".join(traceback.format_exception(*sys.exc_info())).split("\n")


def generate_key_bytes(
    hash_alg: Callable[[], Any], salt: bytes, key: str | bytes, nbytes: int
) -> bytes:
    """OpenSSL's legacy ``EVP_BytesToKey`` (used for old PEM key files)."""
    keydata = b""
    digest = b""
    salt = salt[:8]
    while nbytes > 0:
        hash_obj = hash_alg()
        if digest:
            hash_obj.update(digest)
        hash_obj.update(b(key))
        hash_obj.update(salt)
        digest = hash_obj.digest()
        size = min(nbytes, len(digest))
        keydata += digest[:size]
        nbytes -= size
    return keydata


def _client_side(name: str) -> NotImplementedError:
    return NotImplementedError(f"{name} is client-side: geossh is a server library (use paramiko)")


def load_host_keys(filename: str) -> Any:
    """Client side (known_hosts in paramiko's ``HostKeys``): not provided by geossh.

    ``geossh.runner.hostkeys`` is the server's host-key store, not paramiko's
    known_hosts class.
    """
    raise _client_side("HostKeys")


def parse_ssh_config(file_obj: Any) -> Any:
    """Client side (paramiko's ``SSHConfig``): not provided by geossh."""
    raise _client_side("SSHConfig")


def lookup_ssh_host_config(hostname: str, config: Any) -> Any:
    """Client side, kept for old code: ``config.lookup(hostname)``."""
    return config.lookup(hostname)


def mod_inverse(x: int, m: int) -> int:
    """``x``'s multiplicative inverse modulo ``m`` (paramiko's extended Euclid)."""
    u1, u2, u3 = 1, 0, m
    v1, v2, v3 = 0, 1, x
    while v3 > 0:
        q = u3 // v3
        u1, v1 = v1, u1 - v1 * q
        u2, v2 = v2, u2 - v2 * q
        u3, v3 = v3, u3 - v3 * q
    if u2 < 0:
        u2 += m
    return u2


_thread_data = threading.local()
_thread_counter = 0
_thread_lock = threading.Lock()


def get_thread_id() -> int:
    """A small per-thread (per-greenlet under monkey-patching) number for log lines."""
    global _thread_counter
    try:
        return int(_thread_data.id)
    except AttributeError:
        with _thread_lock:
            _thread_counter += 1
            _thread_data.id = _thread_counter
        return int(_thread_data.id)


def log_to_file(filename: str, level: int = DEBUG) -> None:
    """Send the ``paramiko`` logger to ``filename`` unless it already has handlers."""
    logger = logging.getLogger("paramiko")
    if logger.handlers:
        return
    logger.setLevel(level)
    handler = logging.StreamHandler(open(filename, "a"))  # noqa: SIM115 (lives with the logger)
    frm = "%(levelname)-.3s [%(asctime)s.%(msecs)03d] thr=%(_threadid)-3d"
    frm += " %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(frm, "%Y%m%d-%H:%M:%S"))
    handler.addFilter(_pfilter)
    logger.addHandler(handler)


class PFilter:
    """Adds ``record._threadid`` (see ``get_thread_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record._threadid = get_thread_id()
        return True


_pfilter = PFilter()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with the ``_threadid`` filter added."""
    logger = logging.getLogger(name)
    logger.addFilter(_pfilter)
    return logger


_BYTES = (bytes, bytearray, memoryview)


def constant_time_bytes_eq(a: bytes | str, b: bytes | str) -> bool:
    """Compare two secrets in time independent of where they differ."""
    if isinstance(a, _BYTES) and isinstance(b, _BYTES):
        return hmac.compare_digest(a, b)
    if len(a) != len(b):
        return False
    res = 0
    for x, y in zip(a, b, strict=True):  # mixed str/bytes, as paramiko allows
        res |= byte_ord(x) ^ byte_ord(y)  # type: ignore[arg-type]
    return res == 0


class ClosingContextManager:
    """Mixin: ``with obj:`` calls ``obj.close()`` on exit."""

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        type: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()  # type: ignore[attr-defined]


def clamp_value(minimum: int, val: int, maximum: int) -> int:
    """``val`` limited to ``[minimum, maximum]``."""
    return max(minimum, min(val, maximum))


def asbytes(s: Any) -> Any:
    """str → UTF-8 bytes; bytes unchanged; else ``s.asbytes()`` if it has one; else ``s``."""
    try:
        return b(s)
    except TypeError:
        try:
            return s.asbytes()
        except AttributeError:
            return s


def b(s: str | bytes, encoding: str = "utf8") -> bytes:
    """Cast str or bytes to bytes."""
    if isinstance(s, bytes):
        return s
    if isinstance(s, str):
        return s.encode(encoding)
    raise TypeError(f"Expected unicode or bytes, got {type(s)}")


def u(s: str | bytes, encoding: str = "utf8") -> str:
    """Cast bytes or str to str."""
    if isinstance(s, bytes):
        return s.decode(encoding)
    if isinstance(s, str):
        return s
    raise TypeError(f"Expected unicode or bytes, got {type(s)}")
