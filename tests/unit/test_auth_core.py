"""The userauth core (``geossh.proto.auth``) and its driver bridge, without sockets.

``AuthLayer`` runs over a fake transport that records what it sends; the
tests build USERAUTH packets by hand, sign them with real keys, and read the
replies back. The ``AuthBridge`` tests put a recording ``ServerInterface``
in front of the same core.
"""

from __future__ import annotations

import base64
import logging
import struct
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings, strategies as st

import geossh
from geossh._facade.authentication import AuthBridge
from geossh.errors import LocalProtocolError, RemoteProtocolError
from geossh.proto import auth as core, keys
from geossh.proto.auth import AuthLayer, AuthState, Outcome
from geossh.proto.config import ServerConfig
from geossh.proto.constants import DisconnectReason
from geossh.proto.events import AuthRequested, AuthServiceStarted, AuthSucceeded, Event

SID = bytes(range(32))
NOW = int(time.time())
ALGORITHMS = {
    "ssh-ed25519": ("ssh-ed25519", None),
    "ecdsa-sha2-nistp256": ("ecdsa", 256),
    "ecdsa-sha2-nistp384": ("ecdsa", 384),
    "ecdsa-sha2-nistp521": ("ecdsa", 521),
    "rsa-sha2-256": ("rsa", 2048),
    "rsa-sha2-512": ("rsa", 2048),
}
_KEYS: dict[tuple[str, int | None], keys.SSHKey] = {}


def key_for(kind: str, bits: int | None = None) -> keys.SSHKey:
    """One generated private key per kind (cached: RSA generation is slow)."""
    if (kind, bits) not in _KEYS:
        _KEYS[kind, bits] = keys.generate(kind, bits)
    return _KEYS[kind, bits]


