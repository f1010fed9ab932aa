"""Re-export: the public names of ``geossh.services.authorized_keys``."""

from __future__ import annotations

from geossh.services.authorized_keys import (
    CERT_PERMITS as CERT_PERMITS,
    MAX_ENVIRONMENT as MAX_ENVIRONMENT,
    MAX_LINE as MAX_LINE,
    MAX_PERMITS as MAX_PERMITS,
    AuthorizedKey as AuthorizedKey,
    AuthorizedKeys as AuthorizedKeys,
    LineError as LineError,
    UnsupportedKeyLine as UnsupportedKeyLine,
    match_host_and_ip as match_host_and_ip,
    match_pattern as match_pattern,
    parse_expiry_time as parse_expiry_time,
    parse_line as parse_line,
    parse_options as parse_options,
    split_options as split_options,
)
