"""PacketWriter → PacketReader: framing, every suite, hostile input (no sockets)."""

from __future__ import annotations

import contextlib
import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from geossh.errors import LocalProtocolError, MACError, RemoteProtocolError
from geossh.proto.cipher import CIPHERS, MACS, PacketProtection, key_sizes, new_protection
from geossh.proto.constants import MAX_PACKET_SIZE, DisconnectReason
from geossh.proto.packet import DirectionKeys, PacketReader, PacketWriter

SUITES = [
    (name, mac) for name, info in CIPHERS.items() for mac in ([""] if info.is_aead else list(MACS))
]
SUITE_IDS = [f"{c}+{m}" if m else c for c, m in SUITES]
PAYLOAD_SIZES = [0, 1, 2, 3, 4, 11, 12, 15, 16, 17, 31, 255, 1000, 4097, 32768]


def make_keys(cipher: str, mac: str, compression: str = "none", seed: int = 1) -> DirectionKeys:
    rng = random.Random(seed)
    iv_len, key_len, mac_len = key_sizes(cipher, mac or None)
    return DirectionKeys(
        cipher=cipher,
        mac=mac,
        compression=compression,
        iv=rng.randbytes(iv_len),
        key=rng.randbytes(key_len),
        mac_key=rng.randbytes(mac_len),
    )


def keyed_pair(
    cipher: str, mac: str, compression: str = "none", max_packet_size: int = MAX_PACKET_SIZE
) -> tuple[PacketWriter, PacketReader]:
    keys = make_keys(cipher, mac, compression)
    writer, reader = PacketWriter(), PacketReader(max_packet_size)
    writer.set_keys(keys)
    reader.set_keys(keys)
    return writer, reader


def outbound(keys: DirectionKeys) -> PacketProtection:
    return new_protection(keys.cipher, keys.key, keys.iv, keys.mac, keys.mac_key, outbound=True)


def drain(reader: PacketReader) -> list[tuple[int, bytes]]:
    out = []
    while (packet := reader.next_packet()) is not None:
        out.append(packet)
    return out


def feed_in_pieces(
    reader: PacketReader, data: bytes, rng: random.Random
) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        step = rng.choice((1, 2, 3, 7, 16, 100, 1500, 40000))
        reader.feed(memoryview(data)[pos : pos + step])
        pos += step
        out += drain(reader)
    return out


def crafted(keys: DirectionKeys | None, length: int, padding: int, seq: int = 0) -> bytes:
    """A correctly protected packet whose header says whatever we like.

    The body is cut at 60 bytes, enough for a head-only test of a huge length.
    """
    body = bytes([padding]) + bytes(min(max(length - 1, 0), 59))
    packet = struct.pack(">I", length) + body
    return outbound(keys).seal(seq, packet) if keys else packet


def aligned_length(protection: PacketProtection, at_least: int) -> int:
    length = at_least
    while (length + 4 - protection.aad_len) % protection.block_size:
        length += 1
    return length


# -- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize(("cipher", "mac"), SUITES, ids=SUITE_IDS)
def test_round_trip_whole_and_random_splits(cipher: str, mac: str) -> None:
    rng = random.Random(cipher + mac)
    payloads = [rng.randbytes(n) for n in PAYLOAD_SIZES]
    writer, reader = keyed_pair(cipher, mac)
    wire = b"".join(writer.encode(p) for p in payloads)
    reader.feed(wire)
    assert drain(reader) == list(enumerate(payloads))
    assert reader.buffered == 0
    more = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(40)]
    wire = b"".join(writer.encode(p) for p in more)
    got = feed_in_pieces(reader, wire, rng)
    assert got == list(enumerate(more, start=len(payloads)))
    assert reader.sequence == writer.sequence == len(payloads) + len(more)
    assert reader.packets_since_keys == writer.packets_since_keys == len(payloads) + len(more)
    assert reader.bytes_since_keys == writer.bytes_since_keys


