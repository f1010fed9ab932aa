"""Memory of the migration path (``monkey.patch_all()``): nothing per greenlet that
should be per thread.

Patched, ``threading.local`` is per greenlet, and every connection greenlet
got its own 32 KiB read buffer (73 KB per idle session instead of ~35 KB).
The connection greenlets of one hub must share one.
"""

from __future__ import annotations

import subprocess
import sys

from tests.server_kit import ROOT, python_env

SCRIPT = r"""
from gevent import monkey
monkey.patch_all()

import gevent
from gevent import socket
from geossh._green import pump
from geossh.proto.config import ServerConfig
from geossh.proto.connection import Connection

views = []

def read_once():
    ours, theirs = socket.socketpair()
    theirs.sendall(b"SSH-2.0-probe\r\n")
    reader = pump.SocketPump(ours, Connection(ServerConfig(), 0.0), None)
    reader._read_nowait()
    views.append(id(pump._scratch.view))

gevent.joinall([gevent.spawn(read_once) for _ in range(5)], raise_error=True)
print(len(views), len(set(views)))
"""


def test_connection_greenlets_share_one_read_buffer() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        timeout=60,
        env=python_env(),
        cwd=str(ROOT),
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.split() == [b"5", b"1"]
