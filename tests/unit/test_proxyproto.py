"""PROXY protocol v1/v2 parser: well-formed headers, prefixes, and bounded rejection."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, strategies as st

from geossh.runner import proxyproto
from geossh.runner.proxyproto import ProxyProtocolError, build_v1, build_v2, parse

SSH = b"SSH-2.0-OpenSSH_9.2\r\n"


def test_v1_tcp4() -> None:
    data = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 22\r\n" + SSH
    header = parse(data)
    assert header is not None
    assert (header.version, header.command, header.family) == (1, "PROXY", "TCP4")
    assert header.source == ("192.0.2.7", 56324)
    assert header.destination == ("198.51.100.1", 22)
    assert data[header.length :] == SSH


def test_v1_tcp6_and_unknown() -> None:
    header = parse(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n")
    assert header is not None and header.source == ("2001:db8::1", 1)
    unknown = parse(b"PROXY UNKNOWN\r\n" + SSH)
    assert unknown is not None and unknown.is_local and unknown.length == 15
    long_unknown = parse(b"PROXY UNKNOWN ff:ff::1 ::1 1 2\r\n")
    assert long_unknown is not None and long_unknown.source is None


def test_v2_tcp4_with_tlv() -> None:
    data = build_v2(("203.0.113.9", 40000), ("10.0.0.1", 2222), tlvs=((0x05, b"id-1"),)) + SSH
    header = parse(data)
    assert header is not None
    assert (header.version, header.command, header.family) == (2, "PROXY", "TCP4")
    assert header.source == ("203.0.113.9", 40000)
    assert header.tlvs == ((0x05, b"id-1"),)
    assert data[header.length :] == SSH


def test_v2_tcp6_and_local() -> None:
    header = parse(build_v2(("2001:db8::5", 1234), ("2001:db8::1", 22)))
    assert header is not None and header.source == ("2001:db8::5", 1234)
    local = parse(build_v2(None) + SSH)
    assert local is not None and local.command == "LOCAL" and local.is_local
    assert local.length == 16


def test_v2_unix() -> None:
    block = b"/src".ljust(108, b"\0") + b"/dst".ljust(108, b"\0")
    data = proxyproto.V2_SIGNATURE + struct.pack(">BBH", 0x21, 0x31, len(block)) + block
    header = parse(data)
    assert header is not None and header.family == "UNIX" and header.source == ("/src", 0)


@pytest.mark.parametrize(
    "data",
    [
        build_v1(("192.0.2.1", 5), ("192.0.2.2", 22)),
        build_v2(("192.0.2.1", 5), ("192.0.2.2", 22)),
        build_v2(None),
    ],
)
def test_every_prefix_needs_more(data: bytes) -> None:
    for cut in range(len(data)):
        assert parse(data[:cut]) is None
    assert parse(data) is not None


@pytest.mark.parametrize(
    "data",
    [
        SSH,
        b"GET / HTTP/1.1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  # LF only
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",  # port out of range
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",  # leading zero
        b"PROXY TCP4 ::1 ::1 1 2\r\n",  # family mismatch
        b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 " + b"1" * 120 + b"\r\n",  # longer than 107 bytes
        b"PROXY UNKNOWNX\r\n",
        proxyproto.V2_SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12),  # version 1 in v2 framing
        proxyproto.V2_SIGNATURE + b"\x22\x11\x00\x0c" + bytes(12),  # unknown command
        proxyproto.V2_SIGNATURE + b"\x21\x11\x00\x04" + bytes(4),  # address block too short
        proxyproto.V2_SIGNATURE + b"\x21\x41\x00\x0c" + bytes(12),  # unknown family
        proxyproto.V2_SIGNATURE + b"\x21\x11\xff\xff",  # longer than the limit
        proxyproto.V2_SIGNATURE + b"\x21\x11\x00\x0e" + bytes(12) + b"\x01\x00",  # cut TLV
        proxyproto.V2_SIGNATURE + b"\x21\x11\x00\x10" + bytes(12) + b"\x01\x00\x09\x00",
    ],
)
def test_malformed_rejected(data: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse(data)


def test_v1_without_crlf_is_bounded() -> None:
    with pytest.raises(ProxyProtocolError):
        parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2" + b" " * 200)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise(data: bytes) -> None:
    try:
        header = parse(data)
    except ProxyProtocolError:
        return
    if header is not None:
        assert 0 < header.length <= proxyproto.MAX_HEADER_LENGTH


@given(st.binary(max_size=64))
def test_v1_header_followed_by_anything(tail: bytes) -> None:
    data = build_v1(("198.51.100.4", 1000), ("198.51.100.5", 22))
    header = parse(data + tail)
    assert header is not None and header.length == len(data)
