"""OpenSSH ``ssh`` forwards through geossh's ready-made ForwardingServer.

-L (TCP and Unix destination), -R (fixed port, port 0, Unix listener), -D
with a SOCKS5 client, -A with a real ssh-agent used by the server, an X11
channel checked at the protocol level, policy refusals, and teardown when
the SSH connection ends. Each forward type moves 100 MiB with a checksum.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import gevent.subprocess
import pytest

import geossh
from geossh._facade.channel import Channel
from geossh.services.agent import AgentServerProxy
from tests.conftest import require
from tests.forward_support import (
    DigestServer,
    ForwardTestServer,
    MiB,
    connect_when_ready,
    download,
    expected_digest,
    free_port,
    live_greenlets,
    make_policy,
    open_fds,
    session_of,
    socks5_connect,
    ssh_process,
    upload,
    wait_until,
    warm_up,
)
from tests.support import ServerHarness, _finish

pytestmark = pytest.mark.interop

TRANSFER = 100 * MiB
ROOT = Path(__file__).resolve().parents[2]


class ForwardServer(ForwardTestServer):
    """ForwardTestServer plus the agent and X11 probes below."""

    __test__ = False

    def check_channel_exec_request(self, channel: Channel, command: bytes) -> bool:
        probes = {b"agent-test": agent_probe, b"x11-test": x11_probe}
        if command in probes:
            gevent.spawn(probes[command], self, channel)
            return True
        return super().check_channel_exec_request(channel, command)


@pytest.fixture
def fwd(server: ServerHarness, tmp_path: Path) -> ServerHarness:
    """The harness serving ForwardServer with ``make_policy``."""
    require("ssh")
    server.interface = lambda harness: ForwardServer(harness, make_policy(tmp_path))
    return server.start()


def ssh_forward(server: ServerHarness, *options: str) -> list[str]:
    """argv of ``ssh -N`` with the given forwarding options."""
    return server.ssh_command(
        options=["-N", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", *options]
    )


def report(label: str, total: int, seconds: float) -> None:
    """Print the throughput (visible with ``pytest -s``)."""
    rate = total / MiB / seconds
    print(f"\n{label}: {total / MiB:.0f} MiB in {seconds:.2f} s = {rate:.0f} MiB/s")


def check_upload(sock: Any, label: str, total: int = TRANSFER) -> None:
    """Upload ``total`` bytes through ``sock`` to a sink; the checksum must match."""
    start = time.monotonic()
    digest, count = upload(sock, total)
    report(label, total, time.monotonic() - start)
    assert count == total
    assert digest == expected_digest(total)


def check_download(sock: Any, label: str, total: int = TRANSFER) -> None:
    """Download ``total`` bytes through ``sock`` from a source; the checksum must match."""
    start = time.monotonic()
    digest, count = download(sock, total)
    report(label, total, time.monotonic() - start)
    assert count == total
    assert digest == expected_digest(total)


# -- local forwarding ---------------------------------------------------------------


def test_local_forward_tcp(fwd: ServerHarness) -> None:
    dest = DigestServer()
    port = free_port()
    try:
        with ssh_process(ssh_forward(fwd, "-L", f"{port}:127.0.0.1:{dest.port}")):
            check_upload(connect_when_ready(("127.0.0.1", port)), "ssh -L upload")
            check_download(connect_when_ready(("127.0.0.1", port)), "ssh -L download", 4 * MiB)
    finally:
        dest.stop()


def test_local_forward_to_unix_socket(fwd: ServerHarness, tmp_path: Path) -> None:
    dest = DigestServer(str(tmp_path / "dest.sock"))
    port = free_port()
    try:
        with ssh_process(ssh_forward(fwd, "-L", f"{port}:{dest.path}")):
            check_upload(connect_when_ready(("127.0.0.1", port)), "ssh -L to a Unix socket")
    finally:
        dest.stop()


def test_dynamic_forward_socks5(fwd: ServerHarness) -> None:
    dest = DigestServer()
    port = free_port()
    try:
        rekey = ("-o", "RekeyLimit=16M")  # several client-initiated re-keys on the way
        with ssh_process(ssh_forward(fwd, *rekey, "-D", f"127.0.0.1:{port}")):
            check_download(socks5_connect(port, "127.0.0.1", dest.port), "ssh -D (SOCKS5)")
    finally:
        dest.stop()


def test_local_forward_refused_by_policy(fwd: ServerHarness) -> None:
    port = free_port()
    with ssh_process(ssh_forward(fwd, "-v", "-L", f"{port}:192.0.2.1:80")) as ssh:
        sock = connect_when_ready(("127.0.0.1", port))
        assert sock.recv(100) == b""  # ssh closes it: the open failed
        sock.close()
        ssh.wait_for_line(r"open failed: administratively prohibited")


def test_local_forward_connect_refused(fwd: ServerHarness) -> None:
    port, closed_port = free_port(), free_port()
    with ssh_process(ssh_forward(fwd, "-v", "-L", f"{port}:127.0.0.1:{closed_port}")) as ssh:
        sock = connect_when_ready(("127.0.0.1", port))
        assert sock.recv(100) == b""
        sock.close()
        ssh.wait_for_line(r"open failed: connect failed: Connection refused")


# -- remote forwarding --------------------------------------------------------------


def test_remote_forward_fixed_port(fwd: ServerHarness) -> None:
    fwd.configure = lambda transport: setattr(transport, "rekey_bytes", 16 * MiB)  # server re-keys
    dest = DigestServer()
    port = free_port()
    try:
        with ssh_process(ssh_forward(fwd, "-R", f"{port}:127.0.0.1:{dest.port}")):
            session = session_of(fwd)
            wait_until(lambda: ("localhost", port) in session.listeners, what="the listener")
            check_upload(connect_when_ready(("127.0.0.1", port)), "ssh -R upload")
    finally:
        dest.stop()


def test_remote_forward_port_zero(fwd: ServerHarness) -> None:
    dest = DigestServer()
    try:
        with ssh_process(ssh_forward(fwd, "-v", "-R", f"0:127.0.0.1:{dest.port}")) as ssh:
            match = ssh.wait_for_line(r"Allocated port (\d+) for remote forward")
            port = int(match.group(1))
            assert list(session_of(fwd).listeners) == [("localhost", port)]
            check_download(connect_when_ready(("127.0.0.1", port)), "ssh -R 0 download")
    finally:
        dest.stop()


def test_remote_forward_unix_socket(fwd: ServerHarness, tmp_path: Path) -> None:
    dest = DigestServer()
    path = str(tmp_path / "remote.sock")
    try:
        with ssh_process(ssh_forward(fwd, "-R", f"{path}:127.0.0.1:{dest.port}")):
            wait_until(lambda: path in session_of(fwd).listeners, what="the Unix listener")
            assert os.stat(path).st_mode & 0o777 == 0o600
            check_upload(connect_when_ready(path), "ssh -R from a Unix socket")
        wait_until(lambda: not os.path.exists(path), what="the socket file to go")
    finally:
        dest.stop()


def _stale_socket(path: str) -> None:
    """A socket file nobody listens on (left behind by a crashed server)."""
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()


@pytest.mark.parametrize("unlink", [False, True])
def test_remote_forward_unix_stale_socket(
    server: ServerHarness, tmp_path: Path, unlink: bool
) -> None:
    """sshd's StreamLocalBindUnlink: off, a stale socket file refuses ``ssh -R /path``;
    on, it is replaced. A regular file is never removed."""
    require("ssh")
    policy = make_policy(tmp_path, stream_local_bind_unlink=unlink)
    server.interface = lambda harness: ForwardServer(harness, policy)
    server.start()
    dest = DigestServer()
    path = str(tmp_path / "stale.sock")
    _stale_socket(path)
    try:
        with ssh_process(ssh_forward(server, "-R", f"{path}:127.0.0.1:{dest.port}")) as ssh:
            if not unlink:
                ssh.wait_for_line(r"remote port forwarding failed")
                wait_until(lambda: ssh.proc.poll() is not None, what="ssh to exit")
                return
            wait_until(lambda: path in session_of(server).listeners, what="the Unix listener")
            check_upload(connect_when_ready(path), "ssh -R over a stale socket")
        regular = tmp_path / "regular.sock"
        regular.write_text("keep me")
        argv = ssh_forward(server, "-R", f"{regular}:127.0.0.1:{dest.port}")
        with ssh_process(argv) as ssh:
            ssh.wait_for_line(r"remote port forwarding failed")
        assert regular.read_text() == "keep me"
    finally:
        dest.stop()


def test_remote_forward_privileged_port_refused(fwd: ServerHarness) -> None:
    with ssh_process(ssh_forward(fwd, "-R", "80:127.0.0.1:9")) as ssh:
        ssh.wait_for_line(r"remote port forwarding failed for listen port 80")
        wait_until(lambda: ssh.proc.poll() is not None, what="ssh to exit")
    assert session_of(fwd).listeners == {}


def test_remote_forward_disallowed_address_refused(fwd: ServerHarness) -> None:
    with ssh_process(ssh_forward(fwd, "-R", "192.0.2.1:2222:127.0.0.1:9")) as ssh:
        ssh.wait_for_line(r"remote port forwarding failed for listen port 2222")


# -- agent forwarding (ssh -A) ---------------------------------------------------------


def agent_probe(server: ForwardServer, channel: Channel) -> None:
    """Sign with every forwarded key, list them via SSH_AUTH_SOCK, and hop onwards."""
    data, lines = b"geossh agent test", []
    with AgentServerProxy(channel.get_transport()) as agent:
        agent.connect()
        for key in agent.get_keys():
            algorithm = "rsa-sha2-512" if key.get_name() == "ssh-rsa" else None
            signature = key.sign_ssh_data(data, algorithm)
            signed_as = geossh.Message(signature).get_text()
            public = [k for k in server.harness.authorized_keys if k == key]
            ok = bool(public) and public[0].verify_ssh_sig(data, geossh.Message(signature))
            lines.append(f"key {key.get_name()} {key.comment} {signed_as} {ok}")
        env = {**os.environ, **agent.get_env()}
        listed = gevent.subprocess.run(["ssh-add", "-l"], env=env, capture_output=True)
        lines.append(f"ssh-add {listed.returncode} {listed.stdout.count(b'SHA256:')}")
        argv = server.harness.ssh_command("echo", "hop", key=None, options=["-o", "BatchMode=yes"])
        hop = gevent.subprocess.run(argv, env=env, capture_output=True, timeout=30)
        lines.append(f"hop {hop.stdout.decode().strip()} {hop.stderr.decode().strip()}")
    channel.sendall("\n".join(lines).encode() + b"\n")
    _finish(channel, 0)


def test_agent_forwarding_server_signs_with_client_agent(
    fwd: ServerHarness, tmp_path: Path
) -> None:
    require("ssh-agent")
    require("ssh-add")
    agent_sock = str(tmp_path / "agent.sock")
    agent = gevent.subprocess.Popen(
        ["ssh-agent", "-D", "-a", agent_sock],
        stdout=gevent.subprocess.DEVNULL,
        stderr=gevent.subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: os.path.exists(agent_sock), what="ssh-agent's socket")
        env = {**os.environ, "SSH_AUTH_SOCK": agent_sock}
        keys = [str(fwd.keydir / "user_ed25519"), str(fwd.keydir / "user_rsa")]
        gevent.subprocess.run(["ssh-add", "-q", *keys], env=env, check=True, timeout=20)
        argv = fwd.ssh_command("agent-test", options=["-A", "-o", "BatchMode=yes"])
        result = gevent.subprocess.run(argv, env=env, capture_output=True, timeout=40)
    finally:
        agent.kill()
        agent.wait()
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert "key ssh-ed25519 user_ed25519 ssh-ed25519 True" in out, out  # comment from ssh-keygen
    assert "key ssh-rsa user_rsa rsa-sha2-512 True" in out, out
    assert "ssh-add 0 2" in out, out
    assert "hop hop" in out, out  # ssh from the server authenticated with the forwarded agent
    assert fwd.servers[0].forwarding.agent_requested


# -- X11 ---------------------------------------------------------------------------------


def x11_setup(protocol: bytes, cookie: bytes) -> bytes:
    """An X11 connection setup request (little-endian) carrying ``protocol``/``cookie``."""

    def pad(data: bytes) -> bytes:
        return data + b"\0" * (-len(data) % 4)

    header = struct.pack("<BxHHHHxx", 0x6C, 11, 0, len(protocol), len(cookie))
    return header + pad(protocol) + pad(cookie)


def x11_probe(server: ForwardServer, channel: Channel) -> None:
    """Open x11 channels to the client: a wrong cookie is refused, the right one passes."""
    request = server.x11_request(channel)
    assert request is not None
    transport, lines = channel.get_transport(), []
    lines.append(f"request {request.auth_protocol} {len(request.auth_cookie)} "
                 f"{request.screen_number} {request.single_connection}")  # fmt: skip
    cookie = bytes.fromhex(request.auth_cookie.decode())
    protocol = request.auth_protocol.encode()
    for label, data in (("bad", bytes(len(cookie))), ("good", cookie)):
        x11 = transport.open_x11_channel(("127.0.0.1", 6010))
        x11.sendall(x11_setup(protocol, data))
        lines.append(f"{label} {x11.recv(100)!r}")
        x11.close()
    channel.sendall("\n".join(lines).encode() + b"\n")
    _finish(channel, 0)


class FakeXServer:
    """Listens on 127.0.0.1:6000+N; records each setup request and answers it."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        for display in range(20, 100):
            try:
                self.sock = gevent.socket.socket()
                self.sock.bind(("127.0.0.1", 6000 + display))
                break
            except OSError:
                self.sock.close()
        else:
            pytest.skip("no free X11 display port")
        self.display = display
        self.sock.listen(8)
        self.greenlet = gevent.spawn(self._serve)

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            data = b""
            while len(data) < 12 + 20 + 16:  # header + padded name + 16-byte cookie
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.received.append(data)
            conn.sendall(b"X11-SETUP-OK")
            conn.close()

    def stop(self) -> None:
        self.greenlet.kill()
        self.sock.close()


