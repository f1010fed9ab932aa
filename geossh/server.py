"""Re-export: the public names of ``geossh._facade.server`` at ``geossh.server``."""

from __future__ import annotations

from geossh._facade.server import (
    AUTH_FAILED as AUTH_FAILED,
)
from geossh._facade.server import (
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED as OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
)
from geossh._facade.server import (
    InteractiveQuery as InteractiveQuery,
)
from geossh._facade.server import (
    ServerInterface as ServerInterface,
)
from geossh._facade.server import (
    SubsystemHandler as SubsystemHandler,
)
