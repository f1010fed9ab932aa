"""Re-export: the public names of ``geossh.services.forward`` at ``geossh.forward``."""

from __future__ import annotations

from geossh.services.forward import (
    BUFSIZE as BUFSIZE,
    DIRECT_STREAMLOCAL as DIRECT_STREAMLOCAL,
    DIRECT_TCPIP as DIRECT_TCPIP,
    FORWARDED_STREAMLOCAL as FORWARDED_STREAMLOCAL,
    FORWARDED_TCPIP as FORWARDED_TCPIP,
    Address as Address,
    DirectTCPIPHandler as DirectTCPIPHandler,
    ForwardingPolicy as ForwardingPolicy,
    ForwardingServer as ForwardingServer,
    ForwardSession as ForwardSession,
    Resolver as Resolver,
    Target as Target,
    address_text as address_text,
    close_quietly as close_quietly,
    connect as connect,
    connect_addresses as connect_addresses,
    connect_unix as connect_unix,
    pump as pump,
    resolve as resolve,
    resolve_unix_path as resolve_unix_path,
)
from geossh.services.x11 import X11Request as X11Request
