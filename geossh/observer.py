"""Re-export: the public names of ``geossh._facade.observer`` at ``geossh.observer``."""

from __future__ import annotations

from geossh._facade.observer import (
    Observer as Observer,
    Observers as Observers,
)
