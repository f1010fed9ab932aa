"""Hostile and malformed authentication traffic, sent raw through paramiko's client transport.

``RawClient`` finishes key exchange like any paramiko client, then sends
hand-built USERAUTH packets with ``_send_message`` and records every
auth-layer reply (FAILURE, SUCCESS, PK_OK/INFO_REQUEST, UNIMPLEMENTED,
SERVICE_ACCEPT) and the DISCONNECT reason. Each case checks the server's
answer as OpenSSH would give it, that the application was not told a
request succeeded, and that nothing raised inside the server.
"""

from __future__ import annotations

import logging
import queue
import struct
from collections.abc import Callable, Iterator
from typing import Any

import paramiko
import pytest

import geossh
from geossh.proto import keys
from tests.support import PASSWORD, USER, ServerHarness, TestServer, in_thread

CLOSED = -1
UNIMPLEMENTED, DISCONNECT, SERVICE_ACCEPT = 3, 1, 6
FAILURE, SUCCESS, BANNER, PK_OK, INFO_REQUEST = 51, 52, 53, 60, 60


def s(data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return struct.pack(">I", len(data)) + data


class RawClient(paramiko.Transport):
    """paramiko's client transport that records auth-layer replies instead of acting on them."""

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port))
        self.replies: queue.Queue[tuple[int, bytes]] = queue.Queue()
        for ptype in (UNIMPLEMENTED, SERVICE_ACCEPT, FAILURE, SUCCESS, BANNER, PK_OK):
            self._handler_table[ptype] = self._recorder(ptype)

    def _recorder(self, ptype: int) -> Callable[[paramiko.Message], None]:
        return lambda m: self.replies.put((ptype, m.asbytes()))

    def _parse_disconnect(self, m: paramiko.Message) -> None:
        self.replies.put((DISCONNECT, struct.pack(">I", m.get_int())))

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.replies.put((CLOSED, b""))

    def send(self, payload: bytes) -> None:
        self._send_message(paramiko.Message(payload))

    def flood(self, payload: bytes, count: int) -> None:
        """Send ``payload`` ``count`` times; stop quietly once the server hung up.

        The server may disconnect before the last copies are written: the
        replies already received say why, and the test reads those.
        """
        for _ in range(count):
            try:
                self.send(payload)
            except (EOFError, OSError):
                return

    def expect(self) -> tuple[int, bytes]:
        """The next reply (waits for the server; bounded by the test timeout)."""
        reply = self.replies.get(timeout=30)
        if reply[0] == CLOSED:
            self.replies.put(reply)  # stays closed for later calls
        return reply

    def disconnect_code(self) -> int:
        """Wait for the connection to end; the DISCONNECT reason (or CLOSED)."""
        while True:
            ptype, body = self.expect()
            if ptype == DISCONNECT:
                return struct.unpack(">I", body)[0]  # type: ignore[no-any-return]
            if ptype == CLOSED:
                return CLOSED


def request(
    method: str, *fields: bytes, user: bytes | str = USER, service: str = "ssh-connection"
) -> bytes:
    return b"\x32" + s(user) + s(service) + s(method) + b"".join(fields)


def password(secret: str | bytes, user: bytes | str = USER) -> bytes:
    return request("password", b"\x00", s(secret), user=user)


def failure(reply: tuple[int, bytes]) -> tuple[list[str], bool]:
    ptype, body = reply
    assert ptype == FAILURE, reply
    length = struct.unpack(">I", body[:4])[0]
    names = body[4 : 4 + length].decode()
    return (names.split(",") if names else []), body[4 + length] == 1


