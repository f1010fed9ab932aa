"""OpenSSH user certificates: parsing and sshd's acceptance rules.

Certificates are issued at test time by ``ssh-keygen -s``; a few that
ssh-keygen refuses to produce are built with cryptography's builder.
"""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings, strategies as st

from geossh.proto import keys
from geossh.proto.keys import Certificate, CertType, KeyParseError, UnsupportedKeyType

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen missing")

KEYGEN = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa": ["-t", "ecdsa"],
    "rsa": ["-t", "rsa", "-b", "2048"],
}


def now() -> int:
    """The current time, read per use: a module-level constant goes stale in a long run."""
    return int(time.time())


def keygen(directory: Path, name: str, kind: str) -> Path:
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", *KEYGEN[kind], "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def read_pub(path: Path) -> bytes:
    return base64.b64decode(path.read_text().split()[1])


def sign(
    directory: Path, ca: Path, user: Path, *options: str, principals: str | None = "alice,bob"
) -> Certificate:
    """Issue a certificate for ``user`` with ``ca``; returns it parsed."""
    pub = directory / f"{user.name}.pub"
    cmd = ["ssh-keygen", "-q", "-s", str(ca), "-I", "test-id", "-z", "42"]
    if principals is not None:
        cmd += ["-n", principals]
    subprocess.run([*cmd, *options, str(pub)], check=True, capture_output=True)
    return keys.parse_certificate(read_pub(directory / f"{user.name}-cert.pub"))


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    for kind in KEYGEN:
        keygen(directory, f"ca_{kind}", kind)
        keygen(directory, f"user_{kind}", kind)
    keygen(directory, "other_ca", "ed25519")
    return directory


def ca_key(d: Path, name: str = "ca_ed25519") -> keys.SSHKey:
    return keys.public_key_from_blob(read_pub(d / f"{name}.pub"))


