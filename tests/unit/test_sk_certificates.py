"""Security-key certificates (sk-*-cert-v01@openssh.com): geossh's parser and sshd's rules.

Certificates are signed by ``ssh-keygen -s`` for the public key of the
software authenticator in ``tests/sk_authenticator.py`` (ssh-keygen signs
an sk public key without the hardware); the malformed ones ssh-keygen would
never produce are built here and signed with cryptography.
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
from tests.sk_authenticator import ECDSA, ED25519, PRESENT, VERIFIED, Authenticator, certify

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen missing")
CERT = {
    ED25519: "sk-ssh-ed25519-cert-v01@openssh.com",
    ECDSA: "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
}


def now() -> int:
    return int(time.time())


def s(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return struct.pack(">I", len(raw)) + raw


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("skcerts")
    for name in ("ca", "other_ca"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)],
            check=True,
            capture_output=True,
        )
    return directory / "ca"


def ca_key(ca: Path, name: str = "ca") -> keys.SSHKey:
    blob = base64.b64decode((ca.parent / f"{name}.pub").read_text().split()[1])
    return keys.public_key_from_blob(blob)


def issue(ca: Path, tmp_path: Path, auth: Authenticator, *options: str) -> Certificate:
    return keys.parse_certificate(certify(auth, ca, tmp_path, "-n", "alice,bob", *options))


def validate(cert: Certificate, ca: Path, **kwargs: object) -> str | None:
    args: dict[str, object] = {
        "principal": "alice",
        "now": now(),
        "trusted_ca": ca_key(ca).__eq__,
        "source_address": "127.0.0.1",
    }
    args.update(kwargs)
    return keys.validate_user_certificate(cert, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [ED25519, ECDSA])
def test_parse_and_validate(ca: Path, tmp_path: Path, kind: str) -> None:
    auth = Authenticator(kind, application="ssh:work")
    cert = issue(ca, tmp_path, auth, "-z", "7", "-V", "-5m:+1h")
    assert cert.key_type == CERT[kind] and cert.cert_type is CertType.USER
    assert isinstance(cert.key, keys.SecurityKey) and cert.key.public_blob == auth.blob
    assert cert.key.application == "ssh:work"
    assert cert.principals == ("alice", "bob") and cert.key_id == "sk-id" and cert.serial == 7
    assert cert.signature_key == ca_key(ca) and cert.signature_algorithm == "ssh-ed25519"
    assert "permit-pty" in cert.extensions and not cert.critical_options
    assert cert.touch_required and not cert.verify_required
    assert cert.verify_signature()
    assert validate(cert, ca) is None
    assert keys.parse_public_identity(cert.blob) == cert
    # the certified key checks the authenticator's signatures, flags and counter included
    assertion = cert.key.verify_assertion(b"data", auth.sign(b"data", PRESENT), cert.key_type)
    assert assertion is not None and assertion.user_present and assertion.counter == 1


@pytest.mark.parametrize("kind", [ED25519, ECDSA])
def test_userauth_names(ca: Path, tmp_path: Path, kind: str) -> None:
    cert = issue(ca, tmp_path, Authenticator(kind))
    assert keys.strip_cert_suffix(CERT[kind]) == kind
    assert keys.blob_type_for_algorithm(CERT[kind]) == CERT[kind]
    assert keys.SIGNATURE_ALGORITHMS[CERT[kind]] == kind
    key, parsed = keys.parse_userauth_key(CERT[kind], cert.blob)
    assert parsed == cert and key == cert.key
    with pytest.raises(KeyParseError):  # offered under the plain key's name
        keys.parse_userauth_key(kind, cert.blob)
    other = CERT[ECDSA if kind == ED25519 else ED25519]
    with pytest.raises(KeyParseError):  # under the other certificate's name
        keys.parse_userauth_key(other, cert.blob)


def test_no_touch_required_and_verify_required(ca: Path, tmp_path: Path) -> None:
    auth = Authenticator(ED25519)
    cert = issue(ca, tmp_path, auth, "-O", "no-touch-required", "-O", "verify-required")
    assert not cert.touch_required and cert.verify_required
    assert dict(cert.critical_options) == {"verify-required": ""}
    assert validate(cert, ca) is None  # verify-required is known on a security-key certificate


def test_rejections(ca: Path, tmp_path: Path) -> None:
    auth = Authenticator(ECDSA)
    cert = issue(ca, tmp_path, auth)
    assert "untrusted CA" in (validate(cert, ca, trusted_ca=ca_key(ca, "other_ca").__eq__) or "")
    assert "not in certificate" in (validate(cert, ca, principal="mallory") or "")
    expired = issue(ca, tmp_path, auth, "-V", "20200101:20200102")
    assert validate(expired, ca) == "certificate has expired"
    future = issue(ca, tmp_path, auth, "-V", "+1d:+2d")
    assert validate(future, ca) == "certificate is not yet valid"
    host = keys.parse_certificate(certify(auth, ca, tmp_path, "-h", "-n", "alice"))
    assert validate(host, ca) == "not a user certificate"
    nobody = keys.parse_certificate(certify(auth, ca, tmp_path))
    assert validate(nobody, ca) == "certificate lists no principals"
    limited = issue(ca, tmp_path, auth, "-O", "source-address=192.0.2.0/24")
    assert "not allowed" in (validate(limited, ca) or "")
    assert validate(limited, ca, source_address="192.0.2.9") is None
    odd = issue(ca, tmp_path, auth, "-O", "critical:frobnicate=yes")
    assert (validate(odd, ca) or "").startswith("unsupported critical option")


def test_wrong_ca_signature(ca: Path, tmp_path: Path) -> None:
    cert = issue(ca, tmp_path, Authenticator(ED25519))
    blob = bytearray(cert.blob)
    blob[-10] ^= 0x01  # inside the CA's signature
    tampered = keys.parse_certificate(bytes(blob))
    assert not tampered.verify_signature()
    assert validate(tampered, ca) == "invalid certificate signature"
    idx = cert.blob.index(b"alice")
    changed = keys.parse_certificate(cert.blob[:idx] + b"mallo" + cert.blob[idx + 5 :])
    assert changed.principals == ("mallo", "bob")
    assert validate(changed, ca, principal="mallo") == "invalid certificate signature"
    # another CA's signature over this body (CA key swapped, signature kept)
    other = ca_key(ca, "other_ca").public_blob
    mine = cert.signature_key.public_blob
    swapped = keys.parse_certificate(cert.blob.replace(mine, other))
    trusted = ca_key(ca, "other_ca").__eq__
    assert validate(swapped, ca, trusted_ca=trusted) == "invalid certificate signature"


def test_truncated_and_extended_blobs(ca: Path, tmp_path: Path) -> None:
    blob = issue(ca, tmp_path, Authenticator(ECDSA)).blob
    for n in range(len(blob)):
        with pytest.raises(KeyParseError):
            keys.parse_certificate(blob[:n])
    with pytest.raises(KeyParseError):
        keys.parse_certificate(blob + b"\x00")
    with pytest.raises(KeyParseError):  # a certificate is not a plain key
        keys.public_key_from_blob(blob)


# -- certificates ssh-keygen would not make ---------------------------------------------

_CA = ed25519.Ed25519PrivateKey.generate()
_CA_BLOB = base64.b64decode(
    _CA.public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .split()[1]
)


def _options(*pairs: tuple[str, bytes]) -> bytes:
    return b"".join(s(name) + (s(s(value)) if value else s(b"")) for name, value in pairs)


def build(
    auth: Authenticator | None = None,
    *,
    cert_name: str | None = None,
    cert_type: int = 1,
    key_id: bytes = b"id",
    principals: tuple[bytes, ...] = (b"alice",),
    critical: bytes = b"",
    extensions: bytes = b"",
    ca_blob: bytes = _CA_BLOB,
    sig_alg: str = "ssh-ed25519",
) -> bytes:
    """An sk certificate body as PROTOCOL.certkeys lays it out, signed by ``_CA``."""
    auth = auth or Authenticator(ED25519)
    reader_pos = 4 + len(auth.kind)
    key_fields = auth.blob[reader_pos:]
    body = (
        s(cert_name or CERT[auth.kind])
        + s(b"n" * 32)
        + key_fields
        + struct.pack(">QI", 1, cert_type)
        + s(key_id)
        + s(b"".join(s(p) for p in principals))
        + struct.pack(">QQ", 0, 2**64 - 1)
        + s(critical)
        + s(extensions)
        + s(b"")
        + s(ca_blob)
    )
    return body + s(s(sig_alg) + s(_CA.sign(body)))


def _trusted(key: keys.SSHKey) -> bool:
    return key.public_blob == _CA_BLOB


def test_builder_matches_ssh_keygen_rules() -> None:
    for kind in (ED25519, ECDSA):
        cert = keys.parse_certificate(build(Authenticator(kind)))
        assert cert.verify_signature()
        verdict = keys.validate_user_certificate(
            cert, principal="alice", now=now(), trusted_ca=_trusted
        )
        assert verdict is None


@pytest.mark.parametrize(
    "blob",
    [
        build(cert_type=3),
        build(key_id=b"a\x00b"),
        build(principals=(b"al\x00ice",)),
        build(principals=(b"\xff",)),
        build(principals=tuple(b"p%d" % i for i in range(257))),
        build(critical=_options(("b", b""), ("a", b""))),  # not sorted
        build(extensions=_options(("permit-pty", b""), ("permit-pty", b""))),  # duplicate
        build(critical=s("force-command") + s(s("x") + b"extra")),
        build(critical=s("force-command") + s(b"\x00\x00\x00\x09x")),
        build(extensions=b"".join(s(b"e%03d" % i) + s(b"") for i in range(65))),
        build(sig_alg="ecdsa-sha2-nistp256"),  # signature type differs from the CA key
        build(ca_blob=Authenticator(ED25519).blob),  # a security key as the CA
        build(ca_blob=b"\x00\x00\x00\x0bssh-ed25519" + s(b"x" * 31)),
        build(Authenticator(ED25519), cert_name=CERT[ECDSA]),  # key fields of the other type
        build(Authenticator(ECDSA), cert_name=CERT[ED25519]),
        build(Authenticator(ED25519, application="x" * 300)),
    ],
)
def test_malformed_certificates_are_refused(blob: bytes) -> None:
    with pytest.raises(KeyParseError):
        keys.parse_certificate(blob)


def test_unsupported_type_name() -> None:
    with pytest.raises(UnsupportedKeyType):
        keys.parse_certificate(build(cert_name="sk-ssh-ed448-cert-v01@openssh.com"))


def test_verify_required_refused_on_a_plain_key_certificate(ca: Path, tmp_path: Path) -> None:
    """A plain key can never satisfy verify-required: refused (OpenSSH ignores it there)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "plain")],
        check=True,
        capture_output=True,
    )
    command = ["ssh-keygen", "-q", "-s", str(ca), "-I", "x", "-n", "alice", "-O", "verify-required"]
    subprocess.run([*command, str(tmp_path / "plain.pub")], check=True, capture_output=True)
    blob = base64.b64decode((tmp_path / "plain-cert.pub").read_text().split()[1])
    cert = keys.parse_certificate(blob)
    assert (validate(cert, ca) or "").startswith("unsupported critical option")


