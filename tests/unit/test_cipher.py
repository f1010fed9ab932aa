"""Known-answer tests for geossh.proto.cipher, built independently of it.

Each expected value is either a published vector (NIST SP 800-38A, RFC 8439
Appendix A.1 / draft-agl-tls-chacha20poly1305 keystreams, RFC 2202, RFC 4231)
or assembled step by step from the raw ``cryptography`` primitives and the
specs (OpenSSH PROTOCOL.chacha20poly1305, RFC 5647, RFC 4253 §6.4).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.poly1305 import Poly1305

from geossh.errors import LocalProtocolError, MACError
from geossh.proto import cipher
from geossh.proto.cipher import CIPHERS, MACS, Mac, key_sizes, new_protection
from geossh.proto.constants import DisconnectReason

H = bytes.fromhex

# RFC 8439 A.1 test vectors #1 and #2: ChaCha20 keystream, key 0, nonce 0,
# block counters 0 and 1.
CHACHA_ZERO_BLOCK0 = H(
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
)
CHACHA_ZERO_BLOCK1 = H(
    "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
    "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f"
)
# draft-agl-tls-chacha20poly1305 §7 (original 64-bit-nonce ChaCha20, as
# OpenSSH uses): key 0, nonce 0000000000000001, i.e. sequence number 1.
CHACHA_ZERO_SEQ1_BLOCK0 = H(
    "de9cba7bf3d69ef5e786dc63973f653a0b49e015adbff7134fcb7df137821031"
    "e85a050278a7084527214f73efc7fa5b5277062eb7a0433e445f41e3"
)

# NIST SP 800-38A F.5.1 (CTR-AES128) and F.2.1 (CBC-AES128).
NIST_KEY = H("2b7e151628aed2a6abf7158809cf4f3c")
NIST_PLAIN = H(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
NIST_CTR_IV = H("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
NIST_CTR_CIPHER = H(
    "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
    "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee"
)
NIST_CBC_IV = H("000102030405060708090a0b0c0d0e0f")
NIST_CBC_CIPHER = H(
    "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
    "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"
)


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def plain_packet(payload: bytes, padding: bytes) -> bytes:
    """``uint32 length || padding_length || payload || padding`` (RFC 4253 §6)."""
    return struct.pack(">IB", 1 + len(payload) + len(padding), len(padding)) + payload + padding


def chacha_keystream(key: bytes, seq: int, counter: int, size: int) -> bytes:
    """OpenSSH's ChaCha20: 64-bit LE block counter, then the uint64 BE seqno."""
    nonce = counter.to_bytes(8, "little") + seq.to_bytes(8, "big")
    return Cipher(algorithms.ChaCha20(key, nonce), None).encryptor().update(bytes(size))


def hmac_ssh(name: str, key: bytes, seq: int, data: bytes) -> bytes:
    return hmac.new(key, struct.pack(">I", seq) + data, name).digest()


# -- registry ---------------------------------------------------------------------


def test_registry_names_and_flags() -> None:
    assert list(CIPHERS) == [
        "chacha20-poly1305@openssh.com",
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-ctr",
        "aes192-ctr",
        "aes256-ctr",
        "aes128-cbc",
        "aes192-cbc",
        "aes256-cbc",
        "3des-cbc",
    ]
    assert list(MACS) == [
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
        "hmac-sha2-256",
        "hmac-sha2-512",
        "hmac-sha1-etm@openssh.com",
        "hmac-sha1",
        "hmac-sha1-96",
        "hmac-md5",
        "hmac-md5-96",
    ]
    assert {n for n, c in CIPHERS.items() if c.legacy} == {
        "aes128-cbc",
        "aes192-cbc",
        "aes256-cbc",
        "3des-cbc",
    }
    assert {n for n, m in MACS.items() if m.legacy} == {
        "hmac-sha1",
        "hmac-sha1-etm@openssh.com",
        "hmac-sha1-96",
        "hmac-md5",
        "hmac-md5-96",
    }
    assert {n for n, c in CIPHERS.items() if c.is_aead} == {
        "chacha20-poly1305@openssh.com",
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
    }
    assert {n for n, m in MACS.items() if m.etm} == {
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
        "hmac-sha1-etm@openssh.com",
    }
    for name, info in CIPHERS.items():
        assert info.name == name
    for name, minfo in MACS.items():
        assert minfo.name == name
        full = hashlib.new(minfo.hash_name).digest_size
        assert minfo.digest_size == (12 if name.endswith("-96") else full)


