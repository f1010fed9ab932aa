"""An SFTP-only server: files under one directory, nothing else.

    python examples/sftp_server.py --root ./shared --port 2222 \\
        --authorized-keys ~/.ssh/authorized_keys [--password-env SFTP_PASSWORD]

    sftp -P 2222 anyone@127.0.0.1

Clients see ``--root`` as ``/`` and cannot leave it (``LocalSFTPServer``);
shells, commands and forwarding are refused. Any user name may log in with
a listed key (or the password). ``--readonly`` refuses every change.
``--port 0`` picks a free port; the "listening on" line shows it.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import sys

import geossh
from geossh.authorized_keys import AuthorizedKeys
from geossh.runner import Server
from geossh.sftp import LocalSFTPServer, SFTPServer


class SFTPOnly(geossh.ServerInterface):
    """Key or password authentication; only the ``sftp`` subsystem is offered."""

    def __init__(self, keys: AuthorizedKeys, password: str | None) -> None:
        self.keys = keys
        self.password = password

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password" if self.password else "publickey"

    def check_auth_publickey(self, username: str, key: geossh.PKey) -> int:
        found = self.keys.find(key) is not None
        return geossh.AUTH_SUCCESSFUL if found else geossh.AUTH_FAILED

    def check_auth_password(self, username: str, password: str | bytes) -> int:
        given = password.encode() if isinstance(password, str) else password
        ok = self.password is not None and hmac.compare_digest(given, self.password.encode())
        return geossh.AUTH_SUCCESSFUL if ok else geossh.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return geossh.OPEN_SUCCEEDED
        return geossh.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class ReadOnlySFTP(LocalSFTPServer):
    """``LocalSFTPServer`` with ``readonly=True``."""

    def __init__(self, server: object, root: str) -> None:
        super().__init__(server, root, readonly=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2222)
    parser.add_argument("--root", default=".", help="directory served as /")
    parser.add_argument("--authorized-keys", default=os.path.expanduser("~/.ssh/authorized_keys"))
    parser.add_argument("--password-env", help="environment variable holding a password")
    parser.add_argument("--host-key-dir", help="where host keys are kept (default: state dir)")
    parser.add_argument("--readonly", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")

    root = os.path.abspath(args.root)
    password = os.environ.get(args.password_env) if args.password_env else None

    def interface() -> SFTPOnly:
        return SFTPOnly(AuthorizedKeys.load(args.authorized_keys), password)

    backend = ReadOnlySFTP if args.readonly else LocalSFTPServer
    server = Server(
        (args.host, args.port),
        interface,
        host_key_dir=args.host_key_dir,
        subsystems={"sftp": (SFTPServer, backend, root)},
    )
    server.start()
    host, port = server.addresses[0][:2]
    print(f"listening on {host}:{port}, serving {root}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
