"""Re-export: the public names of ``geossh.services.oscommand`` at ``geossh.oscommand``."""

from __future__ import annotations

from geossh.services.oscommand import (
    CLIENT_SIGNALS as CLIENT_SIGNALS,
    DEFAULT_PASS_ENV as DEFAULT_PASS_ENV,
    DEFAULT_PATH as DEFAULT_PATH,
    READ_SIZE as READ_SIZE,
    OSCommand as OSCommand,
    default_signals as default_signals,
    set_window_size as set_window_size,
)
