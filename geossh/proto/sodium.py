"""libsodium (PyNaCl's): the per-connection public-key work and small packets' AEAD.

Every connection of an OpenSSH client does one X25519 exchange and one
Ed25519 host-key signature, and an Ed25519 user key one verification.
libsodium does these about 1.5x faster than the OpenSSL inside
cryptography (on the benchmark machine: verify 86 vs 136 µs, sign 31 vs 47,
an X25519 key pair and exchange 53 vs 70), and takes raw bytes, so no key
objects are built per connection. Parsing, serialising and every other
algorithm stay with cryptography.

chacha20-poly1305@openssh.com is built from DJB's ChaCha20 (64-bit nonce
and block counter) and Poly1305, which PyNaCl does not bind although its
library exports them: ``OpenSSHChaChaPoly`` calls them through PyNaCl's own
cffi. They need no key schedule, so a message-sized packet costs no cipher
context (cryptography builds an OpenSSL context per key and an ``EVP_PKEY``
per Poly1305 tag). ``RAW_CHACHA`` is False where the library does not
export them; cipher.py then uses cryptography throughout.

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

import os
from typing import Any

from nacl import bindings
from nacl.exceptions import CryptoError

Buffer = bytes | bytearray | memoryview

__all__ = [
    "POLY1305_KEY_SIZE",
    "POLY1305_TAG_SIZE",
    "RAW_CHACHA",
    "X25519_SIZE",
    "OpenSSHChaChaPoly",
    "ed25519_sign",
    "ed25519_signing_secret",
    "ed25519_verify",
    "x25519",
    "x25519_keypair",
    "x25519_public",
]

X25519_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
POLY1305_KEY_SIZE = 32
POLY1305_TAG_SIZE = 16
_NONCE_SIZE = 8
# XORed with the key stream, zeros give the key stream itself (the Poly1305 key).
_ZEROS = bytes(POLY1305_KEY_SIZE)

# The C signatures of what PyNaCl's library exports but does not bind.
_SIGNATURES = {
    "crypto_stream_chacha20_xor_ic": "int(*)(unsigned char *, const unsigned char *,"
    " unsigned long long, const unsigned char *, uint64_t, const unsigned char *)",
    "crypto_onetimeauth_poly1305": "int(*)(unsigned char *, const unsigned char *,"
    " unsigned long long, const unsigned char *)",
    "crypto_onetimeauth_poly1305_verify": "int(*)(const unsigned char *,"
    " const unsigned char *, unsigned long long, const unsigned char *)",
}


def _open_raw() -> tuple[Any, ...] | None:
    """PyNaCl's compiled cffi, then its library's unbound functions (``_SIGNATURES``'
    order), or None.

    ctypes only finds the addresses; the calls go through PyNaCl's own
    ``ffi`` (compiled: no C parser is imported, so nothing of ``subprocess``).
    """
    import ctypes

    try:
        from nacl import _sodium

        library = ctypes.CDLL(_sodium.__file__)
        ffi = _sodium.ffi
        functions = [
            ffi.cast(signature, ctypes.cast(getattr(library, name), ctypes.c_void_p).value)
            for name, signature in _SIGNATURES.items()
        ]
    except (ImportError, OSError, AttributeError, TypeError):  # pragma: no cover - the build
        return None
    bindings.sodium_init()
    return (ffi, *functions)


_raw = _open_raw()
RAW_CHACHA = _raw is not None
_ffi, _chacha20_xor_ic, _poly1305, _poly1305_verify = _raw or (None, None, None, None)


def x25519_public(private: bytes) -> bytes:
    """The public value of a 32-byte X25519 private scalar (clamped by libsodium)."""
    return bytes(bindings.crypto_scalarmult_base(private))


def x25519_keypair() -> tuple[bytes, bytes]:
    """A fresh (private, public) X25519 pair."""
    private = os.urandom(X25519_SIZE)
    return private, x25519_public(private)


def x25519(private: bytes, peer: bytes) -> bytes:
    """X25519(private, peer); ``ValueError`` for an all-zero result (a low-order point)."""
    try:
        return bytes(bindings.crypto_scalarmult(private, peer))
    except CryptoError:  # libsodium refuses an all-zero output
        raise ValueError("X25519 shared secret is all zero") from None


def ed25519_signing_secret(seed: bytes) -> bytes:
    """libsodium's 64-byte signing key (seed || public) for a 32-byte private seed."""
    return bytes(bindings.crypto_sign_seed_keypair(seed)[1])


