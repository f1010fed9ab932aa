"""The user authentication protocol, server side (RFC 4252, RFC 4256).

Theory of operation
-------------------
The core parses each USERAUTH_REQUEST and judges alone what needs no
application: a wrong service, an unknown method, an invalid or oversized user
name, an oversized password, a public-key algorithm the server does not
allow, a malformed key blob, a bad signature. Those become ``AuthRequested``
events marked ``rejected`` (the driver only supplies the method list for the
FAILURE); everything else becomes an ``AuthRequested`` the driver answers with
``answer``, ``send_info_request`` or ``send_password_change_request``.
Publickey and hostbased signatures are verified here, over the session id
and the request (RFC 4252 §7, §9), *before* the application is asked, so a
success can only follow a valid signature. ``outcome(result)`` tells the
driver what ``answer(result)`` will send, so it asks the application for the
method list only when a FAILURE is going out.

States (``AuthState``) and the messages each accepts (``_table``)::

    WAIT_SERVICE --SERVICE_REQUEST ssh-userauth--> READY (SERVICE_ACCEPT)
    READY, INTERACTIVE --SERVICE_REQUEST ssh-userauth--> same (SERVICE_ACCEPT again, as sshd)
    READY --USERAUTH_REQUEST--> DECIDING (AuthRequested)
    DECIDING --answer--> READY (FAILURE / PK_OK) | DONE (SUCCESS)
    DECIDING --send_info_request--> INTERACTIVE (INFO_REQUEST)
    DECIDING --send_password_change_request--> READY (PASSWD_CHANGEREQ)
    INTERACTIVE --INFO_RESPONSE--> DECIDING
    INTERACTIVE --USERAUTH_REQUEST--> DECIDING (the abandoned round counts as a failure)
    DONE --USERAUTH_REQUEST--> DONE (ignored, RFC 4252 §5.1)

Any other auth-layer message before success is a protocol error (DISCONNECT);
after success the connection layer answers it with UNIMPLEMENTED.

Counting follows OpenSSH's MaxAuthTries: every failure counts except the
client's very first request when it is ``none``; PK_OK, partial success,
INFO_REQUEST and a first PASSWD_CHANGEREQ do not count. When the count
reaches ``max_auth_tries`` the connection ends with
NO_MORE_AUTH_METHODS_AVAILABLE instead of that FAILURE. ``auth_timeout``
(the login grace time) is measured from the connection's start.

Pure: no gevent, sockets, threads or clocks; time arrives as ``now``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from geossh.proto import wire
from geossh.proto.config import ServerConfig
from geossh.proto.constants import (
    MSG,
    USERAUTH_INFO_REQUEST,
    USERAUTH_PASSWD_CHANGEREQ,
    USERAUTH_PK_OK,
    DisconnectReason,
)
from geossh.proto.errors import LocalProtocolError, RemoteProtocolError
from geossh.proto.events import AuthRequested, AuthServiceStarted, AuthSucceeded, Event
from geossh.proto.keys import (
    KeyParseError,
    SecurityKey,
    SSHKey,
    parse_userauth_key,
    strip_cert_suffix,
)
from geossh.proto.transport import TransportLayer

AUTH_SUCCESSFUL, AUTH_PARTIALLY_SUCCESSFUL, AUTH_FAILED = 0, 1, 2
AUTH_PASSWORD_CHANGE_REQUIRED = 3  # geossh: credentials valid but expired (RFC 4252 §8)
MAX_PROMPTS = 64  # prompts in one INFO_REQUEST (OpenSSH accepts at most 100 replies)
MAX_REQUESTS = 100  # USERAUTH_REQUESTs per connection, counted or not
MAX_NAME = 256  # service, method and algorithm names
#: OpenSSH's host-bound publickey method (PROTOCOL 3.1), offered in EXT_INFO.
HOSTBOUND_METHOD = "publickey-hostbound-v00@openssh.com"
MAX_BLOB = 32 * 1024  # public key / certificate blobs and signatures
MAX_HOST_FIELD = 1024  # hostbased client host and user names

Details = dict[str, object]
# No pending request: one shared read-only mapping, not an empty dict per connection.
_NO_REQUEST: Mapping[str, object] = MappingProxyType({})
_NO_MORE = DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE


class AuthState(enum.Enum):
    """Where user authentication stands (see the module docstring)."""

    WAIT_SERVICE = "wait-service"
    READY = "ready"
    DECIDING = "deciding"
    INTERACTIVE = "interactive"
    DONE = "done"


class Outcome(enum.Enum):
    """What ``AuthLayer.answer`` sends for a given result."""

    SUCCESS = "success"  # USERAUTH_SUCCESS
    PK_OK = "pk-ok"  # USERAUTH_PK_OK: the key would be accepted
    PARTIAL = "partial"  # USERAUTH_FAILURE with partial success
    FAILURE = "failure"  # USERAUTH_FAILURE
    DISCONNECT = "disconnect"  # the attempt limit is reached


class AuthLayer:
    """Server-side userauth state for one connection."""

    def __init__(self, config: ServerConfig, transport: TransportLayer, events: deque[Event]):
        self.config = config
        self.transport = transport
        self.events = events
        self.state = AuthState.WAIT_SERVICE
        self.username: str | None = None  # of the first valid request (paramiko semantics)
        self.failures = 0
        self.requests = 0
        self.service_requests = 0
        self._pending: Mapping[str, object] = _NO_REQUEST
        self._interactive_rounds = 0
        self._expected_responses = 0

    @property
    def authenticated(self) -> bool:
        """True once USERAUTH_SUCCESS has been sent."""
        return self.state is AuthState.DONE

    # -- input ----------------------------------------------------------------
    def handle(self, seq: int, payload: bytes) -> bool:
        """Process one auth-layer message; False if it is not ours (send UNIMPLEMENTED)."""
        msg = payload[0]
        if msg not in (MSG.SERVICE_REQUEST, MSG.USERAUTH_REQUEST, MSG.USERAUTH_INFO_RESPONSE):
            return False
        handler = _TABLE.get((self.state, msg))
        if handler is not None:
            handler(self, payload)
            return True
        if self.state is AuthState.DONE:
            return False
        if msg == MSG.USERAUTH_REQUEST and self.state is AuthState.WAIT_SERVICE:
            raise RemoteProtocolError("authentication request before ssh-userauth was accepted")
        raise RemoteProtocolError(f"unexpected message {msg} in auth state {self.state.value}")

    def _ignore(self, payload: bytes) -> None:
        """Requests after success are ignored (RFC 4252 §5.1)."""

    def _on_service_request(self, payload: bytes) -> None:
        reader = wire.Reader(payload, 1)
        service = reader.ascii(MAX_NAME)
        reader.check_end()
        if service != "ssh-userauth":
            raise RemoteProtocolError(
                f"service {service!r} not available", DisconnectReason.SERVICE_NOT_AVAILABLE
            )
        self.service_requests += 1
        if self.service_requests > MAX_REQUESTS:
            raise RemoteProtocolError("too many service requests", _NO_MORE)
        self.transport.send(bytes((MSG.SERVICE_ACCEPT,)) + wire.string(service))
        if self.state is AuthState.WAIT_SERVICE:
            self.state = AuthState.READY
            self.events.append(AuthServiceStarted())

    def _on_request_abandoning(self, payload: bytes) -> None:
        """A new request in the middle of keyboard-interactive: that round failed."""
        self.state = AuthState.READY
        self._count_failure()
        self._on_request(payload)

    def _on_request(self, payload: bytes) -> None:
        self.requests += 1
        if self.requests > MAX_REQUESTS:
            raise RemoteProtocolError("too many authentication requests", _NO_MORE)
        reader = wire.Reader(payload, 1)
        raw_user = reader.string()
        service = reader.ascii(MAX_NAME)
        method = reader.ascii(MAX_NAME)
        method = _METHOD_NAMES.get(method, method)  # kept for the connection's life
        if service != "ssh-connection":
            raise RemoteProtocolError(
                f"service {service!r} not available", DisconnectReason.SERVICE_NOT_AVAILABLE
            )
        counted = not (self.requests == 1 and method == "none")  # OpenSSH's rule
        username = _valid_username(raw_user, self.config.max_username_length)
        if username is None:
            shown = raw_user[:64].decode("utf-8", "replace")
            self._reject(shown, method, counted, "invalid user name", username_valid=False)
            return
        if self.username is None:
            self.username = username
        elif username != self.username:
            raise RemoteProtocolError("change of user name not allowed", _NO_MORE)
        parser = _PARSERS.get(method)
        if parser is None:
            self._reject(username, method, counted, "unsupported method")
            return
        details = parser(self, reader, payload)
        if isinstance(details, str):
            self._reject(username, method, counted, details)
            return
        self._decide(username, {"counted": counted, "method": method, **details})

    def _decide(self, username: str, details: Details) -> None:
        self._pending = details
        self.state = AuthState.DECIDING
        self.events.append(AuthRequested(username, str(details["method"]), details))

    def _reject(
        self, username: str, method: str, counted: bool, reason: str, *, username_valid: bool = True
    ) -> None:
        """A failure the core judged alone; the driver only supplies the method list."""
        details: Details = {"counted": counted, "method": method, "rejected": reason}
        details["username_valid"] = username_valid
        self._decide(username, details)

    # -- method parsers: event details, or the reason to fail at once --------
    def _parse_none(self, reader: wire.Reader, payload: bytes) -> Details | str:
        reader.check_end()
        return {}

    def _parse_password(self, reader: wire.Reader, payload: bytes) -> Details | str:
        change = reader.boolean()
        password = reader.string()
        new_password = reader.string() if change else None
        reader.check_end()
        limit = self.config.max_password_length
        if len(password) > limit or (new_password is not None and len(new_password) > limit):
            return "password too long"
        if new_password is None:
            return {"password": _text_or_bytes(password)}
        return {
            "method": "password-change",
            "password": _text_or_bytes(password),
            "new_password": _text_or_bytes(new_password),
        }

    def _parse_publickey(
        self, reader: wire.Reader, payload: bytes, hostbound: bool = False
    ) -> Details | str:
        signed = reader.boolean()
        algorithm = reader.ascii(MAX_NAME)
        blob = reader.string(MAX_BLOB)
        if hostbound:
            # OpenSSH PROTOCOL 3.1: the host key the client believes it is
            # talking to, inside the signed data; it must be the one our
            # first key exchange proved (what destination-constrained agent
            # keys rely on).
            if not self.config.hostbound_auth:
                return "unsupported method"
            if reader.string(MAX_BLOB) != self.transport.host_key_blob:
                return "host-bound request names another host key"
        signed_end = reader.position
        signature = reader.string(MAX_BLOB) if signed else None
        reader.check_end()
        parsed = self._user_key(algorithm, blob)
        if isinstance(parsed, str):
            return parsed
        key, certificate = parsed
        assertion = None
        if signature is not None:
            signed_data = self._signed_data(payload[:signed_end])
            if isinstance(key, SecurityKey):
                assertion = key.verify_assertion(signed_data, signature, algorithm)
                if assertion is None:
                    return "invalid signature"
            elif not key.verify(signed_data, signature, algorithm):
                return "invalid signature"
        details: Details = {
            "algorithm": algorithm,
            "key_blob": blob,
            "key": key,
            "certificate": certificate,
            "signed": signed,
        }
        if assertion is not None:
            details["sk_flags"] = assertion.flags
            details["sk_counter"] = assertion.counter
        if hostbound:
            details["method"] = "publickey"  # the application sees a publickey login
            details["hostbound"] = True
        return details

    def _parse_hostbound(self, reader: wire.Reader, payload: bytes) -> Details | str:
        return self._parse_publickey(reader, payload, hostbound=True)

    def _parse_hostbased(self, reader: wire.Reader, payload: bytes) -> Details | str:
        algorithm = reader.ascii(MAX_NAME)
        blob = reader.string(MAX_BLOB)
        client_host = reader.string(MAX_HOST_FIELD)
        client_user = reader.string(MAX_HOST_FIELD)
        signed_end = reader.position
        signature = reader.string(MAX_BLOB)
        reader.check_end()
        host, user = _text_or_bytes(client_host), _text_or_bytes(client_user)
        if not isinstance(host, str) or not isinstance(user, str):
            return "client host or user name is not UTF-8"
        parsed = self._user_key(algorithm, blob)
        if isinstance(parsed, str):
            return parsed
        key, certificate = parsed
        if not key.verify(self._signed_data(payload[:signed_end]), signature, algorithm):
            return "invalid signature"
        return {
            "algorithm": algorithm,
            "key_blob": blob,
            "key": key,
            "certificate": certificate,
            "client_host": host,
            "client_user": user,
        }

    def _parse_interactive(self, reader: wire.Reader, payload: bytes) -> Details | str:
        reader.string(MAX_NAME)  # language tag, deprecated (RFC 4256 §3.1)
        submethods = reader.string(MAX_HOST_FIELD)
        reader.check_end()
        self._interactive_rounds = 0
        return {"submethods": submethods}

    def _user_key(self, algorithm: str, blob: bytes) -> tuple[SSHKey, object] | str:
        """Key and certificate of a publickey/hostbased request, or why it is refused."""
        if strip_cert_suffix(algorithm) not in self.config.pubkey_algorithms:
            return f"public key algorithm {algorithm!r} not allowed"
        try:
            return parse_userauth_key(algorithm, blob)
        except (KeyParseError, RemoteProtocolError, ValueError, TypeError) as exc:
            return f"unusable public key: {exc}"

    def _signed_data(self, request_prefix: bytes) -> bytes:
        """What publickey/hostbased signatures cover (RFC 4252 §7, §9)."""
        session_id = self.transport.session_id
        if session_id is None:
            raise RemoteProtocolError("authentication before key exchange")
        return wire.string(session_id) + request_prefix

    def _on_info_response(self, payload: bytes) -> None:
        reader = wire.Reader(payload, 1)
        count = reader.u32()
        if count != self._expected_responses:
            # OpenSSH: fatal "wrong number of replies" (auth2-chall.c).
            raise RemoteProtocolError(
                f"{count} keyboard-interactive responses, {self._expected_responses} expected"
            )
        responses = [reader.string() for _ in range(count)]
        reader.check_end()
        assert self.username is not None
        method = "keyboard-interactive-response"
        if any(len(r) > self.config.max_password_length for r in responses):
            self._reject(self.username, method, True, "response too long")
            return
        answers = [_text_or_bytes(r) for r in responses]
        self._decide(self.username, {"counted": True, "method": method, "responses": answers})

    # -- driver commands ------------------------------------------------------
    def send_banner(self, text: str | bytes, language: str = "") -> bool:
        """Send USERAUTH_BANNER (RFC 4252 §5.4); only between SERVICE_ACCEPT and success."""
        if self.state in (AuthState.WAIT_SERVICE, AuthState.DONE):
            return False
        self.transport.send(
            bytes((MSG.USERAUTH_BANNER,)) + wire.string(text) + wire.string(language or "")
        )
        return True

    def outcome(self, result: int) -> Outcome:
        """What ``answer(result)`` would send for the pending request."""
        pending = self._require_pending()
        ok = result in (AUTH_SUCCESSFUL, AUTH_PARTIALLY_SUCCESSFUL) and "rejected" not in pending
        if ok and pending["method"] == "publickey" and not pending["signed"]:
            return Outcome.PK_OK
        if ok:
            return Outcome.SUCCESS if result == AUTH_SUCCESSFUL else Outcome.PARTIAL
        if pending["counted"] and self.failures + 1 >= self.config.max_auth_tries:
            return Outcome.DISCONNECT
        return Outcome.FAILURE

    def answer(self, result: int, allowed_methods: str = "") -> Outcome:
        """Answer the pending request with an AUTH_* result; returns what was sent.

        ``allowed_methods`` (comma-separated) goes into a FAILURE; raises
        ``RemoteProtocolError`` (NO_MORE_AUTH_METHODS_AVAILABLE) at the limit.
        """
        outcome = self.outcome(result)
        pending, self._pending = self._pending, _NO_REQUEST
        self.state = AuthState.READY
        if outcome is Outcome.PK_OK:
            self.transport.send(
                bytes((USERAUTH_PK_OK,))
                + wire.string(str(pending["algorithm"]))
                + wire.string(_as_bytes(pending["key_blob"]))
            )
        elif outcome is Outcome.SUCCESS:
            self._succeed(str(pending["method"]))
        elif outcome is Outcome.PARTIAL:
            self._send_failure(allowed_methods, partial=True)
        else:
            if pending["counted"]:
                self._count_failure()
            self._send_failure(allowed_methods, partial=False)
        return outcome

    def can_send_info_request(self, prompts: int) -> bool:
        """True if the pending keyboard-interactive step may get another round."""
        method = self._pending.get("method")
        return (
            self.state is AuthState.DECIDING
            and method in ("keyboard-interactive", "keyboard-interactive-response")
            and "rejected" not in self._pending
            and self._interactive_rounds < self.config.max_interactive_rounds
            and 0 <= prompts <= MAX_PROMPTS
        )

    def send_info_request(
        self, name: str, instructions: str, prompts: Sequence[tuple[str, bool]]
    ) -> None:
        """Answer the pending keyboard-interactive step with a round of prompts (RFC 4256 §3.2)."""
        if not self.can_send_info_request(len(prompts)):
            raise LocalProtocolError("no keyboard-interactive round may be sent now")
        self._interactive_rounds += 1
        parts = [bytes((USERAUTH_INFO_REQUEST,)), wire.string(name), wire.string(instructions)]
        parts += [wire.string(b""), wire.u32(len(prompts))]
        for prompt, echo in prompts:
            parts += [wire.string(prompt), wire.boolean(echo)]
        self._pending = _NO_REQUEST
        self._expected_responses = len(prompts)
        self.state = AuthState.INTERACTIVE
        self.transport.send(b"".join(parts))

    def send_password_change_request(self, prompt: str, language: str = "") -> None:
        """Tell the client its password expired (RFC 4252 §8, PASSWD_CHANGEREQ).

        Allowed for a pending ``password`` or ``password-change`` request; for
        the latter (the new password was not acceptable) it counts as a failure.
        """
        pending = self._require_pending()
        if pending["method"] not in ("password", "password-change") or "rejected" in pending:
            raise LocalProtocolError("a password change may only answer a password request")
        self._pending = _NO_REQUEST
        self.state = AuthState.READY
        if pending["method"] == "password-change":
            self._count_failure()
        self.transport.send(
            bytes((USERAUTH_PASSWD_CHANGEREQ,)) + wire.string(prompt) + wire.string(language)
        )

    def check_deadline(self, now: float) -> None:
        """Raise if the login grace time has passed without success."""
        deadline = self.deadline()
        if deadline is not None and now >= deadline:
            raise RemoteProtocolError("login grace time exceeded", _NO_MORE)

    def deadline(self) -> float | None:
        """When authentication must have succeeded (None once it has)."""
        if self.state is AuthState.DONE:
            return None
        return self.transport.started_at + self.config.auth_timeout

    # -- helpers --------------------------------------------------------------
    def _require_pending(self) -> Mapping[str, object]:
        if self.state is not AuthState.DECIDING:
            raise LocalProtocolError("no authentication request is pending")
        return self._pending

    def _succeed(self, method: str) -> None:
        self.transport.send(bytes((MSG.USERAUTH_SUCCESS,)))
        self.state = AuthState.DONE
        assert self.username is not None
        self.transport.announce_host_keys()  # as sshd: right after the success
        self.events.append(AuthSucceeded(self.username, method))

    def _count_failure(self) -> None:
        """Count one failed attempt; at ``max_auth_tries`` the connection ends."""
        self.failures += 1
        if self.failures >= self.config.max_auth_tries:
            raise RemoteProtocolError("Too many authentication failures", _NO_MORE)

    def _send_failure(self, allowed_methods: str, *, partial: bool) -> None:
        names = [m.strip() for m in allowed_methods.split(",")]
        names = [m for m in names if m and m.isascii() and m.isprintable()]
        self.transport.send(
            bytes((MSG.USERAUTH_FAILURE,)) + wire.name_list(names) + wire.boolean(partial)
        )


# (state, message) -> handler, and method -> request parser: one table for
# the class, not one per connection.
_S = AuthState
_TABLE: dict[tuple[AuthState, int], Callable[[AuthLayer, bytes], None]] = {
    (_S.WAIT_SERVICE, MSG.SERVICE_REQUEST): AuthLayer._on_service_request,
    (_S.READY, MSG.SERVICE_REQUEST): AuthLayer._on_service_request,  # paramiko: every auth_*
    (_S.INTERACTIVE, MSG.SERVICE_REQUEST): AuthLayer._on_service_request,
    (_S.READY, MSG.USERAUTH_REQUEST): AuthLayer._on_request,
    (_S.INTERACTIVE, MSG.USERAUTH_REQUEST): AuthLayer._on_request_abandoning,
    (_S.INTERACTIVE, MSG.USERAUTH_INFO_RESPONSE): AuthLayer._on_info_response,
    (_S.DONE, MSG.USERAUTH_REQUEST): AuthLayer._ignore,
}
_PARSERS: dict[str, Callable[[AuthLayer, wire.Reader, bytes], Details | str]] = {
    "none": AuthLayer._parse_none,
    "password": AuthLayer._parse_password,
    "publickey": AuthLayer._parse_publickey,
    HOSTBOUND_METHOD: AuthLayer._parse_hostbound,
    "keyboard-interactive": AuthLayer._parse_interactive,
    "hostbased": AuthLayer._parse_hostbased,
}
# Each known method name as one shared string (not a decoded copy per connection).
_METHOD_NAMES = {name: name for name in _PARSERS}


def _valid_username(raw: bytes, limit: int) -> str | None:
    """The user name as text, or None if too long, not UTF-8 or holding NUL."""
    if len(raw) > limit or b"\x00" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _as_bytes(value: object) -> bytes:
    assert isinstance(value, bytes)
    return value


def _text_or_bytes(data: bytes) -> str | bytes:
    """paramiko passes secrets as str when they are valid UTF-8, else bytes."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data