@pytest.mark.parametrize(("cipher", "mac"), SUITES, ids=SUITE_IDS)
def test_round_trip_one_byte_at_a_time(cipher: str, mac: str) -> None:
    writer, reader = keyed_pair(cipher, mac)
    payloads = [bytes([94]) + bytes(range(n % 256)) * (n // 256 + 1) for n in (0, 5, 17, 300)]
    wire = b"".join(writer.encode(p) for p in payloads)
    got = []
    for i in range(len(wire)):
        reader.feed(wire[i : i + 1])
        packet = reader.next_packet()
        if packet is not None:
            got.append(packet)
            assert reader.next_packet() is None
    assert got == list(enumerate(payloads))


@pytest.mark.parametrize(("cipher", "mac"), SUITES, ids=SUITE_IDS)
def test_wire_format_invariants(cipher: str, mac: str) -> None:
    writer = PacketWriter()
    keys = make_keys(cipher, mac)
    protection = outbound(keys)
    writer.set_keys(keys)
    for size in range(0, 70):
        wire = writer.encode(bytes(size))
        enciphered = len(wire) - protection.tag_size
        assert enciphered >= 16
        assert (enciphered - protection.aad_len) % protection.block_size == 0
        # Padding 4..(block + 3), plus one more block only to reach 16 bytes.
        padding = enciphered - 5 - size
        assert 4 <= padding <= 2 * protection.block_size + 3


def test_cleartext_format_and_random_padding() -> None:
    writer = PacketWriter()
    first, second = writer.encode(b"\x14" + bytes(20)), writer.encode(b"\x14" + bytes(20))
    length, padding = struct.unpack(">IB", first[:5])
    assert len(first) == 4 + length and (4 + length) % 8 == 0 and padding >= 4
    assert first[5:26] == b"\x14" + bytes(20)
    assert first[:26] == second[:26] and first[26:] != second[26:]  # random padding


def test_keys_switch_mid_buffer_and_rekey() -> None:
    """Bytes after NEWKEYS may already be buffered: set_keys applies from the next packet."""
    keys1 = make_keys("aes128-ctr", "hmac-sha2-256", seed=1)
    keys2 = make_keys("chacha20-poly1305@openssh.com", "", seed=2)
    writer, reader = PacketWriter(), PacketReader()
    wire = writer.encode(b"\x14kexinit") + writer.encode(b"\x15")
    writer.set_keys(keys1)
    wire += writer.encode(b"\x05service") + writer.encode(b"\x15")
    writer.set_keys(keys2)
    writer.reset_sequence()
    wire += writer.encode(b"\x5edata")
    reader.feed(wire)
    assert reader.next_packet() == (0, b"\x14kexinit")
    assert reader.next_packet() == (1, b"\x15")
    assert not reader.keyed
    reader.set_keys(keys1)
    assert reader.keyed and reader.packets_since_keys == 0 and reader.bytes_since_keys == 0
    assert reader.next_packet() == (2, b"\x05service")
    assert reader.next_packet() == (3, b"\x15")
    reader.set_keys(keys2)
    reader.reset_sequence()
    assert reader.next_packet() == (0, b"\x5edata")
    assert reader.next_packet() is None


def test_set_keys_after_starting_the_next_packet_is_a_local_error() -> None:
    writer, reader = PacketWriter(), PacketReader()
    wire = writer.encode(b"\x15")
    reader.feed(wire + wire[:4])
    assert reader.next_packet() == (0, b"\x15")
    assert reader.next_packet() is None  # head of packet 2 already parsed
    with pytest.raises(LocalProtocolError):
        reader.set_keys(make_keys("aes128-ctr", "hmac-sha2-256"))


def test_many_small_packets_in_one_feed_and_compaction() -> None:
    writer, reader = keyed_pair("aes128-gcm@openssh.com", "")
    payloads = [bytes([94, i % 256]) * (i % 50) for i in range(5000)]
    wire = b"".join(writer.encode(p) for p in payloads)
    for start in range(0, len(wire), 256 * 1024):
        reader.feed(wire[start : start + 256 * 1024])
        assert reader.buffered <= 256 * 1024 + 600
        got = drain(reader)
        assert all(payloads[seq] == data for seq, data in got)
    assert reader.sequence == len(payloads) and reader.buffered == 0


def test_feed_survives_a_pinned_buffer() -> None:
    """A view left alive (say, by a stored traceback) must not break feed()."""
    writer, reader = PacketWriter(), PacketReader()
    wire = writer.encode(b"\x02a") + writer.encode(b"\x02b")
    reader.feed(wire[:20])
    assert reader.next_packet() == (0, b"\x02a")
    pin = memoryview(reader._buf)
    reader.feed(wire[20:])
    pin.release()
    assert drain(reader) == [(1, b"\x02b")]
    assert reader.buffered == 0


def test_largest_packets() -> None:
    writer, reader = keyed_pair("aes256-ctr", "hmac-sha2-512-etm@openssh.com")
    big = bytes(MAX_PACKET_SIZE - 64)
    reader.feed(writer.encode(big))
    assert reader.next_packet() == (0, big)
    with pytest.raises(LocalProtocolError):
        writer.encode(bytes(MAX_PACKET_SIZE))
    # With compression the bound is checked before the zlib stream advances.
    writer, reader = keyed_pair("aes128-gcm@openssh.com", "", "zlib")
    with pytest.raises(LocalProtocolError):
        writer.encode(bytes(MAX_PACKET_SIZE))
    assert writer.sequence == 0
    reader.feed(writer.encode(b"\x5eafter"))
    assert reader.next_packet() == (0, b"\x5eafter")


def test_sequence_numbers_wrap() -> None:
    writer, reader = keyed_pair("aes128-ctr", "hmac-sha2-256-etm@openssh.com")
    writer.sequence = reader.sequence = 0xFFFFFFFF
    reader.feed(writer.encode(b"\x02a") + writer.encode(b"\x02b"))
    assert drain(reader) == [(0xFFFFFFFF, b"\x02a"), (0, b"\x02b")]


def test_sequence_rollover_during_initial_kex_is_rejected() -> None:
    writer, reader = PacketWriter(), PacketReader()
    reader.sequence = writer.sequence = 0xFFFFFFFF
    reader.feed(writer.encode(b"\x02"))
    with pytest.raises(RemoteProtocolError, match="rolled over during initial kex") as info:
        reader.next_packet()
    assert info.value.code == DisconnectReason.PROTOCOL_ERROR


def test_direction_keys_repr_hides_secrets() -> None:
    keys = DirectionKeys(
        "aes128-ctr", "hmac-sha1", "none", b"\x01" * 16, b"\x02" * 16, b"\x03" * 20
    )
    assert "\\x02" not in repr(keys) and "aes128-ctr" in repr(keys)


# -- compression ------------------------------------------------------------------


@pytest.mark.parametrize(("cipher", "mac"), SUITES[:4], ids=SUITE_IDS[:4])
def test_zlib_round_trip(cipher: str, mac: str) -> None:
    writer, reader = keyed_pair(cipher, mac, "zlib")
    rng = random.Random(5)
    payloads = [b"\x5e" + b"hello world " * n for n in range(0, 400, 37)]
    payloads += [rng.randbytes(n) for n in (0, 1, 30000)]
    wires = [writer.encode(p) for p in payloads]
    assert len(wires[5]) < len(payloads[5]) // 4
    assert feed_in_pieces(reader, b"".join(wires), rng) == list(enumerate(payloads))


def test_delayed_zlib_starts_after_authentication_and_survives_rekey() -> None:
    keys = make_keys("aes128-gcm@openssh.com", "", "zlib@openssh.com")
    writer, reader = PacketWriter(), PacketReader()
    writer.set_keys(keys)
    reader.set_keys(keys)
    text = b"\x5e" + b"compress me " * 200
    before = writer.encode(text)
    assert len(before) > len(text)  # not compressed yet
    writer.enable_delayed_compression()
    after = writer.encode(text)
    assert len(after) < len(text) // 4
    reader.feed(before)
    assert reader.next_packet() == (0, text)
    reader.enable_delayed_compression()
    reader.feed(after)
    assert reader.next_packet() == (1, text)
    # A rekey restarts the zlib streams; delayed compression stays on.
    keys2 = make_keys("chacha20-poly1305@openssh.com", "", "zlib@openssh.com", seed=9)
    writer.set_keys(keys2)
    reader.set_keys(keys2)
    writer.enable_delayed_compression()  # idempotent
    again = writer.encode(text)
    assert len(again) < len(text) // 4
    reader.feed(again + writer.encode(text))
    assert drain(reader) == [(2, text), (3, text)]
    # Switching to "none" turns compression off.
    keys3 = make_keys("aes128-ctr", "hmac-sha2-256", "none", seed=3)
    writer.set_keys(keys3)
    reader.set_keys(keys3)
    plain = writer.encode(text)
    assert len(plain) > len(text)
    reader.feed(plain)
    assert reader.next_packet() == (4, text)


@pytest.mark.parametrize(
    "flush",
    [zlib.Z_PARTIAL_FLUSH, zlib.Z_SYNC_FLUSH, zlib.Z_FULL_FLUSH],
    ids=["openssh", "sync", "paramiko"],
)
def test_reader_accepts_other_flush_modes(flush: int) -> None:
    """OpenSSH deflates with Z_PARTIAL_FLUSH, paramiko with Z_FULL_FLUSH."""
    peer = zlib.compressobj(6)
    raw = PacketWriter()
    raw.set_keys(make_keys("aes128-ctr", "hmac-sha2-256", "none"))
    reader = PacketReader()
    reader.set_keys(make_keys("aes128-ctr", "hmac-sha2-256", "zlib"))
    payloads = [b"\x5e" + b"abc" * n for n in (1, 500, 0, 20000)] + [bytes(range(256)) * 40]
    for payload in payloads:
        reader.feed(raw.encode(peer.compress(payload) + peer.flush(flush)))
    assert drain(reader) == list(enumerate(payloads))


def test_decompression_bomb_is_a_compression_error() -> None:
    peer = zlib.compressobj(9)
    bomb = peer.compress(bytes(300 * 1024)) + peer.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 1000
    raw = PacketWriter()
    raw.set_keys(make_keys("aes128-gcm@openssh.com", ""))
    reader = PacketReader()
    reader.set_keys(make_keys("aes128-gcm@openssh.com", "", "zlib"))
    reader.feed(raw.encode(bomb))
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_packet()
    assert info.value.code == DisconnectReason.COMPRESSION_ERROR


@pytest.mark.parametrize(
    "payload",
    [b"\xde\xad\xbe\xef" * 4, zlib.compress(b"whole stream") + b"trailing"],
    ids=["garbage", "data-after-stream-end"],
)
def test_corrupt_compressed_payload_is_a_compression_error(payload: bytes) -> None:
    keys = make_keys("aes128-ctr", "hmac-sha2-256-etm@openssh.com", "zlib")
    raw = PacketWriter()
    raw.set_keys(make_keys("aes128-ctr", "hmac-sha2-256-etm@openssh.com", "none"))
    reader = PacketReader()
    reader.set_keys(keys)
    reader.feed(raw.encode(payload))
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_packet()
    assert info.value.code == DisconnectReason.COMPRESSION_ERROR


def test_unknown_compression_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        PacketWriter().set_keys(make_keys("aes128-ctr", "hmac-sha1", "lz4"))


# -- malformed input ----------------------------------------------------------------


@pytest.mark.parametrize(("cipher", "mac"), [("", ""), *SUITES], ids=["cleartext", *SUITE_IDS])
@pytest.mark.parametrize("length", [0, 4, 61, MAX_PACKET_SIZE + 16, 0xFFFFFFF0])
def test_bad_length_rejected_from_the_first_block(cipher: str, mac: str, length: int) -> None:
    keys = make_keys(cipher, mac) if cipher else None
    reader = PacketReader()
    protection = PacketProtection()
    if keys:
        reader.set_keys(keys)
        protection = outbound(keys)
    wire = crafted(keys, length, 4)
    # Only the head (4 bytes, or one block when the length is encrypted).
    reader.feed(wire[: protection.head_size])
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_packet()
    assert info.value.code == DisconnectReason.PROTOCOL_ERROR
    assert not isinstance(info.value, MACError)


def test_custom_max_packet_size() -> None:
    writer, reader = keyed_pair("aes128-ctr", "hmac-sha2-256", max_packet_size=1024)
    reader.feed(writer.encode(bytes(900)))
    assert reader.next_packet() == (0, bytes(900))
    reader.feed(writer.encode(bytes(1100))[:16])
    with pytest.raises(RemoteProtocolError, match="bad packet length"):
        reader.next_packet()


@pytest.mark.parametrize(("cipher", "mac"), [("", ""), *SUITES], ids=["cleartext", *SUITE_IDS])
@pytest.mark.parametrize("padding", [0, 3, "length", 255])
def test_bad_padding_length(cipher: str, mac: str, padding: int | str) -> None:
    keys = make_keys(cipher, mac) if cipher else None
    reader = PacketReader()
    protection = PacketProtection()
    if keys:
        reader.set_keys(keys)
        protection = outbound(keys)
    length = aligned_length(protection, 28)
    pad = length if padding == "length" else int(padding)
    reader.feed(crafted(keys, length, pad))
    with pytest.raises(RemoteProtocolError, match="padding") as info:
        reader.next_packet()
    assert info.value.code == DisconnectReason.PROTOCOL_ERROR


def test_largest_valid_padding_and_empty_payload() -> None:
    reader = PacketReader()
    reader.feed(crafted(None, 12, 11))
    assert reader.next_packet() == (0, b"")


@pytest.mark.parametrize(("cipher", "mac"), SUITES, ids=SUITE_IDS)
@pytest.mark.parametrize("where", ["body", "last"])
def test_flipped_bit_is_a_mac_error(cipher: str, mac: str, where: str) -> None:
    writer, reader = keyed_pair(cipher, mac)
    wire = bytearray(writer.encode(b"\x5e" + bytes(1000)))
    wire[len(wire) // 2 if where == "body" else -1] ^= 0x04
    reader.feed(wire)
    with pytest.raises(MACError) as info:
        reader.next_packet()
    assert info.value.code == DisconnectReason.MAC_ERROR


@pytest.mark.parametrize(("cipher", "mac"), SUITES, ids=SUITE_IDS)
def test_truncated_stream_needs_more_data(cipher: str, mac: str) -> None:
    writer, reader = keyed_pair(cipher, mac)
    wire = writer.encode(b"\x5e" + bytes(100))
    for cut in (0, 1, 3, 4, 15, 16, 17, len(wire) - 1):
        partial = PacketReader()
        partial.set_keys(make_keys(cipher, mac))
        partial.feed(wire[:cut])
        assert partial.next_packet() is None
        assert partial.next_packet() is None  # the parsed head is remembered
        partial.feed(wire[cut:])
        assert partial.next_packet() == (0, b"\x5e" + bytes(100))
    reader.feed(wire[:-1])
    assert reader.next_packet() is None and reader.buffered == len(wire) - 1


def test_errors_are_sticky_and_later_feeds_ignored() -> None:
    reader = PacketReader()
    reader.feed(b"\x00\x00\x00\x00")
    with pytest.raises(RemoteProtocolError) as first:
        reader.next_packet()
    reader.feed(PacketWriter().encode(b"\x02"))
    with pytest.raises(RemoteProtocolError) as second:
        reader.next_packet()
    assert second.value is first.value


# -- fuzzing -------------------------------------------------------------------------

FUZZ_SUITES = [
    ("chacha20-poly1305@openssh.com", ""),
    ("aes128-gcm@openssh.com", ""),
    ("aes128-ctr", "hmac-sha2-256"),
    ("aes128-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes256-cbc", "hmac-sha1"),
]


def run_fuzz(reader: PacketReader, data: bytes, step: int) -> None:
    try:
        for pos in range(0, len(data), step):
            reader.feed(data[pos : pos + step])
            while reader.next_packet() is not None:
                pass
    except RemoteProtocolError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    suite=st.sampled_from(FUZZ_SUITES),
    compression=st.sampled_from(["none", "zlib"]),
    data=st.binary(max_size=600),
    step=st.sampled_from([1, 5, 600]),
)
def test_fuzz_keyed_reader_yields_none_or_remote_error(
    suite: tuple[str, str], compression: str, data: bytes, step: int
) -> None:
    reader = PacketReader()
    reader.set_keys(make_keys(*suite, compression=compression))
    run_fuzz(reader, data, step)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=400), step=st.sampled_from([1, 400]))