def ed25519_sign(secret: bytes, data: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``data`` (RFC 8032; deterministic)."""
    return bytes(bindings.crypto_sign(data, secret)[:ED25519_SIGNATURE_SIZE])


def ed25519_verify(public: bytes, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``data`` by ``public``."""
    if len(signature) != ED25519_SIGNATURE_SIZE or len(public) != 32:
        return False
    try:
        bindings.crypto_sign_open(signature + data, public)
    except CryptoError:
        return False
    return True


class OpenSSHChaChaPoly:
    """chacha20-poly1305@openssh.com of one direction, on libsodium. Needs ``RAW_CHACHA``.

    K_2 (``key[:32]``) gives the Poly1305 key at block counter 0 and encrypts
    the payload from block 1; K_1 (``key[32:]``) encrypts the 4-byte length.
    The 8-byte nonce is the big-endian sequence number, and the tag covers
    ``encrypted length || ciphertext``. Each call does its work in three or
    four C calls on buffers it was given (the Poly1305 key in a scratch
    buffer of its own): no key schedule, no per-call objects beyond the result.
    The scratch buffers make an instance one direction's alone, used by one
    caller at a time (as a packet reader or writer is). Every size is
    checked before a pointer reaches C.
    """

    __slots__ = ("_k1", "_k2", "_length", "_length_at", "_poly_key", "_poly_key_at")

    def __init__(self, key: bytes) -> None:
        if len(key) != 64:
            raise ValueError("chacha20-poly1305 takes a 64-byte key")
        self._k2 = key[:32]
        self._k1 = key[32:]
        self._poly_key = bytearray(POLY1305_KEY_SIZE)
        self._poly_key_at = _ffi.from_buffer(self._poly_key, require_writable=True)
        self._length = bytearray(4)
        self._length_at = _ffi.from_buffer(self._length, require_writable=True)

    def seal_into(self, nonce: bytes, packet: Buffer, out: Buffer) -> None:
        """Encrypt ``length || rest`` of ``packet`` into ``out`` and append the tag."""
        size = len(packet)
        if size < 4 or len(out) < size + POLY1305_TAG_SIZE or len(nonce) != _NONCE_SIZE:
            raise ValueError("chacha20-poly1305: bad packet, output or nonce size")
        ffi = _ffi
        src = ffi.from_buffer(packet)
        dst = ffi.from_buffer(out, require_writable=True)
        xor, k2 = _chacha20_xor_ic, self._k2
        xor(dst, src, 4, nonce, 0, self._k1)
        xor(self._poly_key_at, _ZEROS, POLY1305_KEY_SIZE, nonce, 0, k2)
        xor(dst + 4, src + 4, size - 4, nonce, 1, k2)
        _poly1305(dst + size, dst, size, self._poly_key_at)

    def packet_length(self, nonce: bytes, head: Buffer) -> int:
        """The length field decrypted from the first 4 bytes of ``head``."""
        if len(head) < 4 or len(nonce) != _NONCE_SIZE:
            raise ValueError("chacha20-poly1305: bad length field or nonce size")
        _chacha20_xor_ic(self._length_at, _ffi.from_buffer(head), 4, nonce, 0, self._k1)
        return int.from_bytes(self._length, "big")

    def open_at(self, nonce: bytes, data: Buffer, pos: int, end: int) -> bytes | None:
        """The decrypted ``data[pos + 4:end]`` if the tag at ``data[end:]`` matches, else None."""
        bad = pos < 0 or end - pos < 4 or len(data) < end + POLY1305_TAG_SIZE
        if bad or len(nonce) != _NONCE_SIZE:
            raise ValueError("chacha20-poly1305: bad packet bounds or nonce size")
        ffi = _ffi
        src = ffi.from_buffer(data)
        k2 = self._k2
        _chacha20_xor_ic(self._poly_key_at, _ZEROS, POLY1305_KEY_SIZE, nonce, 0, k2)
        if _poly1305_verify(src + end, src + pos, end - pos, self._poly_key_at) != 0:
            return None
        size = end - pos - 4
        plain = ffi.new("unsigned char[]", size)
        _chacha20_xor_ic(plain, src + pos + 4, size, nonce, 1, k2)
        return bytes(ffi.buffer(plain, size))
