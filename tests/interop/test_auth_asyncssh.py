"""asyncssh's client authenticates to geossh: certificates, password change, hostbased, kbd-int.

Certificates are issued by asyncssh itself (a CA key made per test), so each
validation rule can be tried: trusted and untrusted CAs, principals, the
validity window, ``force-command`` and ``source-address``. The client runs
in gevent's thread pool on its own asyncio loop.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

import asyncssh
import pytest

import geossh
from tests.support import PASSWORD, USER, ServerHarness, TestServer, in_thread

pytestmark = pytest.mark.interop


def ca_pkey(ca: asyncssh.SSHKey) -> geossh.PKey:
    return geossh.PKey.from_type_string(ca.algorithm.decode(), ca.public_data)


async def _connect(port: int, **options: Any) -> str:
    """Connect, run ``echo ok``, return its output (asyncssh errors propagate)."""
    options = {"known_hosts": None, "agent_path": None, "username": USER, **options}
    async with asyncssh.connect("127.0.0.1", port, **options) as conn:
        result = await conn.run("echo ok", check=True)
        return str(result.stdout)


def connect(server: ServerHarness, **options: Any) -> str:
    server.start()
    return in_thread(asyncio.run, _connect(server.port, **options))


class CertServer(TestServer):
    """Trusts one CA; records what it was asked."""

    ca: geossh.PKey | None = None

    def check_auth_cert_authority(self, username: str, ca_key: geossh.PKey) -> bool:
        self.events.append(("ca", username))
        return ca_key == self.ca

    def check_auth_publickey(self, username: str, key: geossh.PKey) -> int:
        blob = key.public_blob
        self.events.append(("publickey", username, blob.key_type if blob else key.get_name()))
        return geossh.AUTH_FAILED  # only certificates get in


def issue(
    key_type: str = "ssh-ed25519", *, principals: tuple[str, ...] = (USER,), **options: Any
) -> tuple[asyncssh.SSHKey, asyncssh.SSHKey, asyncssh.SSHCertificate]:
    """A CA, a user key and a certificate for it (valid for five minutes by default)."""
    ca = asyncssh.generate_private_key("ssh-ed25519")
    user = asyncssh.generate_private_key(
        key_type, **({"key_size": 2048} if "rsa" in key_type else {})
    )
    now = int(time.time())
    options = {"valid_after": now - 300, "valid_before": now + 300, **options}
    cert = ca.generate_user_certificate(user, "cert-id", principals=list(principals), **options)
    return ca, user, cert


def cert_server(server: ServerHarness, ca: asyncssh.SSHKey) -> None:
    trusted = ca_pkey(ca)

    def make(harness: ServerHarness) -> CertServer:
        app = CertServer(harness)
        app.ca = trusted
        return app

    server.interface = make


@pytest.mark.parametrize("key_type", ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"])
def test_certificate_from_trusted_ca(server: ServerHarness, key_type: str) -> None:
    ca, user, cert = issue(key_type)
    cert_server(server, ca)
    assert connect(server, client_keys=[(user, cert)], preferred_auth="publickey") == "ok\n"
    assert ("ca", USER) in server.servers[0].events  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "problem",
    ["expired", "not yet valid", "other principal", "force-command", "source-address",
     "untrusted ca"],
)  # fmt: skip
def test_certificate_refused(server: ServerHarness, problem: str) -> None:
    now = int(time.time())
    options: dict[str, Any] = {
        "expired": {"valid_after": now - 600, "valid_before": now - 300},
        "not yet valid": {"valid_after": now + 300, "valid_before": now + 600},
        "other principal": {"principals": ("bob",)},
        "force-command": {"force_command": "/bin/false"},
        "source-address": {"source_address": ["192.0.2.0/24"]},
        "untrusted ca": {},
    }[problem]
    ca, user, cert = issue(**options)
    cert_server(
        server, asyncssh.generate_private_key("ssh-ed25519") if problem == "untrusted ca" else ca
    )
    with pytest.raises(asyncssh.PermissionDenied):
        connect(server, client_keys=[(user, cert)], preferred_auth="publickey")
    events = server.servers[0].events  # type: ignore[attr-defined]
    if problem == "untrusted ca":  # paramiko's fallback: the app sees the certificate
        assert ("publickey", USER, "ssh-ed25519-cert-v01@openssh.com") in events
    else:
        assert ("publickey", USER, "ssh-ed25519-cert-v01@openssh.com") not in events
    assert not server.transports[0].is_authenticated()


def test_certificate_source_address_matching(server: ServerHarness) -> None:
    ca, user, cert = issue(source_address=["127.0.0.0/8"])
    cert_server(server, ca)
    assert connect(server, client_keys=[(user, cert)], preferred_auth="publickey") == "ok\n"


def test_force_command_honoured_by_the_application(server: ServerHarness) -> None:
    ca, user, cert = issue(force_command="echo forced")
    trusted = ca_pkey(ca)

    class Forced(CertServer):
        def check_auth_certificate(self, username: str, key: geossh.PKey, certificate: Any) -> int:
            self.forced = certificate.force_command
            return geossh.AUTH_SUCCESSFUL

    def make(harness: ServerHarness) -> Forced:
        app = Forced(harness)
        app.ca = trusted
        return app

    server.interface = make
    assert connect(server, client_keys=[(user, cert)], preferred_auth="publickey") == "ok\n"
    assert server.servers[0].forced == "echo forced"  # type: ignore[attr-defined]


class ExpiringPassword(TestServer):
    """The password is right but expired; the client must choose a new one."""

    def __init__(self, harness: ServerHarness) -> None:
        super().__init__(harness)
        self.password = PASSWORD

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        self.events.append(("password", username))
        if username == USER and hmac.compare_digest(str(password).encode(), self.password.encode()):
            return geossh.AUTH_PASSWORD_CHANGE_REQUIRED
        return geossh.AUTH_FAILED

    def get_password_change_prompt(self, username: str) -> str:
        return f"Password of {username} expired"

    def check_auth_password_change(self, username: str, old: str | bytes, new: str | bytes) -> int:
        self.events.append(("change", username, new))
        if not hmac.compare_digest(str(old).encode(), self.password.encode()):
            return geossh.AUTH_FAILED
        if len(str(new)) < 8:
            return geossh.AUTH_PASSWORD_CHANGE_REQUIRED  # too weak: asked again
        self.password = str(new)
        return geossh.AUTH_SUCCESSFUL


class ChangingClient(asyncssh.SSHClient):
    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.new_passwords = ["weak", "much-stronger"]

    def password_auth_requested(self) -> str:
        return PASSWORD

    def password_change_requested(self, prompt: str, lang: str) -> tuple[str, str]:
        self.prompts.append(prompt)
        return PASSWORD, self.new_passwords.pop(0)


def test_password_change(server: ServerHarness) -> None:
    server.interface = ExpiringPassword
    client = ChangingClient()
    output = connect(server, client_factory=lambda: client, preferred_auth="password")
    assert output == "ok\n"
    assert client.prompts == [f"Password of {USER} expired"] * 2
    events = server.servers[0].events  # type: ignore[attr-defined]
    assert events == [
        ("password", USER),
        ("change", USER, "weak"),
        ("change", USER, "much-stronger"),
    ]
    assert server.servers[0].password == "much-stronger"  # type: ignore[attr-defined]
    assert server.transports[0]._conn.auth.failures == 1  # the refused weak password


def test_hostbased(server: ServerHarness) -> None:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    known = geossh.PKey.from_type_string("ssh-ed25519", host_key.public_data)

    class Hostbased(TestServer):
        def get_allowed_auths(self, username: str) -> str:
            return "hostbased"

        def check_auth_hostbased(
            self, username: str, key: geossh.PKey, client_host: str, client_user: str
        ) -> int:
            self.events.append(("hostbased", username, client_host, client_user))
            ok = key == known and client_host == "client.example." and client_user == "bob"
            return geossh.AUTH_SUCCESSFUL if ok else geossh.AUTH_FAILED

    server.interface = Hostbased
    options = {"client_host_keys": [host_key], "client_host": "client.example.",
               "client_username": "bob", "preferred_auth": "hostbased"}  # fmt: skip
    assert connect(server, **options) == "ok\n"
    assert ("hostbased", USER, "client.example.", "bob") in server.servers[0].events  # type: ignore[attr-defined]
    other = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        connect(server, **{**options, "client_host_keys": [other]})


def test_keyboard_interactive_rounds(server: ServerHarness) -> None:
    class Rounds(TestServer):
        def check_auth_interactive_response(self, responses: list[str]) -> Any:
            if responses == [PASSWORD]:
                return geossh.InteractiveQuery("otp", "", ("Code: ", True))
            return geossh.AUTH_SUCCESSFUL if responses == ["424242"] else geossh.AUTH_FAILED

    class Client(asyncssh.SSHClient):
        def kbdint_auth_requested(self) -> str:
            return ""

        def kbdint_challenge_received(
            self, name: str, instructions: str, lang: str, prompts: list[tuple[str, bool]]
        ) -> list[str]:
            return [PASSWORD] if prompts[0][0] == "Password: " else ["424242"]

    server.interface = Rounds
    assert connect(server, client_factory=Client, preferred_auth="keyboard-interactive") == "ok\n"
