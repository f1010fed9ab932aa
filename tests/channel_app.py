"""A richer test application for the channel tests (on top of ``tests.support``).

``ChannelApp`` extends ``TestServer`` with what the connection-protocol tests
need: it records every session request in callback order, answers
keepalives, signals and breaks, registers an ``echo`` subsystem, and knows
extra exec commands (``signal``, ``modes``, ``keepalives``, ``chanping``,
``agent``, ``openx11``, ``stall``, ``waitsignal``). ``use_channel_app``
installs it on a ``ServerHarness``.
"""

from __future__ import annotations

import hashlib
import shlex
import struct
from typing import Any

import gevent
import gevent.select
from gevent.event import Event

import geossh
from geossh._facade.channel import Channel
from geossh.services.pty import decode_modes
from tests.support import ServerHarness, TestServer, run_command


class EchoSubsystem(geossh.SubsystemHandler):
    """The ``echo`` subsystem: sends back what it reads until EOF."""

    def start_subsystem(self, name: str, transport: geossh.Transport, channel: Channel) -> None:
        channel.sendall(b"echo subsystem ready\n")
        while data := channel.recv(65536):
            channel.sendall(data)
        channel.send_exit_status(0)


class ChannelApp(TestServer):
    """``TestServer`` plus recording and the extra commands of the channel tests."""

    def __init__(self, harness: ServerHarness) -> None:
        super().__init__(harness)
        self.requests: list[tuple[Any, ...]] = []
        self.keepalives = 0
        self.changed = Event()  # pulsed on every recorded request
        self.signals: dict[int, list[str]] = {}
        self.release = Event()  # lets ``stall`` start reading
        self.state_reports: list[str] = []  # the ``states`` command's flags

    def _record(self, *item: Any) -> None:
        self.requests.append(item)
        changed, self.changed = self.changed, Event()
        changed.set()

    def wait_for(self, predicate: Any) -> None:
        """Block until ``predicate()`` holds (re-checked on every request)."""
        while not predicate():
            self.changed.wait()

    def check_channel_request(self, kind: str, chanid: int) -> int:
        self._record("open", kind, chanid)
        if kind in ("session", "geossh-test@example.com"):
            return geossh.OPEN_SUCCEEDED
        return geossh.OPEN_FAILED_UNKNOWN_CHANNEL_TYPE

    def check_global_request(self, kind: str, msg: geossh.Message) -> bool:
        if kind == "keepalive@openssh.com":
            self.keepalives += 1
        self._record("global", kind)
        return False  # like sshd: keepalives get REQUEST_FAILURE, which is an answer

    def check_channel_pty_request(self, channel: Channel, term: bytes, w: int, h: int,
                                  pw: int, ph: int, modes: bytes) -> bool:  # fmt: skip
        self._record("pty-req", term, w, h, pw, ph, decode_modes(modes))
        return super().check_channel_pty_request(channel, term, w, h, pw, ph, modes)

    def check_channel_window_change_request(
        self, channel: Channel, w: int, h: int, pw: int, ph: int
    ) -> bool:
        self._record("window-change", w, h, pw, ph)
        return True

    def check_channel_env_request(self, channel: Channel, name: bytes, value: bytes) -> bool:
        self._record("env", name, value)
        return super().check_channel_env_request(channel, name, value)

    def check_channel_shell_request(self, channel: Channel) -> bool:
        self._record("shell")
        return super().check_channel_shell_request(channel)

    def check_channel_subsystem_request(self, channel: Channel, name: str) -> bool:
        self._record("subsystem", name)
        return super().check_channel_subsystem_request(channel, name)

    def check_channel_x11_request(self, channel: Channel, single: bool, protocol: str,
                                  cookie: bytes, screen: int) -> bool:  # fmt: skip
        self._record("x11-req", single, protocol, cookie, screen)
        return True

    def check_channel_forward_agent_request(self, channel: Channel) -> bool:
        self._record("auth-agent-req")
        return True

    def check_channel_signal_request(self, channel: Channel, name: str) -> bool:
        self.signals.setdefault(channel.get_id(), []).append(name)
        self._record("signal", name)
        return True

    def check_channel_break_request(self, channel: Channel, length: int) -> bool:
        self._record("break", length)
        return True

    def check_channel_exec_request(self, channel: Channel, command: bytes) -> bool:
        self._record("exec", command)
        argv = shlex.split(command.decode())
        if argv and argv[0] in EXTRA_COMMANDS:
            gevent.spawn(_run_extra, self, channel, argv)
            return True
        gevent.spawn(run_command, self, channel, command)
        return True


