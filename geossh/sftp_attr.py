"""paramiko.sftp_attr: ``SFTPAttributes``."""

from __future__ import annotations

from geossh.sftp.attributes import SFTPAttributes

__all__ = ["SFTPAttributes"]
