"""PacketWriter's output buffer: queue, partial writes, growth, reuse (no sockets)."""

from __future__ import annotations

import pytest

from geossh.proto.packet import PacketWriter
from tests.unit.test_packet import SUITE_IDS, SUITES, drain, keyed_pair

DATA = bytes(range(256)) * 200  # 51,200 bytes


def write_in_slices(writer: PacketWriter, step: int) -> bytes:
    """Drain the output ``step`` bytes at a time, as a socket taking part of it would."""
    wire = bytearray()
    while writer.pending:
        with writer.output() as view:
            piece = bytes(view[:step])
        writer.sent(len(piece))
        wire += piece
    return bytes(wire)


@pytest.mark.parametrize(("cipher", "mac"), SUITES, ids=SUITE_IDS)
def test_queued_head_and_data_decode_as_one_payload(cipher: str, mac: str) -> None:
    """Messages (joined, then sealed) and bulk data (sealed in the buffer) alike."""
    writer, reader = keyed_pair(cipher, mac)
    sizes = [0, 10, 2042, 2043, 32768]  # with the 5-byte head: around _STAGE_FROM
    for size in sizes:
        writer.queue(b"\x5e\x00\x00\x00\x07", memoryview(DATA)[:size])
    writer.queue(b"\x60\x00\x00\x00\x07")
    reader.feed(writer.take())
    expected = [b"\x5e\x00\x00\x00\x07" + DATA[:size] for size in sizes]
    assert [payload for _, payload in drain(reader)] == [*expected, b"\x60\x00\x00\x00\x07"]
    assert writer.pending == 0


@pytest.mark.parametrize(("cipher", "mac"), SUITES, ids=SUITE_IDS)
def test_partial_writes_interleaved_with_new_packets_keep_the_order(cipher: str, mac: str) -> None:
    writer, reader = keyed_pair(cipher, mac)
    payloads = [bytes([94]) + DATA[: 1000 * i + 7] for i in range(1, 40)]
    wire = bytearray()
    for payload in payloads:
        writer.queue(payload)
        # Write a part only: the rest stays in front of the next packet,
        # and the buffer moves it to the front when it needs room.
        with writer.output() as view:
            piece = bytes(view[: len(view) // 3])
        writer.sent(len(piece))
        wire += piece
    wire += write_in_slices(writer, 4999)
    reader.feed(bytes(wire))
    assert [payload for _, payload in drain(reader)] == payloads


def test_version_line_goes_first_and_as_is() -> None:
    writer = PacketWriter()
    writer.queue_raw(b"SSH-2.0-geossh\r\n")
    writer.queue(b"\x14" + bytes(40))
    wire = writer.take()
    assert wire.startswith(b"SSH-2.0-geossh\r\n\x00\x00\x00")


def test_encode_returns_a_packet_without_queuing_it() -> None:
    writer, reader = keyed_pair("aes128-gcm@openssh.com", "")
    writer.queue(b"\x02first")
    before = writer.pending
    packet = writer.encode(b"\x02second")
    assert writer.pending == before
    reader.feed(writer.take() + packet)
    assert drain(reader) == [(0, b"\x02first"), (1, b"\x02second")]


def test_a_stream_reuses_the_same_memory() -> None:
    """Once big enough, the buffer is not reallocated while packets flow."""
    writer, _ = keyed_pair("aes128-gcm@openssh.com", "")
    chunk = memoryview(DATA)[:32768]
    for _ in range(8):
        writer.queue(b"\x5e\x00\x00\x00\x00", chunk)
    write_in_slices(writer, 100_000)
    capacity = len(writer._buf)
    for _ in range(50):
        for _ in range(8):
            writer.queue(b"\x5e\x00\x00\x00\x00", chunk)
        write_in_slices(writer, 100_000)
    assert len(writer._buf) == capacity


def test_release_frees_the_buffer_once_the_output_is_sent() -> None:
    writer, reader = keyed_pair("chacha20-poly1305@openssh.com", "")
    writer.queue(b"\x02" + bytes(5000))
    writer.release()
    assert writer.pending > 0  # nothing is lost while output waits
    wire = write_in_slices(writer, 3000)
    assert len(writer._buf) == 0
    writer.queue(b"\x02again")  # grows again on demand, and is kept
    wire += write_in_slices(writer, 3000)
    assert len(writer._buf) > 0
    assert len(PacketWriter()._buf) == 0  # idle writers share one empty buffer, never grown
    writer.release()
    assert len(writer._buf) == 0
    reader.feed(wire)
    assert drain(reader) == [(0, b"\x02" + bytes(5000)), (1, b"\x02again")]


def test_a_view_must_be_released_before_queuing() -> None:
    """The driver's contract: a live view pins the buffer, so growing it fails loudly."""
    writer, _ = keyed_pair("aes128-gcm@openssh.com", "")
    writer.queue(b"\x02" + bytes(100))
    view = writer.output()
    with pytest.raises(BufferError):
        writer.queue(b"\x02" + bytes(100_000))
    view.release()
    writer.queue(b"\x02" + bytes(100_000))
