"""Zero-downtime reload (SIGHUP) of ``geossh serve`` and of a ``geossh.Server`` app.

Every server runs under a small subreaper standing in for systemd: the
generations a reload starts become its children once their parent exits,
and it exits only when every one of them (and every command they ran) is
gone, so its exit is the proof that nothing leaked. The test reads a
notify socket (READY=1 with MAINPID= after each reload, STATUS= saying why
one failed) and the servers' log lines; it never sleeps to synchronise.
Sessions learn which generation serves them from ``$PPID`` (the server
process that ran the command) or from the app's answer.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gevent
import gevent.select
import gevent.server
import gevent.socket
import gevent.subprocess
import pytest
from gevent.event import Event

from tests.conftest import require
from tests.integration.test_worker_limits import Flood
from tests.server_kit import ROOT, SSH_OPTIONS, python_env, run, ssh_argv
from tests.support import in_thread

#: A stand-in service manager: a child subreaper that runs argv and exits once
#: every descendant has exited (orphaned generations are re-parented to it).
REAPER = """
import ctypes, os, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
subprocess.Popen(sys.argv[1:])
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""
MAX_DIALS = 400  # bound on the connection loop
MAX_PROBES = 3000  # bound on the 20 ms connection loop (a minute)
PROBE_EVERY = 0.02
ROUND = 256 * 1024  # bytes through the long `cat` session per round


