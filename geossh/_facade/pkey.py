"""paramiko's key classes (``PKey``, ``RSAKey``, ``ECDSAKey``, ``Ed25519Key``) over proto.keys.

Same constructors, methods and results as paramiko 5.1 (docs/compatibility.md,
"Keys"); the work is done by ``geossh.proto.keys.SSHKey``, available to the
transport as ``pkey.ssh_key``. Intentional differences (paramiko bugs fixed):
``str(ECDSAKey)`` works, an Ed25519 key loaded from a private file verifies,
Ed25519 keys can be generated and written (OpenSSH format), every class
reads PKCS#8 PEM too, malformed or trailing-garbage key blobs are rejected,
and ``load_certificate`` requires the certificate to certify this key.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from geossh._facade.common import o600
from geossh._facade.message import Message
from geossh.errors import SSHException
from geossh.proto import keys as _keys
from geossh.proto.keys import CERT_SUFFIX, KeyParseError, SSHKey, UnsupportedKeyType


class UnknownKeyType(Exception):
    """An unknown public/private key algorithm was attempted to be read."""

    def __init__(self, key_type: object = None, key_bytes: bytes | None = None) -> None:
        self.key_type = key_type
        self.key_bytes = key_bytes

    def __str__(self) -> str:
        size = len(self.key_bytes) if self.key_bytes is not None else 0
        return f"UnknownKeyType(type={self.key_type!r}, bytes=<{size}>)"


class FileFormat(NamedTuple):
    """A private-key file format: cryptography's format and encoding."""

    format: serialization.PrivateFormat
    encoding: serialization.Encoding


OPENSSH_AUTH_MAGIC = b"openssh-key-v1\x00"
PrivateKey = _keys.PrivateKey  # the cryptography private key classes geossh handles

PEM = FileFormat(serialization.PrivateFormat.TraditionalOpenSSL, serialization.Encoding.PEM)
OPENSSH = FileFormat(serialization.PrivateFormat.OpenSSH, serialization.Encoding.PEM)


class PublicBlob:
    """An OpenSSH public key or certificate as type + blob (+ comment)."""

    def __init__(self, type_: str, blob: bytes, comment: str | None = None) -> None:
        self.key_type = type_
        self.key_blob = blob
        self.comment = comment

    @classmethod
    def from_file(cls, filename: str) -> PublicBlob:
        """Read a ``.pub`` / ``-cert.pub`` file."""
        with open(filename) as f:
            return cls.from_string(f.read())

    @classmethod
    def from_string(cls, string: str) -> PublicBlob:
        """Parse ``"<type> <base64> [comment]"``; ValueError if malformed."""
        fields = string.split(None, 2)
        if len(fields) < 2:
            raise ValueError(f"Not enough fields for public blob: {fields}")
        key_type = fields[0]
        key_blob = base64.b64decode(fields[1])
        comment = fields[2].strip() if len(fields) > 2 else None
        blob_type = _keys.blob_key_type(key_blob)
        if blob_type != key_type:
            deets = f"key type={key_type!r}, but blob type={blob_type!r}"
            raise ValueError(f"Invalid PublicBlob contents: {deets}")
        return cls(type_=key_type, blob=key_blob, comment=comment)

    @classmethod
    def from_message(cls, message: Message) -> PublicBlob:
        """From a ``Message`` holding a key or certificate blob."""
        type_ = message.get_text()
        return cls(type_=type_, blob=message.asbytes())

    def __str__(self) -> str:
        ret = f"{self.key_type} public key/certificate"
        return f"{ret}- {self.comment}" if self.comment else ret

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicBlob):
            return NotImplemented  # another library's blob (paramiko's) may compare itself
        return self.key_blob == other.key_blob

    def __hash__(self) -> int:
        return hash(self.key_blob)


