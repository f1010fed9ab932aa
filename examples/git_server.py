"""A git hosting server in the style of gitolite: exec only, permissions per key.

    python examples/git_server.py --repos ./repos --access access.json --port 2222
    git clone ssh://git@127.0.0.1:2222/project.git
    ssh -p 2222 git@127.0.0.1 info

Everybody logs in as any user name (conventionally ``git``); the public
key says who they are. ``access.json``::

    {"users": {"alice": ["ssh-ed25519 AAAA... alice@laptop"],
               "bob":   ["ssh-ed25519 AAAA... bob@desk"]},
     "repos": {"project.git": {"alice": "RW", "bob": "R"},
               "*":           {"alice": "RW"}}}

Reads run ``git-upload-pack``/``git-upload-archive``, writes
``git-receive-pack`` (the repository is created on the first push by a
writer); ``info`` lists what the key may do. No shells, no pty, no other
commands. The access file is read for every connection.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from typing import Any

import geossh
from geossh.oscommand import OSCommand
from geossh.runner import Server
from geossh.session import Session

READ_COMMANDS = {"git-upload-pack", "git-upload-archive"}
WRITE_COMMANDS = {"git-receive-pack"}
REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class Access:
    """Who (by key) may read or write which repository."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.keys: dict[bytes, str] = {}
        for person, lines in data.get("users", {}).items():
            for line in lines:
                key_type, blob = line.split()[:2]
                key = geossh.PKey.from_type_string(key_type, _b64(blob))
                self.keys[key.asbytes()] = person
        self.repos: dict[str, dict[str, str]] = data.get("repos", {})

    @classmethod
    def load(cls, path: str) -> Access:
        with open(path) as f:
            return cls(json.load(f))

    def who(self, key: geossh.PKey) -> str | None:
        return self.keys.get(key.asbytes())

    def rights(self, person: str, repo: str) -> str:
        rules = self.repos.get(repo, self.repos.get("*", {}))
        return rules.get(person, "")


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


class GitInterface(geossh.ServerInterface):
    """Public-key login only; remembers whose key it was."""

    def __init__(self, access: Access) -> None:
        self.access = access
        self.person: str | None = None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: geossh.PKey) -> int:
        self.person = self.access.who(key)
        return geossh.AUTH_SUCCESSFUL if self.person else geossh.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return geossh.OPEN_SUCCEEDED
        return geossh.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class GitCommands:
    """The exec handler: check the command and the rights, then run git."""

    def __init__(self, repos: str) -> None:
        self.repos = os.path.abspath(repos)
        self.run = OSCommand(shell="/bin/sh", cwd=self.repos)

    def __call__(self, session: Session) -> int | None:
        iface: GitInterface = session.server
        person = iface.person or "?"
        try:
            argv = shlex.split(session.command_text)
        except ValueError:
            argv = []
        if argv == ["info"]:
            return self.info(session, iface.access, person)
        if len(argv) != 2 or argv[0] not in READ_COMMANDS | WRITE_COMMANDS:
            session.write_stderr("only git clone/fetch/push and 'info' are served here\n")
            return 1
        repo = argv[1].strip("/")
        if not repo.endswith(".git"):
            repo += ".git"
        if not REPO_NAME.match(repo) or ".." in repo:
            session.write_stderr(f"bad repository name {argv[1]!r}\n")
            return 1
        need = "W" if argv[0] in WRITE_COMMANDS else "R"
        if need not in iface.access.rights(person, repo):
            session.write_stderr(f"{person} may not {'write' if need == 'W' else 'read'} {repo}\n")
            return 1
        path = os.path.join(self.repos, repo)
        if not os.path.isdir(path):
            if need != "W":
                session.write_stderr(f"repository {repo} does not exist\n")
                return 1
            subprocess.run(["git", "init", "-q", "--bare", path], check=True)
        logging.getLogger("git").info("%s: %s %s", person, argv[0], repo)
        session.command = f"{argv[0]} {shlex.quote(path)}".encode()
        return self.run(session)

    def info(self, session: Session, access: Access, person: str) -> int:
        session.write(f"hello {person}, you have access to:\n")
        names = sorted(set(access.repos) | set(os.listdir(self.repos)))
        for name in names:
            rights = access.rights(person, name)
            if name != "*" and rights:
                session.write(f"  {rights:2} {name}\n")
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2222)
    parser.add_argument("--repos", required=True, help="directory of bare repositories")
    parser.add_argument("--access", required=True, help="JSON file: users' keys and rights")
    parser.add_argument("--host-key-dir", help="where host keys are kept (default: state dir)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    os.makedirs(args.repos, exist_ok=True)

    server = Server(
        (args.host, args.port),
        lambda: GitInterface(Access.load(args.access)),
        host_key_dir=args.host_key_dir,
        exec_handler=GitCommands(args.repos),
        accept_env=(),
    )
    server.handlers.allow_pty = False
    server.start()
    host, port = server.addresses[0][:2]
    print(f"listening on {host}:{port}, repositories in {os.path.abspath(args.repos)}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