def s(data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return struct.pack(">I", len(data)) + data


class FakeTransport:
    """What ``AuthLayer`` needs of ``TransportLayer``: send, session id, start time."""

    def __init__(self) -> None:
        self.session_id: bytes | None = SID
        self.started_at = 1000.0
        self.sent: list[bytes] = []
        self.host_key_blob = b"our host key blob"
        self.announced = 0

    def send(self, payload: bytes) -> None:
        self.sent.append(payload)

    def announce_host_keys(self) -> None:
        self.announced += 1

    def pop(self) -> bytes:
        assert len(self.sent) == 1, self.sent
        return self.sent.pop()


class Core:
    """An ``AuthLayer`` past SERVICE_ACCEPT, with helpers to feed and read it."""

    def __init__(self, **config: Any) -> None:
        self.transport = FakeTransport()
        self.events: deque[Event] = deque()
        self.auth = AuthLayer(ServerConfig(**config), self.transport, self.events)  # type: ignore[arg-type]
        self.auth.handle(0, b"\x05" + s("ssh-userauth"))
        assert self.transport.pop() == b"\x06" + s("ssh-userauth")
        assert isinstance(self.events.popleft(), AuthServiceStarted)

    def feed(self, payload: bytes) -> AuthRequested | None:
        assert self.auth.handle(1, payload)
        event = self.events.popleft() if self.events else None
        assert not self.events
        assert event is None or isinstance(event, AuthRequested)
        return event

    def request(self, payload: bytes) -> AuthRequested:
        event = self.feed(payload)
        assert event is not None
        return event


def request(
    method: str, *fields: bytes, user: bytes | str = "alice", service: str = "ssh-connection"
) -> bytes:
    return b"\x32" + s(user) + s(service) + s(method) + b"".join(fields)


def password(secret: bytes | str, user: bytes | str = "alice") -> bytes:
    return request("password", b"\x00", s(secret), user=user)


def publickey(
    key: keys.SSHKey,
    algorithm: str,
    *,
    signed: bool = True,
    user: str = "alice",
    session_id: bytes = SID,
    signer: keys.SSHKey | None = None,
    sig_algorithm: str | None = None,
    signed_user: str | None = None,
    blob: bytes | None = None,
) -> bytes:
    """A publickey request; the signature can be made wrong in each of its inputs."""
    blob = key.public_blob if blob is None else blob
    body = b"\x01" if signed else b"\x00"
    prefix = request("publickey", body, s(algorithm), s(blob), user=user)
    if not signed:
        return prefix
    covered = request("publickey", body, s(algorithm), s(blob), user=signed_user or user)
    signature = (signer or key).sign(s(session_id) + covered, sig_algorithm or algorithm)
    return prefix + s(signature)


def failure(payload: bytes) -> tuple[list[str], bool]:
    assert payload[0] == 51
    length = struct.unpack(">I", payload[1:5])[0]
    names = payload[5 : 5 + length].decode()
    assert len(payload) == 6 + length
    return (names.split(",") if names else []), payload[-1] == 1


# -- service request ----------


def test_service_request_unknown_service_disconnects() -> None:
    auth = AuthLayer(ServerConfig(), FakeTransport(), deque())  # type: ignore[arg-type]
    with pytest.raises(RemoteProtocolError) as err:
        auth.handle(0, b"\x05" + s("ssh-connection"))
    assert err.value.code == DisconnectReason.SERVICE_NOT_AVAILABLE


def test_auth_request_before_service_accept_disconnects() -> None:
    transport = FakeTransport()
    auth = AuthLayer(ServerConfig(), transport, deque())  # type: ignore[arg-type]
    with pytest.raises(RemoteProtocolError) as err:
        auth.handle(0, password("x"))
    assert err.value.code == DisconnectReason.PROTOCOL_ERROR
    assert transport.sent == [] and auth.username is None


def test_repeated_service_request_is_accepted_again() -> None:
    """paramiko's client sends SERVICE_REQUEST before every auth_* call; sshd accepts it."""
    c = Core()
    for _ in range(3):
        assert c.auth.handle(2, b"\x05" + s("ssh-userauth"))
        assert c.transport.pop() == b"\x06" + s("ssh-userauth")
    assert not c.events and c.auth.state is AuthState.READY
    with pytest.raises(RemoteProtocolError) as err:
        for _ in range(core.MAX_REQUESTS):
            c.auth.handle(2, b"\x05" + s("ssh-userauth"))
    assert err.value.code == DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE


def test_request_for_unknown_service_disconnects() -> None:
    c = Core()
    with pytest.raises(RemoteProtocolError) as err:
        c.feed(request("none", service="ssh-frobnicate"))
    assert err.value.code == DisconnectReason.SERVICE_NOT_AVAILABLE


@pytest.mark.parametrize("msg", [51, 52, 53, 60, 62, 79, 6, 7])
def test_server_side_messages_from_client_are_not_ours(msg: int) -> None:
    """USERAUTH_SUCCESS & co. from a client get UNIMPLEMENTED (CVE-2018-1000805)."""
    c = Core()
    assert c.auth.handle(1, bytes((msg,))) is False
    assert not c.auth.authenticated and not c.events


# -- counting ----------


def test_first_none_is_not_counted_later_ones_are() -> None:
    c = Core()
    event = c.request(request("none"))
    assert event.method == "none" and event.details["counted"] is False
    assert c.auth.outcome(core.AUTH_FAILED) is Outcome.FAILURE
    c.auth.answer(core.AUTH_FAILED, "publickey,password")
    assert failure(c.transport.pop()) == (["publickey", "password"], False)
    assert c.auth.failures == 0
    assert c.request(request("none")).details["counted"] is True
    c.auth.answer(core.AUTH_FAILED, "password")
    assert c.auth.failures == 1


def test_max_auth_tries_disconnects_with_no_more_auth_methods() -> None:
    c = Core(max_auth_tries=6)
    for attempt in range(1, 6):
        c.request(password("wrong"))
        c.auth.answer(core.AUTH_FAILED, "password")
        assert failure(c.transport.pop()) == (["password"], False)
        assert c.auth.failures == attempt
    c.request(password("wrong"))
    assert c.auth.outcome(core.AUTH_FAILED) is Outcome.DISCONNECT
    with pytest.raises(RemoteProtocolError) as err:
        c.auth.answer(core.AUTH_FAILED, "password")
    assert err.value.code == DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE == 14
    assert c.transport.sent == []  # no sixth FAILURE: the disconnect replaces it


def test_partial_success_is_not_a_failure() -> None:
    c = Core(max_auth_tries=2)
    for _ in range(5):
        c.request(password("right"))
        assert c.auth.outcome(core.AUTH_PARTIALLY_SUCCESSFUL) is Outcome.PARTIAL
        c.auth.answer(core.AUTH_PARTIALLY_SUCCESSFUL, "publickey")
        assert failure(c.transport.pop()) == (["publickey"], True)
    assert c.auth.failures == 0 and not c.auth.authenticated


def test_request_flood_is_bounded() -> None:
    """Even uncounted answers (PK_OK) stop after MAX_REQUESTS requests."""
    c = Core()
    key = key_for("ssh-ed25519")
    for _ in range(core.MAX_REQUESTS):
        c.request(publickey(key, "ssh-ed25519", signed=False))
        c.auth.answer(core.AUTH_SUCCESSFUL)
        assert c.transport.pop()[0] == 60
    with pytest.raises(RemoteProtocolError) as err:
        c.feed(publickey(key, "ssh-ed25519", signed=False))
    assert err.value.code == DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE


# -- user names and passwords ----------


def test_password_arrives_as_text_or_bytes() -> None:
    c = Core()
    event = c.request(password("héllo"))
    assert (event.username, event.method, event.details["password"]) == (
        "alice",
        "password",
        "héllo",
    )
    c.auth.answer(core.AUTH_FAILED, "password")
    c.transport.pop()
    assert c.request(password(b"\xff\xfe")).details["password"] == b"\xff\xfe"


@pytest.mark.parametrize(
    "user", [b"a" * 257, b"bad\xffutf8", b"nul\x00byte"], ids=["long", "non-utf8", "nul"]
)
def test_invalid_user_name_rejected_and_not_recorded(user: bytes) -> None:
    c = Core()
    event = c.request(password("x", user=user))
    assert event.details["rejected"] == "invalid user name"
    assert event.details["username_valid"] is False
    assert c.auth.username is None
    c.auth.answer(core.AUTH_SUCCESSFUL, "")  # even a confused driver cannot let it in
    assert failure(c.transport.pop()) == ([], False)
    assert not c.auth.authenticated


def test_user_name_at_the_bound_is_fine() -> None:
    c = Core()
    assert "rejected" not in c.request(password("x", user="a" * 256)).details


def test_password_too_long_rejected() -> None:
    c = Core(max_password_length=16)
    event = c.request(password("p" * 17))
    assert event.details["rejected"] == "password too long"
    assert "password" not in event.details


def test_change_of_user_name_disconnects() -> None:
    c = Core()
    c.request(password("x"))
    c.auth.answer(core.AUTH_FAILED, "password")
    with pytest.raises(RemoteProtocolError) as err:
        c.feed(password("x", user="root"))
    assert err.value.code == DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE


@pytest.mark.parametrize("method", ["gssapi-with-mic", "foo", "", "none\x01"])
def test_unknown_method_rejected_and_counted(method: str) -> None:
    c = Core()
    event = c.request(request(method))
    assert event.details["rejected"] == "unsupported method"
    assert event.details["counted"] is True
    c.auth.answer(core.AUTH_SUCCESSFUL, "password")
    assert failure(c.transport.pop()) == (["password"], False)
    assert c.auth.failures == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"\x32" + s("alice"),  # truncated
        request("none") + b"x",  # trailing bytes
        request("password", b"\x00"),  # missing password
        request("publickey", b"\x00", s("ssh-ed25519")),  # missing blob
        b"\x32" + s("alice") + s("ssh-connection") + s(b"\xff"),  # non-ASCII method
    ],
)
def test_malformed_requests_disconnect(payload: bytes) -> None:
    c = Core()
    with pytest.raises(RemoteProtocolError):
        c.feed(payload)


