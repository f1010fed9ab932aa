"""geossh under test: one gevent StreamServer, one greenlet per connection.

Set-up is the documented one (``Transport(sock)``, ``add_server_key``,
``start_server(event=..., server=iface)``); exec commands run in their own
greenlet. With ``--runner`` it serves through ``geossh.runner.Server`` instead,
with ``--workers N`` processes (the multi-core metric).
"""

from __future__ import annotations

from typing import Any

import gevent
import gevent.event
import gevent.server

import geossh
from benchmarks.servers.common import (
    ECHO,
    SINK,
    ZEROS,
    Command,
    announce,
    parse_command,
    profile_from_env,
    server_args,
)


def _sftp_classes() -> tuple[Any, Any] | None:
    """(SFTPServer, LocalSFTPServer), or None while geossh's SFTP is not there."""
    try:
        from geossh.sftp.local import LocalSFTPServer
        from geossh.sftp.server import SFTPServer
    except ImportError:
        return None
    return getattr(geossh, "SFTPServer", SFTPServer), LocalSFTPServer


def run_command(channel: geossh.Channel, command: Command) -> None:
    """Emulate the workload command on ``channel``, then exit 0 and close."""
    if command.kind == ECHO:
        channel.sendall(b"hi\n")
    elif command.kind == SINK:
        while channel.recv(1 << 20):
            pass
    else:
        left = command.size
        view = memoryview(ZEROS)
        while left > 0:
            piece = min(left, len(ZEROS))
            channel.sendall(view[:piece])
            left -= piece
    channel.send_exit_status(0)
    channel.close()


class BenchServer(geossh.ServerInterface):
    """Public-key auth against one key; session channels with exec."""

    def __init__(self, authorized: str) -> None:
        self.authorized = authorized

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: geossh.PKey) -> int:
        ok = key.get_base64() == self.authorized
        return geossh.AUTH_SUCCESSFUL if ok else geossh.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return geossh.OPEN_SUCCEEDED if kind == "session" else 1

    def check_channel_exec_request(self, channel: geossh.Channel, command: bytes) -> bool:
        parsed = parse_command(command)
        if parsed is None:
            return False
        gevent.spawn(run_command, channel, parsed)
        return True


def main() -> None:
    args = server_args(__doc__.splitlines()[0])
    profile_from_env()
    host_key = geossh.PKey.from_path(args.host_key)
    with open(args.authorized_key) as fh:
        authorized = fh.read().split()[1]
    sftp = _sftp_classes()

    def handle(sock: Any, address: Any) -> None:
        transport = geossh.Transport(sock)
        transport.add_server_key(host_key)
        if sftp is not None:
            transport.set_subsystem_handler("sftp", sftp[0], sftp[1], args.sftp_root)
        transport.start_server(event=gevent.event.Event(), server=BenchServer(authorized))
        transport.join()

    if args.runner:
        _serve_runner(args, host_key, authorized, sftp)
        return
    server = gevent.server.StreamServer(("127.0.0.1", args.port), handle, backlog=4096)
    server.start()
    announce(server.server_port)
    server.serve_forever()


def _serve_runner(args: Any, host_key: Any, authorized: str, sftp: Any) -> None:
    """``geossh.runner.Server`` with ``--workers N`` processes (the multi-core mode)."""
    try:
        from geossh.runner import Server
    except ImportError:
        raise SystemExit("geossh.runner.Server is not available") from None
    subsystems = {"sftp": (sftp[0], sftp[1], args.sftp_root)} if sftp is not None else {}
    server = Server(
        ("127.0.0.1", args.port),
        lambda: BenchServer(authorized),
        host_keys=[host_key],
        subsystems=subsystems,
        workers=args.workers,
        max_startups=None,
        backlog=4096,
    )
    announce(server.port)  # binds before the workers fork, so they share the socket
    server.serve_forever()


if __name__ == "__main__":
    main()
