"""paramiko under test: the classic thread-per-connection server.

paramiko's documented pattern (demos/demo_server.py): an accept loop, one
``Transport`` per connection with a ``ServerInterface``; exec commands run
in a thread each, and SFTP uses ``paramiko.SFTPServer`` with a minimal
local-filesystem ``SFTPServerInterface`` like paramiko's own test stub.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import paramiko
from paramiko.sftp import SFTP_OK

from benchmarks.servers.common import (
    ECHO,
    SINK,
    ZEROS,
    Command,
    announce,
    parse_command,
    server_args,
)


def run_command(channel: paramiko.Channel, command: Command) -> None:
    """Emulate the workload command on ``channel``, then exit 0 and close."""
    try:
        if command.kind == ECHO:
            channel.sendall(b"hi\n")
        elif command.kind == SINK:
            while channel.recv(1 << 20):
                pass
        else:
            left = command.size
            while left > 0:
                piece = min(left, len(ZEROS))
                channel.sendall(ZEROS if piece == len(ZEROS) else ZEROS[:piece])
                left -= piece
        channel.send_exit_status(0)
    except (OSError, EOFError, paramiko.SSHException):
        pass
    finally:
        channel.close()


class BenchServer(paramiko.ServerInterface):
    """Public-key auth against one key; session channels with exec."""

    def __init__(self, authorized: str) -> None:
        self.authorized = authorized

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = key.get_base64() == self.authorized
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        parsed = parse_command(command)
        if parsed is None:
            return False
        threading.Thread(target=run_command, args=(channel, parsed), daemon=True).start()
        return True


class StubSFTPHandle(paramiko.SFTPHandle):
    """A file handle over a Python file object (paramiko's test stub)."""

    def stat(self) -> Any:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def chattr(self, attr: Any) -> int:
        return SFTP_OK


class StubSFTPServer(paramiko.SFTPServerInterface):
    """A local-filesystem SFTP server rooted at ``root`` (paramiko's test stub)."""

    def __init__(self, server: Any, root: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.root = root

    def _realpath(self, path: str) -> str:
        return self.root + self.canonicalize(path)

    def list_folder(self, path: str) -> Any:
        path = self._realpath(path)
        try:
            out = []
            for name in os.listdir(path):
                attr = paramiko.SFTPAttributes.from_stat(os.stat(os.path.join(path, name)))
                attr.filename = name
                out.append(attr)
            return out
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def stat(self, path: str) -> Any:
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(self._realpath(path)))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def lstat(self, path: str) -> Any:
        try:
            return paramiko.SFTPAttributes.from_stat(os.lstat(self._realpath(path)))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def open(self, path: str, flags: int, attr: Any) -> Any:
        path = self._realpath(path)
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        if flags & os.O_WRONLY:
            mode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            mode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            mode = "rb"
        handle = StubSFTPHandle(flags)
        handle.filename = path
        handle.readfile = handle.writefile = os.fdopen(fd, mode)
        return handle

    def remove(self, path: str) -> int:
        try:
            os.remove(self._realpath(path))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        try:
            os.rename(self._realpath(oldpath), self._realpath(newpath))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        return SFTP_OK

    def mkdir(self, path: str, attr: Any) -> int:
        try:
            os.mkdir(self._realpath(path))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        return SFTP_OK

    def rmdir(self, path: str) -> int:
        try:
            os.rmdir(self._realpath(path))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        return SFTP_OK

    def chattr(self, path: str, attr: Any) -> int:
        return SFTP_OK


def serve_connection(
    sock: socket.socket, host_key: paramiko.PKey, authorized: str, sftp_root: str
) -> None:
    """One connection's thread: Transport, server interface, then wait for the end."""
    transport = paramiko.Transport(sock)
    transport.add_server_key(host_key)
    transport.set_subsystem_handler("sftp", paramiko.SFTPServer, StubSFTPServer, sftp_root)
    try:
        transport.start_server(server=BenchServer(authorized))
    except (paramiko.SSHException, EOFError, OSError):
        transport.close()
        return
    transport.join()


def main() -> None:
    args = server_args(__doc__.splitlines()[0])
    host_key = paramiko.PKey.from_path(args.host_key)
    with open(args.authorized_key) as fh:
        authorized = fh.read().split()[1]
    root = os.path.realpath(args.sftp_root)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(4096)
    announce(listener.getsockname()[1])
    while True:
        sock, _ = listener.accept()
        threading.Thread(
            target=serve_connection, args=(sock, host_key, authorized, root), daemon=True
        ).start()


if __name__ == "__main__":
    main()
