"""OpenSSH's protocol extensions in the core: host-bound publickey, ping, host key rotation.

Driven through the real ``Connection`` with the test client of
``kexclient`` (its own kex and keys); the signatures are checked with the
same key code a client would use. OpenSSH's ``ssh`` drives the same paths
in tests/interop/test_openssh_extensions.py.
"""

from __future__ import annotations

from geossh.proto import keys
from geossh.proto.auth import HOSTBOUND_METHOD
from geossh.proto.constants import MSG
from geossh.proto.events import AuthRequested, GlobalRequestReceived
from geossh.proto.wire import Reader, boolean, string
from tests.unit.kexclient import USER, Session, global_request, host_key, server_config, session_in

USER_KEY = keys.generate("ssh-ed25519")


def hostbound_request(session: Session, host_blob: bytes, signed: bool = True) -> bytes:
    prefix = (
        bytes((MSG.USERAUTH_REQUEST,))
        + string(USER)
        + string("ssh-connection")
        + string(HOSTBOUND_METHOD)
        + boolean(signed)
        + string("ssh-ed25519")
        + string(USER_KEY.public_blob)
        + string(host_blob)
    )
    if not signed:
        return prefix
    session_id = session.conn.transport.session_id
    assert session_id is not None
    return prefix + string(USER_KEY.sign(string(session_id) + prefix))


def auth_event(events: list[object]) -> AuthRequested:
    found = [e for e in events if isinstance(e, AuthRequested)]
    assert len(found) == 1, events
    return found[0]


# -- publickey-hostbound-v00@openssh.com ----------------------------------------------
def test_hostbound_request_is_a_publickey_login() -> None:
    session = session_in("userauth")
    event = auth_event(session.send(hostbound_request(session, host_key().public_blob)))
    assert event.method == "publickey"
    assert "rejected" not in event.details
    assert event.details["hostbound"] is True and event.details["signed"] is True
    assert event.details["key_blob"] == USER_KEY.public_blob


def test_hostbound_query_gets_pk_ok() -> None:
    session = session_in("userauth")
    session.send(hostbound_request(session, host_key().public_blob, signed=False))
    reply = session.replies[-1]
    assert reply[0] == MSG.USERAUTH_FAILURE  # the test application refuses publickey


def test_hostbound_request_naming_another_host_key_is_refused() -> None:
    session = session_in("userauth")
    other = keys.generate("ssh-ed25519").public_blob
    event = auth_event(session.send(hostbound_request(session, other)))
    assert event.details["rejected"] == "host-bound request names another host key"


def test_hostbound_off_is_an_unknown_method() -> None:
    session = session_in("userauth", config=server_config(hostbound_auth=False))
    event = auth_event(session.send(hostbound_request(session, host_key().public_blob)))
    assert event.details["rejected"] == "unsupported method"


# -- ping@openssh.com -----------------------------------------------------------------
def ping(data: bytes) -> bytes:
    return bytes((MSG.PING,)) + string(data)


def test_ping_answered_with_the_same_data_after_auth() -> None:
    session = session_in("authenticated")
    for data in (b"", b"x" * 300):
        session.send(ping(data))
        reply = session.replies[-1]
        assert reply[0] == MSG.PONG
        assert Reader(reply, 1).string() == data


def test_ping_before_auth_is_not_answered() -> None:
    session = session_in("userauth")
    before = len(session.replies)
    session.send(ping(b"early"))
    assert len(session.replies) == before


def test_ping_off_gets_unimplemented() -> None:
    session = session_in("authenticated", config=server_config(ping=False))
    session.send(ping(b"x"))
    assert session.replies[-1][0] == MSG.UNIMPLEMENTED


def test_truncated_ping_is_a_protocol_error() -> None:
    session = session_in("authenticated")
    try:
        session.send(bytes((MSG.PING,)) + b"\x00\x00\x10")
    except Exception as exc:
        assert "truncated" in str(exc)
    else:
        raise AssertionError("a truncated PING was accepted")


