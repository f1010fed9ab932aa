"""SSH public-key algorithms: parse, load, generate, sign, verify, fingerprint.

Owns the key layer of the pure core: ``SSHKey`` wraps one cryptography key
object (Ed25519, ECDSA P-256/384/521 or RSA) and speaks the SSH wire forms
(RFC 4253 §6.6, RFC 5656 §3, RFC 8332, RFC 8709). Parsing of key files and
blobs is delegated to cryptography; this module adds the SSH framing, the
algorithm rules and strict error handling: every malformed or unsupported
input becomes ``KeyParseError``. OpenSSH certificates live in
``geossh.proto._certs`` and are re-exported here (import them from here).

Must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from geossh.proto import sodium, wire
from geossh.proto.errors import PasswordRequiredException, RemoteProtocolError, SSHException

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
_PRIVATE_CLASSES = (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)
_PUBLIC_CLASSES = (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey, rsa.RSAPublicKey)

ED25519 = "ssh-ed25519"
RSA = "ssh-rsa"
ECDSA_P256 = "ecdsa-sha2-nistp256"
ECDSA_P384 = "ecdsa-sha2-nistp384"
ECDSA_P521 = "ecdsa-sha2-nistp521"
KEY_TYPES: tuple[str, ...] = (ED25519, ECDSA_P256, ECDSA_P384, ECDSA_P521, RSA)
CERT_SUFFIX = "-cert-v01@openssh.com"
# FIDO/U2F security keys (OpenSSH PROTOCOL.u2f): user keys only.
SK_ED25519 = "sk-ssh-ed25519@openssh.com"
SK_ECDSA = "sk-ecdsa-sha2-nistp256@openssh.com"
SK_KEY_TYPES: tuple[str, ...] = (SK_ED25519, SK_ECDSA)
# Their certificates (PROTOCOL.certkeys): the suffix goes before "@openssh.com".
SK_CERT_TYPES: dict[str, str] = {
    "sk-ssh-ed25519-cert-v01@openssh.com": SK_ED25519,
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": SK_ECDSA,
}
SK_USER_PRESENT = 0x01  # flags bit: the authenticator was touched
SK_USER_VERIFIED = 0x04  # flags bit: PIN or biometric verified
MAX_SK_APPLICATION = 256

RSA_MIN_BITS = 1024  # OpenSSH SSH_RSA_MINIMUM_MODULUS_SIZE
RSA_MAX_BITS = 16384  # OpenSSH SSHBUF_MAX_BIGNUM * 8
# Largest RSA public exponent, in bits: OpenSSL's OPENSSL_RSA_MAX_PUBEXP_BITS,
# which OpenSSL (and so OpenSSH) enforces for moduli over 3072 bits; here for
# every size, so that a huge exponent cannot make each verify ~100x dearer.
RSA_MAX_E_BITS = 64
MAX_TYPE_NAME = 64  # longest algorithm name we will read out of a blob

# Hash per RSA signature algorithm (RFC 8332 §3; ssh-rsa is SHA-1, RFC 4253 §6.6).
_RSA_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "rsa-sha2-512": hashes.SHA512,
    "rsa-sha2-256": hashes.SHA256,
    "ssh-rsa": hashes.SHA1,
}
# Curve, curve name and hash per ECDSA key type (RFC 5656 §6.2.1).
_ECDSA: dict[str, tuple[type[ec.EllipticCurve], type[hashes.HashAlgorithm]]] = {
    ECDSA_P256: (ec.SECP256R1, hashes.SHA256),
    ECDSA_P384: (ec.SECP384R1, hashes.SHA384),
    ECDSA_P521: (ec.SECP521R1, hashes.SHA512),
}
_CURVE_TO_TYPE = {"secp256r1": ECDSA_P256, "secp384r1": ECDSA_P384, "secp521r1": ECDSA_P521}


def _signature_algorithms() -> dict[str, str]:
    plain = {ED25519: ED25519, **{name: name for name in _ECDSA}}
    plain.update({alg: RSA for alg in _RSA_HASHES})
    certs = {alg + CERT_SUFFIX: key_type for alg, key_type in plain.items()}
    security_keys = {name: name for name in SK_KEY_TYPES}
    return {**plain, **certs, **security_keys, **SK_CERT_TYPES}


SIGNATURE_ALGORITHMS: dict[str, str] = _signature_algorithms()
"""Every public-key / signature algorithm name → its plain key type."""


class KeyParseError(ValueError, SSHException):
    """A key, signature container or key file is malformed or unsupported."""


class UnsupportedKeyType(KeyParseError):
    """Well-formed input for a key type geossh does not support (DSA, sk-*, ...).

    ``key_class`` is the class of the loaded private key when there was one
    (say, cryptography's ``Ed448PrivateKey``).
    """

    def __init__(self, message: str, key_class: type | None = None) -> None:
        super().__init__(message)
        self.key_class = key_class


_CRYPTO_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, InvalidTag, OverflowError)


def strip_cert_suffix(algorithm: str) -> str:
    """``rsa-sha2-256-cert-v01@openssh.com`` → ``rsa-sha2-256`` (others unchanged).

    A security-key certificate name maps to its key's name
    (``sk-ssh-ed25519-cert-v01@openssh.com`` → ``sk-ssh-ed25519@openssh.com``).
    """
    if algorithm in SK_CERT_TYPES:
        return SK_CERT_TYPES[algorithm]
    if algorithm.endswith(CERT_SUFFIX):
        return algorithm[: -len(CERT_SUFFIX)]
    return algorithm


def blob_type_for_algorithm(algorithm: str) -> str:
    """The type string a key blob offered under ``algorithm`` must start with."""
    key_type = SIGNATURE_ALGORITHMS.get(algorithm)
    if key_type is None:
        raise UnsupportedKeyType(f"unsupported public key algorithm {algorithm!r}")
    if algorithm in SK_CERT_TYPES:
        return algorithm
    return key_type + CERT_SUFFIX if algorithm.endswith(CERT_SUFFIX) else key_type


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class SSHKey:
    """One Ed25519, ECDSA or RSA key, public or private, in SSH terms."""

    __slots__ = ("_signing_secret", "bits", "key_type", "private_key", "public_blob", "public_key")

    key_type: str
    public_blob: bytes
    public_key: PublicKey
    private_key: PrivateKey | None
    bits: int

    def __init__(self, key: PrivateKey | PublicKey) -> None:
        """Wrap a cryptography key object; other key classes raise ``UnsupportedKeyType``."""
        if isinstance(key, _PRIVATE_CLASSES):
            self.private_key = key
            self.public_key = key.public_key()
        elif isinstance(key, _PUBLIC_CLASSES):
            self.private_key = None
            self.public_key = key
        else:
            raise UnsupportedKeyType(f"unsupported key class {type(key).__name__}")
        self.key_type, self.bits = _describe(self.public_key)
        self._signing_secret: bytes | None = None  # libsodium's Ed25519 key, at first sign
        line = self.public_key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        self.public_blob = base64.b64decode(line.split(b" ")[1])

    # -- identity -----------------------------------------------------------

    @property
    def can_sign(self) -> bool:
        """True when the private half is present."""
        return self.private_key is not None

    def public(self) -> SSHKey:
        """This key without its private half."""
        return self if self.private_key is None else SSHKey(self.public_key)

    def fingerprint_sha256(self) -> str:
        """OpenSSH's default fingerprint: ``SHA256:`` + unpadded base64."""
        digest = hashlib.sha256(self.public_blob).digest()
        return "SHA256:" + _b64(digest).rstrip("=")

    def fingerprint_md5(self) -> bytes:
        """The 16-byte MD5 digest of the public blob (paramiko's get_fingerprint)."""
        return hashlib.md5(self.public_blob, usedforsecurity=False).digest()

    def openssh_public_line(self, comment: str | None = None) -> str:
        """The ``authorized_keys`` / ``.pub`` form: ``type base64 [comment]``."""
        line = f"{self.key_type} {_b64(self.public_blob)}"
        return f"{line} {comment}" if comment else line

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSHKey):
            return NotImplemented
        return self.public_blob == other.public_blob

    def __hash__(self) -> int:
        return hash(self.public_blob)

    def __repr__(self) -> str:
        kind = "private" if self.can_sign else "public"
        return f"<SSHKey {self.key_type} {self.bits} {kind} {self.fingerprint_sha256()}>"

    # -- signatures ---------------------------------------------------------

    def signature_algorithms(self) -> tuple[str, ...]:
        """Signature algorithm names this key can produce, strongest first."""
        if self.key_type == RSA:
            return tuple(_RSA_HASHES)
        return (self.key_type,)

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        """Sign ``data``; returns the SSH signature blob (string alg, string sig).

        RSA defaults to ``rsa-sha2-512``. Certificate algorithm names are
        accepted and signed with the matching plain algorithm.
        """
        key = self.private_key
        if key is None:
            raise SSHException("cannot sign with a public key")
        alg = strip_cert_suffix(algorithm) if algorithm else self.signature_algorithms()[0]
        if alg not in self.signature_algorithms():
            raise ValueError(f"{alg!r} is not a signature algorithm for {self.key_type}")
        if isinstance(key, ed25519.Ed25519PrivateKey):
            secret = self._signing_secret
            if secret is None:
                secret = sodium.ed25519_signing_secret(key.private_bytes_raw())
                self._signing_secret = secret
            sig = sodium.ed25519_sign(secret, data)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(_ECDSA[alg][1]())))
            sig = wire.mpint(r) + wire.mpint(s)
        else:
            sig = key.sign(data, padding.PKCS1v15(), _RSA_HASHES[alg]())
        return wire.string(alg) + wire.string(sig)

    def verify(self, data: bytes, signature_blob: bytes, algorithm: str | None = None) -> bool:
        """Check an SSH signature blob over ``data``; False for anything invalid.

        With ``algorithm`` (a certificate name is reduced to its plain
        algorithm) the blob's algorithm must equal it. RSA signatures shorter
        than the modulus are left-padded (PuTTY).
        """
        try:
            reader = wire.Reader(signature_blob)
            alg = reader.ascii(MAX_TYPE_NAME)
            sig = reader.string()
            reader.check_end()
            if algorithm is not None and alg != strip_cert_suffix(algorithm):
                return False
            if alg not in self.signature_algorithms():
                return False
            self._verify_raw(data, alg, sig)
        except (InvalidSignature, RemoteProtocolError, *_CRYPTO_ERRORS):
            return False
        return True

    def _verify_raw(self, data: bytes, alg: str, sig: bytes) -> None:
        key = self.public_key
        if isinstance(key, ed25519.Ed25519PublicKey):
            # A plain key's blob ends with the 32 public bytes (no call into OpenSSL).
            raw = self.public_blob[-32:] if self.key_type == ED25519 else key.public_bytes_raw()
            if not sodium.ed25519_verify(raw, sig, data):
                raise InvalidSignature
        elif isinstance(key, ec.EllipticCurvePublicKey):
            reader = wire.Reader(sig)
            r, s = reader.mpint(), reader.mpint()
            reader.check_end()
            if r <= 0 or s <= 0:
                raise InvalidSignature
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_ECDSA[alg][1]()))
        else:
            size = (key.key_size + 7) // 8
            if not sig or len(sig) > size:
                raise InvalidSignature
            sig = sig.rjust(size, b"\x00")  # PuTTY omits leading zero bytes
            key.verify(sig, data, padding.PKCS1v15(), _RSA_HASHES[alg]())


