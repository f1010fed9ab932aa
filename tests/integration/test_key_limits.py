"""User keys the server refuses before any signature check: RSA with a huge public exponent.

paramiko is the client, signing with a real RSA key whose e has 2000 bits
(each verify of such a key costs ~90x one with e = 65537). The server
answers USERAUTH_FAILURE without verifying and without asking the
application, then a normal login on the same connection works.
"""

from __future__ import annotations

import math

import paramiko
from cryptography.hazmat.primitives.asymmetric import rsa

from geossh.proto.keys import RSA_MAX_E_BITS
from tests.support import PASSWORD, USER, ServerHarness, in_thread


def _rsa_key_with_exponent_bits(bits: int) -> paramiko.RSAKey:
    base = rsa.generate_private_key(65537, 2048).private_numbers()
    p, q = base.p, base.q
    phi = (p - 1) * (q - 1)
    e = (1 << (bits - 1)) | 1
    while math.gcd(e, phi) != 1:
        e += 2
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q)
    )
    return paramiko.RSAKey(key=numbers.private_key())


def test_huge_rsa_exponent_is_refused_unverified(server: ServerHarness) -> None:
    server.start()
    key = _rsa_key_with_exponent_bits(2000)
    assert key.public_numbers.e.bit_length() > RSA_MAX_E_BITS  # type: ignore[attr-defined]

    def body() -> tuple[bool, bool]:
        transport = paramiko.Transport(("127.0.0.1", server.port))
        try:
            transport.start_client(timeout=20)
            try:
                transport.auth_publickey(USER, key)
                by_key = True
            except paramiko.AuthenticationException:
                by_key = False
            transport.auth_password(USER, PASSWORD)
            return by_key, transport.is_authenticated()
        finally:
            transport.close()

    assert in_thread(body) == (False, True)
    app = server.servers[0]
    assert not [e for e in app.events if e[0] == "publickey"]  # type: ignore[attr-defined]
