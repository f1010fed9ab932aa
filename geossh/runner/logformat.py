"""``--log-format json``: every log record as one JSON object on one line.

``JsonFormatter`` writes ``time`` (UTC, ISO 8601 with milliseconds),
``level``, ``logger`` and ``message``, then the fields of an audit record
(``record.audit``, see ``geossh.audit``) as members of their own, and
``exception`` with the traceback if there is one. ``json.dumps`` escapes
every control character, so a value can never end the line; messages are
already made safe by ``geossh.logtext``. ``configure(level, fmt)`` sets up
the root logger on stderr the way ``geossh serve`` does.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

TEXT_FORMAT = "%(asctime)s %(name)s %(message)s"
_RESERVED = frozenset({"time", "level", "logger", "message", "exception"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "audit", None)
        if isinstance(fields, dict):
            for name, value in fields.items():
                out[name if name not in _RESERVED else f"field_{name}"] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=True, default=str)


def configure(level: str | int = "INFO", fmt: str = "text") -> None:
    """Log to stderr at ``level`` as text lines or (``fmt="json"``) JSON objects."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
