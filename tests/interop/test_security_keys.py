"""FIDO security-key user keys (sk-ssh-ed25519, sk-ecdsa-sha2-nistp256) through paramiko's client.

The keys and signatures come from the software authenticator in
``tests/sk_authenticator.py``; paramiko's client sends them (no real
client library signs with a software FIDO key; OpenSSH needs a provider
library or hardware). The server side is geossh's ``Server`` with an
application that accepts one key: a login needs the user's touch unless
the application sets ``touch_required = False``, and ``verify_required``
demands user verification, as sshd's ``no-touch-required`` and
``verify-required``.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import paramiko
import pytest

import geossh
from geossh._facade.skkey import SKKey
from tests.server_kit import make_server
from tests.sk_authenticator import ECDSA, ED25519, PRESENT, VERIFIED, Authenticator, PKey
from tests.support import USER, in_thread


class Seen:
    """What the application was shown, per call."""

    keys: list[tuple[str, str, int | None, int | None, bool]] = []


def _interface(expected: bytes, touch_required: bool = True, verify: bool = False) -> type:
    class Accepting(geossh.ServerInterface):
        def get_allowed_auths(self, username: str) -> str:
            return "publickey"

        def check_auth_publickey(self, username: str, key: Any) -> int:
            if not isinstance(key, SKKey) or key.asbytes() != expected:
                return geossh.AUTH_FAILED
            key.touch_required = touch_required
            key.verify_required = verify
            Seen.keys.append(
                (key.get_name(), key.application, key.sk_flags, key.sk_counter, key.user_present)
            )
            return geossh.AUTH_SUCCESSFUL

    return Accepting


def _login(port: int, key: PKey) -> bool:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=20)
        try:
            transport.auth_publickey(USER, key)
        except paramiko.AuthenticationException:
            return False
        return transport.is_authenticated()
    finally:
        transport.close()


@pytest.fixture(autouse=True)
def _clear() -> None:
    Seen.keys = []


@pytest.mark.parametrize("kind", [ED25519, ECDSA])
def test_touched_security_key_logs_in(keydir: Path, kind: str) -> None:
    auth = Authenticator(kind)
    server = make_server(keydir, interface=_interface(auth.blob))
    server.start()
    try:
        assert in_thread(_login, server.port, PKey(auth, PRESENT))
        assert in_thread(_login, server.port, PKey(auth, PRESENT | VERIFIED))
    finally:
        server.stop(timeout=1)
    signed = [entry for entry in Seen.keys if entry[2] is not None]
    assert [entry[3] for entry in signed] == [1, 2]  # the authenticator's counters
    assert all(entry[:2] == (kind, "ssh:") and entry[4] for entry in signed)


def test_untouched_key_is_refused_even_if_the_application_accepts(
    keydir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    auth = Authenticator(ED25519)
    server = make_server(keydir, interface=_interface(auth.blob))
    server.start()
    try:
        with caplog.at_level(logging.INFO, logger="geossh"):
            assert not in_thread(_login, server.port, PKey(auth, 0))
    finally:
        server.stop(timeout=1)
    assert any("user presence required" in r.getMessage() for r in caplog.records)


def test_no_touch_required_lets_an_untouched_key_in(keydir: Path) -> None:
    auth = Authenticator(ECDSA)
    server = make_server(keydir, interface=_interface(auth.blob, touch_required=False))
    server.start()
    try:
        assert in_thread(_login, server.port, PKey(auth, 0))
    finally:
        server.stop(timeout=1)


def test_verify_required_needs_user_verification(keydir: Path) -> None:
    auth = Authenticator(ED25519)
    server = make_server(keydir, interface=_interface(auth.blob, verify=True))
    server.start()
    try:
        assert not in_thread(_login, server.port, PKey(auth, PRESENT))
        assert in_thread(_login, server.port, PKey(auth, PRESENT | VERIFIED))
    finally:
        server.stop(timeout=1)


def test_forged_assertion_is_refused(keydir: Path) -> None:
    """A signature over other flags (the counter or flags edited afterwards) fails."""
    auth = Authenticator(ED25519)

    class Tampered(PKey):
        def sign_ssh_data(self, data: bytes, algorithm: str | None = None) -> bytes:
            blob = bytearray(super().sign_ssh_data(data, algorithm))
            blob[-5] |= VERIFIED  # claim user verification after signing
            return bytes(blob)

    server = make_server(keydir, interface=_interface(auth.blob, verify=True))
    server.start()
    try:
        assert not in_thread(_login, server.port, Tampered(auth, PRESENT))
    finally:
        server.stop(timeout=1)
    assert all(entry[2] is None for entry in Seen.keys)  # never reached the application signed
