"""paramiko's ``buffered_pipe`` module name: ``PipeTimeout`` and ``BufferedPipe``.

geossh's channel buffers are ``geossh._green.pipe.ByteBuffer``; this module
keeps the import path migrated code uses.
"""

from __future__ import annotations

from geossh._green.pipe import ByteBuffer as BufferedPipe, PipeTimeout

__all__ = ["BufferedPipe", "PipeTimeout"]
