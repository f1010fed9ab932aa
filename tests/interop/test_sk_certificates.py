"""Security-key certificates end to end: paramiko's client presents them, geossh judges them.

The credential is the software authenticator of ``tests/sk_authenticator.py``;
``ssh-keygen -s`` signs its public key. paramiko offers the certificate under
its algorithm name (``sk-ssh-ed25519-cert-v01@openssh.com`` …) with a
signature in the security-key format (flags and counter). Two server paths:
an application trusting the CA (``check_auth_cert_authority``, sshd's
TrustedUserCAKeys) and ``geossh serve``'s ``cert-authority`` line in
authorized_keys. A login needs the user's touch unless the certificate
carries ``no-touch-required`` (and, for a ``cert-authority`` line, the line
says ``no-touch-required`` too, as sshd merges them); ``verify-required``
demands user verification.
"""

from __future__ import annotations

import base64
import logging
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

import geossh
from geossh._facade.skkey import SKKey
from geossh.runner.serveapp import ServeApp
from tests.server_kit import make_server
from tests.sk_authenticator import ECDSA, ED25519, PRESENT, VERIFIED, Authenticator, PKey, certify
from tests.support import USER, in_thread

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("skca")
    for name in ("ca", "other_ca"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)],
            check=True,
            capture_output=True,
        )
    return directory / "ca"


def _ca_blob(path: Path) -> bytes:
    return base64.b64decode(Path(f"{path}.pub").read_text().split()[1])


class Seen:
    """What the application was asked."""

    publickey: list[Any] = []
    certificates: list[Any] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    Seen.publickey, Seen.certificates = [], []


def _trusting(ca_blob: bytes) -> type:
    class TrustsCA(geossh.ServerInterface):
        def get_allowed_auths(self, username: str) -> str:
            return "publickey"

        def check_auth_cert_authority(self, username: str, ca_key: Any) -> bool:
            return bool(ca_key.asbytes() == ca_blob)

        def check_auth_certificate(self, username: str, key: Any, certificate: Any) -> int:
            Seen.certificates.append((key, certificate))
            return geossh.AUTH_SUCCESSFUL

        def check_auth_publickey(self, username: str, key: Any) -> int:
            Seen.publickey.append(key)
            return geossh.AUTH_FAILED

    return TrustsCA


def _login(port: int, key: PKey) -> bool:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=20)
        try:
            transport.auth_publickey(USER, key)
        except paramiko.AuthenticationException:
            return False
        return bool(transport.is_authenticated())
    finally:
        transport.close()


@pytest.fixture
def trusting_server(keydir: Path, ca: Path) -> Iterator[Any]:
    server = make_server(keydir, interface=_trusting(_ca_blob(ca)))
    server.start()
    try:
        yield server
    finally:
        server.stop(timeout=1)


@pytest.mark.parametrize("kind", [ED25519, ECDSA])
def test_certificate_from_a_trusted_ca_logs_in(
    trusting_server: Any, ca: Path, tmp_path: Path, kind: str
) -> None:
    auth = Authenticator(kind)
    cert = certify(auth, ca, tmp_path, "-n", USER, "-V", "-5m:+1h")
    assert in_thread(_login, trusting_server.port, PKey(auth, PRESENT, cert))
    assert len(Seen.certificates) == 1 and not Seen.publickey
    key, certificate = Seen.certificates[0]
    assert isinstance(key, SKKey) and key.user_present and key.sk_counter == 1
    assert key.public_blob is not None and key.public_blob.key_blob == cert
    assert certificate.key_type == kind.replace("@", "-cert-v01@")
    assert certificate.key_id == "sk-id"


