"""Re-export: the pytest plugin (``geossh_server`` fixture), registered at this path."""

from __future__ import annotations

from geossh.runner.pytest_plugin import (
    GeosshTestServer as GeosshTestServer,
    geossh_server as geossh_server,
)

__all__ = ["GeosshTestServer", "geossh_server"]
