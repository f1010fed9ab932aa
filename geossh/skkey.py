"""Re-export: the public names of ``geossh._facade.skkey`` at ``geossh.skkey``."""

from __future__ import annotations

from geossh._facade.skkey import (
    SKKey as SKKey,
)