_MUTATE: dict[str, bytes] = {}


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_certificates(
    ca: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    if "blob" not in _MUTATE:
        where = tmp_path_factory.mktemp("mutate")
        auth = Authenticator(ECDSA)
        _MUTATE["blob"] = certify(auth, ca, where, "-n", "alice", "-O", "force-command=x")
    blob = bytearray(_MUTATE["blob"])
    for _ in range(data.draw(st.integers(1, 3))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    try:
        cert = keys.parse_certificate(bytes(blob))
    except KeyParseError:
        return
    assert isinstance(validate(cert, ca) or "", str)  # never raises


def test_a_signature_needs_the_users_touch_at_the_application(ca: Path, tmp_path: Path) -> None:
    """The flags check on a certificate's key: SKKey gets the certificate's waiver."""
    from geossh._facade.skkey import SKKey

    auth = Authenticator(ED25519)
    strict = issue(ca, tmp_path, auth)
    relaxed = issue(ca, tmp_path, auth, "-O", "no-touch-required", "-O", "verify-required")
    for cert, refused in ((strict, "user presence"), (relaxed, "verify-required")):
        pkey = SKKey(data=cert.key.public_blob)
        pkey.touch_required, pkey.verify_required = cert.touch_required, cert.verify_required
        pkey.sk_flags = 0
        assert refused in (pkey.assertion_refusal() or "")
        pkey.sk_flags = PRESENT | VERIFIED
        assert pkey.assertion_refusal() is None


def test_skkey_load_certificate(ca: Path, tmp_path: Path) -> None:
    """paramiko's ``load_certificate`` on the application side: the sk name rules."""
    from geossh._facade.skkey import SKKey

    auth = Authenticator(ECDSA)
    certify(auth, ca, tmp_path, "-n", "alice")
    key = SKKey(data=auth.blob)
    key.load_certificate(str(tmp_path / "sk-cert.pub"))
    assert key.public_blob is not None and key.public_blob.key_type == CERT[ECDSA]
    with pytest.raises(ValueError, match="does not certify"):
        SKKey(data=Authenticator(ECDSA).blob).load_certificate(str(tmp_path / "sk-cert.pub"))
    with pytest.raises(ValueError, match="incompatible"):
        SKKey(data=Authenticator(ED25519).blob).load_certificate(str(tmp_path / "sk-cert.pub"))


@pytest.mark.parametrize(
    ("ca_args", "algorithm"),
    [
        (["-t", "ecdsa", "-b", "384"], "ecdsa-sha2-nistp384"),
        (["-t", "rsa", "-b", "2048"], "rsa-sha2-512"),
    ],
)
def test_other_ca_key_types(tmp_path: Path, ca_args: list[str], algorithm: str) -> None:
    """The CA signature is checked by the plain keys' verify code, whatever the CA's type."""
    ca = tmp_path / "ca"
    command = ["ssh-keygen", "-q", *ca_args, "-N", "", "-f", str(ca)]
    subprocess.run(command, check=True, capture_output=True)
    cert = keys.parse_certificate(certify(Authenticator(ECDSA), ca, tmp_path, "-n", "alice"))
    assert cert.signature_algorithm == algorithm and cert.verify_signature()
    assert validate(cert, ca) is None
    blob = bytearray(cert.blob)
    blob[-3] ^= 0x40
    assert validate(keys.parse_certificate(bytes(blob)), ca) == "invalid certificate signature"
