"""Finite-field Diffie-Hellman: fixed groups (RFC 4253 §8, RFC 8268) and the
exchange shared with group exchange (gex.py).

The client sends SSH_MSG_KEXDH_INIT (30) with mpint e; the server answers
SSH_MSG_KEXDH_REPLY (31) with K_S, mpint f and the signature over
H = HASH(V_C || V_S || I_C || I_S || K_S || e || f || K), K an mpint.

The RFC 3526 groups run through cryptography (OpenSSL knows them, so the
exchange is constant-time and ~6x faster than ``pow``); other moduli use
Python's ``pow`` with a private exponent of 2x the group's security strength.

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

import secrets
import warnings
from typing import TYPE_CHECKING, ClassVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning

from geossh.proto.constants import KEXDH_REPLY
from geossh.proto.errors import KexError
from geossh.proto.kex.base import ServerKex
from geossh.proto.wire import Reader, mpint

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.dh import (
        DHParameterNumbers,
        DHParameters,
        DHPublicNumbers,
    )

__all__ = [
    "FALLBACK_MODULI",
    "DHGroup1Sha1Kex",
    "DHGroup14Sha1Kex",
    "DHGroup14Sha256Kex",
    "DHGroup16Sha512Kex",
    "DHGroup18Sha512Kex",
    "check_public_value",
    "dh_exchange",
    "exponent_bits",
    "mpint_limit",
]

# RFC 2409 §6.2 Oakley group 2 (1024 bits): 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k)
GROUP1_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
    16,
)
# RFC 3526 §3 group 14 (2048 bits): 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k)
GROUP14_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
# RFC 3526 §5 group 16 (4096 bits): 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k)
GROUP16_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64"
    "ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D226"
    "1AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D788719A10BDBA5B2699C32718"
    "6AF4E23C1A946834B6150BDA2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D"
    "99B2964FA090C3A2233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA993B4EA98"
    "8D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
    16,
)
# RFC 3526 §7 group 18 (8192 bits): 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k)
GROUP18_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64"
    "ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D226"
    "1AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D788719A10BDBA5B2699C32718"
    "6AF4E23C1A946834B6150BDA2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D"
    "99B2964FA090C3A2233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA993B4EA98"
    "8D8FDDC186FFB7DC90A6C08F4DF435C93402849236C3FAB4D27C7026C1D4DCB2602646DEC9751E763DBA37BD"
    "F8FF9406AD9E530EE5DB382F413001AEB06A53ED9027D831179727B0865A8918DA3EDBEBCF9B14ED44CE6CBA"
    "CED4BB1BDB7F1447E6CC254B332051512BD7AF426FB8F401378CD2BF5983CA01C64B92ECF032EA15D1721D03"
    "F482D7CE6E74FEF6D55E702F46980C82B5A84031900B1C9E59E7C97FBEC7E8F323A97A7E36CC88BE0F1D45B7"
    "FF585AC54BD407B22B4154AACC8F6D7EBF48E1D814CC5ED20F8037E0A79715EEF29BE32806A1D58BB7C5DA76"
    "F550AA3D8A1FBFF0EB19CCB1A313D55CDA56C9EC2EF29632387FE8D76E3C0468043E8F663F4860EE12BF2D5B"
    "0B7474D6E694F91E6DBE115974A3926F12FEE5E438777CB6A932DF8CD8BEC4D073B931BA3BC832B68D9DD300"
    "741FA7BF8AFC47ED2576F6936BA424663AAB639C5AE4F5683423B4742BF1C978238F16CBE39D652DE3FDB8BE"
    "FC848AD922222E04A4037C0713EB57A81A23F0C73473FC646CEA306B4BCBC8862F8385DDFA9D4B7FA2C087E8"
    "79683303ED5BDD3A062B3CF5B3A278A66D2A13F83F44F82DDF310EE074AB6A364597E899A0255DC164F31CC5"
    "0846851DF9AB48195DED7EA1B1D510BD7EE74D73FAF36BC31ECFA268359046F4EB879F924009438B481C6CD7"
    "889A002ED5EE382BC9190DA6FC026E479558E4475677E9AA9E3050E2765694DFC81F56E880B96E7160C980DD"
    "98EDD3DFFFFFFFFFFFFFFFFF",
    16,
)

#: RFC 3526 groups as (generator, prime): what OpenSSH's DH-GEX falls back
#: to without a moduli file. Pass as ``KexContext.moduli`` if wanted.
FALLBACK_MODULI: tuple[tuple[int, int], ...] = ((2, GROUP14_P), (2, GROUP16_P), (2, GROUP18_P))

# Security strength in bits by modulus size (NIST SP 800-57 Pt 1 Table 2,
# interpolated as OpenSSL does); the private exponent gets twice this.
_STRENGTH = ((1024, 80), (2048, 112), (3072, 128), (4096, 152), (6144, 176), (8192, 200))


def _load_ffdh() -> tuple[type[DHParameterNumbers], type[DHPublicNumbers]] | None:
    """cryptography's FFDH classes, fetched once (access warns since 50)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            from cryptography.hazmat.primitives.asymmetric import dh

            return dh.DHParameterNumbers, dh.DHPublicNumbers
    except (ImportError, AttributeError):  # FFDH removed from cryptography
        return None


