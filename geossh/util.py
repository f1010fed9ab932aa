"""Re-export: the public names of ``geossh._facade.util`` at ``geossh.util``."""

from __future__ import annotations

from geossh._facade.util import (
    DEBUG as DEBUG,
)
from geossh._facade.util import (
    ClosingContextManager as ClosingContextManager,
)
from geossh._facade.util import (
    PFilter as PFilter,
)
from geossh._facade.util import (
    asbytes as asbytes,
)
from geossh._facade.util import (
    b as b,
)
from geossh._facade.util import (
    bit_length as bit_length,
)
from geossh._facade.util import (
    byte_ord as byte_ord,
)
from geossh._facade.util import (
    clamp_value as clamp_value,
)
from geossh._facade.util import (
    constant_time_bytes_eq as constant_time_bytes_eq,
)
from geossh._facade.util import (
    deflate_long as deflate_long,
)
from geossh._facade.util import (
    format_binary as format_binary,
)
from geossh._facade.util import (
    format_binary_line as format_binary_line,
)
from geossh._facade.util import (
    generate_key_bytes as generate_key_bytes,
)
from geossh._facade.util import (
    get_logger as get_logger,
)
from geossh._facade.util import (
    get_thread_id as get_thread_id,
)
from geossh._facade.util import (
    inflate_long as inflate_long,
)
from geossh._facade.util import (
    load_host_keys as load_host_keys,
)
from geossh._facade.util import (
    log_to_file as log_to_file,
)
from geossh._facade.util import (
    lookup_ssh_host_config as lookup_ssh_host_config,
)
from geossh._facade.util import (
    mod_inverse as mod_inverse,
)
from geossh._facade.util import (
    parse_ssh_config as parse_ssh_config,
)
from geossh._facade.util import (
    safe_string as safe_string,
)
from geossh._facade.util import (
    tb_strings as tb_strings,
)
from geossh._facade.util import (
    u as u,
)