class Recording(TestServer):
    """TestServer that also records every ``check_auth_*`` and can be told to raise."""

    raise_in_callbacks = False

    def _note(self, *event: Any) -> None:
        if event:
            self.events.append(event)
        if self.raise_in_callbacks:
            raise RuntimeError("application bug")

    def check_auth_none(self, username: str) -> int:
        self._note("none", username)
        return geossh.AUTH_FAILED

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        result = super().check_auth_password(username, password)  # records ("password", user)
        self._note()
        return result

    def check_auth_publickey(self, username: str, key: geossh.PKey) -> int:
        result = super().check_auth_publickey(username, key)  # records ("publickey", user, type)
        self._note()
        return result

    def check_auth_interactive(self, username: str, submethods: bytes) -> Any:
        self._note("interactive", username)
        return super().check_auth_interactive(username, submethods)


@pytest.fixture
def hostile(server: ServerHarness, caplog: pytest.LogCaptureFixture) -> Iterator[ServerHarness]:
    """The server with a recording application; afterwards, nothing may have raised inside."""
    caplog.set_level(logging.INFO)
    server.interface = Recording
    server.start()
    yield server
    crashes = [r for r in caplog.records if "Unknown exception" in r.getMessage()]
    assert not crashes, crashes


def run(server: ServerHarness, script: Callable[[RawClient], Any], *, service: bool = True) -> Any:
    """Key exchange, optionally SERVICE_REQUEST ssh-userauth, then ``script(client)``."""

    def body() -> Any:
        client = RawClient(server.port)
        try:
            client.start_client(timeout=20)
            if service:
                client.send(b"\x05" + s("ssh-userauth"))
                assert client.expect() == (SERVICE_ACCEPT, s("ssh-userauth"))
            return script(client)
        finally:
            client.close()

    return in_thread(body)


def app_events(server: ServerHarness) -> list[tuple[Any, ...]]:
    return server.servers[0].events  # type: ignore[attr-defined, no-any-return]


def not_authenticated(server: ServerHarness) -> None:
    transport = server.transports[0]
    assert not transport.authenticated
    assert not transport._conn.auth.authenticated


def user_key(server: ServerHarness, name: str = "user_ed25519") -> keys.SSHKey:
    return keys.load_private_key((server.keydir / name).read_bytes())


def signed_publickey(
    client: RawClient, key: keys.SSHKey, algorithm: str, *, session_id: bytes | None = None,
    signer: keys.SSHKey | None = None, sig_algorithm: str | None = None,
) -> bytes:  # fmt: skip
    prefix = request("publickey", b"\x01", s(algorithm), s(key.public_blob))
    sid = client.session_id if session_id is None else session_id
    signature = (signer or key).sign(s(sid) + prefix, sig_algorithm or algorithm)
    return prefix + s(signature)


# -- service layer ----------


def test_auth_request_before_service_accept(hostile: ServerHarness) -> None:
    def script(client: RawClient) -> int:
        client.send(password(PASSWORD))
        return client.disconnect_code()

    assert run(hostile, script, service=False) == 2  # PROTOCOL_ERROR
    assert app_events(hostile) == []
    not_authenticated(hostile)


def test_unknown_service_request(hostile: ServerHarness) -> None:
    def script(client: RawClient) -> int:
        client.send(b"\x05" + s("ssh-connection"))
        return client.disconnect_code()

    assert run(hostile, script, service=False) == 7  # SERVICE_NOT_AVAILABLE


def test_auth_request_for_unknown_service(hostile: ServerHarness) -> None:
    def script(client: RawClient) -> int:
        client.send(request("none", service="ssh-frobnicator"))
        return client.disconnect_code()

    assert run(hostile, script) == 7
    assert app_events(hostile) == []


def test_client_sending_userauth_success_is_unimplemented(hostile: ServerHarness) -> None:
    """CVE-2018-1000805's shape: a client's USERAUTH_SUCCESS must not authenticate it."""

    def script(client: RawClient) -> tuple[tuple[int, bytes], int]:
        client.send(b"\x34")
        unimplemented = client.expect()
        client.send(b"\x5a" + s("session") + struct.pack(">III", 0, 65536, 32768))
        return unimplemented, client.disconnect_code()

    (ptype, _), code = run(hostile, script)
    assert ptype == UNIMPLEMENTED and code == 2
    not_authenticated(hostile)


