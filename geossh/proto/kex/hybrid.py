"""Post-quantum hybrid key exchange: mlkem768x25519-sha256.

draft-ietf-sshm-mlkem-hybrid-kex (as in OpenSSH 9.9): the client sends
SSH_MSG_KEX_HYBRID_INIT (30) with C_INIT = ML-KEM-768 encapsulation key
(1184 bytes) || X25519 public value (32). The server encapsulates to the
ML-KEM key and runs X25519, then replies SSH_MSG_KEX_HYBRID_REPLY (31) with
K_S, S_REPLY = ML-KEM ciphertext (1088) || X25519 public value (32), and the
signature. K = SHA-256(K_PQ || K_CL), encoded as an SSH *string* both in
H = HASH(V_C || V_S || I_C || I_S || K_S || C_INIT || S_REPLY || K) and in
key derivation.

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from geossh.errors import KexError
from geossh.proto.constants import KEX_HYBRID_REPLY
from geossh.proto.kex.base import ServerKex
from geossh.proto.kex.ecdh import X25519_SIZE, x25519_shared_secret
from geossh.proto.wire import Reader, string

__all__ = ["MLKEM_AVAILABLE", "MLKEM768X25519Kex"]

MLKEM768_PUBLIC_SIZE = 1184
MLKEM768_CIPHERTEXT_SIZE = 1088
C_INIT_SIZE = MLKEM768_PUBLIC_SIZE + X25519_SIZE
_MAX_INIT = 4096  # read bound; the exact size is checked after


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


class MLKEM768X25519Kex(ServerKex):
    """mlkem768x25519-sha256 (draft-ietf-sshm-mlkem-hybrid-kex §2.4)."""

    name = "mlkem768x25519-sha256"
    hash_name = "sha256"

    def _handle(self, msg_type: int, reader: Reader) -> list[bytes]:
        c_init = reader.string(_MAX_INIT)
        reader.check_end()
        if len(c_init) != C_INIT_SIZE:
            raise KexError(f"hybrid C_INIT must be {C_INIT_SIZE} bytes, got {len(c_init)}")
        try:
            # FIPS 203 §7.2 encapsulation-key check happens in from_public_bytes.
            mlkem_pub = MLKEM768PublicKey.from_public_bytes(c_init[:MLKEM768_PUBLIC_SIZE])
        except ValueError:
            raise KexError("invalid ML-KEM-768 encapsulation key") from None
        k_pq, ciphertext = mlkem_pub.encapsulate()
        private = X25519PrivateKey.generate()
        k_cl = x25519_shared_secret(private, c_init[MLKEM768_PUBLIC_SIZE:])
        k = string(hashlib.sha256(k_pq + k_cl).digest())
        s_reply = string(ciphertext + private.public_key().public_bytes_raw())
        return self._finish(string(c_init) + s_reply, s_reply, k, KEX_HYBRID_REPLY)
