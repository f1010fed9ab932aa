"""Test kit for forwarding: digest servers, a SOCKS5 client, ssh processes, leak checks.

``DigestServer`` listens on loopback TCP or a Unix path. A connection sends
one command line: ``sink`` (read to EOF, answer the SHA-256 and byte count),
``source N`` (send N pattern bytes, then close), ``park`` (read and discard
until EOF, then count it) or ``hold`` (never read, never close: a
destination that does not keep up). Everything waits by
polling with a bounded loop, never by sleeping for a fixed time.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gevent
import gevent.server
import gevent.socket
import gevent.subprocess

from geossh.services.forward import ForwardingPolicy, ForwardingServer, ForwardSession
from tests.support import ServerHarness, TestServer, pattern_block

MiB = 1 << 20
BLOCK = pattern_block()


def expected_digest(total: int) -> str:
    """SHA-256 of ``total`` bytes of the repeated pattern block."""
    digest = hashlib.sha256()
    for offset in range(0, total, len(BLOCK)):
        digest.update(BLOCK[: min(len(BLOCK), total - offset)])
    return digest.hexdigest()


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``predicate`` (yielding to the hub) until truthy; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        gevent.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def connect_when_ready(target: tuple[str, int] | str, timeout: float = 20.0) -> Any:
    """Connect to ``target`` once something listens there (bounded polling)."""
    family = socket.AF_UNIX if isinstance(target, str) else socket.AF_INET

    def attempt() -> Any:
        sock = gevent.socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.connect(target)
        except OSError:
            sock.close()
            return None
        return sock

    return wait_until(attempt, timeout, f"a listener on {target}")


def recv_all(sock: Any, limit: int = 1 << 16) -> bytes:
    """Read until EOF (bounded by ``limit``)."""
    parts, size = [], 0
    while size < limit:
        data = sock.recv(65536)
        if not data:
            break
        parts.append(data)
        size += len(data)
    return b"".join(parts)


def send_pattern(sock: Any, total: int) -> None:
    """Send ``total`` pattern bytes."""
    view = memoryview(BLOCK)
    sent = 0
    while sent < total:
        piece = view[: min(len(BLOCK), total - sent)]
        sock.sendall(piece)
        sent += len(piece)


def upload(sock: Any, total: int) -> tuple[str, int]:
    """``sink`` through ``sock``: send ``total`` bytes, half-close, return (digest, count)."""
    sock.sendall(b"sink\n")
    send_pattern(sock, total)
    sock.shutdown(socket.SHUT_WR)
    reply = recv_all(sock).decode().split()
    sock.close()
    assert len(reply) == 2, reply
    return reply[0], int(reply[1])


def download(sock: Any, total: int) -> tuple[str, int]:
    """``source`` through ``sock``: digest and size of what arrives before EOF."""
    sock.sendall(f"source {total}\n".encode())
    digest, count = hashlib.sha256(), 0
    while data := sock.recv(1 << 18):
        digest.update(data)
        count += len(data)
    sock.close()
    return digest.hexdigest(), count


class DigestServer:
    """A sink/source/hold server on 127.0.0.1:0 or a Unix socket path."""

    def __init__(self, path: str | None = None) -> None:
        if path is None:
            listener = gevent.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
        else:
            listener = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
        listener.listen(512)
        self.path = path
        self.address: tuple[str, int] | str = path or listener.getsockname()
        self.port = 0 if path else int(listener.getsockname()[1])
        self.held: list[Any] = []
        self.connections = 0
        self.eofs = 0  # ``park`` connections that saw EOF
        self._server = gevent.server.StreamServer(listener, self._handle)
        self._server.start()

    def _handle(self, sock: Any, address: Any) -> None:
        self.connections += 1
        line = b""
        while not line.endswith(b"\n") and len(line) < 64:
            data = sock.recv(1)
            if not data:
                return
            line += data
        command = line.split()
        if command == [b"sink"]:
            digest, count = hashlib.sha256(), 0
            while data := sock.recv(1 << 18):
                digest.update(data)
                count += len(data)
            sock.sendall(f"{digest.hexdigest()} {count}\n".encode())
        elif command[:1] == [b"source"]:
            send_pattern(sock, int(command[1]))
        elif command == [b"park"]:
            while sock.recv(65536):
                pass
            self.eofs += 1
        elif command == [b"hold"]:
            self.held.append(sock)
            gevent.sleep(3600)  # hold the connection open, reading nothing

    def stop(self) -> None:
        """Stop listening and drop held connections."""
        for sock in self.held:
            sock.close()
        self._server.stop(timeout=2)


class SSHProcess:
    """A long-lived ``ssh`` whose stderr is collected line by line."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.lines: list[str] = []
        self.proc = gevent.subprocess.Popen(
            self.argv,
            stdin=gevent.subprocess.DEVNULL,
            stdout=gevent.subprocess.PIPE,
            stderr=gevent.subprocess.PIPE,
            env=env,
        )
        self._reader = gevent.spawn(self._read_stderr)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def wait_for_line(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first stderr line matching ``pattern`` (fails if ssh exits first)."""

        def find() -> re.Match[str] | None:
            for line in self.lines:
                match = re.search(pattern, line)
                if match:
                    return match
            if self.proc.poll() is not None and self._reader.dead:
                raise AssertionError(f"ssh exited: {self.stderr()[-2000:]}")
            return None

        return wait_until(find, timeout, f"ssh output {pattern!r}")  # type: ignore[no-any-return]

    def stderr(self) -> str:
        """Everything ssh wrote to stderr so far."""
        return "\n".join(self.lines)

    def stop(self) -> None:
        """Kill ssh and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def ssh_process(argv: Sequence[str], env: dict[str, str] | None = None) -> Iterator[SSHProcess]:
    """Run ``ssh`` for the duration of the block; always killed afterwards."""
    proc = SSHProcess(argv, env)
    try:
        yield proc
    finally:
        proc.stop()


def warm_up() -> None:
    """Create the hub's lazily made resources (resolver, child watcher) before a baseline."""
    gevent.socket.getaddrinfo("127.0.0.1", 0)
    gevent.subprocess.run(["true"], check=True)


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def live_greenlets() -> int:
    """gevent Greenlets not finished (thread pools' own greenlets are not counted)."""
    return sum(1 for obj in gc.get_objects() if isinstance(obj, gevent.Greenlet) and not obj.dead)


def socks5_connect(proxy_port: int, host: str, port: int) -> Any:
    """A socket through the SOCKS5 proxy at 127.0.0.1:proxy_port (no auth) to host:port."""
    sock = connect_when_ready(("127.0.0.1", proxy_port))
    sock.sendall(b"\x05\x01\x00")
    assert _recv_exact(sock, 2) == b"\x05\x00"
    address = socket.inet_aton(host)
    sock.sendall(b"\x05\x01\x00\x01" + address + port.to_bytes(2, "big"))
    reply = _recv_exact(sock, 10)
    assert reply[:2] == b"\x05\x00", f"SOCKS5 connect failed: {reply!r}"
    return sock


def _recv_exact(sock: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise AssertionError(f"EOF after {data!r}")
        data += chunk
    return data


class ForwardTestServer(ForwardingServer, TestServer):
    """TestServer (auth, exec) plus geossh's ready-made forwarding."""

    __test__ = False

    def __init__(self, harness: ServerHarness, policy: ForwardingPolicy) -> None:
        TestServer.__init__(self, harness)
        ForwardingServer.__init__(self, policy)


def make_policy(tmp_path: Path, **overrides: Any) -> ForwardingPolicy:
    """Loopback forwarding both ways, Unix sockets under ``tmp_path``, agent and X11."""
    settings: dict[str, Any] = {
        "local": ["127.0.0.1:*", "localhost:*"],
        "remote": ["localhost:*", "127.0.0.1:*"],
        "local_unix": [f"{tmp_path.resolve()}/*"],
        "remote_unix": [f"{tmp_path.resolve()}/*"],
        "allow_agent": True,
        "allow_x11": True,
    }
    settings.update(overrides)
    return ForwardingPolicy(**settings)


def session_of(server: ServerHarness) -> ForwardSession:
    """The ForwardSession of the most recent connection."""
    wait_until(lambda: server.servers, what="a connection")
    forward_server = server.servers[-1]
    assert isinstance(forward_server, ForwardTestServer)
    return forward_server.forwarding
