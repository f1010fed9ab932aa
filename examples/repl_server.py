"""A chat room over SSH, written as plain blocking session handlers.

    python examples/repl_server.py --port 2222 --authorized-keys ~/.ssh/authorized_keys
    ssh -p 2222 alice@127.0.0.1          # join the room (a shell with a pty)
    ssh -p 2222 bob@127.0.0.1 who        # who is here (exec)
    ssh -p 2222 bob@127.0.0.1 say hi all # post one line (exec)

Each session is one greenlet running ``chat(session)``: read a line, act
on it, repeat. ``session.readline()`` edits the line on the pty (echo,
Backspace, ^C, ^D). Commands: ``/who``, ``/size`` (the terminal size,
updated on window-change), ``/quit``. The user name is the login name;
any name may log in with a listed key, or with ``--password-env``'s password.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import logging
import os
import sys

import gevent
from gevent.queue import Full, Queue

import geossh
from geossh.authorized_keys import AuthorizedKeys
from geossh.runner import Server
from geossh.session import Session


class Room:
    """Members and their outboxes; a slow reader loses messages, never blocks others."""

    def __init__(self) -> None:
        self.members: dict[Session, Queue[str]] = {}

    def names(self) -> list[str]:
        return sorted(str(member.username) for member in self.members)

    def say(self, text: str, sender: Session | None = None) -> None:
        for member, outbox in list(self.members.items()):
            if member is not sender:
                with contextlib.suppress(Full):
                    outbox.put_nowait(text)

    def join(self, session: Session) -> Queue[str]:
        outbox: Queue[str] = Queue(maxsize=100)
        self.say(f"* {session.username} joined")
        self.members[session] = outbox
        return outbox

    def leave(self, session: Session) -> None:
        self.members.pop(session, None)
        self.say(f"* {session.username} left")


ROOM = Room()


def _deliver(session: Session, outbox: Queue[str]) -> None:
    for text in outbox:
        session.write(f"\r{text}\n")


def chat(session: Session) -> int:
    """The shell handler: one member's loop."""
    name = session.username
    session.write(f"welcome to the room, {name}. /who, /size, /quit\n")
    outbox = ROOM.join(session)
    writer = gevent.spawn(_deliver, session, outbox)
    try:
        while True:
            line = session.readline("> ")
            if line is None or line.strip() == "/quit":
                session.write("bye\n")
                return 0
            line = line.strip()
            if line == "/who":
                session.write("here: " + ", ".join(ROOM.names()) + "\n")
            elif line == "/size":
                pty = session.pty
                size = f"{pty.width}x{pty.height}" if pty else "no terminal"
                session.write(f"terminal: {size}\n")
            elif line:
                ROOM.say(f"[{name}] {line}", sender=session)
    finally:
        writer.kill()
        ROOM.leave(session)


def command(session: Session) -> int:
    """The exec handler: ``who`` and ``say TEXT``."""
    verb, _, rest = session.command_text.partition(" ")
    if verb == "who":
        session.write("\n".join(ROOM.names()) + "\n")
        return 0
    if verb == "say" and rest:
        ROOM.say(f"[{session.username}] {rest}")
        return 0
    session.write_stderr("commands: who, say TEXT (or log in for the room)\n")
    return 2


class ChatLogin(geossh.ServerInterface):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2222)
    parser.add_argument("--authorized-keys", default=os.path.expanduser("~/.ssh/authorized_keys"))
    parser.add_argument("--password-env", help="environment variable holding a password")
    parser.add_argument("--host-key-dir", help="where host keys are kept (default: state dir)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    password = os.environ.get(args.password_env) if args.password_env else None

    server = Server(
        (args.host, args.port),
        lambda: ChatLogin(AuthorizedKeys.load(args.authorized_keys), password),
        host_key_dir=args.host_key_dir,
        shell_handler=chat,
        exec_handler=command,
    )
    server.start()
    host, port = server.addresses[0][:2]
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