# -- publickey ----------


def test_probe_gets_pk_ok_and_is_not_counted() -> None:
    c = Core()
    key = key_for("ssh-ed25519")
    event = c.request(publickey(key, "ssh-ed25519", signed=False))
    assert event.details["signed"] is False and event.details["key"] == key.public()
    assert c.auth.outcome(core.AUTH_SUCCESSFUL) is Outcome.PK_OK
    assert c.auth.answer(core.AUTH_SUCCESSFUL) is Outcome.PK_OK
    assert c.transport.pop() == b"\x3c" + s("ssh-ed25519") + s(key.public_blob)
    assert not c.auth.authenticated and c.auth.failures == 0 and not c.events


def test_refused_probe_is_a_counted_failure() -> None:
    c = Core()
    c.request(publickey(key_for("ssh-ed25519"), "ssh-ed25519", signed=False))
    c.auth.answer(core.AUTH_FAILED, "publickey")
    assert failure(c.transport.pop()) == (["publickey"], False)
    assert c.auth.failures == 1


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_signed_request_succeeds(algorithm: str) -> None:
    c = Core()
    key = key_for(*ALGORITHMS[algorithm])
    event = c.request(publickey(key, algorithm))
    assert "rejected" not in event.details, event.details
    assert event.details["signed"] is True and event.details["algorithm"] == algorithm
    c.auth.answer(core.AUTH_SUCCESSFUL)
    assert c.transport.pop() == b"\x34"
    assert c.auth.authenticated
    assert c.events.popleft() == AuthSucceeded("alice", "publickey")


@pytest.mark.parametrize(
    "variant", ["wrong session id", "different key", "other user", "rsa hash mismatch"]
)
def test_bad_signature_is_rejected(variant: str) -> None:
    key = key_for("rsa", 2048)
    kwargs: dict[str, Any] = {
        "wrong session id": {"session_id": bytes(32)},
        "different key": {"signer": keys.generate("rsa", 1024)},
        "other user": {"signed_user": "bob"},
        "rsa hash mismatch": {"sig_algorithm": "rsa-sha2-256"},
    }[variant]
    c = Core()
    event = c.request(publickey(key, "rsa-sha2-512", **kwargs))
    assert event.details["rejected"] == "invalid signature"
    assert "key" not in event.details
    assert c.auth.outcome(core.AUTH_SUCCESSFUL) is Outcome.FAILURE
    c.auth.answer(core.AUTH_SUCCESSFUL, "publickey")
    assert failure(c.transport.pop()) == (["publickey"], False)
    assert not c.auth.authenticated and c.auth.failures == 1


