"""geossh.pkey: paramiko's key classes, checked against paramiko 5.1 on the same files."""

from __future__ import annotations

import base64
import io
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from geossh import pkey as gpkey
from geossh._facade.ecdsakey import ECDSAKey
from geossh._facade.ed25519key import Ed25519Key
from geossh._facade.message import Message
from geossh._facade.pkey import OPENSSH, PKey, PublicBlob, UnknownKeyType
from geossh._facade.rsakey import RSAKey
from geossh.errors import PasswordRequiredException, SSHException

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen missing")

SPECS = {
    "rsa": (RSAKey, paramiko.RSAKey, ["-t", "rsa", "-b", "2048", "-m", "PEM"]),
    "rsa_openssh": (RSAKey, paramiko.RSAKey, ["-t", "rsa", "-b", "2048"]),
    "ecdsa": (ECDSAKey, paramiko.ECDSAKey, ["-t", "ecdsa", "-m", "PEM"]),
    "ecdsa384_openssh": (ECDSAKey, paramiko.ECDSAKey, ["-t", "ecdsa", "-b", "384"]),
    "ed25519": (Ed25519Key, paramiko.Ed25519Key, ["-t", "ed25519"]),
}


def keygen(directory: Path, name: str, args: list[str], password: str = "") -> Path:
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", *args, "-N", password, "-C", name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pkeys")
    for name, (_, _, args) in SPECS.items():
        keygen(directory, name, args)
        keygen(directory, name + "_enc", args, password="s3cret")
    keygen(directory, "ca", ["-t", "ed25519"])
    return directory


def pub_blob(path: Path) -> bytes:
    return base64.b64decode(Path(f"{path}.pub").read_text().split()[1])


@pytest.mark.parametrize("name", list(SPECS))
def test_same_answers_as_paramiko(d: Path, name: str) -> None:
    ours_cls, theirs_cls, _ = SPECS[name]
    ours = ours_cls(filename=str(d / name))
    theirs = theirs_cls(filename=str(d / name))
    assert ours.get_name() == theirs.get_name()
    assert ours.get_bits() == theirs.get_bits()
    assert ours.asbytes() == theirs.asbytes() == bytes(ours) == pub_blob(d / name)
    assert ours.get_base64() == theirs.get_base64()
    assert ours.get_fingerprint() == theirs.get_fingerprint()
    assert ours.fingerprint == theirs.fingerprint
    assert ours.algorithm_name == theirs.algorithm_name
    assert repr(ours) == repr(theirs)
    assert ours.can_sign() and theirs.can_sign()
    assert ours_cls.identifiers() == theirs_cls.identifiers()
    if ours_cls is RSAKey:
        assert str(ours) == str(theirs)
        assert ours.size == theirs.size and ours.public_numbers == theirs.public_numbers
    if ours_cls is ECDSAKey:
        assert str(ours) == ours.asbytes().decode("utf8", "ignore")  # paramiko's raises TypeError
        assert ours.ecdsa_curve.key_format_identifier == theirs.ecdsa_curve.key_format_identifier
        assert ours.ecdsa_curve.hash_object == theirs.ecdsa_curve.hash_object


@pytest.mark.parametrize("name", list(SPECS))
def test_cross_signatures_with_paramiko(d: Path, name: str) -> None:
    ours_cls, theirs_cls, _ = SPECS[name]
    ours = ours_cls.from_private_key_file(str(d / name))
    theirs = theirs_cls.from_private_key_file(str(d / name))
    theirs_pub = paramiko.PKey.from_type_string(ours.get_name(), ours.asbytes())
    algs = [None, "rsa-sha2-256", "rsa-sha2-512"] if ours_cls is RSAKey else [None]
    for alg in algs:
        msg = ours.sign_ssh_data(b"data", alg)
        assert isinstance(msg, Message)
        expected_alg = alg or ("rsa-sha2-512" if ours_cls is RSAKey else ours.get_name())
        assert Message(msg.asbytes()).get_text() == expected_alg
        assert theirs_pub.verify_ssh_sig(b"data", paramiko.Message(msg.asbytes()))
        msg.rewind()
        assert ours.verify_ssh_sig(b"data", msg)  # a key loaded from a private file verifies
        theirs_msg = theirs.sign_ssh_data(b"data", alg)
        assert ours.verify_ssh_sig(b"data", Message(theirs_msg.asbytes()))
        assert not ours.verify_ssh_sig(b"other", Message(theirs_msg.asbytes()))
    public = ours_cls(data=ours.asbytes())
    assert not public.can_sign()
    assert public.verify_ssh_sig(b"data", Message(ours.sign_ssh_data(b"data").asbytes()))
    with pytest.raises(SSHException):
        public.sign_ssh_data(b"data")


