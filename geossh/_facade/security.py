"""``SecurityOptions``: a transport's algorithm lists, editable before it starts.

paramiko.SecurityOptions: getters return the transport's preference tuple,
setters take a tuple or list and reject names the registry does not know.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class SecurityOptions:
    """A view of one transport's preferred algorithms."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def __repr__(self) -> str:
        return f"<geossh.SecurityOptions for {self._transport!r}>"

    def _set(self, name: str, orig: str, values: Sequence[str], what: str) -> None:
        if not isinstance(values, (tuple, list)):
            raise TypeError("expected tuple or list")
        table: Mapping[str, Any] = getattr(self._transport, orig)
        unknown = [value for value in values if value not in table]
        if unknown:
            raise ValueError(f"unknown {what}: {', '.join(map(str, unknown))}")
        setattr(self._transport, name, tuple(values))

    @property
    def ciphers(self) -> tuple[str, ...]:
        """Symmetric ciphers, strongest first."""
        return tuple(self._transport._preferred_ciphers)

    @ciphers.setter
    def ciphers(self, x: Sequence[str]) -> None:
        self._set("_preferred_ciphers", "_cipher_info", x, "cipher")

    @property
    def digests(self) -> tuple[str, ...]:
        """MAC algorithms."""
        return tuple(self._transport._preferred_macs)

    @digests.setter
    def digests(self, x: Sequence[str]) -> None:
        self._set("_preferred_macs", "_mac_info", x, "MAC")

    @property
    def key_types(self) -> tuple[str, ...]:
        """Host-key algorithms."""
        return tuple(self._transport._preferred_keys)

    @key_types.setter
    def key_types(self, x: Sequence[str]) -> None:
        self._set("_preferred_keys", "_key_info", x, "key type")

    @property
    def kex(self) -> tuple[str, ...]:
        """Key-exchange algorithms."""
        return tuple(self._transport._preferred_kex)

    @kex.setter
    def kex(self, x: Sequence[str]) -> None:
        self._set("_preferred_kex", "_kex_info", x, "kex algorithm")

    @property
    def compression(self) -> tuple[str, ...]:
        """Compression methods."""
        return tuple(self._transport._preferred_compression)

    @compression.setter
    def compression(self, x: Sequence[str]) -> None:
        self._set("_preferred_compression", "_compression_info", x, "compression")