def test_x11_channel_open(fwd: ServerHarness, tmp_path: Path) -> None:
    xserver = FakeXServer()
    try:
        env = {
            **os.environ,
            "DISPLAY": f"127.0.0.1:{xserver.display}.0",
            "XAUTHORITY": str(tmp_path / "no-xauthority"),
        }
        argv = fwd.ssh_command("x11-test", options=["-Y", "-o", "BatchMode=yes"])
        result = gevent.subprocess.run(argv, env=env, capture_output=True, timeout=40)
    finally:
        xserver.stop()
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert "request MIT-MAGIC-COOKIE-1 32 0 False" in out, out
    assert "bad b''" in out, out  # ssh refused the wrong cookie and closed the channel
    assert "good b'X11-SETUP-OK'" in out, out
    setups = [data for data in xserver.received if data]  # ssh also connects for the bad one
    assert len(setups) == 1
    setup = setups[0]
    name_len, data_len = struct.unpack_from("<HH", setup, 6)
    assert setup[12 : 12 + name_len] == b"MIT-MAGIC-COOKIE-1"
    real_cookie = setup[32 : 32 + data_len]
    assert data_len == 16 and real_cookie not in out.encode()  # ssh swapped in its real cookie


# -- teardown -----------------------------------------------------------------------