def test_untouched_key_needs_no_touch_required_in_the_certificate(
    trusting_server: Any, ca: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    auth = Authenticator(ED25519)
    strict = certify(auth, ca, tmp_path, "-n", USER, name="strict")
    relaxed = certify(auth, ca, tmp_path, "-n", USER, "-O", "no-touch-required", name="relaxed")
    with caplog.at_level(logging.INFO, logger="geossh"):
        assert not in_thread(_login, trusting_server.port, PKey(auth, 0, strict))
    assert any("user presence required" in r.getMessage() for r in caplog.records)
    assert in_thread(_login, trusting_server.port, PKey(auth, 0, relaxed))


def test_verify_required_certificate_needs_user_verification(
    trusting_server: Any, ca: Path, tmp_path: Path
) -> None:
    auth = Authenticator(ECDSA)
    cert = certify(auth, ca, tmp_path, "-n", USER, "-O", "verify-required")
    assert not in_thread(_login, trusting_server.port, PKey(auth, PRESENT, cert))
    assert in_thread(_login, trusting_server.port, PKey(auth, PRESENT | VERIFIED, cert))


def test_refused_certificates(trusting_server: Any, ca: Path, tmp_path: Path) -> None:
    auth = Authenticator(ED25519)
    expired = certify(auth, ca, tmp_path, "-n", USER, "-V", "20200101:20200102", name="old")
    assert not in_thread(_login, trusting_server.port, PKey(auth, PRESENT, expired))
    wrong_user = certify(auth, ca, tmp_path, "-n", "mallory", name="mallory")
    assert not in_thread(_login, trusting_server.port, PKey(auth, PRESENT, wrong_user))
    other = certify(auth, ca.parent / "other_ca", tmp_path, "-n", USER, name="other")
    assert not in_thread(_login, trusting_server.port, PKey(auth, PRESENT, other))
    assert len(Seen.publickey) == 1  # the untrusted CA's certificate went to the application
    assert not Seen.certificates
    # signed by another credential than the certified one
    impostor = Authenticator(ED25519)
    good = certify(auth, ca, tmp_path, "-n", USER, name="good")
    assert not in_thread(_login, trusting_server.port, PKey(impostor, PRESENT, good))
    assert not Seen.certificates


@pytest.mark.parametrize(
    "mangle",
    [
        lambda blob: blob[: len(blob) // 2],  # truncated
        lambda blob: blob + b"\x00",  # trailing byte
        lambda blob: blob[:-10] + bytes([blob[-10] ^ 1]) + blob[-9:],  # CA signature
        lambda blob: struct.pack(">I", 0xFFFF) + blob[4:],  # absurd length
    ],
    ids=["truncated", "trailing", "bad-ca-signature", "bad-length"],
)
def test_malformed_certificate_is_a_counted_failure(
    trusting_server: Any, ca: Path, tmp_path: Path, mangle: Any
) -> None:
    """The server refuses the request and keeps the connection: a second, good try works."""
    auth = Authenticator(ED25519)
    cert = certify(auth, ca, tmp_path, "-n", USER)
    bad, good = PKey(auth, PRESENT, mangle(cert)), PKey(auth, PRESENT, cert)

    def bad_then_good(port: int) -> tuple[bool, bool]:
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=20)
            try:
                transport.auth_publickey(USER, bad)
                first = True
            except paramiko.AuthenticationException:
                first = False
            transport.auth_publickey(USER, good)
            return first, transport.is_authenticated()
        finally:
            transport.close()

    assert in_thread(bad_then_good, trusting_server.port) == (False, True)


def test_wrong_algorithm_name_is_refused(trusting_server: Any, ca: Path, tmp_path: Path) -> None:
    """The ECDSA certificate offered under the Ed25519 certificate name."""
    auth = Authenticator(ECDSA)
    cert = certify(auth, ca, tmp_path, "-n", USER)
    key = PKey(auth, PRESENT, cert)
    key.public_blob = paramiko.PublicBlob("sk-ssh-ed25519-cert-v01@openssh.com", cert)
    assert not in_thread(_login, trusting_server.port, key)


# -- geossh serve: a cert-authority line in authorized_keys ----------------------------


def _serve(keydir: Path, tmp_path: Path, line: str) -> Any:
    (tmp_path / "authorized_keys").write_text(line + "\n")
    app = ServeApp(USER, [tmp_path / "authorized_keys"], None, str(tmp_path))
    server = make_server(keydir, interface=app.interface)
    server.start()
    return server


@pytest.mark.parametrize("kind", [ED25519, ECDSA])
def test_serve_cert_authority_line(keydir: Path, ca: Path, tmp_path: Path, kind: str) -> None:
    auth = Authenticator(kind)
    cert = certify(auth, ca, tmp_path, "-n", USER)
    relaxed = certify(auth, ca, tmp_path, "-n", USER, "-O", "no-touch-required", name="nt")
    ca_line = Path(f"{ca}.pub").read_text().strip()
    server = _serve(keydir, tmp_path, f"cert-authority {ca_line}")
    try:
        assert in_thread(_login, server.port, PKey(auth, PRESENT, cert))
        assert not in_thread(_login, server.port, PKey(auth, 0, cert))
        # the certificate alone does not waive the touch: the line must too (sshd's merge)
        assert not in_thread(_login, server.port, PKey(auth, 0, relaxed))
    finally:
        server.stop(timeout=1)
    server = _serve(keydir, tmp_path, f"no-touch-required,cert-authority {ca_line}")
    try:
        assert in_thread(_login, server.port, PKey(auth, 0, relaxed))
        assert not in_thread(_login, server.port, PKey(auth, 0, cert))
    finally:
        server.stop(timeout=1)


def test_serve_verify_required_from_the_certificate(keydir: Path, ca: Path, tmp_path: Path) -> None:
    auth = Authenticator(ED25519)
    cert = certify(auth, ca, tmp_path, "-n", USER, "-O", "verify-required")
    ca_line = Path(f"{ca}.pub").read_text().strip()
    server = _serve(keydir, tmp_path, f"cert-authority {ca_line}")
    try:
        assert not in_thread(_login, server.port, PKey(auth, PRESENT, cert))
        assert in_thread(_login, server.port, PKey(auth, PRESENT | VERIFIED, cert))
    finally:
        server.stop(timeout=1)


# -- asyncssh's client, its security-key signing fed by the software authenticator -----


def _asyncssh_identity(auth: Authenticator, cert_line: bytes) -> tuple[Any, Any]:
    """asyncssh's sk private key for ``auth`` (a dummy key handle) and its certificate."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # asyncssh imports DSA names
        import asyncssh
        from asyncssh import sk_ecdsa, sk_eddsa

    handle = b"software key handle"
    reader = geossh.Message(auth.blob)
    reader.get_text()
    if auth.kind == ED25519:
        key: Any = sk_eddsa._SKEd25519Key(reader.get_binary(), auth.application, PRESENT, handle)
    else:
        curve, point = reader.get_binary(), reader.get_binary()
        params = (curve, point, auth.application, PRESENT, handle, b"")
        key = sk_ecdsa._SKECDSAKey.make_private(params)
    return key, asyncssh.import_certificate(cert_line)


def _patch_asyncssh_signing(
    monkeypatch: pytest.MonkeyPatch, auth: Authenticator, flags: int
) -> None:
    """asyncssh asks ``sk_sign`` (fido2 and a device, normally) for the assertion."""
    from asyncssh import sk_ecdsa, sk_eddsa

    def sk_sign(
        data: bytes, application: str, key_handle: bytes, _flags: int, webauthn: bool = False
    ) -> tuple[int, int, bytes, bytes]:
        assert not webauthn and application == auth.application
        return (*auth.assertion(data, flags), data)

    monkeypatch.setattr(sk_eddsa, "sk_sign", sk_sign)
    monkeypatch.setattr(sk_ecdsa, "sk_sign", sk_sign)


def _asyncssh_login(port: int, identity: tuple[Any, Any]) -> bool:
    import asyncio

    import asyncssh

    async def connect() -> bool:
        options: dict[str, Any] = {"known_hosts": None, "agent_path": None, "username": USER}
        try:
            async with asyncssh.connect("127.0.0.1", port, client_keys=[identity], **options):
                return True
        except asyncssh.PermissionDenied:
            return False

    return asyncio.run(connect())


@pytest.mark.parametrize("kind", [ED25519, ECDSA])
def test_asyncssh_presents_a_security_key_certificate(
    trusting_server: Any, ca: Path, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = Authenticator(kind)
    certify(auth, ca, tmp_path, "-n", USER, "-V", "-5m:+1h")
    certify(auth, ca, tmp_path, "-n", USER, "-O", "no-touch-required", name="nt")
    strict = _asyncssh_identity(auth, (tmp_path / "sk-cert.pub").read_bytes())
    relaxed = _asyncssh_identity(auth, (tmp_path / "nt-cert.pub").read_bytes())
    _patch_asyncssh_signing(monkeypatch, auth, PRESENT)
    assert in_thread(_asyncssh_login, trusting_server.port, strict)
    key, certificate = Seen.certificates[-1]
    assert isinstance(key, SKKey) and key.user_present and certificate.key_type.startswith("sk-")
    _patch_asyncssh_signing(monkeypatch, auth, 0)  # not touched
    assert not in_thread(_asyncssh_login, trusting_server.port, strict)
    assert in_thread(_asyncssh_login, trusting_server.port, relaxed)
