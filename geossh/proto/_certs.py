"""OpenSSH certificates (PROTOCOL.certkeys): parse and validate user certificates.

Parsing and the CA signature check are cryptography's
(``load_ssh_public_identity``, ``SSHCertificate.verify_cert_signature``),
except for security-key certificates, which cryptography refuses: those
are read by ``_skcerts`` and their CA signature checked by ``SSHKey.verify``.
This module adds sshd's acceptance rules for user certificates: type,
trusted CA, CA signature algorithm, validity interval, principals and
critical options. Import these names from ``geossh.proto.keys``, which
re-exports them (importing this module first would be circular).

Must not import gevent, socket, threading, select or time: ``now`` is passed in.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import SSHCertificate

from geossh.proto import wire
from geossh.proto._skcerts import CertFields, parse_sk_certificate
from geossh.proto.errors import RemoteProtocolError
from geossh.proto.keys import (
    _CRYPTO_ERRORS,
    CERT_SUFFIX,
    ED25519,
    KEY_TYPES,
    MAX_TYPE_NAME,
    SK_CERT_TYPES,
    KeyParseError,
    SecurityKey,
    SSHKey,
    UnsupportedKeyType,
    _load_public_line,
    blob_key_type,
    blob_type_for_algorithm,
    public_key_from_blob,
)

CERT_TYPES: tuple[str, ...] = tuple(t + CERT_SUFFIX for t in KEY_TYPES)

# OpenSSH's default CASignatureAlgorithms (sshd_config(5)): no SHA-1 ssh-rsa.
DEFAULT_CA_SIGNATURE_ALGORITHMS: frozenset[str] = frozenset(
    {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "rsa-sha2-512",
        "rsa-sha2-256",
    }
)
KNOWN_CRITICAL_OPTIONS: frozenset[str] = frozenset({"force-command", "source-address"})
# Only on security-key certificates: a plain key cannot verify a user, so
# there the option is refused (OpenSSH ignores it for plain keys).
SK_CRITICAL_OPTIONS: frozenset[str] = frozenset({"verify-required"})
FOREVER = 0xFFFFFFFFFFFFFFFF


class CertType(enum.IntEnum):
    """Certificate type field (PROTOCOL.certkeys)."""

    USER = 1
    HOST = 2


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyParseError(f"certificate {what} is not valid UTF-8") from None


def _text_map(items: Mapping[bytes, bytes], what: str) -> Mapping[str, str]:
    return MappingProxyType({_text(k, what): _text(v, what) for k, v in items.items()})


class Certificate:
    """A parsed OpenSSH certificate. Build it with ``parse_certificate``."""

    __slots__ = (
        "_verify",
        "blob",
        "cert_type",
        "critical_options",
        "extensions",
        "key",
        "key_id",
        "key_type",
        "nonce",
        "principals",
        "serial",
        "signature_algorithm",
        "signature_key",
        "valid_after",
        "valid_before",
    )

    def __init__(self, blob: bytes, key_type: str, fields: CertFields) -> None:
        self._verify = fields.verify
        self.blob = blob
        self.key_type = key_type  # e.g. "ssh-ed25519-cert-v01@openssh.com"
        self.signature_algorithm = fields.signature_algorithm  # the CA's, e.g. "rsa-sha2-512"
        self.key = fields.key  # a SecurityKey for sk-* certificates
        self.signature_key = fields.signature_key
        try:
            self.cert_type = CertType(fields.cert_type)
        except ValueError:
            raise KeyParseError(f"invalid certificate type {fields.cert_type}") from None
        self.nonce = fields.nonce
        self.serial = fields.serial
        self.key_id = fields.key_id.decode("utf-8", "backslashreplace")
        self.principals = tuple(_text(p, "principal") for p in fields.principals)
        self.valid_after = fields.valid_after
        self.valid_before = fields.valid_before
        self.critical_options = _text_map(fields.critical_options, "critical option")
        self.extensions = _text_map(fields.extensions, "extension")

    @property
    def force_command(self) -> str | None:
        """The ``force-command`` critical option, if present."""
        return self.critical_options.get("force-command")

    @property
    def touch_required(self) -> bool:
        """False if the ``no-touch-required`` extension waives user presence (sk keys)."""
        return "no-touch-required" not in self.extensions

    @property
    def verify_required(self) -> bool:
        """True if the ``verify-required`` critical option demands user verification (sk keys)."""
        return "verify-required" in self.critical_options

    @property
    def source_address(self) -> str | None:
        """The ``source-address`` critical option (a CIDR list), if present."""
        return self.critical_options.get("source-address")

    def verify_signature(self) -> bool:
        """True if the CA signature over the certificate body is valid."""
        return self._verify()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Certificate):
            return NotImplemented
        return self.blob == other.blob

    def __hash__(self) -> int:
        return hash(self.blob)

    def __repr__(self) -> str:
        return (
            f"<Certificate {self.key_type} {self.cert_type.name.lower()} id={self.key_id!r} "
            f"principals={list(self.principals)!r} key={self.key.fingerprint_sha256()} "
            f"ca={self.signature_key.fingerprint_sha256()}>"
        )


def _ca_signature_algorithm(blob: bytes, key_type: str) -> str:
    """Read the CA signature's algorithm name, the one field cryptography keeps private."""
    reader = wire.Reader(blob)
    reader.string()  # type
    reader.string()  # nonce
    for _ in range(1 if key_type == ED25519 else 2):  # public key fields
        reader.string()
    reader.u64()  # serial
    reader.u32()  # type
    reader.string()  # key id
    reader.string()  # principals
    reader.u64()  # valid after
    reader.u64()  # valid before
    for _ in range(4):  # critical options, extensions, reserved, signature key
        reader.string()
    return wire.Reader(reader.string()).ascii(MAX_TYPE_NAME)


