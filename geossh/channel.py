"""Re-export: the public names of ``geossh._facade.channel`` at ``geossh.channel``."""

from __future__ import annotations

from geossh._facade.channel import (
    BufferedFile as BufferedFile,
)
from geossh._facade.channel import (
    Channel as Channel,
)
from geossh._facade.channel import (
    ChannelFile as ChannelFile,
)
from geossh._facade.channel import (
    ChannelStderrFile as ChannelStderrFile,
)
from geossh._facade.channel import (
    ChannelStdinFile as ChannelStdinFile,
)
from geossh._facade.channel import (
    ClosingContextManager as ClosingContextManager,
)
from geossh._facade.channel import (
    Sendable as Sendable,
)
from geossh._facade.channel import (
    SSHException as SSHException,
)