def _read_source(filename: str | None, file_obj: IO[Any] | None) -> bytes | str:
    if file_obj is not None:
        data: bytes | str = file_obj.read()
        return data
    assert filename is not None
    with open(filename, "rb") as f:
        return f.read()


_P = TypeVar("_P", bound="PKey")


class PKey:
    """Base class of the key classes; also the generic loaders."""

    name: ClassVar[str] = ""
    #: The PEM label paramiko's error messages name (``RSA``, ``EC``, ``OPENSSH``).
    _PEM_TAG: ClassVar[str] = "OPENSSH"
    BEGIN_TAG = re.compile(r"^-{5}BEGIN (RSA|EC|OPENSSH) PRIVATE KEY-{5}\s*$")
    END_TAG = re.compile(r"^-{5}END (RSA|EC|OPENSSH) PRIVATE KEY-{5}\s*$")
    public_blob: PublicBlob | None = None
    _ssh_key: SSHKey | None = None

    def __init__(self, msg: Message | None = None, data: bytes | None = None) -> None:
        """Does nothing (as in paramiko): use a subclass or ``from_path``."""

    # -- construction helpers -----------------------------------------------

    def _load(
        self,
        msg: Message | None,
        data: bytes | None,
        filename: str | None = None,
        password: str | bytes | None = None,
        file_obj: IO[Any] | None = None,
    ) -> bool:
        """Fill the key from a private file/file object or a public blob; False if none."""
        self.public_blob = None
        if file_obj is not None or filename is not None:
            text = _read_source(filename, file_obj)
            self._check_private_text(text)
            self._set(_keys.load_private_key(text, password))
            return True
        if msg is None and data is not None:
            msg = Message(data)
        if msg is None:
            return False
        msg.rewind()
        blob = msg.asbytes()
        msg.get_bytes(len(blob))  # consumed, as paramiko leaves it
        try:
            parsed = _keys.parse_public_identity(blob)
        except KeyParseError as exc:
            raise SSHException(f"Invalid key (class: {type(self).__name__}): {exc}") from None
        if isinstance(parsed, SSHKey):
            self._set(parsed)
        else:
            self._set(parsed.key)
            self.public_blob = PublicBlob(parsed.key_type, blob)
        return True

    def _check_private_text(self, data: bytes | str) -> None:
        """paramiko's errors for an empty file and for one with no BEGIN line."""
        tag = self._PEM_TAG
        if not data:
            raise SSHException(f"no lines in {tag} private key file")
        begin = "-----BEGIN " if isinstance(data, str) else b"-----BEGIN "
        if begin not in data:  # type: ignore[operator]
            raise SSHException(f"not a valid {tag} private key file")

    def _set(self, key: SSHKey) -> None:
        if key.key_type not in self._key_types():
            cls = type(self).__name__
            raise SSHException(f"Invalid key (class: {cls}, data type: {key.key_type})")
        self._ssh_key = key

    @classmethod
    def _key_types(cls) -> Iterable[str]:
        return (cls.name,)

    @classmethod
    def _from_ssh_key(cls: type[_P], key: SSHKey, public_blob: PublicBlob | None = None) -> _P:
        obj = cls.__new__(cls)
        obj._set(key)
        obj.public_blob = public_blob
        return obj

    @property
    def ssh_key(self) -> SSHKey:
        """The core key object (``geossh.proto.keys.SSHKey``) the transport uses."""
        if self._ssh_key is None:
            raise SSHException("key object is empty")
        return self._ssh_key

    # -- generic loaders ----------------------------------------------------

    @staticmethod
    def from_path(
        path: str | os.PathLike[str],
        password: str | bytes | None = None,
        passphrase: str | bytes | None = None,
    ) -> PKey:
        """Load a private key file of any supported type (plus ``<path>-cert.pub``).

        ``path`` may also name the certificate. ``passphrase`` is the 4.x
        spelling of ``password``. Unsupported types raise ``UnknownKeyType``.
        """
        path = str(path)
        suffix = "-cert.pub"
        key_path, cert_path = (
            (path[: -len(suffix)], path) if path.endswith(suffix) else (path, path + suffix)
        )
        key_file = Path(key_path).expanduser()
        cert_file = Path(cert_path).expanduser()
        data = key_file.read_bytes()
        try:
            ssh_key = _keys.load_private_key(data, password if password is not None else passphrase)
        except UnsupportedKeyType as exc:
            # paramiko's key_type: the class of the key cryptography loaded.
            raise UnknownKeyType(key_type=exc.key_class, key_bytes=data) from None
        key = pkey_from_ssh_key(ssh_key)
        if cert_file.exists():
            key.load_certificate(str(cert_file))
        return key

    @staticmethod
    def from_type_string(
        key_type: str, key_bytes: bytes, password: str | bytes | None = None
    ) -> PKey:
        """A public key from its SSH type name (or algorithm name) and blob."""
        for key_class in _key_classes():
            if key_type in key_class.identifiers():
                return key_class(data=key_bytes, password=password)  # type: ignore[call-arg]
        plain = _keys.SIGNATURE_ALGORITHMS.get(key_type)
        if plain is not None:  # e.g. a certificate algorithm name
            return _class_for(plain)(data=key_bytes)
        raise UnknownKeyType(key_type=key_type, key_bytes=key_bytes)

    @classmethod
    def identifiers(cls) -> list[str]:
        """The SSH names this class handles."""
        return [cls.name]

    @classmethod
    def from_private_key_file(cls, filename: str, password: str | bytes | None = None) -> PKey:
        """``cls(filename=filename, password=password)``."""
        return cls(filename=filename, password=password)  # type: ignore[call-arg]

    @classmethod
    def from_private_key(cls, file_obj: IO[Any], password: str | bytes | None = None) -> PKey:
        """``cls(file_obj=file_obj, password=password)``."""
        return cls(file_obj=file_obj, password=password)  # type: ignore[call-arg]

    # -- identity -----------------------------------------------------------

    def __repr__(self) -> str:
        comment = getattr(self, "comment", None)
        extra = f", comment={comment!r}" if comment else ""
        return (
            f"PKey(alg={self.algorithm_name}, bits={self.get_bits()}, fp={self.fingerprint}{extra})"
        )

    def asbytes(self) -> bytes:
        """The SSH public-key blob."""
        return self._ssh_key.public_blob if self._ssh_key is not None else b""

    def __bytes__(self) -> bytes:
        return self.asbytes()

    @property
    def _fields(self) -> tuple[str, bytes]:
        if self._ssh_key is None:
            raise NotImplementedError
        return (self.get_name(), self._ssh_key.public_blob)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PKey) and self._fields == other._fields

    def __hash__(self) -> int:
        return hash(self._fields)

    def get_name(self) -> str:
        """SSH type name (``ssh-rsa``, ``ecdsa-sha2-nistp256``, ``ssh-ed25519``)."""
        return self._ssh_key.key_type if self._ssh_key is not None else self.name

    @property
    def algorithm_name(self) -> str:
        """``RSA``, ``ECDSA``, ``ED25519`` (paramiko's derivation from get_name())."""
        name = self.get_name().replace("ssh-", "")
        if CERT_SUFFIX in name:
            return name.replace(CERT_SUFFIX, "-cert").upper()
        return name.split("-")[0].upper()

    def get_bits(self) -> int:
        """Key size in bits (Ed25519: 256)."""
        return self._ssh_key.bits if self._ssh_key is not None else 0

    def can_sign(self) -> bool:
        """True if the private part is present."""
        return self._ssh_key is not None and self._ssh_key.can_sign

    def get_fingerprint(self) -> bytes:
        """MD5 of the public blob, 16 raw bytes."""
        if self._ssh_key is None:
            return hashlib.md5(self._empty_blob(), usedforsecurity=False).digest()
        return self._ssh_key.fingerprint_md5()

    @property
    def fingerprint(self) -> str:
        """``SHA256:<base64 without padding>``, as OpenSSH prints it.

        An empty key (one whose loading failed) has paramiko's fingerprint
        for it, so its ``repr`` in an error report never raises.
        """
        if self._ssh_key is None:
            digest = base64.b64encode(hashlib.sha256(self._empty_blob()).digest()).decode("ascii")
            return "SHA256:" + digest.rstrip("=")
        return self._ssh_key.fingerprint_sha256()

    def _empty_blob(self) -> bytes:
        """What paramiko fingerprints for a key without material: its name and no bytes."""
        return Message().add_string(self.name).add_string(b"").asbytes()

    def get_base64(self) -> str:
        """Base64 of the public blob, one line."""
        return base64.b64encode(self.asbytes()).decode("ascii")

    # -- signatures ---------------------------------------------------------

    def _verify_algorithms(self) -> Iterable[str]:
        return (self.get_name(),)

    def sign_ssh_data(self, data: bytes, algorithm: str | None = None) -> Message:
        """Sign ``data``; a ``Message`` holding string algorithm + string signature."""
        if not self.can_sign():
            raise SSHException("key has no private part to sign with")
        return Message().add_bytes(self.ssh_key.sign(data, self._sign_algorithm(algorithm)))

    def _sign_algorithm(self, algorithm: str | None) -> str | None:
        return None  # one algorithm per key type; paramiko ignores the argument

    def verify_ssh_sig(self, data: bytes, msg: Message) -> bool:
        """True if ``msg`` (at a signature blob) is this key's signature over ``data``."""
        try:
            alg = msg.get_text()
            sig = msg.get_binary()
        except ValueError:
            return False
        if alg not in self._verify_algorithms() or self._ssh_key is None:
            return False
        blob = Message().add_string(alg).add_string(sig).asbytes()
        return self._ssh_key.verify(data, blob, alg)

    # -- private key files --------------------------------------------------

    def _private_bytes(self, password: str | bytes | None, file_format: FileFormat) -> str:
        priv = self.ssh_key.private_key
        if priv is None:
            raise SSHException("key has no private part to write")
        fmt = file_format.format
        if isinstance(priv, ed25519.Ed25519PrivateKey) and fmt is PEM.format:
            fmt = OPENSSH.format  # no traditional PEM for Ed25519: write what ssh-keygen does
        if password is None:
            enc: serialization.KeySerializationEncryption = serialization.NoEncryption()
        else:
            pw = password.encode("utf-8") if isinstance(password, str) else password
            enc = serialization.BestAvailableEncryption(pw)
        return priv.private_bytes(file_format.encoding, fmt, enc).decode("ascii")

    def write_private_key_file(
        self, filename: str, password: str | bytes | None = None, file_format: FileFormat = PEM
    ) -> None:
        """Write the private key to ``filename``, created mode 0600 (never chmod'ed later)."""
        # Keyword arguments as paramiko passes them (its tests check the call).
        fd = os.open(filename, flags=os.O_WRONLY | os.O_TRUNC | os.O_CREAT, mode=o600)
        with os.fdopen(fd, "w") as f:
            self._write_private_key(f, password, file_format)

    def write_private_key(
        self, file_obj: IO[str], password: str | bytes | None = None, file_format: FileFormat = PEM
    ) -> None:
        """Write the private key (text) to ``file_obj``."""
        self._write_private_key(file_obj, password, file_format)

    def _write_private_key(
        self, file_obj: IO[str], password: str | bytes | None, file_format: FileFormat
    ) -> None:
        file_obj.write(self._private_bytes(password, file_format))

    def load_certificate(self, value: Message | str) -> None:
        """Attach an OpenSSH certificate (a ``Message``, a ``-cert.pub`` path or its text).

        ValueError if its type does not start with ``get_name()`` or (geossh)
        if it does not certify this key.
        """
        if isinstance(value, Message):
            blob = PublicBlob.from_message(value)
        elif os.path.isfile(value):
            blob = PublicBlob.from_file(value)
        else:
            blob = PublicBlob.from_string(value)
        name = self.get_name()
        if not (blob.key_type.startswith(name) or _keys.SK_CERT_TYPES.get(blob.key_type) == name):
            raise ValueError(
                f"PublicBlob type {blob.key_type} incompatible with key type {self.get_name()}"
            )
        parsed = _keys.parse_public_identity(blob.key_blob)
        certified = parsed if isinstance(parsed, SSHKey) else parsed.key
        if certified != self.ssh_key:
            raise ValueError("certificate does not certify this key")
        self.public_blob = blob


