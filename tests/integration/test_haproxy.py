"""A real HAProxy (TCP mode, PROXY v2 and v1) in front of two ``geossh serve`` nodes.

All on loopback: HAProxy listens on 127.0.0.1 (a socket the test binds and
hands over as ``fd@N``, so the port comes from the OS) and connects to the
nodes from 127.0.0.1, the one address the nodes trust (``--proxy-from``);
the nodes listen on 127.0.0.2 and 127.0.0.3 with the same host key; OpenSSH
clients bind 127.0.0.9 (or another address) as their source. HAProxy's
health checks also probe a witness listener in this process at the same
interval, so a test can wait for a number of checks instead of sleeping.
"""

from __future__ import annotations

import contextlib
import getpass
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import gevent
import gevent.server
import gevent.socket
import gevent.subprocess
import pytest

from geossh.runner.proxyproto import build_v1, build_v2
from tests.conftest import require
from tests.server_kit import ROOT, ServerProcess, make_server, python_env, run

BALANCER = "127.0.0.1"
NODES = ("127.0.0.2", "127.0.0.3")
CLIENT = "127.0.0.9"
NEIGHBOUR = "127.0.0.10"  # another client, on its own address
QUITTER = "127.0.0.11"  # a client that leaves without logging in
WITNESS = "127.0.0.4"
CHECKS = 20  # health checks a test waits for (inter 50ms: about a second)
FAILURES = (f"{BALANCER}:", f"{BALANCER}/", "bad PROXY", "connection failed", "Traceback")


class Witness:
    """A listener HAProxy health-checks like the nodes; counts the checks."""

    def __init__(self) -> None:
        self.checks = 0
        self.server = gevent.server.StreamServer((WITNESS, 0), self._handle)
        self.server.start()
        self.port = self.server.server_port

    def _handle(self, sock: Any, _address: Any) -> None:
        self.checks += 1
        with contextlib.suppress(OSError):
            sock.sendall(b"SSH-2.0-witness\r\n")

    def wait(self, count: int, timeout: float = 20) -> None:
        """Wait until ``count`` more checks than now have reached the witness."""
        target = self.checks + count
        with gevent.Timeout(timeout, AssertionError(f"only {self.checks} checks")):
            while self.checks < target:  # bounded by the timeout; woken by the checks
                gevent.sleep(0.02)

    def stop(self) -> None:
        self.server.stop(timeout=1)


