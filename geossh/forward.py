"""Re-export: the public names of ``geossh.services.forward`` at ``geossh.forward``."""

from __future__ import annotations

from geossh.services.forward import (
    BUFSIZE as BUFSIZE,
)
from geossh.services.forward import (
    DIRECT_STREAMLOCAL as DIRECT_STREAMLOCAL,
)
from geossh.services.forward import (
    DIRECT_TCPIP as DIRECT_TCPIP,
)
from geossh.services.forward import (
    FORWARDED_STREAMLOCAL as FORWARDED_STREAMLOCAL,
)
from geossh.services.forward import (
    FORWARDED_TCPIP as FORWARDED_TCPIP,
)
from geossh.services.forward import (
    Address as Address,
)
from geossh.services.forward import (
    DirectTCPIPHandler as DirectTCPIPHandler,
)
from geossh.services.forward import (
    ForwardingPolicy as ForwardingPolicy,
)
from geossh.services.forward import (
    ForwardingServer as ForwardingServer,
)
from geossh.services.forward import (
    ForwardSession as ForwardSession,
)
from geossh.services.forward import (
    Resolver as Resolver,
)
from geossh.services.forward import (
    Target as Target,
)
from geossh.services.forward import (
    X11Request as X11Request,
)
from geossh.services.forward import (
    address_text as address_text,
)
from geossh.services.forward import (
    close_quietly as close_quietly,
)
from geossh.services.forward import (
    connect as connect,
)
from geossh.services.forward import (
    connect_addresses as connect_addresses,
)
from geossh.services.forward import (
    connect_unix as connect_unix,
)
from geossh.services.forward import (
    pump as pump,
)
from geossh.services.forward import (
    resolve as resolve,
)
from geossh.services.forward import (
    resolve_unix_path as resolve_unix_path,
)
