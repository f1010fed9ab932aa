"""Parser for the OpenSSH moduli file (``/etc/ssh/moduli``, moduli(5)).

Each line reads ``time type tests tries size generator modulus``; ``size``
is the prime's bit length minus one and the last two fields are hex. We keep
what OpenSSH's ``parse_prime`` (dh.c) keeps: safe primes (type 2) that were
tested (some test bit besides "composite" 0x01) and not found composite,
with a matching size and a generator in (1, p-1). Other lines are skipped.

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

import logging
import re

__all__ = ["MODULI_TYPE_SAFE", "load_moduli"]

log = logging.getLogger("geossh.kex")

MODULI_TYPE_SAFE = 2
MODULI_TESTS_COMPOSITE = 0x01
MAX_MODULUS_BITS = 64 * 1024  # OpenSSH's bound on the size field

_LINE = re.compile(
    r"(\S+)\s+(\d{1,2})\s+(\d{1,3})\s+(\d{1,10})\s+(\d{1,5})\s+"
    r"([0-9A-Fa-f]{1,8})\s+([0-9A-Fa-f]{1,16384})",
    re.ASCII,
)


def _parse_line(line: str) -> tuple[int, int] | str:
    """Return (generator, prime) or the reason the line is unusable."""
    match = _LINE.fullmatch(line)
    if match is None:
        return "malformed"
    _time, kind, tests, tries, size, gen_hex, prime_hex = match.groups()
    if int(kind) != MODULI_TYPE_SAFE:
        return "not a safe prime"
    flags = int(tests)
    if flags & MODULI_TESTS_COMPOSITE or not flags & ~MODULI_TESTS_COMPOSITE or flags > 0x1F:
        return "untested or composite"
    if int(tries) == 0:
        return "no primality trials"
    bits = int(size) + 1
    if bits > MAX_MODULUS_BITS:
        return "prime too large"
    prime = int(prime_hex, 16)
    generator = int(gen_hex, 16)
    if prime.bit_length() != bits or not prime & 1:
        return "prime does not match its size"
    if not 1 < generator < prime - 1:
        return "invalid generator"
    return generator, prime


def load_moduli(text: str) -> list[tuple[int, int]]:
    """Parse moduli(5) text into (generator, prime) pairs, in file order.

    Comments (``#``) and blank lines are ignored; unusable lines are logged
    at debug level and skipped, as OpenSSH does.
    """
    groups: list[tuple[int, int]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parsed = _parse_line(line)
        if isinstance(parsed, str):
            log.debug("moduli line %d skipped: %s", number, parsed)
            continue
        groups.append(parsed)
    return groups
