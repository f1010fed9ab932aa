"""Algorithm defaults, KEXINIT encoding and negotiation (RFC 4253 §7.1).

Owns the preference lists (SECURITY.md, "Algorithms"), strict-kex and
ext-info markers, and the choice of one algorithm per category. The client's
preference wins: the first client entry the server also supports.
Pure: imports no I/O.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from geossh.proto import wire
from geossh.proto.cipher import CIPHERS, MACS
from geossh.proto.compression import COMPRESSIONS
from geossh.proto.constants import MAX_NAME_LIST, MSG
from geossh.proto.errors import IncompatiblePeer
from geossh.proto.kex import KEX_METHODS

STRICT_KEX_SERVER = "kex-strict-s-v00@openssh.com"
STRICT_KEX_CLIENT = "kex-strict-c-v00@openssh.com"
EXT_INFO_CLIENT = "ext-info-c"
EXT_INFO_SERVER = "ext-info-s"
MARKERS = frozenset({STRICT_KEX_SERVER, STRICT_KEX_CLIENT, EXT_INFO_CLIENT, EXT_INFO_SERVER})

DEFAULT_KEX = (
    "mlkem768x25519-sha256",
    "sntrup761x25519-sha512",  # offered only with pqcrypto (geossh[pq])
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
)
GEX_KEX = ("diffie-hellman-group-exchange-sha256",)
LEGACY_KEX = ("diffie-hellman-group14-sha1", "diffie-hellman-group1-sha1")

DEFAULT_HOST_KEY_ALGORITHMS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)
LEGACY_HOST_KEY_ALGORITHMS = ("ssh-rsa",)
#: User-key algorithms accepted (and named in server-sig-algs): the host-key
#: ones plus FIDO security keys (OpenSSH PROTOCOL.u2f), as sshd.
DEFAULT_USER_KEY_ALGORITHMS = (
    *DEFAULT_HOST_KEY_ALGORITHMS,
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)

DEFAULT_CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
LEGACY_CIPHERS = ("aes128-cbc", "aes192-cbc", "aes256-cbc", "3des-cbc")

DEFAULT_MACS = (
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
)
LEGACY_MACS = (
    "hmac-sha1-etm@openssh.com",
    "hmac-sha1",
    "hmac-sha1-96",
    "hmac-md5",
    "hmac-md5-96",
)

DEFAULT_COMPRESSION = ("none",)
ALL_COMPRESSION = ("none", "zlib@openssh.com", "zlib")

# Which plain key type signs for each host-key / signature algorithm.
KEY_TYPE_FOR_ALGORITHM = {
    "ssh-ed25519": "ssh-ed25519",
    "ecdsa-sha2-nistp256": "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384": "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521": "ecdsa-sha2-nistp521",
    "rsa-sha2-512": "ssh-rsa",
    "rsa-sha2-256": "ssh-rsa",
    "ssh-rsa": "ssh-rsa",
}


@dataclass(frozen=True)
class KexInit:
    """A decoded SSH_MSG_KEXINIT (RFC 4253 §7.1)."""

    cookie: bytes
    kex: list[str]
    host_key: list[str]
    ciphers_c2s: list[str]
    ciphers_s2c: list[str]
    macs_c2s: list[str]
    macs_s2c: list[str]
    compression_c2s: list[str]
    compression_s2c: list[str]
    languages_c2s: list[str]
    languages_s2c: list[str]
    first_kex_follows: bool

    @classmethod
    def decode(cls, payload: bytes) -> KexInit:
        """Decode a KEXINIT payload (including its message byte)."""
        reader = wire.Reader(payload, 1)
        cookie = reader.raw(16)
        name_list = reader.name_list
        kex, host_key, c_c2s, c_s2c, m_c2s, m_s2c, z_c2s, z_s2c, l_c2s, l_s2c = [
            name_list(MAX_NAME_LIST) for _ in range(10)
        ]
        follows = reader.boolean()
        reader.u32()  # reserved
        reader.check_end()
        return cls(
            cookie, kex, host_key, c_c2s, c_s2c, m_c2s, m_s2c, z_c2s, z_s2c, l_c2s, l_s2c, follows
        )

    def name_lists(self) -> tuple[list[str], ...]:
        """The ten name-lists, in wire order."""
        return (
            self.kex, self.host_key, self.ciphers_c2s, self.ciphers_s2c,
            self.macs_c2s, self.macs_s2c, self.compression_c2s,
            self.compression_s2c, self.languages_c2s, self.languages_s2c,
        )  # fmt: skip

    def encode(self) -> bytes:
        """Encode as a KEXINIT payload."""
        lists = self.name_lists()
        encoded = _encoded_lists(lists)
        if encoded is None:
            encoded = b"".join(wire.name_list(names) for names in lists)
        return b"".join(
            (
                bytes((MSG.KEXINIT,)),
                self.cookie,
                encoded,
                wire.boolean(self.first_kex_follows),
                wire.u32(0),
            )
        )


@dataclass(frozen=True)
class ServerPreferences:
    """The algorithms this server offers, strongest first."""

    kex: tuple[str, ...] = DEFAULT_KEX
    host_key: tuple[str, ...] = DEFAULT_HOST_KEY_ALGORITHMS
    ciphers: tuple[str, ...] = DEFAULT_CIPHERS
    macs: tuple[str, ...] = DEFAULT_MACS
    compression: tuple[str, ...] = DEFAULT_COMPRESSION
    strict_kex: bool = True

    def build_kexinit(self, available_key_types: set[str], *, initial: bool) -> KexInit:
        """Our KEXINIT, offering only host-key algorithms we hold a key for.

        The strict-kex marker goes only into the first KEXINIT
        (OpenSSH PROTOCOL §1.10). Only the cookie is new each time: the
        name-lists (shared between calls; never modify them) and their
        encoding are built once per preferences, key types and ``initial``.
        """
        key = (self, frozenset(available_key_types), initial)
        template = _BUILT.get(key)
        if template is None:
            template = self._build_template(available_key_types, initial=initial)
            _remember(_BUILT, key, template)
        return _with_cookie(template, os.urandom(16))

    def _build_template(self, available_key_types: set[str], *, initial: bool) -> KexInit:
        host_keys = [
            alg for alg in self.host_key if KEY_TYPE_FOR_ALGORITHM.get(alg) in available_key_types
        ]
        kex = list(self.kex)
        if self.strict_kex and initial:
            kex.append(STRICT_KEX_SERVER)
        return _shared(KexInit(
            cookie=b"",
            kex=kex,
            host_key=host_keys,
            ciphers_c2s=list(self.ciphers),
            ciphers_s2c=list(self.ciphers),
            macs_c2s=list(self.macs),
            macs_s2c=list(self.macs),
            compression_c2s=list(self.compression),
            compression_s2c=list(self.compression),
            languages_c2s=[],
            languages_s2c=[],
            first_kex_follows=False,
        ))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The outcome of one algorithm negotiation."""

    kex: str
    host_key: str
    cipher_c2s: str
    cipher_s2c: str
    mac_c2s: str
    mac_s2c: str
    compression_c2s: str
    compression_s2c: str
    strict_kex: bool
    client_ext_info: bool
    guess_was_right: bool


