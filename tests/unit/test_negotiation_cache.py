"""decode_kexinit / negotiate_kexinits: remembered by the lists, never by the cookie."""

from __future__ import annotations

import os

import pytest

from geossh.proto import algorithms
from geossh.proto.algorithms import (
    KexInit,
    Negotiated,
    decode_kexinit,
    negotiate,
    negotiate_kexinits,
)
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
def empty_caches() -> None:
    algorithms._DECODED.clear()
    algorithms._NEGOTIATED.clear()


def negotiated(payload: bytes, server: KexInit = SERVER) -> tuple[KexInit, Negotiated]:
    client = decode_kexinit(payload)
    return client, negotiate_kexinits(client, payload, server, server.encode(), AEAD)


def test_same_result_as_decoding_and_negotiating() -> None:
    payload = client_payload()
    client, result = negotiated(payload)
    assert client == KexInit.decode(payload)
    assert result == negotiate(KexInit.decode(payload), SERVER, set(AEAD))
    assert result.cipher_c2s == "aes128-ctr" and result.mac_c2s == "hmac-sha2-256"
    assert result.strict_kex and result.client_ext_info
    assert client.first_kex_follows is False


def test_a_new_cookie_reuses_the_lists_and_the_result() -> None:
    first_payload, again_payload = client_payload(), client_payload()
    first, result = negotiated(first_payload)
    again, result_again = negotiated(again_payload)
    assert again.cookie == again_payload[1:17] != first.cookie  # its own cookie
    assert again.kex is first.kex  # only the cookie differed: the lists are shared
    assert result_again is result


def test_other_lists_are_not_the_same_entry() -> None:
    _, first = negotiated(client_payload())
    guessing, guessed = negotiated(client_payload(True))
    assert guessing.first_kex_follows is True and guessed is not first
    other = kexinit(["curve25519-sha256@libssh.org", "curve25519-sha256"], ["aes128-ctr"])
    _, offer = negotiated(client_payload(), other)
    assert offer is not first and not offer.strict_kex  # another server offer


def test_failures_raise_and_are_not_remembered() -> None:
    payload = client_payload(kex="diffie-hellman-group1-sha1")
    with pytest.raises(IncompatiblePeer):
        negotiated(payload)
    with pytest.raises(RemoteProtocolError):
        decode_kexinit(client_payload()[:-3])
    assert list(algorithms._DECODED) == [payload[17:]]  # it decoded; it did not negotiate
    assert not algorithms._NEGOTIATED


def test_the_caches_stay_bounded() -> None:
    for n in range(3 * algorithms._CACHE_LIMIT):  # every client different
        negotiated(client_payload(kex=f"curve25519-sha256,x{n}@example.com"))
    assert len(algorithms._DECODED) <= algorithms._CACHE_LIMIT
    assert len(algorithms._NEGOTIATED) <= algorithms._CACHE_LIMIT
