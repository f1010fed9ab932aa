"""Re-export: the public names of ``geossh._facade.packetizer`` at ``geossh.packetizer``."""

from __future__ import annotations

from geossh._facade.packetizer import (
    Packetizer as Packetizer,
)