def test_signature_blob_garbage_is_rejected() -> None:
    key = key_for("ssh-ed25519")
    c = Core()
    unsigned = request("publickey", b"\x01", s("ssh-ed25519"), s(key.public_blob))
    event = c.request(unsigned + s(b"garbage"))
    assert event.details["rejected"] == "invalid signature"


def test_sha1_rsa_not_allowed_by_default_is_counted_failure() -> None:
    c = Core()
    key = key_for("rsa", 2048)
    event = c.request(publickey(key, "ssh-rsa"))
    assert "not allowed" in str(event.details["rejected"])
    assert event.details["counted"] is True


def test_sha1_rsa_when_enabled() -> None:
    c = Core(pubkey_algorithms=("ssh-rsa",))
    assert "rejected" not in c.request(publickey(key_for("rsa", 2048), "ssh-rsa")).details


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        s("ssh-ed25519"),
        s("ssh-ed25519") + s(b"\x00" * 31),
        s("ssh-rsa") + s(b"\x01\x00\x01") + s(b"\x00\xff"),
        s("sk-ssh-ed25519@openssh.com") + s(b"\x00" * 32) + s("ssh:"),
        s("ecdsa-sha2-nistp256") + s(b"\x00" * 32),  # type mismatch with the algorithm
    ],
)
def test_malformed_key_blob_is_a_counted_failure(blob: bytes) -> None:
    c = Core()
    event = c.request(publickey(key_for("ssh-ed25519"), "ssh-ed25519", signed=False, blob=blob))
    assert str(event.details["rejected"]).startswith("unusable public key")
    assert event.details["counted"] is True


def test_unknown_algorithm_is_a_counted_failure() -> None:
    c = Core()
    payload = request("publickey", b"\x00", s("x-unknown-key@example.com"), s(b"x"))
    assert "not allowed" in str(c.request(payload).details["rejected"])


def make_certificate(
    user: keys.SSHKey, ca: keys.SSHKey, principals: list[bytes], **critical: bytes
) -> bytes:
    builder = (
        serialization.SSHCertificateBuilder()
        .public_key(user.public_key)  # type: ignore[arg-type]
        .type(serialization.SSHCertificateType.USER)
        .key_id(b"test")
        .valid_after(NOW - 3600)
        .valid_before(NOW + 3600)
    )
    if principals:
        builder = builder.valid_principals(principals)
    else:
        builder = builder.valid_for_all_principals()  # an empty list: sshd refuses it
    for name, value in critical.items():
        builder = builder.add_critical_option(name.replace("_", "-").encode(), value)
    cert = builder.sign(ca.private_key)  # type: ignore[arg-type]
    return base64.b64decode(cert.public_bytes().split()[1])


def test_certificate_request_carries_the_certificate() -> None:
    user, ca = key_for("ssh-ed25519"), key_for("ecdsa", 256)
    blob = make_certificate(user, ca, [b"alice"])
    c = Core()
    algorithm = "ssh-ed25519-cert-v01@openssh.com"
    event = c.request(publickey(user, algorithm, blob=blob))
    assert "rejected" not in event.details
    assert event.details["key"] == user.public()
    assert event.details["certificate"].signature_key == ca.public()  # type: ignore[attr-defined]


def test_certificate_signed_by_other_key_is_rejected() -> None:
    user, ca = key_for("ssh-ed25519"), key_for("ecdsa", 256)
    blob = make_certificate(user, ca, [b"alice"])
    c = Core()
    payload = publickey(user, "ssh-ed25519-cert-v01@openssh.com", blob=blob, signer=ca,
                        sig_algorithm="ecdsa-sha2-nistp256")  # fmt: skip
    assert c.request(payload).details["rejected"] == "invalid signature"


# -- keyboard-interactive ---------------------------------------------------------------------


def kbd_request(submethods: str = "") -> bytes:
    return request("keyboard-interactive", s(""), s(submethods))


def info_response(*answers: bytes | str) -> bytes:
    return b"\x3d" + struct.pack(">I", len(answers)) + b"".join(s(a) for a in answers)


