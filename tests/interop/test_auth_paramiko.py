"""paramiko's client authenticates to geossh: password, keys, interactive, two factors.

The client runs in gevent's thread pool (``in_thread``) while the geossh
server keeps serving in the hub. Each test checks what the client saw
(success, ``BadAuthenticationType`` with the method list, the banner) and
what the server application was asked.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import gevent
import paramiko
import pytest

import geossh
from tests.support import PASSWORD, USER, ServerHarness, TestServer, in_thread

pytestmark = pytest.mark.interop


def connect(port: int) -> paramiko.Transport:
    client = paramiko.Transport(("127.0.0.1", port))
    client.start_client(timeout=20)
    return client


def session(server: ServerHarness, auth: Callable[[paramiko.Transport], Any]) -> Any:
    """Connect, run ``auth(client)`` in a thread, close; returns what ``auth`` returned."""
    server.start()
    client = in_thread(connect, server.port)
    try:
        return in_thread(auth, client)
    finally:
        in_thread(client.close)


def server_transport(server: ServerHarness) -> geossh.Transport:
    return server.transports[0]


def test_password(server: ServerHarness) -> None:
    def auth(client: paramiko.Transport) -> list[str]:
        result = client.auth_password(USER, PASSWORD)
        assert client.is_authenticated()
        return result  # type: ignore[no-any-return]

    server.start()
    client = in_thread(connect, server.port)
    try:
        assert in_thread(auth, client) == []
        transport = server_transport(server)
        assert transport.is_authenticated() and transport.get_username() == USER
    finally:
        in_thread(client.close)
    assert server.servers[0].events == [("password", USER)]  # type: ignore[attr-defined]


def test_wrong_password(server: ServerHarness) -> None:
    def auth(client: paramiko.Transport) -> None:
        with pytest.raises(paramiko.AuthenticationException):
            client.auth_password(USER, "wrong")
        assert not client.is_authenticated()
        assert client.auth_password(USER, PASSWORD) == []  # the connection goes on

    session(server, auth)
    assert server_transport(server)._conn.auth.failures == 1


@pytest.mark.parametrize("name", ["user_ed25519", "user_ecdsa", "user_rsa"])
def test_publickey(server: ServerHarness, name: str) -> None:
    key = paramiko.PKey.from_path(str(server.keydir / name))

    def auth(client: paramiko.Transport) -> None:
        assert client.auth_publickey(USER, key) == []

    session(server, auth)
    expected = ("publickey", USER, key.get_name())
    assert server.servers[0].events == [expected]  # type: ignore[attr-defined]


def test_unknown_key_refused(server: ServerHarness) -> None:
    key = paramiko.PKey.from_path(str(server.keydir / "other_ed25519"))

    def auth(client: paramiko.Transport) -> None:
        with pytest.raises(paramiko.AuthenticationException):
            client.auth_publickey(USER, key)

    session(server, auth)
    assert not server_transport(server).is_authenticated()


def test_interactive_handler_several_rounds(server: ServerHarness) -> None:
    class TwoRounds(TestServer):
        def check_auth_interactive(self, username: str, submethods: bytes) -> Any:
            self.events.append(("interactive", username, submethods))
            return geossh.InteractiveQuery("login", "Step 1", ("Password: ", False))

        def check_auth_interactive_response(self, responses: list[str]) -> Any:
            self.events.append(("responses", responses))
            if len(responses) == 1 and hmac.compare_digest(responses[0], PASSWORD):
                return geossh.InteractiveQuery("otp", "Step 2", ("Code: ", True), ("PIN: ", False))
            ok = responses == ["123456", "0000"]
            return geossh.AUTH_SUCCESSFUL if ok else geossh.AUTH_FAILED

    seen: list[tuple[str, str, list[tuple[str, bool]]]] = []

    def handler(title: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        seen.append((title, instructions, list(prompts)))
        return {1: [PASSWORD], 2: ["123456", "0000"]}[len(prompts)]

    server.interface = TwoRounds

    def auth(client: paramiko.Transport) -> None:
        assert client.auth_interactive(USER, handler, submethods="pam") == []

    session(server, auth)
    assert seen == [
        ("login", "Step 1", [("Password: ", False)]),
        ("otp", "Step 2", [("Code: ", True), ("PIN: ", False)]),
    ]
    events = server.servers[0].events  # type: ignore[attr-defined]
    assert events[0] == ("interactive", USER, b"pam")
    assert events[2] == ("responses", ["123456", "0000"])


class KeyAndPassword(TestServer):
    """Two factors in paramiko's "paranoid" style: a password, then a key."""

    def __init__(self, harness: ServerHarness) -> None:
        super().__init__(harness)
        self.password_ok = False
        self.greenlets: list[Any] = []

    def get_allowed_auths(self, username: str) -> str:
        return "publickey" if self.password_ok else "password"

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        self.greenlets.append(gevent.getcurrent())
        ok = username == USER and hmac.compare_digest(str(password).encode(), PASSWORD.encode())
        self.password_ok = self.password_ok or ok
        return geossh.AUTH_PARTIALLY_SUCCESSFUL if ok else geossh.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: geossh.PKey) -> int:
        self.greenlets.append(gevent.getcurrent())
        if self.password_ok and key in self.harness.authorized_keys:
            return geossh.AUTH_SUCCESSFUL
        return geossh.AUTH_FAILED


