"""libsodium's Ed25519, X25519 and chacha20-poly1305 give what cryptography's give,
and refuse what it refuses."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from geossh.proto import sodium
from geossh.proto.cipher import ChaCha20Poly1305
from geossh.proto.errors import MACError

BULK = ChaCha20Poly1305.bulk_from

# RFC 7748 §6.1
ALICE_PRIV = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUB = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PUB = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


def test_x25519_rfc7748_vector() -> None:
    assert sodium.x25519_public(ALICE_PRIV) == ALICE_PUB
    assert sodium.x25519(ALICE_PRIV, BOB_PUB) == SHARED


def test_x25519_agrees_with_cryptography() -> None:
    for _ in range(20):
        private, public = sodium.x25519_keypair()
        peer = x25519.X25519PrivateKey.generate()
        theirs = peer.exchange(x25519.X25519PublicKey.from_public_bytes(public))
        assert sodium.x25519(private, peer.public_key().public_bytes_raw()) == theirs


@pytest.mark.parametrize("point", [bytes(32), (1).to_bytes(32, "little")])
def test_x25519_refuses_an_all_zero_result(point: bytes) -> None:
    with pytest.raises(ValueError):
        sodium.x25519(os.urandom(32), point)


def test_ed25519_signatures_are_cryptographys() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    secret = sodium.ed25519_signing_secret(key.private_bytes_raw())
    public = key.public_key().public_bytes_raw()
    for size in (0, 1, 150, 4096):
        data = os.urandom(size)
        assert sodium.ed25519_sign(secret, data) == key.sign(data)  # deterministic
        assert sodium.ed25519_verify(public, key.sign(data), data)


def test_ed25519_verify_refuses_bad_signatures() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    data = b"session id and request"
    good = key.sign(data)
    tampered = bytes([good[0] ^ 1]) + good[1:]
    assert not sodium.ed25519_verify(public, tampered, data)
    assert not sodium.ed25519_verify(public, good, data + b"!")
    assert not sodium.ed25519_verify(public, good[:63], data)
    assert not sodium.ed25519_verify(public, good + b"\0", data)
    assert not sodium.ed25519_verify(public[:31], good, data)
    other = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert not sodium.ed25519_verify(other, good, data)


# -- chacha20-poly1305@openssh.com -------------------------------------------------


def _openssl_chacha(key: bytes) -> ChaCha20Poly1305:
    class OpenSSLOnly(ChaCha20Poly1305):
        __slots__ = ()
        bulk_from = 0  # every packet through cryptography's contexts

    return OpenSSLOnly(key)


def test_the_raw_functions_are_found_here() -> None:
    """CI's PyNaCl exports them: the libsodium path is what the suite exercises."""
    assert sodium.RAW_CHACHA
    assert ChaCha20Poly1305.bulk_from > 0


SIZES = [8, 16, 48, 100, 1024, BULK - 8, BULK - 4, BULK, BULK + 8, 32768 + 16]
SEQS = [0, 1, 255, 2**32 - 1, 2**32, 2**64 - 1]


@pytest.mark.parametrize("size", SIZES)
def test_chacha_paths_give_the_same_wire_bytes(size: int) -> None:
    key = os.urandom(64)
    ours, reference = ChaCha20Poly1305(key), _openssl_chacha(key)
    for seq in SEQS:
        packet = os.urandom(size)
        wire = ours.seal(seq, packet)
        assert wire == reference.seal(seq, packet)
        assert ours.packet_length(seq, wire[:4]) == reference.packet_length(seq, wire[:4])
        assert ours.open(seq, wire) == reference.open(seq, wire) == (packet[4:], 0)


@pytest.mark.parametrize("size", [16, 100, 32768 + 16])
def test_chacha_refuses_any_changed_byte(size: int) -> None:
    key = os.urandom(64)
    wire = ChaCha20Poly1305(key).seal(7, os.urandom(size))
    opener = ChaCha20Poly1305(key)
    for index in (0, 3, 4, len(wire) // 2, len(wire) - 17, len(wire) - 16, len(wire) - 1):
        bad = bytearray(wire)
        bad[index] ^= 0x01
        with pytest.raises(MACError):
            opener.open(7, bytes(bad))
    with pytest.raises(MACError):
        opener.open(8, wire)  # another sequence number: another key stream
    with pytest.raises(MACError):
        ChaCha20Poly1305(os.urandom(64)).open(7, wire)


def test_chacha_raw_refuses_bad_bounds() -> None:
    raw = sodium.OpenSSHChaChaPoly(os.urandom(64))
    nonce = bytes(8)
    with pytest.raises(ValueError):
        raw.seal_into(nonce, b"abc", bytearray(64))  # shorter than the length field
    with pytest.raises(ValueError):
        raw.seal_into(nonce, bytes(32), bytearray(40))  # no room for the tag
    with pytest.raises(ValueError):
        raw.open_at(nonce, bytes(40), 0, 30)  # the tag would run past the data
    with pytest.raises(ValueError):
        raw.packet_length(nonce, b"ab")
    for short in (b"", bytes(7)):  # libsodium reads 8 nonce bytes: refused before C
        with pytest.raises(ValueError):
            raw.seal_into(short, bytes(32), bytearray(48))
        with pytest.raises(ValueError):
            raw.packet_length(short, bytes(4))
        with pytest.raises(ValueError):
            raw.open_at(short, bytes(48), 0, 32)
    with pytest.raises(ValueError):
        sodium.OpenSSHChaChaPoly(bytes(32))


def test_small_packets_build_no_openssl_context() -> None:
    key = os.urandom(64)
    sealer, opener = ChaCha20Poly1305(key), ChaCha20Poly1305(key)
    for seq in range(20):
        wire = sealer.seal(seq, os.urandom(96))
        opener.packet_length(seq, wire[:4])
        opener.open(seq, wire)
    assert sealer._main is None and opener._main is None
    bulk = sealer.seal(20, os.urandom(BULK))
    assert sealer._main is not None  # built by the first bulk packet
    sealer.compact()
    assert sealer._main is None  # dropped while idle, rebuilt by the next one
    assert opener.open(20, bulk)[0] == _openssl_chacha(key).open(20, bulk)[0]
    data = os.urandom(BULK)
    assert opener.open(21, sealer.seal(21, data)) == (data[4:], 0)


def test_a_library_without_the_functions_means_no_raw_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where PyNaCl's library cannot be opened or hides a function, cryptography does all."""
    import ctypes

    def unloadable(path: str) -> object:
        raise OSError("cannot open")

    monkeypatch.setattr(ctypes, "CDLL", unloadable)
    assert sodium._open_raw() is None

    class Hidden:
        def __getattr__(self, name: str) -> object:
            raise AttributeError(name)

    monkeypatch.setattr(ctypes, "CDLL", lambda path: Hidden())
    assert sodium._open_raw() is None
