"""Where a geossh server's CPU goes, by phase: thread CPU time around named functions.

``python -m benchmarks.conn_profile --phases P`` sets ``GEOSSH_BENCH_PHASES``;
the geossh benchmark servers then call ``install`` before serving. Each
phase's time is *exclusive* (a phase nested in another is taken out of its
parent), measured with ``time.thread_time_ns`` (user + system of the
server's one thread, so a system call counts where it is made), and the
rest of the process CPU is reported as "other". Unlike a profiler, only
these calls are timed (about 1 µs each, ~150 per connection): the
per-phase split is right to a few percent, without cProfile's per-call
distortion or a sampler's attribution to the next frame.

SIGUSR1 starts the counts afresh (the harness leaves its warm-up out);
SIGTERM writes ``{"total_ns", "phases": {label: [ns, calls]}}`` as JSON.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import time
import weakref
from collections.abc import Callable
from typing import Any

import gevent
import greenlet

PHASES_ENV = "GEOSSH_BENCH_PHASES"
HUB = "hub: epoll, libev, untimed callbacks"
UNTIMED = "other greenlets' untimed code"

#: (module, class, method, label): the phases, in the order of the table.
PHASES = [
    ("gevent.baseserver", "BaseServer", "_do_read", "accept a connection (gevent)"),
    ("geossh._facade.transport", "Transport", "__init__", "Transport()"),
    ("geossh._facade.transport", "Transport", "start_server", "start_server"),
    ("geossh._facade.transport", "Transport", "_shutdown", "close the connection"),
    ("geossh._green.pump", "SocketPump", "run", "pump: read loop, waits, wake-ups"),
    ("geossh._green.pump", "SocketPump", "_read_nowait", "recv + hand to the core"),
    ("geossh._green.pump", "SocketPump", "_deferred_flush", "send"),
    ("geossh._green.pump", "SocketPump", "_write", "send (blocking writer)"),
    ("geossh.proto.connection", "Connection", "next_event", "core: protocol logic"),
    ("geossh.proto.packet", "PacketReader", "next_packet", "core: packet decode + decrypt"),
    ("geossh.proto.packet", "PacketWriter", "queue", "core: packet encode + encrypt"),
    ("geossh.proto.transport", "TransportLayer", "_on_kexinit", "core: KEXINIT, negotiation"),
    ("geossh.proto.kex.base", "ServerKex", "receive", "core: key exchange (X25519, hash)"),
    ("geossh.proto.keys", "SSHKey", "sign", "core: host-key signature"),
    ("geossh.proto.keys", "SSHKey", "verify", "core: user-key verification"),
    ("geossh.proto.transport", "TransportLayer", "_finish_kex", "core: derive + install keys"),
    ("geossh.proto.transport", "TransportLayer", "_on_newkeys", "core: derive + install keys"),
    ("geossh._facade.dispatch", "EventDispatcher", "_dispatch", "facade: events, callbacks"),
    ("geossh._facade.transport", "Transport", "accept", "facade: accept()"),
    ("geossh._facade.channel", "Channel", "sendall", "facade: Channel calls"),
    ("geossh._facade.channel", "Channel", "send_exit_status", "facade: Channel calls"),
    ("geossh._facade.channel", "Channel", "close", "facade: Channel calls"),
    ("threading", "Thread", "start", "application: threads started"),
]


class _Clock:
    """Exclusive thread-CPU accounting per greenlet.

    Every entry to and exit from a timed call and every greenlet switch
    charges the thread CPU since the previous such moment to the innermost
    phase open in the greenlet that was running (the hub's own time, with
    none open, to ``HUB``; any other greenlet's to ``UNTIMED``), so a
    greenlet that waits inside a phase is not charged for what others did
    meanwhile.
    """

    def __init__(self, tick: Callable[[], int] = time.thread_time_ns) -> None:
        self.spent: dict[str, list[int]] = {}
        self.started = time.process_time_ns()
        self._tick = tick
        self._last = tick()
        self._stacks: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()
        self._hub = gevent.get_hub()
        self._stack = self._stack_of(greenlet.getcurrent())
        self._previous_trace = greenlet.settrace(self._on_switch)

    def close(self) -> None:
        """Stop following greenlet switches."""
        greenlet.settrace(self._previous_trace)

    def _stack_of(self, glet: Any) -> list[str]:
        stack = self._stacks.get(glet)
        if stack is None:
            stack = [HUB if glet is self._hub else UNTIMED]
            self._stacks[glet] = stack
        return stack

    def _charge(self) -> None:
        now = self._tick()
        entry = self.spent.setdefault(self._stack[-1], [0, 0])
        entry[0] += now - self._last
        self._last = now

    def _on_switch(self, event: str, args: tuple[Any, Any]) -> None:
        if event in ("switch", "throw"):  # args: (origin, target)
            self._charge()
            self._stack = self._stack_of(args[1])

    def reset(self) -> None:
        self.spent.clear()
        self.started = time.process_time_ns()
        self._last = self._tick()

    def timed(self, label: str, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self._charge()
            stack = self._stack
            stack.append(label)
            self.spent.setdefault(label, [0, 0])[1] += 1
            try:
                return func(*args, **kwargs)
            finally:
                self._charge()
                stack.pop()

        return wrapper

    def report(self) -> dict[str, Any]:
        self._charge()
        return {"total_ns": time.process_time_ns() - self.started, "phases": self.spent}


def install(path: str) -> None:
    """Time the ``PHASES``; write the counts to ``path`` at SIGTERM."""
    clock = _Clock()
    for module_name, cls_name, method, label in PHASES:
        module = importlib.import_module(module_name)
        cls = getattr(module, cls_name)
        original = getattr(cls, method)
        timed = clock.timed(label, original)
        setattr(cls, method, timed)
        for table in [v for v in vars(module).values() if isinstance(v, dict)]:
            for key, value in table.items():  # dispatch tables built at import
                if value is original:
                    table[key] = timed

    def stop(signum: int, frame: Any) -> None:
        with open(path, "w") as fh:
            json.dump(clock.report(), fh)
        os._exit(0)

    signal.signal(signal.SIGUSR1, lambda signum, frame: clock.reset())
    signal.signal(signal.SIGTERM, stop)


def table(path: str, connections: int) -> str:
    """The phases of one server's counts, per connection, largest first."""
    with open(path) as fh:
        data = json.load(fh)
    total = data["total_ns"] / connections / 1e3
    rows = sorted(data["phases"].items(), key=lambda kv: -kv[1][0])
    lines = [f"{'µs/conn':>9} {'share':>6} {'calls':>6}  phase (exclusive thread CPU)"]
    counted = 0.0
    for label, (ns, calls) in rows:
        each = ns / connections / 1e3
        counted += each
        lines.append(f"{each:9.1f} {each / total:6.1%} {calls / connections:6.1f}  {label}")
    other = total - counted
    lines.append(f"{other:9.1f} {other / total:6.1%} {'':6}  other threads, signal handlers")
    lines.append(f"{total:9.1f} {1:6.1%} {'':6}  process CPU per connection")
    return "\n".join(lines)