def test_interactive_rounds() -> None:
    c = Core()
    event = c.request(kbd_request("pam"))
    assert event.method == "keyboard-interactive" and event.details["submethods"] == b"pam"
    assert c.auth.can_send_info_request(2)
    c.auth.send_info_request("name", "inst", [("Password: ", False), ("Code: ", True)])
    expected = (b"\x3c" + s("name") + s("inst") + s("") + struct.pack(">I", 2)
                + s("Password: ") + b"\x00" + s("Code: ") + b"\x01")  # fmt: skip
    assert c.transport.pop() == expected
    assert c.auth.state is AuthState.INTERACTIVE
    event = c.request(info_response("pw", "123"))
    assert event.method == "keyboard-interactive-response"
    assert event.details["responses"] == ["pw", "123"]
    c.auth.send_info_request("", "second round", [("OTP: ", True)])
    c.transport.pop()
    assert c.request(info_response("999")).details["responses"] == ["999"]
    c.auth.answer(core.AUTH_SUCCESSFUL)
    assert c.transport.pop() == b"\x34"
    assert c.events.popleft() == AuthSucceeded("alice", "keyboard-interactive-response")


@pytest.mark.parametrize("answers", [(), ("a", "b")])
def test_wrong_number_of_responses_disconnects(answers: tuple[str, ...]) -> None:
    c = Core()
    c.request(kbd_request())
    c.auth.send_info_request("", "", [("Password: ", False)])
    c.transport.pop()
    with pytest.raises(RemoteProtocolError) as err:
        c.feed(info_response(*answers))
    assert err.value.code == DisconnectReason.PROTOCOL_ERROR


def test_huge_response_count_disconnects_without_allocating() -> None:
    c = Core()
    c.request(kbd_request())
    c.auth.send_info_request("", "", [("Password: ", False)])
    with pytest.raises(RemoteProtocolError):
        c.feed(b"\x3d\xff\xff\xff\xff")


def test_info_response_when_not_asked_disconnects() -> None:
    c = Core()
    with pytest.raises(RemoteProtocolError):
        c.feed(info_response("x"))


def test_abandoned_interactive_round_counts() -> None:
    c = Core()
    c.request(kbd_request())
    c.auth.send_info_request("", "", [("Password: ", False)])
    c.transport.pop()
    assert c.request(password("x")).method == "password"
    assert c.auth.failures == 1


def test_interactive_rounds_are_bounded() -> None:
    c = Core(max_interactive_rounds=2)
    c.request(kbd_request())
    for _ in range(2):
        c.auth.send_info_request("", "", [])
        c.transport.pop()
        c.request(info_response())
    assert not c.auth.can_send_info_request(0)
    with pytest.raises(LocalProtocolError):
        c.auth.send_info_request("", "", [])
    assert not c.auth.can_send_info_request(core.MAX_PROMPTS + 1)


def test_info_request_only_for_keyboard_interactive() -> None:
    c = Core()
    c.request(password("x"))
    assert not c.auth.can_send_info_request(1)
    with pytest.raises(LocalProtocolError):
        c.auth.send_info_request("", "", [("x", True)])


# -- password change ----------


def change_request(old: str, new: str) -> bytes:
    return request("password", b"\x01", s(old), s(new))


def test_password_change_flow() -> None:
    c = Core()
    c.request(password("old"))
    c.auth.send_password_change_request("Expired", "en")
    assert c.transport.pop() == b"\x3c" + s("Expired") + s("en")
    assert c.auth.failures == 0
    event = c.request(change_request("old", "weak"))
    assert event.method == "password-change"
    assert (event.details["password"], event.details["new_password"]) == ("old", "weak")
    c.auth.send_password_change_request("Too weak")  # not acceptable: counts
    c.transport.pop()
    assert c.auth.failures == 1
    c.request(change_request("old", "Str0ng!"))
    c.auth.answer(core.AUTH_SUCCESSFUL)
    assert c.events.popleft() == AuthSucceeded("alice", "password-change")


def test_password_change_request_only_answers_password() -> None:
    c = Core()
    c.request(request("none"))
    with pytest.raises(LocalProtocolError):
        c.auth.send_password_change_request("Expired")


def test_new_password_too_long_rejected() -> None:
    c = Core(max_password_length=8)
    assert c.request(change_request("old", "n" * 9)).details["rejected"] == "password too long"


# -- hostbased ----------


def hostbased(key: keys.SSHKey, host: str, *, session_id: bytes = SID) -> bytes:
    fields = (s("ssh-ed25519"), s(key.public_blob), s(host), s("bob"))
    prefix = request("hostbased", *fields)
    return prefix + s(key.sign(s(session_id) + prefix, "ssh-ed25519"))


def test_hostbased_verified() -> None:
    c = Core()
    key = key_for("ssh-ed25519")
    event = c.request(hostbased(key, "client.example."))
    assert event.method == "hostbased"
    assert (event.details["client_host"], event.details["client_user"]) == (
        "client.example.",
        "bob",
    )
    c2 = Core()
    bad = c2.request(hostbased(key, "client.example.", session_id=bytes(32)))
    assert bad.details["rejected"] == "invalid signature"


