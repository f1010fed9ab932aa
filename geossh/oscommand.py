"""Re-export: the public names of ``geossh.services.oscommand`` at ``geossh.oscommand``."""

from __future__ import annotations

from geossh.services.oscommand import (
    DEFAULT_PASS_ENV as DEFAULT_PASS_ENV,
)
from geossh.services.oscommand import (
    DEFAULT_PATH as DEFAULT_PATH,
)
from geossh.services.oscommand import (
    READ_SIZE as READ_SIZE,
)
from geossh.services.oscommand import (
    OSCommand as OSCommand,
)
from geossh.services.oscommand import (
    set_window_size as set_window_size,
)
