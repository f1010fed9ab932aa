"""Re-export: the public names of ``geossh._facade.util`` at ``geossh.util``."""

from __future__ import annotations

from geossh._facade.common import (
    DEBUG as DEBUG,
    byte_ord as byte_ord,
)
from geossh._facade.util import (
    ClosingContextManager as ClosingContextManager,
    PFilter as PFilter,
    asbytes as asbytes,
    b as b,
    bit_length as bit_length,
    clamp_value as clamp_value,
    constant_time_bytes_eq as constant_time_bytes_eq,
    deflate_long as deflate_long,
    format_binary as format_binary,
    format_binary_line as format_binary_line,
    generate_key_bytes as generate_key_bytes,
    get_logger as get_logger,
    get_thread_id as get_thread_id,
    inflate_long as inflate_long,
    load_host_keys as load_host_keys,
    log_to_file as log_to_file,
    lookup_ssh_host_config as lookup_ssh_host_config,
    mod_inverse as mod_inverse,
    parse_ssh_config as parse_ssh_config,
    safe_string as safe_string,
    tb_strings as tb_strings,
    u as u,
)
