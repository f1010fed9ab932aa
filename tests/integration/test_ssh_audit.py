"""ssh-audit (PyPI) finds no failure in a default ``geossh.Server`` and only vetted algorithms.

``ssh-audit`` exits 0 (good), 2 (warnings only), 3 (at least one ``[fail]``)
or 1 (connection error); in its JSON each algorithm carries ``notes`` with
``fail``/``warn``/``info`` lists. The server under test is a default
``Server`` with the host keys it generates itself (Ed25519, ECDSA P-256,
RSA-3072) on a free loopback port. Every algorithm it offers must be in
``ALLOWED``: a weak algorithm added to a default list fails this test even
where ssh-audit would only warn. Warnings are accepted (classic
curve25519/DH have no post-quantum protection; plain hmac-sha2 is
encrypt-and-MAC) and listed in SECURITY.md. The connection-rate (DHEat) probe
is skipped: it measures timing, and PerSourcePenalties refuse its flood.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.subprocess
import pytest

from geossh._facade.transport import Transport
from geossh.proto.kex import FALLBACK_MODULI
from geossh.runner.server import Server

ALLOWED = {
    "kex": {
        "mlkem768x25519-sha256",
        "sntrup761x25519-sha512",  # with geossh[pq]
        "sntrup761x25519-sha512@openssh.com",
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group18-sha512",
        "diffie-hellman-group14-sha256",
        "diffie-hellman-group-exchange-sha256",
        "kex-strict-s-v00@openssh.com",
    },
    "key": {"ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"},
    "enc": {
        "chacha20-poly1305@openssh.com",
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-ctr",
        "aes192-ctr",
        "aes256-ctr",
    },
    "mac": {
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-512-etm@openssh.com",
        "hmac-sha2-256",
        "hmac-sha2-512",
    },
}
GOOD, CONNECTION_ERROR, WARNING, FAILURE = 0, 1, 2, 3


def _require_ssh_audit() -> None:
    try:
        import ssh_audit  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ssh-audit must be installed in CI (the test extra has it)")
        pytest.skip("ssh-audit not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def host_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit-keys")


@pytest.fixture(params=["default", "group-exchange"])
def audited(
    request: pytest.FixtureRequest, host_key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Server]:
    """A default Server; ``group-exchange`` also offers GEX (moduli loaded, as operators may)."""
    _require_ssh_audit()
    if request.param == "group-exchange":
        monkeypatch.setattr(Transport, "_modulus_pack", list(FALLBACK_MODULI))
    server = Server(("127.0.0.1", 0), host_key_dir=host_key_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop(timeout=1)


def ssh_audit(port: int, *options: str) -> tuple[int, str]:
    """Run ssh-audit against 127.0.0.1:``port``; (exit status, stdout)."""
    argv = [sys.executable, "-m", "ssh_audit", "--skip-rate-test", "-t", "20"]
    argv += [*options, "-p", str(port), "127.0.0.1"]
    result = gevent.subprocess.run(argv, capture_output=True, timeout=120, check=False)
    return result.returncode, result.stdout.decode(errors="replace")


def test_no_failures(audited: Server) -> None:
    status, out = ssh_audit(audited.port, "-n")
    assert "[fail]" not in out, out
    assert status in (GOOD, WARNING), out


def test_only_vetted_algorithms_are_offered(audited: Server) -> None:
    status, out = ssh_audit(audited.port, "-j")
    assert status in (GOOD, WARNING), out
    report: dict[str, Any] = json.loads(out)
    assert report["cves"] == []
    for category, allowed in ALLOWED.items():
        offered = {entry["algorithm"] for entry in report[category]}
        assert offered, f"nothing offered for {category}"
        assert offered <= allowed, f"{category}: not vetted: {sorted(offered - allowed)}"
        failing = [e["algorithm"] for e in report[category] if e.get("notes", {}).get("fail")]
        assert not failing, f"{category}: ssh-audit fails {failing}"
    kex = {entry["algorithm"] for entry in report["kex"]}
    assert "kex-strict-s-v00@openssh.com" in kex  # the Terrapin countermeasure
    assert report["compression"] == ["none"]


def test_nist_curves_come_back_only_when_asked(host_key_dir: Path) -> None:
    """Control: with ``disabled_algorithms={}`` the audit fails, so the test can fail."""
    _require_ssh_audit()
    server = Server(("127.0.0.1", 0), host_key_dir=host_key_dir, disabled_algorithms={})
    server.start()
    try:
        status, out = ssh_audit(server.port, "-n")
    finally:
        server.stop(timeout=1)
    assert status == FAILURE and "[fail]" in out
    assert "ecdh-sha2-nistp256" in out
