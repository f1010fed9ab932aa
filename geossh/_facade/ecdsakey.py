"""paramiko's ``ECDSAKey`` (``ecdsa-sha2-nistp256/384/521``, RFC 5656)."""

from __future__ import annotations

from typing import IO, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from geossh._facade.message import Message
from geossh._facade.pkey import PKey
from geossh.errors import SSHException
from geossh.proto import keys as _keys


class _ECDSACurve:
    """One curve: SSH names, size and hash (RFC 5656 §6.2)."""

    def __init__(self, curve_class: type[ec.EllipticCurve], nist_name: str) -> None:
        self.nist_name = nist_name
        self.key_length: int = curve_class.key_size  # type: ignore[assignment]
        self.key_format_identifier = "ecdsa-sha2-" + nist_name
        self.hash_object: type[hashes.HashAlgorithm] = (
            hashes.SHA256
            if self.key_length <= 256
            else hashes.SHA384
            if self.key_length <= 384
            else hashes.SHA512
        )
        self.curve_class = curve_class


class _ECDSACurveSet:
    """The supported curves, looked up by class, SSH name or size."""

    def __init__(self, ecdsa_curves: list[_ECDSACurve]) -> None:
        self.ecdsa_curves = ecdsa_curves

    def get_key_format_identifier_list(self) -> list[str]:
        return [curve.key_format_identifier for curve in self.ecdsa_curves]

    def get_by_curve_class(self, curve_class: type[ec.EllipticCurve]) -> _ECDSACurve | None:
        return next((c for c in self.ecdsa_curves if c.curve_class == curve_class), None)

    def get_by_key_format_identifier(self, key_format_identifier: str) -> _ECDSACurve | None:
        return next(
            (c for c in self.ecdsa_curves if c.key_format_identifier == key_format_identifier),
            None,
        )

    def get_by_key_length(self, key_length: int) -> _ECDSACurve | None:
        return next((c for c in self.ecdsa_curves if c.key_length == key_length), None)


class ECDSAKey(PKey):
    """An ECDSA key on NIST P-256, P-384 or P-521; ``str(key)`` works (paramiko's raises)."""

    _PEM_TAG = "EC"
    _ECDSA_CURVES = _ECDSACurveSet(
        [
            _ECDSACurve(ec.SECP256R1, "nistp256"),
            _ECDSACurve(ec.SECP384R1, "nistp384"),
            _ECDSACurve(ec.SECP521R1, "nistp521"),
        ]
    )

    def __init__(
        self,
        msg: Message | None = None,
        data: bytes | None = None,
        filename: str | None = None,
        password: str | bytes | None = None,
        vals: tuple[Any, Any] | None = None,
        file_obj: IO[Any] | None = None,
        validate_point: bool = True,
    ) -> None:
        self.public_blob = None
        if file_obj is None and filename is None and vals is not None:
            signing_key, verifying_key = vals
            self._set(_keys.SSHKey(signing_key if signing_key is not None else verifying_key))
        elif not self._load(msg, data, filename, password, file_obj):
            raise SSHException("Key object may not be empty")

    @classmethod
    def _key_types(cls) -> list[str]:
        return cls.identifiers()

    @classmethod
    def identifiers(cls) -> list[str]:
        """The three ``ecdsa-sha2-nistp*`` names."""
        return cls._ECDSA_CURVES.get_key_format_identifier_list()

    @classmethod
    def supported_key_format_identifiers(cls) -> list[str]:
        """Same as ``identifiers()`` (old name)."""
        return cls.identifiers()

    @property
    def ecdsa_curve(self) -> _ECDSACurve:
        """This key's curve description."""
        curve = self._ECDSA_CURVES.get_by_key_format_identifier(self.get_name())
        assert curve is not None
        return curve

    @property
    def signing_key(self) -> ec.EllipticCurvePrivateKey | None:
        """The cryptography private key, or None."""
        priv = self.ssh_key.private_key
        return priv if isinstance(priv, ec.EllipticCurvePrivateKey) else None

    @property
    def verifying_key(self) -> ec.EllipticCurvePublicKey:
        """The cryptography public key."""
        pub = self.ssh_key.public_key
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        return pub

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey | None:
        """The cryptography private key, or None for a public key."""
        return self.signing_key

    def __str__(self) -> str:
        return self.asbytes().decode("utf8", errors="ignore")

    @classmethod
    def generate(
        cls,
        curve: ec.EllipticCurve = ec.SECP256R1(),  # noqa: B008 (paramiko's signature)
        progress_func: object = None,
        bits: int | None = None,
    ) -> ECDSAKey:
        """A new private key on ``curve`` (or the curve with ``bits`` 256/384/521)."""
        if bits is not None:
            found = cls._ECDSA_CURVES.get_by_key_length(bits)
            if found is None:
                raise ValueError(f"Unsupported key length: {bits:d}")
            curve = found.curve_class()
        private_key = ec.generate_private_key(curve)
        return ECDSAKey(vals=(private_key, private_key.public_key()))
