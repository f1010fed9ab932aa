"""The application behind ``geossh serve``: one user, their keys, real commands, SFTP and scp.

``ServeApp`` holds the settings; ``ServeApp.interface(transport)`` makes the
per-connection ``ServerInterface``: public keys from authorized_keys files
(read per connection, so edits apply to the next login) honouring sshd's
``from=``, ``expiry-time``, ``command=`` (a forced command, with
SSH_ORIGINAL_COMMAND), ``no-pty``/``restrict``, ``no-port-forwarding``,
``no-agent-forwarding``, ``no-X11-forwarding``, ``permitopen`` and
``permitlisten``; X11 forwarding (a ready display per session) only when
enabled; OpenSSH user certificates through ``cert-authority``
lines only (as sshd: never through a plain line of the certified key),
with the line's options narrowed by the certificate's ``permit-*``
extensions and its ``force-command``; ``permit-user-rc`` has nothing to
gate, as ``~/.ssh/rc`` is never run; forwarding (``geossh.forward``) only when enabled;
an optional password compared in constant time. Sessions run through
``OSCommand`` (real shells with a pty, exec with pipes); ``scp -t/-f``
commands are served by ``ScpHandler`` confined to the SFTP root; the
``sftp`` subsystem is ``SFTPServer`` over ``LocalSFTPServer(root)``.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Sequence
from typing import Any

from geossh._facade.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from geossh._facade.skkey import SKKey
from geossh.proto.keys import KeyParseError, parse_certificate
from geossh.services.authorized_keys import AuthorizedKey, AuthorizedKeys
from geossh.services.forward import ForwardingPolicy, ForwardingServer
from geossh.services.oscommand import OSCommand
from geossh.services.session import Session

log = logging.getLogger("geossh.server")


class ServeApp:
    """Settings and handlers of ``geossh serve``."""

    def __init__(
        self, user: str, authorized_keys: Sequence[str | os.PathLike[str]],
        password: str | None, root: str, sftp: bool = True, shell: bool = True,
        exec_: bool = True, forwarding: bool = False, x11: bool = False,
    ) -> None:  # fmt: skip
        self.user = user
        self.authorized_keys = [os.fspath(path) for path in authorized_keys]
        self.password = password
        self.root = root
        self.sftp = sftp
        self.shell = shell
        self.exec = exec_
        self.forwarding = forwarding
        self.x11 = x11
        self.command = OSCommand()

    def interface(self, transport: Any) -> ServeInterface:
        """The ServerInterface for one connection."""
        return ServeInterface(self, transport)

    def count_keys(self) -> int:
        """How many usable keys the authorized_keys files hold now."""
        return sum(len(AuthorizedKeys.load(path)) for path in self.authorized_keys)

    def describe_auth(self) -> str:
        """One line for the start-up banner."""
        files = ", ".join(self.authorized_keys)
        text = f"publickey ({self.count_keys()} key(s) in {files})"
        return text + (", password" if self.password else "")

    def describe_services(self) -> str:
        """One line for the start-up banner."""
        parts = [name for name, on in (("shell", self.shell), ("exec", self.exec)) if on]
        if self.sftp:
            parts.append(f"sftp+scp rooted at {self.root}")
        if self.forwarding:
            parts.append("port forwarding")
        if self.x11:
            parts.append("X11 forwarding")
        return ", ".join(parts) or "none"

    # -- session handlers -------------------------------------------------------------
    @property
    def exec_handler(self) -> Any:
        """Handles exec (commands, and scp when SFTP is on)."""
        return self._exec if self.exec or self.sftp else None

    @property
    def shell_handler(self) -> Any:
        """Handles shell requests (a login shell on a pty)."""
        return self._shell if self.shell else None

    @property
    def subsystems(self) -> dict[str, Any]:
        """``{"sftp": (SFTPServer, LocalSFTPServer, root)}`` when SFTP is on."""
        if not self.sftp:
            return {}
        from geossh.sftp import LocalSFTPServer, SFTPServer

        return {"sftp": (SFTPServer, LocalSFTPServer, self.root)}

    def _forced(self, session: Session) -> bool:
        """Apply a ``command=`` restriction: run it instead, as sshd does."""
        forced = getattr(session.server, "forced_command", None)
        if forced is None:
            return False
        if session.command is not None:
            session.env["SSH_ORIGINAL_COMMAND"] = session.command_text
        session.command = forced.encode()
        session.kind = "exec"
        return True

    def _exec(self, session: Session) -> int | None:
        if self._forced(session):
            return self.command(session)
        if self.sftp:
            from geossh.sftp.scp import ScpHandler

            if ScpHandler.is_scp_command(session.command or b""):
                return ScpHandler(self.root).run(session.channel, session.command or b"")
        if not self.exec:
            session.write_stderr("geossh: remote commands are disabled on this server\n")
            return 1
        return self.command(session)

    def _shell(self, session: Session) -> int | None:
        self._forced(session)
        return self.command(session)


def exposed_paths(root: str, paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Which of ``paths`` (host keys, ~/.ssh, ...) a client could reach under ``root``.

    Compared after resolving symlinks; a path counts when it lies inside
    ``root`` or ``root`` inside it (serving ``~/.ssh`` itself exposes its files).
    """
    top = os.path.realpath(root)
    found = []
    for path in paths:
        real = os.path.realpath(path)
        if os.path.commonpath([top, real]) in (top, real):
            found.append(real)
    return found


