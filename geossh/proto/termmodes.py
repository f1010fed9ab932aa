"""Terminal modes of a ``pty-req`` (RFC 4254 §8, RFC 8160): the opcode stream.

``decode_modes`` turns the raw bytes paramiko passes to
``check_channel_pty_request`` into a dict keyed by the RFC's names
(``"VINTR"``, ``"ECHO"``, ``"TTY_OP_ISPEED"`` …, or the opcode number for
opcodes the RFC leaves unnamed); ``encode_modes`` is its inverse. Pure:
applying modes to a real terminal is ``geossh.services.pty``'s job.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

TTY_OP_END = 0
# Opcodes 1..159 carry a uint32; 160..255 are undefined and stop parsing.
_FIRST_UNDEFINED = 160
MAX_MODES_LENGTH = 4096

MODE_NAMES: dict[int, str] = {
    1: "VINTR", 2: "VQUIT", 3: "VERASE", 4: "VKILL", 5: "VEOF", 6: "VEOL", 7: "VEOL2",
    8: "VSTART", 9: "VSTOP", 10: "VSUSP", 11: "VDSUSP", 12: "VREPRINT", 13: "VWERASE",
    14: "VLNEXT", 15: "VFLUSH", 16: "VSWTCH", 17: "VSTATUS", 18: "VDISCARD",
    30: "IGNPAR", 31: "PARMRK", 32: "INPCK", 33: "ISTRIP", 34: "INLCR", 35: "IGNCR",
    36: "ICRNL", 37: "IUCLC", 38: "IXON", 39: "IXANY", 40: "IXOFF", 41: "IMAXBEL",
    42: "IUTF8",
    50: "ISIG", 51: "ICANON", 52: "XCASE", 53: "ECHO", 54: "ECHOE", 55: "ECHOK",
    56: "ECHONL", 57: "NOFLSH", 58: "TOSTOP", 59: "IEXTEN", 60: "ECHOCTL", 61: "ECHOKE",
    62: "PENDIN",
    70: "OPOST", 71: "OLCUC", 72: "ONLCR", 73: "OCRNL", 74: "ONOCR", 75: "ONLRET",
    90: "CS7", 91: "CS8", 92: "PARENB", 93: "PARODD",
    128: "TTY_OP_ISPEED", 129: "TTY_OP_OSPEED",
}  # fmt: skip
_OPCODES = {name: code for code, name in MODE_NAMES.items()}
_U32 = struct.Struct(">I")


class PtyModesError(ValueError):
    """The encoded terminal modes are malformed."""


def decode_modes(modes: bytes) -> dict[int | str, int]:
    """Decode an RFC 4254 §8 modes blob into ``{name or opcode: value}``.

    Parsing stops at TTY_OP_END (0) or at an undefined opcode (160..255), as
    the RFC says; an empty blob means "no modes". A later duplicate wins.
    Raises ``PtyModesError`` if the blob is too long or an argument is cut short.
    """
    if len(modes) > MAX_MODES_LENGTH:
        raise PtyModesError(f"terminal modes of {len(modes)} bytes")
    decoded: dict[int | str, int] = {}
    pos, end = 0, len(modes)
    while pos < end:
        opcode = modes[pos]
        if opcode == TTY_OP_END or opcode >= _FIRST_UNDEFINED:
            break
        if pos + 5 > end:
            raise PtyModesError(f"terminal mode {opcode} cut short at byte {pos}")
        (value,) = _U32.unpack_from(modes, pos + 1)
        decoded[MODE_NAMES.get(opcode, opcode)] = value
        pos += 5
    return decoded


def encode_modes(modes: Mapping[int | str, int]) -> bytes:
    """Encode ``{name or opcode: value}`` as a modes blob ending in TTY_OP_END."""
    out = bytearray()
    for key, value in modes.items():
        opcode = _OPCODES[key] if isinstance(key, str) else key
        if not 0 < opcode < _FIRST_UNDEFINED:
            raise ValueError(f"terminal mode opcode {opcode} out of range")
        out.append(opcode)
        out += _U32.pack(value & 0xFFFFFFFF)
    out.append(TTY_OP_END)
    return bytes(out)