def _from_cryptography(cert: SSHCertificate, sig_alg: str) -> CertFields:
    def verify() -> bool:
        try:
            cert.verify_cert_signature()
        except (InvalidSignature, *_CRYPTO_ERRORS):
            return False
        return True

    return CertFields(
        key=SSHKey(cert.public_key()),
        signature_key=SSHKey(cert.signature_key()),
        signature_algorithm=sig_alg,
        cert_type=cert.type.value,
        nonce=cert.nonce,
        serial=cert.serial,
        key_id=cert.key_id,
        principals=tuple(cert.valid_principals),
        valid_after=cert.valid_after,
        valid_before=cert.valid_before,
        critical_options=cert.critical_options,
        extensions=cert.extensions,
        verify=verify,
    )


def parse_certificate(blob: bytes) -> Certificate:
    """Parse an OpenSSH certificate blob; ``KeyParseError`` on anything wrong.

    Security-key certificates (``sk-*-cert-v01@openssh.com``) are read by
    ``_skcerts``, the others by cryptography. The CA signature is not
    checked here (see ``validate_user_certificate``).
    """
    cert_type = blob_key_type(blob)
    blob = bytes(blob)
    if cert_type in SK_CERT_TYPES:
        return Certificate(blob, cert_type, parse_sk_certificate(blob))
    if cert_type not in CERT_TYPES:
        raise UnsupportedKeyType(f"unsupported certificate type {cert_type!r}")
    loaded = _load_public_line(cert_type, blob)
    if not isinstance(loaded, SSHCertificate):
        raise KeyParseError("blob is not a certificate")
    try:
        sig_alg = _ca_signature_algorithm(blob, cert_type[: -len(CERT_SUFFIX)])
        return Certificate(blob, cert_type, _from_cryptography(loaded, sig_alg))
    except (RemoteProtocolError, *_CRYPTO_ERRORS) as exc:
        if isinstance(exc, KeyParseError):
            raise
        raise KeyParseError(f"malformed certificate: {exc}") from None


def parse_public_identity(blob: bytes) -> SSHKey | Certificate:
    """Parse either a plain public key blob or a certificate blob."""
    if blob_key_type(blob).endswith(CERT_SUFFIX):
        return parse_certificate(blob)
    return public_key_from_blob(blob)


