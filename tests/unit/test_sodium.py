"""libsodium's Ed25519 and X25519 give what cryptography's give, and refuse what it refuses."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from geossh.proto import sodium

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