# -- after success, banner, deadline ----------


def test_requests_after_success_are_ignored() -> None:
    c = Core()
    c.request(request("none"))
    c.auth.answer(core.AUTH_SUCCESSFUL)
    c.transport.sent.clear()
    c.events.clear()
    assert c.feed(password("x")) is None
    assert c.transport.sent == [] and c.auth.authenticated
    assert c.auth.handle(2, info_response()) is False  # UNIMPLEMENTED from the connection
    assert c.auth.handle(2, b"\x05" + s("ssh-userauth")) is False


def test_banner_only_before_success() -> None:
    transport = FakeTransport()
    auth = AuthLayer(ServerConfig(), transport, deque())  # type: ignore[arg-type]
    assert auth.send_banner("too early") is False
    c = Core()
    assert c.auth.send_banner("Welcome\r\n", "en") is True
    assert c.transport.pop() == b"\x35" + s("Welcome\r\n") + s("en")
    c.request(request("none"))
    c.auth.answer(core.AUTH_SUCCESSFUL)
    assert c.auth.send_banner("late") is False


def test_login_grace_time() -> None:
    c = Core(auth_timeout=120.0)
    assert c.auth.deadline() == 1120.0
    c.auth.check_deadline(1119.9)
    with pytest.raises(RemoteProtocolError) as err:
        c.auth.check_deadline(1120.0)
    assert err.value.code == DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE
    c.request(request("none"))
    c.auth.answer(core.AUTH_SUCCESSFUL)
    assert c.auth.deadline() is None
    c.auth.check_deadline(1e9)


def test_answer_without_pending_request() -> None:
    c = Core()
    with pytest.raises(LocalProtocolError):
        c.auth.answer(core.AUTH_SUCCESSFUL)


def test_no_class_level_mutable_state() -> None:
    assert not hasattr(AuthLayer, "allowed_methods")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_fuzzed_auth_messages_parse_or_raise_remote_error(bodies: list[bytes]) -> None:
    """Arbitrary bytes after each auth message number: an event, UNIMPLEMENTED or a disconnect."""
    c = Core()
    for i, body in enumerate(bodies):
        payload = bytes((50 + (i % 2) * 11,)) + body
        try:
            c.auth.handle(i, payload)
        except RemoteProtocolError:
            return
        while c.events:
            event = c.events.popleft()
            if isinstance(event, AuthRequested) and c.auth.state is AuthState.DECIDING:
                c.auth.answer(core.AUTH_FAILED, "password")
        assert not c.auth.authenticated


# -- the bridge: ServerInterface calls ----------


class Recorder(geossh.ServerInterface):
    """Records every call; results are set per test."""

    def __init__(self, **results: Any) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.results = {"cert_authority": False, "banner": (None, None), **results}

    def _r(self, name: str, *args: Any) -> Any:
        self.calls.append((name, *args))
        value = self.results.get(name, geossh.AUTH_FAILED)
        if isinstance(value, Exception):
            raise value
        return value(*args) if callable(value) else value

    def get_allowed_auths(self, username: str) -> str:
        return self._r("get_allowed_auths", username)  # type: ignore[no-any-return]

    def check_auth_none(self, username: str) -> int:
        return self._r("none", username)  # type: ignore[no-any-return]

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        return self._r("password", username, password)  # type: ignore[no-any-return]

    def check_auth_password_change(self, username: str, old: str | bytes, new: str | bytes) -> int:
        return self._r("password_change", username, old, new)  # type: ignore[no-any-return]

    def check_auth_publickey(self, username: str, key: geossh.PKey) -> int:
        return self._r("publickey", username, key)  # type: ignore[no-any-return]

    def check_auth_interactive(self, username: str, submethods: bytes) -> Any:
        return self._r("interactive", username, submethods)

    def check_auth_interactive_response(self, responses: list[str]) -> Any:
        return self._r("interactive_response", responses)

    def check_auth_cert_authority(self, username: str, ca_key: geossh.PKey) -> bool:
        return bool(self._r("cert_authority", username, ca_key))

    def get_banner(self) -> tuple[str | None, str | None]:
        return self._r("banner")  # type: ignore[no-any-return]


@pytest.fixture
def bridge_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="geossh.test.auth")
    yield caplog


def bridged(server: Recorder, **config: Any) -> tuple[Core, AuthBridge]:
    c = Core(**config)
    logger = logging.LoggerAdapter(logging.getLogger("geossh.test.auth"), {})
    bridge = AuthBridge(server, c.auth, logger)
    bridge.peer_address = "127.0.0.1"
    return c, bridge


def run(c: Core, bridge: AuthBridge, payload: bytes) -> bytes | None:
    """Feed one request, let the bridge answer; returns what was sent (if anything)."""
    event = c.request(payload)
    bridge.handle(event)
    return c.transport.sent.pop() if c.transport.sent else None


