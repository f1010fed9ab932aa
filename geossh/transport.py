"""Re-export: the public names of ``geossh._facade.transport`` at ``geossh.transport``."""

from __future__ import annotations

from geossh._facade.security import (
    SecurityOptions as SecurityOptions,
)
from geossh._facade.transport import (
    DEFAULT_MAX_PACKET_SIZE as DEFAULT_MAX_PACKET_SIZE,
)
from geossh._facade.transport import (
    DEFAULT_WINDOW_SIZE as DEFAULT_WINDOW_SIZE,
)
from geossh._facade.transport import (
    Channel as Channel,
)
from geossh._facade.transport import (
    ChannelException as ChannelException,
)
from geossh._facade.transport import (
    ClosingContextManager as ClosingContextManager,
)
from geossh._facade.transport import (
    Message as Message,
)
from geossh._facade.transport import (
    PKey as PKey,
)
from geossh._facade.transport import (
    ServerInterface as ServerInterface,
)
from geossh._facade.transport import (
    SSHException as SSHException,
)
from geossh._facade.transport import (
    Transport as Transport,
)
