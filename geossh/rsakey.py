"""Re-export: the public names of ``geossh._facade.rsakey`` at ``geossh.rsakey``."""

from __future__ import annotations

from geossh._facade.message import (
    Message as Message,
)
from geossh._facade.pkey import (
    PKey as PKey,
)
from geossh._facade.rsakey import (
    RSAKey as RSAKey,
)
from geossh.errors import (
    SSHException as SSHException,
)
