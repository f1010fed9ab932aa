"""Re-export: the public names of ``geossh.services.pty`` at ``geossh.pty``."""

from __future__ import annotations

from geossh.services.pty import (
    MODE_NAMES as MODE_NAMES,
)
from geossh.services.pty import (
    PtyModesError as PtyModesError,
)
from geossh.services.pty import (
    apply_modes as apply_modes,
)
from geossh.services.pty import (
    decode_modes as decode_modes,
)
from geossh.services.pty import (
    encode_modes as encode_modes,
)
from geossh.services.pty import (
    set_winsize as set_winsize,
)
