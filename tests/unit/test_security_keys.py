"""Security-key user keys in the core: parsing bounds and assertion checks (PROTOCOL.u2f)."""

from __future__ import annotations

import struct

import pytest

from geossh.errors import SSHException
from geossh.proto import keys
from tests.sk_authenticator import ECDSA, ED25519, PRESENT, VERIFIED, Authenticator


def _s(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return struct.pack(">I", len(raw)) + raw


@pytest.mark.parametrize("kind", [ED25519, ECDSA])
def test_parse_and_verify(kind: str) -> None:
    auth = Authenticator(kind, application="ssh:test")
    key = keys.public_key_from_blob(auth.blob)
    assert isinstance(key, keys.SecurityKey)
    assert key.key_type == kind and key.application == "ssh:test"
    assert key.public_blob == auth.blob and key.signature_algorithms() == (kind,)
    signature = auth.sign(b"data", PRESENT | VERIFIED)
    assertion = key.verify_assertion(b"data", signature, kind)
    assert assertion is not None and assertion.user_present and assertion.user_verified
    assert assertion.counter == 1
    assert key.verify(b"data", signature)
    assert key.verify_assertion(b"other", signature) is None
    assert key.verify_assertion(b"data", signature, "ssh-ed25519") is None
    assert key.verify_assertion(b"data", signature + b"x") is None  # trailing bytes
    with pytest.raises(SSHException):
        key.sign(b"data")


@pytest.mark.parametrize(
    "blob",
    [
        _s(ECDSA) + _s("nistp384") + _s(b"\x04" + bytes(96)) + _s("ssh:"),
        _s(ECDSA) + _s("nistp256") + _s(b"\x04" + bytes(64)) + _s("ssh:"),  # not on the curve
        _s(ED25519) + _s(bytes(31)) + _s("ssh:"),
        _s(ED25519) + _s(bytes(32)) + _s(b"x" * 300),  # application too long
        _s(ED25519) + _s(bytes(32)) + _s(b"\xff"),  # not UTF-8
        _s(ED25519) + _s(bytes(32)),  # truncated
        _s(ED25519) + _s(bytes(32)) + _s("ssh:") + b"extra",
    ],
)
def test_malformed_security_keys_are_refused(blob: bytes) -> None:
    with pytest.raises(keys.KeyParseError):
        keys.public_key_from_blob(blob)


def test_accepted_for_user_auth_by_default() -> None:
    from geossh.proto.config import ServerConfig

    assert {ED25519, ECDSA} <= set(ServerConfig().pubkey_algorithms)
    assert keys.blob_type_for_algorithm(ED25519) == ED25519
