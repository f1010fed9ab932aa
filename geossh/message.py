"""Re-export: the public names of ``geossh._facade.message`` at ``geossh.message``."""

from __future__ import annotations

from geossh._facade.message import (
    Message as Message,
)
