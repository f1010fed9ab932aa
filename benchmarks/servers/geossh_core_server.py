"""geossh's protocol core behind the leanest gevent loop: the floor of any driver.

No facade, pump, ``ServerInterface``, deadlines or greenlet per command: one
greenlet per connection reads, feeds ``geossh.proto.Connection``, answers
its events inline and writes what it produced. It serves only what
``conn_profile`` runs (public-key login with the one authorized key, then
``exec echo hi``), so its server CPU per connection is what the core, the
crypto, gevent and the kernel cost by themselves; the gap to
``geossh_server.py`` is all a better driver, pump and facade could save.
Not a server to copy: it enforces no timeouts and ignores flow control.
"""

from __future__ import annotations

import base64
import socket
import time
from typing import Any

import gevent.server

from benchmarks.servers.common import ECHO, announce, parse_command, profile_from_env, server_args
from geossh.proto import events, wire
from geossh.proto.auth import AUTH_FAILED, AUTH_SUCCESSFUL
from geossh.proto.config import ServerConfig
from geossh.proto.connection import Connection
from geossh.proto.keys import load_private_key

EXIT_OK = wire.u32(0)


def answer(conn: Connection, event: events.Event, authorized: bytes) -> None:
    """Answer one core event the way the benchmark server's callbacks would."""
    if isinstance(event, events.AuthRequested):
        ok = event.method == "publickey" and event.details.get("key_blob") == authorized
        conn.auth.answer(AUTH_SUCCESSFUL if ok else AUTH_FAILED, "publickey")
    elif isinstance(event, events.ChannelOpenRequested):
        if event.kind == "session":
            conn.channels.accept_channel(event.channel_id)
        else:
            conn.channels.reject_channel(event.channel_id, 1, "only sessions")
    elif isinstance(event, events.ChannelRequestReceived):
        command = parse_command(wire.Reader(event.data).string()) if event.kind == "exec" else None
        if command is None or command.kind != ECHO:
            if event.want_reply:
                conn.channels.reply_channel_request(event.channel_id, False)
            return
        channels = conn.channels
        if event.want_reply:
            channels.reply_channel_request(event.channel_id, True)
        channels.send_data(event.channel_id, b"hi\n")
        channels.send_request(event.channel_id, "exit-status", False, EXIT_OK)
        channels.send_eof(event.channel_id)
        channels.close(event.channel_id)


def serve(sock: Any, config: ServerConfig, authorized: bytes) -> None:
    """One connection: read, feed, answer every event, write, until either side ends."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(config, time.monotonic())
    try:
        sock.sendall(conn.data_to_send())
        while not conn.closed:
            data = sock.recv(65536)
            if not data:
                return
            conn.receive_data(data, time.monotonic())
            event = conn.next_event()
            while event is not None:
                answer(conn, event, authorized)
                event = conn.next_event()
            output = conn.data_to_send()
            if output:
                sock.sendall(output)
    except Exception:  # a protocol error or a reset: this connection only
        return
    finally:
        sock.close()


def main() -> None:
    args = server_args(__doc__.splitlines()[0])
    profile_from_env()
    with open(args.host_key, "rb") as fh:
        host_key = load_private_key(fh.read())
    with open(args.authorized_key) as fh:
        authorized = base64.b64decode(fh.read().split()[1])
    config = ServerConfig(host_keys={host_key.key_type: host_key})
    server = gevent.server.StreamServer(
        ("127.0.0.1", args.port), lambda sock, _addr: serve(sock, config, authorized), backlog=4096
    )
    server.start()
    announce(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
