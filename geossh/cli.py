"""Re-export: ``geossh serve``'s command line (the ``geossh`` console script's entry point)."""

from __future__ import annotations

from geossh.runner.cli import main as main
