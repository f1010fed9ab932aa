"""Server key exchange against clients written here from cryptography primitives.

Every method runs a full exchange; the client recomputes K and H from the
RFC formulas and verifies the host-key signature. Then known answers
(RFC 7748 §6.1, RFC 4253 §7.2) and hostile input. No sockets, no gevent.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import pathlib
import secrets
import subprocess
import sys
import types
import warnings
from collections.abc import Callable

import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings, strategies as st

from geossh.errors import KexError, LocalProtocolError, RemoteProtocolError
from geossh.proto.algorithms import ServerPreferences, offerable
from geossh.proto.kex import (
    FALLBACK_MODULI,
    KEX_METHODS,
    KexContext,
    ServerKex,
    create_server_kex,
    derive_key,
    hybrid,
    load_moduli,
    sntrup,
)
from geossh.proto.kex.dh import GROUP1_P, GROUP14_P, GROUP16_P, GROUP18_P
from geossh.proto.kex.ecdh import Curve25519Kex, _EcdhNistKex
from geossh.proto.kex.gex import DHGexSha256Kex, choose_modulus
from geossh.proto.kex.hybrid import MLKEM_AVAILABLE, MLKEM768X25519Kex
from geossh.proto.kex.sntrup import SNTRUP761, SNTRUP_AVAILABLE, Sntrup761X25519Kex
from geossh.proto.wire import Reader, byte, mpint, string, u32
from tests.support import needs_mlkem, needs_sntrup

KEX_DIR = pathlib.Path(__file__).resolve().parents[2] / "geossh" / "proto" / "kex"

# RFC 3526 §4 group 15 (3072 bits): a safe prime the FFDH fast path does not
# know, so group exchange over it takes the pow() path.
GROUP15_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64"
    "ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D226"
    "1AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)

# A moduli(5) fixture: three good lines, then lines OpenSSH would skip.
MODULI_TEXT = "\n".join(
    [
        "#    $OpenBSD: moduli,v 1.xx $",
        "# Time Type Tests Tries Size Generator Modulus",
        "",
        f"20240101000000 2 6 100 2047 2 {GROUP14_P:X}",
        f"  20240101000001 2 4 100 3071 5 {GROUP15_P:x}  ",  # MR only, lower-case hex
        f"20240101000002 2 6 100 4095 2 {GROUP16_P:X}",
        f"20240101000003 1 6 100 2047 2 {GROUP14_P:X}",  # not a safe prime
        f"20240101000004 2 5 100 2047 2 {GROUP14_P:X}",  # flagged composite
        f"20240101000005 2 0 100 2047 2 {GROUP14_P:X}",  # untested
        f"20240101000006 2 6 0 2047 2 {GROUP14_P:X}",  # no trials
        f"20240101000007 2 6 100 2046 2 {GROUP14_P:X}",  # size mismatch
        f"20240101000008 2 6 100 2047 1 {GROUP14_P:X}",  # generator 1
        "20240101000009 2 6 100 2047 2",  # truncated
        f"20240101000010 2 6 100 2047 2 {GROUP14_P:X} extra",
        "garbage line",
    ]
)


class Ed25519Signer:
    """A HostKeySigner over an Ed25519 key (RFC 8709)."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes_raw()
        self.public_blob = string(b"ssh-ed25519") + string(raw)

    def sign(self, data: bytes) -> bytes:
        return string(b"ssh-ed25519") + string(self.key.sign(data))


def make_ctx(moduli: tuple[tuple[int, int], ...] = ()) -> KexContext:
    return KexContext(
        client_version=b"SSH-2.0-OpenSSH_9.9",
        server_version=b"SSH-2.0-geossh_0.1",
        client_kexinit=byte(20) + secrets.token_bytes(16) + b"client name-lists",
        server_kexinit=byte(20) + secrets.token_bytes(16) + b"server name-lists",
        host_key=Ed25519Signer(),
        moduli=moduli,
    )


def client_hash(kex: ServerKex, ctx: KexContext, k_s: bytes, fields: bytes, k: bytes) -> bytes:
    """H per RFC 4253 §8, computed independently of the server code."""
    data = b"".join(
        string(x)
        for x in (ctx.client_version, ctx.server_version, ctx.client_kexinit, ctx.server_kexinit)
    )
    return hashlib.new(kex.hash_name, data + string(k_s) + fields + k).digest()


