"""Packet protection: the cipher and MAC registries and per-direction transforms.

Owns the SSH names, key sizes and block sizes of every cipher and MAC, and
the cryptographic transform of one packet in one direction:

* ``chacha20-poly1305@openssh.com`` (OpenSSH PROTOCOL.chacha20poly1305),
* ``aes128-gcm@openssh.com`` / ``aes256-gcm@openssh.com`` (RFC 5647 §7 as
  OpenSSH does it: the packet length is clear and authenticated),
* ``aes*-ctr`` (RFC 4344) and legacy ``aes*-cbc`` / ``3des-cbc`` with an
  HMAC, either encrypt-and-MAC (RFC 4253 §6.4) or OpenSSH's encrypt-then-MAC
  ``-etm``; legacy MACs include MD5 and the 96-bit truncated ones (RFC 4253 §6.4).

Framing (padding, length checks, sequence numbers, buffering) belongs to
packet.py; this module sees one whole packet at a time. The primitives come
from ``cryptography``, and for message-sized chacha20-poly1305 packets from
libsodium (sodium.py); only SSH's own constructions are assembled here.

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from hmac import compare_digest

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.poly1305 import Poly1305

try:  # cryptography >= 43 keeps TripleDES in its "decrepit" module
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    TripleDES = algorithms.TripleDES  # type: ignore[misc]

from geossh.proto import sodium
from geossh.proto.errors import LocalProtocolError, MACError

Buffer = bytes | bytearray | memoryview

# Cipher modes (CipherInfo.mode).
CHACHA20_POLY1305 = "chacha20-poly1305"
GCM = "gcm"
CTR = "ctr"
CBC = "cbc"

#: Tag length of both AEAD ciphers.
AEAD_TAG_SIZE = 16
#: Block size used for padding before any keys are in effect (RFC 4253 §6).
CLEARTEXT_BLOCK_SIZE = 8

_U32 = struct.Struct(">I")
# cryptography's ChaCha20 takes a 16-byte "nonce": the 64-bit little-endian
# block counter (0 here) followed by OpenSSH's nonce, the uint64 seqno.
_CHACHA_NONCE = struct.Struct(">8xQ")
# libsodium's ChaCha20 takes the 8-byte nonce alone (the counter is an argument).
_SEQ_NONCE = struct.Struct(">Q")
# chacha20-poly1305 packets from this size on (length field included) are
# sealed by OpenSSL: below it libsodium is as fast and needs no cipher context
# (measured per packet: 8 KiB ~7 us both ways; 32 KiB 11.7 vs 23.5 us).
_BULK_FROM = 8192
# RFC 5647 §7.1: 4-byte fixed field || 8-byte invocation counter.
_GCM_NONCE = struct.Struct(">4sQ")
_ZERO_BLOCK = bytes(64)
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class CipherInfo:
    """Static facts about one cipher (sizes in bytes)."""

    name: str
    key_size: int
    iv_size: int
    block_size: int
    is_aead: bool
    mode: str
    legacy: bool = False
    #: The block cipher of CTR/CBC modes: ``aes`` or ``3des``.
    primitive: str = "aes"


@dataclass(frozen=True)
class MacInfo:
    """Static facts about one MAC (sizes in bytes; ``digest_size`` is the tag sent)."""

    name: str
    key_size: int
    digest_size: int
    etm: bool
    hash_name: str
    legacy: bool = False


def _cipher_table() -> dict[str, CipherInfo]:
    rows = [
        CipherInfo("chacha20-poly1305@openssh.com", 64, 0, 8, True, CHACHA20_POLY1305),
        CipherInfo("aes128-gcm@openssh.com", 16, 12, 16, True, GCM),
        CipherInfo("aes256-gcm@openssh.com", 32, 12, 16, True, GCM),
        CipherInfo("aes128-ctr", 16, 16, 16, False, CTR),
        CipherInfo("aes192-ctr", 24, 16, 16, False, CTR),
        CipherInfo("aes256-ctr", 32, 16, 16, False, CTR),
        CipherInfo("aes128-cbc", 16, 16, 16, False, CBC, legacy=True),
        CipherInfo("aes192-cbc", 24, 16, 16, False, CBC, legacy=True),
        CipherInfo("aes256-cbc", 32, 16, 16, False, CBC, legacy=True),
        CipherInfo("3des-cbc", 24, 8, 8, False, CBC, legacy=True, primitive="3des"),
    ]
    return {row.name: row for row in rows}


def _mac_table() -> dict[str, MacInfo]:
    rows = [
        MacInfo("hmac-sha2-256-etm@openssh.com", 32, 32, True, "sha256"),
        MacInfo("hmac-sha2-512-etm@openssh.com", 64, 64, True, "sha512"),
        MacInfo("hmac-sha2-256", 32, 32, False, "sha256"),
        MacInfo("hmac-sha2-512", 64, 64, False, "sha512"),
        MacInfo("hmac-sha1-etm@openssh.com", 20, 20, True, "sha1", legacy=True),
        MacInfo("hmac-sha1", 20, 20, False, "sha1", legacy=True),
        MacInfo("hmac-sha1-96", 20, 12, False, "sha1", legacy=True),
        MacInfo("hmac-md5", 16, 16, False, "md5", legacy=True),
        MacInfo("hmac-md5-96", 16, 12, False, "md5", legacy=True),
    ]
    return {row.name: row for row in rows}


#: Every cipher we implement, strongest first; ``legacy`` ones are opt-in.
CIPHERS: dict[str, CipherInfo] = _cipher_table()
#: Every MAC we implement, strongest first; ``legacy`` ones are opt-in.
MACS: dict[str, MacInfo] = _mac_table()

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha512": hashes.SHA512,
}


def cipher_info(name: str) -> CipherInfo:
    """Look up a cipher; an unknown name is a ``LocalProtocolError``."""
    try:
        return CIPHERS[name]
    except KeyError:
        raise LocalProtocolError(f"unsupported cipher {name!r}") from None


def mac_info(name: str) -> MacInfo:
    """Look up a MAC; an unknown name is a ``LocalProtocolError``."""
    try:
        return MACS[name]
    except KeyError:
        raise LocalProtocolError(f"unsupported MAC {name!r}") from None


def key_sizes(cipher: str, mac: str | None) -> tuple[int, int, int]:
    """Return ``(iv_len, enc_key_len, mac_key_len)`` to derive for one direction.

    AEAD ciphers carry their own integrity, so their MAC key length is 0 and
    ``mac`` is ignored (RFC 5647 §5.1; PROTOCOL.chacha20poly1305).
    """
    info = cipher_info(cipher)
    if info.is_aead:
        return info.iv_size, info.key_size, 0
    if not mac:
        raise LocalProtocolError(f"cipher {cipher!r} needs a MAC")
    return info.iv_size, info.key_size, mac_info(mac).key_size


class Mac:
    """HMAC over ``uint32 seqno || data`` (RFC 4253 §6.4) with a pre-keyed state.

    ``cryptography``'s HMAC ``copy()`` of a keyed context measured faster
    than ``hmac.new``/``hmac.digest`` for both small and 32 KiB packets.
    """

    __slots__ = ("_keyed", "_truncated", "size")

    def __init__(self, info: MacInfo, key: bytes) -> None:
        algorithm = _HASHES[info.hash_name]()
        self._keyed = crypto_hmac.HMAC(key, algorithm)
        self.size = info.digest_size
        # ``-96`` MACs send the first 12 bytes of the HMAC (RFC 4253 §6.4).
        self._truncated = info.digest_size < algorithm.digest_size

    def compute(self, seq: int, *parts: Buffer) -> bytes:
        """MAC of the sequence number followed by ``parts``."""
        ctx = self._keyed.copy()
        ctx.update(_U32.pack(seq))
        for part in parts:
            ctx.update(part)
        if self._truncated:
            return ctx.finalize()[: self.size]
        return ctx.finalize()

    def check(self, seq: int, tag: Buffer, *parts: Buffer) -> None:
        """Raise ``MACError`` unless ``tag`` matches, compared in constant time."""
        if not compare_digest(self.compute(seq, *parts), tag):
            raise MACError("MAC verification failed")


class PacketProtection:
    """The transform of one direction; this base class is the cleartext one.

    ``seal_into(seq, packet, out)`` takes ``uint32 length || padding_length ||
    payload || padding`` and writes the wire packet into ``out``, which holds
    exactly ``len(packet) + tag_size`` bytes and does not overlap ``packet``
    (``seal`` returns it as new bytes instead). Inbound, ``packet_length`` is called
    exactly once per packet with its first ``head_size`` bytes, then ``open``
    with the whole wire packet (``4 + length + tag_size`` bytes); ``open``
    returns the plaintext and the offset of the padding-length byte in it.
    ``aad_len`` is 4 when the length field is outside the encrypted, block
    aligned part (AEAD and -etm), else 0.
    """

    __slots__ = ()

    block_size: int = CLEARTEXT_BLOCK_SIZE
    aad_len: int = 0
    tag_size: int = 0
    head_size: int = 4
    #: The length field is the plain first 4 bytes (``packet_length`` need not be called).
    clear_length: bool = True

    def seal(self, seq: int, packet: Buffer) -> bytes:
        """Protect one complete plaintext packet; the wire bytes."""
        out = bytearray(len(packet) + self.tag_size)
        with memoryview(packet) as plain, memoryview(out) as view:
            self.seal_into(seq, plain, view)
        return bytes(out)

    def seal_into(self, seq: int, packet: memoryview, out: memoryview) -> None:
        """Protect ``packet`` into ``out`` (``len(packet) + tag_size`` bytes)."""
        out[:] = packet

    def packet_length(self, seq: int, head: Buffer) -> int:
        """Read the packet length from the first ``head_size`` bytes."""
        return int(_U32.unpack_from(head)[0])

    def open(self, seq: int, data: Buffer) -> tuple[bytes, int]:
        """Verify and decrypt one whole wire packet."""
        return bytes(data), 4

    def open_at(self, seq: int, view: memoryview, pos: int, total: int) -> tuple[bytes, int]:
        """``open`` of the ``total``-byte packet at ``view[pos:]`` (one slice less)."""
        return self.open(seq, view[pos : pos + total])

    def compact(self) -> None:
        """Free what the next packet can rebuild (the connection went idle)."""


class ChaCha20Poly1305(PacketProtection):
    """chacha20-poly1305@openssh.com.

    K_2 (key[:32]) encrypts the payload from block counter 1 and, at
    counter 0, yields the Poly1305 key; K_1 (key[32:]) encrypts only the
    4-byte length. The nonce of both is the uint64 sequence number, and the
    tag covers ``encrypted length || ciphertext``.

    Packets under ``_BULK_FROM`` bytes (every message, interactive data) go
    through libsodium (``sodium.RAW_CHACHA``), which needs no per-key state;
    bulk packets through cryptography's OpenSSL contexts, faster per byte,
    built by the first one (``reset_nonce`` lets one context per key serve
    every packet) and dropped by ``compact``.
    """

    __slots__ = ("_header", "_key", "_main", "_raw")

    block_size = 8
    aad_len = 4
    tag_size = AEAD_TAG_SIZE
    clear_length = False
    #: Packets from this size on use OpenSSL (0: all of them, libsodium's are missing).
    bulk_from = _BULK_FROM if sodium.RAW_CHACHA else 0

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._raw = sodium.OpenSSHChaChaPoly(key) if self.bulk_from else None
        self._main: CipherContext | None = None
        self._header: CipherContext | None = None

    def compact(self) -> None:
        """Drop the OpenSSL contexts while small packets need none (the next bulk one rebuilds)."""
        if self._raw is not None:
            self._main = self._header = None

    def _contexts(self) -> tuple[CipherContext, CipherContext]:
        """The (length, main) OpenSSL contexts, built on first use."""
        if self._main is None or self._header is None:
            nonce = _CHACHA_NONCE.pack(0)
            self._main = Cipher(algorithms.ChaCha20(self._key[:32], nonce), None).encryptor()
            self._header = Cipher(algorithms.ChaCha20(self._key[32:], nonce), None).encryptor()
        return self._header, self._main

    def _poly_key(self, main: CipherContext, nonce: bytes) -> bytes:
        main.reset_nonce(nonce)
        # One whole block: the first 32 bytes are the key, and the payload
        # then continues at block counter 1.
        return main.update(_ZERO_BLOCK)[:32]

    def seal_into(self, seq: int, packet: memoryview, out: memoryview) -> None:
        size = len(packet)
        if size < self.bulk_from:
            self._raw.seal_into(_SEQ_NONCE.pack(seq), packet, out)  # type: ignore[union-attr]
            return
        # One Poly1305 call over the contiguous ``length || ciphertext``.
        nonce = _CHACHA_NONCE.pack(seq)
        header, main = self._contexts()
        header.reset_nonce(nonce)
        out[:4] = header.update(packet[:4])
        poly_key = self._poly_key(main, nonce)
        main.update_into(packet[4:], out[4:])
        out[size:] = Poly1305.generate_tag(poly_key, out[:size])

    def packet_length(self, seq: int, head: Buffer) -> int:
        if self._raw is not None:
            return self._raw.packet_length(_SEQ_NONCE.pack(seq), head)
        header = self._contexts()[0]
        header.reset_nonce(_CHACHA_NONCE.pack(seq))
        return int(_U32.unpack(header.update(head))[0])

    def open(self, seq: int, data: Buffer) -> tuple[bytes, int]:
        view = memoryview(data)
        return self.open_at(seq, view, 0, len(view))

    def open_at(self, seq: int, view: memoryview, pos: int, total: int) -> tuple[bytes, int]:
        end = pos + total - AEAD_TAG_SIZE
        if end - pos < self.bulk_from:
            plain = self._raw.open_at(_SEQ_NONCE.pack(seq), view, pos, end)  # type: ignore[union-attr]
            if plain is None:
                raise MACError("chacha20-poly1305 tag mismatch")
            return plain, 0
        main = self._contexts()[1]
        poly_key = self._poly_key(main, _CHACHA_NONCE.pack(seq))
        try:
            Poly1305.verify_tag(poly_key, view[pos:end], bytes(view[end : pos + total]))
        except InvalidSignature:
            raise MACError("chacha20-poly1305 tag mismatch") from None
        return main.update(view[pos + 4 : end]), 0


class AesGcm(PacketProtection):
    """aes128/256-gcm@openssh.com: length as AAD, IV counter per packet.

    The ``AESGCM`` object (about 2.3 KB of OpenSSL state) is dropped by
    ``compact`` and rebuilt from the key by the next packet (about 1 µs).
    """

    __slots__ = ("_aead", "_counter", "_fixed", "_key")

    block_size = 16
    aad_len = 4
    tag_size = AEAD_TAG_SIZE

    def __init__(self, key: bytes, iv: bytes) -> None:
        self._key = key
        self._aead: AESGCM | None = AESGCM(key)
        self._fixed = iv[:4]
        self._counter = int.from_bytes(iv[4:], "big")

    def compact(self) -> None:
        self._aead = None

    def _rebuild(self) -> AESGCM:
        self._aead = aead = AESGCM(self._key)
        return aead

    def _nonce(self) -> bytes:
        counter = self._counter
        self._counter = (counter + 1) & _MASK64
        return _GCM_NONCE.pack(self._fixed, counter)

    def seal(self, seq: int, packet: Buffer) -> bytes:
        head = bytes(packet[:4])
        aead = self._aead or self._rebuild()
        return head + aead.encrypt(self._nonce(), memoryview(packet)[4:], head)

    def seal_into(self, seq: int, packet: memoryview, out: memoryview) -> None:
        head = packet[:4]
        out[:4] = head
        aead = self._aead or self._rebuild()
        aead.encrypt_into(self._nonce(), packet[4:], head, out[4:])

    def open(self, seq: int, data: Buffer) -> tuple[bytes, int]:
        view = memoryview(data)
        return self.open_at(seq, view, 0, len(view))

    def open_at(self, seq: int, view: memoryview, pos: int, total: int) -> tuple[bytes, int]:
        counter = self._counter
        self._counter = (counter + 1) & _MASK64
        aead = self._aead or self._rebuild()
        try:
            plain = aead.decrypt(
                _GCM_NONCE.pack(self._fixed, counter),
                view[pos + 4 : pos + total],
                view[pos : pos + 4],
            )
        except InvalidTag:
            raise MACError("aes-gcm tag mismatch") from None
        return plain, 0


class _BlockWithMac(PacketProtection):
    """AES-CTR/CBC or 3DES-CBC with an HMAC; one long-lived cipher context per direction."""

    __slots__ = ("_ctx", "_into", "_mac", "block_size", "tag_size")

    def __init__(self, info: CipherInfo, key: bytes, iv: bytes, mac: Mac, outbound: bool) -> None:
        self._ctx = _block_context(info, key, iv, outbound)
        self._mac = mac
        self.tag_size = mac.size
        self.block_size = info.block_size
        # ``update_into`` wants block_size - 1 bytes of slack after the
        # ciphertext: the MAC's room, unless the MAC is a 12-byte ``-96`` one.
        self._into = mac.size >= info.block_size - 1

    def _encrypt(self, src: memoryview, dst: memoryview) -> None:
        """Encrypt ``src`` into ``dst`` (which has the MAC's room after it)."""
        if self._into:
            self._ctx.update_into(src, dst)
        else:
            data = self._ctx.update(src)
            dst[: len(data)] = data


def _block_context(info: CipherInfo, key: bytes, iv: bytes, outbound: bool) -> CipherContext:
    """A long-lived CTR/CBC context: its counter or chain runs across packets."""
    primitive = TripleDES(key) if info.primitive == "3des" else algorithms.AES(key)
    mode = modes.CTR(iv) if info.mode == CTR else modes.CBC(iv)
    cipher = Cipher(primitive, mode)
    return cipher.encryptor() if outbound else cipher.decryptor()


class EncryptThenMac(_BlockWithMac):
    """``-etm@openssh.com``: clear length, MAC over ``length || ciphertext``."""

    __slots__ = ()

    aad_len = 4

    def seal_into(self, seq: int, packet: memoryview, out: memoryview) -> None:
        size = len(packet)
        out[:4] = packet[:4]
        self._encrypt(packet[4:], out[4:])
        out[size:] = self._mac.compute(seq, out[:size])

    def open(self, seq: int, data: Buffer) -> tuple[bytes, int]:
        view = memoryview(data)
        end = len(view) - self.tag_size
        self._mac.check(seq, view[end:], view[:end])
        return self._ctx.update(view[4:end]), 0


class EncryptAndMac(_BlockWithMac):
    """RFC 4253 §6.4: everything encrypted, MAC over the plaintext packet.

    The length is in the first cipher block, so ``packet_length`` decrypts
    that block and keeps it for ``open``; a bad length is thus rejected
    before the rest of the packet is awaited.
    """

    __slots__ = ("_first", "head_size")

    clear_length = False

    def __init__(self, info: CipherInfo, key: bytes, iv: bytes, mac: Mac, outbound: bool) -> None:
        super().__init__(info, key, iv, mac, outbound)
        self.head_size = info.block_size  # the first cipher block holds the length
        self._first = b""

    def seal_into(self, seq: int, packet: memoryview, out: memoryview) -> None:
        size = len(packet)
        self._encrypt(packet, out)
        out[size:] = self._mac.compute(seq, packet)

    def packet_length(self, seq: int, head: Buffer) -> int:
        self._first = first = self._ctx.update(head)
        return int(_U32.unpack_from(first)[0])

    def open(self, seq: int, data: Buffer) -> tuple[bytes, int]:
        view = memoryview(data)
        end = len(view) - self.tag_size
        plain = self._first + self._ctx.update(view[len(self._first) : end])
        self._first = b""
        self._mac.check(seq, view[end:], plain)
        return plain, 4


def _check_size(what: str, value: bytes, size: int, algorithm: str) -> None:
    if len(value) != size:
        raise LocalProtocolError(f"{algorithm} needs a {size}-byte {what}, got {len(value)}")


def new_protection(
    cipher: str, key: bytes, iv: bytes, mac: str, mac_key: bytes, *, outbound: bool
) -> PacketProtection:
    """Build the transform for one direction (``mac`` is ignored for AEAD)."""
    info = cipher_info(cipher)
    _check_size("key", key, info.key_size, cipher)
    _check_size("IV", iv, info.iv_size, cipher)
    if info.mode == CHACHA20_POLY1305:
        return ChaCha20Poly1305(key)
    if info.mode == GCM:
        return AesGcm(key, iv)
    if not mac:
        raise LocalProtocolError(f"cipher {cipher!r} needs a MAC")
    minfo = mac_info(mac)
    _check_size("MAC key", mac_key, minfo.key_size, mac)
    kind = EncryptThenMac if minfo.etm else EncryptAndMac
    return kind(info, key, iv, Mac(minfo, mac_key), outbound)
