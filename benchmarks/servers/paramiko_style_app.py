"""One paramiko application, written the way paramiko's docs and demos write it.

Only the import block below differs between the two modes:
``--impl paramiko`` runs it on paramiko, ``--impl geossh`` patches the
standard library with gevent and imports geossh under paramiko's name.
Everything after it is ordinary paramiko code: a thread per connection,
``Transport(sock)``, ``start_server(server=...)`` without an event, a
``while t.is_active(): chan = t.accept(1)`` loop, a thread per channel and
an SFTP subsystem over a local-filesystem ``SFTPServerInterface``.
"""

import sys

# --- the mode switch: the only lines that differ between the two runs ---------
if "--impl" in sys.argv and sys.argv[sys.argv.index("--impl") + 1] == "geossh":
    from gevent import monkey

    monkey.patch_all()
    import geossh as paramiko
else:
    import paramiko
# ------------------------------------------------------------------------------

import argparse
import logging
import os
import socket
import threading
from typing import Any

SFTP_OK = 0
ZEROS = bytes(256 * 1024)


class Server(paramiko.ServerInterface):
    """Password or Ed25519 public-key login; session channels running exec."""

    def __init__(self, password: str, authorized: str) -> None:
        self.password = password
        self.authorized = authorized
        self.commands: dict[int, bytes | None] = {}
        self.requested: dict[int, threading.Event] = {}
        self.lock = threading.Lock()

    def _event(self, chanid: int) -> threading.Event:
        with self.lock:
            return self.requested.setdefault(chanid, threading.Event())

    def get_allowed_auths(self, username: str) -> str:
        return "password,publickey"

    def check_auth_password(self, username: str, password: str) -> int:
        if password == self.password:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: Any) -> int:
        if key.get_name() == "ssh-ed25519" and key.get_base64() == self.authorized:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            self._event(chanid)
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        self.commands[channel.get_id()] = command
        self._event(channel.get_id()).set()
        return True

    def check_channel_subsystem_request(self, channel: Any, name: str) -> bool:
        ok = bool(super().check_channel_subsystem_request(channel, name))
        self.commands[channel.get_id()] = None  # served by the subsystem handler
        self._event(channel.get_id()).set()
        return ok

    def forget(self, chanid: int) -> bytes | None:
        """The channel's exec command (None for a subsystem), dropping its state."""
        with self.lock:
            self.requested.pop(chanid, None)
        return self.commands.pop(chanid, None)


def run_exec(chan: Any, command: bytes) -> None:
    """Answer ``echo hi``, ``cat > /dev/null``, ``head -c N /dev/zero`` or ``sleep N``."""
    words = command.decode(errors="replace").split()
    status = 0
    try:
        if words[:1] == ["echo"]:
            chan.sendall((" ".join(words[1:]) + "\n").encode())
        elif words == ["cat", ">", "/dev/null"]:
            while chan.recv(1 << 20):
                pass
        elif words[:2] == ["head", "-c"] and len(words) == 4 and words[3] == "/dev/zero":
            left = int(words[2])
            while left > 0:
                piece = min(left, len(ZEROS))
                chan.sendall(ZEROS[:piece])
                left -= piece
        elif words[:1] == ["sleep"]:
            # An idle session: hold the channel until the client goes away.
            while chan.recv(1024):
                pass
        else:
            chan.sendall_stderr(b"unknown command\n")
            status = 127
        chan.send_exit_status(status)
    except (OSError, EOFError, ValueError, paramiko.SSHException):
        pass
    finally:
        chan.close()


def serve_channel(chan: Any, server: Server) -> None:
    """A channel's thread: wait for its request (as the demo waits), then run it."""
    if not server._event(chan.get_id()).wait(10):
        server.forget(chan.get_id())
        chan.close()
        return
    command = server.forget(chan.get_id())
    if command is not None:
        run_exec(chan, command)


