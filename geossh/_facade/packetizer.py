"""``Transport.packetizer``: the part of paramiko's ``Packetizer`` server code tunes.

paramiko applications set ``transport.packetizer.REKEY_BYTES`` (and
``REKEY_PACKETS``), before or after ``start_server``, to re-key sooner or,
more often, practically never. geossh has no packetizer object; this view
maps those two attributes onto the transport. Everything else of paramiko's
Packetizer (sequence numbers, ``read_message``, ...) is internal and absent.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any


def _limit(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, not {value!r}")
    return value


class Packetizer:
    """``REKEY_BYTES`` / ``REKEY_PACKETS`` of one transport (paramiko.packet.Packetizer)."""

    __slots__ = ("_rekey_packets", "_transport")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._rekey_packets = 1 << 29  # paramiko's default

    def __repr__(self) -> str:
        return f"<geossh.Packetizer REKEY_BYTES={self.REKEY_BYTES}>"

    @property
    def REKEY_BYTES(self) -> int:
        """Re-key once this many bytes went either way under the current keys."""
        return int(self._transport.rekey_bytes)

    @REKEY_BYTES.setter
    def REKEY_BYTES(self, value: int) -> None:
        transport = self._transport
        transport.rekey_bytes = limit = _limit(value, "REKEY_BYTES")
        conn = getattr(transport, "_conn", None)
        if conn is not None:  # started: this connection's core from its next packet on
            core = conn.transport
            core.config = replace(core.config, rekey_bytes=limit)  # the config is shared

    @property
    def REKEY_PACKETS(self) -> int:
        """Accepted and kept; geossh re-keys by bytes and time (``rekey_seconds``) only."""
        return self._rekey_packets

    @REKEY_PACKETS.setter
    def REKEY_PACKETS(self, value: int) -> None:
        self._rekey_packets = _limit(value, "REKEY_PACKETS")
