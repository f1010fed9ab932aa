"""Terminal modes of a ``pty-req`` (RFC 4254 §8, RFC 8160): decode, encode, apply.

``check_channel_pty_request`` receives the modes as the raw bytes paramiko
passes (an opcode stream); ``decode_modes`` turns them into a dict keyed by
the RFC's names (``"VINTR"``, ``"ECHO"``, ``"TTY_OP_ISPEED"`` …, or the
opcode number for opcodes the RFC leaves unnamed). ``apply_modes`` and
``set_winsize`` configure a real pseudo-terminal the way sshd does; the
codec itself is pure and lives in ``geossh.proto.termmodes``.

geossh checks the modes before calling the application: a malformed blob
(an opcode whose uint32 argument is cut short) is answered with
CHANNEL_FAILURE and never reaches ``check_channel_pty_request``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from geossh.proto.termmodes import (
    MAX_MODES_LENGTH as MAX_MODES_LENGTH,
    MODE_NAMES as MODE_NAMES,
    TTY_OP_END as TTY_OP_END,
    PtyModesError as PtyModesError,
    decode_modes as decode_modes,
    encode_modes as encode_modes,
)

__all__ = ["MODE_NAMES", "PtyModesError", "apply_modes", "decode_modes", "encode_modes",
           "set_winsize"]  # fmt: skip

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
