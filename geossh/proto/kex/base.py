"""Key-exchange plumbing shared by every method: context, base class, KDF.

Owns the server-side exchange-hash construction (RFC 4253 §8, RFC 5656 §4,
RFC 4419 §3) and key derivation (RFC 4253 §7.2). Methods subclass
``ServerKex`` and implement one handler per message number.

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from geossh.proto.errors import KexError, LocalProtocolError
from geossh.proto.wire import Reader, byte, string, u32_pack

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "HASHES",
    "HostKeySigner",
    "KexContext",
    "ServerKex",
    "derive_key",
]

#: Hash constructors by the ``hash_name`` a method declares.
HASHES: dict[str, Callable[[bytes], _Hash]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


class HostKeySigner(Protocol):
    """The host key as the key exchange needs it.

    ``public_blob`` is K_S (RFC 4253 §6.6); ``sign`` returns the whole SSH
    signature blob (``string alg-name || string sig``) for the host-key
    algorithm fixed by negotiation.
    """

    public_blob: bytes

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (the exchange hash H) and return the signature blob."""
        ...


@dataclass(frozen=True)
class KexContext:
    """Everything outside the method that enters the exchange hash.

    Versions are without CR LF; the KEXINIT payloads include message byte 20
    (RFC 4253 §8). ``moduli`` are (generator, prime) pairs for group exchange.
    """

    client_version: bytes
    server_version: bytes
    client_kexinit: bytes
    server_kexinit: bytes
    host_key: HostKeySigner
    moduli: Sequence[tuple[int, int]] = ()


class ServerKex(ABC):
    """The server's half of one key-exchange method.

    Theory of operation: the transport feeds each key-exchange message
    (numbers 30-49) to ``receive``, which returns the payloads to send.
    ``expected_messages`` says which numbers are acceptable next; anything
    else raises ``KexError``. After the final reply ``done`` is true and
    ``shared_secret`` (K, encoded exactly as hashed) and ``exchange_hash``
    (H) are set; no further message is accepted.
    """

    name: ClassVar[str]
    hash_name: ClassVar[str]
    #: Weak methods (SHA-1, 1024-bit) that the application must opt in to.
    legacy: ClassVar[bool] = False

    def __init__(self, ctx: KexContext) -> None:
        self.ctx = ctx
        self.done = False
        self.shared_secret = b""
        self.exchange_hash = b""
        self._expected: frozenset[int] = frozenset({30})

    def expected_messages(self) -> frozenset[int]:
        """Message numbers acceptable next (empty once done)."""
        return self._expected

    def receive(self, msg_type: int, payload: bytes) -> list[bytes]:
        """Handle one message (payload includes its message byte).

        Returns reply payloads to send, in order. Raises ``KexError`` for a
        message out of order or invalid values, ``RemoteProtocolError`` for a
        malformed encoding.
        """
        if msg_type not in self._expected:
            raise KexError(f"unexpected message {msg_type} during {self.name} key exchange")
        if not payload or payload[0] != msg_type:
            raise LocalProtocolError("payload does not start with its message number")
        return self._handle(msg_type, Reader(payload, 1))

    @abstractmethod
    def _handle(self, msg_type: int, reader: Reader) -> list[bytes]:
        """Process an expected message whose body starts at ``reader``."""

    def _finish(
        self, method_fields: bytes, server_field: bytes, k: bytes, reply_type: int
    ) -> list[bytes]:
        """Compute H, sign it and build the final reply.

        H = HASH(V_C || V_S || I_C || I_S || K_S || method fields || K)
        (RFC 4253 §8); the reply is ``byte reply_type || string K_S ||
        server_field || string signature``.
        """
        ctx = self.ctx
        k_s = ctx.host_key.public_blob
        fields = (ctx.client_version, ctx.server_version, ctx.client_kexinit, ctx.server_kexinit)
        parts = [piece for field in (*fields, k_s) for piece in (u32_pack(len(field)), field)]
        parts += (method_fields, k)
        h = HASHES[self.hash_name](b"".join(parts)).digest()  # one copy of the KEXINITs
        signature = ctx.host_key.sign(h)
        self.shared_secret = k
        self.exchange_hash = h
        self.done = True
        self._expected = frozenset()
        return [byte(reply_type) + string(k_s) + server_field + string(signature)]


def derive_key(
    hash_name: str,
    shared_secret: bytes,
    exchange_hash: bytes,
    letter: bytes,
    session_id: bytes,
    size: int,
) -> bytes:
    """Derive ``size`` bytes of key material (RFC 4253 §7.2).

    K1 = HASH(K || H || X || session_id); while more is needed,
    Kn = HASH(K || H || K1 || ... || Kn-1). ``shared_secret`` is K as
    encoded (mpint, or string for the hybrid methods); ``letter`` is X.
    """
    if len(letter) != 1 or size < 0:
        raise LocalProtocolError("derive_key needs a one-byte letter and a size >= 0")
    base = HASHES[hash_name](shared_secret)
    base.update(exchange_hash)
    first = base.copy()
    first.update(letter)
    first.update(session_id)
    out = first.digest()
    while len(out) < size:
        more = base.copy()
        more.update(out)
        out += more.digest()
    return out[:size]
