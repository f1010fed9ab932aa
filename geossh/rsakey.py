"""Re-export: the public names of ``geossh._facade.rsakey`` at ``geossh.rsakey``."""

from __future__ import annotations

from geossh._facade.rsakey import (
    Message as Message,
)
from geossh._facade.rsakey import (
    PKey as PKey,
)
from geossh._facade.rsakey import (
    RSAKey as RSAKey,
)
from geossh._facade.rsakey import (
    SSHException as SSHException,
)
