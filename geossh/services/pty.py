"""Terminal modes of a ``pty-req`` (RFC 4254 §8, RFC 8160): decode, encode, apply.

``check_channel_pty_request`` receives the modes as the raw bytes paramiko
passes (an opcode stream); ``decode_modes`` turns them into a dict keyed by
the RFC's names (``"VINTR"``, ``"ECHO"``, ``"TTY_OP_ISPEED"`` …, or the
opcode number for opcodes the RFC leaves unnamed). ``apply_modes`` and
``set_winsize`` configure a real pseudo-terminal the way sshd does.

geossh checks the modes before calling the application: a malformed blob
(an opcode whose uint32 argument is cut short) is answered with
CHANNEL_FAILURE and never reaches ``check_channel_pty_request``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

__all__ = ["MODE_NAMES", "PtyModesError", "apply_modes", "decode_modes", "encode_modes",
           "set_winsize"]  # fmt: skip

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


_IFLAGS = ("IGNPAR", "PARMRK", "INPCK", "ISTRIP", "INLCR", "IGNCR", "ICRNL", "IUCLC",
           "IXON", "IXANY", "IXOFF", "IMAXBEL", "IUTF8")  # fmt: skip
_LFLAGS = ("ISIG", "ICANON", "XCASE", "ECHO", "ECHOE", "ECHOK", "ECHONL", "NOFLSH",
           "TOSTOP", "IEXTEN", "ECHOCTL", "ECHOKE", "PENDIN")  # fmt: skip
_OFLAGS = ("OPOST", "OLCUC", "ONLCR", "OCRNL", "ONOCR", "ONLRET")
_CFLAGS = ("PARENB", "PARODD")
_VDISABLE = 255  # the client's "disabled" character (OpenSSH ttymodes.c)


def apply_modes(fd: int, modes: Mapping[int | str, int]) -> None:
    """Set the decoded ``modes`` on the terminal ``fd`` (like sshd's tty_parse_modes).

    Modes this platform's ``termios`` lacks are skipped.
    """
    import termios

    attrs = termios.tcgetattr(fd)
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = attrs
    for name, value in modes.items():
        if not isinstance(name, str):
            continue
        flag = getattr(termios, name, None)
        if name.startswith("V") and isinstance(flag, int) and flag < len(cc):
            cc[flag] = bytes([0 if value == _VDISABLE else value & 0xFF])
        elif name in _IFLAGS and flag is not None:
            iflag = iflag | flag if value else iflag & ~flag
        elif name in _LFLAGS and flag is not None:
            lflag = lflag | flag if value else lflag & ~flag
        elif name in _OFLAGS and flag is not None:
            oflag = oflag | flag if value else oflag & ~flag
        elif name in _CFLAGS and flag is not None:
            cflag = cflag | flag if value else cflag & ~flag
        elif name in ("CS7", "CS8") and flag is not None and value:
            cflag = (cflag & ~termios.CSIZE) | flag
        elif name in ("TTY_OP_ISPEED", "TTY_OP_OSPEED"):
            speed = getattr(termios, f"B{value}", None)
            if speed is not None and name == "TTY_OP_ISPEED":
                ispeed = speed
            elif speed is not None:
                ospeed = speed
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])


def set_winsize(fd: int, columns: int, rows: int, xpixels: int = 0, ypixels: int = 0) -> None:
    """Set a terminal's size (``pty-req`` and ``window-change``), clamped to 16 bits."""
    import fcntl
    import termios

    def clamp(value: int) -> int:
        return max(0, min(value, 0xFFFF))

    packed = struct.pack("HHHH", clamp(rows), clamp(columns), clamp(xpixels), clamp(ypixels))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, packed)
