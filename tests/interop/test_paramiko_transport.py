"""paramiko's and asyncssh's clients complete key exchange with geossh and re-key."""

from __future__ import annotations

import asyncio
from typing import Any

import paramiko
import pytest

from tests.support import PASSWORD, USER, ServerHarness, in_thread, needs_mlkem

pytestmark = pytest.mark.interop

PARAMIKO_KEX = [
    pytest.param("mlkem768x25519-sha256", marks=needs_mlkem),
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group14-sha256",
]
PARAMIKO_CIPHERS = ["aes128-ctr", "aes192-ctr", "aes256-ctr", "aes128-gcm@openssh.com",
                    "aes256-gcm@openssh.com"]  # fmt: skip
PARAMIKO_MACS = ["hmac-sha2-256", "hmac-sha2-512", "hmac-sha2-256-etm@openssh.com",
                 "hmac-sha2-512-etm@openssh.com"]  # fmt: skip
HOST_KEYS = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256"]  # fmt: skip


def _paramiko_exec(port: int, only: dict[str, list[str]], rekey: bool = False) -> dict[str, Any]:
    """Connect with paramiko, keeping only ``only[category]`` algorithms; run ``echo``."""
    sock_transport = paramiko.Transport(("127.0.0.1", port))
    try:
        options = sock_transport.get_security_options()
        for category, names in only.items():
            setattr(options, category, names)
        sock_transport.connect(username=USER, password=PASSWORD)
        if rekey:
            sock_transport.renegotiate_keys()
        chan = sock_transport.open_session()
        chan.exec_command(b"echo ok")
        out = b""
        while data := chan.recv(1024):
            out += data
        return {
            "out": out,
            "status": chan.recv_exit_status(),
            "kex": sock_transport.kex_engine.__class__.__name__,
            "cipher": sock_transport.local_cipher,
            "mac": sock_transport.local_mac,
            "host_key": sock_transport.host_key_type,
            "server_key": sock_transport.get_remote_server_key().get_name(),
        }
    finally:
        sock_transport.close()


def _check(server: ServerHarness, only: dict[str, list[str]]) -> dict[str, Any]:
    server.start()
    result = in_thread(_paramiko_exec, server.port, only)
    assert result["out"] == b"ok\n"
    assert result["status"] == 0
    return result


@pytest.mark.parametrize("kex", PARAMIKO_KEX)
def test_paramiko_kex(server: ServerHarness, kex: str) -> None:
    _check(server, {"kex": [kex]})
    assert server.transports[0]._conn.transport.negotiated.kex == kex


@pytest.mark.parametrize("cipher", PARAMIKO_CIPHERS)
def test_paramiko_cipher(server: ServerHarness, cipher: str) -> None:
    result = _check(server, {"ciphers": [cipher]})
    assert result["cipher"] == cipher


@pytest.mark.parametrize("mac", PARAMIKO_MACS)
def test_paramiko_mac(server: ServerHarness, mac: str) -> None:
    result = _check(server, {"ciphers": ["aes128-ctr"], "digests": [mac]})
    assert result["mac"] == mac


@pytest.mark.parametrize("algorithm", HOST_KEYS)
def test_paramiko_host_key(server: ServerHarness, algorithm: str) -> None:
    result = _check(server, {"key_types": [algorithm]})
    assert result["host_key"] == algorithm


def test_paramiko_client_rekey(server: ServerHarness) -> None:
    server.start()
    result = in_thread(_paramiko_exec, server.port, {}, True)
    assert result["out"] == b"ok\n"


async def _asyncssh_exec(port: int, **options: Any) -> tuple[str, int | None, str]:
    import asyncssh

    async with asyncssh.connect(
        "127.0.0.1", port, username=USER, password=PASSWORD, known_hosts=None,
        client_keys=None, **options,
    ) as conn:  # fmt: skip
        result = await conn.run("echo ok")
        return str(result.stdout), result.exit_status, conn.get_extra_info("server_version")


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"kex_algs": ["mlkem768x25519-sha256"]}, marks=needs_mlkem),
        {"kex_algs": ["curve25519-sha256"]},
        {"encryption_algs": ["chacha20-poly1305@openssh.com"]},
        {"encryption_algs": ["aes256-gcm@openssh.com"]},
        {"encryption_algs": ["aes128-ctr"], "mac_algs": ["hmac-sha2-512-etm@openssh.com"]},
        {"server_host_key_algs": ["ecdsa-sha2-nistp521"]},
    ],
    ids=lambda o: ",".join(str(v[0]) for v in o.values()),
)
def test_asyncssh(server: ServerHarness, options: dict[str, Any]) -> None:
    server.start()
    out, status, version = in_thread(lambda: asyncio.run(_asyncssh_exec(server.port, **options)))
    assert (out, status) == ("ok\n", 0)
    assert version.startswith("SSH-2.0-geossh_")
