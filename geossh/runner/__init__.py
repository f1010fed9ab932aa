"""The runner: ``geossh.Server`` and ``geossh serve``.

Listening and admission (``server``, ``listener``, ``srclimit``), PROXY
headers (``proxyproto``), worker processes (``workers``), reload and drain
(``reload``, ``generation``), systemd (``systemd``), the host-key store
(``hostkeys``), the ``geossh serve`` application and command line
(``serveapp``, ``cli``), observability (``metrics``, ``audit``,
``logformat``) and the pytest fixture (``pytest_plugin``).

May import every layer below it; nothing in geossh imports the runner except
the package's public names (``tests/unit/test_layers.py`` enforces it).
"""

from __future__ import annotations

from geossh.runner.server import (
    DEFAULT_PROXY_FROM as DEFAULT_PROXY_FROM,
    HARDENED_DISABLED_ALGORITHMS as HARDENED_DISABLED_ALGORITHMS,
    TRANSPORT_LIMITS as TRANSPORT_LIMITS,
    ListenError as ListenError,
    Server as Server,
)