def validate(cert: Certificate, d: Path, **kwargs: object) -> str | None:
    args: dict[str, object] = {
        "principal": "alice",
        "now": now(),
        "trusted_ca": ca_key(d).__eq__,
        "source_address": "192.0.2.7",
    }
    args.update(kwargs)
    return keys.validate_user_certificate(cert, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("ca_kind", list(KEYGEN))
@pytest.mark.parametrize("user_kind", list(KEYGEN))
def test_parse_and_validate(d: Path, tmp_path: Path, ca_kind: str, user_kind: str) -> None:
    user = tmp_path / "user"
    shutil.copy(d / f"user_{user_kind}", user)
    shutil.copy(d / f"user_{user_kind}.pub", tmp_path / "user.pub")
    cert = sign(tmp_path, d / f"ca_{ca_kind}", user, "-V", "-5m:+1h")
    user_key = keys.public_key_from_blob(read_pub(tmp_path / "user.pub"))
    ca = ca_key(d, f"ca_{ca_kind}")
    assert cert.key == user_key
    assert cert.signature_key == ca
    assert cert.key_type == user_key.key_type + keys.CERT_SUFFIX
    assert cert.cert_type is CertType.USER
    assert (cert.key_id, cert.serial, cert.principals) == ("test-id", 42, ("alice", "bob"))
    assert cert.valid_after <= now() < cert.valid_before
    assert "permit-pty" in cert.extensions and cert.critical_options == {}
    expected_alg = "rsa-sha2-512" if ca_kind == "rsa" else ca.key_type
    assert cert.signature_algorithm == expected_alg
    assert cert.verify_signature()
    assert validate(cert, d, trusted_ca=ca.__eq__) is None
    assert validate(cert, d, trusted_ca=ca.__eq__, principal="bob") is None
    assert cert.blob == read_pub(tmp_path / "user-cert.pub")
    assert keys.parse_public_identity(cert.blob) == cert
    key, parsed = keys.parse_userauth_key(cert.key_type, cert.blob)
    assert key == user_key and parsed == cert
    if user_kind == "rsa":
        for alg in ("rsa-sha2-256", "rsa-sha2-512"):
            assert keys.parse_userauth_key(alg + keys.CERT_SUFFIX, cert.blob)[1] == cert
    assert "test-id" in repr(cert)


def test_rejections(d: Path) -> None:
    cert = sign(d, d / "ca_ed25519", d / "user_ecdsa", "-V", "20200101:20300101")
    assert validate(cert, d) is None
    assert validate(cert, d, principal="eve") == "principal 'eve' not in certificate"
    assert validate(cert, d, now=cert.valid_after - 1) == "certificate is not yet valid"
    assert validate(cert, d, now=cert.valid_after) is None
    assert validate(cert, d, now=cert.valid_before) == "certificate has expired"
    assert validate(cert, d, now=cert.valid_before - 1) is None
    untrusted = validate(cert, d, trusted_ca=ca_key(d, "other_ca").__eq__)
    assert untrusted is not None and untrusted.startswith("certificate signed by untrusted CA")
    assert validate(cert, d, ca_signature_algorithms=("rsa-sha2-512",)) is not None


def test_expired_and_not_yet_valid_from_ssh_keygen(d: Path) -> None:
    old = sign(d, d / "ca_ed25519", d / "user_ed25519", "-V", "20000101:20010101")
    assert validate(old, d) == "certificate has expired"
    future = sign(d, d / "ca_ed25519", d / "user_ed25519", "-V", "+52w:+104w")
    assert validate(future, d) == "certificate is not yet valid"


def test_host_certificate_rejected(d: Path) -> None:
    cert = sign(d, d / "ca_ed25519", d / "user_ed25519", "-h")
    assert cert.cert_type is CertType.HOST
    assert validate(cert, d) == "not a user certificate"


def test_empty_principals_rejected(d: Path) -> None:
    cert = sign(d, d / "ca_ed25519", d / "user_ed25519", principals=None)
    assert cert.principals == ()
    assert validate(cert, d) == "certificate lists no principals"


def test_force_command_exposed(d: Path) -> None:
    cert = sign(d, d / "ca_ed25519", d / "user_rsa", "-O", "force-command=/usr/bin/id -u")
    assert cert.force_command == "/usr/bin/id -u"
    assert cert.source_address is None
    assert validate(cert, d) is None


def test_source_address(d: Path) -> None:
    cert = sign(
        d, d / "ca_ed25519", d / "user_rsa", "-O", "source-address=192.0.2.0/24,2001:db8::/32"
    )
    assert cert.source_address == "192.0.2.0/24,2001:db8::/32"
    assert validate(cert, d, source_address="192.0.2.200") is None
    assert validate(cert, d, source_address="::ffff:192.0.2.1") is None
    assert validate(cert, d, source_address="2001:db8::5") is None
    assert "not allowed" in (validate(cert, d, source_address="198.51.100.1") or "")
    assert "no address" in (validate(cert, d, source_address=None) or "")
    assert "not allowed" in (validate(cert, d, source_address="2001:db9::1") or "")


@pytest.mark.parametrize("option", ["critical:frobnicate=yes", "verify-required"])
def test_unknown_critical_option_rejected(d: Path, option: str) -> None:
    cert = sign(d, d / "ca_ed25519", d / "user_ed25519", "-O", option)
    reason = validate(cert, d)
    assert reason is not None and reason.startswith("unsupported critical option")


def test_unknown_extension_is_fine(d: Path) -> None:
    cert = sign(d, d / "ca_ed25519", d / "user_ed25519", "-O", "extension:custom@example.com")
    assert "custom@example.com" in cert.extensions
    assert validate(cert, d) is None


def test_sha1_rsa_ca_signature_rejected_by_default(d: Path) -> None:
    cert = sign(d, d / "ca_rsa", d / "user_ed25519", "-t", "ssh-rsa")
    assert cert.signature_algorithm == "ssh-rsa"
    ca = ca_key(d, "ca_rsa")
    assert "not allowed" in (validate(cert, d, trusted_ca=ca.__eq__) or "")
    allowed = {"ssh-rsa", "rsa-sha2-512"}
    assert validate(cert, d, trusted_ca=ca.__eq__, ca_signature_algorithms=allowed) is None


def test_tampered_certificate(d: Path) -> None:
    cert = sign(d, d / "ca_ed25519", d / "user_ed25519")
    blob = bytearray(cert.blob)
    blob[-10] ^= 0x01  # inside the CA's signature
    tampered = keys.parse_certificate(bytes(blob))
    assert not tampered.verify_signature()
    assert validate(tampered, d) == "invalid certificate signature"
    # a changed principal list breaks the signature too
    idx = cert.blob.index(b"alice")
    changed = keys.parse_certificate(cert.blob[:idx] + b"mallo" + cert.blob[idx + 5 :])
    assert changed.principals == ("mallo", "bob")
    assert validate(changed, d, principal="mallo") == "invalid certificate signature"


def _builder_cert(**options: bytes) -> tuple[Certificate, keys.SSHKey]:
    ca = ed25519.Ed25519PrivateKey.generate()
    user = ed25519.Ed25519PrivateKey.generate()
    builder = (
        serialization.SSHCertificateBuilder()
        .public_key(user.public_key())
        .type(serialization.SSHCertificateType.USER)
        .valid_principals([b"alice"])
        .valid_after(now() - 60)
        .valid_before(now() + 60)
    )
    for name, value in sorted(options.items()):
        builder = builder.add_critical_option(name.replace("_", "-").encode(), value)
    cert = builder.sign(ca)
    blob = base64.b64decode(cert.public_bytes().split()[1])
    return keys.parse_certificate(blob), keys.SSHKey(ca.public_key())


def test_invalid_source_address_option() -> None:
    cert, ca = _builder_cert(source_address=b"not-an-address")
    reason = keys.validate_user_certificate(
        cert, principal="alice", now=now(), trusted_ca=ca.__eq__, source_address="192.0.2.1"
    )
    assert reason is not None and "invalid source-address" in reason
    host_bits, ca = _builder_cert(source_address=b"192.0.2.1/24")
    assert keys.validate_user_certificate(
        host_bits, principal="alice", now=now(), trusted_ca=ca.__eq__, source_address="192.0.2.1"
    )


def test_trusted_ca_callback_gets_the_ca_key() -> None:
    cert, ca = _builder_cert()
    seen: list[keys.SSHKey] = []

    def trusted(key: keys.SSHKey) -> bool:
        seen.append(key)
        return True

    verdict = keys.validate_user_certificate(cert, principal="alice", now=now(), trusted_ca=trusted)
    assert verdict is None
    assert seen == [ca]


# -- malformed input ------------------------------------------------------------------


def s(data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return struct.pack(">I", len(data)) + data


def test_parse_rejects_bad_blobs(d: Path) -> None:
    cert = sign(d, d / "ca_ecdsa", d / "user_rsa")
    blob = cert.blob
    for n in range(0, len(blob), 7):
        with pytest.raises(KeyParseError):
            keys.parse_certificate(blob[:n])
    with pytest.raises(KeyParseError):
        keys.parse_certificate(blob + b"\x00")
    with pytest.raises(UnsupportedKeyType):
        keys.parse_certificate(read_pub(d / "user_rsa.pub"))  # a plain key
    with pytest.raises(UnsupportedKeyType):
        keys.parse_certificate(s("ssh-dss-cert-v01@openssh.com") + blob[32:])
    with pytest.raises(KeyParseError):
        keys.parse_certificate(b"\xff\xff\xff\xff" + blob[4:])
    with pytest.raises(KeyParseError):  # certified key type differs from the cert type
        keys.parse_certificate(s("ssh-ed25519-cert-v01@openssh.com") + blob[32:])
    with pytest.raises(KeyParseError):  # a certificate is not a plain key
        keys.public_key_from_blob(blob)


def test_non_utf8_principal_rejected() -> None:
    ca = ed25519.Ed25519PrivateKey.generate()
    cert = (
        serialization.SSHCertificateBuilder()
        .public_key(ed25519.Ed25519PrivateKey.generate().public_key())
        .type(serialization.SSHCertificateType.USER)
        .valid_principals([b"\xff\xfe"])
        .valid_after(0)
        .valid_before(2**63)
        .sign(ca)
    )
    with pytest.raises(KeyParseError, match="UTF-8"):
        keys.parse_certificate(base64.b64decode(cert.public_bytes().split()[1]))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_certificates(d: Path, data: st.DataObject) -> None:
    blob = bytearray(sign_cached(d))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    try:
        cert = keys.parse_certificate(bytes(blob))
    except KeyParseError:
        return
    assert isinstance(validate(cert, d) or "", str)  # never raises


_CACHE: dict[str, bytes] = {}


def sign_cached(d: Path) -> bytes:
    if "blob" not in _CACHE:
        _CACHE["blob"] = sign(d, d / "ca_ed25519", d / "user_ecdsa", "-O", "force-command=x").blob
    return _CACHE["blob"]
