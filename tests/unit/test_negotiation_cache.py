"""negotiate_kexinit: negotiation remembered by the lists, never by the cookie."""

from __future__ import annotations

import os

import pytest

from geossh.proto import algorithms
from geossh.proto.algorithms import KexInit, negotiate, negotiate_kexinit
from geossh.proto.errors import IncompatiblePeer, RemoteProtocolError

AEAD = frozenset({"chacha20-poly1305@openssh.com"})


def kexinit(kex: list[str], ciphers: list[str], follows: bool = False) -> KexInit:
    return KexInit(
        os.urandom(16), kex, ["ssh-ed25519"], ciphers, ciphers, ["hmac-sha2-256"],
        ["hmac-sha2-256"], ["none"], ["none"], [], [], follows,
    )  # fmt: skip


SERVER = kexinit(["curve25519-sha256", "kex-strict-s-v00@openssh.com"], ["aes128-ctr"])
SERVER_PAYLOAD = SERVER.encode()


def client_payload(follows: bool = False, kex: str = "curve25519-sha256") -> bytes:
    lists = [kex, "ext-info-c", "kex-strict-c-v00@openssh.com"]
    return kexinit(lists, ["chacha20-poly1305@openssh.com", "aes128-ctr"], follows).encode()


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    algorithms._NEGOTIATED.clear()


def test_same_result_as_decoding_and_negotiating() -> None:
    payload = client_payload()
    negotiated, follows = negotiate_kexinit(payload, SERVER, SERVER_PAYLOAD, AEAD)
    assert negotiated == negotiate(KexInit.decode(payload), SERVER, set(AEAD))
    assert negotiated.cipher_c2s == "aes128-ctr" and negotiated.mac_c2s == "hmac-sha2-256"
    assert negotiated.strict_kex and negotiated.client_ext_info
    assert follows is False


def test_a_new_cookie_reuses_the_result_and_other_lists_do_not() -> None:
    first, _ = negotiate_kexinit(client_payload(), SERVER, SERVER_PAYLOAD, AEAD)
    again, _ = negotiate_kexinit(client_payload(), SERVER, SERVER_PAYLOAD, AEAD)
    assert again is first  # only the cookie differed
    guessing, follows = negotiate_kexinit(client_payload(True), SERVER, SERVER_PAYLOAD, AEAD)
    assert follows is True and guessing is not first
    other = kexinit(["curve25519-sha256@libssh.org", "curve25519-sha256"], ["aes128-ctr"])
    offer, _ = negotiate_kexinit(client_payload(), other, other.encode(), AEAD)
    assert offer is not first and not offer.strict_kex  # another server offer


def test_failures_raise_and_are_not_remembered() -> None:
    with pytest.raises(IncompatiblePeer):
        negotiate_kexinit(
            client_payload(kex="diffie-hellman-group1-sha1"), SERVER, SERVER_PAYLOAD, AEAD
        )
    with pytest.raises(RemoteProtocolError):
        negotiate_kexinit(client_payload()[:-3], SERVER, SERVER_PAYLOAD, AEAD)
    assert not algorithms._NEGOTIATED


def test_the_cache_stays_bounded() -> None:
    for n in range(3 * algorithms._CACHE_LIMIT):  # every client different
        negotiate_kexinit(
            client_payload(kex=f"curve25519-sha256,x{n}@example.com"), SERVER, SERVER_PAYLOAD, AEAD
        )
    assert len(algorithms._NEGOTIATED) <= algorithms._CACHE_LIMIT