def parse_reply(reply: bytes, msg: int, dh: bool) -> tuple[bytes, bytes | int, bytes]:
    """Split a 31/33 reply into K_S, the server value, and the signature."""
    r = Reader(reply)
    assert r.byte() == msg
    k_s = r.string()
    value: bytes | int = r.mpint() if dh else r.string()
    sig = r.string()
    r.check_end()
    return k_s, value, sig


def verify(ctx: KexContext, k_s: bytes, sig_blob: bytes, h: bytes) -> None:
    assert k_s == ctx.host_key.public_blob
    key = Reader(k_s)
    assert key.string() == b"ssh-ed25519"
    public = Ed25519PublicKey.from_public_bytes(key.string())
    sig = Reader(sig_blob)
    assert sig.string() == b"ssh-ed25519"
    public.verify(sig.string(), h)  # raises InvalidSignature


def client_x25519(kex: ServerKex, ctx: KexContext) -> tuple[bytes, bytes]:
    priv = X25519PrivateKey.generate()
    q_c = priv.public_key().public_bytes_raw()
    [reply] = kex.receive(30, byte(30) + string(q_c))
    k_s, q_s, sig = parse_reply(reply, 31, dh=False)
    assert isinstance(q_s, bytes) and len(q_s) == 32
    shared = priv.exchange(X25519PublicKey.from_public_bytes(q_s))
    k = mpint(int.from_bytes(shared, "big"))  # RFC 8731 §3.1
    h = client_hash(kex, ctx, k_s, string(q_c) + string(q_s), k)
    verify(ctx, k_s, sig, h)
    return k, h


def client_nist(kex: ServerKex, ctx: KexContext) -> tuple[bytes, bytes]:
    assert isinstance(kex, _EcdhNistKex)
    priv = ec.generate_private_key(kex.curve)
    q_c = priv.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    [reply] = kex.receive(30, byte(30) + string(q_c))
    k_s, q_s, sig = parse_reply(reply, 31, dh=False)
    assert isinstance(q_s, bytes)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(kex.curve, q_s)
    k = mpint(int.from_bytes(priv.exchange(ec.ECDH(), peer), "big"))  # RFC 5656 §4
    h = client_hash(kex, ctx, k_s, string(q_c) + string(q_s), k)
    verify(ctx, k_s, sig, h)
    return k, h


def client_hybrid(kex: ServerKex, ctx: KexContext) -> tuple[bytes, bytes]:
    kem = MLKEM768PrivateKey.generate()
    x = X25519PrivateKey.generate()
    c_init = kem.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()
    [reply] = kex.receive(30, byte(30) + string(c_init))
    k_s, s_reply, sig = parse_reply(reply, 31, dh=False)
    assert isinstance(s_reply, bytes) and len(s_reply) == 1088 + 32
    k_pq = kem.decapsulate(s_reply[:1088])
    k_cl = x.exchange(X25519PublicKey.from_public_bytes(s_reply[1088:]))
    k = string(hashlib.sha256(k_pq + k_cl).digest())
    h = client_hash(kex, ctx, k_s, string(c_init) + string(s_reply), k)
    verify(ctx, k_s, sig, h)
    return k, h


def client_sntrup(kex: ServerKex, ctx: KexContext) -> tuple[bytes, bytes]:
    """The client side as OpenSSH's kexsntrup761x25519.c computes it, on pqcrypto."""
    assert SNTRUP761 is not None
    pk, sk = SNTRUP761.keygen()
    x = X25519PrivateKey.generate()
    c_init = pk + x.public_key().public_bytes_raw()
    [reply] = kex.receive(30, byte(30) + string(c_init))
    k_s, s_reply, sig = parse_reply(reply, 31, dh=False)
    assert isinstance(s_reply, bytes) and len(s_reply) == 1039 + 32
    k_pq = SNTRUP761.decaps(sk, s_reply[:1039])
    k_cl = x.exchange(X25519PublicKey.from_public_bytes(s_reply[1039:]))
    k = string(hashlib.sha512(k_pq + k_cl).digest())  # a string, not an mpint
    h = client_hash(kex, ctx, k_s, string(c_init) + string(s_reply), k)
    verify(ctx, k_s, sig, h)
    return k, h


