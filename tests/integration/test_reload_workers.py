"""Reload (SIGHUP) of a supervisor and its workers: failures, bursts, kills, SIGTERM.

The happy path with 20 sessions is ``test_reload.test_twenty_sessions_survive_five_reloads``
(``workers=2``). Same stand-in service manager and helpers as there: every
verdict comes from notify messages, log lines, /proc and what clients receive.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

from tests.conftest import require
from tests.integration.test_reload import (  # noqa: F401 (closing: a fixture)
    APP,
    Client,
    Service,
    Stream,
    children,
    closing,
    serve_cli,
)

#: A new generation's workers die as soon as they are forked.
CRASHING = "import os\nANSWER = 'crash'\nos.register_at_fork(after_in_child=lambda: os._exit(3))\n"
#: A new generation's workers hang once forked, until their supervisor is gone.
HANGING = """
import os, select
ANSWER = "stuck"

def hang():
    select.select([os.pidfd_open(os.getppid())], [], [])

os.register_at_fork(after_in_child=hang)
"""


def app(tmp_path: Path, keydir: Path, **env: str) -> tuple[Service, Path]:
    """The ``geossh.Server`` app of test_reload with 2 workers; its ``greeting`` module."""
    require("ssh")
    (tmp_path / "app.py").write_text(APP)
    greeting = tmp_path / "greeting.py"
    greeting.write_text('ANSWER = "v1"\n')
    argv = [str(tmp_path / "app.py"), str(keydir / "host_ed25519")]
    return Service(argv, WORKERS="2", **env), greeting


def greet(client: Client) -> tuple[str, int]:
    """(answer, pid of the worker that gave it) for a new connection."""
    result = client.run("greet")
    assert result.returncode == 0, result.stderr
    answer, pid = result.stdout.decode().rsplit(" ", 1)
    return answer, int(pid)


def failed_reload(service: Service) -> str:
    """SIGHUP; the STATUS of the failure (the old generation said it keeps serving)."""
    service.signal(signal.SIGHUP)
    failed = service.notify.next("READY")
    assert "MAINPID" not in failed, failed
    assert failed["STATUS"].endswith(f"(pid {service.main}, 2 workers)"), failed
    return failed["STATUS"]


def test_upgrade_with_workers_and_failed_ones_keep_the_old(
    tmp_path: Path,
    keydir: Path,
    closing: list[Any],  # noqa: F811
) -> None:
    """An import error, or workers dying at start: the old serves; then an upgrade works."""
    service, greeting = app(tmp_path, keydir)
    closing.append(service)
    first = service.start().main
    client = Client(keydir, service.port)
    hold = Stream(client, "hold")
    closing.append(hold)
    assert hold.first.startswith("v1 ") and int(hold.first.split()[1]) in children(first)
    greeting.write_text('raise ImportError("broken upgrade")\n')
    assert failed_reload(service).startswith("reload failed: new generation (pid ")
    assert "ImportError: broken upgrade" in service.text()
    assert greet(client)[0] == "v1"
    greeting.write_text(CRASHING)
    assert "exited before it was ready (status 1)" in failed_reload(service)
    assert re.search(
        r"worker \d \(pid \d+\) exited with status 3 before it was ready", service.text()
    )
    assert greet(client)[0] == "v1"
    hold.round()
    greeting.write_text('ANSWER = "version 2"\n')
    assert client.run("reload").stdout.endswith(b"\nTrue\n")  # Server.reload() in a worker
    second = int(service.notify.next("READY")["MAINPID"])
    service._adopt(second)
    service.wait_line("draining: ", count=2)
    answer, pid = greet(client)
    assert answer == "version 2" and pid in children(second)
    hold.round()  # the old code still serves the old session
    assert not service.exited(first, timeout=0)
    assert hold.end() == 0
    assert service.exited(first)
    service.signal(signal.SIGTERM)
    assert service.finished() == 0


def test_workers_not_ready_in_time_are_killed(
    tmp_path: Path,
    keydir: Path,
    closing: list[Any],  # noqa: F811
) -> None:
    """New workers stuck starting: after reload_timeout the new generation is killed, its
    workers go with it (nothing is left under the subreaper); the old one serves on."""
    service, greeting = app(tmp_path, keydir, RELOAD_TIMEOUT="2")
    closing.append(service)
    service.start()
    client = Client(keydir, service.port)
    greeting.write_text(HANGING)
    assert "not ready within 2 s" in failed_reload(service)
    assert greet(client)[0] == "v1"
    service.signal(signal.SIGTERM)
    assert service.finished() == 0


def test_burst_killed_worker_and_sigterm_during_reload(
    tmp_path: Path,
    keydir: Path,
    closing: list[Any],  # noqa: F811
) -> None:
    """A burst of SIGHUPs starts one generation; SIGKILL of a draining worker cuts only its
    sessions and it is not restarted; SIGTERM during a reload leaves no process."""
    service = serve_cli(tmp_path, keydir, "--workers", "2")
    closing.append(service)
    first = service.start().main
    client = Client(keydir, service.port)
    streams: list[Stream] = []
    for _ in range(40):  # until both workers hold a session (SO_REUSEPORT hashes ports)
        streams.append(Stream(client))
        closing.append(streams[-1])
        if len({stream.first for stream in streams}) == 2:
            break
    workers = {int(stream.first) for stream in streams}
    assert workers == set(children(first)), service.text()
    for _ in range(5):
        service.signal(signal.SIGHUP, first)
    second = int(service.notify.next("READY")["MAINPID"])
    service._adopt(second)
    service.wait_line("draining: ", count=2)
    service.signal(signal.SIGHUP, first)
    service.wait_line(f"reload ignored: this generation handed over to pid {second}")
    victim = int(streams[0].first)
    service.signal(signal.SIGKILL, victim)
    service.wait_line(f"(pid {victim}) killed by SIGKILL while draining; not restarted")
    for stream in streams:
        if int(stream.first) == victim:
            assert stream.proc.wait(timeout=30) != 0  # its sessions died with it
        else:
            stream.round()
    assert set(children(first)) == workers - {victim} | {second}  # no replacement forked
    for stream in streams:
        if int(stream.first) != victim:
            assert stream.end() == 0
    assert service.exited(first)
    assert set(children(second)) and client.served_by() in children(second)
    service.signal(signal.SIGHUP)
    service.notify.next("RELOADING")
    service.signal(signal.SIGTERM)
    assert service.finished() == 0  # every process under the subreaper has exited
    text = service.text()
    assert text.count("reload: starting a new generation") == 2, text
    assert "reload abandoned" in text
    assert "Traceback" not in text
