"""Diffie-Hellman group exchange (RFC 4419) with OpenSSH's bounds.

Theory of operation (server side)::

    await request --34 REQUEST(min, n, max) / 30 REQUEST_OLD(n)--> send 31 GROUP(p, g)
    await init    --32 INIT(e)--> send 33 REPLY(K_S, f, signature); done

The request is clamped to [2048, 8192] bits like OpenSSH's kexgexs.c; a
modulus is then chosen from ``KexContext.moduli``: the smallest size >= n
within [min, max], else the largest below n; ties are broken at random.
H = HASH(V_C || V_S || I_C || I_S || K_S || min || n || max || p || g || e
|| f || K), with only ``n`` for REQUEST_OLD (RFC 4419 §3, §5), using the
request fields exactly as received.

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from geossh.proto.constants import (
    KEX_DH_GEX_GROUP,
    KEX_DH_GEX_INIT,
    KEX_DH_GEX_REPLY,
    KEX_DH_GEX_REQUEST,
    KEX_DH_GEX_REQUEST_OLD,
)
from geossh.proto.errors import KexError
from geossh.proto.kex.base import KexContext, ServerKex
from geossh.proto.kex.dh import dh_exchange, mpint_limit
from geossh.proto.wire import Reader, byte, mpint, u32

__all__ = ["GEX_MAX_BITS", "GEX_MIN_BITS", "DHGexSha1Kex", "DHGexSha256Kex", "choose_modulus"]

GEX_MIN_BITS = 2048  # OpenSSH DH_GRP_MIN
GEX_MAX_BITS = 8192  # OpenSSH DH_GRP_MAX, RFC 4419 §3


def choose_modulus(
    moduli: Sequence[tuple[int, int]], min_bits: int, want_bits: int, max_bits: int
) -> tuple[int, int]:
    """Pick (generator, prime) with a size in [min_bits, max_bits] closest to want.

    Prefers the smallest size >= want_bits, else the largest below it, as
    OpenSSH's choose_dh does; raises ``KexError`` if nothing fits.
    """
    sizes = {p.bit_length() for _, p in moduli if min_bits <= p.bit_length() <= max_bits}
    if not sizes:
        raise KexError(f"no DH group of {min_bits}-{max_bits} bits available")
    above = [size for size in sizes if size >= want_bits]
    best = min(above) if above else max(sizes)
    return secrets.choice([(g, p) for g, p in moduli if p.bit_length() == best])


class DHGexSha256Kex(ServerKex):
    """diffie-hellman-group-exchange-sha256 (RFC 4419)."""

    name = "diffie-hellman-group-exchange-sha256"
    hash_name = "sha256"

    def __init__(self, ctx: KexContext) -> None:
        super().__init__(ctx)
        self._expected = frozenset({KEX_DH_GEX_REQUEST, KEX_DH_GEX_REQUEST_OLD})
        self._request = b""
        self._group = (0, 0)

    def _handle(self, msg_type: int, reader: Reader) -> list[bytes]:
        handler = {
            KEX_DH_GEX_REQUEST: self._on_request,
            KEX_DH_GEX_REQUEST_OLD: self._on_request_old,
            KEX_DH_GEX_INIT: self._on_init,
        }[msg_type]
        return handler(reader)

    def _on_request(self, reader: Reader) -> list[bytes]:
        """SSH_MSG_KEX_DH_GEX_REQUEST: uint32 min, n, max (RFC 4419 §3)."""
        min_bits, want_bits, max_bits = reader.u32(), reader.u32(), reader.u32()
        reader.check_end()
        self._request = u32(min_bits) + u32(want_bits) + u32(max_bits)
        return self._send_group(min_bits, want_bits, max_bits)

    def _on_request_old(self, reader: Reader) -> list[bytes]:
        """SSH_MSG_KEX_DH_GEX_REQUEST_OLD: uint32 n only (RFC 4419 §5)."""
        want_bits = reader.u32()
        reader.check_end()
        self._request = u32(want_bits)
        return self._send_group(GEX_MIN_BITS, want_bits, GEX_MAX_BITS)

    def _send_group(self, min_bits: int, want_bits: int, max_bits: int) -> list[bytes]:
        """Clamp the request as OpenSSH does, choose a group, send GROUP."""
        low = max(min_bits, GEX_MIN_BITS)
        high = min(max_bits, GEX_MAX_BITS)
        want = min(max(want_bits, GEX_MIN_BITS), GEX_MAX_BITS)
        if not low <= want <= high:
            raise KexError(f"bad DH_GEX_REQUEST bounds min={min_bits} n={want_bits} max={max_bits}")
        generator, prime = choose_modulus(self.ctx.moduli, low, want, high)
        self._group = (generator, prime)
        self._expected = frozenset({KEX_DH_GEX_INIT})
        return [byte(KEX_DH_GEX_GROUP) + mpint(prime) + mpint(generator)]

    def _on_init(self, reader: Reader) -> list[bytes]:
        """SSH_MSG_KEX_DH_GEX_INIT: mpint e; answer with REPLY (RFC 4419 §3)."""
        generator, prime = self._group
        e = reader.mpint(mpint_limit(prime))
        reader.check_end()
        f, k = dh_exchange(generator, prime, e)
        f_field = mpint(f)
        fields = self._request + mpint(prime) + mpint(generator) + mpint(e) + f_field
        return self._finish(fields, f_field, mpint(k), KEX_DH_GEX_REPLY)


class DHGexSha1Kex(DHGexSha256Kex):
    """diffie-hellman-group-exchange-sha1 (RFC 4419 §4.1); legacy, opt-in."""

    name = "diffie-hellman-group-exchange-sha1"
    hash_name = "sha1"
    legacy = True