def dh_client_finish(
    kex: ServerKex, ctx: KexContext, g: int, p: int, msg: int, prefix: bytes
) -> tuple[bytes, bytes]:
    x = secrets.randbits(512) + 2  # a full-size exponent makes group18 slow
    e = pow(g, x, p)
    [reply] = kex.receive(msg, byte(msg) + mpint(e))
    k_s, f, sig = parse_reply(reply, msg + 1, dh=True)
    assert isinstance(f, int) and 1 < f < p - 1
    k = mpint(pow(f, x, p))
    h = client_hash(kex, ctx, k_s, prefix + mpint(e) + mpint(f), k)
    verify(ctx, k_s, sig, h)
    return k, h


def client_dh(kex: ServerKex, ctx: KexContext) -> tuple[bytes, bytes]:
    p: int = kex.prime  # type: ignore[attr-defined]
    return dh_client_finish(kex, ctx, 2, p, 30, b"")


def client_gex(kex: ServerKex, ctx: KexContext, request: bytes = b"") -> tuple[bytes, bytes]:
    request = request or byte(34) + u32(2048) + u32(3072) + u32(8192)
    assert kex.expected_messages() == {30, 34}
    [group] = kex.receive(request[0], request)
    r = Reader(group)
    assert r.byte() == 31
    p, g = r.mpint(), r.mpint()
    r.check_end()
    assert kex.expected_messages() == {32}
    prefix = request[1:] + mpint(p) + mpint(g)  # request fields as sent (RFC 4419 §3)
    return dh_client_finish(kex, ctx, g, p, 32, prefix)


def client_for(kex: ServerKex) -> Callable[[ServerKex, KexContext], tuple[bytes, bytes]]:
    if isinstance(kex, MLKEM768X25519Kex):
        return client_hybrid
    if isinstance(kex, Sntrup761X25519Kex):
        return client_sntrup
    if isinstance(kex, Curve25519Kex):
        return client_x25519
    if isinstance(kex, _EcdhNistKex):
        return client_nist
    if isinstance(kex, DHGexSha256Kex):
        return client_gex
    return client_dh


@pytest.mark.parametrize("name", sorted(KEX_METHODS))
def test_full_exchange_agrees(name: str) -> None:
    ctx = make_ctx(tuple(load_moduli(MODULI_TEXT)))
    kex = create_server_kex(name, ctx)
    assert kex.name == name and not kex.done
    k, h = client_for(kex)(kex, ctx)
    assert kex.done and kex.expected_messages() == frozenset()
    assert kex.shared_secret == k
    assert kex.exchange_hash == h
    assert len(h) == hashlib.new(kex.hash_name).digest_size


@pytest.mark.parametrize(
    ("request_msg", "want_bits"),
    [
        (byte(34) + u32(1024) + u32(2048) + u32(8192), 2048),  # min clamped up to 2048
        (byte(34) + u32(2048) + u32(2500) + u32(8192), 3072),  # smallest size >= n
        (byte(34) + u32(2048) + u32(9000) + u32(9999), 4096),  # n clamped, largest below
        (byte(30) + u32(3072), 3072),  # REQUEST_OLD: only n is hashed
    ],
    ids=["min-clamped", "smallest-above", "largest-below", "request-old"],
)
def test_gex_requests(request_msg: bytes, want_bits: int) -> None:
    ctx = make_ctx(tuple(load_moduli(MODULI_TEXT)))
    kex = create_server_kex("diffie-hellman-group-exchange-sha256", ctx)
    k, h = client_gex(kex, ctx, request_msg)
    assert (kex.shared_secret, kex.exchange_hash) == (k, h)
    assert Reader(k).string()  # non-empty K
    assert kex._group[1].bit_length() == want_bits  # type: ignore[attr-defined]


def test_gex_fallback_moduli_are_rfc3526() -> None:
    assert [p for _, p in FALLBACK_MODULI] == [GROUP14_P, GROUP16_P, GROUP18_P]
    ctx = make_ctx(FALLBACK_MODULI)
    kex = create_server_kex("diffie-hellman-group-exchange-sha256", ctx)
    client_gex(kex, ctx, byte(34) + u32(2048) + u32(2048) + u32(2048))


def test_choose_modulus_breaks_ties_among_equal_sizes() -> None:
    moduli = [(2, GROUP14_P), (5, GROUP14_P), (2, GROUP16_P)]
    seen = {choose_modulus(moduli, 2048, 2048, 8192)[0] for _ in range(64)}
    assert seen == {2, 5}
    assert choose_modulus(moduli, 2048, 3000, 8192) == (2, GROUP16_P)
    assert choose_modulus(moduli, 2048, 8192, 8192) == (2, GROUP16_P)