@dataclass(frozen=True, slots=True)
class Assertion:
    """What a security key's signature says beyond validity (PROTOCOL.u2f)."""

    flags: int
    counter: int

    @property
    def user_present(self) -> bool:
        return bool(self.flags & SK_USER_PRESENT)

    @property
    def user_verified(self) -> bool:
        return bool(self.flags & SK_USER_VERIFIED)


class SecurityKey(SSHKey):
    """A FIDO security-key user key: Ed25519 or ECDSA P-256 bound to an application.

    Public only (the private half never leaves the authenticator). Its
    signatures cover ``SHA256(application) || flags || counter ||
    SHA256(data)``; ``verify_assertion`` also returns the flags and counter.
    """

    __slots__ = ("application",)

    application: str

    @classmethod
    def from_blob(cls, blob: bytes) -> SecurityKey:
        """Parse a ``sk-ssh-ed25519@openssh.com`` / ``sk-ecdsa-sha2-nistp256@openssh.com`` blob."""
        try:
            reader = wire.Reader(blob)
            key_type = reader.ascii(MAX_TYPE_NAME)
            if key_type == SK_ECDSA:
                if reader.string(16) != b"nistp256":
                    raise KeyParseError("security key: curve is not nistp256")
                point = reader.string(133)
                public: PublicKey = ec.EllipticCurvePublicKey.from_encoded_point(
                    ec.SECP256R1(), point
                )
            elif key_type == SK_ED25519:
                public = ed25519.Ed25519PublicKey.from_public_bytes(reader.string(32))
            else:
                raise UnsupportedKeyType(f"unsupported key type {key_type!r}")
            application = reader.string(MAX_SK_APPLICATION).decode("utf-8")
            reader.check_end()
        except (RemoteProtocolError, UnicodeDecodeError, *_CRYPTO_ERRORS) as exc:
            raise KeyParseError(f"malformed security key: {exc}") from None
        key = cls.__new__(cls)
        key.private_key = None
        key.public_key = public
        key.key_type, key.bits = key_type, 256
        key.public_blob = bytes(blob)
        key.application = application
        return key

    def public(self) -> SSHKey:
        return self

    def signature_algorithms(self) -> tuple[str, ...]:
        return (self.key_type,)

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        raise SSHException("a security key signs only on its authenticator")

    def verify(self, data: bytes, signature_blob: bytes, algorithm: str | None = None) -> bool:
        return self.verify_assertion(data, signature_blob, algorithm) is not None

    def verify_assertion(
        self, data: bytes, signature_blob: bytes, algorithm: str | None = None
    ) -> Assertion | None:
        """The signature's flags and counter if it is valid over ``data``, else None."""
        try:
            reader = wire.Reader(signature_blob)
            alg = reader.ascii(MAX_TYPE_NAME)
            sig = reader.string()
            flags = reader.byte()
            counter = reader.u32()
            reader.check_end()
            if alg != self.key_type or (
                algorithm is not None and strip_cert_suffix(algorithm) != alg
            ):
                return None
            signed = (
                hashlib.sha256(self.application.encode()).digest()
                + bytes((flags,))
                + counter.to_bytes(4, "big")
                + hashlib.sha256(data).digest()
            )
            base = ED25519 if alg == SK_ED25519 else ECDSA_P256
            self._verify_raw(signed, base, sig)
        except (InvalidSignature, RemoteProtocolError, *_CRYPTO_ERRORS):
            return None
        return Assertion(flags, counter)


