"""Binary packet framing (RFC 4253 §6): buffering, padding, lengths, seqnos.

Owns ``PacketReader`` (inbound) and ``PacketWriter`` (outbound) of one
connection: the receive buffer, length and padding validation, sequence
numbers (and their strict-kex reset), the per-key byte/packet counters used
for rekey limits, and the order compress → pad → protect. The cryptographic
transforms live in cipher.py, the zlib streams in compression.py.

Theory of operation (reader): ``feed()`` appends to one bytearray;
``next_packet()`` works in place at an offset. It first needs the packet's
head (4 bytes, or one cipher block when the length is encrypted with the
body) to learn and check the length, remembers that length, and returns
``None`` until ``4 + length + tag`` bytes are buffered; then it verifies,
decrypts, checks the padding, decompresses and advances. Any
``RemoteProtocolError`` is sticky: the reader is dead afterwards.

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import cast

from geossh.proto import compression
from geossh.proto.cipher import Buffer, PacketProtection, new_protection
from geossh.proto.constants import MAX_PACKET_SIZE
from geossh.proto.errors import LocalProtocolError, RemoteProtocolError

_HEADER = struct.Struct(">IB")  # packet_length, padding_length
_LENGTH = struct.Struct(">I")
_MASK32 = 0xFFFFFFFF
_MIN_PACKET = 16  # RFC 4253 §6: whole packet (with the length field), before the MAC
_MIN_PADDING = 4
_COMPACT_AT = 64 * 1024  # consumed prefix worth a memmove even when data remains
_RANDOM_POOL = 4096  # padding bytes fetched from os.urandom per refill
_ZLIB_SLACK = 1024  # > deflate's worst-case growth of one payload, plus framing
# Payloads from this size on are assembled and sealed inside the output
# buffer; smaller ones are joined as bytes and sealed (fewer calls).
_STAGE_FROM = 2048
# CHANNEL_DATA / CHANNEL_EXTENDED_DATA payloads longer than _VIEW_AT are
# returned as read-only memoryviews of the decrypted packet (no copy).
_DATA_MESSAGES = frozenset({94, 95})
_VIEW_AT = 1024


@dataclass(frozen=True)
class DirectionKeys:
    """Algorithms and key material for one direction (secrets kept out of repr)."""

    cipher: str
    mac: str  # ignored for AEAD ciphers (may be "")
    compression: str  # "none", "zlib", or "zlib@openssh.com" (delayed)
    iv: bytes = field(repr=False)
    key: bytes = field(repr=False)
    mac_key: bytes = field(repr=False)


class _Direction:
    """State both directions share: seqno, counters, keys and compression mode.

    Public attributes: ``sequence`` (number the next packet gets; wraps mod
    2**32), ``bytes_since_keys`` (wire bytes, MAC included, under the current
    keys), ``packets_since_keys``, and ``keyed`` (``set_keys`` was called).
    """

    __slots__ = (
        "_authenticated",
        "_compression",
        "_protection",
        "bytes_since_keys",
        "keyed",
        "packets_since_keys",
        "sequence",
    )

    def __init__(self) -> None:
        self.sequence = 0
        self.bytes_since_keys = 0
        self.packets_since_keys = 0
        self.keyed = False
        self._compression = compression.NONE
        self._authenticated = False
        self._protection = PacketProtection()

    def compact(self) -> None:
        """Free cipher state the next packet can rebuild (the connection went idle)."""
        self._protection.compact()

    def reset_sequence(self) -> None:
        """Strict kex: the next packet gets sequence number 0."""
        self.sequence = 0

    def enable_delayed_compression(self) -> None:
        """Start ``zlib@openssh.com`` (after USERAUTH_SUCCESS); idempotent.

        Remembered across rekeys: later keys with the delayed method
        compress from their first packet, as OpenSSH does.
        """
        if self._authenticated:
            return
        self._authenticated = True
        if self._compression == compression.ZLIB_OPENSSH:
            self._start_compression()

    def _install(self, keys: DirectionKeys, outbound: bool) -> PacketProtection:
        compression.check_name(keys.compression)
        protection = new_protection(
            keys.cipher, keys.key, keys.iv, keys.mac, keys.mac_key, outbound=outbound
        )
        self.keyed = True
        self.bytes_since_keys = 0
        self.packets_since_keys = 0
        self._compression = keys.compression
        # Every NEWKEYS starts fresh zlib streams (OpenSSH ssh_set_newkeys).
        if compression.is_active(keys.compression, self._authenticated):
            self._start_compression()
        else:
            self._stop_compression()
        return protection

    def _start_compression(self) -> None:
        raise NotImplementedError

    def _stop_compression(self) -> None:
        raise NotImplementedError


class PacketReader(_Direction):
    """Inbound packets: bytes in through ``feed``, payloads out of ``next_packet``."""

    __slots__ = (
        "_buf",
        "_decompressor",
        "_end",
        "_error",
        "_keep",
        "_pending",
        "_pos",
        "max_packet_size",
    )

    def __init__(self, max_packet_size: int = MAX_PACKET_SIZE) -> None:
        super().__init__()
        self.max_packet_size = max_packet_size
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed bytes
        self._end = 0  # end of the received bytes (``_buf`` may have room after it)
        self._keep = False  # keep ``_buf``'s capacity when drained (``receive_buffer``)
        self._pending = -1  # length of the packet whose head was read, else -1
        self._decompressor: compression.Decompressor | None = None
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet consumed by a returned packet."""
        return self._end - self._pos

    @property
    def missing(self) -> int:
        """Bytes still to arrive for the packet whose head was read (0 if none was)."""
        if self._pending < 0 or self._error is not None:
            return 0
        return 4 + self._pending + self._protection.tag_size - (self._end - self._pos)

    def feed(self, data: Buffer) -> None:
        """Append received bytes (ignored once the reader has failed)."""
        if self._error is not None or not data:
            return
        buf = self._buf
        pos, end = self._pos, self._end
        try:
            if end != len(buf):
                del buf[end:]  # capacity kept for ``receive_buffer`` is given back here
            if pos and (pos == end or (pos >= _COMPACT_AT and 2 * pos >= end)):
                del buf[:pos]
                end -= pos
                pos = self._pos = 0
            buf += data
        except BufferError:  # a stray view pins the buffer: move to a new one
            fresh = bytearray(buf[pos:end])
            fresh += data
            self._buf = fresh
            self._pos = 0
        self._end = len(self._buf)

    def receive_buffer(self, size: int) -> memoryview:
        """Writable room for up to ``size`` bytes after the buffered ones (for ``recv_into``).

        Call ``commit(count)`` with what was written, and release the view
        before any other call. The buffer keeps its capacity across packets
        until ``release()``: a connection receiving a stream reads into the
        same memory every time instead of allocating per read.
        """
        self._keep = True
        buf = self._buf
        pos, end = self._pos, self._end
        try:
            if pos:  # move the partial packet to the front
                if pos != end:
                    with memoryview(buf) as view:
                        view[: end - pos] = view[pos:end]
                end = self._end = end - pos
                self._pos = 0
            if len(buf) - end < size:
                buf.extend(bytes(size - (len(buf) - end)))
        except BufferError:  # a stray view pins the buffer: move to a new one
            fresh = bytearray(buf[self._pos : self._end])
            fresh.extend(bytes(size))
            self._buf = buf = fresh
            self._pos, end = 0, len(fresh) - size
            self._end = end
        return memoryview(buf)[end : end + size]

    def commit(self, count: int) -> None:
        """``count`` bytes were written into the view ``receive_buffer`` returned."""
        if self._error is None:
            self._end += count

    def release(self) -> None:
        """Give back the capacity ``receive_buffer`` kept: keep only unconsumed bytes."""
        if not self._keep:
            return
        self._keep = False
        self._buf = bytearray(self._buf[self._pos : self._end])
        self._pos, self._end = 0, len(self._buf)

    def next_packet(self) -> tuple[int, bytes] | None:
        """Return ``(sequence number, payload)``, or ``None`` if more bytes are needed.

        The payload of a CHANNEL_DATA or CHANNEL_EXTENDED_DATA message over
        1 KiB is a read-only ``memoryview`` (bytes-like; sliced without a
        copy by its consumer), every other payload ``bytes``.

        Raises ``RemoteProtocolError`` (``MACError`` for a bad MAC or tag)
        with the disconnect reason; the error repeats on every later call.
        """
        if self._error is not None:
            raise self._error
        try:
            protection = self._protection
            pos = self._pos
            available = self._end - pos
            length = self._pending
            if length < 0:
                if available < protection.head_size:
                    return None
                length = self._read_length(protection, pos)
            total = 4 + length + protection.tag_size
            if available < total:
                return None
            return self._open(protection, pos, length, total)
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def set_keys(self, keys: DirectionKeys) -> None:
        """Use ``keys`` from the next packet on (call right after NEWKEYS is read).

        Raises ``LocalProtocolError`` if the next packet's head was already
        parsed under the old keys, i.e. ``next_packet`` was called in between.
        """
        if self._pending >= 0:
            raise LocalProtocolError("set_keys called after the next packet was started")
        self._protection = self._install(keys, outbound=False)

    def _start_compression(self) -> None:
        self._decompressor = compression.Decompressor()

    def _stop_compression(self) -> None:
        self._decompressor = None

    def _read_length(self, protection: PacketProtection, pos: int) -> int:
        if protection.clear_length:
            length = int(_LENGTH.unpack_from(self._buf, pos)[0])
        else:
            head = self._buf[pos : pos + protection.head_size]  # a copy of 4 or 16 bytes
            length = protection.packet_length(self.sequence, head)
        if length < 5 or length > self.max_packet_size:
            raise RemoteProtocolError(f"bad packet length {length}")
        if (length + 4 - protection.aad_len) % protection.block_size:
            raise RemoteProtocolError(f"packet length {length} is not a multiple of the block size")
        self._pending = length
        return length

    def _open(
        self, protection: PacketProtection, pos: int, length: int, total: int
    ) -> tuple[int, bytes]:
        """Verify, decrypt and consume the complete packet at ``pos``."""
        seq = self.sequence
        with memoryview(self._buf) as view:
            plain, start = protection.open_at(seq, view, pos, total)
        padding = plain[start]
        if padding < _MIN_PADDING or padding >= length:
            raise RemoteProtocolError(f"bad padding length {padding} in a {length}-byte packet")
        end = start + length - padding
        if self._decompressor is not None:
            payload = self._decompressor.decompress(plain[start + 1 : end])
        elif end - start > _VIEW_AT and plain[start + 1] in _DATA_MESSAGES:
            # Channel data is sliced once more by its consumer: no copy here.
            payload = cast(bytes, memoryview(plain)[start + 1 : end])
        else:
            payload = plain[start + 1 : end]
        self._pos = pos = pos + total
        if pos == self._end:  # all consumed: free the chunk now, not at the next feed
            if not self._keep:
                del self._buf[:]
            self._pos = self._end = 0
        self._pending = -1
        self.packets_since_keys += 1
        self.bytes_since_keys += total
        following = (seq + 1) & _MASK32
        if following == 0 and not self.keyed:
            raise RemoteProtocolError("Sequence number rolled over during initial kex")
        self.sequence = following
        return seq, payload


