"""paramiko's ``RSAKey`` (``ssh-rsa`` keys; rsa-sha2-256/512 signatures, RFC 8332)."""

from __future__ import annotations

from typing import IO, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from geossh._facade.message import Message
from geossh._facade.pkey import PKey
from geossh.errors import SSHException
from geossh.proto import keys as _keys


class RSAKey(PKey):
    """An RSA key that can sign and verify SSH data.

    Signs with ``rsa-sha2-512`` unless told otherwise (``ssh-rsa``/SHA-1 only
    on explicit request); ``verify_ssh_sig`` accepts the SHA-2 algorithms, as
    paramiko 5.x does.
    """

    name = "ssh-rsa"
    _PEM_TAG = "RSA"
    HASHES: dict[str, type[hashes.HashAlgorithm]] = {
        "rsa-sha2-256": hashes.SHA256,
        "rsa-sha2-256-cert-v01@openssh.com": hashes.SHA256,
        "rsa-sha2-512": hashes.SHA512,
        "rsa-sha2-512-cert-v01@openssh.com": hashes.SHA512,
    }

    def __init__(
        self,
        msg: Message | None = None,
        data: bytes | None = None,
        filename: str | None = None,
        password: str | bytes | None = None,
        key: rsa.RSAPrivateKey | rsa.RSAPublicKey | None = None,
        file_obj: IO[Any] | None = None,
    ) -> None:
        self.public_blob = None
        if file_obj is None and filename is None and key is not None:
            self._set(_keys.SSHKey(key))
        elif not self._load(msg, data, filename, password, file_obj):
            raise SSHException("Key object may not be empty")

    @classmethod
    def identifiers(cls) -> list[str]:
        """Every name an RSA key is offered under (plain, SHA-2, certificates)."""
        return [*cls.HASHES, "ssh-rsa", "ssh-rsa-cert-v01@openssh.com"]

    @property
    def key(self) -> rsa.RSAPrivateKey | rsa.RSAPublicKey:
        """The cryptography key object (private if present)."""
        return self.private_key or self.ssh_key.public_key  # type: ignore[return-value]

    @property
    def size(self) -> int:
        """Modulus size in bits."""
        return self.ssh_key.bits

    @property
    def private_key(self) -> rsa.RSAPrivateKey | None:
        """The cryptography private key, or None for a public key."""
        priv = self.ssh_key.private_key
        return priv if isinstance(priv, rsa.RSAPrivateKey) else None

    @property
    def public_numbers(self) -> rsa.RSAPublicNumbers:
        """The public ``(e, n)`` numbers."""
        pub = self.ssh_key.public_key
        assert isinstance(pub, rsa.RSAPublicKey)
        return pub.public_numbers()

    def __str__(self) -> str:
        return self.asbytes().decode("utf8", errors="ignore")

    def _sign_algorithm(self, algorithm: str | None) -> str | None:
        return algorithm or "rsa-sha2-512"

    def _verify_algorithms(self) -> list[str]:
        return list(self.HASHES)

    @staticmethod
    def generate(bits: int, progress_func: object = None) -> RSAKey:
        """A new private RSA key (e = 65537)."""
        return RSAKey(key=rsa.generate_private_key(public_exponent=65537, key_size=bits))
