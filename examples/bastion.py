#!/usr/bin/env python3
"""A jump host ("bastion"): public-key logins, no shells, forwarding only where allowed.

Run it::

    python examples/bastion.py --host-key /etc/bastion/ssh_host_ed25519_key \\
        --authorized-keys /etc/bastion/authorized_keys \\
        --allow '10.0.*:22' --allow 'db.internal:5432' --port 2222

then reach machines behind it with OpenSSH::

    ssh -J alice@bastion:2222 alice@10.0.3.7             # ProxyJump (ssh -W)
    ssh -N -L 5432:db.internal:5432 -p 2222 alice@bastion  # a local forward

How it is built: ``BastionServer`` is a ``geossh.forward.ForwardingServer``,
so ``direct-tcpip`` channels (``-J``, ``-W``, ``-L``, ``-D``) to destinations
that match an ``--allow`` pattern are connected and pumped by geossh
itself; everything else is refused. A key's ``permitopen="host:port"``
options in the authorized_keys file narrow the allow-list for that key, and
``restrict`` / ``no-port-forwarding`` forbid forwarding for it, as with
sshd. Session channels (shells, commands), remote forwarding (``-R``), agent
and X11 forwarding are refused. ``geossh.runner.Server`` supplies the accept
loop, MaxStartups, the login grace time and a graceful stop on SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import geossh
from geossh.authorized_keys import AuthorizedKey, AuthorizedKeys
from geossh.forward import ForwardingPolicy, ForwardingServer
from geossh.runner import Server

log = logging.getLogger("bastion")


class BastionServer(ForwardingServer):
    """One connection: key login, then direct-tcpip within the policy and the key's options."""

    def __init__(
        self, policy: ForwardingPolicy, authorized_keys: str, transport: geossh.Transport
    ) -> None:
        super().__init__(policy)
        self.authorized_keys = authorized_keys
        self.peer = str(transport.getpeername()[0])
        self.entry: AuthorizedKey | None = None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: geossh.PKey) -> int:
        # Re-read at every attempt, as sshd does, so edits apply to the next login.
        keys = AuthorizedKeys.load(self.authorized_keys)
        entry = keys.find(key, source_address=self.peer)
        if entry is None:
            return geossh.AUTH_FAILED
        self.entry = entry
        return geossh.AUTH_SUCCESSFUL

    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        host, port = destination
        if self.entry is not None and not self.entry.allows_open(host, port):
            log.info("%s: %s:%d refused by the key's options", self.peer, host, port)
            return geossh.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        result = super().check_channel_direct_tcpip_request(chanid, origin, destination)
        outcome = "allowed" if result == geossh.OPEN_SUCCEEDED else "refused"
        log.info("%s: forward to %s:%d %s", self.peer, host, port, outcome)
        return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=2222, help="port (0: any free port)")
    parser.add_argument("--host-key", action="append", required=True, help="host key file")
    parser.add_argument("--authorized-keys", required=True, help="OpenSSH authorized_keys file")
    parser.add_argument(
        "--allow", action="append", default=[], metavar="HOST:PORT",
        help="allowed destination pattern (fnmatch host, port '*', N or N-M); repeatable",
    )  # fmt: skip
    parser.add_argument("--connect-timeout", type=float, default=10.0)
    parser.add_argument("--max-forwards", type=int, default=64, help="per connection")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    policy = ForwardingPolicy(
        local=args.allow, connect_timeout=args.connect_timeout, max_channels=args.max_forwards
    )
    host_keys = [geossh.PKey.from_path(path) for path in args.host_key]
    server = Server(
        (args.listen, args.port),
        lambda transport: BastionServer(policy, args.authorized_keys, transport),
        host_keys=host_keys,
        max_channels=args.max_forwards + 1,
    )
    host, port = server.bind()[0][:2]
    print(f"bastion listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