@pytest.mark.parametrize("closer", ["client-exits", "server-closes"])
def test_connection_end_tears_every_forward_down(fwd: ServerHarness, closer: str) -> None:
    dest = DigestServer()
    lport, rport = free_port(), free_port()
    warm_up()
    baseline_fds, baseline_greenlets = open_fds(), live_greenlets()
    argv = ssh_forward(
        fwd, "-L", f"{lport}:127.0.0.1:{dest.port}", "-R", f"{rport}:127.0.0.1:{dest.port}"
    )
    try:
        with ssh_process(argv) as ssh:
            session = session_of(fwd)
            transport = fwd.transports[-1]
            wait_until(lambda: session.listeners, what="the remote listener")
            local = connect_when_ready(("127.0.0.1", lport))
            remote = connect_when_ready(("127.0.0.1", rport))
            for sock in (local, remote):
                sock.sendall(b"park\n")
            wait_until(lambda: dest.connections == 2 and session.channels == 2, what="forwards")
            if closer == "client-exits":
                ssh.proc.kill()
            else:
                transport.close()
            assert remote.recv(10) == b""  # the server closed its end of the -R connection
            wait_until(lambda: dest.eofs == 2, what="both destination sockets to close")
            wait_until(lambda: not transport.is_active(), what="the transport to end")
            assert session.closed and session.listeners == {} and session.channels == 0
            wait_until(lambda: len(session.greenlets) == 0, what="forward greenlets to end")
            wait_until(lambda: len(transport._handler_greenlets) == 0, what="handlers to end")
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", rport), timeout=5).close()
            for sock in (local, remote):
                sock.close()
    finally:
        dest.stop()
    fwd.stop()
    wait_until(lambda: open_fds() <= baseline_fds, what="file descriptors to be released")
    wait_until(lambda: live_greenlets() <= baseline_greenlets, what="greenlets to finish")


