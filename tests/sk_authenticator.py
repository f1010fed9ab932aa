"""A software FIDO authenticator for tests: security-key user keys and their signatures.

Makes ``sk-ssh-ed25519@openssh.com`` and ``sk-ecdsa-sha2-nistp256@openssh.com``
keys (PROTOCOL.u2f) with ``cryptography`` and signs the way a hardware key
does: over ``SHA256(application) || flags || counter || SHA256(data)``.
``PKey`` makes it usable by paramiko's client as an identity (with a
certificate, too); ``certify`` has ``ssh-keygen -s`` sign a certificate for
the credential's public key (no hardware needed for that).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import subprocess
from pathlib import Path
from typing import Any

import paramiko
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ED25519 = "sk-ssh-ed25519@openssh.com"
ECDSA = "sk-ecdsa-sha2-nistp256@openssh.com"
PRESENT, VERIFIED = 0x01, 0x04


def _string(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return struct.pack(">I", len(raw)) + raw


def _mpint(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big")
    return _string(raw)


class Authenticator:
    """One credential: its public blob, and assertions with chosen flags."""

    def __init__(self, kind: str = ED25519, application: str = "ssh:") -> None:
        self.kind = kind
        self.application = application
        self.counter = 0
        if kind == ED25519:
            self._key: Any = ed25519.Ed25519PrivateKey.generate()
            raw = self._key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            self.blob = _string(kind) + _string(raw) + _string(application)
        else:
            self._key = ec.generate_private_key(ec.SECP256R1())
            point = self._key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            self.blob = _string(kind) + _string("nistp256") + _string(point) + _string(application)

    def assertion(self, data: bytes, flags: int = PRESENT) -> tuple[int, int, bytes]:
        """What a CTAP authenticator returns: flags, counter, raw signature (DER for ECDSA)."""
        self.counter += 1
        signed = (
            hashlib.sha256(self.application.encode()).digest()
            + bytes((flags,))
            + struct.pack(">I", self.counter)
            + hashlib.sha256(data).digest()
        )
        if self.kind == ED25519:
            return flags, self.counter, self._key.sign(signed)
        return flags, self.counter, self._key.sign(signed, ec.ECDSA(hashes.SHA256()))

    def sign(self, data: bytes, flags: int = PRESENT) -> bytes:
        """An SSH signature blob, as the authenticator and ssh-sk-helper make it."""
        flags, counter, sig = self.assertion(data, flags)
        if self.kind == ECDSA:
            r, s = decode_dss_signature(sig)
            sig = _mpint(r) + _mpint(s)
        return _string(self.kind) + _string(sig) + bytes((flags,)) + struct.pack(">I", counter)

    def openssh_line(self) -> str:
        return f"{self.kind} {base64.b64encode(self.blob).decode()}"


def certify(
    authenticator: Authenticator, ca: Path, directory: Path, *options: str, name: str = "sk"
) -> bytes:
    """A certificate blob from ``ssh-keygen -s ca -I <name>-id [options] <name>.pub``.

    ``options`` are further ssh-keygen arguments (``-n alice``, ``-O
    no-touch-required``, ``-V -5m:+1h`` …).
    """
    pub = directory / f"{name}.pub"
    pub.write_text(authenticator.openssh_line() + " test\n")
    command = ["ssh-keygen", "-q", "-s", str(ca), "-I", f"{name}-id", *options, str(pub)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return base64.b64decode((directory / f"{name}-cert.pub").read_text().split()[1])


class PKey(paramiko.PKey):
    """paramiko's client identity backed by an ``Authenticator`` (flags chosen per test)."""

    def __init__(
        self, authenticator: Authenticator, flags: int = PRESENT, certificate: bytes | None = None
    ) -> None:
        self.authenticator = authenticator
        self.flags = flags
        self.public_blob = None
        if certificate is not None:  # paramiko then offers the certificate's algorithm
            cert_type = authenticator.kind.replace("@", "-cert-v01@")
            self.public_blob = paramiko.PublicBlob(cert_type, certificate)

    def get_name(self) -> str:
        return self.authenticator.kind

    @property
    def algorithm_name(self) -> str:
        return "SK"

    def asbytes(self) -> bytes:
        return self.authenticator.blob

    def get_bits(self) -> int:
        return 256

    def can_sign(self) -> bool:
        return True

    def sign_ssh_data(self, data: bytes, algorithm: str | None = None) -> bytes:
        return self.authenticator.sign(data, self.flags)
