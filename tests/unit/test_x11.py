"""geossh.x11 without SSH: request checks, display allocation, geossh serve's policy."""

from __future__ import annotations

import socket

import pytest

from geossh.runner.serveapp import forwarding_policy
from geossh.services.forward import X11Request
from geossh.services.x11 import DISPLAY_OFFSET, X11_BASE_PORT, DisplayRegistry, check_request

COOKIE = b"00112233445566778899aabbccddeeff"


@pytest.mark.parametrize(
    ("protocol", "cookie", "screen", "reason"),
    [
        ("MIT-MAGIC-COOKIE-1", COOKIE, 0, None),
        ("MIT-MAGIC-COOKIE-1", COOKIE.upper(), 255, None),
        ("XDM-AUTHORIZATION-1", COOKIE, 0, "unsupported auth protocol"),
        ("MIT-MAGIC-COOKIE-1 ", COOKIE, 0, "unsupported auth protocol"),
        ("MIT-MAGIC-COOKIE-1", b"", 0, "auth cookie is not hex"),
        ("MIT-MAGIC-COOKIE-1", COOKIE[:-1], 0, "auth cookie is not hex"),
        ("MIT-MAGIC-COOKIE-1", COOKIE + b"\n", 0, "auth cookie is not hex"),
        ("MIT-MAGIC-COOKIE-1", b"ab" * 513, 0, "auth cookie is not hex"),
        ("MIT-MAGIC-COOKIE-1", COOKIE, 256, "screen number over 255"),
    ],
)
def test_check_request(protocol: str, cookie: bytes, screen: int, reason: str | None) -> None:
    assert check_request(X11Request(False, protocol, cookie, screen)) == reason


def _free(port: int) -> socket.socket | None:
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def test_registry_skips_taken_numbers_and_caps() -> None:
    registry = DisplayRegistry()
    first = registry.allocate(limit=3)
    assert first is not None
    number, socks = first
    assert number >= DISPLAY_OFFSET
    blocker = _free(X11_BASE_PORT + number + 1)  # someone else's display N+1
    try:
        second = registry.allocate(limit=3)
        assert second is not None
        assert second[0] > number and (blocker is None or second[0] > number + 1)
        assert registry.allocate(limit=2) is None  # capped
        for sock in [*socks, *second[1]]:
            sock.close()
        registry.release(number)
        registry.release(second[0])
        assert not registry.numbers
    finally:
        if blocker is not None:
            blocker.close()


def test_serve_policy() -> None:
    off = forwarding_policy(False)
    assert not off.allow_x11 and not off.x11_display and not off.local
    x11 = forwarding_policy(False, x11=True)
    assert x11.allow_x11 and x11.x11_display and not x11.local
    both = forwarding_policy(True, x11=True)
    assert both.local == ("*:*",) and both.x11_display