def _choose(category: str, client: list[str], server: list[str]) -> str:
    for name in client:
        if name in server and name not in MARKERS:
            return server[server.index(name)]  # ours: shared by every connection
    raise IncompatiblePeer(f"Incompatible ssh peer (no acceptable {category})")


def _first(names: list[str]) -> str | None:
    """The most preferred real algorithm of a list (markers skipped)."""
    return next((name for name in names if name not in MARKERS), None)


def negotiate(client: KexInit, server: KexInit, aead_ciphers: set[str]) -> Negotiated:
    """Pick one algorithm per category, client preference first (RFC 4253 §7.1)."""
    kex = _choose("kex algorithm", client.kex, server.kex)
    host_key = _choose("host key", client.host_key, server.host_key)
    c2s = _choose("cipher", client.ciphers_c2s, server.ciphers_c2s)
    s2c = _choose("cipher", client.ciphers_s2c, server.ciphers_s2c)
    mac_c2s = "" if c2s in aead_ciphers else _choose("mac", client.macs_c2s, server.macs_c2s)
    mac_s2c = "" if s2c in aead_ciphers else _choose("mac", client.macs_s2c, server.macs_s2c)
    comp_c2s = _choose("compression", client.compression_c2s, server.compression_c2s)
    comp_s2c = _choose("compression", client.compression_s2c, server.compression_s2c)
    # RFC 4253 §7.1: a guessed first kex packet is right only when both sides
    # prefer the same kex and host-key algorithms (OpenSSH proposals_match).
    guess_right = _first(client.kex) == _first(server.kex) == kex and (
        _first(client.host_key) == _first(server.host_key) == host_key
    )
    return Negotiated(
        kex=kex,
        host_key=host_key,
        cipher_c2s=c2s,
        cipher_s2c=s2c,
        mac_c2s=mac_c2s,
        mac_s2c=mac_s2c,
        compression_c2s=comp_c2s,
        compression_s2c=comp_s2c,
        strict_kex=STRICT_KEX_SERVER in server.kex and STRICT_KEX_CLIENT in client.kex,
        client_ext_info=EXT_INFO_CLIENT in client.kex,
        guess_was_right=guess_right,
    )