@pytest.mark.parametrize(
    ("cipher_name", "mac_name", "expected"),
    [
        ("chacha20-poly1305@openssh.com", None, (0, 64, 0)),
        ("chacha20-poly1305@openssh.com", "hmac-sha2-512", (0, 64, 0)),
        ("aes128-gcm@openssh.com", "", (12, 16, 0)),
        ("aes256-gcm@openssh.com", None, (12, 32, 0)),
        ("aes128-ctr", "hmac-sha2-256-etm@openssh.com", (16, 16, 32)),
        ("aes192-ctr", "hmac-sha2-512", (16, 24, 64)),
        ("aes256-ctr", "hmac-sha1", (16, 32, 20)),
        ("aes128-cbc", "hmac-sha1-etm@openssh.com", (16, 16, 20)),
        ("aes256-cbc", "hmac-sha2-256", (16, 32, 32)),
    ],
)
def test_key_sizes(cipher_name: str, mac_name: str | None, expected: tuple[int, int, int]) -> None:
    assert key_sizes(cipher_name, mac_name) == expected


def test_unknown_names_and_bad_key_sizes_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        key_sizes("des-cbc", "hmac-sha1")
    with pytest.raises(LocalProtocolError):
        key_sizes("aes128-ctr", "hmac-ripemd160")
    with pytest.raises(LocalProtocolError):
        key_sizes("aes128-ctr", None)
    with pytest.raises(LocalProtocolError):
        new_protection("aes128-ctr", bytes(15), bytes(16), "hmac-sha1", bytes(20), outbound=True)
    with pytest.raises(LocalProtocolError):
        new_protection("aes128-ctr", bytes(16), bytes(12), "hmac-sha1", bytes(20), outbound=True)
    with pytest.raises(LocalProtocolError):
        new_protection("aes128-ctr", bytes(16), bytes(16), "hmac-sha1", bytes(32), outbound=True)
    with pytest.raises(LocalProtocolError):
        new_protection("aes128-gcm@openssh.com", bytes(16), bytes(16), "", b"", outbound=True)


# -- chacha20-poly1305@openssh.com ------------------------------------------------


def test_chacha20_poly1305_published_keystream_seq0() -> None:
    """All-zero 64-byte key, seq 0: every keystream byte is RFC 8439 A.1."""
    packet = plain_packet(b"\x05\x00\x00\x00\x0cssh-userauth", bytes(range(6)))
    assert len(packet) == 28
    enc_length = xor(packet[:4], CHACHA_ZERO_BLOCK0[:4])  # K_1, counter 0
    body = xor(packet[4:], CHACHA_ZERO_BLOCK1[:24])  # K_2, counter 1
    tag = Poly1305.generate_tag(CHACHA_ZERO_BLOCK0[:32], enc_length + body)
    sealer = new_protection("chacha20-poly1305@openssh.com", bytes(64), b"", "", b"", outbound=True)
    assert sealer.seal(0, packet) == enc_length + body + tag

    opener = new_protection(
        "chacha20-poly1305@openssh.com", bytes(64), b"", "", b"", outbound=False
    )
    wire = enc_length + body + tag
    assert opener.packet_length(0, wire[:4]) == 24
    assert opener.open(0, wire) == (packet[4:], 0)


def test_chacha20_poly1305_published_keystream_seq1() -> None:
    """Seq 1 is nonce 0000000000000001 (uint64 big-endian, not little-endian)."""
    packet = plain_packet(b"\x02hi", bytes(3))
    enc_length = xor(packet[:4], CHACHA_ZERO_SEQ1_BLOCK0[:4])
    body = xor(packet[4:], chacha_keystream(bytes(32), 1, 1, len(packet) - 4))
    tag = Poly1305.generate_tag(CHACHA_ZERO_SEQ1_BLOCK0[:32], enc_length + body)
    sealer = new_protection("chacha20-poly1305@openssh.com", bytes(64), b"", "", b"", outbound=True)
    assert sealer.seal(1, packet) == enc_length + body + tag


