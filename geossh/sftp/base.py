"""``BaseSFTP`` and ``int64``: the shared base paramiko's ``paramiko.sftp`` exports.

Owns the blocking packet helpers over ``self.sock`` that paramiko-era code
may call. The server engine does not use them on its hot paths.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from geossh.errors import SFTPError
from geossh.sftp.protocol import (
    _VERSION,
    CMD_INIT,
    CMD_VERSION,
    MAX_PACKET_ACCEPTED,
    encode_version,
    packet,
)


class int64(int):
    """Marks an int to be encoded as uint64 (paramiko compatibility)."""


class BaseSFTP:
    """State shared by SFTP endpoints: ``logger``, ``sock``, ``ultra_debug``."""

    def __init__(self) -> None:
        self.logger = logging.getLogger("geossh.sftp")
        self.sock: Any = None
        self.ultra_debug = False

    def _log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        self.logger.log(level, msg, *args, **kwargs)

    def _write_all(self, out: bytes) -> None:
        self.sock.sendall(out)

    def _read_all(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError()
            out += chunk
        return bytes(out)

    def _send_packet(self, t: int, data: Any) -> None:
        payload = data.asbytes() if hasattr(data, "asbytes") else bytes(data)
        self._write_all(packet(t, payload))

    def _read_packet(self) -> tuple[int, bytes]:
        size = struct.unpack(">I", self._read_all(4))[0]
        if size > MAX_PACKET_ACCEPTED:
            raise SFTPError("Garbage packet received")
        data = self._read_all(size)
        if size > 0:
            return data[0], data[1:]
        return 0, b""

    def _send_version(self) -> int:
        self._send_packet(CMD_INIT, struct.pack(">I", _VERSION))
        t, data = self._read_packet()
        if t != CMD_VERSION:
            raise SFTPError("Incompatible sftp protocol")
        return int(struct.unpack(">I", data[:4])[0])

    def _send_server_version(self) -> int:
        t, data = self._read_packet()
        if t != CMD_INIT:
            raise SFTPError("Incompatible sftp protocol")
        self._write_all(encode_version([("check-file", "md5,sha1")]))
        return int(struct.unpack(">I", data[:4])[0])