def parse_userauth_key(algorithm: str, blob: bytes) -> tuple[SSHKey, Certificate | None]:
    """Parse the key of a ``publickey`` request (RFC 4252 §7) offered as ``algorithm``.

    The blob's type must be the one ``algorithm`` implies (``rsa-sha2-256`` →
    ``ssh-rsa``; ``*-cert-v01@openssh.com`` → the certificate type). Returns
    the key to verify signatures with and the certificate, if any.
    """
    expected = blob_type_for_algorithm(algorithm)
    actual = blob_key_type(blob)
    if actual != expected:
        raise KeyParseError(f"key type {actual!r} does not match algorithm {algorithm!r}")
    if algorithm.endswith(CERT_SUFFIX):
        cert = parse_certificate(blob)
        return cert.key, cert
    return public_key_from_blob(blob), None


def address_in_cidr_list(address: str, cidr_list: str) -> bool:
    """True if ``address`` is in the comma-separated CIDR list; ValueError if malformed."""
    addr = ipaddress.ip_address(address)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    found = False
    for entry in cidr_list.split(","):
        network = ipaddress.ip_network(entry.strip(), strict=True)
        if addr.version == network.version and addr in network:
            found = True
    return found


def _check_critical_options(cert: Certificate, source_address: str | None) -> str | None:
    known = KNOWN_CRITICAL_OPTIONS
    if isinstance(cert.key, SecurityKey):
        known = known | SK_CRITICAL_OPTIONS
    for name, value in cert.critical_options.items():
        if name not in known:
            return f"unsupported critical option {name!r}"
        if name == "source-address":
            if source_address is None:
                return "certificate restricts source-address but no address is known"
            try:
                if not address_in_cidr_list(source_address, value):
                    return f"source address {source_address} not allowed by certificate"
            except ValueError:
                return f"invalid source-address critical option {value!r}"
    return None


def validate_user_certificate(
    cert: Certificate,
    *,
    principal: str,
    now: int,
    trusted_ca: Callable[[SSHKey], bool],
    source_address: str | None = None,
    ca_signature_algorithms: Collection[str] = DEFAULT_CA_SIGNATURE_ALGORITHMS,
) -> str | None:
    """Apply sshd's rules to a user certificate; None if valid, else the reason.

    Checks the type (user), the CA signature algorithm, that ``trusted_ca``
    accepts the CA key, the CA signature, ``valid_after <= now <
    valid_before``, that ``principal`` is listed (an empty list is
    rejected), and the critical options: ``source-address`` must contain
    ``source_address``; ``force-command`` is allowed (read
    ``cert.force_command``); ``verify-required`` is allowed on a
    security-key certificate (read ``cert.verify_required``; the signature's
    flags are the caller's to check, as ``no-touch-required``); any other
    critical option rejects.
    """
    if cert.cert_type is not CertType.USER:
        return "not a user certificate"
    if cert.signature_algorithm not in ca_signature_algorithms:
        return f"CA signature algorithm {cert.signature_algorithm!r} not allowed"
    if not trusted_ca(cert.signature_key):
        return f"certificate signed by untrusted CA {cert.signature_key.fingerprint_sha256()}"
    if not cert.verify_signature():
        return "invalid certificate signature"
    if now < cert.valid_after:
        return "certificate is not yet valid"
    if now >= cert.valid_before:
        return "certificate has expired"
    if not cert.principals:
        return "certificate lists no principals"
    if principal not in cert.principals:
        return f"principal {principal!r} not in certificate"
    return _check_critical_options(cert, source_address)


__all__ = [
    "CERT_TYPES",
    "DEFAULT_CA_SIGNATURE_ALGORITHMS",
    "FOREVER",
    "KNOWN_CRITICAL_OPTIONS",
    "SK_CRITICAL_OPTIONS",
    "CertType",
    "Certificate",
    "address_in_cidr_list",
    "parse_certificate",
    "parse_public_identity",
    "parse_userauth_key",
    "validate_user_certificate",
]