class Notify:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET, read in order."""

    def __init__(self) -> None:
        self.address = f"@geossh-reload-{os.getpid()}-{secrets.token_hex(6)}"
        self.sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.address[1:])
        self.messages: list[dict[str, str]] = []

    def next(self, key: str, timeout: float = 30) -> dict[str, str]:
        """The next message (not read before) that has ``key``."""
        with gevent.Timeout(timeout, AssertionError(f"no {key}= after {self.messages}")):
            while True:
                data = self.sock.recv(4096).decode()
                message = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
                self.messages.append(message)
                if key in message:
                    return message

    def rest(self) -> list[dict[str, str]]:
        """Every message received so far, reading what is queued without waiting."""
        self.sock.settimeout(0.0)  # gevent: raise instead of waiting
        try:
            while True:
                data = self.sock.recv(4096).decode()
                self.messages.append(dict(line.split("=", 1) for line in data.splitlines()))
        except (BlockingIOError, TimeoutError):
            return self.messages
        finally:
            self.sock.settimeout(None)

    def close(self) -> None:
        self.sock.close()


class Service:
    """A server program under the subreaper: its log lines, notify messages and generations."""

    def __init__(self, argv: Sequence[str], **env: str) -> None:
        self.notify = Notify()
        environ = python_env(NOTIFY_SOCKET=self.notify.address, PYTHONDONTWRITEBYTECODE="1")
        environ.update(env)
        self.proc = gevent.subprocess.Popen(
            [sys.executable, "-c", REAPER, sys.executable, *argv],
            stdout=gevent.subprocess.PIPE, stderr=gevent.subprocess.PIPE,
            env=environ, cwd=str(ROOT),
        )  # fmt: skip
        self.lines: list[str] = []
        self._changed = Event()
        self._open = 2
        self._readers = [gevent.spawn(self._read, f) for f in (self.proc.stdout, self.proc.stderr)]
        self.pidfds: dict[int, int] = {}
        self.generations: list[int] = []
        self.port = 0

    def start(self) -> Service:
        """Wait for the first READY=1 and the announced port."""
        try:
            ready = self.notify.next("READY")
        except AssertionError:
            raise AssertionError(f"never ready: {self.text()}") from None
        self._adopt(int(ready["MAINPID"]))
        match = re.search(r"serving on 127\.0\.0\.1:(\d+)", self.wait_line("serving on")[0])
        assert match is not None
        self.port = int(match.group(1))
        return self

    @property
    def main(self) -> int:
        return self.generations[-1]

    def _adopt(self, pid: int) -> None:
        self.generations.append(pid)
        self.pidfds[pid] = os.pidfd_open(pid)  # held from now on: exit is seen even if reaped

    def _read(self, stream: Any) -> None:
        try:
            for raw in stream:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._pulse()
        finally:
            self._open -= 1
            self._pulse()

    def _pulse(self) -> None:
        changed, self._changed = self._changed, Event()
        changed.set()

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, text: str, count: int = 1, timeout: float = 30) -> list[str]:
        """The log (or stdout) lines containing ``text``, once there are ``count`` of them."""
        error = AssertionError(f"fewer than {count} lines with {text!r}:\n{self.text()}")
        with gevent.Timeout(timeout, error):
            while True:
                found = [line for line in self.lines if text in line]
                if len(found) >= count:
                    return found
                if not self._open:
                    raise error
                self._changed.wait()

    def signal(self, signum: int, pid: int | None = None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.main if pid is None else pid, signum)

    def reload(self) -> int:
        """SIGHUP the main process; the new generation's pid once it is the main process."""
        old = self.main
        self.signal(signal.SIGHUP)
        ready = self.notify.next("READY")
        assert "MAINPID" in ready, (ready, self.text())
        new = int(ready["MAINPID"])
        assert new != old and ready["STATUS"] == f"reloaded: pid {new}"
        self._adopt(new)
        return new

    def exited(self, pid: int, timeout: float = 30) -> bool:
        """Has ``pid`` exited (waiting up to ``timeout`` s; 0 just looks)?"""
        readable, _, _ = gevent.select.select([self.pidfds[pid]], [], [], timeout)
        return bool(readable)

    def finished(self, timeout: float = 30) -> int:
        """The subreaper's status once every process under it has exited."""
        try:
            return int(self.proc.wait(timeout=timeout))
        except gevent.subprocess.TimeoutExpired:
            raise AssertionError(f"processes left: {self.descendants()}\n{self.text()}") from None

    def descendants(self) -> list[int]:
        found: list[int] = []
        todo = [self.proc.pid]
        while todo and len(found) < 1000:
            pid = todo.pop()
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                found += map(int, children)
                todo += map(int, children)
        return found

    def close(self) -> None:
        """Kill whatever is left (a failed test), reap, close everything."""
        if self.proc.poll() is None:
            for pid in [*self.generations, *self.descendants()]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(gevent.subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=20)
        gevent.joinall(self._readers, timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        for fd in self.pidfds.values():
            os.close(fd)
        self.notify.close()


class Client:
    """The user's key, for ssh/sftp to a service's port."""

    def __init__(self, keydir: Path, port: int) -> None:
        self.key = keydir / "user_ed25519"
        self.port = port
        self.user = getpass.getuser()

    def argv(self, *remote: str, extra: Sequence[str] = ("-T",)) -> list[str]:
        return ssh_argv(self.port, self.key, *remote, user=self.user, extra=extra)

    def run(self, command: str) -> Any:
        return run(self.argv(command))

    def served_by(self) -> int:
        """The pid of the generation that answers a new connection."""
        result = self.run("echo $PPID")
        assert result.returncode == 0, result.stderr
        return int(result.stdout)


class Stream:
    """A long ``ssh ... cat`` session: data sent comes back byte for byte."""

    def __init__(
        self, client: Client, command: str = "echo $PPID; exec cat", extra: Sequence[str] = ()
    ) -> None:
        self.proc = gevent.subprocess.Popen(
            client.argv(command, extra=["-T", *extra]), stdin=gevent.subprocess.PIPE,
            stdout=gevent.subprocess.PIPE, stderr=gevent.subprocess.PIPE,
        )  # fmt: skip
        self.first = self.proc.stdout.readline().decode().strip()
        self.sent = 0

    def round(self, size: int = ROUND) -> None:
        data = secrets.token_bytes(size)
        writer = gevent.spawn(self._write, data)
        echoed = self.proc.stdout.read(len(data))
        writer.get(timeout=30)
        assert echoed == data, f"{len(echoed)} of {len(data)} bytes back after {self.sent}"
        self.sent += len(data)

    def _write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def end(self) -> int:
        """Close stdin: cat ends, the session ends; the ssh exit status."""
        self.proc.stdin.close()
        rest = self.proc.stdout.read()
        assert rest == b"", rest[:100]
        return int(self.proc.wait(timeout=30))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(Exception):
                stream.close()


class Shell:
    """An interactive login shell on a pty (``ssh -tt``); asks it for its parent's pid."""

    def __init__(self, client: Client) -> None:
        self.proc = gevent.subprocess.Popen(
            client.argv(extra=["-tt"]), stdin=gevent.subprocess.PIPE,
            stdout=gevent.subprocess.PIPE, stderr=gevent.subprocess.PIPE, bufsize=0,
        )  # fmt: skip
        self.output = b""
        self.asked = 0

    def parent(self) -> int:
        """The pid of the server process running this shell (typed, echoed, answered)."""
        self.asked += 1
        self.proc.stdin.write(f'echo "n{self.asked}=$((PPID+0))="\n'.encode())
        answer = re.compile(rb"n%d=(\d+)=" % self.asked)  # the echoed input does not match
        with gevent.Timeout(30, AssertionError(f"no answer from the shell: {self.output!r}")):
            while (match := answer.search(self.output)) is None:
                chunk = self.proc.stdout.read(65536)
                assert chunk, f"the shell ended: {self.output!r}"
                self.output += chunk
        return int(match.group(1))

    def end(self) -> int:
        self.proc.stdin.write(b"exit\n")
        while self.proc.stdout.read(65536):
            pass
        return int(self.proc.wait(timeout=30))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(Exception):
                stream.close()


class Echo:
    """A TCP echo server in the test process: the far end of an ``ssh -L`` forward."""

    def __init__(self) -> None:
        self.server = gevent.server.StreamServer(("127.0.0.1", 0), self._echo)
        self.server.start()
        self.port = self.server.server_port

    @staticmethod
    def _echo(sock: Any, address: Any) -> None:
        while data := sock.recv(65536):
            sock.sendall(data)

    def close(self) -> None:
        self.server.stop(timeout=5)


class Forwarded:
    """One connection through an ``ssh -L unix-socket:127.0.0.1:port`` forward."""

    def __init__(self, path: Path) -> None:
        self.sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))

    def round(self, size: int = 64 * 1024) -> None:
        data = secrets.token_bytes(size)
        writer = gevent.spawn(self.sock.sendall, data)
        echoed = b""
        with gevent.Timeout(30, AssertionError(f"{len(echoed)} of {size} bytes forwarded")):
            while len(echoed) < size:
                chunk = self.sock.recv(size - len(echoed))
                assert chunk, "the forwarded connection closed"
                echoed += chunk
        writer.get(timeout=30)
        assert echoed == data

    def close(self) -> None:
        self.sock.close()


