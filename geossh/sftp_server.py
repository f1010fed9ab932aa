"""paramiko.sftp_server: ``SFTPServer`` (the SFTP subsystem handler)."""

from __future__ import annotations

from geossh.sftp.server import SFTPServer

__all__ = ["SFTPServer"]