def test_rsa_signature_algorithms(d: Path) -> None:
    key = RSAKey(filename=str(d / "rsa"))
    sha1 = key.sign_ssh_data(b"x", "ssh-rsa")  # explicit legacy request works
    assert Message(sha1.asbytes()).get_text() == "ssh-rsa"
    assert not key.verify_ssh_sig(b"x", Message(sha1.asbytes()))  # but, as in 5.x, never verifies
    cert_alg = key.sign_ssh_data(b"x", "rsa-sha2-256-cert-v01@openssh.com")
    assert Message(cert_alg.asbytes()).get_text() == "rsa-sha2-256"
    assert not key.verify_ssh_sig(b"x", Message(b"\x00\x00\x00\x01\xff"))  # not UTF-8
    assert not key.verify_ssh_sig(b"x", Message(b""))


def test_equality_and_hash(d: Path) -> None:
    priv = RSAKey(filename=str(d / "rsa"))
    pub = RSAKey(data=pub_blob(d / "rsa"))
    assert priv == pub and hash(priv) == hash(pub)
    assert priv != RSAKey(filename=str(d / "rsa_openssh"))
    assert priv != Ed25519Key(filename=str(d / "ed25519"))
    assert len({priv, pub, Ed25519Key(filename=str(d / "ed25519"))}) == 2
    assert priv != "not a key"


@pytest.mark.parametrize("name", list(SPECS))
def test_encrypted_files(d: Path, name: str) -> None:
    cls = SPECS[name][0]
    path = str(d / f"{name}_enc")
    assert cls(filename=path, password="s3cret") == cls(
        filename=str(d / f"{name}_enc"), password=b"s3cret"
    )
    with pytest.raises(PasswordRequiredException):
        cls(filename=path)
    with pytest.raises(SSHException):
        cls(filename=path, password="wrong")
    with open(path) as f:
        assert cls.from_private_key(f, password="s3cret").can_sign()


def test_wrong_class_for_file(d: Path) -> None:
    with pytest.raises(SSHException, match="Invalid key"):
        RSAKey(filename=str(d / "ed25519"))
    with pytest.raises(SSHException, match="Invalid key"):
        Ed25519Key(data=pub_blob(d / "rsa"))
    with pytest.raises(SSHException):
        ECDSAKey(data=pub_blob(d / "ecdsa") + b"trailing")
    with pytest.raises(SSHException):
        RSAKey(data=b"\x00\x00\x00\x07ssh-rsa")
    with pytest.raises(ValueError, match="need a key"):
        Ed25519Key()
    with pytest.raises(SSHException):
        RSAKey()
    with pytest.raises(OSError):
        RSAKey(filename=str(d / "missing"))