def decode_kexinit(payload: bytes) -> KexInit:
    """``KexInit.decode``, remembered by the payload after its cookie.

    A client program sends the same lists on every connection: a repeat
    shares the first decode's name-lists (never modified) and gets its own
    cookie. Only payloads that decoded are kept, at most ``_CACHE_LIMIT``; a
    malformed one raises as ``KexInit.decode`` does.
    """
    tail = payload[17:]
    hit = _DECODED.get(tail)
    if hit is None:
        hit = KexInit.decode(payload)
        _remember(_DECODED, tail, hit)
        return hit
    return _with_cookie(hit, payload[1:17], hit.first_kex_follows)


def negotiate_kexinits(
    client: KexInit,
    client_payload: bytes,
    server: KexInit,
    server_payload: bytes,
    aead_ciphers: frozenset[str],
) -> Negotiated:
    """``negotiate``, remembered by both payloads after their cookies.

    The rest of a payload (the lists, first_kex_follows, the reserved word)
    is all that negotiation reads. Only successful negotiations are kept,
    at most ``_CACHE_LIMIT``.
    """
    key = (client_payload[17:], server_payload[17:], aead_ciphers)
    hit = _NEGOTIATED.get(key)
    if hit is None:
        hit = negotiate(client, server, set(aead_ciphers))
        _remember(_NEGOTIATED, key, hit)
    return hit


def server_kexinit(
    preferences: ServerPreferences, key_types: frozenset[str], *, initial: bool, have_moduli: bool
) -> tuple[KexInit, bytes]:
    """What we offer a client: ``(the offer, its KEXINIT payload)``.

    ``offerable(preferences.build_kexinit(...))``, built once per
    arguments; only the payload's cookie is new each time (the offer's own
    cookie is the template's: negotiation reads only the name-lists).
    """
    key = (preferences, key_types, initial, have_moduli)
    hit = _TEMPLATES.get(key)
    if hit is None:
        offer = offerable(preferences.build_kexinit(set(key_types), initial=initial), have_moduli)
        hit = (offer, offer.encode()[17:])  # after the message number and the cookie
        _remember(_TEMPLATES, key, hit)
    offer, tail = hit
    return offer, b"".join((_KEXINIT_BYTE, os.urandom(16), tail))