def test_bridge_failure_carries_allowed_auths() -> None:
    server = Recorder(get_allowed_auths="publickey,password")
    c, bridge = bridged(server)
    reply = run(c, bridge, request("none"))
    assert reply is not None and failure(reply) == (["publickey", "password"], False)
    assert server.calls == [("none", "alice"), ("get_allowed_auths", "alice")]


def test_bridge_probe_pk_ok_does_not_say_granted(bridge_log: pytest.LogCaptureFixture) -> None:
    server = Recorder(publickey=geossh.AUTH_SUCCESSFUL)
    c, bridge = bridged(server)
    reply = run(c, bridge, publickey(key_for("ssh-ed25519"), "ssh-ed25519", signed=False))
    assert reply is not None and reply[0] == 60
    assert [call[0] for call in server.calls] == ["publickey"]  # no get_allowed_auths
    assert "granted" not in bridge_log.text and "PK_OK" in bridge_log.text
    assert not c.auth.authenticated
    reply = run(c, bridge, publickey(key_for("ssh-ed25519"), "ssh-ed25519"))
    assert reply == b"\x34" and "Auth granted (publickey)" in bridge_log.text


@pytest.mark.parametrize("value", [False, True, None, "0", 4, 0.0, -1])
def test_bridge_results_fail_closed(value: Any) -> None:
    server = Recorder(password=value)
    c, bridge = bridged(server)
    reply = run(c, bridge, password("x"))
    assert reply is not None and failure(reply)[1] is False
    assert not c.auth.authenticated and c.auth.failures == 1


def test_bridge_callback_exception_fails_request(bridge_log: pytest.LogCaptureFixture) -> None:
    server = Recorder(password=RuntimeError("database down"), get_allowed_auths=KeyError("x"))
    c, bridge = bridged(server)
    reply = run(c, bridge, password("x"))
    assert reply is not None and failure(reply) == (["password"], False)
    assert "database down" in bridge_log.text


def test_bridge_rejected_requests_never_reach_check_callbacks() -> None:
    server = Recorder(password=geossh.AUTH_SUCCESSFUL, publickey=geossh.AUTH_SUCCESSFUL,
                      get_allowed_auths="password")  # fmt: skip
    c, bridge = bridged(server, max_password_length=8)
    key = key_for("ssh-ed25519")
    for payload in (
        password("x" * 9),
        request("hostbased-ish"),
        publickey(key, "ssh-ed25519", session_id=bytes(32)),
        publickey(key, "ssh-ed25519", signed=False, blob=b"junk"),
    ):
        reply = run(c, bridge, payload)
        assert reply is not None and failure(reply) == (["password"], False)
    assert {call[0] for call in server.calls} == {"get_allowed_auths"}
    assert not c.auth.authenticated and c.auth.failures == 4


def test_bridge_invalid_user_name_calls_nothing() -> None:
    server = Recorder(password=geossh.AUTH_SUCCESSFUL)
    c, bridge = bridged(server)
    reply = run(c, bridge, password("x", user="u" * 1000))
    assert reply is not None and failure(reply) == ([], False)
    assert server.calls == []


def test_bridge_max_auth_tries_raises_without_listing() -> None:
    server = Recorder(get_allowed_auths="password")
    c, bridge = bridged(server, max_auth_tries=2)
    assert run(c, bridge, password("a")) is not None
    with pytest.raises(RemoteProtocolError) as err:
        run(c, bridge, password("b"))
    assert err.value.code == 14
    assert [call[0] for call in server.calls].count("get_allowed_auths") == 1


def test_bridge_two_factor_partial_success() -> None:
    state: dict[str, bool] = {}

    def check_password(username: str, secret: str) -> int:
        state["password"] = secret == "pw"
        return geossh.AUTH_PARTIALLY_SUCCESSFUL if state["password"] else geossh.AUTH_FAILED

    def allowed(username: str) -> str:
        return "publickey" if state.get("password") else "password"

    server = Recorder(password=check_password, get_allowed_auths=allowed,
                      publickey=lambda u, k: 0 if state.get("password") else 2)  # fmt: skip
    c, bridge = bridged(server)
    reply = run(c, bridge, password("pw"))
    assert reply is not None and failure(reply) == (["publickey"], True)
    assert run(c, bridge, publickey(key_for("ssh-ed25519"), "ssh-ed25519")) == b"\x34"
    assert c.auth.failures == 0