# -- requests the core refuses ----------


def test_unknown_method_gets_failure(hostile: ServerHarness) -> None:
    def script(client: RawClient) -> tuple[list[str], bool]:
        client.send(request("gssapi-with-mic", struct.pack(">I", 0)))
        return failure(client.expect())

    assert run(hostile, script) == (["publickey", "password", "keyboard-interactive"], False)
    assert app_events(hostile) == []
    assert hostile.transports[0]._conn.auth.failures == 1


@pytest.mark.parametrize(
    "blob",
    [b"", s("ssh-ed25519") + s(b"short"), s("ssh-rsa") + s(b"\x00") + s(b"\x00"), b"\xff" * 40],
)
def test_malformed_public_key_blob(hostile: ServerHarness, blob: bytes) -> None:
    def script(client: RawClient) -> tuple[list[str], bool]:
        client.send(request("publickey", b"\x00", s("ssh-ed25519"), s(blob)))
        return failure(client.expect())

    assert run(hostile, script)[1] is False
    assert app_events(hostile) == []


@pytest.mark.parametrize("variant", ["wrong session id", "different key", "rsa-sha2-256 for 512"])
def test_bad_signature_fails_and_app_is_not_asked(hostile: ServerHarness, variant: str) -> None:
    rsa = user_key(hostile, "user_rsa")
    kwargs: dict[str, Any] = {
        "wrong session id": {"session_id": bytes(32)},
        "different key": {"signer": keys.generate("rsa", 2048)},
        "rsa-sha2-256 for 512": {"sig_algorithm": "rsa-sha2-256"},
    }[variant]

    def script(client: RawClient) -> tuple[list[str], bool]:
        client.send(signed_publickey(client, rsa, "rsa-sha2-512", **kwargs))
        return failure(client.expect())

    assert run(hostile, script)[1] is False
    assert app_events(hostile) == []  # the (authorized!) key was never put to the application
    not_authenticated(hostile)


def test_correct_signature_control(hostile: ServerHarness) -> None:
    """The same raw path with a right signature does get in (the negative tests are real)."""
    rsa = user_key(hostile, "user_rsa")

    def script(client: RawClient) -> tuple[int, bytes]:
        client.send(signed_publickey(client, rsa, "rsa-sha2-512"))
        return client.expect()

    assert run(hostile, script) == (SUCCESS, b"")
    assert app_events(hostile) == [("publickey", USER, "ssh-rsa")]


def test_sha1_rsa_is_a_counted_failure(hostile: ServerHarness) -> None:
    rsa = user_key(hostile, "user_rsa")

    def script(client: RawClient) -> tuple[list[str], bool]:
        client.send(signed_publickey(client, rsa, "ssh-rsa"))
        return failure(client.expect())

    assert run(hostile, script)[1] is False
    assert hostile.transports[0]._conn.auth.failures == 1
    assert app_events(hostile) == []


def test_overlong_user_name_and_password(hostile: ServerHarness) -> None:
    def script(client: RawClient) -> list[tuple[list[str], bool]]:
        client.send(password(PASSWORD, user="a" * 300))
        first = failure(client.expect())
        client.send(password("x" * 2000))
        return [first, failure(client.expect())]

    first, second = run(hostile, script)
    assert first == ([], False)  # nothing asked of the application, not even the method list
    assert second == (["publickey", "password", "keyboard-interactive"], False)
    assert app_events(hostile) == []


def test_change_of_user_name_disconnects(hostile: ServerHarness) -> None:
    def script(client: RawClient) -> int:
        client.send(password("wrong"))
        failure(client.expect())
        client.send(password(PASSWORD, user="root"))
        return client.disconnect_code()

    assert run(hostile, script) == 14
    not_authenticated(hostile)