class StubSFTPHandle(paramiko.SFTPHandle):
    """An open file: paramiko's default read/write over ``readfile``/``writefile``."""

    def stat(self) -> Any:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def chattr(self, attr: Any) -> int:
        return SFTP_OK


class StubSFTPServer(paramiko.SFTPServerInterface):
    """The local filesystem below ``ROOT``, as paramiko's test stub serves it."""

    ROOT = os.getcwd()

    def _path(self, path: str) -> str:
        return self.ROOT + self.canonicalize(path)

    def _attrs(self, path: str, name: str | None = None, follow: bool = True) -> Any:
        st = os.stat(path) if follow else os.lstat(path)
        attr = paramiko.SFTPAttributes.from_stat(st)
        if name is not None:
            attr.filename = name
        return attr

    def list_folder(self, path: str) -> Any:
        real = self._path(path)
        try:
            return [self._attrs(os.path.join(real, n), n) for n in os.listdir(real)]
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def stat(self, path: str) -> Any:
        try:
            return self._attrs(self._path(path))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def lstat(self, path: str) -> Any:
        try:
            return self._attrs(self._path(path), follow=False)
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def open(self, path: str, flags: int, attr: Any) -> Any:
        real = self._path(path)
        try:
            fd = os.open(real, flags | getattr(os, "O_BINARY", 0), 0o644)
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        if flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            mode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            mode = "rb"
        try:
            fobj = os.fdopen(fd, mode)
        except OSError as e:
            os.close(fd)
            return paramiko.SFTPServer.convert_errno(e.errno)
        handle = StubSFTPHandle(flags)
        handle.filename = real
        handle.readfile = fobj
        handle.writefile = fobj
        return handle

    def _do(self, op: Any, *paths: str) -> int:
        try:
            op(*(self._path(p) for p in paths))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        return SFTP_OK

    def remove(self, path: str) -> int:
        return self._do(os.remove, path)

    def rename(self, oldpath: str, newpath: str) -> int:
        return self._do(os.rename, oldpath, newpath)

    def mkdir(self, path: str, attr: Any) -> int:
        return self._do(os.mkdir, path)

    def rmdir(self, path: str) -> int:
        return self._do(os.rmdir, path)

    def chattr(self, path: str, attr: Any) -> int:
        return SFTP_OK


def handle_connection(sock: socket.socket, host_key: Any, password: str, authorized: str) -> None:
    """A connection's thread, as in paramiko's demo server."""
    t = paramiko.Transport(sock)
    try:
        t.add_server_key(host_key)
        t.set_subsystem_handler("sftp", paramiko.SFTPServer, StubSFTPServer)
        server = Server(password, authorized)
        try:
            t.start_server(server=server)
        except paramiko.SSHException:
            return
        while t.is_active():
            chan = t.accept(1)
            if chan is None:
                continue
            threading.Thread(target=serve_channel, args=(chan, server), daemon=True).start()
    finally:
        t.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["paramiko", "geossh"], default="paramiko")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host-key", required=True, help="OpenSSH private key file")
    parser.add_argument("--authorized-key", required=True, help="the client's Ed25519 .pub")
    parser.add_argument("--sftp-root", required=True, help="directory served over SFTP")
    parser.add_argument("--password", default="bench")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    if args.impl == "geossh":  # benchmark tooling, not part of the application
        from benchmarks.servers.common import profile_from_env

        profile_from_env(".app")

    host_key = paramiko.Ed25519Key.from_private_key_file(args.host_key)
    with open(args.authorized_key) as fh:
        authorized = fh.read().split()[1]
    StubSFTPServer.ROOT = os.path.realpath(args.sftp_root)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(4096)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    while True:
        client, _ = sock.accept()
        threading.Thread(
            target=handle_connection,
            args=(client, host_key, args.password, authorized),
            daemon=True,
        ).start()


if __name__ == "__main__":
    main()