class Sftp:
    """An interactive ``sftp -b -`` session fed one command at a time."""

    def __init__(self, client: Client) -> None:
        argv = ["sftp", *SSH_OPTIONS, "-P", str(client.port), "-i", str(client.key), "-b", "-"]
        self.proc = gevent.subprocess.Popen(
            [*argv, f"{client.user}@127.0.0.1"], stdin=gevent.subprocess.PIPE,
            stdout=gevent.subprocess.PIPE, stderr=gevent.subprocess.PIPE,
        )  # fmt: skip
        self.steps = 0

    def do(self, command: str) -> None:
        """Run ``command``; return once it is done (a local echo after it has printed)."""
        self.steps += 1
        marker = f"step-{self.steps}-done"
        self.proc.stdin.write(f"{command}\n!echo {marker}\n".encode())
        self.proc.stdin.flush()
        with gevent.Timeout(30, AssertionError(f"sftp {command!r} did not finish")):
            for line in self.proc.stdout:
                if line.strip() == marker.encode():
                    return
        raise AssertionError(f"sftp ended during {command!r}: {self.proc.stderr.read()!r}")

    def quit(self) -> int:
        self.proc.stdin.close()
        self.proc.stdout.read()
        return int(self.proc.wait(timeout=30))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(Exception):
                stream.close()


