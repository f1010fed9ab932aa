"""Re-export: the public names of ``geossh.services.session`` at ``geossh.session``."""

from __future__ import annotations

from geossh.services.session import (
    DEFAULT_ACCEPT_ENV as DEFAULT_ACCEPT_ENV,
)
from geossh.services.session import (
    MAX_ENV_BYTES as MAX_ENV_BYTES,
)
from geossh.services.session import (
    MAX_ENV_VARS as MAX_ENV_VARS,
)
from geossh.services.session import (
    MAX_LINE as MAX_LINE,
)
from geossh.services.session import (
    MAX_SIGNALS as MAX_SIGNALS,
)
from geossh.services.session import (
    PtyInfo as PtyInfo,
)
from geossh.services.session import (
    Session as Session,
)
from geossh.services.session import (
    SessionDispatcher as SessionDispatcher,
)
from geossh.services.session import (
    SessionExit as SessionExit,
)
from geossh.services.session import (
    SessionHandler as SessionHandler,
)
from geossh.services.session import (
    SessionHandlers as SessionHandlers,
)
