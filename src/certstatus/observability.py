"""Logging set-up: one JSON object per line on stderr.

Policy (as cfssl and Boulder do): error = something an operator must fix;
bad client input at info or below; per-request lines at debug.

Structured fields: anything passed as ``extra={...}`` to a logging call
becomes a key of the JSON object (``log.info("refused", extra={"client": ip})``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

from certstatus.store.dsn import redact


#: Attributes every LogRecord has; others came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time (UTC, ISO 8601), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))  # a DSN's password never reaches a log line


def configure_logging(level: str = "info") -> None:
    """Send certstatus logs to stderr as JSON lines at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("certstatus")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