def test_chacha20_poly1305_step_by_step() -> None:
    """Random key halves: K_2 = key[:32] (payload, poly key), K_1 = key[32:] (length)."""
    key = bytes(range(64))
    k2, k1 = key[:32], key[32:]
    packets = [
        plain_packet(bytes([94]) + bytes(range(100)), b"\xaa" * 7),
        plain_packet(b"x", bytes(6)),
    ]
    sealer = new_protection("chacha20-poly1305@openssh.com", key, b"", "", b"", outbound=True)
    opener = new_protection("chacha20-poly1305@openssh.com", key, b"", "", b"", outbound=False)
    for seq, packet in zip((7, 0xFFFFFFFF), packets, strict=True):
        enc_length = xor(packet[:4], chacha_keystream(k1, seq, 0, 4))
        poly_key = chacha_keystream(k2, seq, 0, 32)
        body = xor(packet[4:], chacha_keystream(k2, seq, 1, len(packet) - 4))
        tag = Poly1305.generate_tag(poly_key, enc_length + body)
        wire = sealer.seal(seq, packet)
        assert wire == enc_length + body + tag
        assert opener.packet_length(seq, wire[:4]) == len(packet) - 4
        assert opener.open(seq, wire) == (packet[4:], 0)


def test_chacha20_poly1305_rejects_bad_tag_and_wrong_seq() -> None:
    key = bytes(range(64))
    packet = plain_packet(b"payload", bytes(4))
    wire = new_protection("chacha20-poly1305@openssh.com", key, b"", "", b"", outbound=True).seal(
        3, packet
    )
    opener = new_protection("chacha20-poly1305@openssh.com", key, b"", "", b"", outbound=False)
    with pytest.raises(MACError) as info:
        opener.open(4, wire)
    assert info.value.code == DisconnectReason.MAC_ERROR
    bad = bytearray(wire)
    bad[-1] ^= 1
    with pytest.raises(MACError):
        opener.open(3, bytes(bad))


# -- aes-gcm@openssh.com ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"])
def test_aes_gcm_against_raw_aesgcm(name: str) -> None:
    """RFC 5647 §7.1: nonce = fixed(4) || invocation counter(8), +1 per packet."""
    size = CIPHERS[name].key_size
    key = bytes(range(size))
    iv = H("00112233") + (0x0102030405060708).to_bytes(8, "big")
    raw = AESGCM(key)
    sealer = new_protection(name, key, iv, "", b"", outbound=True)
    opener = new_protection(name, key, iv, "", b"", outbound=False)
    for i, payload in enumerate([b"\x14" + bytes(40), b"\x15", b"\x5e" + b"z" * 1000]):
        pad = 16 - (1 + len(payload)) % 16
        pad += 16 if pad < 4 else 0
        packet = plain_packet(payload, bytes(range(pad)))
        nonce = H("00112233") + (0x0102030405060708 + i).to_bytes(8, "big")
        expected = packet[:4] + raw.encrypt(nonce, packet[4:], packet[:4])
        wire = sealer.seal(99, packet)  # the sequence number plays no part in GCM
        assert wire == expected
        assert opener.packet_length(0, wire[:4]) == len(packet) - 4
        assert opener.open(0, wire) == (packet[4:], 0)


def test_aes_gcm_invocation_counter_wraps_mod_2_64() -> None:
    key = bytes(16)
    iv = bytes(4) + b"\xff" * 8
    raw = AESGCM(key)
    sealer = new_protection("aes128-gcm@openssh.com", key, iv, "", b"", outbound=True)
    packet = plain_packet(b"\x01", bytes(10))
    sealer.seal(0, packet)
    assert sealer.seal(1, packet) == packet[:4] + raw.encrypt(bytes(12), packet[4:], packet[:4])


