"""Server-side key exchange: method registry, exchange hash, key derivation.

``create_server_kex(name, ctx)`` builds the negotiated method; the
transport feeds it messages 30-49 via ``receive`` and, once ``done``, reads
``shared_secret`` (K as encoded) and ``exchange_hash`` (H) for
``derive_key`` (RFC 4253 §7.2). Methods marked ``legacy`` (SHA-1 or
1024-bit) are registered but must be enabled by the application. The
post-quantum hybrids are registered only where their KEM loads (ML-KEM from
cryptography's backend, sntrup761 from the optional ``pqcrypto``).

Pure core: must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

from geossh.proto.errors import LocalProtocolError
from geossh.proto.kex.base import HASHES, HostKeySigner, KexContext, ServerKex, derive_key
from geossh.proto.kex.dh import (
    FALLBACK_MODULI,
    DHGroup1Sha1Kex,
    DHGroup14Sha1Kex,
    DHGroup14Sha256Kex,
    DHGroup16Sha512Kex,
    DHGroup18Sha512Kex,
)
from geossh.proto.kex.ecdh import (
    Curve25519Kex,
    Curve25519LibsshKex,
    EcdhNistp256Kex,
    EcdhNistp384Kex,
    EcdhNistp521Kex,
)
from geossh.proto.kex.gex import DHGexSha1Kex, DHGexSha256Kex
from geossh.proto.kex.hybrid import MLKEM_AVAILABLE, MLKEM768X25519Kex
from geossh.proto.kex.moduli import load_moduli
from geossh.proto.kex.sntrup import (
    SNTRUP_AVAILABLE,
    Sntrup761X25519Kex,
    Sntrup761X25519OpenSSHKex,
)

__all__ = [
    "FALLBACK_MODULI",
    "HASHES",
    "KEX_METHODS",
    "HostKeySigner",
    "KexContext",
    "ServerKex",
    "create_server_kex",
    "derive_key",
    "load_moduli",
]

#: Every implemented method by its SSH name, strongest first.
KEX_METHODS: dict[str, type[ServerKex]] = {
    cls.name: cls
    for cls in (
        *((MLKEM768X25519Kex,) if MLKEM_AVAILABLE else ()),
        *((Sntrup761X25519Kex, Sntrup761X25519OpenSSHKex) if SNTRUP_AVAILABLE else ()),
        Curve25519Kex,
        Curve25519LibsshKex,
        EcdhNistp256Kex,
        EcdhNistp384Kex,
        EcdhNistp521Kex,
        DHGroup16Sha512Kex,
        DHGroup18Sha512Kex,
        DHGroup14Sha256Kex,
        DHGexSha256Kex,
        DHGroup14Sha1Kex,
        DHGexSha1Kex,
        DHGroup1Sha1Kex,
    )
}


def create_server_kex(name: str, ctx: KexContext) -> ServerKex:
    """Instantiate the server side of key-exchange method ``name``."""
    try:
        cls = KEX_METHODS[name]
    except KeyError:
        raise LocalProtocolError(f"unknown key exchange method {name!r}") from None
    return cls(ctx)