def _describe(key: PublicKey) -> tuple[str, int]:
    """Key type name and bit size; enforces the supported curves and RSA sizes."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ED25519, 256
    if isinstance(key, ec.EllipticCurvePublicKey):
        key_type = _CURVE_TO_TYPE.get(key.curve.name)
        if key_type is None:
            raise UnsupportedKeyType(f"unsupported ECDSA curve {key.curve.name}")
        return key_type, key.curve.key_size
    if not RSA_MIN_BITS <= key.key_size <= RSA_MAX_BITS:
        raise UnsupportedKeyType(f"RSA key size {key.key_size} outside supported range")
    exponent = key.public_numbers().e
    if exponent.bit_length() > RSA_MAX_E_BITS:
        raise UnsupportedKeyType(
            f"RSA public exponent of {exponent.bit_length()} bits (at most {RSA_MAX_E_BITS})"
        )
    return RSA, key.key_size


# -- parsing ------------------------------------------------------------------


def blob_key_type(blob: bytes) -> str:
    """The type name a key or certificate blob starts with (bounds-checked)."""
    try:
        return wire.Reader(blob).ascii(MAX_TYPE_NAME)
    except RemoteProtocolError as exc:
        raise KeyParseError(f"malformed key blob: {exc}") from None


def _load_public_line(key_type: str, blob: bytes) -> object:
    """Let cryptography parse ``blob`` as the one-line OpenSSH form."""
    line = key_type.encode("ascii") + b" " + base64.b64encode(blob)
    try:
        return serialization.load_ssh_public_identity(line)
    except (*_CRYPTO_ERRORS, NotImplementedError) as exc:
        raise KeyParseError(f"malformed {key_type} key: {exc}") from None


def public_key_from_blob(blob: bytes) -> SSHKey:
    """Parse a plain public-key blob (RFC 4253 §6.6); strict and canonical.

    Raises ``KeyParseError`` (``UnsupportedKeyType`` for types geossh does
    not handle, including certificates) and nothing else. Keys parsed
    recently are remembered by blob (``PARSED_KEYS_CACHED`` of them): a
    client's key arrives twice per login (query, then signed request) and
    again on every connection. ``SSHKey`` objects are never modified.
    """
    return _parse_public_blob(bytes(blob))


#: How many parsed public keys ``public_key_from_blob`` remembers.
PARSED_KEYS_CACHED = 256


@functools.lru_cache(maxsize=PARSED_KEYS_CACHED)
def _parse_public_blob(blob: bytes) -> SSHKey:
    # Only successful parses are cached (lru_cache does not keep exceptions),
    # and a valid key blob is at most a few KiB (RSA_MAX_BITS), so the cache
    # stays small whatever clients send.
    key_type = blob_key_type(blob)
    if key_type in SK_KEY_TYPES:
        return SecurityKey.from_blob(blob)
    if key_type not in KEY_TYPES:
        raise UnsupportedKeyType(f"unsupported key type {key_type!r}")
    loaded = _load_public_line(key_type, bytes(blob))
    if not isinstance(loaded, _PUBLIC_CLASSES):
        raise KeyParseError(f"blob did not hold a {key_type} key")
    key = SSHKey(loaded)
    if key.public_blob != blob:
        raise KeyParseError("non-canonical key encoding")
    return key


def load_private_key(data: bytes | str, password: bytes | str | None = None) -> SSHKey:
    """Load a private key: OpenSSH format or PEM (PKCS#1, SEC1, PKCS#8).

    An unencrypted key ignores ``password``. Raises
    ``PasswordRequiredException`` for an encrypted key without a password,
    ``KeyParseError`` ("Bad password or corrupt private key file") for a wrong
    password or damaged data, ``UnsupportedKeyType`` for other key types.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    pw = password.encode("utf-8") if isinstance(password, str) else password
    openssh = b"-----BEGIN OPENSSH PRIVATE KEY-----" in raw
    try:
        key = _load_private(raw, None, openssh)
    except TypeError:  # cryptography: encrypted, but no password given
        if pw is None:
            raise PasswordRequiredException("Private key file is encrypted") from None
        try:
            key = _load_private(raw, pw, openssh)
        except UnsupportedKeyType:
            raise
        except (*_CRYPTO_ERRORS, NotImplementedError):
            raise KeyParseError("Bad password or corrupt private key file") from None
    except UnsupportedKeyType:
        raise
    except UnsupportedAlgorithm as exc:
        raise UnsupportedKeyType(f"unsupported private key: {exc}") from None
    except (*_CRYPTO_ERRORS, NotImplementedError) as exc:
        raise KeyParseError(f"not a valid private key file: {exc}") from None
    return SSHKey(key)


def _load_private(data: bytes, password: bytes | None, openssh: bool) -> PrivateKey:
    if openssh:
        key: object = serialization.load_ssh_private_key(data, password)
    else:
        key = serialization.load_pem_private_key(data, password)
    if isinstance(key, _PRIVATE_CLASSES):
        return key
    raise UnsupportedKeyType(f"unsupported private key class {type(key).__name__}", type(key))


# -- generation and serialization ---------------------------------------------

_ALIASES = {"ed25519": ED25519, "rsa": RSA, "ecdsa": None}
_ECDSA_BY_BITS = {256: ECDSA_P256, 384: ECDSA_P384, 521: ECDSA_P521}


def generate(key_type: str, bits: int | None = None) -> SSHKey:
    """Generate a private key (``ssh-ed25519``, ``ecdsa-sha2-*``, ``ssh-rsa``).

    Short names as for ``ssh-keygen -t`` work too. RSA defaults to 3072
    bits; ``ecdsa`` picks the curve from ``bits`` (default 256).
    """
    name = _ALIASES.get(key_type, key_type)
    if name is None:  # "ecdsa"
        name = _ECDSA_BY_BITS.get(bits or 256)
        if name is None:
            raise ValueError(f"unsupported ECDSA key size {bits}")
    if name == ED25519:
        return SSHKey(ed25519.Ed25519PrivateKey.generate())
    if name in _ECDSA:
        curve = _ECDSA[name][0]()
        if bits is not None and bits != curve.key_size:
            raise ValueError(f"{name} keys have {curve.key_size} bits, not {bits}")
        return SSHKey(ec.generate_private_key(curve))
    if name == RSA:
        size = 3072 if bits is None else bits
        if not RSA_MIN_BITS <= size <= RSA_MAX_BITS:
            raise ValueError(f"RSA key size {size} outside {RSA_MIN_BITS}..{RSA_MAX_BITS}")
        return SSHKey(rsa.generate_private_key(public_exponent=65537, key_size=size))
    raise ValueError(f"unsupported key type {key_type!r}")


def _encryption(password: bytes | str | None) -> serialization.KeySerializationEncryption:
    if password is None:
        return serialization.NoEncryption()
    pw = password.encode("utf-8") if isinstance(password, str) else password
    return serialization.BestAvailableEncryption(pw)


def _private(key: SSHKey) -> PrivateKey:
    if key.private_key is None:
        raise SSHException("public key has no private part to serialize")
    return key.private_key


def serialize_openssh_private_key(key: SSHKey, password: bytes | str | None = None) -> bytes:
    """``-----BEGIN OPENSSH PRIVATE KEY-----`` (bcrypt + aes256-ctr if a password)."""
    return _private(key).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, _encryption(password)
    )