class Fleet:
    """Two geossh nodes, HAProxy in front, a witness; everything stopped by ``stop``."""

    def __init__(self, tmp_path: Path, keydir: Path) -> None:
        self.tmp = tmp_path
        self.keydir = keydir
        self.nodes: list[ServerProcess] = []
        self.haproxy: Any = None
        self.witness = Witness()
        self.port = 0
        self.known_hosts = tmp_path / "known_hosts"

    def start(
        self, server_options: str, node_args: tuple[str, ...] = (), backend: str = ""
    ) -> None:
        """Nodes with ``node_args``; HAProxy servers with ``server_options``."""
        home = self.tmp / "home"
        home.mkdir(exist_ok=True)
        keys = self.tmp / "authorized_keys"
        keys.write_bytes((self.keydir / "user_ed25519.pub").read_bytes())
        for address in NODES:
            argv = ["-m", "geossh", "serve", "--host", address, "--port", "0"]
            argv += ["--host-key", str(self.keydir / "host_ed25519"), "--user", getpass.getuser()]
            argv += ["--authorized-keys", str(keys), "--no-password", "--no-sftp"]
            argv += ["--proxy-from", BALANCER, *node_args]
            log = self.tmp / f"node-{address}.log"
            self.nodes.append(ServerProcess(argv, log, env=python_env(HOME=str(home))))
        gevent.joinall([gevent.spawn(node.start) for node in self.nodes], raise_error=True)
        listener = socket.socket()
        listener.bind((BALANCER, 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        config = self.tmp / "haproxy.cfg"
        config.write_text(_config(listener.fileno(), self.nodes, self.witness.port,
                                  server_options, backend))  # fmt: skip
        output = open(self.tmp / "haproxy.log", "wb")  # noqa: SIM115 (kept open for the process)
        try:
            self.haproxy = gevent.subprocess.Popen(
                ["haproxy", "-db", "-f", str(config)], pass_fds=[listener.fileno()],
                stdout=output, stderr=output, cwd=str(ROOT),
            )  # fmt: skip
        finally:
            output.close()
            listener.close()  # HAProxy has its own copy
        public = (self.keydir / "host_ed25519.pub").read_text().split()
        self.known_hosts.write_text(f"[{BALANCER}]:{self.port} {public[0]} {public[1]}\n")

    def ssh(self, command: str, source: str = CLIENT) -> Any:
        """OpenSSH ``ssh`` through HAProxy from ``source``, host key checked strictly."""
        argv = [
            "ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "LogLevel=ERROR",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20",
            "-b", source, "-p", str(self.port), "-i", str(self.keydir / "user_ed25519"),
            f"{getpass.getuser()}@{BALANCER}", command,
        ]  # fmt: skip
        return run(argv)

    def connect(self, source: str) -> Any:
        """A raw TCP connection through HAProxy from ``source`` that has read the banner."""
        sock = gevent.socket.create_connection((BALANCER, self.port), 20, (source, 0))
        with gevent.Timeout(20, AssertionError("no banner through HAProxy")):
            assert sock.recv(8) == b"SSH-2.0-"
        return sock

    def node_logs(self) -> list[str]:
        return [node.log() for node in self.nodes]

    def haproxy_log(self) -> str:
        return (self.tmp / "haproxy.log").read_text(errors="replace")

    def assert_checks_harmless(self, checks: int = CHECKS) -> None:
        """Many checks later: nodes still UP, and not one line about a check in their logs.

        A check logged, penalised or refused would name HAProxy's address.
        """
        self.witness.wait(checks)
        assert self.haproxy.poll() is None, self.haproxy_log()
        assert " is DOWN" not in self.haproxy_log(), self.haproxy_log()
        for text in self.node_logs():
            bad = [line for line in text.splitlines() if any(w in line for w in FAILURES)]
            assert not bad, text

    def stop(self) -> None:
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(timeout=20)
            except gevent.subprocess.TimeoutExpired:
                self.haproxy.kill()
                self.haproxy.wait(timeout=20)
        for node in self.nodes:
            node.stop()
        self.witness.stop()


def _config(fd: int, nodes: list[ServerProcess], witness: int, options: str, backend: str) -> str:
    """The HAProxy config: ``options`` (``{port}``: the server's) on every server line."""
    servers = [(f"{name} {address}:{node.port}", node.port)
               for name, address, node in zip("ab", NODES, nodes, strict=True)]  # fmt: skip
    servers.append((f"witness {WITNESS}:{witness} backup", witness))  # never chosen while UP
    lines = "\n".join(
        f"    server {server} {options.format(port=port)} source {BALANCER}"
        for server, port in servers
    )
    return f"""\
global
    log stderr format short local0 notice
defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout check 5s
frontend ssh
    bind fd@{fd}
    default_backend geossh
backend geossh
{backend}
{lines}
"""


@pytest.fixture
def fleet(tmp_path: Path, keydir: Path) -> Any:
    require("haproxy")
    require("ssh")
    if sys.platform != "linux":
        pytest.skip("needs the whole 127.0.0.0/8 on loopback (Linux)")
    fleet = Fleet(tmp_path, keydir)
    yield fleet
    fleet.stop()


def _lands(fleet: Fleet, logins: int = 4) -> set[str]:
    """Log in ``logins`` times; the node addresses that answered (SSH_CONNECTION)."""
    seen = set()
    for _ in range(logins):
        result = fleet.ssh("echo $SSH_CONNECTION")
        assert result.returncode == 0, (result.stderr, fleet.node_logs(), fleet.haproxy_log())
        client, _port, node, _node_port = result.stdout.decode().split()
        assert client == CLIENT  # the real client, not HAProxy's 127.0.0.1
        seen.add(node)
    return seen


def test_v2_logins_land_on_both_nodes_with_the_client_address(fleet: Fleet) -> None:
    """roundrobin, send-proxy-v2; checks expect the SSH banner (sent the v2 LOCAL header)."""
    banner_check = (
        "    option tcp-check\n    tcp-check expect string SSH-2.0-\n    balance roundrobin"
    )
    max_startups = ("--max-startups", "1")  # checks in flight must never crowd a client out
    fleet.start("send-proxy-v2 check inter 50ms fall 1 rise 1", max_startups, banner_check)
    assert _lands(fleet) == set(NODES)  # one known_hosts entry, strict checking, both nodes
    for text in fleet.node_logs():
        assert f"connection from {CLIENT}:" in text and "authenticated as" in text
    fleet.assert_checks_harmless()


def test_v1_send_proxy_logins_and_checks(fleet: Fleet) -> None:
    """send-proxy (v1): checks carry HAProxy's own addresses; the clients' their own."""
    fleet.start("send-proxy check inter 50ms fall 1 rise 1", backend="    balance roundrobin")
    assert _lands(fleet) == set(NODES)
    fleet.assert_checks_harmless()


def test_per_source_limits_and_penalties_see_the_clients(fleet: Fleet) -> None:
    """PerSourceMaxStartups and penalties count 127.0.0.9 and 127.0.0.11, not HAProxy."""
    args = ("--per-source-max-startups", "1", "--per-source-penalties", "noauth:30s")
    fleet.start("send-proxy-v2 check inter 50ms fall 1 rise 1", args, "    balance first")
    first = fleet.nodes[0]  # balance first: every client connection goes to node a
    fleet.connect(QUITTER).close()  # leaves without trying: a noauth penalty, 127.0.0.11 only
    with gevent.Timeout(20, AssertionError(f"no penalty: {first.log()}")):
        while f"penalty: {QUITTER}/32 refused" not in first.log():  # bounded by the timeout
            gevent.sleep(0.05)
    assert fleet.ssh("true", source=QUITTER).returncode == 255  # refused (logged at DEBUG)
    assert fleet.ssh("echo client", source=CLIENT).stdout == b"client\n"
    hoarder = fleet.connect(CLIENT)  # unauthenticated, counted against 127.0.0.9
    try:
        refused = fleet.ssh("echo second", source=CLIENT)
        assert refused.returncode == 255, refused
        allowed = fleet.ssh("echo neighbour", source=NEIGHBOUR)
        assert allowed.returncode == 0 and allowed.stdout == b"neighbour\n", allowed
        text = first.log()
        assert f"drop connection from {CLIENT}:" in text  # PerSourceMaxStartups, real address
        fleet.assert_checks_harmless()
    finally:
        hoarder.close()


def test_probes_without_a_header_are_not_failures(fleet: Fleet) -> None:
    """A probe from the balancer that connects and closes (FIN or RST) before any byte.

    HAProxy's own plain TCP checks (no PROXY header: ``check port``) are
    half-open and never reach accept(); other monitors complete the handshake.
    """
    fleet.start("send-proxy-v2 check port {port} inter 50ms fall 1 rise 1")
    for node, address in zip(fleet.nodes, NODES, strict=True):
        for linger in (False, True):
            probe = gevent.socket.create_connection((address, node.port), 20, (BALANCER, 0))
            if linger:  # close with a RST
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            probe.close()
    assert _lands(fleet, 2) == set(NODES)  # behind the probes in each node's accept queue
    fleet.assert_checks_harmless(checks=0)  # half-open checks: the witness sees none either


# -- the same rules in process, without HAProxy ------------------------------------------


def test_balancer_own_connections_are_not_counted_or_penalised(keydir: Path) -> None:
    """v2 LOCAL and v1 naming its own ends: not in MaxStartups, never penalised."""
    server = make_server(
        keydir, proxy_from=[BALANCER], max_startups="1", per_source_penalties="noauth:30s"
    )
    server.start()
    opened: list[Any] = []

    def connect(header: Any) -> Any:
        sock = gevent.socket.create_connection((BALANCER, server.port), 20, (BALANCER, 0))
        opened.append(sock)
        sock.sendall(header(sock) if callable(header) else header)
        with gevent.Timeout(20, AssertionError("no banner")):
            assert sock.recv(8) == b"SSH-2.0-"
        return sock

    try:
        connect(build_v2(None))  # HAProxy's v2 check: LOCAL
        connect(lambda s: build_v1(s.getsockname(), s.getpeername()))  # its v1 check
        assert server.unauthenticated == 0
        connect(build_v1(("203.0.113.5", 4000), ("198.51.100.1", 22)))  # a relayed client
        assert server.unauthenticated == 1  # MaxStartups 1 still let it in
        for sock in opened:
            sock.close()
        with gevent.Timeout(20, AssertionError(f"still open: {server.statistics()}")):
            while server.connections:  # bounded by the timeout
                gevent.sleep(0.01)
        assert server.sources.penalised(server.clock()).keys() == {"203.0.113.5/32"}
    finally:
        server.stop(timeout=1)
