"""The application's side: ``ServerInterface``, ``InteractiveQuery``, ``SubsystemHandler``.

paramiko-compatible (docs/compatibility.md). Every ``check_*`` method denies by
default; subclasses override what they allow. The transport calls these
synchronously in the connection's greenlet, at the same protocol points as
paramiko's transport thread. ``SubsystemHandler`` runs in its own greenlet but
keeps paramiko's Thread API (``start``, ``join``, ``is_alive``, ``name``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import gevent

from geossh._facade.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
)

if TYPE_CHECKING:
    from geossh._facade.channel import Channel
    from geossh._facade.message import Message
    from geossh._facade.pkey import PKey
    from geossh._facade.transport import Transport
    from geossh.proto.keys import Certificate

_log = logging.getLogger("geossh.server")


class ServerInterface:
    """Decisions an SSH server makes: authentication and channel requests.

    Subclass it and override the methods you need; the defaults refuse.
    Methods run in the connection's greenlet: a method that blocks on a
    cooperative socket pauses only its own connection. An exception raised
    by a callback fails that one request (logged with its traceback); unlike
    paramiko it does not end the connection.
    """

    # -- channels (RFC 4254 §5.1) ------------------------------------------
    def check_channel_request(self, kind: str, chanid: int) -> int:
        """Decide whether a channel of ``kind`` may be opened.

        Return ``OPEN_SUCCEEDED`` (0) to accept or an ``OPEN_FAILED_*`` code.
        Note paramiko's int semantics: ``False`` (== 0) accepts.
        """
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    # -- authentication (RFC 4252) -----------------------------------------
    # Every result is one of AUTH_SUCCESSFUL (0), AUTH_PARTIALLY_SUCCESSFUL (1)
    # or AUTH_FAILED (2). geossh reads anything else (None, True/False, a
    # string) as AUTH_FAILED; paramiko would grant access for ``False`` (== 0).
    def get_allowed_auths(self, username: str) -> str:
        """Comma-separated method names sent in USERAUTH_FAILURE, e.g. ``"publickey,password"``.

        Called only when a failure (or partial success) is sent, so a
        multi-factor flow returns the methods still missing. Advisory: a
        method that is not listed is still offered to its ``check_auth_*``.
        """
        return "password"

    def check_auth_none(self, username: str) -> int:
        """Method ``none``: return ``AUTH_SUCCESSFUL`` to admit without credentials."""
        return AUTH_FAILED

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        """Method ``password``; ``password`` is str, or bytes if not valid UTF-8.

        Compare secrets with ``hmac.compare_digest``. geossh: return
        ``AUTH_PASSWORD_CHANGE_REQUIRED`` for a correct but expired password
        to ask the client for a new one (see ``check_auth_password_change``).
        """
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: PKey) -> int:
        """Method ``publickey``: is ``key`` acceptable for ``username``?

        Called for the signature-less query (a non-failure answers PK_OK) and
        again for the signed request; geossh verifies the signature before
        calling, so only the signed call can lead to success. Do not record
        a factor as done on the query: OpenSSH always queries first. For an
        OpenSSH certificate ``key.public_blob`` holds it (see
        ``check_auth_cert_authority`` for validated certificates).
        """
        return AUTH_FAILED

    def check_auth_interactive(self, username: str, submethods: bytes) -> int | InteractiveQuery:
        """Method ``keyboard-interactive``: return an ``InteractiveQuery`` or a result."""
        return AUTH_FAILED

    def check_auth_interactive_response(self, responses: list[str]) -> int | InteractiveQuery:
        """Answers to the last ``InteractiveQuery`` (one per prompt, in order).

        Return another query for a further round, or a result. Keep the user
        name from ``check_auth_interactive`` on ``self``.
        """
        return AUTH_FAILED

    def check_auth_gssapi_with_mic(
        self, username: str, gss_authenticated: int = AUTH_FAILED, cc_file: str | None = None
    ) -> int:
        """Kept so paramiko 4.x subclasses load; geossh offers no GSSAPI."""
        return AUTH_SUCCESSFUL if gss_authenticated == AUTH_SUCCESSFUL else AUTH_FAILED

    def check_auth_gssapi_keyex(
        self, username: str, gss_authenticated: int = AUTH_FAILED, cc_file: str | None = None
    ) -> int:
        """Kept so paramiko 4.x subclasses load; geossh offers no GSSAPI."""
        return AUTH_SUCCESSFUL if gss_authenticated == AUTH_SUCCESSFUL else AUTH_FAILED

    def enable_auth_gssapi(self) -> bool:
        """GSSAPI is not supported; always False."""
        return False

    def get_banner(self) -> tuple[str | None, str | None]:
        """``(text, language)`` sent as USERAUTH_BANNER after the service is accepted."""
        return (None, None)

    # -- authentication: geossh extensions (opt-in; not in paramiko) ---------
    def check_auth_password_change(
        self, username: str, old_password: str | bytes, new_password: str | bytes
    ) -> int:
        """A password change request (RFC 4252 §8); geossh only.

        Sent after ``check_auth_password`` returned
        ``AUTH_PASSWORD_CHANGE_REQUIRED``, but a client may also send one
        unasked, so **verify** ``old_password`` here too. Return
        ``AUTH_SUCCESSFUL`` (changed; logged in), ``AUTH_PARTIALLY_SUCCESSFUL``
        (changed; more methods needed), ``AUTH_FAILED`` (not changed) or
        ``AUTH_PASSWORD_CHANGE_REQUIRED`` (the new password is not acceptable;
        the client is asked again and the attempt counts as a failure).
        """
        return AUTH_FAILED

    def get_password_change_prompt(self, username: str) -> str:
        """The text of the PASSWD_CHANGEREQ sent for an expired password; geossh only."""
        return "Password expired; enter a new password."

    def check_auth_cert_authority(self, username: str, ca_key: PKey) -> bool:
        """Trust ``ca_key`` to sign user certificates for ``username``? geossh only.

        When True, geossh validates the OpenSSH user certificate as sshd's
        TrustedUserCAKeys does (user type, CA signature and its algorithm,
        validity window, ``username`` among the principals, critical options
        ``source-address`` checked against the peer, ``force-command``
        allowed, ``verify-required`` on a security-key certificate, any
        other refused) and then asks ``check_auth_certificate``; a
        security-key certificate's ``no-touch-required`` / ``verify-required``
        are set on the ``SKKey`` and enforced on the signature's flags.
        When False (the default) the certificate goes to
        ``check_auth_publickey`` with ``key.public_blob`` set, as in paramiko.
        """
        return False

    def check_auth_certificate(self, username: str, key: PKey, certificate: Certificate) -> int:
        """Decide a valid certificate from a trusted CA; geossh only.

        ``key`` is the certified key, ``certificate`` a
        ``geossh.proto.keys.Certificate`` (``key_id``, ``serial``,
        ``principals``, ``extensions``, ``force_command`` …). The default
        accepts it unless it carries ``force-command``, which only the
        application can enforce: override to honour it (and its extensions,
        e.g. ``permit-pty``).
        """
        if certificate.force_command is not None:
            return AUTH_FAILED
        return AUTH_SUCCESSFUL

    def check_auth_hostbased(
        self, username: str, key: PKey, client_host: str, client_user: str
    ) -> int:
        """Method ``hostbased`` (RFC 4252 §9); geossh only.

        The signature by ``key`` (the client host's key) is already
        verified. Check that ``key`` belongs to ``client_host`` (OpenSSH
        sends the name with a trailing dot) and that ``client_user`` there
        may log in as ``username``.
        """
        return AUTH_FAILED

    # -- global requests (RFC 4254 §4, §7) ---------------------------------
    def check_port_forward_request(self, address: str, port: int) -> int | bool:
        """``tcpip-forward``: return the port actually bound, or False to refuse."""
        return False

    def cancel_port_forward_request(self, address: str, port: int) -> None:
        """``cancel-tcpip-forward``: stop listening on ``(address, port)``."""

    def check_global_request(self, kind: str, msg: Message) -> bool | tuple[Any, ...]:
        """Any other global request: truthy (or a tuple of reply fields) succeeds."""
        return False

    # -- session channel requests (RFC 4254 §6) -----------------------------
    def check_channel_pty_request(
        self,
        channel: Channel,
        term: bytes,
        width: int,
        height: int,
        pixelwidth: int,
        pixelheight: int,
        modes: bytes,
    ) -> bool:
        """``pty-req``: ``term`` and the raw encoded ``modes`` are bytes."""
        return False

    def check_channel_shell_request(self, channel: Channel) -> bool:
        """``shell``: start a shell on ``channel``."""
        return False

    def check_channel_exec_request(self, channel: Channel, command: bytes) -> bool:
        """``exec``: run ``command`` (bytes) on ``channel``."""
        return False

    def check_channel_subsystem_request(self, channel: Channel, name: str) -> bool:
        """``subsystem``: start the handler registered with ``set_subsystem_handler``."""
        transport = channel.get_transport()
        handler_class, args, kwargs = transport._get_subsystem_handler(name)
        if handler_class is None:
            return False
        handler = handler_class(channel, name, self, *args, **kwargs)
        handler.start()
        return True

    def check_channel_window_change_request(
        self, channel: Channel, width: int, height: int, pixelwidth: int, pixelheight: int
    ) -> bool:
        """``window-change``: the terminal was resized."""
        return False

    def check_channel_x11_request(
        self,
        channel: Channel,
        single_connection: bool,
        auth_protocol: str,
        auth_cookie: bytes,
        screen_number: int,
    ) -> bool:
        """``x11-req``: allow X11 forwarding on this session."""
        return False

    def check_channel_forward_agent_request(self, channel: Channel) -> bool:
        """``auth-agent-req@openssh.com``: allow agent forwarding."""
        return False

    def check_channel_env_request(self, channel: Channel, name: bytes, value: bytes) -> bool:
        """``env``: set an environment variable (``name``/``value`` are bytes)."""
        return False

    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        """``direct-tcpip`` open (``ssh -L``/``-D``): return ``OPEN_SUCCEEDED`` or a code."""
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class InteractiveQuery:
    """A keyboard-interactive round: a name, instructions and prompts."""

    def __init__(self, name: str = "", instructions: str = "", *prompts: str | tuple[str, bool]):
        self.name = name
        self.instructions = instructions
        self.prompts: list[tuple[str, bool]] = []
        for prompt in prompts:
            if isinstance(prompt, str):
                self.add_prompt(prompt)
            else:
                self.add_prompt(prompt[0], prompt[1])

    def add_prompt(self, prompt: str, echo: bool = True) -> None:
        """Append a prompt; ``echo`` says whether the client should show input."""
        self.prompts.append((prompt, echo))


class SubsystemHandler:
    """Handler for one subsystem request, run in its own greenlet.

    Subclass it and override ``start_subsystem``; when that returns,
    ``finish_subsystem`` (by default: close the channel) runs. The Thread
    API of paramiko's version (``start``, ``join``, ``is_alive``, ``name``,
    ``daemon``) is kept.
    """

    def __init__(self, channel: Channel, name: str, server: ServerInterface) -> None:
        self.__channel = channel
        self.__transport = channel.get_transport()
        self.__name = name
        self.__server = server
        self.name = f"subsystem-{name}"
        self.daemon = True
        self._greenlet: gevent.Greenlet[[], None] | None = None

    def get_server(self) -> ServerInterface:
        """The ``ServerInterface`` of the session that started this subsystem."""
        return self.__server

    # -- Thread API ---------------------------------------------------------
    def start(self) -> None:
        """Run the handler in a new greenlet."""
        if self._greenlet is not None:
            raise RuntimeError("threads can only be started once")
        self._greenlet = gevent.spawn(self._run)

    def run(self) -> None:
        """Thread-style body: run the subsystem then clean up."""
        self._run()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the handler has finished (or ``timeout`` passes)."""
        if self._greenlet is not None:
            self._greenlet.join(timeout)

    def is_alive(self) -> bool:
        """True while the handler runs."""
        return self._greenlet is not None and not self._greenlet.dead

    isAlive = is_alive

    def _run(self) -> None:
        transport: Transport = self.__transport
        logger = transport.logger
        try:
            logger.debug("Starting handler for subsystem %s", self.__name)
            self.start_subsystem(self.__name, transport, self.__channel)
        except Exception as exc:
            logger.error(
                'Exception in subsystem handler for "%s": %s', self.__name, exc, exc_info=True
            )
        try:
            self.finish_subsystem()
        except Exception:
            logger.debug("Exception in finish_subsystem", exc_info=True)

    def start_subsystem(self, name: str, transport: Transport, channel: Channel) -> None:
        """Serve the subsystem on ``channel``; return when it is done."""

    def finish_subsystem(self) -> None:
        """Clean up after ``start_subsystem``; by default close the channel."""
        self.__channel.close()
