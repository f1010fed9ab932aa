"""systemd: ``systemd-socket-activate`` drives ``geossh serve``; a notify socket the test reads."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

import gevent
import gevent.socket
import gevent.subprocess
import pytest

from geossh.runner import systemd
from tests.conftest import require
from tests.server_kit import ROOT, python_env, run, ssh_argv


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; collects the messages."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.messages: list[dict[str, str]] = []

    def expect(self, key: str, value: str | None = None, timeout: float = 30) -> dict[str, str]:
        """The first message (already read or next) with ``key`` (= ``value``)."""

        def match(m: dict[str, str]) -> bool:
            return key in m and (value is None or m[key] == value)

        with gevent.Timeout(timeout, AssertionError(f"no {key} in {self.messages}")):
            while not any(match(m) for m in self.messages):
                data = self.sock.recv(4096).decode()
                self.messages.append(dict(line.split("=", 1) for line in data.splitlines()))
        return next(m for m in self.messages if match(m))

    def close(self) -> None:
        self.sock.close()


def test_notifier_reaches_path_and_abstract_sockets(tmp_path: Path) -> None:
    for address in (str(tmp_path / "notify"), f"@geossh-test-{os.getpid()}"):
        listener = NotifySocket(address)
        try:
            notifier = systemd.Notifier(address, watchdog_usec=2_000_000)
            assert notifier.watchdog_interval == 1.0
            notifier.ready("serving")
            notifier.watchdog()
            notifier.stopping()
            ready = listener.expect("READY", "1")
            assert ready["STATUS"] == "serving" and ready["MAINPID"] == str(os.getpid())
            listener.expect("WATCHDOG", "1")
            listener.expect("STOPPING", "1")
            notifier.close()
        finally:
            listener.close()


def test_notifier_without_socket_does_nothing() -> None:
    assert systemd.Notifier(None).notify(READY=1) is False
    assert systemd.Notifier("/nonexistent/notify").notify(READY=1) is False  # logged, not raised


def test_listen_sockets_bad_input() -> None:
    assert systemd.listen_sockets({}) == []
    other_pid = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid() + 1)}
    assert systemd.listen_sockets(other_pid) == []  # meant for another process
    with pytest.raises(systemd.ActivationError):
        systemd.listen_sockets({"LISTEN_FDS": "x", "LISTEN_PID": "1"})
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unbound = socket.socket()
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())}
    try:
        for sock, why in ((udp, "not a TCP socket"), (unbound, "not listening")):
            with pytest.raises(systemd.ActivationError, match=why):
                systemd.listen_sockets(env, first_fd=sock.fileno())
        closed = os.dup(udp.fileno())
        os.close(closed)
        with pytest.raises(systemd.ActivationError, match="inherited fd"):
            systemd.listen_sockets(env, first_fd=closed)
    finally:
        udp.close()
        unbound.close()


def test_socket_activation_with_systemd_socket_activate(tmp_path: Path, keydir: Path) -> None:
    """geossh serve on the socket systemd-socket-activate passes; READY, WATCHDOG, STOPPING."""
    require("ssh")
    activate = require("systemd-socket-activate")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(keydir / "user_ed25519.pub", home / ".ssh" / "authorized_keys")
    notify = NotifySocket(f"@geossh-notify-{os.getpid()}-{id(tmp_path)}")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # a port from the OS, handed to systemd-socket-activate
    listener.listen(16)
    port = listener.getsockname()[1]
    env = python_env(HOME=str(home), NOTIFY_SOCKET=notify.address, WATCHDOG_USEC="200000")
    env.pop("XDG_STATE_HOME", None)
    env["LISTEN_FDS"] = "1"
    passed = ["PYTHONPATH", "PYTHONUNBUFFERED", "HOME", "NOTIFY_SOCKET", "WATCHDOG_USEC"]
    serve = ["python", "-m", "geossh", "serve", "--port", "1"]  # --port must be ignored
    command = [activate, "--fdname=ssh", *(f"-E{name}" for name in passed), *serve]
    # The activator must find the socket at fd 3 with LISTEN_PID its own pid (it then
    # execs geossh); a launcher sets that up in the child, never touching our fd 3.
    launch = (
        "import os, sys; fd = int(sys.argv[1]); os.dup2(fd, 3); os.close(fd); "
        "os.environ['LISTEN_PID'] = str(os.getpid()); os.execvp(sys.argv[2], sys.argv[2:])"
    )
    log = open(tmp_path / "activate.log", "wb")  # noqa: SIM115
    try:
        proc = gevent.subprocess.Popen(
            [sys.executable, "-c", launch, str(listener.fileno()), *command],
            pass_fds=[listener.fileno()], env=env, cwd=str(ROOT),
            stdout=gevent.subprocess.PIPE, stderr=log,
        )  # fmt: skip
    finally:
        log.close()
        listener.close()
    try:
        argv = ssh_argv(port, keydir / "user_ed25519", "echo activated", user=getpass.getuser())
        result = run(argv)  # the first connection makes the activator exec geossh serve
        text = (tmp_path / "activate.log").read_text()
        assert result.returncode == 0, (result.stderr, text)
        assert result.stdout == b"activated\n"
        ready = notify.expect("READY", "1")
        assert ready["STATUS"].startswith(f"serving on 127.0.0.1:{port} ")
        assert ready["MAINPID"] == str(proc.pid)
        notify.expect("WATCHDOG", "1")
        assert "inherited 1 listening socket(s): ssh" in (tmp_path / "activate.log").read_text()
        proc.send_signal(signal.SIGTERM)
        notify.expect("STOPPING", "1")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
        notify.close()
