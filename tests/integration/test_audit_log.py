"""The ``geossh.audit`` log of ``geossh serve --log-format json``, driven by OpenSSH clients.

An accepted key (exec), a wrong password (sshpass), a certificate login, an
sftp session and an ``ssh -L`` forward: every stderr line must be one JSON
object, the audit records must carry the sshd-style fields (user, method,
fingerprint or certificate id and serial, client address, connection id;
command or subsystem, exit status, bytes; forward target), peer-chosen text
must be escaped, and no password may appear anywhere.
"""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.forward_support import DigestServer, connect_when_ready, free_port, ssh_process, upload
from tests.server_kit import SSH_OPTIONS, ServerProcess, python_env, run, ssh_argv

pytestmark = pytest.mark.interop
ME = getpass.getuser()
PASSWORD = "audit-secret-pw 7"
WRONG = "wrong-secret-pw 9"


def fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, check=True)
    return out.stdout.decode().split()[1]


@pytest.fixture
def world(tmp_path: Path, keydir: Path) -> Any:
    """``geossh serve --log-format json`` with a key, a CA and a password; a certified key."""
    require("ssh")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca")],
                   check=True)  # fmt: skip
    for suffix in ("", ".pub"):
        shutil.copy(keydir / f"other_ed25519{suffix}", tmp_path / f"certified{suffix}")
    (tmp_path / "certified").chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-s", str(tmp_path / "ca"), "-I", "audit cert",
                    "-z", "4242", "-n", ME, "-V", "-5m:+1h", str(tmp_path / "certified.pub")],
                   check=True, capture_output=True)  # fmt: skip
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    lines = [(keydir / "user_ed25519.pub").read_text().strip(),
             "cert-authority " + (tmp_path / "ca.pub").read_text().strip()]  # fmt: skip
    (home / ".ssh" / "authorized_keys").write_text("\n".join(lines) + "\n")
    env = python_env(HOME=str(home), GEOSSH_AUDIT_PW=PASSWORD)
    env.pop("XDG_STATE_HOME", None)
    argv = ["-m", "geossh", "serve", "--port", "0", "--forwarding", "--log-format", "json"]
    argv += ["--password-env", "GEOSSH_AUDIT_PW", "--per-source-penalties", "no"]
    server = ServerProcess(argv, tmp_path / "serve.log", env).start()
    try:
        yield server, tmp_path
    finally:
        server.stop()


def records(log: str) -> list[dict[str, Any]]:
    """Every stderr line as JSON (each must be one object)."""
    out = []
    for line in log.splitlines():
        if line.strip():
            item = json.loads(line)
            assert isinstance(item, dict) and {"time", "level", "logger", "message"} <= set(item)
            out.append(item)
    return out


def audit(items: list[dict[str, Any]], event: str, result: str, **match: Any) -> dict[str, Any]:
    """The one audit record of ``event``/``result`` whose fields include ``match``."""
    found = [
        item for item in items
        if item["logger"] == "geossh.audit" and item.get("event") == event
        and item.get("result") == result and all(item.get(k) == v for k, v in match.items())
    ]  # fmt: skip
    assert len(found) == 1, (event, result, match, [i for i in items if i.get("event")])
    return found[0]


def wrong_password(port: int) -> Any:
    at = SSH_OPTIONS.index("BatchMode=yes")
    options = SSH_OPTIONS[: at - 1] + SSH_OPTIONS[at + 1 :]  # ssh keeps an option's first value
    argv = ["sshpass", "-p", WRONG, "ssh", *options, "-o", "BatchMode=no"]
    argv += ["-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no"]
    argv += ["-o", "NumberOfPasswordPrompts=1", "-p", str(port), f"{ME}@127.0.0.1", "true"]
    return run(argv)


def test_audit_lines_of_openssh_logins_sessions_and_forwards(world: Any, keydir: Path) -> None:
    require("sshpass")
    require("sftp")
    server, tmp = world
    port, key = server.port, keydir / "user_ed25519"
    result = run(ssh_argv(port, key, "printf hi; exit 5 # \x1b[31m", user=ME), input=b"")
    assert result.returncode == 5 and result.stdout == b"hi", result.stderr
    assert wrong_password(port).returncode != 0
    cert = run(ssh_argv(port, tmp / "certified", "true", user=ME), input=b"")
    assert cert.returncode == 0, cert.stderr
    (tmp / "up.bin").write_bytes(b"x" * 50_000)
    batch = f"put {tmp / 'up.bin'} up.bin\n".encode()
    opts = [*SSH_OPTIONS, "-i", str(key), "-P", str(port)]
    sftp = run(["sftp", *opts, "-b", "-", f"{ME}@127.0.0.1"], input=batch)
    assert sftp.returncode == 0, sftp.stderr
    dest, local = DigestServer(), free_port()
    try:
        options = ["-N", "-o", "ExitOnForwardFailure=yes", "-L", f"{local}:127.0.0.1:{dest.port}"]
        forward = ssh_argv(port, key, user=ME, extra=options)
        with ssh_process(forward):
            assert upload(connect_when_ready(("127.0.0.1", local)), 10_000)[1] == 10_000
    finally:
        dest.stop()
    server.stop()
    log = server.log()
    items = records(log)

    start = audit(items, "session", "start", command="printf hi; exit 5 # \\x1b[31m")
    conn = start["conn"]
    accepted = audit(items, "login", "accepted", conn=conn)
    assert accepted["method"] == "publickey" and accepted["signed"] is True
    assert accepted["fingerprint"] == fingerprint(keydir / "user_ed25519.pub")
    assert accepted["user"] == ME and accepted["client"] == "127.0.0.1"
    assert isinstance(accepted["client_port"], int) and isinstance(conn, int)
    assert accepted["key_type"] == "ssh-ed25519" and "cert_id" not in accepted
    assert start["user"] == ME and start["kind"] == "exec"
    end = audit(items, "session", "end", conn=conn, kind="exec")
    assert end["exit_status"] == 5 and end["bytes_out"] == 2 and end["bytes_in"] == 0
    assert end["command"] == start["command"] and end["channel"] == start["channel"]

    refused = audit(items, "login", "refused", method="password")
    assert refused["user"] == ME and "fingerprint" not in refused

    certified = audit(items, "login", "accepted", cert_id="audit cert")
    assert certified["cert_serial"] == 4242
    assert certified["ca_fingerprint"] == fingerprint(tmp / "ca.pub")
    assert certified["fingerprint"] == fingerprint(keydir / "other_ed25519.pub")
    assert 'cert_id="audit cert" cert_serial=4242' in certified["message"]

    sftp_end = audit(items, "session", "end", subsystem="sftp")
    assert sftp_end["kind"] == "subsystem" and sftp_end["exit_status"] == 0
    assert sftp_end["bytes_in"] > 50_000
    audit(items, "session", "start", subsystem="sftp", conn=sftp_end["conn"])

    opened = audit(items, "forward", "open", kind="direct-tcpip")
    assert opened["target"] == "127.0.0.1" and opened["target_port"] == dest.port
    assert opened["user"] == ME

    assert PASSWORD not in log and WRONG not in log
    assert "\x1b" not in log and "\\u001b" not in log  # the peer's ESC stays escaped text