class Dialer:
    """New connections one after another (at most MAX_DIALS) until stopped; results kept."""

    def __init__(self, client: Client, command: str = "echo hi") -> None:
        self.client = client
        self.command = command
        self.answers: list[bytes] = []
        self.failures: list[Any] = []
        self._stop = False
        self._changed = Event()
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        for _ in range(MAX_DIALS):
            if self._stop:
                break
            result = self.client.run(self.command)
            if result.returncode == 0:
                self.answers.append(result.stdout)
            else:
                self.failures.append((result.returncode, result.stdout, result.stderr))
            changed, self._changed = self._changed, Event()
            changed.set()

    def more(self, count: int = 1) -> None:
        """Wait for ``count`` further connections to have finished."""
        target = len(self.answers) + len(self.failures) + count
        with gevent.Timeout(30, AssertionError("the connection loop stalled")):
            while len(self.answers) + len(self.failures) < target:
                assert not self.greenlet.dead, "the connection loop ended"
                self._changed.wait()

    def stop(self) -> None:
        self._stop = True
        self.greenlet.get(timeout=60)


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """Things with ``close()`` to close at the end, last first."""
    items: list[Any] = []
    try:
        yield items
    finally:
        for item in reversed(items):
            item.close()


def serve_cli(tmp_path: Path, keydir: Path, *flags: str) -> Service:
    """``python -m geossh serve`` on a free port with the test keys."""
    require("ssh")
    authorized = tmp_path / "authorized_keys"
    shutil.copy(keydir / "user_ed25519.pub", authorized)
    host_key = tmp_path / "host_key"
    if not host_key.exists():
        shutil.copy(keydir / "host_ed25519", host_key)
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    argv = [
        "-m", "geossh", "serve", "--port", "0", "--host-key", str(host_key),
        "--authorized-keys", str(authorized), "--no-password", "--root", str(root), *flags,
    ]  # fmt: skip
    return Service(argv)