# --- known answers -------------------------------------------------------

RFC7748_A_PUB = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
RFC7748_B_PRIV = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
RFC7748_B_PUB = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
RFC7748_K = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


def test_curve25519_rfc7748_vector() -> None:
    ctx = make_ctx()
    kex = create_server_kex("curve25519-sha256", ctx)
    kex._ephemeral = RFC7748_B_PRIV  # type: ignore[attr-defined]
    [reply] = kex.receive(30, byte(30) + string(RFC7748_A_PUB))
    k_s, q_s, sig = parse_reply(reply, 31, dh=False)
    assert q_s == RFC7748_B_PUB
    # RFC 8731 §3.1: the 32 bytes read as a big-endian number, as an mpint
    # (0x4a has the top bit clear, so no sign byte is prepended).
    assert kex.shared_secret == u32(32) + RFC7748_K
    fields = string(RFC7748_A_PUB) + string(RFC7748_B_PUB)
    assert client_hash(kex, ctx, k_s, fields, kex.shared_secret) == kex.exchange_hash
    verify(ctx, k_s, sig, kex.exchange_hash)


# Made by OpenSSH's own sntrup761.c with a fixed randombytes (see the file).
SNTRUP_VECTOR = {
    name: bytes.fromhex(value)
    for name, value in (
        line.split()
        for line in (pathlib.Path(__file__).parent / "vectors" / "sntrup761_openssh.txt")
        .read_text()
        .splitlines()
        if line and not line.startswith("#")
    )
}
# SHA-512(SNTRUP_VECTOR ss || RFC7748_K): K before its string encoding.
SNTRUP_K = bytes.fromhex(
    "8defa2566e084de75005b1f6f00bc09f7f71fe0d7f19c2ebaa26a5f2073f2324"
    "3cf42513ddf4bff4a68faad303d9c7bbbaa6e3763f1c31da03606fd135103247"
)
SNTRUP_NAMES = ["sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com"]


@needs_sntrup
def test_pqcrypto_decapsulates_openssh_sntrup761_vector() -> None:
    assert SNTRUP761 is not None
    v = SNTRUP_VECTOR
    assert [len(v[n]) for n in ("pk", "sk", "ct", "ss")] == [1158, 1763, 1039, 32]
    assert SNTRUP761.decaps(v["sk"], v["ct"]) == v["ss"]
    ct, ss = SNTRUP761.encaps(v["pk"])  # and OpenSSH's secret key opens ours
    assert SNTRUP761.decaps(v["sk"], ct) == ss


