"""The SFTP local backend under ``monkey.patch_all()`` (the migration path).

gevent's patched ``os.close`` defers closing anything but regular files to
the next loop iteration; requests served inline never reach it, so the
directory descriptors of path resolution piled up until the process ran
out (3,000 pipelined STATs gave 1,001 failures). Run in a subprocess with
everything patched and a small descriptor limit: every request succeeds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.server_kit import python_env

SCRIPT = r"""
from gevent import monkey
monkey.patch_all()

import resource, struct, sys
import gevent
from gevent import socket
from geossh.sftp import protocol as p
from geossh.sftp.local import LocalSFTPServer
from tests.integration.test_sftp_engine import RawClient, SocketChannel
from geossh.sftp.server import SFTPServer

resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
root, count = sys.argv[1], int(sys.argv[2])
ours, theirs = socket.socketpair()
handler = SFTPServer(SocketChannel(ours), "sftp", object(), LocalSFTPServer, root)
handler.start()
client = RawClient(theirs)
client.init()
packets = [client.packet(p.CMD_STAT, "/a/b/c/d/f")[1] for _ in range(count)]
for _ in range(count // 10):
    handle = client.call(p.CMD_OPENDIR, "/a/b/c/d").handle
    assert client.call(p.CMD_READDIR, handle).type == p.CMD_NAME
    assert client.call(p.CMD_CLOSE, handle).code == p.SFTP_OK
client.send(*packets)
kinds = [client.read().type for _ in range(count)]
print(kinds.count(p.CMD_ATTRS), "of", count)
"""


def test_pipelined_stats_under_patch_all_never_run_out_of_descriptors(tmp_path: Path) -> None:
    deep = tmp_path / "root" / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "root"), "3000"],
        capture_output=True,
        timeout=120,
        env=python_env(),
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().split() == ["3000", "of", "3000"]
