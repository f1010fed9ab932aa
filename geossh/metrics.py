"""Re-export: the public names of ``geossh.runner.metrics`` at ``geossh.metrics``."""

from __future__ import annotations

from geossh.runner.metrics import (
    AUTH_BUCKETS as AUTH_BUCKETS,
)
from geossh.runner.metrics import (
    ENV as ENV,
)
from geossh.runner.metrics import (
    FLUSH_INTERVAL as FLUSH_INTERVAL,
)
from geossh.runner.metrics import (
    FORWARD_KINDS as FORWARD_KINDS,
)
from geossh.runner.metrics import (
    KEX_BUCKETS as KEX_BUCKETS,
)
from geossh.runner.metrics import (
    METHODS as METHODS,
)
from geossh.runner.metrics import (
    OUTCOMES as OUTCOMES,
)
from geossh.runner.metrics import (
    SESSION_KINDS as SESSION_KINDS,
)
from geossh.runner.metrics import (
    Metrics as Metrics,
)
from geossh.runner.metrics import (
    failure_reason as failure_reason,
)
from geossh.runner.metrics import (
    prepare_multiprocess as prepare_multiprocess,
)
from geossh.runner.metrics import (
    remove_multiprocess as remove_multiprocess,
)
from geossh.runner.metrics import (
    serve as serve,
)