def test_truncated_request_disconnects(hostile: ServerHarness) -> None:
    def script(client: RawClient) -> int:
        client.send(b"\x32" + s(USER) + b"\x00\x00")
        return client.disconnect_code()

    assert run(hostile, script) == 2


# -- keyboard-interactive ----------------------------------------


def info_response(*answers: str) -> bytes:
    return b"\x3d" + struct.pack(">I", len(answers)) + b"".join(s(a) for a in answers)


@pytest.mark.parametrize("answers", [(), (PASSWORD, PASSWORD)])
def test_wrong_number_of_interactive_answers(
    hostile: ServerHarness, answers: tuple[str, ...]
) -> None:
    def script(client: RawClient) -> tuple[int, int]:
        client.send(request("keyboard-interactive", s(""), s("")))
        ptype, _ = client.expect()
        client.send(info_response(*answers))
        return ptype, client.disconnect_code()

    assert run(hostile, script) == (INFO_REQUEST, 2)
    not_authenticated(hostile)


def test_unsolicited_interactive_answer(hostile: ServerHarness) -> None:
    def script(client: RawClient) -> int:
        client.send(info_response(PASSWORD))
        return client.disconnect_code()

    assert run(hostile, script) == 2


# -- floods and limits ----------


def test_password_flood_ends_at_max_auth_tries(hostile: ServerHarness) -> None:
    def script(client: RawClient) -> tuple[int, int]:
        client.send(request("none"))  # the first none is free
        failures = int(client.expect()[0] == FAILURE)
        client.flood(password("guess"), 20)
        while True:
            ptype, body = client.expect()
            if ptype != FAILURE:
                break
            failures += 1
        assert ptype == DISCONNECT
        return failures, struct.unpack(">I", body)[0]

    failures, code = run(hostile, script)
    assert (failures, code) == (1 + 5, 14)  # five FAILUREs, the sixth is the disconnect
    assert [e[0] for e in app_events(hostile)].count("password") == 6
    not_authenticated(hostile)


def test_probe_flood_is_bounded(hostile: ServerHarness) -> None:
    """Accepted probes (PK_OK) do not count as failures, but requests are bounded too."""
    key = user_key(hostile)

    def script(client: RawClient) -> tuple[int, int]:
        probe = request("publickey", b"\x00", s("ssh-ed25519"), s(key.public_blob))
        for _ in range(geossh.proto.auth.MAX_REQUESTS + 1):
            client.send(probe)
        pk_ok = 0
        while (reply := client.expect())[0] == PK_OK:
            pk_ok += 1
        assert reply[0] == DISCONNECT
        return pk_ok, struct.unpack(">I", reply[1])[0]

    assert run(hostile, script) == (geossh.proto.auth.MAX_REQUESTS, 14)
    not_authenticated(hostile)


def test_login_grace_time(hostile: ServerHarness) -> None:
    def configure(transport: geossh.Transport) -> None:
        transport.auth_timeout = 1.0

    hostile.configure = configure

    def script(client: RawClient) -> int:
        return client.disconnect_code()  # never authenticate

    assert run(hostile, script) == 14
    exc = hostile.transports[0].get_exception()
    assert exc is not None and "login grace time" in str(exc)


def test_application_exceptions_fail_closed(hostile: ServerHarness) -> None:
    Recording.raise_in_callbacks = True
    try:

        def script(client: RawClient) -> list[tuple[int, bytes]]:
            client.send(request("none"))
            client.send(password(PASSWORD))
            client.send(request("keyboard-interactive", s(""), s("")))
            return [client.expect() for _ in range(3)]

        replies = run(hostile, script)
    finally:
        Recording.raise_in_callbacks = False
    assert [ptype for ptype, _ in replies] == [FAILURE] * 3
    assert [e[0] for e in app_events(hostile)] == ["none", "password", "interactive"]
    not_authenticated(hostile)
