"""``ServeInterface`` decisions, called as the transport calls them (no sockets)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from geossh._facade.common import AUTH_SUCCESSFUL
from geossh._facade.pkey import PKey
from geossh.runner.serveapp import ServeApp


def test_password_login_after_a_key_query_is_not_bound_by_that_key(
    tmp_path: Path, keydir: Path
) -> None:
    """A key only offered (PK_OK) and then a password: the key's no-pty/command= do not apply."""
    public = (keydir / "user_ed25519.pub").read_text().strip()
    (tmp_path / "authorized_keys").write_text(f'no-pty,command="true" {public}\n')
    app = ServeApp("alice", [tmp_path / "authorized_keys"], "s3cret", str(tmp_path))
    transport = SimpleNamespace(getpeername=lambda: ("127.0.0.1", 5000))
    interface = app.interface(transport)
    key = PKey.from_path(str(keydir / "user_ed25519"))
    assert interface.check_auth_publickey("alice", key) == AUTH_SUCCESSFUL  # the query
    assert not interface.check_channel_pty_request(None)
    assert interface.check_auth_password("alice", "s3cret") == AUTH_SUCCESSFUL
    assert interface.check_channel_pty_request(None) and interface.forced_command is None


def test_security_key_options_from_authorized_keys(tmp_path: Path) -> None:
    """``no-touch-required`` and ``verify-required`` reach the key the transport enforces."""
    from geossh._facade.skkey import SKKey
    from tests.sk_authenticator import ECDSA, ED25519, Authenticator

    plain, relaxed = Authenticator(ED25519), Authenticator(ECDSA)
    (tmp_path / "authorized_keys").write_text(
        f"verify-required {plain.openssh_line()}\nno-touch-required {relaxed.openssh_line()}\n"
    )
    app = ServeApp("alice", [tmp_path / "authorized_keys"], "s3cret", str(tmp_path))
    interface = app.interface(SimpleNamespace(getpeername=lambda: ("127.0.0.1", 5000)))
    strict_key, relaxed_key = SKKey(data=plain.blob), SKKey(data=relaxed.blob)
    assert interface.check_auth_publickey("alice", strict_key) == AUTH_SUCCESSFUL
    assert strict_key.touch_required and strict_key.verify_required
    assert interface.check_auth_publickey("alice", relaxed_key) == AUTH_SUCCESSFUL
    assert not relaxed_key.touch_required and not relaxed_key.verify_required
    strict_key.sk_flags = 0x01  # touched, not verified
    assert strict_key.assertion_refusal() is not None
    relaxed_key.sk_flags = 0x00
    assert relaxed_key.assertion_refusal() is None
