"""Re-export: the public names of ``geossh.services.authorized_keys``."""

from __future__ import annotations

from geossh.services.authorized_keys import (
    CERT_PERMITS as CERT_PERMITS,
)
from geossh.services.authorized_keys import (
    MAX_ENVIRONMENT as MAX_ENVIRONMENT,
)
from geossh.services.authorized_keys import (
    MAX_LINE as MAX_LINE,
)
from geossh.services.authorized_keys import (
    MAX_PERMITS as MAX_PERMITS,
)
from geossh.services.authorized_keys import (
    AuthorizedKey as AuthorizedKey,
)
from geossh.services.authorized_keys import (
    AuthorizedKeys as AuthorizedKeys,
)
from geossh.services.authorized_keys import (
    LineError as LineError,
)
from geossh.services.authorized_keys import (
    UnsupportedKeyLine as UnsupportedKeyLine,
)
from geossh.services.authorized_keys import (
    match_host_and_ip as match_host_and_ip,
)
from geossh.services.authorized_keys import (
    match_pattern as match_pattern,
)
from geossh.services.authorized_keys import (
    parse_expiry_time as parse_expiry_time,
)
from geossh.services.authorized_keys import (
    parse_line as parse_line,
)
from geossh.services.authorized_keys import (
    parse_options as parse_options,
)
from geossh.services.authorized_keys import (
    split_options as split_options,
)
