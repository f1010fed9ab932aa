"""Re-export: the public names of ``geossh.services.pty`` at ``geossh.pty``."""

from __future__ import annotations

from geossh.services.pty import (
    MODE_NAMES as MODE_NAMES,
    PtyModesError as PtyModesError,
    apply_modes as apply_modes,
    decode_modes as decode_modes,
    encode_modes as encode_modes,
    set_winsize as set_winsize,
)
