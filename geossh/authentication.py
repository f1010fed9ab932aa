"""Answers authentication events by asking the application's ``ServerInterface``.

The core (``geossh.proto.auth``) has already parsed the request and verified
any signature; here the matching ``check_auth_*`` callback decides, in
paramiko's call order and with paramiko's argument types. A callback that
raises fails the request (logged with its traceback) and the connection
goes on. Beyond paramiko, opt-in methods a ``ServerInterface`` may define:

* ``check_auth_password`` may return ``AUTH_PASSWORD_CHANGE_REQUIRED``; the
  client is then asked for a new password (``get_password_change_prompt``)
  and ``check_auth_password_change(username, old, new)`` decides.
* ``check_auth_cert_authority(username, ca_key) -> bool`` trusts a CA for
  OpenSSH user certificates; a valid certificate from a trusted CA then
  succeeds through ``check_auth_certificate(username, key, certificate)``
  (default: success).
* ``check_auth_hostbased(username, key, client_host, client_user) -> int``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from geossh.common import AUTH_FAILED, AUTH_PARTIALLY_SUCCESSFUL, AUTH_SUCCESSFUL
from geossh.pkey import PKey, PublicBlob
from geossh.proto.auth import AUTH_PASSWORD_CHANGE_REQUIRED
from geossh.proto.events import AuthRequested
from geossh.proto.keys import SSHKey, validate_user_certificate
from geossh.server import InteractiveQuery, ServerInterface

if TYPE_CHECKING:
    from geossh.proto.auth import AuthLayer

_RESULTS = (AUTH_SUCCESSFUL, AUTH_PARTIALLY_SUCCESSFUL, AUTH_FAILED)


def public_pkey(key: SSHKey, certificate: Any = None) -> PKey:
    """The paramiko-style ``PKey`` for a client's public key (cert in ``public_blob``)."""
    pkey = PKey.from_type_string(key.key_type, key.public_blob)
    if certificate is not None:
        pkey.public_blob = PublicBlob(certificate.cert_type, certificate.blob)
    return pkey


class AuthBridge:
    """Turns ``AuthRequested`` events into ``ServerInterface`` calls and answers."""

    def __init__(
        self, server: ServerInterface, auth: AuthLayer, logger: logging.LoggerAdapter[Any]
    ) -> None:
        self.server = server
        self.auth = auth
        self.log = logger
        self.peer_address: str | None = None

    def banner(self) -> None:
        """Send the application's banner, if any (right after SERVICE_ACCEPT)."""
        text, language = self._call(self.server.get_banner, (None, None))
        if text:
            self.auth.send_banner(text, language or "")

    def handle(self, event: AuthRequested) -> None:
        """Decide one request and send the answer."""
        username, method, details = event.username, event.method, event.details
        if details.get("rejected"):
            self.log.info("Auth rejected (%s): %s.", method, details["rejected"])
            self._answer(username, AUTH_FAILED)
            return
        decide = {
            "none": self._none,
            "password": self._password,
            "password-change": self._password_change,
            "publickey": self._publickey,
            "keyboard-interactive": self._interactive,
            "keyboard-interactive-response": self._interactive_response,
            "hostbased": self._hostbased,
        }[method]
        result = decide(username, details)
        if result is None:
            return  # a follow-up (INFO_REQUEST or PASSWD_CHANGEREQ) was sent
        self._answer(username, result, method)

    # -- one method each ----------------------------------------------------------
    def _none(self, username: str, details: dict[str, Any]) -> int:
        return self._call(self.server.check_auth_none, AUTH_FAILED, username)

    def _password(self, username: str, details: dict[str, Any]) -> int | None:
        result = self._call(
            self.server.check_auth_password, AUTH_FAILED, username, details["password"]
        )
        if result == AUTH_PASSWORD_CHANGE_REQUIRED:
            prompt_fn = getattr(self.server, "get_password_change_prompt", None)
            prompt = self._call(prompt_fn, "Password expired; enter a new one.", username)
            self.auth.send_password_change_request(str(prompt))
            return None
        return result

    def _password_change(self, username: str, details: dict[str, Any]) -> int:
        change = getattr(self.server, "check_auth_password_change", None)
        return self._call(
            change, AUTH_FAILED, username, details["password"], details["new_password"]
        )

    def _publickey(self, username: str, details: dict[str, Any]) -> int:
        certificate = details.get("certificate")
        pkey = public_pkey(details["key"], certificate)
        if certificate is not None:
            verdict = self._certificate(username, pkey, certificate, bool(details["signed"]))
            if verdict is not None:
                return verdict
        return self._call(self.server.check_auth_publickey, AUTH_FAILED, username, pkey)

    def _certificate(
        self, username: str, pkey: PKey, certificate: Any, signed: bool
    ) -> int | None:
        """Judge a certificate from a CA the application trusts; None to fall back."""
        trust = getattr(self.server, "check_auth_cert_authority", None)
        if trust is None:
            return None
        trusted_seen: list[bool] = []

        def trusted(ca_key: SSHKey) -> bool:
            ok = bool(self._call(trust, False, username, public_pkey(ca_key)))
            trusted_seen.append(ok)
            return ok

        reason = validate_user_certificate(
            certificate,
            principal=username,
            now=int(time.time()),
            trusted_ca=trusted,
            source_address=self.peer_address,
        )
        if reason is None:
            accept = getattr(self.server, "check_auth_certificate", None)
            if accept is None:
                return AUTH_SUCCESSFUL
            return self._call(accept, AUTH_FAILED, username, pkey, certificate)
        if any(trusted_seen):
            self.log.info("Certificate rejected for %s: %s", username, reason)
            return AUTH_FAILED
        return None

    def _interactive(self, username: str, details: dict[str, Any]) -> int | None:
        result = self._call(
            self.server.check_auth_interactive, AUTH_FAILED, username, details["submethods"]
        )
        return self._maybe_query(result)

    def _interactive_response(self, username: str, details: dict[str, Any]) -> int | None:
        result = self._call(
            self.server.check_auth_interactive_response, AUTH_FAILED, details["responses"]
        )
        return self._maybe_query(result)

    def _maybe_query(self, result: Any) -> int | None:
        if isinstance(result, InteractiveQuery):
            self.auth.send_info_request(result.name, result.instructions, list(result.prompts))
            return None
        return int(result)

    def _hostbased(self, username: str, details: dict[str, Any]) -> int:
        check = getattr(self.server, "check_auth_hostbased", None)
        pkey = public_pkey(details["key"], details.get("certificate"))
        return self._call(
            check, AUTH_FAILED, username, pkey, details["client_host"], details["client_user"]
        )

    # -- helpers ----------------------------------------------------------------
    def _answer(self, username: str, result: Any, method: str = "") -> None:
        if result not in _RESULTS:
            result = AUTH_FAILED
        allowed = ""
        if result != AUTH_SUCCESSFUL:
            allowed = self._call(self.server.get_allowed_auths, "password", username)
        if method:
            verdict = "granted" if result == AUTH_SUCCESSFUL else "rejected"
            if result == AUTH_PARTIALLY_SUCCESSFUL:
                verdict = "partially granted"
            self.log.info("Auth %s (%s).", verdict, method)
        self.auth.answer(int(result), str(allowed))

    def _call(self, fn: Any, failure: Any, *args: Any) -> Any:
        """Call an application callback; an exception fails the request."""
        if fn is None:
            return failure
        try:
            return fn(*args)
        except Exception:
            self.log.error("Exception in %s", getattr(fn, "__name__", fn), exc_info=True)
            return failure
