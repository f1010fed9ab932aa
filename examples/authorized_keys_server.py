#!/usr/bin/env python3
"""An SSH server that lets in the keys (and certificate authorities) of an authorized_keys file.

Run it, then log in with OpenSSH::

    python examples/authorized_keys_server.py --user "$USER" \\
        --authorized-keys ~/.ssh/authorized_keys --port 2222
    ssh -p 2222 -o StrictHostKeyChecking=no localhost hello world

It shows paramiko-style server code (``import geossh as paramiko`` works the
same) driven by ``geossh.authorized_keys``:

* plain keys are looked up with ``AuthorizedKeys.find``, which honours the
  ``from=`` and ``expiry-time=`` options; the file is re-read at every
  attempt, as sshd does, so edits apply to the next login;
* OpenSSH user certificates are accepted through ``cert-authority`` lines
  (``AuthorizedKeys.authorize_certificate``: principals, validity window,
  critical options), as sshd does without TrustedUserCAKeys; the entry it
  returns is already narrowed by the certificate's ``permit-*`` extensions
  and ``force-command`` (``-O no-pty`` certificates get no pty);
* ``command=`` forces the command (the client's one is reported as
  SSH_ORIGINAL_COMMAND would be), ``no-pty``/``restrict`` refuse a pty;
* an optional password (``GEOSSH_EXAMPLE_PASSWORD``) is compared in constant
  time with ``hmac.compare_digest``, and so is the user name.

Every session just reports what it was asked to run; put your own
application in ``run_session``.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import sys
from typing import Any

import gevent
from gevent.server import StreamServer

import geossh as paramiko
from geossh.authorized_keys import AuthorizedKey, AuthorizedKeys
from geossh.proto.keys import KeyParseError, parse_certificate

log = logging.getLogger("authorized_keys_server")


def same(a: str, b: str) -> bool:
    """Constant-time text comparison."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class AuthorizedKeysServer(paramiko.ServerInterface):
    """One connection's decisions, taken from an authorized_keys file."""

    def __init__(self, config: argparse.Namespace, peer_address: str) -> None:
        self.config = config
        self.peer_address = peer_address
        self.entry: AuthorizedKey | None = None  # the line that let the user in
        self.pty_allowed = True

    # -- authentication -------------------------------------------------------
    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password" if self.config.password else "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if not same(username, self.config.user):
            return paramiko.AUTH_FAILED
        keys = AuthorizedKeys.load(self.config.authorized_keys)
        if key.public_blob is not None:  # an OpenSSH certificate: cert-authority lines decide
            try:
                certificate = parse_certificate(key.public_blob.key_blob)
            except KeyParseError:
                return paramiko.AUTH_FAILED
            entry, reason = keys.authorize_certificate(
                certificate, username=username, source_address=self.peer_address
            )
            if entry is None:
                log.info("certificate refused: %s", reason)
        else:
            entry = keys.find(key, source_address=self.peer_address)
        if entry is None:
            return paramiko.AUTH_FAILED
        # Called for the client's query and again once the signature is verified;
        # only a successful login acts on ``entry``.
        self.entry = entry
        self.pty_allowed = entry.permit_pty
        return paramiko.AUTH_SUCCESSFUL

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        expected = self.config.password
        if not expected or not isinstance(password, str):
            return paramiko.AUTH_FAILED
        user_ok = same(username, self.config.user)
        if same(password, expected) and user_ok:
            self.entry, self.pty_allowed = None, True
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    # -- sessions ----------------------------------------------------------------
    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, channel: Any, *args: Any) -> bool:
        return self.pty_allowed

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        gevent.spawn(self.run_session, channel, command.decode("utf-8", "replace"))
        return True

    def check_channel_shell_request(self, channel: Any) -> bool:
        gevent.spawn(self.run_session, channel, None)
        return True

    def run_session(self, channel: Any, command: str | None) -> None:
        """The application: here it only describes the session."""
        forced = self.entry.command if self.entry is not None else None
        lines = [f"hello {self.config.user}"]
        if self.entry is not None:
            lines.append(f"key: {self.entry.comment or '(no comment)'}")
        if forced is not None:
            lines.append(f"forced command: {forced}")
            lines.append(f"original command: {command or ''}")
        else:
            lines.append(f"command: {command or '(shell)'}")
        channel.sendall(("\n".join(lines) + "\n").encode())
        channel.send_exit_status(0)
        channel.close()


def serve_connection(config: argparse.Namespace, host_key: paramiko.PKey, sock: Any, addr: Any):
    """Run one SSH connection until it ends."""
    transport = paramiko.Transport(sock)
    transport.add_server_key(host_key)
    transport.auth_timeout = 60  # login grace time
    transport.max_auth_tries = 6
    server = AuthorizedKeysServer(config, addr[0])
    try:
        transport.start_server(server=server)
    except paramiko.SSHException as exc:
        log.info("%s: key exchange failed: %s", addr[0], exc)
        return
    transport.join()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--user", default=os.environ.get("USER", "user"))
    parser.add_argument("--authorized-keys", default=os.path.expanduser("~/.ssh/authorized_keys"))
    parser.add_argument("--host-key", help="OpenSSH private key file (default: a new Ed25519)")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2222, help="0 picks a free port")
    config = parser.parse_args(argv)
    config.password = os.environ.get("GEOSSH_EXAMPLE_PASSWORD")
    return config


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = parse_args(argv)
    if config.host_key:
        host_key = paramiko.PKey.from_path(config.host_key)
    else:
        host_key = paramiko.Ed25519Key.generate()

    def handle(sock: Any, addr: Any) -> None:
        serve_connection(config, host_key, sock, addr)

    listener = StreamServer((config.address, config.port), handle)
    listener.start()
    print(f"listening on {config.address}:{listener.server_port}", flush=True)
    try:
        listener.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop(timeout=5)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