def test_fuzz_cleartext_reader(data: bytes, step: int) -> None:
    run_fuzz(PacketReader(), data, step)


@settings(max_examples=60, deadline=None)
@given(
    suite=st.sampled_from(FUZZ_SUITES),
    payloads=st.lists(st.binary(max_size=300), max_size=6),
    flip=st.integers(min_value=0),
)
def test_fuzz_single_bit_flip_never_yields_a_wrong_packet(
    suite: tuple[str, str], payloads: list[bytes], flip: int
) -> None:
    writer, reader = keyed_pair(*suite)
    wire = bytearray(b"".join(writer.encode(p) for p in payloads))
    if wire:
        wire[flip % len(wire)] ^= 1 << (flip % 8)
    reader.feed(wire)
    got: list[tuple[int, bytes]] = []
    with contextlib.suppress(RemoteProtocolError):
        got = drain(reader)
    assert got == list(enumerate(payloads))[: len(got)]
    assert len(got) < max(len(payloads), 1)


# -- module hygiene -------------------------------------------------------------------


def test_decompressor_bound_is_exact() -> None:
    from geossh.proto.compression import Decompressor

    def packed(size: int) -> bytes:
        peer = zlib.compressobj()
        return peer.compress(bytes(size)) + peer.flush(zlib.Z_SYNC_FLUSH)

    assert Decompressor(limit=1000).decompress(packed(1000)) == bytes(1000)
    with pytest.raises(RemoteProtocolError) as info:
        Decompressor(limit=1000).decompress(packed(1001))
    assert info.value.code == DisconnectReason.COMPRESSION_ERROR


