"""Re-export: the public names of ``geossh.runner.metrics`` at ``geossh.metrics``."""

from __future__ import annotations

from geossh.runner.metrics import (
    AUTH_BUCKETS as AUTH_BUCKETS,
    ENV as ENV,
    FLUSH_INTERVAL as FLUSH_INTERVAL,
    FORWARD_KINDS as FORWARD_KINDS,
    KEX_BUCKETS as KEX_BUCKETS,
    METHODS as METHODS,
    OUTCOMES as OUTCOMES,
    SESSION_KINDS as SESSION_KINDS,
    Metrics as Metrics,
    failure_reason as failure_reason,
    prepare_multiprocess as prepare_multiprocess,
    remove_multiprocess as remove_multiprocess,
    serve as serve,
)
