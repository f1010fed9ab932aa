"""Compression never starts before authentication (SECURITY.md), whatever the client offers.

``use_compression(True)`` offers only OpenSSH's delayed ``zlib@openssh.com``
(and ``none``): plain ``zlib`` would compress from the first NEWKEYS, so an
anonymous peer could make the server inflate its packets. Real clients:
paramiko (offering ``zlib`` alone or first) and OpenSSH's ``ssh -C``.
"""

from __future__ import annotations

from typing import Any

import paramiko

import geossh
from tests.support import PASSWORD, USER, ServerHarness, in_thread


def _compressing_server(server: ServerHarness) -> ServerHarness:
    server.configure = lambda transport: transport.use_compression(True)
    return server.start()


def _paramiko_login(port: int, offer: tuple[str, ...]) -> tuple[str, str, bytes]:
    transport = paramiko.Transport(("127.0.0.1", port))
    transport._preferred_compression = offer
    try:
        transport.connect(username=USER, password=PASSWORD)
        chan = transport.open_session()
        chan.exec_command("echo compressed")
        out = chan.makefile("rb").read()
        return transport.local_compression, transport.remote_compression, out
    finally:
        transport.close()


def test_the_offer_has_no_plain_zlib() -> None:
    transport = geossh.Transport(_DummySocket())
    transport.use_compression(True)
    assert transport.preferred_compression == ("zlib@openssh.com", "none")
    offer = transport._server_config().preferences.compression
    assert offer == ("zlib@openssh.com", "none")
    transport.use_compression(False)
    assert transport.preferred_compression == ("none",)


def test_client_preferring_plain_zlib_gets_none(server: ServerHarness) -> None:
    """paramiko asks for zlib first: without plain zlib on offer, nothing is compressed."""
    port = _compressing_server(server).port
    local, remote, out = in_thread(_paramiko_login, port, ("zlib", "none"))
    assert (local, remote, out) == ("none", "none", b"compressed\n")
    ours = server.transports[0]
    assert (ours.local_compression, ours.remote_compression) == ("none", "none")


def test_delayed_zlib_still_negotiated(server: ServerHarness) -> None:
    port = _compressing_server(server).port
    offer = ("zlib@openssh.com", "zlib", "none")  # paramiko's own compress=True list
    local, remote, out = in_thread(_paramiko_login, port, offer)
    assert (local, remote, out) == ("zlib@openssh.com", "zlib@openssh.com", b"compressed\n")


def test_openssh_compression(server: ServerHarness) -> None:
    _compressing_server(server)
    result = server.ssh_run("echo compressed", options=["-C"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"compressed\n"
    assert server.transports[0].remote_compression == "zlib@openssh.com"


class _DummySocket:
    """Enough of a socket for a Transport that is never started."""

    def getpeername(self) -> tuple[str, int]:
        return ("127.0.0.1", 1)

    def settimeout(self, timeout: Any) -> None:
        """Nothing to set."""

    def close(self) -> None:
        """Nothing to close."""