@pytest.mark.parametrize("module", ["cipher", "packet", "compression"])
def test_pure_core_imports(module: str) -> None:
    import ast
    import pathlib

    import geossh.proto

    source = pathlib.Path(geossh.proto.__file__).with_name(f"{module}.py").read_text()
    banned = {"gevent", "socket", "threading", "select", "time"}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        assert not {name.split(".")[0] for name in names} & banned


@pytest.mark.parametrize(
    ("cipher", "mac"),
    [
        ("aes128-gcm@openssh.com", ""),
        ("chacha20-poly1305@openssh.com", ""),
        ("aes128-ctr", "hmac-sha2-256"),
    ],
)
def test_missing_counts_the_rest_of_a_started_packet(cipher: str, mac: str) -> None:
    writer, reader = keyed_pair(cipher, mac)
    first, second = writer.encode(b"\x5e" + bytes(5000)), writer.encode(b"\x02")
    assert reader.missing == 0
    reader.feed(first[:10])  # not even the head yet (16 bytes for encrypted lengths)
    assert reader.next_packet() is None
    assert reader.missing == (len(first) - 10 if reader._pending >= 0 else 0)
    reader.feed(first[10:100])
    assert reader.next_packet() is None
    assert reader.missing == len(first) - 100
    reader.feed(first[100:] + second[:3])
    assert reader.next_packet() is not None
    assert reader.next_packet() is None
    assert reader.missing == 0  # only 3 bytes of the next packet: its length is unknown
    reader.feed(second[3:])
    assert reader.next_packet() is not None
    assert reader.missing == 0
