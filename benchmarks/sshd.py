"""OpenSSH's sshd under test: found or installed, configured in a temp dir.

sshd runs in the foreground (``-D -e``) on a free high port on 127.0.0.1
with its own host key, sshd_config, authorized_keys and pid file; nothing
of the system's configuration is used. It is installed with apt-get only
when missing, when running as root, and when the caller allows it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def find_or_install(allow_install: bool) -> tuple[str | None, str]:
    """Return (sshd path or None, a message saying what happened)."""
    path = SSHD if os.access(SSHD, os.X_OK) else shutil.which("sshd")
    if path:
        return path, f"using {path}"
    if not allow_install:
        return None, "sshd not installed (installation not allowed: --no-install)"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "sshd not installed (apt-get install openssh-server needs root and apt)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "openssh-server"],
    ):
        try:
            subprocess.run(argv, env=env, capture_output=True, timeout=600, check=True)
        except (subprocess.SubprocessError, OSError) as exc:
            return None, f"sshd not installed: {' '.join(argv)} failed ({exc})"
    if os.access(SSHD, os.X_OK):
        return SSHD, "installed openssh-server with apt-get"
    return None, "sshd still missing after installing openssh-server"


def version(path: str) -> str:
    """sshd's version banner (from ``sshd -V``, printed on stderr)."""
    result = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=10, check=False)
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[0] if lines else "unknown"


def write_config(
    workdir: Path, port: int, host_key: Path, authorized_key: Path, sftp_root: Path, max_conn: int
) -> Path:
    """Write sshd_config for a private sshd on 127.0.0.1:``port``; return its path."""
    keys = workdir / "authorized_keys"
    shutil.copyfile(authorized_key, keys)
    sftp = SFTP_SERVER if os.access(SFTP_SERVER, os.X_OK) else "internal-sftp"
    starts = max(100, max_conn + 64)
    config = f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
AuthorizedKeysFile {keys}
PidFile {workdir / "sshd.pid"}
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
HostKeyAlgorithms ssh-ed25519
MaxStartups {starts}:30:{starts * 2}
MaxSessions 64
LoginGraceTime 120
UseDNS no
PrintMotd no
PrintLastLog no
Banner none
SetEnv SHLVL=1
Subsystem sftp {sftp} -d {sftp_root}
"""
    path = workdir / "sshd_config"
    path.write_text(config)
    return path


def argv(sshd: str, config: Path) -> list[str]:
    """The command line of a foreground sshd using ``config``."""
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    return [sshd, "-D", "-e", "-f", str(config)]
