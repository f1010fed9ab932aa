"""``geossh.metrics`` labels stay bounded, audit values are escaped, JSON lines are one object."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from geossh._facade.observer import Observer, Observers
from geossh.runner.audit import AuditLog, format_value
from geossh.runner.logformat import JsonFormatter

prometheus = pytest.importorskip("prometheus_client")


class _Pump:
    bytes_in, bytes_out = 300, 200


class _Transport:
    _conn_id = 9
    _pump = _Pump()
    initial_kex_done = True
    close_reason = ""
    saved_exception = None
    crashed = False

    def __init__(self) -> None:
        self._started_at = time.monotonic()

    def getpeername(self) -> tuple[str, int]:
        return ("192.0.2.7", 40000)

    def get_username(self) -> str:
        return "eve\x1b[2J"

    def outcome(self) -> str:
        return "authfail"


class _Channel:
    def __init__(self, kind: str) -> None:
        self.kind, self.chanid = kind, 3
        self._exit_sent: Any = None
        self._bytes_in = self._bytes_out = 0


def test_peer_invented_names_become_other() -> None:
    from geossh.runner.metrics import Metrics

    registry = prometheus.CollectorRegistry()
    metrics = Metrics(registry)
    transport = _Transport()
    metrics.opened(transport)
    metrics.auth(transport, "eve", "evil-method\n", "refused", {"rejected": "unsupported method"})
    metrics.auth(transport, "eve", "none", "refused", {})
    channel = _Channel("session")
    metrics.channel_opened(transport, channel)
    metrics.session_started(transport, channel, "made-up", None)
    metrics.channel_closed(transport, channel)
    metrics.closed(transport)
    metrics._flusher.kill()  # the bytes flusher the first connection started
    get = registry.get_sample_value
    assert get("geossh_auth_failures_total", {"method": "other"}) == 1
    assert get("geossh_auth_failures_total", {"method": "none"}) is None
    assert get("geossh_sessions_total", {"kind": "other"}) == 1
    assert get("geossh_sessions_open", {"kind": "other"}) == 0
    assert get("geossh_channels_open") == 0 and get("geossh_connections_open") == 0
    assert get("geossh_connections_total", {"outcome": "authfail"}) == 1
    assert get("geossh_received_bytes_total") == 300 and get("geossh_sent_bytes_total") == 200


def test_audit_values_are_escaped_and_quoted() -> None:
    assert format_value("alice") == "alice"
    assert format_value("a b") == '"a b"'
    assert format_value('x"y=z') == '"x\\x22y=z"'
    assert format_value("line\nforged=1") == '"line\\x0aforged=1"'
    assert format_value("") == '""'
    assert format_value(True) == "true" and format_value(5) == "5"


def test_json_lines_carry_the_audit_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "geossh.audit")
    transport, channel = _Transport(), _Channel("session")
    AuditLog().session_started(transport, channel, "exec", b"echo \x1b]0;pwned\x07\nnext")
    (record,) = [r for r in caplog.records if r.name == "geossh.audit"]
    line = JsonFormatter().format(record)
    assert "\n" not in line and "\x1b" not in line
    item = json.loads(line)
    assert item["event"] == "session" and item["result"] == "start" and item["conn"] == 9
    assert item["command"] == "echo \\x1b]0;pwned\\x07\\x0anext"
    assert item["user"] == "eve\\x1b[2J" and item["client"] == "192.0.2.7"
    assert item["logger"] == "geossh.audit" and item["level"] == "INFO"
    assert item["message"].startswith("session start: kind=exec channel=3 command=")


def test_a_failing_observer_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    class Broken(Observer):
        def opened(self, transport: Any) -> None:
            raise RuntimeError("boom")

    class Recorder(Observer):
        def opened(self, transport: Any) -> None:
            seen.append("opened")

    Observers([Broken(), Recorder()]).opened(_Transport())
    assert seen == ["opened"]
    assert "observer Broken.opened failed" in caplog.text
