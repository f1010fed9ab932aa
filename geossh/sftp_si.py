"""paramiko.sftp_si: ``SFTPServerInterface``."""

from __future__ import annotations

from geossh.sftp.interface import SFTPServerInterface

__all__ = ["SFTPServerInterface"]