def test_aes_gcm_length_is_authenticated() -> None:
    key, iv = bytes(16), bytes(12)
    packet = plain_packet(b"\x01", bytes(10))
    wire = bytearray(
        new_protection("aes128-gcm@openssh.com", key, iv, "", b"", outbound=True).seal(0, packet)
    )
    wire[3] ^= 0x10
    opener = new_protection("aes128-gcm@openssh.com", key, iv, "", b"", outbound=False)
    with pytest.raises(MACError):
        opener.open(0, bytes(wire))


# -- AES-CTR / CBC with HMAC --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "iv", "expected"),
    [("aes128-ctr", NIST_CTR_IV, NIST_CTR_CIPHER), ("aes128-cbc", NIST_CBC_IV, NIST_CBC_CIPHER)],
)
def test_nist_vectors_through_encrypt_and_mac(name: str, iv: bytes, expected: bytes) -> None:
    """SP 800-38A vectors, split over two packets: the counter/chain runs across them."""
    mac_key = bytes(range(32))
    sealer = new_protection(name, NIST_KEY, iv, "hmac-sha2-256", mac_key, outbound=True)
    first = sealer.seal(5, NIST_PLAIN[:32])
    second = sealer.seal(6, NIST_PLAIN[32:])
    assert first == expected[:32] + hmac_ssh("sha256", mac_key, 5, NIST_PLAIN[:32])
    assert second == expected[32:] + hmac_ssh("sha256", mac_key, 6, NIST_PLAIN[32:])


@pytest.mark.parametrize("name", ["aes128-ctr", "aes192-ctr", "aes256-ctr"])
@pytest.mark.parametrize(
    "mac_name", ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"]
)
def test_ctr_etm_by_hand(name: str, mac_name: str) -> None:
    """-etm: length in clear, MAC over seq || length || ciphertext."""
    size = CIPHERS[name].key_size
    key, iv = bytes(range(size)), bytes(range(100, 116))
    mac_key = bytes(range(MACS[mac_name].key_size))
    digest = MACS[mac_name].hash_name
    packets = [plain_packet(b"\x5e" + bytes(range(26)), bytes(4)), plain_packet(b"\x01", bytes(14))]
    stream = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    sealer = new_protection(name, key, iv, mac_name, mac_key, outbound=True)
    opener = new_protection(name, key, iv, mac_name, mac_key, outbound=False)
    for seq, packet in enumerate(packets, start=41):
        body = stream.update(packet[4:])
        expected = packet[:4] + body + hmac_ssh(digest, mac_key, seq, packet[:4] + body)
        wire = sealer.seal(seq, packet)
        assert wire == expected
        assert opener.packet_length(seq, wire[:4]) == len(packet) - 4
        assert opener.open(seq, wire) == (packet[4:], 0)


@pytest.mark.parametrize("name", ["aes256-ctr", "aes256-cbc"])
def test_encrypt_and_mac_by_hand(name: str) -> None:
    """Plain MAC: over seq || whole plaintext packet; length in the first block."""
    key, iv, mac_key = bytes(range(32)), bytes(range(16)), bytes(range(64))
    mode = modes.CTR(iv) if name.endswith("ctr") else modes.CBC(iv)
    stream = Cipher(algorithms.AES(key), mode).encryptor()
    sealer = new_protection(name, key, iv, "hmac-sha2-512", mac_key, outbound=True)
    opener = new_protection(name, key, iv, "hmac-sha2-512", mac_key, outbound=False)
    packets = [plain_packet(b"\x5e" + bytes(range(22)), bytes(4)), plain_packet(b"\x02", bytes(10))]
    for seq, packet in enumerate(packets):
        expected = stream.update(packet) + hmac_ssh("sha512", mac_key, seq, packet)
        wire = sealer.seal(seq, packet)
        assert wire == expected
        assert opener.packet_length(seq, wire[:16]) == len(packet) - 4
        assert opener.open(seq, wire) == (packet, 4)


