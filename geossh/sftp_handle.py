"""paramiko.sftp_handle: ``SFTPHandle``."""

from __future__ import annotations

from geossh.sftp.handle import SFTPHandle

__all__ = ["SFTPHandle"]
