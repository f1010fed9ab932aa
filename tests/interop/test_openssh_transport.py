"""OpenSSH ``ssh`` completes key exchange with every algorithm geossh serves."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import require
from tests.support import ServerHarness, needs_sntrup

pytestmark = pytest.mark.interop

OPENSSH_KEX = [
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
]
HOST_KEY_ALGORITHMS = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
]
CIPHERS = [
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
]
MACS = [
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
]


def _echo(server: ServerHarness, *options: str) -> str:
    require("ssh")
    result = server.ssh_run("echo", "ok", options=["-v", *options])
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    assert result.stdout == b"ok\n"
    return result.stderr.decode(errors="replace")


@pytest.mark.parametrize("kex", OPENSSH_KEX)
def test_kex(server: ServerHarness, kex: str) -> None:
    log = _echo(server, "-o", f"KexAlgorithms={kex}")
    assert f"kex: algorithm: {kex}" in log


SNTRUP_KEX = ["sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com"]


def _client_kex() -> set[str]:
    ssh = require("ssh")
    return set(subprocess.run([ssh, "-Q", "kex"], capture_output=True, text=True).stdout.split())


@needs_sntrup
def test_default_kex_is_sntrup761(server: ServerHarness) -> None:
    """OpenSSH 9.0-9.8 with its own defaults picks the post-quantum hybrid (geossh[pq])."""
    if "sntrup761x25519-sha512@openssh.com" not in _client_kex():
        pytest.skip("this ssh predates sntrup761 (OpenSSH < 9.0)")
    log = _echo(server)
    [line] = [x for x in log.splitlines() if "kex: algorithm:" in x]
    chosen = line.split("kex: algorithm:")[1].strip()
    assert chosen in SNTRUP_KEX or chosen == "mlkem768x25519-sha256", line
    assert server.transports[0]._conn.transport.negotiated.kex == chosen
    if "mlkem768x25519-sha256" not in _client_kex():  # OpenSSH < 9.9, as CI's 9.2
        assert chosen in SNTRUP_KEX


@needs_sntrup
@pytest.mark.parametrize("kex", SNTRUP_KEX)
def test_sntrup761_by_name(server: ServerHarness, kex: str) -> None:
    if kex not in _client_kex():
        pytest.skip(f"this ssh lacks {kex}")
    log = _echo(server, "-o", f"KexAlgorithms={kex}")
    assert f"kex: algorithm: {kex}\n" in log.replace("\r", "")


@pytest.mark.parametrize("algorithm", HOST_KEY_ALGORITHMS)
def test_host_key_algorithm(server: ServerHarness, algorithm: str) -> None:
    log = _echo(server, "-o", f"HostKeyAlgorithms={algorithm}")
    assert f"kex: host key algorithm: {algorithm}" in log


@pytest.mark.parametrize("cipher", CIPHERS)
def test_cipher(server: ServerHarness, cipher: str) -> None:
    log = _echo(server, "-c", cipher)
    assert f"server->client cipher: {cipher}" in log


@pytest.mark.parametrize("mac", MACS)
def test_mac_with_ctr(server: ServerHarness, mac: str) -> None:
    log = _echo(server, "-c", "aes128-ctr", "-o", f"MACs={mac}")
    assert f"server->client cipher: aes128-ctr MAC: {mac}" in log


def test_group_exchange(server: ServerHarness) -> None:
    from geossh._facade.transport import Transport
    from geossh.proto.kex import FALLBACK_MODULI

    saved = Transport._modulus_pack
    Transport._modulus_pack = list(FALLBACK_MODULI)
    try:
        log = _echo(server, "-o", "KexAlgorithms=diffie-hellman-group-exchange-sha256")
    finally:
        Transport._modulus_pack = saved
    assert "kex: algorithm: diffie-hellman-group-exchange-sha256" in log


def test_strict_kex_reported(server: ServerHarness) -> None:
    log = _echo(server, "-vvv")
    assert "kex_choose_conf: will use strict KEX ordering" in log
    assert server.transports[0].agreed_on_strict_kex


def test_strict_kex_can_be_disabled(server: ServerHarness) -> None:
    def configure(transport):  # type: ignore[no-untyped-def]
        transport.advertise_strict_kex = False

    server.configure = configure
    log = _echo(server, "-vvv")
    assert "will use strict KEX ordering" not in log
    assert not server.transports[0].agreed_on_strict_kex


def test_client_initiated_rekey(server: ServerHarness) -> None:
    require("ssh")
    data = bytes(range(256)) * 16384  # 4 MiB
    result = server.ssh_run("sha256", input=data, options=["-o", "RekeyLimit=1M", "-v"])
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    import hashlib

    assert result.stdout.decode().strip() == hashlib.sha256(data).hexdigest()
    assert result.stderr.decode().count("SSH2_MSG_NEWKEYS received") >= 2


def test_server_initiated_rekey(server: ServerHarness) -> None:
    require("ssh")

    def configure(transport):  # type: ignore[no-untyped-def]
        transport.rekey_bytes = 1 << 20

    server.configure = configure
    result = server.ssh_run("generate", str(4 << 20), options=["-v"])
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    from tests.support import pattern_block

    assert result.stdout == pattern_block(4 << 20)
    assert result.stderr.decode().count("SSH2_MSG_NEWKEYS received") >= 2


@pytest.mark.parametrize(
    "cipher", ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes128-ctr"]
)
def test_many_server_rekeys_keep_data_intact(server: ServerHarness, cipher: str) -> None:
    """A re-key every 128 KiB, both directions, mid-stream: no byte lost or changed."""
    require("ssh")
    import hashlib

    from tests.support import pattern_block

    def configure(transport):  # type: ignore[no-untyped-def]
        transport.rekey_bytes = 128 * 1024

    server.configure = configure
    size = 4 << 20
    down = server.ssh_run("generate", str(size), options=["-c", cipher, "-v"])
    assert down.returncode == 0, down.stderr.decode(errors="replace")[-2000:]
    assert down.stdout == pattern_block(size)
    # The byte limit is soft: a new exchange cannot start until the peer's
    # NEWKEYS, and data keeps flowing meanwhile. Several re-keys must happen.
    assert down.stderr.decode().count("SSH2_MSG_NEWKEYS received") >= 4
    data = pattern_block(size)
    up = server.ssh_run("sha256", input=data, options=["-c", cipher])
    assert up.returncode == 0, up.stderr.decode(errors="replace")[-2000:]
    assert up.stdout.decode().strip() == hashlib.sha256(data).hexdigest()
