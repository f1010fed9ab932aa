"""How a ``Transport``'s settings become the protocol core's ``ServerConfig``.

paramiko's class-level ``_preferred_*`` tables (which users subclass or
patch) start from the defaults here; ``Preferred`` is the descriptor behind
the ``preferred_*`` properties (a table filtered by ``disabled_algorithms``);
``server_config(transport)`` validates the settings and builds the core's
configuration, shared by every transport configured alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geossh.proto import algorithms as algs
from geossh.proto.cipher import CIPHERS, MACS
from geossh.proto.config import ServerConfig
from geossh.proto.kex import KEX_METHODS

#: RFC 4253 §6.1: every implementation must accept packets of 35000 bytes.
MIN_PACKET_LIMIT = 35000
#: Largest ``max_packet_size`` geossh accepts as a setting.
MAX_PACKET_LIMIT = 1 << 20

# paramiko's class-level tables (``Transport._preferred_kex`` ...), as offered by default.
PREFERRED_KEX: tuple[str, ...] = algs.DEFAULT_KEX + algs.GEX_KEX
PREFERRED_KEYS: tuple[str, ...] = algs.DEFAULT_HOST_KEY_ALGORITHMS
PREFERRED_PUBKEYS: tuple[str, ...] = algs.DEFAULT_USER_KEY_ALGORITHMS
PREFERRED_CIPHERS: tuple[str, ...] = algs.DEFAULT_CIPHERS
PREFERRED_MACS: tuple[str, ...] = algs.DEFAULT_MACS
PREFERRED_COMPRESSION: tuple[str, ...] = algs.DEFAULT_COMPRESSION
CIPHER_INFO: Mapping[str, Any] = CIPHERS
MAC_INFO: Mapping[str, Any] = MACS
KEY_INFO: Mapping[str, Any] = {
    **algs.KEY_TYPE_FOR_ALGORITHM,
    **{f"{k}-cert-v01@openssh.com": v for k, v in algs.KEY_TYPE_FOR_ALGORITHM.items()},
}
KEX_INFO: Mapping[str, Any] = KEX_METHODS
COMPRESSION_INFO: Mapping[str, Any] = {name: name for name in algs.ALL_COMPRESSION}
#: ``use_compression(True)``: paramiko's table (plain zlib is never offered, see below).
WITH_COMPRESSION = ("zlib@openssh.com", "zlib", "none")


class Preferred:
    """A read-only ``preferred_<category>`` property: the class table minus disabled names."""

    def __init__(self, category: str, doc: str) -> None:
        self.category = category
        self.table = f"_preferred_{category}"
        self.__doc__ = doc

    def __get__(self, transport: Any, owner: type | None = None) -> Any:
        if transport is None:
            return self
        names: tuple[str, ...] = getattr(transport, self.table)
        disabled = transport.disabled_algorithms.get(self.category, ())
        offered = tuple(name for name in names if name not in disabled)
        if self.category == "compression":
            # Plain zlib starts before authentication: never offered (SECURITY.md;
            # sshd offers none either), whatever ``_preferred_compression`` says.
            offered = tuple(name for name in offered if name != "zlib")
        return offered


_CONFIGS_CACHED = 32
_CONFIGS: dict[tuple[object, ...], ServerConfig] = {}


def server_config(transport: Any) -> ServerConfig:
    """The core's configuration for ``transport``; shared by every transport configured alike.

    A server's connections all have the same settings, so the config is
    built once and reused (the core never modifies it).
    """
    limit = transport.max_packet_size
    if not MIN_PACKET_LIMIT <= limit <= MAX_PACKET_LIMIT:
        raise ValueError(
            f"max_packet_size must be {MIN_PACKET_LIMIT}-{MAX_PACKET_LIMIT} bytes "
            f"(RFC 4253 §6.1), got {limit}"
        )
    try:
        key = _config_key(transport)
        config = _CONFIGS.get(key)
    except TypeError:  # an unhashable setting (say, a list): build it each time
        return _build(transport)
    if config is None:
        config = _build(transport)
        if len(_CONFIGS) >= _CONFIGS_CACHED:
            _CONFIGS.clear()
        _CONFIGS[key] = config
    return config


def _config_key(t: Any) -> tuple[object, ...]:
    # Everything _build reads. Keys and moduli by identity: the cached config
    # holds them, so their ids stay unique meanwhile.
    return (
        t._preferred_kex,
        t._preferred_keys,
        t._preferred_pubkeys,
        t._preferred_ciphers,
        t._preferred_macs,
        t._preferred_compression,
        tuple(t.disabled_algorithms.items()),
        tuple((name, id(key.ssh_key)) for name, key in t.server_key_dict.items()),
        t.advertise_strict_kex,
        t.server_sig_algs,
        t.local_version,
        id(type(t)._modulus_pack),
        t.rekey_bytes,
        t.rekey_seconds,
        t.banner_timeout,
        t.handshake_timeout,
        t.auth_timeout,
        t.max_auth_tries,
        t.default_window_size,
        t.default_max_packet_size,
        t.max_channels,
        t.max_packet_size,
        t.max_version_line,
        t.max_pre_version_lines,
        t.max_pending_global_requests,
        t.client_alive_interval,
        t.client_alive_count_max,
        t.unused_connection_timeout,
    )


def _build(t: Any) -> ServerConfig:
    keys = {key.get_name(): key.ssh_key for key in t.server_key_dict.values()}
    host_key_algs = tuple(
        alg for alg in t.preferred_keys if not alg.endswith("-cert-v01@openssh.com")
    )
    prefs = algs.ServerPreferences(
        kex=t.preferred_kex,
        host_key=host_key_algs,
        ciphers=t.preferred_ciphers,
        macs=t.preferred_macs,
        compression=t.preferred_compression,
        strict_kex=t.advertise_strict_kex,
    )
    return ServerConfig(
        host_keys=keys,
        preferences=prefs,
        server_version=t.local_version,
        pubkey_algorithms=t.preferred_pubkeys,
        server_sig_algs=t.preferred_pubkeys if t.server_sig_algs else (),
        moduli=type(t)._modulus_pack or (),
        rekey_bytes=t.rekey_bytes,
        rekey_seconds=t.rekey_seconds,
        banner_timeout=t.banner_timeout,
        handshake_timeout=t.handshake_timeout,
        auth_timeout=t.auth_timeout,
        max_auth_tries=t.max_auth_tries,
        default_window_size=t.default_window_size,
        default_max_packet_size=t.default_max_packet_size,
        max_channels=t.max_channels,
        max_packet_size=t.max_packet_size,
        max_version_line=max(64, t.max_version_line),
        max_pre_version_lines=max(0, t.max_pre_version_lines),
        max_pending_global_requests=max(1, t.max_pending_global_requests),
        client_alive_interval=max(0.0, float(t.client_alive_interval)),
        client_alive_count_max=max(0, int(t.client_alive_count_max)),
        unused_connection_timeout=max(0.0, float(t.unused_connection_timeout)),
    )
