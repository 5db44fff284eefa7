"""JSON logs to stdout (twelve-factor XI): one object per line, the platform collects and ships them."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Attributes every LogRecord has; anything else was passed through `extra=` and belongs in the JSON.
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def __init__(self, version: str) -> None:
        super().__init__()
        self._version = version

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{record.msecs:03.0f}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "version": self._version,
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, version: str) -> None:
    """Route the root logger (and uvicorn's, which propagate to it) to stdout as JSON."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(version))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


class RateLimitedWarning:
    """One warning per `interval_seconds` at most, carrying how many occurrences it stands for: an outage seen by
    every request is one line per interval, not a flood that drowns the logs (and costs as much as the traffic)."""

    def __init__(self, logger: logging.Logger, message: str, interval_seconds: float = 30.0) -> None:
        self._logger = logger
        self._message = message
        self._interval = interval_seconds
        self._next_at = 0.0
        self._occurrences = 0

    def __call__(self, error: BaseException, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._occurrences += 1
        if now >= self._next_at:
            extra = {"error": type(error).__name__, "occurrences": self._occurrences}
            self._logger.warning(self._message, extra=extra)
            self._next_at = now + self._interval
            self._occurrences = 0