# The subclasses live in paramiko's module names (``geossh.rsakey`` ...), which
# import this module; they are exposed here lazily (PEP 562) so that any of
# the modules may be imported first.
_LAZY = {
    "RSAKey": "geossh.rsakey",
    "ECDSAKey": "geossh.ecdsakey",
    "Ed25519Key": "geossh.ed25519key",
}

if TYPE_CHECKING:
    from geossh._facade.ecdsakey import ECDSAKey
    from geossh._facade.ed25519key import Ed25519Key
    from geossh._facade.rsakey import RSAKey

    key_classes: list[type[PKey]]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value: object = getattr(importlib.import_module(_LAZY[name]), name)
    elif name == "key_classes":
        value = [_lazy("RSAKey"), _lazy("Ed25519Key"), _lazy("ECDSAKey")]
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # cache: later look-ups never come here again
    return value


def _lazy(name: str) -> object:
    """A lazy attribute of this module (``__getattr__``), from its cache once made."""
    return globals().get(name) or __getattr__(name)


def _lazy_class(name: str) -> type[PKey]:
    """A key class of ``_LAZY``, imported at its first use only."""
    return cast("type[PKey]", _lazy(name))


def _class_for(key_type: str) -> type[PKey]:
    """The paramiko class for a plain SSH key type."""
    if key_type == _keys.RSA:
        return _lazy_class("RSAKey")
    if key_type == _keys.ED25519:
        return _lazy_class("Ed25519Key")
    if key_type in (_keys.ECDSA_P256, _keys.ECDSA_P384, _keys.ECDSA_P521):
        return _lazy_class("ECDSAKey")
    if key_type in _keys.SK_KEY_TYPES:
        from geossh._facade.skkey import SKKey

        return SKKey
    raise UnknownKeyType(key_type=key_type)


def _key_classes() -> list[type[PKey]]:
    return cast("list[type[PKey]]", _lazy("key_classes"))


def pkey_from_ssh_key(key: SSHKey, public_blob: PublicBlob | None = None) -> PKey:
    """Wrap a core ``SSHKey`` in the matching paramiko class."""
    return _class_for(key.key_type)._from_ssh_key(key, public_blob)


def pkey_from_userauth(algorithm: str, blob: bytes) -> PKey:
    """The public ``PKey`` for a ``publickey`` request's algorithm + blob.

    A certificate fills ``public_blob`` (as paramiko does); the certificate is
    not validated here. Raises ``KeyParseError`` (an SSHException/ValueError).
    """
    key, cert = _keys.parse_userauth_key(algorithm, blob)
    public_blob = PublicBlob(cert.key_type, cert.blob) if cert is not None else None
    return pkey_from_ssh_key(key, public_blob)


__all__ = [
    "OPENSSH",
    "PEM",
    "ECDSAKey",
    "Ed25519Key",
    "FileFormat",
    "PKey",
    "PublicBlob",
    "RSAKey",
    "UnknownKeyType",
    "key_classes",
    "pkey_from_ssh_key",
    "pkey_from_userauth",
]