def test_two_factor_partial_success(server: ServerHarness) -> None:
    server.interface = KeyAndPassword
    key = paramiko.PKey.from_path(str(server.keydir / "user_ed25519"))

    def auth(client: paramiko.Transport) -> None:
        with pytest.raises(paramiko.BadAuthenticationType) as err:
            client.auth_publickey(USER, key)  # a key alone is not enough
        assert err.value.allowed_types == ["password"]
        assert client.auth_password(USER, PASSWORD) == ["publickey"]  # partial success
        assert not client.is_authenticated()
        assert client.auth_publickey(USER, key) == []
        assert client.is_authenticated()

    session(server, auth)
    transport = server_transport(server)
    assert transport._conn.auth.failures == 1
    # Callbacks run in the connection's own greenlet.
    app = server.servers[0]
    assert app.greenlets and all(g is transport._greenlet for g in app.greenlets)  # type: ignore[attr-defined]


def test_none_lists_the_methods(server: ServerHarness) -> None:
    def auth(client: paramiko.Transport) -> None:
        with pytest.raises(paramiko.BadAuthenticationType) as err:
            client.auth_none(USER)
        assert err.value.allowed_types == ["publickey", "password", "keyboard-interactive"]

    session(server, auth)


def test_banner(server: ServerHarness) -> None:
    class BannerServer(TestServer):
        def get_banner(self) -> tuple[str, None]:
            return ("Welcome to geossh\r\n", None)

    server.interface = BannerServer

    def auth(client: paramiko.Transport) -> str:
        client.auth_password(USER, PASSWORD)
        return client.get_banner()  # type: ignore[no-any-return]

    assert session(server, auth) == b"Welcome to geossh\r\n"


def test_callback_exception_fails_only_that_request(server: ServerHarness) -> None:
    class Flaky(TestServer):
        calls = 0

        def check_auth_password(self, username: str, password: str | bytes) -> int:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("database unavailable")
            return super().check_auth_password(username, password)

    server.interface = Flaky

    def auth(client: paramiko.Transport) -> None:
        with pytest.raises(paramiko.AuthenticationException):
            client.auth_password(USER, PASSWORD)
        assert client.auth_password(USER, PASSWORD) == []

    session(server, auth)


def test_returning_false_does_not_grant_access(server: ServerHarness) -> None:
    """paramiko reads ``False`` as AUTH_SUCCESSFUL (== 0); geossh fails closed."""

    class Sloppy(TestServer):
        def check_auth_password(self, username: str, password: str | bytes) -> Any:
            return password == "never"  # a bool: False for the wrong password

    server.interface = Sloppy

    def auth(client: paramiko.Transport) -> None:
        with pytest.raises(paramiko.AuthenticationException):
            client.auth_password(USER, "wrong")
        assert not client.is_authenticated()

    session(server, auth)


def test_max_auth_tries(server: ServerHarness) -> None:
    def configure(transport: geossh.Transport) -> None:
        transport.max_auth_tries = 3

    server.configure = configure

    def auth(client: paramiko.Transport) -> None:
        for _ in range(2):
            with pytest.raises(paramiko.AuthenticationException):
                client.auth_password(USER, "wrong")
        with pytest.raises((paramiko.SSHException, EOFError)):
            client.auth_password(USER, "wrong")
        client.join(20)
        assert not client.is_active()

    session(server, auth)
    exc = server_transport(server).get_exception()
    assert exc is not None and exc.code == 14  # type: ignore[attr-defined]
