"""paramiko's ``Ed25519Key`` (``ssh-ed25519``, RFC 8709), on cryptography instead of PyNaCl."""

from __future__ import annotations

from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from geossh._facade.message import Message
from geossh._facade.pkey import PKey
from geossh.proto import keys as _keys


class Ed25519Key(PKey):
    """An Ed25519 key. Unlike paramiko's it can be generated and written, and
    one loaded from a private file verifies signatures."""

    name = "ssh-ed25519"

    def __init__(
        self,
        msg: Message | None = None,
        data: bytes | None = None,
        filename: str | None = None,
        password: str | bytes | None = None,
        file_obj: IO[Any] | None = None,
    ) -> None:
        self.public_blob = None
        if msg is not None or data is not None:
            self._load(msg, data)
        elif filename is not None or file_obj is not None:
            self._load(None, None, filename, password, file_obj)
        else:
            raise ValueError("need a key")

    @classmethod
    def generate(cls) -> Ed25519Key:
        """A new private Ed25519 key (geossh addition)."""
        return cls._from_ssh_key(_keys.generate(_keys.ED25519))

    def get_bits(self) -> int:
        """256, also for an empty key (as paramiko)."""
        return 256

    def can_verify(self) -> bool:
        """True if the public part is present."""
        return self._ssh_key is not None

    @property
    def verifying_key(self) -> ed25519.Ed25519PublicKey | None:
        """The cryptography public key (paramiko returns a PyNaCl VerifyKey)."""
        if self._ssh_key is None:
            return None
        pub = self._ssh_key.public_key
        assert isinstance(pub, ed25519.Ed25519PublicKey)
        return pub

    @property
    def private_key(self) -> ed25519.Ed25519PrivateKey | None:
        """The cryptography private key, or None for a public key."""
        priv = self.ssh_key.private_key
        return priv if isinstance(priv, ed25519.Ed25519PrivateKey) else None
