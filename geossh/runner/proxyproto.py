"""HAProxy's PROXY protocol, versions 1 and 2: a pure, bounded header parser.

A TCP load balancer that speaks the PROXY protocol sends one header before
the client's bytes; it carries the original client and destination
addresses. ``parse(data)`` looks at the start of a connection's bytes and
returns the header once complete, ``None`` while ``data`` is still a valid
prefix of one, and raises ``ProxyProtocolError`` for anything malformed or
longer than the limits below. ``ProxyHeader.length`` says how many bytes the
header occupied; whatever follows belongs to the SSH connection.

Reference: "The PROXY protocol", versions 1 & 2 (haproxy.org,
doc/proxy-protocol.txt). Pure: no sockets, no gevent, no clock.
The socket-side reader lives in ``geossh.runner``.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107  # including CRLF (spec §2.1)
V2_MAX_LENGTH = 16 + 4096  # fixed part + address block and TLVs we are willing to buffer
MAX_HEADER_LENGTH = V2_MAX_LENGTH

_V1_RE = re.compile(
    rb"PROXY (TCP4|TCP6) ([0-9A-Fa-f.:]{2,45}) ([0-9A-Fa-f.:]{2,45}) "
    rb"(0|[1-9][0-9]{0,4}) (0|[1-9][0-9]{0,4})\r\n\Z"
)
_V2_FAMILIES = {0x1: ("TCP4", 12), 0x2: ("TCP6", 36), 0x3: ("UNIX", 216)}


class ProxyProtocolError(ValueError):
    """The bytes are not a well-formed PROXY protocol header."""


@dataclass(frozen=True)
class ProxyHeader:
    """One parsed header.

    ``command`` is ``"PROXY"`` (a relayed connection: ``source`` and
    ``destination`` are set for TCP) or ``"LOCAL"`` (the balancer's own
    health check, v2; also v1 ``UNKNOWN``): use the socket's own addresses.
    ``family`` is ``"TCP4"``, ``"TCP6"``, ``"UNIX"`` or ``None``.
    """

    version: int
    command: str
    family: str | None
    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    length: int
    tlvs: tuple[tuple[int, bytes], ...] = ()

    @property
    def is_local(self) -> bool:
        """True when the header carries no client address to use."""
        return self.source is None


def parse(data: bytes | bytearray | memoryview) -> ProxyHeader | None:
    """A complete header at the start of ``data``; None if more bytes are needed."""
    data = bytes(data[:MAX_HEADER_LENGTH])
    if data.startswith(V2_SIGNATURE):
        return _parse_v2(data)
    if data.startswith(V1_PREFIX):
        return _parse_v1(data)
    if V2_SIGNATURE.startswith(data) or V1_PREFIX.startswith(data):
        return None
    raise ProxyProtocolError("connection does not start with a PROXY protocol header")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH or b"\n" in data[:V1_MAX_LENGTH]:
            raise ProxyProtocolError("PROXY v1 header too long or not CRLF-terminated")
        return None
    line = data[: end + 2]
    if line.startswith(b"PROXY UNKNOWN"):
        if line[13:14] not in (b" ", b"\r"):
            raise ProxyProtocolError("malformed PROXY v1 UNKNOWN line")
        return ProxyHeader(1, "LOCAL", None, None, None, len(line))
    match = _V1_RE.match(line)
    if match is None:
        raise ProxyProtocolError("malformed PROXY v1 line")
    family = match.group(1).decode()
    source_ip = _ip(match.group(2).decode(), family)
    dest_ip = _ip(match.group(3).decode(), family)
    source_port, dest_port = _port(match.group(4)), _port(match.group(5))
    return ProxyHeader(
        1, "PROXY", family, (source_ip, source_port), (dest_ip, dest_port), len(line)
    )


def _ip(text: str, family: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyProtocolError(f"bad address {text!r} in PROXY v1 line") from None
    if (address.version == 4) != (family == "TCP4"):
        raise ProxyProtocolError(f"address {text!r} does not match {family}")
    return str(address)


def _port(text: bytes) -> int:
    port = int(text)
    if port > 65535:
        raise ProxyProtocolError(f"port {port} out of range")
    return port


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < 16:
        return None
    ver_cmd, fam_proto, length = struct.unpack_from(">BBH", data, 12)
    if ver_cmd >> 4 != 2:
        raise ProxyProtocolError(f"unsupported PROXY protocol version {ver_cmd >> 4}")
    command = ver_cmd & 0xF
    if command not in (0, 1):
        raise ProxyProtocolError(f"unknown PROXY v2 command {command}")
    if 16 + length > V2_MAX_LENGTH:
        raise ProxyProtocolError(f"PROXY v2 header of {16 + length} bytes exceeds the limit")
    if len(data) < 16 + length:
        return None
    body = data[16 : 16 + length]
    family, proto = fam_proto >> 4, fam_proto & 0xF
    if command == 0 or family == 0:
        return ProxyHeader(2, "LOCAL", None, None, None, 16 + length)
    if family not in _V2_FAMILIES or proto not in (1, 2):
        raise ProxyProtocolError(f"unknown PROXY v2 family/protocol {fam_proto:#04x}")
    name, size = _V2_FAMILIES[family]
    if length < size:
        raise ProxyProtocolError(f"PROXY v2 {name} address block too short")
    source, dest = _v2_addresses(name, body[:size])
    tlvs = _tlvs(body[size:])
    return ProxyHeader(2, "PROXY", name, source, dest, 16 + length, tlvs)


def _v2_addresses(
    family: str, block: bytes
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    if family == "UNIX":
        src = block[:108].split(b"\0", 1)[0].decode("utf-8", "replace")
        dst = block[108:216].split(b"\0", 1)[0].decode("utf-8", "replace")
        return (src, 0), (dst, 0)
    width = 4 if family == "TCP4" else 16
    src_ip = str(ipaddress.ip_address(block[:width]))
    dst_ip = str(ipaddress.ip_address(block[width : 2 * width]))
    src_port, dst_port = struct.unpack_from(">HH", block, 2 * width)
    return (src_ip, src_port), (dst_ip, dst_port)


def _tlvs(data: bytes) -> tuple[tuple[int, bytes], ...]:
    out = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 3:
            raise ProxyProtocolError("truncated PROXY v2 TLV")
        kind, size = struct.unpack_from(">BH", data, pos)
        if pos + 3 + size > len(data):
            raise ProxyProtocolError("PROXY v2 TLV overruns the header")
        out.append((kind, data[pos + 3 : pos + 3 + size]))
        pos += 3 + size
    return tuple(out)


def build_v1(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A v1 header (for tests and for relaying)."""
    family = "TCP6" if ":" in source[0] else "TCP4"
    line = f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
    return line.encode("ascii")


def build_v2(
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None = None,
    tlvs: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """A v2 header: PROXY over TCP, or LOCAL when ``source`` is None."""
    extra = b"".join(struct.pack(">BH", kind, len(value)) + value for kind, value in tlvs)
    if source is None:
        return V2_SIGNATURE + struct.pack(">BBH", 0x20, 0x00, len(extra)) + extra
    dest = destination or ("0.0.0.0", 0)
    src_ip, dst_ip = ipaddress.ip_address(source[0]), ipaddress.ip_address(dest[0])
    family = 0x11 if src_ip.version == 4 else 0x21
    block = src_ip.packed + dst_ip.packed + struct.pack(">HH", source[1], dest[1])
    body = block + extra
    return V2_SIGNATURE + struct.pack(">BBH", 0x21, family, len(body)) + body
