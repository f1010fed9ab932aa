"""Elliptic-curve Diffie-Hellman methods: curve25519 (RFC 8731), NIST (RFC 5656).

Both follow RFC 5656 §4: the client sends Q_C in SSH_MSG_KEX_ECDH_INIT (30),
the server answers SSH_MSG_KEX_ECDH_REPLY (31) with K_S, Q_S and the
signature over H = HASH(V_C || V_S || I_C || I_S || K_S || Q_C || Q_S || K).

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

import hmac
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from geossh.proto import sodium
from geossh.proto.constants import KEX_ECDH_REPLY
from geossh.proto.errors import KexError
from geossh.proto.kex.base import ServerKex
from geossh.proto.sodium import X25519_SIZE
from geossh.proto.wire import Reader, mpint_from_unsigned, string

__all__ = [
    "Curve25519Kex",
    "Curve25519LibsshKex",
    "EcdhNistp256Kex",
    "EcdhNistp384Kex",
    "EcdhNistp521Kex",
    "x25519_shared_secret",
]

_ZERO32 = bytes(X25519_SIZE)
_MAX_POINT = 1024  # generous read bound; exact sizes are checked after


def x25519_shared_secret(private: bytes, peer: bytes) -> bytes:
    """X25519(private, peer) with RFC 8731 §3 checks.

    Rejects a peer value that is not 32 bytes and an all-zero result
    (a low-order point); libsodium already refuses the latter.
    """
    if len(peer) != X25519_SIZE:
        raise KexError(f"X25519 public value must be 32 bytes, got {len(peer)}")
    try:
        secret = sodium.x25519(private, peer)
    except ValueError:
        raise KexError("X25519 shared secret is all zero (low-order point)") from None
    if hmac.compare_digest(secret, _ZERO32):
        raise KexError("X25519 shared secret is all zero (low-order point)")
    return secret


def ephemeral_x25519(preset: bytes | None) -> tuple[bytes, bytes]:
    """(private, public): a fresh X25519 pair, or the preset private scalar's."""
    if preset is None:
        return sodium.x25519_keypair()
    return preset, sodium.x25519_public(preset)


class Curve25519Kex(ServerKex):
    """curve25519-sha256 (RFC 8731).

    K is the 32-byte X25519 output read as a big-endian unsigned number and
    encoded as an mpint (RFC 8731 §3.1). ``_ephemeral`` (a 32-byte private
    scalar) may be preset (tests use RFC 7748 vectors); otherwise the key is
    generated in ``receive``.
    """

    name = "curve25519-sha256"
    hash_name = "sha256"

    _ephemeral: bytes | None = None

    def _handle(self, msg_type: int, reader: Reader) -> list[bytes]:
        q_c = reader.string(_MAX_POINT)
        reader.check_end()
        private, public = ephemeral_x25519(self._ephemeral)
        self._ephemeral = None
        secret = x25519_shared_secret(private, q_c)
        q_s = string(public)
        return self._finish(string(q_c) + q_s, q_s, mpint_from_unsigned(secret), KEX_ECDH_REPLY)


class Curve25519LibsshKex(Curve25519Kex):
    """curve25519-sha256@libssh.org: the pre-RFC name of curve25519-sha256."""

    name = "curve25519-sha256@libssh.org"


class _EcdhNistKex(ServerKex):
    """ecdh-sha2-nistp* (RFC 5656 §4, §7.1).

    Q_C must be an uncompressed SEC1 point on the curve (RFC 5656 §3.1;
    cryptography validates it); K is the x coordinate as an mpint.
    """

    curve: ClassVar[ec.EllipticCurve]
    point_size: ClassVar[int]  # 1 + 2 * field bytes, uncompressed form

    def _handle(self, msg_type: int, reader: Reader) -> list[bytes]:
        q_c = reader.string(_MAX_POINT)
        reader.check_end()
        if len(q_c) != self.point_size or q_c[0] != 4:
            raise KexError(f"{self.name}: client value is not an uncompressed point")
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(self.curve, q_c)
        except ValueError:
            raise KexError(f"{self.name}: client point is not on the curve") from None
        private = ec.generate_private_key(self.curve)
        secret = private.exchange(ec.ECDH(), peer)
        q_s = string(
            private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        )
        return self._finish(string(q_c) + q_s, q_s, mpint_from_unsigned(secret), KEX_ECDH_REPLY)


class EcdhNistp256Kex(_EcdhNistKex):
    """ecdh-sha2-nistp256 (RFC 5656 §6.2.1)."""

    name = "ecdh-sha2-nistp256"
    hash_name = "sha256"
    curve = ec.SECP256R1()
    point_size = 65


class EcdhNistp384Kex(_EcdhNistKex):
    """ecdh-sha2-nistp384 (RFC 5656 §6.2.1)."""

    name = "ecdh-sha2-nistp384"
    hash_name = "sha384"
    curve = ec.SECP384R1()
    point_size = 97


class EcdhNistp521Kex(_EcdhNistKex):
    """ecdh-sha2-nistp521 (RFC 5656 §6.2.1)."""

    name = "ecdh-sha2-nistp521"
    hash_name = "sha512"
    curve = ec.SECP521R1()
    point_size = 133
