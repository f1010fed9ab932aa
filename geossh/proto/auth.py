"""The user authentication protocol, server side (RFC 4252, RFC 4256).

Theory of operation
-------------------
The core parses each USERAUTH_REQUEST, rejects what it can judge alone
(wrong service, unknown method, oversized names, unsupported key algorithm,
malformed key, bad signature) and emits ``AuthRequested`` for the rest. The
driver asks the application and answers with ``answer``, ``send_info_request``
or ``send_password_change_request``. Publickey and hostbased signatures are
verified here *before* the application is asked, so a success can only
follow a valid signature.

States (``AuthState``)::

    WAIT_SERVICE --SERVICE_REQUEST ssh-userauth--> READY
    READY --request the core can judge--> READY (FAILURE sent)
    READY --request needing a decision--> DECIDING --answer--> READY | DONE
    DECIDING --send_info_request--> INTERACTIVE --INFO_RESPONSE--> DECIDING
    DONE: further requests are ignored (RFC 4252 §5.1)

Failures count towards ``max_auth_tries`` (the client's first ``none``
probe and partial successes do not, as in OpenSSH); at the limit the
connection ends with NO_MORE_AUTH_METHODS_AVAILABLE. Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections import deque

from geossh.errors import LocalProtocolError, RemoteProtocolError
from geossh.proto import wire
from geossh.proto.algorithms import KEY_TYPE_FOR_ALGORITHM
from geossh.proto.config import ServerConfig
from geossh.proto.constants import MSG, USERAUTH_INFO_REQUEST, DisconnectReason
from geossh.proto.events import AuthRequested, AuthServiceStarted, AuthSucceeded, Event
from geossh.proto.keys import KeyParseError, SSHKey, parse_certificate, public_key_from_blob
from geossh.proto.transport import TransportLayer

AUTH_SUCCESSFUL, AUTH_PARTIALLY_SUCCESSFUL, AUTH_FAILED = 0, 1, 2
AUTH_PASSWORD_CHANGE_REQUIRED = 3  # geossh: credentials valid but expired
CERT_SUFFIX = "-cert-v01@openssh.com"
_MAX_RESPONSES = 64


class AuthState(enum.Enum):
    """Where user authentication stands (see the module docstring)."""

    WAIT_SERVICE = "wait-service"
    READY = "ready"
    DECIDING = "deciding"
    INTERACTIVE = "interactive"
    DONE = "done"


class AuthLayer:
    """Server-side userauth state for one connection."""

    def __init__(self, config: ServerConfig, transport: TransportLayer, events: deque[Event]):
        self.config = config
        self.transport = transport
        self.events = events
        self.state = AuthState.WAIT_SERVICE
        self.username: str | None = None
        self.method: str | None = None
        self.failures = 0
        self.partial_methods: list[str] = []
        self._pending: dict[str, object] = {}
        self._interactive_rounds = 0
        self._expected_responses = 0
        self._first_request = True

    @property
    def authenticated(self) -> bool:
        """True once USERAUTH_SUCCESS has been sent."""
        return self.state is AuthState.DONE

    # -- input ----------------------------------------------------------------
    def handle(self, seq: int, payload: bytes) -> bool:
        """Process one auth-layer message; False if it is not ours."""
        msg = payload[0]
        if msg == MSG.SERVICE_REQUEST:
            self._on_service_request(payload)
        elif msg == MSG.USERAUTH_REQUEST:
            self._on_request(payload)
        elif msg == MSG.USERAUTH_INFO_RESPONSE:
            self._on_info_response(payload)
        else:
            return False
        return True

    def _on_service_request(self, payload: bytes) -> None:
        reader = wire.Reader(payload, 1)
        service = reader.ascii(256)
        if service != "ssh-userauth" or self.state is not AuthState.WAIT_SERVICE:
            raise RemoteProtocolError(
                f"service {service!r} not available", DisconnectReason.SERVICE_NOT_AVAILABLE
            )
        self.transport.send(bytes((MSG.SERVICE_ACCEPT,)) + wire.string(service))
        self.state = AuthState.READY
        self.events.append(AuthServiceStarted())

    def _on_request(self, payload: bytes) -> None:
        if self.state is AuthState.DONE:
            return
        if self.state is AuthState.WAIT_SERVICE:
            raise RemoteProtocolError("authentication request before ssh-userauth was accepted")
        if self.state is AuthState.DECIDING:
            raise RemoteProtocolError("authentication request while another is pending")
        reader = wire.Reader(payload, 1)
        raw_user = reader.string(64 * 1024)
        service = reader.ascii(256)
        method = reader.ascii(256)
        if service != "ssh-connection":
            raise RemoteProtocolError(
                f"service {service!r} not available", DisconnectReason.SERVICE_NOT_AVAILABLE
            )
        self.state = AuthState.READY
        self.method = method
        username = raw_user.decode("utf-8", "replace")
        if self.username is None:
            self.username = username
        elif username != self.username:
            raise RemoteProtocolError(
                "change of username not allowed", DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE
            )
        counted = not (self._first_request and method == "none")
        self._first_request = False
        if len(raw_user) > self.config.max_username_length:
            self._reject(username, method, counted, "user name too long")
            return
        handler = {
            "none": self._parse_none,
            "password": self._parse_password,
            "publickey": self._parse_publickey,
            "keyboard-interactive": self._parse_interactive,
            "hostbased": self._parse_hostbased,
        }.get(method)
        if handler is None:
            self._reject(username, method, counted, "unsupported method")
            return
        details = handler(reader, raw_user, payload)
        if details is None:
            self._reject(username, method, True, "invalid credentials or key")
            return
        self._decide(username, {"counted": counted, **details})

    def _decide(self, username: str, details: dict[str, object]) -> None:
        self._pending = details
        self.state = AuthState.DECIDING
        self.events.append(AuthRequested(username, str(details["method"]), details))

    def _reject(self, username: str, method: str, counted: bool, reason: str) -> None:
        """A failure the core judged alone; the driver still supplies the method list."""
        self._decide(username, {"counted": counted, "method": method, "rejected": reason})

    # -- method parsers: return event details, or None to fail at once -------
    def _parse_none(self, reader: wire.Reader, user: bytes, payload: bytes) -> dict[str, object]:
        reader.check_end()
        return {"method": "none"}

    def _parse_password(
        self, reader: wire.Reader, user: bytes, payload: bytes
    ) -> dict[str, object] | None:
        change = reader.boolean()
        limit = self.config.max_password_length
        password = reader.string(64 * 1024)
        new_password = reader.string(64 * 1024) if change else None
        reader.check_end()
        if len(password) > limit or (new_password is not None and len(new_password) > limit):
            return None
        if new_password is not None:
            return {
                "method": "password-change",
                "password": _text_or_bytes(password),
                "new_password": _text_or_bytes(new_password),
            }
        return {"method": "password", "password": _text_or_bytes(password)}

    def _parse_publickey(
        self, reader: wire.Reader, user: bytes, payload: bytes
    ) -> dict[str, object] | None:
        signed = reader.boolean()
        algorithm = reader.ascii(256)
        blob = reader.string(16 * 1024)
        signature_start = reader.position
        signature = reader.string(16 * 1024) if signed else None
        reader.check_end()
        parsed = self._parse_user_key(algorithm, blob)
        if parsed is None:
            return None
        key, certificate = parsed
        if signature is not None:
            data = self._signed_data(payload[:signature_start])
            if not key.verify(data, signature, algorithm.removesuffix(CERT_SUFFIX)):
                return None
        return {
            "method": "publickey",
            "algorithm": algorithm,
            "key_blob": blob,
            "key": key,
            "certificate": certificate,
            "signed": signed,
        }

    def _parse_hostbased(
        self, reader: wire.Reader, user: bytes, payload: bytes
    ) -> dict[str, object] | None:
        algorithm = reader.ascii(256)
        blob = reader.string(16 * 1024)
        client_host = reader.text(1024)
        client_user = reader.text(1024)
        signature_start = reader.position
        signature = reader.string(16 * 1024)
        reader.check_end()
        parsed = self._parse_user_key(algorithm, blob)
        if parsed is None:
            return None
        key, certificate = parsed
        data = self._signed_data(payload[:signature_start])
        if not key.verify(data, signature, algorithm.removesuffix(CERT_SUFFIX)):
            return None
        return {
            "method": "hostbased",
            "algorithm": algorithm,
            "key_blob": blob,
            "key": key,
            "certificate": certificate,
            "client_host": client_host,
            "client_user": client_user,
        }

    def _parse_interactive(
        self, reader: wire.Reader, user: bytes, payload: bytes
    ) -> dict[str, object]:
        reader.string(1024)  # language tag, deprecated (RFC 4256 §3.1)
        submethods = reader.string(1024)
        reader.check_end()
        self._interactive_rounds = 0
        return {"method": "keyboard-interactive", "submethods": submethods}

    def _parse_user_key(self, algorithm: str, blob: bytes) -> tuple[SSHKey, object] | None:
        base = algorithm.removesuffix(CERT_SUFFIX)
        if base not in self.config.pubkey_algorithms:
            return None
        try:
            if algorithm.endswith(CERT_SUFFIX):
                certificate = parse_certificate(blob)
                key: SSHKey = certificate.key
            else:
                certificate = None
                key = public_key_from_blob(blob)
        except (KeyParseError, ValueError):
            return None
        if KEY_TYPE_FOR_ALGORITHM.get(base) != key.key_type:
            return None
        return key, certificate

    def _signed_data(self, request_prefix: bytes) -> bytes:
        """What publickey/hostbased signatures cover (RFC 4252 §7, §9)."""
        assert self.transport.session_id is not None
        return wire.string(self.transport.session_id) + request_prefix

    def _on_info_response(self, payload: bytes) -> None:
        if self.state is not AuthState.INTERACTIVE:
            raise RemoteProtocolError("unexpected USERAUTH_INFO_RESPONSE")
        reader = wire.Reader(payload, 1)
        count = reader.u32()
        assert self.username is not None
        method = "keyboard-interactive-response"
        if count != self._expected_responses or count > _MAX_RESPONSES:
            self._reject(self.username, method, True, "wrong number of responses")
            return
        responses = [reader.string(self.config.max_password_length) for _ in range(count)]
        reader.check_end()
        self._decide(
            self.username,
            {"counted": True, "method": method, "responses": [_text_or_bytes(r) for r in responses]},
        )

    # -- driver commands ------------------------------------------------------
    def send_banner(self, text: str, language: str = "") -> None:
        """Send USERAUTH_BANNER (RFC 4252 §5.4); only before success."""
        if self.state is AuthState.DONE:
            return
        self.transport.send(
            bytes((MSG.USERAUTH_BANNER,)) + wire.string(text) + wire.string(language or "")
        )

    def answer(self, result: int, allowed_methods: str) -> None:
        """Answer the pending request with an AUTH_* result."""
        if self.state is not AuthState.DECIDING:
            raise LocalProtocolError("no authentication request is pending")
        pending, self._pending = self._pending, {}
        method = str(pending["method"])
        self.state = AuthState.READY
        self.allowed_methods = allowed_methods
        if pending.get("rejected"):
            result = AUTH_FAILED
        if method == "publickey" and not pending["signed"]:
            if result in (AUTH_SUCCESSFUL, AUTH_PARTIALLY_SUCCESSFUL):
                self.transport.send(
                    bytes((USERAUTH_INFO_REQUEST,))
                    + wire.string(str(pending["algorithm"]))
                    + wire.string(bytes(pending["key_blob"]))  # type: ignore[arg-type]
                )
                return
            self._fail(bool(pending["counted"]), allowed_methods)
            return
        if result == AUTH_SUCCESSFUL:
            self._succeed(method)
        elif result == AUTH_PARTIALLY_SUCCESSFUL:
            self.transport.send(
                bytes((MSG.USERAUTH_FAILURE,)) + wire.name_list(_split(allowed_methods)) + b"\x01"
            )
        else:
            self._fail(bool(pending["counted"]), allowed_methods)

    def send_info_request(
        self, name: str, instructions: str, prompts: list[tuple[str, bool]]
    ) -> None:
        """Answer the pending keyboard-interactive step with another round (RFC 4256 §3.2)."""
        if self.state is not AuthState.DECIDING:
            raise LocalProtocolError("no authentication request is pending")
        self._interactive_rounds += 1
        if self._interactive_rounds > self.config.max_interactive_rounds:
            self.state = AuthState.READY
            self._fail(True)
            return
        parts = [bytes((USERAUTH_INFO_REQUEST,)), wire.string(name), wire.string(instructions)]
        parts += [wire.string(b""), wire.u32(len(prompts))]
        for prompt, echo in prompts:
            parts += [wire.string(prompt), wire.boolean(echo)]
        self.transport.send(b"".join(parts))
        self._expected_responses = len(prompts)
        self.state = AuthState.INTERACTIVE

    def send_password_change_request(self, prompt: str, language: str = "") -> None:
        """Tell the client its password expired (RFC 4252 §8, PASSWD_CHANGEREQ)."""
        if self.state is not AuthState.DECIDING:
            raise LocalProtocolError("no authentication request is pending")
        self._pending = {}
        self.state = AuthState.READY
        self.transport.send(
            bytes((USERAUTH_INFO_REQUEST,)) + wire.string(prompt) + wire.string(language)
        )

    def check_deadline(self, now: float) -> None:
        """Raise if the login grace time has passed without success."""
        if self.state is not AuthState.DONE and now >= self.deadline():
            raise RemoteProtocolError(
                "login grace time exceeded", DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE
            )

    def deadline(self) -> float:
        """When authentication must have succeeded."""
        return self.transport.started_at + self.config.auth_timeout

    # -- helpers --------------------------------------------------------------
    def _succeed(self, method: str) -> None:
        self.transport.send(bytes((MSG.USERAUTH_SUCCESS,)))
        self.state = AuthState.DONE
        self.transport.writer.enable_delayed_compression()
        self.transport.reader.enable_delayed_compression()
        assert self.username is not None
        self.events.append(AuthSucceeded(self.username, method))

    def _fail(self, counted: bool, allowed_methods: str | None = None) -> None:
        """Send USERAUTH_FAILURE, enforcing the attempt limit."""
        if counted:
            self.failures += 1
            if self.failures >= self.config.max_auth_tries:
                raise RemoteProtocolError(
                    "Too many authentication failures",
                    DisconnectReason.NO_MORE_AUTH_METHODS_AVAILABLE,
                )
        methods = _split(allowed_methods if allowed_methods is not None else self.allowed_methods)
        self.transport.send(bytes((MSG.USERAUTH_FAILURE,)) + wire.name_list(methods) + b"\x00")

    allowed_methods = "publickey,password,keyboard-interactive"


def _split(methods: str) -> list[str]:
    return [m.strip() for m in methods.split(",") if m.strip()]


def _text_or_bytes(data: bytes) -> str | bytes:
    """paramiko passes secrets as str when they are valid UTF-8, else bytes."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data