@needs_sntrup
@pytest.mark.parametrize("name", SNTRUP_NAMES)
def test_sntrup761_known_answer(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed KEM output and X25519 keys: K is string(SHA-512(K_PQ || K_CL)), as OpenSSH."""
    v = SNTRUP_VECTOR

    def encaps(public: bytes) -> tuple[bytes, bytes]:
        assert public == v["pk"]
        return v["ct"], v["ss"]

    monkeypatch.setattr(SNTRUP761, "encaps", encaps)
    ctx = make_ctx()
    kex = create_server_kex(name, ctx)
    assert kex.hash_name == "sha512"
    kex._ephemeral = RFC7748_B_PRIV  # type: ignore[attr-defined]
    c_init = v["pk"] + RFC7748_A_PUB
    [reply] = kex.receive(30, byte(30) + string(c_init))
    k_s, s_reply, sig = parse_reply(reply, 31, dh=False)
    assert s_reply == v["ct"] + RFC7748_B_PUB
    assert kex.shared_secret == u32(64) + SNTRUP_K
    assert hashlib.sha512(v["ss"] + RFC7748_K).digest() == SNTRUP_K
    fields = string(c_init) + string(s_reply)
    assert client_hash(kex, ctx, k_s, fields, kex.shared_secret) == kex.exchange_hash
    verify(ctx, k_s, sig, kex.exchange_hash)
    out = derive_key("sha512", kex.shared_secret, kex.exchange_hash, b"A", b"sid", 64)
    assert out == hashlib.sha512(kex.shared_secret + kex.exchange_hash + b"Asid").digest()


DK_K = mpint(int.from_bytes(hashlib.sha256(b"geossh K").digest(), "big"))
DK_H = hashlib.sha256(b"geossh H").digest()
DK_SID = hashlib.sha256(b"geossh session").digest()
# Cross-checked against asyncssh's Kex.compute_key.
DK_VECTORS = {
    ("sha256", 80): "aaf504b424c28a07eaa8019b6ae7d450c8f15a804791483e53a1f6b6abc19c89"
    "1673b8c9f26c4f750ed5ecb2c03845e83ea6d105cd5ee68b4582dc028b7827e4"
    "06b0629a826b0004082daa631db00c5c",
    ("sha512", 100): "15dc29cd82e3add120b9726a4fdb3cd0980b89b2237c7660b57dd7f582657f42"
    "287418069a55579b18433bad0d1c1e12460fc5d62fd464fc9e276bab78070442"
    "8149bded3b8bbf7a4dfc9f661a7d6d3d27ebee99d3db55cda56940ade28cdf48"
    "c32c9293",
}


@pytest.mark.parametrize(("hash_name", "size"), sorted(DK_VECTORS))
def test_derive_key_vectors(hash_name: str, size: int) -> None:
    out = derive_key(hash_name, DK_K, DK_H, b"C", DK_SID, size)
    assert out.hex() == DK_VECTORS[hash_name, size]
    # Hand computation of RFC 4253 §7.2 including the extension.

    def h(data: bytes) -> bytes:
        return hashlib.new(hash_name, data).digest()

    k1 = h(DK_K + DK_H + b"C" + DK_SID)
    k2 = h(DK_K + DK_H + k1)
    k3 = h(DK_K + DK_H + k1 + k2)
    assert out == (k1 + k2 + k3)[:size]
    assert derive_key(hash_name, DK_K, DK_H, b"C", DK_SID, 16) == k1[:16]
    assert derive_key(hash_name, DK_K, DK_H, b"C", DK_SID, len(k1)) == k1


def test_derive_key_rejects_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        derive_key("sha256", DK_K, DK_H, b"AB", DK_SID, 16)
    with pytest.raises(LocalProtocolError):
        create_server_kex("no-such-kex", make_ctx())


def test_fixed_primes_follow_rfc_formula() -> None:
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 8400
    for p, n, k in (
        (GROUP1_P, 1024, 129093),
        (GROUP14_P, 2048, 124476),
        (GROUP15_P, 3072, 1690314),
        (GROUP16_P, 4096, 240904),
        (GROUP18_P, 8192, 4743158),
    ):
        pi_part = int(mpmath.floor(mpmath.ldexp(mpmath.pi, n - 130)))
        assert p == 2**n - 2 ** (n - 64) - 1 + 2**64 * (pi_part + k)


def test_ffdh_fast_path_emits_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctx = make_ctx()
        client_dh(create_server_kex("diffie-hellman-group14-sha256", ctx), ctx)


# --- hostile input -------------------------------------------------------

# Low-order X25519 u-coordinates (and non-canonical aliases) whose shared
# secret is all zero for every clamped scalar (RFC 7748 §6.1, RFC 8731 §3).
LOW_ORDER_X25519 = [
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    bytes.fromhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


def valid_first_message(name: str) -> bytes:
    """A well-formed first client message for method ``name``."""
    kex = KEX_METHODS[name]
    if issubclass(kex, MLKEM768X25519Kex):
        c_init = MLKEM768PrivateKey.generate().public_key().public_bytes_raw()
        return byte(30) + string(
            c_init + X25519PrivateKey.generate().public_key().public_bytes_raw()
        )
    if issubclass(kex, Sntrup761X25519Kex):
        return byte(30) + string(SNTRUP_VECTOR["pk"] + RFC7748_A_PUB)
    if issubclass(kex, Curve25519Kex):
        return byte(30) + string(X25519PrivateKey.generate().public_key().public_bytes_raw())
    if issubclass(kex, _EcdhNistKex):
        key = ec.generate_private_key(kex.curve).public_key()
        return byte(30) + string(key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))
    if issubclass(kex, DHGexSha256Kex):
        return byte(34) + u32(2048) + u32(2048) + u32(8192)
    p: int = kex.prime  # type: ignore[attr-defined]
    return byte(30) + mpint(pow(2, secrets.randbits(256), p))


def new_kex(name: str) -> ServerKex:
    return create_server_kex(name, make_ctx(FALLBACK_MODULI))


ALL = sorted(KEX_METHODS)
ECDH_LIKE = [n for n in ALL if issubclass(KEX_METHODS[n], (Curve25519Kex, _EcdhNistKex))]
CURVE = ["curve25519-sha256", "curve25519-sha256@libssh.org"]
FIXED_DH = [n for n in ALL if hasattr(KEX_METHODS[n], "prime")]
GEX = "diffie-hellman-group-exchange-sha256"


@pytest.mark.parametrize("name", ALL)
def test_wrong_message_number(name: str) -> None:
    kex = new_kex(name)
    for msg in (20, 21, 31, 32, 33, 35, 49, 50):
        with pytest.raises(KexError):
            kex.receive(msg, byte(msg) + b"\x00" * 8)
    assert not kex.done


@pytest.mark.parametrize("name", ALL)
def test_message_after_done_is_refused(name: str) -> None:
    ctx = make_ctx(FALLBACK_MODULI)
    kex = create_server_kex(name, ctx)
    client_for(kex)(kex, ctx)
    with pytest.raises(KexError):
        kex.receive(30, valid_first_message(name))


@pytest.mark.parametrize("name", ALL)
def test_truncated_and_trailing_bytes(name: str) -> None:
    message = valid_first_message(name)
    for cut in range(1, len(message)):
        with pytest.raises(RemoteProtocolError):
            new_kex(name).receive(message[0], message[:cut])
    with pytest.raises(RemoteProtocolError):
        new_kex(name).receive(message[0], message + b"\x00")
    new_kex(name).receive(message[0], message)  # the untouched message is fine


@pytest.mark.parametrize("name", CURVE)
@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_x25519_wrong_length(name: str, size: int) -> None:
    with pytest.raises(KexError):
        new_kex(name).receive(30, byte(30) + string(secrets.token_bytes(size)))


@pytest.mark.parametrize("name", CURVE)
@pytest.mark.parametrize("point", LOW_ORDER_X25519, ids=range(len(LOW_ORDER_X25519)))
def test_x25519_low_order_point(name: str, point: bytes) -> None:
    with pytest.raises(KexError):
        new_kex(name).receive(30, byte(30) + string(point))


def test_mlkem_registered_only_where_the_backend_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ("mlkem768x25519-sha256" in KEX_METHODS) == MLKEM_AVAILABLE

    def unsupported() -> None:
        raise UnsupportedAlgorithm("ML-KEM-768 is not supported by this backend.")

    monkeypatch.setattr(hybrid.MLKEM768PrivateKey, "generate", unsupported)
    assert hybrid._backend_has_mlkem() is False


@needs_mlkem
@pytest.mark.parametrize("point", LOW_ORDER_X25519, ids=range(len(LOW_ORDER_X25519)))
def test_hybrid_low_order_point(point: bytes) -> None:
    ek = MLKEM768PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(KexError):
        new_kex("mlkem768x25519-sha256").receive(30, byte(30) + string(ek + point))


@needs_mlkem
@pytest.mark.parametrize("size", [0, 1184, 1215, 1217, 1088 + 32])
def test_hybrid_wrong_size(size: int) -> None:
    with pytest.raises(KexError):
        new_kex("mlkem768x25519-sha256").receive(30, byte(30) + string(bytes(size)))


@needs_mlkem
def test_hybrid_invalid_encapsulation_key() -> None:
    # Coefficients of 0xFFF exceed q = 3329: FIPS 203 §7.2 modulus check fails.
    blob = b"\xff" * 1184 + X25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(KexError):
        new_kex("mlkem768x25519-sha256").receive(30, byte(30) + string(blob))


def test_sntrup_registered_only_where_pqcrypto_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert all((name in KEX_METHODS) == SNTRUP_AVAILABLE for name in SNTRUP_NAMES)
    kexinit = ServerPreferences().build_kexinit({"ssh-ed25519"}, initial=True)
    offered = offerable(kexinit, have_moduli=False).kex
    assert all((name in offered) == SNTRUP_AVAILABLE for name in SNTRUP_NAMES)
    if SNTRUP_AVAILABLE:  # right after mlkem768x25519, as OpenSSH's sshd offers them
        assert offered[: offered.index("curve25519-sha256")][-2:] == SNTRUP_NAMES
    monkeypatch.setitem(sys.modules, "pqcrypto", None)  # import raises ImportError
    monkeypatch.delitem(sys.modules, "pqcrypto.kem", raising=False)
    monkeypatch.delitem(sys.modules, "pqcrypto.kem.sntrup_761", raising=False)
    assert sntrup.load_sntrup761() is None


def test_sntrup_refused_with_unexpected_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("pqcrypto.kem.sntrup_761")
    fake.PUBLIC_KEY_SIZE, fake.CIPHERTEXT_SIZE, fake.SHARED_SECRET_SIZE = 1158, 1040, 32  # type: ignore[attr-defined]
    fake.encaps = lambda pk: (b"", b"")  # type: ignore[attr-defined]
    kem = types.ModuleType("pqcrypto.kem")
    kem.sntrup_761 = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pqcrypto", types.ModuleType("pqcrypto"))
    monkeypatch.setitem(sys.modules, "pqcrypto.kem", kem)
    assert sntrup.load_sntrup761() is None


def test_sntrup_not_offered_without_pqcrypto() -> None:
    """A fresh interpreter where pqcrypto cannot be imported: no sntrup in our KEXINIT."""
    code = (
        "import sys; sys.modules['pqcrypto'] = None\n"
        "from geossh.proto.algorithms import ServerPreferences, offerable\n"
        "from geossh.proto.kex import KEX_METHODS\n"
        "kexinit = ServerPreferences().build_kexinit({'ssh-ed25519'}, initial=True)\n"
        "kex = offerable(kexinit, True).kex\n"
        "print(','.join(kex)); print(','.join(KEX_METHODS))\n"
    )
    root = pathlib.Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    offered, registered = (line.split(",") for line in out.stdout.splitlines())
    assert "curve25519-sha256" in offered
    assert not [n for n in offered + registered if n.startswith("sntrup")]


@needs_sntrup
@pytest.mark.parametrize("name", SNTRUP_NAMES)
@pytest.mark.parametrize("size", [0, 32, 1158, 1189, 1191, 1039 + 32, 1184 + 32])
def test_sntrup_wrong_size(name: str, size: int) -> None:
    with pytest.raises(KexError):
        new_kex(name).receive(30, byte(30) + string(secrets.token_bytes(size)))


@needs_sntrup
@pytest.mark.parametrize("point", LOW_ORDER_X25519, ids=range(len(LOW_ORDER_X25519)))
def test_sntrup_low_order_point(point: bytes) -> None:
    with pytest.raises(KexError):
        new_kex(SNTRUP_NAMES[0]).receive(30, byte(30) + string(SNTRUP_VECTOR["pk"] + point))


@needs_sntrup
def test_sntrup_garbage_key_of_the_right_size_still_agrees() -> None:
    """Any 1158 bytes decode to some sntrup761 key (as in OpenSSH): no crash, a reply."""
    blob = b"\xff" * 1158 + X25519PrivateKey.generate().public_key().public_bytes_raw()
    kex = new_kex(SNTRUP_NAMES[0])
    [reply] = kex.receive(30, byte(30) + string(blob))
    assert kex.done and reply[0] == 31


@needs_sntrup
def test_sntrup_library_failure_is_a_kex_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(public: bytes) -> tuple[bytes, bytes]:
        raise ValueError("invalid public key length")

    monkeypatch.setattr(SNTRUP761, "encaps", broken)
    with pytest.raises(KexError):
        new_kex(SNTRUP_NAMES[0]).receive(30, valid_first_message(SNTRUP_NAMES[0]))
    monkeypatch.setattr(SNTRUP761, "encaps", lambda pk: (b"short", bytes(32)))
    with pytest.raises(KexError):
        new_kex(SNTRUP_NAMES[0]).receive(30, valid_first_message(SNTRUP_NAMES[0]))


NOT_ON_P256 = [
    b"\x04" + (1).to_bytes(32, "big") + (1).to_bytes(32, "big"),  # off the curve
    b"\x04" + bytes(64),  # (0, 0)
    b"\x04" + b"\xff" * 64,  # coordinates >= p
    b"\x00",  # point at infinity
    b"\x02" + (1).to_bytes(32, "big"),  # compressed form
    b"\x04" + bytes(63),  # short
]


@pytest.mark.parametrize("point", NOT_ON_P256, ids=range(len(NOT_ON_P256)))
def test_invalid_p256_point(point: bytes) -> None:
    with pytest.raises(KexError):
        new_kex("ecdh-sha2-nistp256").receive(30, byte(30) + string(point))


def test_nist_point_from_another_curve() -> None:
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    q = other.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    with pytest.raises(KexError):
        new_kex("ecdh-sha2-nistp256").receive(30, byte(30) + string(q))


@pytest.mark.parametrize("name", FIXED_DH)
def test_dh_public_value_out_of_range(name: str) -> None:
    p: int = KEX_METHODS[name].prime  # type: ignore[attr-defined]
    for e in (0, 1, 2, p - 1, p, p + 1, -5, -(p - 2)):
        with pytest.raises(KexError):
            new_kex(name).receive(30, byte(30) + mpint(e))
    with pytest.raises(RemoteProtocolError):  # longer than any value below p
        new_kex(name).receive(30, byte(30) + mpint(p << 16))


def gex_request(kex: ServerKex, *fields: int) -> list[bytes]:
    msg = 34 if len(fields) == 3 else 30
    return kex.receive(msg, byte(msg) + b"".join(u32(f) for f in fields))


@pytest.mark.parametrize(
    "fields",
    [
        (4096, 3072, 2048),  # min > max
        (4096, 2048, 8192),  # n below min
        (2048, 8192, 4096),  # n above max
        (1024, 1024, 1536),  # max below the 2048-bit floor
        (9000, 9000, 9999),  # min above the 8192-bit ceiling
    ],
)
def test_gex_bad_bounds(fields: tuple[int, int, int]) -> None:
    with pytest.raises(KexError):
        gex_request(new_kex(GEX), *fields)


@pytest.mark.parametrize("fields", [(2048, 3072, 8192), (3072,)])
def test_gex_without_moduli(fields: tuple[int, ...]) -> None:
    kex = create_server_kex(GEX, make_ctx(()))
    with pytest.raises(KexError):
        gex_request(kex, *fields)


def test_gex_no_modulus_in_range() -> None:
    kex = create_server_kex(GEX, make_ctx(((2, GROUP14_P),)))
    with pytest.raises(KexError):
        gex_request(kex, 3072, 4096, 8192)


def test_gex_init_checks_e_and_order() -> None:
    kex = new_kex(GEX)
    with pytest.raises(KexError):  # INIT before REQUEST
        kex.receive(32, byte(32) + mpint(12345))
    [group] = gex_request(kex, 2048, 2048, 2048)
    r = Reader(group, 1)
    p = r.mpint()
    for e in (0, 1, p - 1, p):
        with pytest.raises(KexError):
            kex.receive(32, byte(32) + mpint(e))
    with pytest.raises(KexError):  # a second REQUEST
        gex_request(kex, 2048, 2048, 2048)


@pytest.mark.parametrize("name", ALL)
@settings(max_examples=25, deadline=None)
@given(body=st.binary(max_size=300), wrap=st.booleans())
def test_fuzz_first_message(name: str, body: bytes, wrap: bool) -> None:
    message = valid_first_message(name)[:1] + (string(body) if wrap else body)
    with contextlib.suppress(RemoteProtocolError):  # KexError is a subclass
        new_kex(name).receive(message[0], message)


# --- moduli --------------------------------------------------------------


def test_load_moduli_fixture() -> None:
    assert load_moduli(MODULI_TEXT) == [(2, GROUP14_P), (5, GROUP15_P), (2, GROUP16_P)]
    assert load_moduli("") == []


@pytest.mark.skipif(not os.path.exists("/etc/ssh/moduli"), reason="no /etc/ssh/moduli")
def test_load_system_moduli() -> None:
    with open("/etc/ssh/moduli", encoding="ascii") as f:
        moduli = load_moduli(f.read())
    assert moduli
    for g, p in moduli:
        assert p & 1 and p.bit_length() >= 1024 and 1 < g < p - 1


# --- purity --------------------------------------------------------------

FORBIDDEN = {"gevent", "socket", "threading", "select", "time"}


@pytest.mark.parametrize("path", sorted(KEX_DIR.glob("*.py")), ids=lambda p: p.name)
def test_kex_is_pure(path: pathlib.Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        assert not {n.split(".")[0] for n in names} & FORBIDDEN, (path.name, names)
