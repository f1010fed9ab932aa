"""Answers authentication events by asking the application's ``ServerInterface``.

The core (``geossh.proto.auth``) has already parsed the request, bounded its
fields and verified any signature; here the matching ``check_auth_*``
callback decides, in paramiko's call order and with paramiko's argument
types, in the connection's greenlet. Requests the core rejected on its own
never reach a ``check_auth_*`` callback. ``get_allowed_auths`` is called only
when a USERAUTH_FAILURE goes out (never for PK_OK, success or a disconnect,
and never with an invalid user name). A callback that raises fails the
request (logged with its traceback) and the connection goes on.

Results are read fail-closed: anything but ``AUTH_SUCCESSFUL``,
``AUTH_PARTIALLY_SUCCESSFUL`` and ``AUTH_FAILED`` as ints (``None``, a bool, a
string) counts as ``AUTH_FAILED`` and is logged. (paramiko compares with
``==``, so ``return False`` from a check grants access there.)

Beyond paramiko, opt-in methods a ``ServerInterface`` may override (see
``geossh.server.ServerInterface`` for their contracts):

* ``check_auth_password`` may return ``AUTH_PASSWORD_CHANGE_REQUIRED``; the
  client then gets PASSWD_CHANGEREQ with ``get_password_change_prompt``'s
  text, and ``check_auth_password_change(username, old, new)`` decides the
  client's change request (it may again return the change code).
* ``check_auth_cert_authority(username, ca_key) -> bool`` trusts a CA for
  OpenSSH user certificates; a certificate from a trusted CA is validated
  (type, CA signature, validity window, principals, critical options) and a
  valid one is decided by ``check_auth_certificate(username, key, cert)``.
  Certificates from CAs nobody trusts fall back to ``check_auth_publickey``
  with ``key.public_blob`` set, as in paramiko.
* ``check_auth_hostbased(username, key, client_host, client_user) -> int``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from geossh._facade.common import AUTH_FAILED, AUTH_PARTIALLY_SUCCESSFUL, AUTH_SUCCESSFUL
from geossh._facade.pkey import PKey, PublicBlob, pkey_from_ssh_key
from geossh._facade.server import InteractiveQuery, ServerInterface
from geossh._facade.skkey import SKKey
from geossh.logtext import printable
from geossh.proto.auth import AUTH_PASSWORD_CHANGE_REQUIRED, Outcome
from geossh.proto.events import AuthRequested
from geossh.proto.keys import SSHKey, validate_user_certificate

if TYPE_CHECKING:
    from geossh.proto.auth import AuthLayer

_RESULTS = (AUTH_SUCCESSFUL, AUTH_PARTIALLY_SUCCESSFUL, AUTH_FAILED)
_FOLLOW_UP = object()  # a decision returned this: INFO_REQUEST or PASSWD_CHANGEREQ was sent
_DEFAULT_CHANGE_PROMPT = "Password expired; enter a new password."
_METHODS = ("none", "password", "publickey", "keyboard-interactive", "hostbased")
_BASE_METHODS = {"password-change": "password",
                 "keyboard-interactive-response": "keyboard-interactive"}  # fmt: skip
_RESULT_NAMES = {
    Outcome.SUCCESS: "accepted",
    Outcome.PARTIAL: "partial",
    Outcome.FAILURE: "refused",
    Outcome.DISCONNECT: "refused",
}
_VERDICTS = {
    Outcome.SUCCESS: "granted",
    Outcome.PARTIAL: "partially successful",
    Outcome.FAILURE: "rejected",
    Outcome.DISCONNECT: "rejected",
}


def public_pkey(key: SSHKey, certificate: Any = None) -> PKey:
    """The paramiko-style ``PKey`` for a client's public key (cert in ``public_blob``)."""
    blob = PublicBlob(certificate.key_type, certificate.blob) if certificate is not None else None
    return pkey_from_ssh_key(key, blob)