class Prober:
    """A new TCP connection every 20 ms (at most MAX_PROBES): each must get the version line.

    A refused, reset or silent connection attempt is a failure (kept with what it got).
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.answered = 0
        self.failures: list[Any] = []
        self._stop = False
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        for _ in range(MAX_PROBES):
            if self._stop:
                break
            flood = Flood(self.port)
            try:
                first: Any = flood.open(1)[0]
            except OSError as exc:
                first = exc
            finally:
                flood.close()
            if isinstance(first, bytes) and first.startswith(b"SSH-2.0-"):
                self.answered += 1
            else:
                self.failures.append(first)
            gevent.sleep(PROBE_EVERY)  # pacing, not synchronisation

    def stop(self) -> None:
        self._stop = True
        self.greenlet.get(timeout=60)

    def close(self) -> None:
        self.greenlet.kill()


class Sessions:
    """20 long sessions on one generation: 8 ``cat`` streams, 4 with a ``-L`` forward (a
    forwarded connection each), 4 ``-tt`` shells, 4 ``sftp`` sessions (a file each)."""

    def __init__(self, client: Client, tmp_path: Path, echo: Echo, closing: list[Any]) -> None:
        self.tmp_path = tmp_path
        paths = [tmp_path / f"forward{i}.sock" for i in range(4)]
        forwards = [["-L", f"{path}:127.0.0.1:{echo.port}"] for path in paths]
        started = [gevent.spawn(Stream, client, extra=extra) for extra in [[]] * 4 + forwards]
        started += [gevent.spawn(Shell, client) for _ in range(4)]
        started += [gevent.spawn(Sftp, client) for _ in range(4)]
        gevent.joinall(started, timeout=30)
        items = [greenlet.get(block=False) for greenlet in started]
        closing.extend(items)
        self.streams: list[Stream] = items[:8]
        self.shells: list[Shell] = items[8:12]
        self.sftps: list[Sftp] = items[12:]
        self.forwarded = [Forwarded(path) for path in paths]
        closing.extend(self.forwarded)
        self.files = []
        for index, sftp in enumerate(self.sftps):
            source = tmp_path / f"upload{index}.bin"
            source.write_bytes(secrets.token_bytes(200_000))
            sftp.do(f"put {source} up{index}.bin")
            self.files.append(source)
        self.rounds = 0

    def servers(self) -> set[int]:
        """The pids of the processes running the sessions' commands and shells."""
        return {int(stream.first) for stream in self.streams} | {
            shell.parent() for shell in self.shells
        }

    def round(self) -> None:
        """Data through every session, checked byte for byte (all at once)."""
        self.rounds += 1
        work = [gevent.spawn(stream.round, 64 * 1024) for stream in self.streams]
        work += [gevent.spawn(forwarded.round) for forwarded in self.forwarded]
        work += [gevent.spawn(self._fetch, index) for index in range(len(self.sftps))]
        gevent.joinall(work, timeout=60)
        for greenlet in work:
            greenlet.get(block=False)

    def _fetch(self, index: int) -> None:
        down = self.tmp_path / f"down{index}-{self.rounds}.bin"
        self.sftps[index].do(f"get up{index}.bin {down}")
        assert down.read_bytes() == self.files[index].read_bytes()

    def end(self) -> None:
        """End every session; each ends cleanly (exit status 0)."""
        for forwarded in self.forwarded:
            forwarded.close()
        ends = [gevent.spawn(item.end) for item in [*self.streams, *self.shells]]
        ends += [gevent.spawn(sftp.quit) for sftp in self.sftps]
        gevent.joinall(ends, timeout=60)
        assert [greenlet.get(block=False) for greenlet in ends] == [0] * len(ends)


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (none once it has exited)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def listening(port: int) -> set[int]:
    """Inodes of the listening TCP sockets on 127.0.0.1:``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            found.add(int(fields[9]))
    return found


def held(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` has open."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def survive_reloads(
    tmp_path: Path, keydir: Path, closing: list[Any], workers: int, reloads: int
) -> None:
    """20 long sessions on the first generation stay up through ``reloads`` reloads in a row.

    Meanwhile a TCP connection every 20 ms and a loop of ssh logins see no failure;
    the same kernel listening sockets (one per worker) serve throughout and no
    old generation holds one after it drained; the generations in between exit
    once their short connections end, the first once its sessions end.
    """
    require("sftp")
    flags = ["--forwarding", "--per-source-penalties", "no", "--max-startups", "100:30:200"]
    service = serve_cli(tmp_path, keydir, *flags, "--workers", str(workers))
    closing.append(service)
    first = service.start().main
    sockets = listening(service.port)
    assert len(sockets) == workers
    client = Client(keydir, service.port)
    echo = Echo()
    closing.append(echo)
    sessions = Sessions(client, tmp_path, echo, closing)
    first_servers = sessions.servers()
    assert first_servers <= {first, *children(first)}
    prober, dialer = Prober(service.port), Dialer(client)
    closing.append(prober)
    for done in range(1, reloads + 1):
        service.reload()
        service.wait_line("draining: ", count=done * workers)  # every old worker stopped accepting
        dialer.more()
        sessions.round()
        assert sessions.servers() == first_servers
        assert listening(service.port) == sockets  # taken over: none closed, none made
        for old in service.generations[:-1]:  # (a generation's children include the next)
            for pid in {old, *children(old)} - set(service.generations[1:]):
                assert not held(pid) & sockets, (pid, service.text())
    prober.stop()
    dialer.stop()
    assert prober.failures == [] and prober.answered > 0
    assert dialer.failures == [] and set(dialer.answers) == {b"hi\n"}
    between, last = service.generations[1:-1], service.main
    assert client.served_by() in {last, *children(last)}
    for pid in between:  # only short connections: gone once they ended
        assert service.exited(pid), service.text()
    assert not service.exited(first, timeout=0)  # still serving the sessions
    sessions.round()
    sessions.end()
    assert service.exited(first), service.text()  # its last session ended
    service.signal(signal.SIGTERM)
    assert service.finished() == 0
    assert "Traceback" not in service.text()


@pytest.mark.parametrize("workers", [1, 2])
def test_twenty_sessions_survive_five_reloads(
    tmp_path: Path, keydir: Path, closing: list[Any], workers: int
) -> None:
    survive_reloads(tmp_path, keydir, closing, workers, reloads=5)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 3])
def test_soak_sessions_survive_many_reloads(
    tmp_path: Path, keydir: Path, closing: list[Any], workers: int
) -> None:
    survive_reloads(tmp_path, keydir, closing, workers, reloads=25)


#: An application on ``geossh.Server``: what a reload must import afresh is ``greeting``,
#: a module next to it. ``greet`` answers its ANSWER and the pid; ``hold`` then echoes.
APP = """
import logging, os, sys
import geossh
from geossh.runner.server import Server
import greeting