def _finish(channel: Channel, text: str, status: int = 0) -> None:
    channel.sendall(text.encode() + b"\n")
    channel.send_exit_status(status)
    channel.close()


def _cmd_signal(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    channel.sendall(b"about to die\n")
    channel.send_exit_signal(args[0], False, "killed by a test", "en")
    channel.close()


def _cmd_modes(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    assert app.pty is not None
    _finish(channel, repr(sorted(decode_modes(app.pty[3]).items(), key=str)))


def _cmd_keepalives(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    app.wait_for(lambda: app.keepalives >= int(args[0]))
    _finish(channel, f"saw {app.keepalives} keepalives")


def _cmd_chanping(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    reply = channel.send_request("keepalive@openssh.com", want_reply=True, timeout=30)
    _finish(channel, f"reply={reply}")


def _cmd_agent(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    agent = channel.get_transport().open_forward_agent_channel()
    agent.sendall(struct.pack(">IB", 1, 11))  # SSH2_AGENTC_REQUEST_IDENTITIES
    header = agent.makefile("rb").read(9)
    _, kind, count = struct.unpack(">IBI", header)
    agent.close()
    _finish(channel, f"agent answered type {kind} with {count} key(s)")


def _cmd_openx11(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    try:
        channel.get_transport().open_x11_channel(("127.0.0.1", 6010))
    except geossh.ChannelException as exc:
        _finish(channel, f"ChannelException {exc.code}")
        return
    _finish(channel, "opened", 1)


def _cmd_opensession(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    try:
        channel.get_transport().open_session(timeout=30)
    except geossh.ChannelException as exc:
        _finish(channel, f"ChannelException {exc.code}")
        return
    _finish(channel, "opened", 1)


def _cmd_acceptq(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    """Drain the accept queue: the ids of the channels the client opened, in order."""
    transport = channel.get_transport()
    ids = []
    while (accepted := transport.accept(timeout=0)) is not None:
        ids.append(accepted.get_id())
    _finish(channel, f"accepted {ids} then {transport.accept(timeout=0.01)}")


def _cmd_stall(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    app.release.wait()
    total = 0
    while data := channel.recv(1 << 20):
        total += len(data)
    _finish(channel, f"read {total}")


def _cmd_waitsignal(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    channel.sendall(b"waiting\n")
    app.wait_for(lambda: app.signals.get(channel.get_id()))
    _finish(channel, f"got {app.signals[channel.get_id()][0]}")


def _flags(channel: Channel) -> str:
    return "active={} closed={} eof_received={} eof_sent={}".format(
        *(bool(flag) for flag in (channel.active, channel.closed,
                                  channel.eof_received, channel.eof_sent))
    )  # fmt: skip


def _cmd_states(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    """Report paramiko's channel flags as the client sends EOF and closes (then ``laststate``)."""
    channel.sendall(f"{_flags(channel)}\n".encode())
    while channel.recv(1024):
        pass
    channel.sendall(f"{_flags(channel)}\n".encode())
    channel.shutdown_write()
    sent = _flags(channel)
    channel.status_event.wait(20)  # set when the client's CLOSE arrives
    app.state_reports.append(sent)
    app.state_reports.append(_flags(channel))
    app._record("states done")


def _cmd_laststate(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    app.wait_for(lambda: len(app.state_reports) >= 2)
    _finish(channel, " | ".join(app.state_reports))


def _cmd_lines(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    """Upper-case text lines (text-mode iteration), count them on stderr, EOF via stdin file."""
    out = channel.makefile("w")
    count = 0
    for line in channel.makefile("rU"):
        assert isinstance(line, str)
        out.write(line.upper())
        count += 1
    out.flush()
    channel.makefile_stderr("w").write(f"{count} lines\n")
    channel.makefile_stdin("w").close()  # shuts down writing: the client sees EOF
    channel.send_exit_status(0)
    channel.close()


def _cmd_binlines(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    """Binary readline with a size limit, then read() to EOF."""
    stream = channel.makefile("rb")
    first = stream.readline()
    limited = stream.readline(4)
    rest = stream.read()
    _finish(channel, repr((first, limited, len(rest), hashlib.sha256(rest).hexdigest())))


def _cmd_timeouts(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    results = []
    channel.settimeout(0.0)
    try:
        channel.recv(10)
        results.append("data")
    except TimeoutError:
        results.append("timeout")
    results.append(repr(channel.gettimeout()))
    channel.setblocking(True)
    results.append(repr(channel.gettimeout()))
    channel.setblocking(False)
    results.append(repr(channel.gettimeout()))
    channel.settimeout(30)
    channel.sendall(b"ready\n")
    results.append(channel.recv(10).decode())
    results.append(repr((channel.recv_ready(), channel.recv_stderr_ready(), channel.send_ready())))
    _finish(channel, " ".join(results))


def _cmd_stderrin(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    """Read the client's stderr stream, then merge it into stdout."""
    first = channel.recv_stderr(100)
    previous = channel.set_combine_stderr(True)
    channel.sendall(b"ok\n")
    data = b""
    while chunk := channel.recv(100):
        data += chunk
    _finish(channel, repr((first, previous, data)))


def _cmd_select(app: ChannelApp, channel: Channel, args: list[str]) -> None:
    results = [len(gevent.select.select([channel], [], [], 0)[0])]
    channel.sendall(b"ready\n")
    results.append(len(gevent.select.select([channel], [], [], 30)[0]))
    channel.recv(100)
    results.append(len(gevent.select.select([channel], [], [], 0)[0]))
    channel.sendall(f"drained {results}\n".encode())
    results.append(len(gevent.select.select([channel], [], [], 30)[0]))
    results.append(len(channel.recv(100)))
    _finish(channel, f"select {results}")


EXTRA_COMMANDS = {
    "lines": _cmd_lines,
    "binlines": _cmd_binlines,
    "timeouts": _cmd_timeouts,
    "select": _cmd_select,
    "stderrin": _cmd_stderrin,
    "signal": _cmd_signal,
    "modes": _cmd_modes,
    "keepalives": _cmd_keepalives,
    "chanping": _cmd_chanping,
    "agent": _cmd_agent,
    "openx11": _cmd_openx11,
    "opensession": _cmd_opensession,
    "acceptq": _cmd_acceptq,
    "stall": _cmd_stall,
    "states": _cmd_states,
    "laststate": _cmd_laststate,
    "waitsignal": _cmd_waitsignal,
}


def _run_extra(app: ChannelApp, channel: Channel, argv: list[str]) -> None:
    EXTRA_COMMANDS[argv[0]](app, channel, argv[1:])


def use_channel_app(server: ServerHarness) -> ServerHarness:
    """Serve ``ChannelApp`` (with the ``echo`` subsystem) on ``server``."""
    previous = server.configure

    def configure(transport: geossh.Transport) -> None:
        previous(transport)
        transport.set_subsystem_handler("echo", EchoSubsystem)

    interface = server.interface
    if not (isinstance(interface, type) and issubclass(interface, ChannelApp)):
        server.interface = ChannelApp  # keep a ChannelApp subclass a test installed
    server.configure = configure
    return server.start()


def app_of(server: ServerHarness, index: int = 0) -> ChannelApp:
    """The ``ChannelApp`` of the ``index``-th connection."""
    app = server.servers[index]
    assert isinstance(app, ChannelApp)
    return app
