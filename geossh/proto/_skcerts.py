"""Security-key certificates (PROTOCOL.certkeys, PROTOCOL.u2f): geossh's own parser.

cryptography's certificate loader refuses ``sk-ssh-ed25519-cert-v01@openssh.com``
and ``sk-ecdsa-sha2-nistp256-cert-v01@openssh.com``, so their blobs are read
here, field by field with every length bounded by the blob (and principals,
options and names by the limits below). The certified key's fields are
re-framed as a plain security-key blob and parsed by ``SecurityKey.from_blob``;
the CA key by ``public_key_from_blob``; the CA signature is checked later by
``SSHKey.verify`` over the signed body. ``_certs`` turns the result into a
``Certificate``. Same strictness as cryptography's loader for the other
types: sorted unique option names, no NUL in key id or principals, no
trailing bytes anywhere.

Must not import gevent, socket, threading, select or time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from geossh.proto import wire
from geossh.proto.errors import RemoteProtocolError
from geossh.proto.keys import (
    _CRYPTO_ERRORS,
    KEY_TYPES,
    MAX_SK_APPLICATION,
    MAX_TYPE_NAME,
    SK_CERT_TYPES,
    SK_ECDSA,
    KeyParseError,
    SecurityKey,
    SSHKey,
    UnsupportedKeyType,
    public_key_from_blob,
)

MAX_PRINCIPALS = 256  # OpenSSH SSHKEY_CERT_MAX_PRINCIPALS
MAX_OPTIONS = 64  # critical options or extensions per certificate
MAX_OPTION_NAME = 256
MAX_NONCE = 256
MAX_KEY_BLOB = 16 * 1024  # the CA key (RSA 16384 bits fits)
MAX_SIGNATURE = 16 * 1024


@dataclass(frozen=True, slots=True)
class CertFields:
    """A certificate's fields, whoever parsed them; ``verify`` checks the CA signature."""

    key: SSHKey
    signature_key: SSHKey
    signature_algorithm: str
    cert_type: int
    nonce: bytes
    serial: int
    key_id: bytes
    principals: tuple[bytes, ...]
    valid_after: int
    valid_before: int
    critical_options: dict[bytes, bytes]
    extensions: dict[bytes, bytes]
    verify: Callable[[], bool]


def _options(data: bytes) -> dict[bytes, bytes]:
    """Critical options / extensions: sorted unique names, values an inner string or empty."""
    reader = wire.Reader(data)
    result: dict[bytes, bytes] = {}
    last: bytes | None = None
    while reader.remaining:
        if len(result) >= MAX_OPTIONS:
            raise KeyParseError(f"certificate has more than {MAX_OPTIONS} options")
        name = reader.string(MAX_OPTION_NAME)
        if last is not None and name <= last:
            raise KeyParseError("certificate option names not sorted and unique")
        value = reader.string()
        if value:
            inner = wire.Reader(value)
            value = inner.string()
            inner.check_end()
        result[name] = value
        last = name
    return result


def _principals(data: bytes) -> tuple[bytes, ...]:
    reader = wire.Reader(data)
    found: list[bytes] = []
    while reader.remaining:
        if len(found) >= MAX_PRINCIPALS:
            raise KeyParseError(f"certificate has more than {MAX_PRINCIPALS} principals")
        principal = reader.string()
        if 0 in principal:
            raise KeyParseError("NUL byte in certificate principal")
        found.append(principal)
    return tuple(found)


def _signature_key(blob: bytes) -> SSHKey:
    """The CA key: a plain Ed25519, ECDSA or RSA key (as for the other certificate types)."""
    key_type = wire.Reader(blob).ascii(MAX_TYPE_NAME)
    if key_type not in KEY_TYPES:
        raise UnsupportedKeyType(f"unsupported CA key type {key_type!r}")
    return public_key_from_blob(blob)


def parse_sk_certificate(blob: bytes) -> CertFields:
    """Read a security-key certificate blob; ``KeyParseError`` on anything wrong."""
    try:
        return _parse(bytes(blob))
    except KeyParseError:
        raise
    except (RemoteProtocolError, *_CRYPTO_ERRORS) as exc:
        raise KeyParseError(f"malformed security-key certificate: {exc}") from None


def _parse(blob: bytes) -> CertFields:
    reader = wire.Reader(blob)
    cert_type_name = reader.ascii(MAX_TYPE_NAME)
    key_type = SK_CERT_TYPES.get(cert_type_name)
    if key_type is None:
        raise UnsupportedKeyType(f"not a security-key certificate: {cert_type_name!r}")
    nonce = reader.string(MAX_NONCE)
    key_start = reader.position
    if key_type == SK_ECDSA:
        reader.string(16)  # curve name (SecurityKey checks it)
        reader.string(133)  # point
    else:
        reader.string(32)
    reader.string(MAX_SK_APPLICATION)
    key_fields = blob[key_start : reader.position]
    key = SecurityKey.from_blob(wire.string(key_type) + key_fields)
    serial = reader.u64()
    cert_type = reader.u32()
    key_id = reader.string()
    if 0 in key_id:
        raise KeyParseError("NUL byte in certificate key id")
    principals = _principals(reader.string())
    valid_after, valid_before = reader.u64(), reader.u64()
    critical_options = _options(reader.string())
    extensions = _options(reader.string())
    reader.string()  # reserved
    signature_key = _signature_key(reader.string(MAX_KEY_BLOB))
    signed_end = reader.position
    signature = reader.string(MAX_SIGNATURE)
    reader.check_end()
    sig_reader = wire.Reader(signature)
    signature_algorithm = sig_reader.ascii(MAX_TYPE_NAME)
    sig_reader.string(MAX_SIGNATURE)
    sig_reader.check_end()
    if signature_algorithm not in signature_key.signature_algorithms():
        raise KeyParseError("certificate signature does not match the CA key type")
    signed = blob[:signed_end]

    def verify() -> bool:
        return signature_key.verify(signed, signature, signature_algorithm)

    return CertFields(
        key=key,
        signature_key=signature_key,
        signature_algorithm=signature_algorithm,
        cert_type=cert_type,
        nonce=nonce,
        serial=serial,
        key_id=key_id,
        principals=principals,
        valid_after=valid_after,
        valid_before=valid_before,
        critical_options=critical_options,
        extensions=extensions,
        verify=verify,
    )