def serialize_pem_private_key(key: SSHKey, password: bytes | str | None = None) -> bytes:
    """Traditional PEM for RSA/ECDSA (``BEGIN RSA/EC PRIVATE KEY``), PKCS#8 for Ed25519."""
    priv = _private(key)
    fmt = (
        serialization.PrivateFormat.PKCS8
        if isinstance(priv, ed25519.Ed25519PrivateKey)
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return priv.private_bytes(serialization.Encoding.PEM, fmt, _encryption(password))


# Certificates live in ``_certs`` (which imports this module); re-exported
# lazily (PEP 562) so that either module may be imported first.
_CERT_NAMES = frozenset(
    {
        "CertType",
        "Certificate",
        "parse_certificate",
        "parse_public_identity",
        "parse_userauth_key",
        "validate_user_certificate",
    }
)

if TYPE_CHECKING:
    from geossh.proto._certs import (
        Certificate,
        CertType,
        parse_certificate,
        parse_public_identity,
        parse_userauth_key,
        validate_user_certificate,
    )


def __getattr__(name: str) -> object:
    if name in _CERT_NAMES:
        from geossh.proto import _certs

        return getattr(_certs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CERT_SUFFIX",
    "KEY_TYPES",
    "SIGNATURE_ALGORITHMS",
    "SK_CERT_TYPES",
    "SK_KEY_TYPES",
    "CertType",
    "Certificate",
    "KeyParseError",
    "SSHKey",
    "UnsupportedKeyType",
    "blob_key_type",
    "blob_type_for_algorithm",
    "generate",
    "load_private_key",
    "parse_certificate",
    "parse_public_identity",
    "parse_userauth_key",
    "public_key_from_blob",
    "serialize_openssh_private_key",
    "serialize_pem_private_key",
    "strip_cert_suffix",
    "validate_user_certificate",
]
