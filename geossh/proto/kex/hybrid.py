"""Post-quantum hybrid key exchange: a KEM combined with X25519.

Shared by mlkem768x25519-sha256 (draft-ietf-sshm-mlkem-hybrid-kex, as in
OpenSSH 9.9) and sntrup761x25519-sha512 (sntrup.py; OpenSSH 9.0-9.8's
default). The client sends SSH_MSG_KEX_HYBRID_INIT (30) with C_INIT = KEM
public key || X25519 public value (32). The server encapsulates to the KEM
key and runs X25519, then replies SSH_MSG_KEX_HYBRID_REPLY (31) with K_S,
S_REPLY = KEM ciphertext || X25519 public value (32), and the signature.
K = HASH(K_PQ || K_CL), encoded as an SSH *string* both in
H = HASH(V_C || V_S || I_C || I_S || K_S || C_INIT || S_REPLY || K) and in
key derivation (OpenSSH kexmlkem768x25519.c, kexsntrup761x25519.c).

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey

from geossh.proto.constants import KEX_HYBRID_REPLY
from geossh.proto.errors import KexError
from geossh.proto.kex.base import HASHES, ServerKex
from geossh.proto.kex.ecdh import ephemeral_x25519, x25519_shared_secret
from geossh.proto.sodium import X25519_SIZE
from geossh.proto.wire import Reader, string

__all__ = ["MLKEM_AVAILABLE", "HybridKemKex", "MLKEM768X25519Kex"]

MLKEM768_PUBLIC_SIZE = 1184
MLKEM768_CIPHERTEXT_SIZE = 1088
C_INIT_SIZE = MLKEM768_PUBLIC_SIZE + X25519_SIZE
_MAX_INIT = 4096  # read bound; the exact size is checked after


class HybridKemKex(ServerKex):
    """The server side of a KEM x X25519 hybrid; subclasses supply the KEM.

    ``_ephemeral`` (a 32-byte X25519 private scalar) may be preset
    (known-answer tests); otherwise the key is generated in ``receive``.
    """

    #: Size of the client's KEM public key and of our ciphertext, in bytes.
    kem_public_size: ClassVar[int]
    kem_ciphertext_size: ClassVar[int]

    _ephemeral: bytes | None = None

    @abstractmethod
    def _encapsulate(self, public: bytes) -> tuple[bytes, bytes]:
        """(shared secret, ciphertext) for the client's KEM key; ``KexError`` if invalid."""

    def _handle(self, msg_type: int, reader: Reader) -> list[bytes]:
        c_init = reader.string(_MAX_INIT)
        reader.check_end()
        want = self.kem_public_size + X25519_SIZE
        if len(c_init) != want:
            raise KexError(f"{self.name}: C_INIT must be {want} bytes, got {len(c_init)}")
        k_pq, ciphertext = self._encapsulate(c_init[: self.kem_public_size])
        if len(ciphertext) != self.kem_ciphertext_size:  # a broken KEM library
            raise KexError(f"{self.name}: KEM ciphertext has the wrong size")
        private, public = ephemeral_x25519(self._ephemeral)
        self._ephemeral = None
        k_cl = x25519_shared_secret(private, c_init[self.kem_public_size :])
        k = string(HASHES[self.hash_name](k_pq + k_cl).digest())
        s_reply = string(ciphertext + public)
        return self._finish(string(c_init) + s_reply, s_reply, k, KEX_HYBRID_REPLY)


def _backend_has_mlkem() -> bool:
    """Whether this cryptography build can do ML-KEM-768 (OpenSSL 3.5+ or AWS-LC)."""
    try:
        MLKEM768PrivateKey.generate()
    except UnsupportedAlgorithm:
        return False
    return True


#: False with a cryptography linked to an OpenSSL without ML-KEM: the method
#: is then not registered, so it is never offered.
MLKEM_AVAILABLE = _backend_has_mlkem()


class MLKEM768X25519Kex(HybridKemKex):
    """mlkem768x25519-sha256 (draft-ietf-sshm-mlkem-hybrid-kex §2.4)."""

    name = "mlkem768x25519-sha256"
    hash_name = "sha256"
    kem_public_size = MLKEM768_PUBLIC_SIZE
    kem_ciphertext_size = MLKEM768_CIPHERTEXT_SIZE

    def _encapsulate(self, public: bytes) -> tuple[bytes, bytes]:
        try:
            # FIPS 203 §7.2 encapsulation-key check happens in from_public_bytes.
            key = MLKEM768PublicKey.from_public_bytes(public)
        except ValueError:
            raise KexError("invalid ML-KEM-768 encapsulation key") from None
        return key.encapsulate()