def test_message_constructor(d: Path) -> None:
    blob = pub_blob(d / "ecdsa384_openssh")
    msg = Message(blob)
    key = ECDSAKey(msg=msg)
    assert key.get_name() == "ecdsa-sha2-nistp384" and key.asbytes() == blob
    assert msg.get_remainder() == b""
    assert ECDSAKey(vals=(None, key.verifying_key)) == key


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("password", [None, "pw"])
def test_write_private_key_file(d: Path, tmp_path: Path, name: str, password: str | None) -> None:
    cls, theirs_cls, _ = SPECS[name]
    key = cls(filename=str(d / name))
    out = tmp_path / "written"
    key.write_private_key_file(str(out), password=password)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    text = out.read_text()
    if cls is Ed25519Key:
        assert text.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")  # paramiko cannot write it
    else:
        assert text.startswith("-----BEGIN RSA" if cls is RSAKey else "-----BEGIN EC")
        assert theirs_cls(filename=str(out), password=password).asbytes() == key.asbytes()
    assert cls(filename=str(out), password=password) == key
    listed = subprocess.run(
        ["ssh-keygen", "-y", "-P", password or "", "-f", str(out)], capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[1] == key.get_base64()


def test_write_openssh_format_and_file_obj(d: Path) -> None:
    key = RSAKey(filename=str(d / "rsa"))
    buf = io.StringIO()
    key.write_private_key(buf, password="x", file_format=OPENSSH)
    assert buf.getvalue().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert RSAKey(file_obj=io.StringIO(buf.getvalue()), password="x") == key
    with pytest.raises(SSHException):
        RSAKey(data=key.asbytes()).write_private_key(io.StringIO())


def test_existing_file_mode_is_kept_not_widened(tmp_path: Path) -> None:
    target = tmp_path / "k"
    target.write_text("old")
    target.chmod(0o600)
    Ed25519Key.generate().write_private_key_file(str(target))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert Ed25519Key(filename=str(target)).can_sign()


def test_generate() -> None:
    rsa_key = RSAKey.generate(2048)
    assert rsa_key.get_bits() == 2048 and rsa_key.can_sign()
    assert isinstance(rsa_key.private_key, rsa.RSAPrivateKey) and rsa_key.key is rsa_key.private_key
    for bits, name in [(256, "nistp256"), (384, "nistp384"), (521, "nistp521")]:
        key = ECDSAKey.generate(bits=bits)
        assert key.get_name() == "ecdsa-sha2-" + name and key.get_bits() == bits
        assert isinstance(key.signing_key, ec.EllipticCurvePrivateKey)
    assert ECDSAKey.generate(curve=ec.SECP384R1()).get_bits() == 384
    with pytest.raises(ValueError, match="Unsupported key length"):
        ECDSAKey.generate(bits=123)
    ed = Ed25519Key.generate()
    assert ed.can_sign() and ed.can_verify()
    assert isinstance(ed.verifying_key, ed25519.Ed25519PublicKey)
    assert isinstance(ed.private_key, ed25519.Ed25519PrivateKey)
    assert ed.ssh_key.key_type == "ssh-ed25519"
    assert ed.verify_ssh_sig(b"m", Message(ed.sign_ssh_data(b"m").asbytes()))


def test_public_only_properties(d: Path) -> None:
    assert RSAKey(data=pub_blob(d / "rsa")).private_key is None
    assert ECDSAKey(data=pub_blob(d / "ecdsa")).private_key is None
    ed = Ed25519Key(data=pub_blob(d / "ed25519"))
    assert ed.private_key is None and ed.can_verify() and not ed.can_sign()


# -- generic loaders -------------------------------------------------------------------


def _certify(d: Path, name: str, where: Path | None = None) -> Path:
    """Certify ``where/name.pub`` with the CA in ``d``; returns the -cert.pub path."""
    where = where or d
    cmd = ["ssh-keygen", "-q", "-s", str(d / "ca"), "-I", "id", "-n", "alice"]
    subprocess.run([*cmd, str(where / f"{name}.pub")], check=True, capture_output=True)
    return where / f"{name}-cert.pub"


@pytest.mark.parametrize("name", ["rsa", "ecdsa", "ed25519"])
def test_from_path(d: Path, tmp_path: Path, name: str) -> None:
    for suffix in ("", ".pub"):
        shutil.copy(d / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    key = PKey.from_path(tmp_path / name)
    assert type(key) is SPECS[name][0] and key.public_blob is None
    theirs = paramiko.PKey.from_path(tmp_path / name)
    assert key.asbytes() == theirs.asbytes()
    cert = _certify(d, name, tmp_path)
    with_cert = PKey.from_path(str(tmp_path / name))
    assert with_cert.public_blob is not None
    assert with_cert.public_blob.key_type.endswith("-cert-v01@openssh.com")
    assert PKey.from_path(str(cert)).public_blob == with_cert.public_blob
    enc = PKey.from_path(d / f"{name}_enc", password="s3cret")
    assert PKey.from_path(d / f"{name}_enc", passphrase="s3cret") == enc  # 4.x keyword


def test_from_path_unknown_type(tmp_path: Path) -> None:
    path = tmp_path / "dsa"
    path.write_bytes(
        dsa.generate_private_key(1024).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(UnknownKeyType) as info:
        PKey.from_path(path)
    assert "UnknownKeyType" in str(info.value)


def test_from_type_string(d: Path) -> None:
    blob = pub_blob(d / "rsa")
    for name in ("ssh-rsa", "rsa-sha2-256", "rsa-sha2-512"):
        assert type(PKey.from_type_string(name, blob)) is RSAKey
    assert type(PKey.from_type_string("ssh-ed25519", pub_blob(d / "ed25519"))) is Ed25519Key
    assert type(PKey.from_type_string("ecdsa-sha2-nistp256", pub_blob(d / "ecdsa"))) is ECDSAKey
    with pytest.raises(UnknownKeyType):
        PKey.from_type_string("ssh-dss", b"")
    assert str(UnknownKeyType("x", b"12")) == "UnknownKeyType(type='x', bytes=<2>)"
    assert gpkey.key_classes == [RSAKey, Ed25519Key, ECDSAKey]


def test_certificates(d: Path) -> None:
    cert_path = _certify(d, "ecdsa")
    cert_blob = base64.b64decode(cert_path.read_text().split()[1])
    key = ECDSAKey(data=cert_blob)
    assert key.public_blob is not None
    assert key.public_blob.key_type == "ecdsa-sha2-nistp256-cert-v01@openssh.com"
    assert key.get_name() == "ecdsa-sha2-nistp256"
    assert key == ECDSAKey(data=pub_blob(d / "ecdsa"))
    assert paramiko.ECDSAKey(data=cert_blob).public_blob.key_blob == key.public_blob.key_blob

    priv = ECDSAKey(filename=str(d / "ecdsa"))
    priv.load_certificate(str(cert_path))
    assert priv.public_blob == key.public_blob
    priv.load_certificate(cert_path.read_text())
    priv.load_certificate(Message(cert_blob))
    other = ECDSAKey(filename=str(d / "ecdsa_enc"), password="s3cret")
    with pytest.raises(ValueError, match="does not certify"):
        other.load_certificate(str(cert_path))
    with pytest.raises(ValueError, match="incompatible"):
        RSAKey(filename=str(d / "rsa")).load_certificate(str(cert_path))

    pk = gpkey.pkey_from_userauth("ecdsa-sha2-nistp256-cert-v01@openssh.com", cert_blob)
    assert isinstance(pk, ECDSAKey) and pk.public_blob == key.public_blob
    plain = gpkey.pkey_from_userauth("rsa-sha2-512", pub_blob(d / "rsa"))
    assert isinstance(plain, RSAKey) and plain.public_blob is None
    with pytest.raises(SSHException):
        gpkey.pkey_from_userauth("ssh-ed25519", pub_blob(d / "rsa"))
    assert gpkey.pkey_from_ssh_key(priv.ssh_key) == priv


def test_public_blob(d: Path) -> None:
    text = Path(f"{d / 'ed25519'}.pub").read_text()
    blob = PublicBlob.from_string(text)
    assert blob.key_type == "ssh-ed25519" and blob.comment == "ed25519"
    assert str(blob) == "ssh-ed25519 public key/certificate- ed25519"
    assert PublicBlob.from_file(f"{d / 'ed25519'}.pub") == blob
    assert PublicBlob.from_message(Message(blob.key_blob)) == blob
    assert blob != PublicBlob.from_string(Path(f"{d / 'rsa'}.pub").read_text())
    with pytest.raises(ValueError):
        PublicBlob.from_string("ssh-ed25519")
    with pytest.raises(ValueError):
        PublicBlob.from_string("ssh-rsa " + text.split()[1])


def test_submodules_import_in_any_order() -> None:
    for first in ("geossh.rsakey", "geossh.ecdsakey", "geossh.ed25519key", "geossh.pkey"):
        code = (
            f"import {first}\n"
            "from geossh.pkey import RSAKey, ECDSAKey, Ed25519Key, key_classes\n"
            "from geossh.rsakey import RSAKey as R\n"
            "assert R is RSAKey and key_classes == [RSAKey, Ed25519Key, ECDSAKey]\n"
        )
        root = str(Path(gpkey.__file__).parent.parent)
        env = {**os.environ, "PYTHONPATH": root}
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
