"""Re-export: the public names of ``geossh.runner.audit`` at ``geossh.audit``."""

from __future__ import annotations

from geossh.runner.audit import (
    COMMAND_LIMIT as COMMAND_LIMIT,
)
from geossh.runner.audit import (
    FORWARD_KINDS as FORWARD_KINDS,
)
from geossh.runner.audit import (
    AuditLog as AuditLog,
)
from geossh.runner.audit import (
    client_fields as client_fields,
)
from geossh.runner.audit import (
    emit as emit,
)
from geossh.runner.audit import (
    format_value as format_value,
)
from geossh.runner.audit import (
    key_fields as key_fields,
)
