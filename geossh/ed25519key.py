"""Re-export: the public names of ``geossh._facade.ed25519key`` at ``geossh.ed25519key``."""

from __future__ import annotations

from geossh._facade.ed25519key import (
    Ed25519Key as Ed25519Key,
)
from geossh._facade.message import (
    Message as Message,
)
from geossh._facade.pkey import (
    PKey as PKey,
)
