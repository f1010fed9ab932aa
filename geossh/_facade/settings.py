"""Algorithm and limit settings of a ``Transport`` (paramiko's tables and properties).

``TransportSettings`` is a mixin of ``geossh.Transport``: the class-level
``_preferred_*`` tables users subclass or patch, the ``preferred_*``
properties filtered by ``disabled_algorithms``, host keys, subsystem
registration, and the ``ServerConfig`` the protocol core is built from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geossh._facade.packetizer import Packetizer
from geossh._facade.pkey import PKey
from geossh._facade.security import SecurityOptions
from geossh.errors import SSHException
from geossh.proto import algorithms as algs
from geossh.proto.cipher import CIPHERS, MACS
from geossh.proto.config import ServerConfig
from geossh.proto.kex import KEX_METHODS

_CONFIGS_CACHED = 32
_CONFIGS: dict[tuple[object, ...], ServerConfig] = {}


class TransportSettings:
    """Class-level algorithm tables and per-transport configuration."""

    # Set by geossh.Transport.__init__.
    disabled_algorithms: dict[str, tuple[str, ...]]
    server_key_dict: dict[str, PKey]
    subsystem_table: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any]]]
    host_key_type: str | None
    advertise_strict_kex: bool
    server_sig_algs: bool
    local_version: str
    rekey_bytes: int
    rekey_seconds: float | None
    banner_timeout: float
    handshake_timeout: float
    auth_timeout: float
    max_auth_tries: int
    default_window_size: int
    default_max_packet_size: int
    max_channels: int

    _preferred_kex: tuple[str, ...] = algs.DEFAULT_KEX + algs.GEX_KEX
    _preferred_keys: tuple[str, ...] = algs.DEFAULT_HOST_KEY_ALGORITHMS
    _preferred_pubkeys: tuple[str, ...] = algs.DEFAULT_USER_KEY_ALGORITHMS
    _preferred_ciphers: tuple[str, ...] = algs.DEFAULT_CIPHERS
    _preferred_macs: tuple[str, ...] = algs.DEFAULT_MACS
    _preferred_compression: tuple[str, ...] = algs.DEFAULT_COMPRESSION
    _cipher_info: Mapping[str, Any] = CIPHERS
    _mac_info: Mapping[str, Any] = MACS
    _key_info: Mapping[str, Any] = {
        **algs.KEY_TYPE_FOR_ALGORITHM,
        **{f"{k}-cert-v01@openssh.com": v for k, v in algs.KEY_TYPE_FOR_ALGORITHM.items()},
    }
    _kex_info: Mapping[str, Any] = KEX_METHODS
    _compression_info: Mapping[str, Any] = {name: name for name in algs.ALL_COMPRESSION}
    _modulus_pack: list[tuple[int, int]] | None = None

    def _filtered(self, category: str, names: tuple[str, ...]) -> tuple[str, ...]:
        disabled = set(self.disabled_algorithms.get(category, ()))
        return tuple(name for name in names if name not in disabled)

    @property
    def preferred_kex(self) -> tuple[str, ...]:
        """Kex algorithms offered (after ``disabled_algorithms``)."""
        return self._filtered("kex", self._preferred_kex)

    @property
    def preferred_keys(self) -> tuple[str, ...]:
        """Host-key algorithms offered."""
        return self._filtered("keys", self._preferred_keys)

    @property
    def preferred_pubkeys(self) -> tuple[str, ...]:
        """Public-key algorithms accepted for user authentication."""
        return self._filtered("pubkeys", self._preferred_pubkeys)

    @property
    def preferred_ciphers(self) -> tuple[str, ...]:
        """Ciphers offered."""
        return self._filtered("ciphers", self._preferred_ciphers)

    @property
    def preferred_macs(self) -> tuple[str, ...]:
        """MACs offered."""
        return self._filtered("macs", self._preferred_macs)

    @property
    def preferred_compression(self) -> tuple[str, ...]:
        """Compression methods offered: never plain ``zlib``, which starts before authentication.

        ``zlib@openssh.com`` starts after it (SECURITY.md; OpenSSH's sshd
        offers no plain zlib either), so ``use_compression(True)`` offers
        ``zlib@openssh.com,none`` even though ``_preferred_compression`` is
        paramiko's ``("zlib@openssh.com", "zlib", "none")``.
        """
        offered = self._filtered("compression", self._preferred_compression)
        return tuple(name for name in offered if name != "zlib")

    @property
    def packetizer(self) -> Packetizer:
        """paramiko's ``REKEY_BYTES`` / ``REKEY_PACKETS`` knobs, settable after start too."""
        view: Packetizer | None = self.__dict__.get("_packetizer_view")
        if view is None:
            view = self.__dict__["_packetizer_view"] = Packetizer(self)
        return view

    def get_security_options(self) -> SecurityOptions:
        """A view whose lists can be changed before ``start_server``."""
        return SecurityOptions(self)

    def use_compression(self, compress: bool = True) -> None:
        """Offer zlib compression (only before ``start_server``)."""
        self._preferred_compression = (
            ("zlib@openssh.com", "zlib", "none") if compress else ("none",)
        )

    def set_gss_host(
        self, gss_host: Any, trust_dns: bool = True, gssapi_requested: bool = True
    ) -> None:
        """Accepted for paramiko 4.x code; geossh has no GSSAPI."""

    def add_server_key(self, key: PKey) -> None:
        """Add a host key (one per type; a later one replaces an earlier)."""
        if not isinstance(key, PKey):  # say, a key loaded with paramiko
            kind = f"{type(key).__module__}.{type(key).__qualname__}"
            raise TypeError(f"host key must be a geossh key, not {kind}: load it with geossh")
        if not key.can_sign():
            raise SSHException("host key must include its private part")
        self.server_key_dict[key.get_name()] = key
        if key.get_name() == "ssh-rsa":
            self.server_key_dict["rsa-sha2-256"] = key
            self.server_key_dict["rsa-sha2-512"] = key

    def get_server_key(self) -> PKey | None:
        """The host key of the negotiated type (None before key exchange)."""
        if self.host_key_type is None:
            return None
        return self.server_key_dict.get(self.host_key_type)

    def set_subsystem_handler(self, name: str, handler: Any, *args: Any, **kwargs: Any) -> None:
        """Register ``handler(channel, name, server, *args, **kwargs)`` for a subsystem."""
        self.subsystem_table[name] = (handler, args, kwargs)

    def _get_subsystem_handler(self, name: str) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
        return self.subsystem_table.get(name, (None, (), {}))

    def _server_config(self) -> ServerConfig:
        """The core's configuration; shared by every transport configured alike.

        A server's connections all have the same settings, so the config is
        built once and reused (the core never modifies it).
        """
        try:
            key = self._config_key()
            config = _CONFIGS.get(key)
        except TypeError:  # an unhashable setting (say, a list): build it each time
            return self._build_server_config()
        if config is None:
            config = self._build_server_config()
            if len(_CONFIGS) >= _CONFIGS_CACHED:
                _CONFIGS.clear()
            _CONFIGS[key] = config
        return config

    def _config_key(self) -> tuple[object, ...]:
        # Everything _build_server_config reads. Keys and moduli by identity:
        # the cached config holds them, so their ids stay unique meanwhile.
        return (
            self._preferred_kex,
            self._preferred_keys,
            self._preferred_pubkeys,
            self._preferred_ciphers,
            self._preferred_macs,
            self._preferred_compression,
            tuple(self.disabled_algorithms.items()),
            tuple((name, id(key.ssh_key)) for name, key in self.server_key_dict.items()),
            self.advertise_strict_kex,
            self.server_sig_algs,
            self.local_version,
            id(type(self)._modulus_pack),
            self.rekey_bytes,
            self.rekey_seconds,
            self.banner_timeout,
            self.handshake_timeout,
            self.auth_timeout,
            self.max_auth_tries,
            self.default_window_size,
            self.default_max_packet_size,
            self.max_channels,
        )

    def _build_server_config(self) -> ServerConfig:
        keys = {key.get_name(): key.ssh_key for key in self.server_key_dict.values()}
        host_key_algs = tuple(
            alg for alg in self.preferred_keys if not alg.endswith("-cert-v01@openssh.com")
        )
        prefs = algs.ServerPreferences(
            kex=self.preferred_kex,
            host_key=host_key_algs,
            ciphers=self.preferred_ciphers,
            macs=self.preferred_macs,
            compression=self.preferred_compression,
            strict_kex=self.advertise_strict_kex,
        )
        return ServerConfig(
            host_keys=keys,
            preferences=prefs,
            server_version=self.local_version,
            pubkey_algorithms=self.preferred_pubkeys,
            server_sig_algs=self.preferred_pubkeys if self.server_sig_algs else (),
            moduli=type(self)._modulus_pack or (),
            rekey_bytes=self.rekey_bytes,
            rekey_seconds=self.rekey_seconds,
            banner_timeout=self.banner_timeout,
            handshake_timeout=self.handshake_timeout,
            auth_timeout=self.auth_timeout,
            max_auth_tries=self.max_auth_tries,
            default_window_size=self.default_window_size,
            default_max_packet_size=self.default_max_packet_size,
            max_channels=self.max_channels,
        )
