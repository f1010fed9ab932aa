"""Re-export: the public names of ``geossh._facade.server`` at ``geossh.server``."""

from __future__ import annotations

from geossh._facade.common import (
    AUTH_FAILED as AUTH_FAILED,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED as OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
)
from geossh._facade.server import (
    InteractiveQuery as InteractiveQuery,
    ServerInterface as ServerInterface,
    SubsystemHandler as SubsystemHandler,
)
