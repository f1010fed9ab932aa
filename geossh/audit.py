"""Re-export: the public names of ``geossh.runner.audit`` at ``geossh.audit``."""

from __future__ import annotations

from geossh.runner.audit import (
    COMMAND_LIMIT as COMMAND_LIMIT,
    FORWARD_KINDS as FORWARD_KINDS,
    AuditLog as AuditLog,
    client_fields as client_fields,
    emit as emit,
    format_value as format_value,
    key_fields as key_fields,
)
