"""Re-export: the public names of ``geossh._facade.ecdsakey`` at ``geossh.ecdsakey``."""

from __future__ import annotations

from geossh._facade.ecdsakey import (
    ECDSAKey as ECDSAKey,
)
from geossh._facade.message import (
    Message as Message,
)
from geossh._facade.pkey import (
    PKey as PKey,
)
from geossh.errors import (
    SSHException as SSHException,
)
