"""Re-export: the public names of ``geossh._facade.channel`` at ``geossh.channel``."""

from __future__ import annotations

from geossh._facade.channel import (
    Channel as Channel,
    ChannelFile as ChannelFile,
    ChannelStderrFile as ChannelStderrFile,
    ChannelStdinFile as ChannelStdinFile,
    Sendable as Sendable,
)
from geossh._facade.file import (
    BufferedFile as BufferedFile,
)
from geossh._facade.util import (
    ClosingContextManager as ClosingContextManager,
)
from geossh.errors import (
    SSHException as SSHException,
)