def test_encrypt_and_mac_rejects_tampering() -> None:
    key, iv, mac_key = bytes(16), bytes(16), bytes(32)
    packet = plain_packet(b"\x5e" + bytes(40), bytes(11))
    wire = bytearray(
        new_protection("aes128-ctr", key, iv, "hmac-sha2-256", mac_key, outbound=True).seal(
            0, packet
        )
    )
    wire[30] ^= 0x80
    opener = new_protection("aes128-ctr", key, iv, "hmac-sha2-256", mac_key, outbound=False)
    assert opener.packet_length(0, bytes(wire[:16])) == len(packet) - 4
    with pytest.raises(MACError) as info:
        opener.open(0, bytes(wire))
    assert info.value.code == DisconnectReason.MAC_ERROR


# -- HMAC ------------------------------------------------------------------------


def test_hmac_sha1_rfc2202_case1_through_the_seqno_prefix() -> None:
    """RFC 2202 case 1 is HMAC(0x0b*20, "Hi There"); "Hi T" is our seqno."""
    mac = Mac(MACS["hmac-sha1"], b"\x0b" * 20)
    seq = int.from_bytes(b"Hi T", "big")
    assert mac.compute(seq, b"here") == H("b617318655057264e28bc0b6fb378c8ef146be00")
    assert mac.compute(seq, b"he", b"re") == H("b617318655057264e28bc0b6fb378c8ef146be00")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hmac-sha2-256", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (
            "hmac-sha2-512-etm@openssh.com",
            "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
            "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
        ),
    ],
)
def test_hmac_sha2_rfc4231_case1(name: str, expected: str) -> None:
    mac = Mac(MACS[name], b"\x0b" * 20)
    seq = int.from_bytes(b"Hi T", "big")
    assert mac.compute(seq, b"here") == H(expected)
    mac.check(seq, H(expected), memoryview(b"here"))
    with pytest.raises(MACError):
        mac.check(seq, H(expected)[:-1] + b"\x00", b"here")


def test_cleartext_protection_is_identity() -> None:
    clear = cipher.PacketProtection()
    packet = plain_packet(b"\x14", bytes(6))
    assert clear.seal(0, packet) == packet
    assert clear.packet_length(0, packet[:4]) == 8
    assert clear.open(0, memoryview(packet)) == (packet, 4)
    assert (clear.block_size, clear.aad_len, clear.tag_size) == (8, 0, 0)


# -- cross-check with an independent implementation ---------------------------------

SUITES = [
    (name, mac) for name, info in CIPHERS.items() for mac in ([""] if info.is_aead else list(MACS))
]


@pytest.mark.parametrize(("cipher_name", "mac_name"), SUITES)
def test_matches_asyncssh(cipher_name: str, mac_name: str) -> None:
    """asyncssh's packet encryption (an independent implementation) agrees byte for byte."""
    encryption = pytest.importorskip("asyncssh.encryption")
    iv_len, key_len, mac_len = key_sizes(cipher_name, mac_name or None)
    iv, key, mac_key = bytes(range(iv_len)), bytes(range(1, key_len + 1)), bytes(range(mac_len))
    etm = bool(mac_name) and MACS[mac_name].etm
    theirs = encryption.get_encryption(
        cipher_name.encode(), key, iv, mac_name.encode(), mac_key, etm
    )
    sealer = new_protection(cipher_name, key, iv, mac_name, mac_key, outbound=True)
    opener = new_protection(cipher_name, key, iv, mac_name, mac_key, outbound=False)
    block = CIPHERS[cipher_name].block_size
    aad = 4 if CIPHERS[cipher_name].is_aead or etm else 0
    for seq, size in enumerate([0, 1, 27, 100, 1000]):
        pad = block - (5 + size - aad) % block
        pad += block if pad < 4 else 0
        packet = plain_packet(bytes([seq + 90]) * size, bytes(range(pad)))
        ciphertext, mac = theirs.encrypt_packet(seq, packet[:4], packet[4:])
        wire = sealer.seal(seq, packet)
        assert wire == ciphertext + mac
        assert opener.packet_length(seq, wire[: opener.head_size]) == len(packet) - 4
        plain, start = opener.open(seq, wire)
        assert plain[start:] == packet[4:]
