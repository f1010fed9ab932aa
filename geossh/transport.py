"""Re-export: the public names of ``geossh._facade.transport`` at ``geossh.transport``."""

from __future__ import annotations

from geossh._facade.channel import (
    Channel as Channel,
)
from geossh._facade.common import (
    DEFAULT_MAX_PACKET_SIZE as DEFAULT_MAX_PACKET_SIZE,
    DEFAULT_WINDOW_SIZE as DEFAULT_WINDOW_SIZE,
)
from geossh._facade.message import (
    Message as Message,
)
from geossh._facade.pkey import (
    PKey as PKey,
)
from geossh._facade.security import (
    SecurityOptions as SecurityOptions,
)
from geossh._facade.server import (
    ServerInterface as ServerInterface,
)
from geossh._facade.transport import (
    Transport as Transport,
)
from geossh._facade.util import (
    ClosingContextManager as ClosingContextManager,
)
from geossh.errors import (
    ChannelException as ChannelException,
    SSHException as SSHException,
)