def forwarding_policy(enabled: bool, x11: bool = False) -> ForwardingPolicy:
    """sshd's AllowTcpForwarding=yes (listeners on loopback only), or nothing.

    With ``x11``, sshd's X11Forwarding=yes (X11UseLocalhost=yes): a ready
    display per session that asks.
    """
    tcp: dict[str, Any] = {"local": ("*:*",), "remote": ("*:*",)} if enabled else {}
    return ForwardingPolicy(**tcp, allow_x11=x11, x11_display=x11)


class ServeInterface(ForwardingServer):
    """Authentication and policy for one ``geossh serve`` connection."""

    def __init__(self, app: ServeApp, transport: Any) -> None:
        super().__init__(forwarding_policy(app.forwarding, app.x11))
        self.app = app
        self.peer = str(transport.getpeername()[0])
        self.entry: AuthorizedKey | None = None

    @property
    def forced_command(self) -> str | None:
        """The ``command=`` of the key that logged in, if any."""
        return self.entry.command if self.entry is not None else None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password" if self.app.password else "publickey"

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        expected = self.app.password
        if expected is None or username != self.app.user:
            return AUTH_FAILED
        given = password.encode() if isinstance(password, str) else bytes(password)
        if not hmac.compare_digest(given, expected.encode()):
            return AUTH_FAILED
        self.entry = None  # a key only queried earlier (PK_OK) does not set the session's rules
        return AUTH_SUCCESSFUL

    def check_auth_publickey(self, username: str, key: Any) -> int:
        if username != self.app.user:
            return AUTH_FAILED
        blob = getattr(key, "public_blob", None)
        try:
            certificate = parse_certificate(blob.key_blob) if blob is not None else None
        except KeyParseError:
            return AUTH_FAILED  # the core parsed it already; never fall back to plain lines
        entry: AuthorizedKey | None = None
        reason: str | None = "no cert-authority line"
        for path in self.app.authorized_keys:
            keys = AuthorizedKeys.load(path)
            if certificate is None:
                entry = keys.find(key, source_address=self.peer)
            else:  # as sshd: only cert-authority lines, restricted by the extensions
                entry, reason = keys.authorize_certificate(
                    certificate, username=username, source_address=self.peer
                )
            if entry is not None:
                self.entry = entry
                if isinstance(key, SKKey):  # no-touch-required / verify-required
                    key.touch_required = entry.touch_required
                    key.verify_required = entry.verify_required
                return AUTH_SUCCESSFUL
        if certificate is not None:
            log.info("Certificate %r refused: %s", certificate.key_id, reason)
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return OPEN_SUCCEEDED if kind == "session" else super().check_channel_request(kind, chanid)

    def check_channel_pty_request(self, channel: Any, *args: Any) -> bool:
        return self.entry is None or self.entry.permit_pty

    def check_channel_subsystem_request(self, channel: Any, name: str) -> bool:
        if self.forced_command is not None:
            return False  # a forced command replaces subsystems too; refuse rather than widen
        return super().check_channel_subsystem_request(channel, name)

    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        if self.entry is not None and not self.entry.allows_open(*destination):
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED  # no-port-forwarding / permitopen
        return super().check_channel_direct_tcpip_request(chanid, origin, destination)

    def check_channel_direct_streamlocal_request(self, chanid: int, path: str) -> int:
        if self.entry is not None and not self.entry.permit_port_forwarding:
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        return super().check_channel_direct_streamlocal_request(chanid, path)

    def check_port_forward_request(self, address: str, port: int) -> int | bool:
        if self.entry is not None and not self.entry.allows_listen(address, port):
            return False  # no-port-forwarding / permitlisten
        return super().check_port_forward_request(address, port)

    def check_streamlocal_forward_request(self, path: str) -> bool:
        if self.entry is not None and not self.entry.permit_port_forwarding:
            return False
        return super().check_streamlocal_forward_request(path)

    def check_channel_x11_request(self, channel: Any, *args: Any) -> bool:
        if self.entry is not None and not self.entry.permit_x11_forwarding:
            return False  # no-X11-forwarding / a certificate without permit-X11-forwarding
        return super().check_channel_x11_request(channel, *args)

    def check_channel_forward_agent_request(self, channel: Any) -> bool:
        if self.entry is not None and not self.entry.permit_agent_forwarding:
            return False  # no-agent-forwarding / a certificate without permit-agent-forwarding
        return super().check_channel_forward_agent_request(channel)