class AuthBridge:
    """Turns ``AuthRequested`` events into ``ServerInterface`` calls and answers."""

    def __init__(
        self, server: ServerInterface, auth: AuthLayer, logger: logging.LoggerAdapter[Any]
    ) -> None:
        self.server = server
        self.auth = auth
        self.log = logger
        self.peer_address: str | None = None
        self.transport: Any = None  # its observer hears every answer
        self._last_allowed = ""

    def banner(self) -> None:
        """Send the application's banner, if any (right after SERVICE_ACCEPT)."""
        banner = self._call(self.server.get_banner, (None, None))
        try:
            text, language = banner
        except (TypeError, ValueError):
            self.log.error("get_banner returned %r, not (text, language)", banner)
            return
        if text and isinstance(text, (str, bytes)):
            self.auth.send_banner(text, language if isinstance(language, str) else "")

    def handle(self, event: AuthRequested) -> None:
        """Decide one request and send the answer."""
        username, method, details = event.username, event.method, event.details
        self.log.debug("Auth request (type=%r) username=%r", method, username)
        if details.get("rejected"):
            self.log.info("Auth rejected (%r): %s.", method, printable(details["rejected"]))
            shown = method if method.isidentifier() or method in _METHODS else repr(method)
            valid = bool(details.get("username_valid"))
            outcome = self._answer(username, AUTH_FAILED, shown, valid)
            self._observe(username, method, outcome, details)
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
        if result is not _FOLLOW_UP:
            self._observe(username, method, self._answer(username, result, method), details)

    def _observe(
        self, username: str, method: str, outcome: Outcome, details: dict[str, Any]
    ) -> None:
        """Tell the transport's observer (PK_OK is a question answered, not an attempt)."""
        observer = getattr(self.transport, "observer", None)
        if observer is None or outcome is Outcome.PK_OK:
            return
        method = _BASE_METHODS.get(method, method)
        observer.auth(self.transport, username, method, _RESULT_NAMES[outcome], details)

    # -- one method each ----------------------------------------------------------
    def _none(self, username: str, details: dict[str, Any]) -> Any:
        return self._call(self.server.check_auth_none, AUTH_FAILED, username)

    def _password(self, username: str, details: dict[str, Any]) -> Any:
        check = self.server.check_auth_password
        result = self._call(check, AUTH_FAILED, username, details["password"])
        return self._maybe_change(username, result)

    def _password_change(self, username: str, details: dict[str, Any]) -> Any:
        change = getattr(self.server, "check_auth_password_change", None)
        old, new = details["password"], details["new_password"]
        return self._maybe_change(username, self._call(change, AUTH_FAILED, username, old, new))

    def _maybe_change(self, username: str, result: Any) -> Any:
        """Send PASSWD_CHANGEREQ for ``AUTH_PASSWORD_CHANGE_REQUIRED``."""
        if isinstance(result, bool) or result != AUTH_PASSWORD_CHANGE_REQUIRED:
            return result
        prompt_fn = getattr(self.server, "get_password_change_prompt", None)
        prompt = self._call(prompt_fn, _DEFAULT_CHANGE_PROMPT, username)
        self.log.info("Password of %r expired: change requested.", username)
        self.auth.send_password_change_request(str(prompt or _DEFAULT_CHANGE_PROMPT))
        return _FOLLOW_UP

    def _publickey(self, username: str, details: dict[str, Any]) -> Any:
        certificate = details.get("certificate")
        pkey = public_pkey(details["key"], certificate)
        if isinstance(pkey, SKKey):
            pkey.sk_flags, pkey.sk_counter = details.get("sk_flags"), details.get("sk_counter")
        verdict = None
        if certificate is not None:
            verdict = self._certificate(username, pkey, certificate)
        if verdict is None:
            verdict = self._call(self.server.check_auth_publickey, AUTH_FAILED, username, pkey)
        if verdict == AUTH_SUCCESSFUL and isinstance(pkey, SKKey):
            refusal = pkey.assertion_refusal()
            if refusal is not None:
                self.log.info("Auth rejected (publickey): %s.", refusal)
                return AUTH_FAILED
        return verdict

    def _certificate(self, username: str, pkey: PKey, certificate: Any) -> Any:
        """Judge a certificate if the application trusts its CA; None to fall back."""
        trust = getattr(self.server, "check_auth_cert_authority", None)
        if trust is None:
            return None
        trusted_seen: list[bool] = []

        def trusted(ca_key: SSHKey) -> bool:
            ok = bool(self._call(trust, False, username, pkey_from_ssh_key(ca_key)))
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
            if isinstance(pkey, SKKey):  # the certificate's no-touch-required / verify-required
                pkey.touch_required = certificate.touch_required
                pkey.verify_required = certificate.verify_required
            accept = getattr(self.server, "check_auth_certificate", None)
            if accept is None:
                return AUTH_FAILED if certificate.force_command is not None else AUTH_SUCCESSFUL
            return self._call(accept, AUTH_FAILED, username, pkey, certificate)
        if any(trusted_seen):
            self.log.info("Certificate rejected for %r: %s", username, printable(reason))
            return AUTH_FAILED
        self.log.debug(
            "Certificate's CA not trusted by check_auth_cert_authority (%s); "
            "passing it to check_auth_publickey (authorized_keys cert-authority lines)",
            printable(reason),
        )
        return None

    def _interactive(self, username: str, details: dict[str, Any]) -> Any:
        check = self.server.check_auth_interactive
        return self._maybe_query(self._call(check, AUTH_FAILED, username, details["submethods"]))

    def _interactive_response(self, username: str, details: dict[str, Any]) -> Any:
        check = self.server.check_auth_interactive_response
        return self._maybe_query(self._call(check, AUTH_FAILED, details["responses"]))

    def _maybe_query(self, result: Any) -> Any:
        """Send an ``InteractiveQuery`` as INFO_REQUEST; other results pass through."""
        if not isinstance(result, InteractiveQuery):
            return result
        try:
            prompts = [(str(prompt), bool(echo)) for prompt, echo in result.prompts]
            name, instructions = str(result.name or ""), str(result.instructions or "")
        except (TypeError, ValueError):
            self.log.error("malformed InteractiveQuery: %r", result.prompts)
            return AUTH_FAILED
        if not self.auth.can_send_info_request(len(prompts)):
            self.log.warning("keyboard-interactive: too many rounds or prompts; failing")
            return AUTH_FAILED
        self.auth.send_info_request(name, instructions, prompts)
        return _FOLLOW_UP

    def _hostbased(self, username: str, details: dict[str, Any]) -> Any:
        check = getattr(self.server, "check_auth_hostbased", None)
        pkey = public_pkey(details["key"], details.get("certificate"))
        host, user = details["client_host"], details["client_user"]
        return self._call(check, AUTH_FAILED, username, pkey, host, user)

    # -- helpers ----------------------------------------------------------------
    def _answer(self, username: str, result: Any, method: str, ask_app: bool = True) -> Outcome:
        result = self._result(result, method)
        outcome = self.auth.outcome(result)
        allowed = ""
        if outcome in (Outcome.FAILURE, Outcome.PARTIAL):
            allowed = self._allowed(username) if ask_app else self._last_allowed
        if outcome is Outcome.PK_OK:
            self.log.debug("Public key acceptable for %r: PK_OK sent.", username)
        else:
            self.log.info("Auth %s (%s).", _VERDICTS[outcome], method)
        self.auth.answer(result, allowed)
        return outcome

    def _allowed(self, username: str) -> str:
        allowed = self._call(self.server.get_allowed_auths, "password", username)
        if not isinstance(allowed, str):
            self.log.error("get_allowed_auths returned %r, not a str", allowed)
            allowed = "password"
        self._last_allowed = allowed
        return allowed

    def _result(self, value: Any, method: str) -> int:
        """An AUTH_* code; anything else fails closed."""
        if isinstance(value, int) and not isinstance(value, bool) and value in _RESULTS:
            return int(value)
        self.log.warning("Auth callback for %s returned %r; treated as AUTH_FAILED", method, value)
        return AUTH_FAILED

    def _call(self, fn: Any, failure: Any, *args: Any) -> Any:
        """Call an application callback; an exception fails the request."""
        if fn is None:
            return failure
        try:
            return fn(*args)
        except Exception:
            self.log.error("Exception in %s", getattr(fn, "__name__", fn), exc_info=True)
            return failure
