"""Re-export: the public names of ``geossh._facade.file`` at ``geossh.file``."""

from __future__ import annotations

from geossh._facade.file import (
    BufferedFile as BufferedFile,
)
from geossh._facade.util import (
    ClosingContextManager as ClosingContextManager,
)