def test_bridge_interactive_multiple_rounds() -> None:
    answers: list[list[str]] = []

    def respond(responses: list[str]) -> Any:
        answers.append(responses)
        if len(answers) == 1:
            return geossh.InteractiveQuery("2fa", "", ("Code: ", True))
        return geossh.AUTH_SUCCESSFUL

    server = Recorder(interactive=geossh.InteractiveQuery("", "", ("Password: ", False)),
                      interactive_response=respond)  # fmt: skip
    c, bridge = bridged(server)
    assert (run(c, bridge, kbd_request()) or b"")[0] == 60
    assert (run(c, bridge, info_response("pw")) or b"")[0] == 60
    assert run(c, bridge, info_response("123")) == b"\x34"
    assert answers == [["pw"], ["123"]]


def test_bridge_too_many_prompts_fails() -> None:
    query = geossh.InteractiveQuery("", "", *[f"p{i}" for i in range(core.MAX_PROMPTS + 1)])
    server = Recorder(interactive=query, get_allowed_auths="password")
    c, bridge = bridged(server)
    reply = run(c, bridge, kbd_request())
    assert reply is not None and failure(reply) == (["password"], False)


def test_bridge_password_change() -> None:
    server = Recorder(password=geossh.AUTH_PASSWORD_CHANGE_REQUIRED,
                      password_change=lambda u, old, new: 0 if (old, new) == ("old", "new") else 2,
                      get_allowed_auths="password")  # fmt: skip
    c, bridge = bridged(server)
    reply = run(c, bridge, password("old"))
    assert reply == b"\x3c" + s("Password expired; enter a new password.") + s("")
    reply = run(c, bridge, change_request("bad-old", "new"))
    assert reply is not None and failure(reply) == (["password"], False)
    assert run(c, bridge, change_request("old", "new")) == b"\x34"


def test_bridge_banner() -> None:
    c, bridge = bridged(Recorder(banner=("Hello\r\n", None)))
    bridge.banner()
    assert c.transport.pop() == b"\x35" + s("Hello\r\n") + s("")
    for banner in [(None, None), ("", "en"), RuntimeError("x"), "not a tuple"]:
        c, bridge = bridged(Recorder(banner=banner))
        bridge.banner()
        assert c.transport.sent == []


def cert_bridge(
    principals: list[bytes], trusted: bool, **critical: bytes
) -> tuple[Recorder, bytes | None]:
    user, ca = key_for("ssh-ed25519"), key_for("ecdsa", 256)
    blob = make_certificate(user, ca, principals, **critical)
    server = Recorder(cert_authority=trusted, publickey=geossh.AUTH_SUCCESSFUL)
    c, bridge = bridged(server)
    return server, run(c, bridge, publickey(user, "ssh-ed25519-cert-v01@openssh.com", blob=blob))


def test_bridge_certificate_from_trusted_ca() -> None:
    server, reply = cert_bridge([b"alice"], trusted=True)
    assert reply == b"\x34"
    names = [call[0] for call in server.calls]
    assert names == ["cert_authority"]  # check_auth_publickey not needed
    assert server.calls[0][2] == geossh.ECDSAKey._from_ssh_key(key_for("ecdsa", 256).public())


@pytest.mark.parametrize(
    "principals,critical",
    [([b"bob"], {}), ([], {}), ([b"alice"], {"force_command": b"/bin/true"}),
     ([b"alice"], {"source_address": b"10.0.0.0/8"}), ([b"alice"], {"no-such-option": b""})],
)  # fmt: skip
def test_bridge_invalid_certificate_from_trusted_ca(
    principals: list[bytes], critical: dict[str, bytes]
) -> None:
    server, reply = cert_bridge(principals, True, **critical)
    assert reply is not None and reply[0] == 51
    assert "publickey" not in [call[0] for call in server.calls]


def test_bridge_untrusted_certificate_falls_back_to_publickey() -> None:
    server, reply = cert_bridge([b"alice"], trusted=False)
    assert reply == b"\x34"
    key = server.calls[-1][2]
    assert server.calls[-1][0] == "publickey"
    assert key.get_name() == "ssh-ed25519"
    assert key.public_blob.key_type == "ssh-ed25519-cert-v01@openssh.com"


@pytest.mark.parametrize("value", [None, False, "query", object()])
def test_bridge_interactive_results_fail_closed(value: Any) -> None:
    server = Recorder(interactive=geossh.InteractiveQuery("", "", "Code: "),
                      interactive_response=value)  # fmt: skip
    c, bridge = bridged(server)
    assert (run(c, bridge, kbd_request()) or b"")[0] == 60
    reply = run(c, bridge, info_response("x"))
    assert reply is not None and failure(reply)[1] is False
    assert not c.auth.authenticated


def test_bridge_signed_publickey_false_is_not_success() -> None:
    server = Recorder(publickey=False)
    c, bridge = bridged(server)
    reply = run(c, bridge, publickey(key_for("ssh-ed25519"), "ssh-ed25519"))
    assert reply is not None and reply[0] == 51
    assert not c.auth.authenticated
