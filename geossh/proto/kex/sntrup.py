"""sntrup761x25519-sha512 (and its @openssh.com name) over the optional ``pqcrypto``.

draft-ietf-sshm-ntruprime-ssh; OpenSSH 9.0-9.8's preferred exchange
(kexsntrup761x25519.c). The hybrid structure is ``HybridKemKex``'s:
C_INIT = sntrup761 public key (1158 bytes) || X25519 (32); S_REPLY =
ciphertext (1039) || X25519 (32); K = string(SHA-512(K_PQ || K_CL)).

Streamlined NTRU Prime has no implementation in cryptography, so it comes
from PyPI's ``pqcrypto`` (>= 1.0, ``pip install geossh[pq]``). Without it,
or with an API or sizes other than expected, ``SNTRUP761`` is None and the
methods are not registered: never offered, and no error.

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

from types import ModuleType

from geossh.proto.errors import KexError
from geossh.proto.kex.hybrid import HybridKemKex

__all__ = ["SNTRUP761", "SNTRUP_AVAILABLE", "Sntrup761X25519Kex", "Sntrup761X25519OpenSSHKex"]

SNTRUP761_PUBLIC_SIZE = 1158
SNTRUP761_CIPHERTEXT_SIZE = 1039
SNTRUP761_SHARED_SIZE = 32


def load_sntrup761() -> ModuleType | None:
    """pqcrypto's sntrup761 module if it imports and has the expected API and sizes."""
    try:
        from pqcrypto.kem import sntrup_761  # type: ignore[import-not-found, unused-ignore]
    except Exception:  # absent, or a binary wheel that fails to load
        return None
    module: ModuleType = sntrup_761
    sizes = (
        getattr(module, "PUBLIC_KEY_SIZE", None),
        getattr(module, "CIPHERTEXT_SIZE", None),
        getattr(module, "SHARED_SECRET_SIZE", None),
    )
    if sizes != (SNTRUP761_PUBLIC_SIZE, SNTRUP761_CIPHERTEXT_SIZE, SNTRUP761_SHARED_SIZE):
        return None
    if not callable(getattr(module, "encaps", None)):
        return None
    return module


#: pqcrypto's ``sntrup_761`` module, or None where it cannot be used.
SNTRUP761 = load_sntrup761()
SNTRUP_AVAILABLE = SNTRUP761 is not None


class Sntrup761X25519Kex(HybridKemKex):
    """sntrup761x25519-sha512 (draft-ietf-sshm-ntruprime-ssh)."""

    name = "sntrup761x25519-sha512"
    hash_name = "sha512"
    kem_public_size = SNTRUP761_PUBLIC_SIZE
    kem_ciphertext_size = SNTRUP761_CIPHERTEXT_SIZE

    def _encapsulate(self, public: bytes) -> tuple[bytes, bytes]:
        # Every 1158-byte string decodes to some key (values are reduced mod q,
        # as in OpenSSH), so only a library failure lands here.
        if SNTRUP761 is None:
            raise KexError(f"{self.name}: pqcrypto is not available")
        try:
            ciphertext, shared = SNTRUP761.encaps(public)
        except (ValueError, TypeError) as exc:
            raise KexError(f"{self.name}: encapsulation failed: {exc}") from None
        if len(shared) != SNTRUP761_SHARED_SIZE:
            raise KexError(f"{self.name}: KEM shared secret has the wrong size")
        return bytes(shared), bytes(ciphertext)


class Sntrup761X25519OpenSSHKex(Sntrup761X25519Kex):
    """sntrup761x25519-sha512@openssh.com: the pre-IANA name, what OpenSSH 9.0-9.8 send."""

    name = "sntrup761x25519-sha512@openssh.com"