class Anyone(geossh.ServerInterface):
    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        return geossh.AUTH_SUCCESSFUL

def handler(session):
    session.write(f"{greeting.ANSWER} {os.getpid()}\\n")
    if session.command_text.startswith("reload"):  # the API: Server.reload() from a session
        if session.command_text.startswith("reload "):  # "reload SECONDS": this reload's timeout
            server.reload_timeout = float(session.command_text.split()[1])
        session.write(f"{server.reload()}\\n")
    if session.command_text == "hold":
        while data := session.channel.recv(65536):
            session.channel.sendall(data)
    return 0

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
key = geossh.PKey.from_path(sys.argv[1])
server = Server(("127.0.0.1", 0), Anyone, host_keys=[key], exec_handler=handler,
                max_startups=None, reload_timeout=float(os.environ.get("RELOAD_TIMEOUT", 60)),
                workers=int(os.environ.get("WORKERS", 1)))
print(f"serving on 127.0.0.1:{server.port}", flush=True)
server.serve_forever()
"""


def test_upgrade_runs_new_code_and_a_broken_one_keeps_the_old(
    tmp_path: Path, keydir: Path, closing: list[Any]
) -> None:
    """A Server app: new connections get the upgraded answer; a failed import changes nothing."""
    require("ssh")
    (tmp_path / "app.py").write_text(APP)
    greeting = tmp_path / "greeting.py"
    greeting.write_text('ANSWER = "v1"\n')
    service = Service([str(tmp_path / "app.py"), str(keydir / "host_ed25519")])
    closing.append(service)
    first = service.start().main
    client = Client(keydir, service.port)
    hold = Stream(client, "hold")
    closing.append(hold)
    assert hold.first == f"v1 {first}"
    hold.round()
    greeting.write_text('raise ImportError("broken upgrade")\n')
    service.signal(signal.SIGHUP)
    failed = service.notify.next("READY")
    assert "MAINPID" not in failed, failed
    assert failed["STATUS"].startswith("reload failed: new generation (pid ")
    assert failed["STATUS"].endswith(f"serving on 127.0.0.1:{service.port} (pid {first})")
    assert f"pid {first} keeps serving" in service.wait_line("reload failed: ")[0]
    assert "ImportError: broken upgrade" in service.text()
    assert client.run("greet").stdout == f"v1 {first}\n".encode()
    hold.round()
    greeting.write_text('ANSWER = "version 2"\n')
    second = service.reload()
    service.wait_line("draining: ")
    assert client.run("greet").stdout == f"version 2 {second}\n".encode()
    hold.round()  # the old code still serves the old session
    third = service.reload()  # the second generation served only short connections: it exits
    service.wait_line(f"reload: pid {second} (the generation after this one) exited (status 0)")
    assert not Path(f"/proc/{second}").exists()  # reaped by its parent: no zombie
    assert client.run("greet").stdout == f"version 2 {third}\n".encode()
    assert not service.exited(first, timeout=0)
    assert hold.end() == 0
    assert service.exited(first)
    service.signal(signal.SIGTERM)
    assert service.finished() == 0


def test_reload_with_missing_host_key_keeps_serving(
    tmp_path: Path, keydir: Path, closing: list[Any]
) -> None:
    """The new generation cannot read its host key: it says so, the old one goes on."""
    service = serve_cli(tmp_path, keydir)
    closing.append(service)
    first = service.start().main
    client = Client(keydir, service.port)
    stream = Stream(client)
    closing.append(stream)
    key = tmp_path / "host_key"
    away = key.rename(tmp_path / "host_key.away")
    service.signal(signal.SIGHUP)
    failed = service.notify.next("READY")
    assert "MAINPID" not in failed and failed["STATUS"].startswith("reload failed: "), failed
    service.wait_line("reload failed: ")
    assert f"geossh: error: host key {key} does not exist" in service.text()
    assert client.served_by() == first
    stream.round()
    away.rename(key)
    second = service.reload()  # the next reload works
    service.wait_line("draining: ")
    assert client.served_by() == second
    stream.round()
    assert stream.end() == 0
    assert service.exited(first)
    service.signal(signal.SIGTERM)
    assert service.finished() == 0


def test_reload_signal_burst_starts_one_generation(
    tmp_path: Path, keydir: Path, closing: list[Any]
) -> None:
    """Five SIGHUPs at once: one new generation; a generation that handed over ignores more."""
    service = serve_cli(tmp_path, keydir)
    closing.append(service)
    first = service.start().main
    stream = Stream(Client(keydir, service.port))  # keeps the first generation draining
    closing.append(stream)
    for _ in range(5):
        service.signal(signal.SIGHUP, first)
    ready = service.notify.next("READY")
    second = int(ready["MAINPID"])
    service.wait_line("draining: ")
    service.signal(signal.SIGHUP, first)
    service.wait_line(f"reload ignored: this generation handed over to pid {second}")
    stream.round()
    assert stream.end() == 0
    assert service.exited(first)
    service.signal(signal.SIGTERM, second)
    assert service.finished() == 0
    gevent.joinall(service._readers, timeout=10)
    assert len([line for line in service.lines if "inherited 1 listening" in line]) == 1


def test_sigterm_during_reload_leaves_no_generation(
    tmp_path: Path, keydir: Path, closing: list[Any]
) -> None:
    """SIGTERM while the new generation starts: it is ended too, nothing keeps running."""
    service = serve_cli(tmp_path, keydir)
    closing.append(service)
    service.start()
    service.signal(signal.SIGHUP)
    service.notify.next("RELOADING")
    service.signal(signal.SIGTERM)
    assert service.finished() == 0  # every process under the subreaper has exited
    gevent.joinall(service._readers, timeout=10)
    assert "reload abandoned" in service.text()


def test_drain_limit_and_a_killed_old_generation(
    tmp_path: Path, keydir: Path, closing: list[Any]
) -> None:
    """--drain-limit cuts what is left after it; SIGKILL of an old generation cuts only its own."""
    service = serve_cli(tmp_path, keydir, "--drain-limit", "0.5")
    closing.append(service)
    first = service.start().main
    client = Client(keydir, service.port)
    stream = Stream(client)
    closing.append(stream)
    second = service.reload()
    assert service.exited(first)  # after 0.5 s of draining, the session was cut
    assert stream.proc.wait(timeout=30) != 0
    stream = Stream(client)
    closing.append(stream)
    assert stream.first == str(second)
    third = service.reload()
    service.wait_line("draining: ", count=2)
    service.signal(signal.SIGKILL, second)
    assert service.exited(second)
    assert stream.proc.wait(timeout=30) != 0
    assert client.served_by() == third
    service.signal(signal.SIGTERM, third)
    assert service.finished() == 0


def test_sigusr1_drains_and_exits(tmp_path: Path, keydir: Path, closing: list[Any]) -> None:
    """SIGUSR1: stop accepting, serve the open session to its end, then exit."""
    service = serve_cli(tmp_path, keydir)
    closing.append(service)
    first = service.start().main
    stream = Stream(Client(keydir, service.port))
    closing.append(stream)
    service.signal(signal.SIGUSR1)
    service.wait_line("draining: 1 connection(s) open")
    stream.round()
    assert not service.exited(first, timeout=0)
    assert stream.end() == 0
    assert service.finished() == 0


def test_forged_handover_message_is_ignored(
    tmp_path: Path, keydir: Path, closing: list[Any]
) -> None:
    """Another local process sends READY=1 to the (visible) handover socket: not believed."""
    require("ssh")
    (tmp_path / "app.py").write_text(APP)
    greeting = tmp_path / "greeting.py"
    greeting.write_text('ANSWER = "v1"\n')
    service = Service([str(tmp_path / "app.py"), str(keydir / "host_ed25519")])
    closing.append(service)
    first = service.start().main
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    greeting.write_text(f"open({str(gate)!r}).read()\nraise ImportError('late failure')\n")
    service.signal(signal.SIGHUP)
    writer = in_thread(os.open, str(gate), os.O_WRONLY)  # the new generation is importing
    try:
        prefix = f"@geossh-handover-{first}-"
        names = [line.split()[-1] for line in Path("/proc/net/unix").read_text().splitlines()]
        [name] = [n for n in names if n.startswith(prefix)]
        forger = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        forger.sendto(b"READY=1\nMAINPID=1\n", "\0" + name[1:])
        forger.close()
        service.wait_line(f"ignored a handover message from pid {os.getpid()}")
    finally:
        os.close(writer)  # the import goes on, and fails
    failed = service.notify.next("READY")
    assert "MAINPID" not in failed and "reload failed" in failed["STATUS"], failed
    assert Client(keydir, service.port).run("greet").stdout == f"v1 {first}\n".encode()
    service.signal(signal.SIGTERM)
    assert service.finished() == 0


def test_new_generation_not_ready_in_time_is_killed(
    tmp_path: Path, keydir: Path, closing: list[Any]
) -> None:
    """Server.reload(): a new generation stuck starting is killed after reload_timeout."""
    require("ssh")
    (tmp_path / "app.py").write_text(APP)
    greeting = tmp_path / "greeting.py"
    greeting.write_text('ANSWER = "v1"\n')
    argv = [str(tmp_path / "app.py"), str(keydir / "host_ed25519")]
    service = Service(argv, RELOAD_TIMEOUT="0.5")
    closing.append(service)
    first = service.start().main
    client = Client(keydir, service.port)
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    greeting.write_text(f"open({str(gate)!r}).read()\n")  # nobody ever opens it to write
    assert client.run("reload").stdout == f"v1 {first}\nFalse\n".encode()
    failed = service.notify.next("READY")
    assert "MAINPID" not in failed and "not ready within 0.5 s" in failed["STATUS"], failed
    assert client.run("greet").stdout == f"v1 {first}\n".encode()
    greeting.write_text('ANSWER = "v2"\n')
    # A good generation gets time to start however loaded the machine is.
    assert client.run("reload 60").stdout == f"v1 {first}\nTrue\n".encode()
    second = int(service.notify.next("READY")["MAINPID"])
    service._adopt(second)
    assert service.exited(first)  # its last session was the one that asked for the reload
    assert client.run("greet").stdout == f"v2 {second}\n".encode()
    service.signal(signal.SIGTERM)
    assert service.finished() == 0  # the stuck one was killed, not left behind