def offerable(kexinit: KexInit, have_moduli: bool) -> KexInit:
    """Drop names we cannot run, so negotiation can only pick what we implement.

    Group exchange needs moduli; markers (strict kex) pass through.
    """
    lists = kexinit.name_lists()
    key = (tuple(map(id, lists)), have_moduli)
    hit = _OFFERED.get(key)
    if hit is not None and _same_lists(hit[0], lists):
        if _same_lists(hit[1].name_lists(), lists):
            return kexinit  # nothing to drop
        return _with_cookie(hit[1], kexinit.cookie, kexinit.first_kex_follows)
    result = _offerable(kexinit, have_moduli)
    if result.name_lists() == lists:
        result = kexinit  # keep the (shared) lists
    if _encoded_lists(lists) is not None:  # built by ``build_kexinit``: worth remembering
        _remember(_OFFERED, key, (lists, _shared(result)))
    return result


def _offerable(kexinit: KexInit, have_moduli: bool) -> KexInit:
    kex = [
        name
        for name in kexinit.kex
        if name in MARKERS or (name in KEX_METHODS and (name not in GEX_KEX or have_moduli))
    ]
    return replace(
        kexinit,
        kex=kex,
        ciphers_c2s=[name for name in kexinit.ciphers_c2s if name in CIPHERS],
        ciphers_s2c=[name for name in kexinit.ciphers_s2c if name in CIPHERS],
        macs_c2s=[name for name in kexinit.macs_c2s if name in MACS],
        macs_s2c=[name for name in kexinit.macs_s2c if name in MACS],
        compression_c2s=[name for name in kexinit.compression_c2s if name in COMPRESSIONS],
        compression_s2c=[name for name in kexinit.compression_s2c if name in COMPRESSIONS],
    )


# -- caches: the same server offers the same lists to every client ----------------
_CACHE_LIMIT = 64
_KEXINIT_BYTE = bytes((MSG.KEXINIT,))
_TEMPLATES: dict[tuple[ServerPreferences, frozenset[str], bool, bool], tuple[KexInit, bytes]] = {}
_BUILT: dict[tuple[ServerPreferences, frozenset[str], bool], KexInit] = {}
_OFFERED: dict[tuple[tuple[int, ...], bool], tuple[tuple[list[str], ...], KexInit]] = {}
_DECODED: dict[bytes, KexInit] = {}
_NEGOTIATED: dict[tuple[bytes, bytes, frozenset[str]], Negotiated] = {}
# ids of name-lists shared by cached KexInits -> (those lists, kept alive here
# so that the ids stay unique; their wire encoding).
_SHARED_BY_ID: dict[tuple[int, ...], tuple[tuple[list[str], ...], bytes]] = {}


def _remember(cache: dict, key: object, value: object) -> None:  # type: ignore[type-arg]
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


def _same_lists(a: tuple[list[str], ...], b: tuple[list[str], ...]) -> bool:
    return all(x is y for x, y in zip(a, b, strict=True))


def _shared(kexinit: KexInit) -> KexInit:
    """Register ``kexinit``'s lists as shared (never modified) and encode them once."""
    lists = kexinit.name_lists()
    ident = tuple(map(id, lists))
    if ident not in _SHARED_BY_ID:
        if len(_SHARED_BY_ID) >= 4 * _CACHE_LIMIT:
            _SHARED_BY_ID.clear()
        encoded = b"".join(wire.name_list(names) for names in lists)
        _SHARED_BY_ID[ident] = (lists, encoded)
    return kexinit


def _encoded_lists(lists: tuple[list[str], ...]) -> bytes | None:
    hit = _SHARED_BY_ID.get(tuple(map(id, lists)))
    if hit is not None and _same_lists(hit[0], lists):
        return hit[1]
    return None


def _with_cookie(template: KexInit, cookie: bytes, first_kex_follows: bool = False) -> KexInit:
    t = template
    return KexInit(
        cookie, t.kex, t.host_key, t.ciphers_c2s, t.ciphers_s2c, t.macs_c2s, t.macs_s2c,
        t.compression_c2s, t.compression_s2c, t.languages_c2s, t.languages_s2c, first_kex_follows,
    )  # fmt: skip