class PacketWriter(_Direction):
    """Outbound packets, encoded into one output buffer that the caller drains.

    ``queue(payload)`` compresses, pads, protects and numbers one payload into
    the buffer; ``output()`` is a view of everything queued and ``sent(n)``
    consumes it, so a socket writes straight from the buffer (``take()``
    copies it out instead). Bulk data is assembled just past its packet's
    wire slot and sealed into that slot, so a streaming connection encodes
    every packet into the same memory with no allocation (small messages
    are joined and sealed as bytes, then copied in); once all is sent,
    ``release`` frees the buffer.
    """

    __slots__ = ("_buf", "_compressor", "_end", "_free_when_sent", "_start")

    def __init__(self) -> None:
        super().__init__()
        self._compressor: compression.Compressor | None = None
        self._buf = _NO_OUTPUT
        self._start = 0  # output()[0] is _buf[_start]
        self._end = 0
        self._free_when_sent = False  # ``release`` came while output was queued

    def set_keys(self, keys: DirectionKeys) -> None:
        """Use ``keys`` from the next ``queue`` on (call right after queuing NEWKEYS)."""
        self._protection = self._install(keys, outbound=True)

    def queue(self, payload: Buffer, data: Buffer | None = None) -> None:
        """Encode one packet of ``payload`` (then ``data``, e.g. channel data) into the output.

        RFC 4253 §6. Raises ``LocalProtocolError``, before any state
        changes, if the packet would exceed ``MAX_PACKET_SIZE``.
        """
        if self._compressor is not None:
            if data is not None:
                payload, data = b"".join((payload, data)), None
            if len(payload) > MAX_PACKET_SIZE - _ZLIB_SLACK:
                raise LocalProtocolError(f"payload of {len(payload)} bytes is too large")
            payload = self._compressor.compress(payload)
        protection = self._protection
        head = len(payload)
        size = head if data is None else head + len(data)
        block = protection.block_size
        # Align length field (unless it is AAD) + padding_length + payload + padding.
        padding = block - (size + 5 - protection.aad_len) % block
        if padding < _MIN_PADDING:
            padding += block
        length = size + 1 + padding
        if length + 4 < _MIN_PACKET:
            padding += block
            length += block
        if length > MAX_PACKET_SIZE:
            raise LocalProtocolError(f"packet of {length} bytes exceeds {MAX_PACKET_SIZE}")
        total = 4 + length
        wire_size = total + protection.tag_size
        seq = self.sequence
        if size < _STAGE_FROM:  # a message: joining bytes costs less than views
            header, tail = _HEADER.pack(length, padding), _random_padding(padding)
            parts = (header, payload, tail) if data is None else (header, payload, data, tail)
            joined = b"".join(parts)
            buf = self._reserve(wire_size)
            pos = self._end
            with memoryview(joined) as src, memoryview(buf) as view:
                protection.seal_into(seq, src, view[pos : pos + wire_size])  # no copy
        else:  # bulk data: assembled and sealed in the buffer, no allocation
            buf = self._reserve(wire_size + total)
            pos = self._end
            plain = pos + wire_size  # the plaintext's staging room, just past its wire slot
            _HEADER.pack_into(buf, plain, length, padding)
            at = plain + 5
            with memoryview(buf) as view:
                view[at : at + head] = payload
                at += head
                if data is not None:
                    view[at : at + size - head] = data
                    at += size - head
                view[at : at + padding] = _random_padding(padding)
                protection.seal_into(seq, view[plain : plain + total], view[pos:plain])
        self._end = pos + wire_size
        self.sequence = (seq + 1) & _MASK32
        self.packets_since_keys += 1
        self.bytes_since_keys += wire_size

    def encode(self, payload: bytes) -> bytes:
        """One wire packet as bytes, numbered but not queued (``queue`` queues it)."""
        mark = self._end
        self.queue(payload)
        with memoryview(self._buf) as view:
            wire = bytes(view[mark : self._end])
        self._end = mark
        return wire

    def queue_raw(self, data: bytes) -> None:
        """Queue bytes as they are (the version line, before any packet)."""
        buf = self._reserve(len(data))
        buf[self._end : self._end + len(data)] = data
        self._end += len(data)

    @property
    def pending(self) -> int:
        """Bytes queued and not yet ``sent``."""
        return self._end - self._start

    def output(self) -> memoryview:
        """A view of the queued bytes; release it before the next ``queue``."""
        return memoryview(self._buf)[self._start : self._end]

    def sent(self, count: int) -> None:
        """The first ``count`` bytes of ``output()`` were written."""
        start = self._start + count
        if start >= self._end:
            self._drained()
        else:
            self._start = start

    def take(self) -> bytes:
        """Everything queued, as bytes, and consumed."""
        with memoryview(self._buf) as view:
            data = bytes(view[self._start : self._end])
        self._drained()
        return data

    def release(self) -> None:
        """Free the output buffer now, or once what is queued was sent (it grows again)."""
        self._free_when_sent = True
        if self._start == self._end:
            self._drained()

    def _drained(self) -> None:
        """Everything was sent: start over at the front (of a new buffer after ``release``)."""
        self._start = self._end = 0
        if self._free_when_sent:
            self._free_when_sent = False
            self._buf = _NO_OUTPUT

    def _reserve(self, room: int) -> bytearray:
        """The buffer, with at least ``room`` free bytes after the queued ones."""
        buf = self._buf
        end = self._end
        if end + room <= len(buf):
            return buf
        start = self._start
        if start:  # move the unsent rest to the front (memoryview copies overlap safely)
            with memoryview(buf) as view:
                view[: end - start] = view[start:end]
            self._start, self._end = 0, end - start
            end -= start
        short = end + room - len(buf)
        if short > 0:
            if buf is _NO_OUTPUT:  # shared and never grown: start a buffer of our own
                buf = self._buf = bytearray(room)
            else:
                buf.extend(bytes(max(short, len(buf) // 2)))
        return buf

    def _start_compression(self) -> None:
        self._compressor = compression.Compressor()

    def _stop_compression(self) -> None:
        self._compressor = None


# The output buffer of every writer with nothing queued (no memory per connection).
_NO_OUTPUT = bytearray()

# Padding bytes come from one pool per process (not per connection), refilled
# from ``os.urandom``; a forked child starts a fresh pool.
_pool = b""
_pool_pos = 0


def _random_padding(count: int) -> bytes:
    global _pool, _pool_pos
    pos = _pool_pos
    if pos + count > len(_pool):
        _pool = os.urandom(_RANDOM_POOL)
        pos = 0
    _pool_pos = pos + count
    return _pool[pos : pos + count]


def _forget_pool() -> None:
    global _pool, _pool_pos
    _pool, _pool_pos = b"", 0


os.register_at_fork(after_in_child=_forget_pool)