# -- hostkeys-00@openssh.com / hostkeys-prove-00@openssh.com ----------------------------
def announced_blobs(session: Session) -> list[bytes]:
    for reply in session.replies:
        if reply[0] == MSG.GLOBAL_REQUEST:
            reader = Reader(reply, 1)
            if reader.string() == b"hostkeys-00@openssh.com":
                assert reader.boolean() is False
                blobs = []
                while reader.remaining:
                    blobs.append(reader.string())
                return blobs
    raise AssertionError("no hostkeys-00 announcement")


def two_keys() -> dict[str, keys.SSHKey]:
    return {"ssh-ed25519": host_key(), "ssh-rsa": keys.generate("ssh-rsa", 2048)}


def test_every_host_key_announced_right_after_success() -> None:
    host_keys = two_keys()
    session = session_in("authenticated", config=server_config(host_keys=host_keys))
    kinds = [r[0] for r in session.replies]
    assert kinds[kinds.index(MSG.USERAUTH_SUCCESS) + 1] == MSG.GLOBAL_REQUEST
    assert announced_blobs(session) == [k.public_blob for k in host_keys.values()]


def test_no_announcement_when_off() -> None:
    session = session_in("authenticated", config=server_config(announce_host_keys=False))
    assert MSG.GLOBAL_REQUEST not in [r[0] for r in session.replies]


def prove(blobs: list[bytes], want_reply: bool = True) -> bytes:
    return global_request("hostkeys-prove-00@openssh.com", want_reply) + b"".join(
        string(b) for b in blobs
    )


def test_prove_signs_each_key_over_session_id() -> None:
    host_keys = two_keys()
    session = session_in("authenticated", config=server_config(host_keys=host_keys))
    blobs = [k.public_blob for k in host_keys.values()]
    events = session.send(prove(blobs))
    assert not any(isinstance(e, GlobalRequestReceived) for e in events)  # answered by the core
    reply = session.replies[-1]
    assert reply[0] == MSG.REQUEST_SUCCESS
    reader = Reader(reply, 1)
    session_id = session.conn.transport.session_id
    assert session_id is not None
    for key in host_keys.values():
        signature = reader.string()
        signed = (
            string("hostkeys-prove-00@openssh.com") + string(session_id) + string(key.public_blob)
        )
        public = keys.public_key_from_blob(key.public_blob)
        assert public.verify(signed, signature)
        if key.key_type == "ssh-rsa":
            assert Reader(signature, 0).string() == b"rsa-sha2-512"
    assert reader.remaining == 0


def test_prove_of_a_key_we_do_not_hold_fails() -> None:
    session = session_in("authenticated")
    stranger = keys.generate("ssh-ed25519").public_blob
    for blobs in ([stranger], [host_key().public_blob, stranger], [host_key().public_blob] * 2):
        session.send(prove(blobs))
        assert session.replies[-1] == bytes((MSG.REQUEST_FAILURE,))
    session.send(prove([]) + b"\x00\x00")  # a truncated blob
    assert session.replies[-1] == bytes((MSG.REQUEST_FAILURE,))


def test_prove_reply_waits_for_earlier_application_replies() -> None:
    """Replies go out in request order, even when the core answers the later one."""
    session = Session()
    session._answer = lambda event: None  # type: ignore[method-assign]  # answer by hand below
    session.advance("keyed").send(bytes((MSG.SERVICE_REQUEST,)) + string("ssh-userauth"))
    session.state = "userauth"
    session.send(
        bytes((MSG.USERAUTH_REQUEST,)) + string(USER) + string("ssh-connection") + string("none")
    )
    session.conn.auth.answer(0)  # success
    session.drain()
    session.deliver()
    session.send(global_request("app@example.com"))
    count = len(session.replies)
    session.send(prove([host_key().public_blob]))
    assert len(session.replies) == count  # held behind the application's reply
    session.conn.channels.reply_global_request(False)
    session.deliver()
    assert [r[0] for r in session.replies[count:]] == [MSG.REQUEST_FAILURE, MSG.REQUEST_SUCCESS]