_FFDH = _load_ffdh()
_FFDH_PRIMES = frozenset((GROUP14_P, GROUP16_P, GROUP18_P))
_ffdh_cache: dict[int, tuple[DHParameterNumbers, DHParameters] | None] = {}


def exponent_bits(prime_bits: int) -> int:
    """Private-exponent size: 2x the security strength of the modulus."""
    for limit, strength in _STRENGTH:
        if prime_bits <= limit:
            return 2 * strength
    return 512


def mpint_limit(prime: int) -> int:
    """Largest mpint body (bytes) a value below ``prime`` can need."""
    return prime.bit_length() // 8 + 1


def check_public_value(value: int, prime: int) -> None:
    """Require 1 < value < p-1 (RFC 4253 §8, RFC 8268 §4).

    Also refuses values with fewer than 4 bits set, whose discrete log is
    trivial for g = 2 (as OpenSSH's dh_pub_is_valid does).
    """
    if not 1 < value < prime - 1:
        raise KexError("DH public value out of range")
    if value.bit_count() < 4:
        raise KexError("DH public value is degenerate")


def _ffdh_params(generator: int, prime: int) -> tuple[DHParameterNumbers, DHParameters] | None:
    """Cached cryptography parameters for an RFC 3526 group, else None."""
    if _FFDH is None or generator != 2 or prime not in _FFDH_PRIMES:
        return None
    try:
        return _ffdh_cache[prime]
    except KeyError:
        pass
    entry: tuple[DHParameterNumbers, DHParameters] | None
    try:
        numbers = _FFDH[0](prime, generator)
        entry = (numbers, numbers.parameters())
    except (UnsupportedAlgorithm, ValueError):
        entry = None
    _ffdh_cache[prime] = entry
    return entry


def dh_exchange(generator: int, prime: int, e: int) -> tuple[int, int]:
    """Validate the client's e and return (f, K) for a fresh server secret."""
    check_public_value(e, prime)
    params = _ffdh_params(generator, prime)
    if params is not None and _FFDH is not None:
        numbers, parameters = params
        private = parameters.generate_private_key()
        try:
            shared = private.exchange(_FFDH[1](e, numbers).public_key())
        except ValueError:
            raise KexError("DH public value rejected") from None
        return private.public_key().public_numbers().y, int.from_bytes(shared, "big")
    bits = min(exponent_bits(prime.bit_length()), prime.bit_length() - 2)
    x = secrets.randbits(bits) | (1 << (bits - 1))
    return pow(generator, x, prime), pow(e, x, prime)


class _FixedGroupKex(ServerKex):
    """diffie-hellman-group* with a fixed prime and g = 2 (RFC 4253 §8)."""

    prime: ClassVar[int]
    generator: ClassVar[int] = 2

    def _handle(self, msg_type: int, reader: Reader) -> list[bytes]:
        e = reader.mpint(mpint_limit(self.prime))
        reader.check_end()
        f, k = dh_exchange(self.generator, self.prime, e)
        f_field = mpint(f)
        return self._finish(mpint(e) + f_field, f_field, mpint(k), KEXDH_REPLY)


class DHGroup14Sha256Kex(_FixedGroupKex):
    """diffie-hellman-group14-sha256 (RFC 8268 §3)."""

    name = "diffie-hellman-group14-sha256"
    hash_name = "sha256"
    prime = GROUP14_P


class DHGroup16Sha512Kex(_FixedGroupKex):
    """diffie-hellman-group16-sha512 (RFC 8268 §3)."""

    name = "diffie-hellman-group16-sha512"
    hash_name = "sha512"
    prime = GROUP16_P


class DHGroup18Sha512Kex(_FixedGroupKex):
    """diffie-hellman-group18-sha512 (RFC 8268 §3)."""

    name = "diffie-hellman-group18-sha512"
    hash_name = "sha512"
    prime = GROUP18_P


class DHGroup14Sha1Kex(_FixedGroupKex):
    """diffie-hellman-group14-sha1 (RFC 4253 §8.2); legacy, opt-in."""

    name = "diffie-hellman-group14-sha1"
    hash_name = "sha1"
    legacy = True
    prime = GROUP14_P


class DHGroup1Sha1Kex(_FixedGroupKex):
    """diffie-hellman-group1-sha1 (RFC 4253 §8.1); legacy, opt-in."""

    name = "diffie-hellman-group1-sha1"
    hash_name = "sha1"
    legacy = True
    prime = GROUP1_P
