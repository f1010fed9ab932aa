"""Micro-benchmark: PacketWriter.encode + PacketReader.next_packet per cipher.

Not a test. Prints MB/s of payload for 32 KiB payloads (the data path's
packet size) and packets/s for 64-byte payloads (per-packet overhead).
The reader is fed in 256 KiB chunks, like one large recv.

    python -m benchmarks.micro_packet [--seconds 0.5] [--compression none]   (from the repo root)
"""

from __future__ import annotations

import argparse
import os
import time

from geossh.proto.cipher import key_sizes
from geossh.proto.packet import DirectionKeys, PacketReader, PacketWriter

SUITES = [
    ("chacha20-poly1305@openssh.com", ""),
    ("aes128-gcm@openssh.com", ""),
    ("aes256-gcm@openssh.com", ""),
    ("aes128-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes256-ctr", "hmac-sha2-256-etm@openssh.com"),
    ("aes256-ctr", "hmac-sha2-512-etm@openssh.com"),
    ("aes128-ctr", "hmac-sha2-256"),
    ("aes128-cbc", "hmac-sha1-etm@openssh.com"),
]
CHUNK = 256 * 1024


def make_pair(cipher: str, mac: str, compression: str) -> tuple[PacketWriter, PacketReader]:
    iv_len, key_len, mac_len = key_sizes(cipher, mac or None)
    keys = DirectionKeys(
        cipher, mac, compression, os.urandom(iv_len), os.urandom(key_len), os.urandom(mac_len)
    )
    writer, reader = PacketWriter(), PacketReader()
    writer.set_keys(keys)
    reader.set_keys(keys)
    return writer, reader


def measure(
    cipher: str, mac: str, compression: str, size: int, seconds: float
) -> tuple[float, float, int]:
    """Return (encode seconds, decode seconds, packets) over about ``seconds``."""
    writer, reader = make_pair(cipher, mac, compression)
    payload = b"\x5e" + os.urandom(size - 1)
    batch = max(1, (4 * 1024 * 1024) // (size + 64))
    enc_time = dec_time = 0.0
    packets = 0
    while enc_time + dec_time < seconds:
        start = time.perf_counter()
        wire = b"".join([writer.encode(payload) for _ in range(batch)])
        middle = time.perf_counter()
        got = 0
        view = memoryview(wire)
        for pos in range(0, len(wire), CHUNK):
            reader.feed(view[pos : pos + CHUNK])
            while reader.next_packet() is not None:
                got += 1
        end = time.perf_counter()
        assert got == batch
        enc_time += middle - start
        dec_time += end - middle
        packets += batch
    return enc_time, dec_time, packets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--compression", default="none")
    args = parser.parse_args()
    print(f"{'suite':52} {'enc MB/s':>9} {'dec MB/s':>9} {'rt MB/s':>9} {'64B rt pkt/s':>13}")
    for cipher, mac in SUITES:
        enc, dec, n = measure(cipher, mac, args.compression, 32768, args.seconds)
        mb = n * 32768 / 1e6
        s_enc, s_dec, s_n = measure(cipher, mac, args.compression, 64, args.seconds / 2)
        name = f"{cipher} + {mac}" if mac else cipher
        print(
            f"{name:52} {mb / enc:9.0f} {mb / dec:9.0f} {mb / (enc + dec):9.0f}"
            f" {s_n / (s_enc + s_dec):13.0f}"
        )


if __name__ == "__main__":
    main()
