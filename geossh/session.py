"""Re-export: the public names of ``geossh.services.session`` at ``geossh.session``."""

from __future__ import annotations

from geossh.services.session import (
    DEFAULT_ACCEPT_ENV as DEFAULT_ACCEPT_ENV,
    MAX_ENV_BYTES as MAX_ENV_BYTES,
    MAX_ENV_VARS as MAX_ENV_VARS,
    MAX_LINE as MAX_LINE,
    MAX_SIGNALS as MAX_SIGNALS,
    PtyInfo as PtyInfo,
    Session as Session,
    SessionDispatcher as SessionDispatcher,
    SessionExit as SessionExit,
    SessionHandler as SessionHandler,
    SessionHandlers as SessionHandlers,
)