# -- examples/bastion.py, run as its own process -------------------------------------

BASTION = ROOT / "examples" / "bastion.py"


@pytest.fixture
def bastion(tmp_path: Path, keydir: Path, server: ServerHarness) -> Iterator[int]:
    """The example jump host on a free port; it may forward to the harness's port only."""
    require("ssh")
    server.start()

    def line(name: str, options: str = "") -> str:
        kind, blob = (keydir / f"{name}.pub").read_text().split()[:2]
        return f"{options}{kind} {blob} {name}\n"

    (tmp_path / "authorized_keys").write_text(
        line("user_ed25519") + line("user_ecdsa", 'permitopen="127.0.0.1:1" ')
    )
    argv = [sys.executable, str(BASTION), "--port", "0", "--host-key",
            str(keydir / "host_ed25519"), "--authorized-keys", str(tmp_path / "authorized_keys"),
            "--allow", f"127.0.0.1:{server.port}"]  # fmt: skip
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    with open(tmp_path / "bastion.log", "wb") as log:
        proc = gevent.subprocess.Popen(
            argv, stdout=gevent.subprocess.PIPE, stderr=log, env={**os.environ,
            "PYTHONPATH": pythonpath},
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert first.startswith("bastion listening on 127.0.0.1:"), first
        yield int(first.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()


def _jump(
    server: ServerHarness, tmp_path: Path, bastion: int, key: str, target: str
) -> subprocess.CompletedProcess[bytes]:
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        f"  LogLevel ERROR\n  BatchMode yes\n  IdentitiesOnly yes\n"
        f"  IdentityFile {server.keydir / key}\n"
    )
    argv = ["ssh", "-F", str(config), "-J", f"alice@127.0.0.1:{bastion}",
            "-p", str(server.port), f"alice@{target}", "echo", "via-bastion"]  # fmt: skip
    return gevent.subprocess.run(argv, capture_output=True, timeout=40)  # type: ignore[no-any-return]


def test_bastion_example_proxyjump(server: ServerHarness, tmp_path: Path, bastion: int) -> None:
    result = _jump(server, tmp_path, bastion, "user_ed25519", "127.0.0.1")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout == b"via-bastion\n"


def test_bastion_example_refusals(server: ServerHarness, tmp_path: Path, bastion: int) -> None:
    not_allowed = _jump(server, tmp_path, bastion, "user_ed25519", "127.0.0.2")
    narrowed = _jump(server, tmp_path, bastion, "user_ecdsa", "127.0.0.1")  # permitopen
    for result in (not_allowed, narrowed):
        assert result.returncode == 255
        assert b"stdio forwarding failed" in result.stderr, result.stderr  # the -W open failed
    log = (tmp_path / "bastion.log").read_text()
    assert "forward to 127.0.0.2" in log and "refused by the key's options" in log
    # An address pattern matches what a name resolves to: localhost reaches 127.0.0.1.
    by_name = _jump(server, tmp_path, bastion, "user_ed25519", "localhost")
    assert by_name.returncode == 0, by_name.stderr
