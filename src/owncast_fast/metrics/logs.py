"""Recent log records for `/api/admin/logs` and `/api/admin/logs/warnings`.

Owncast hooks its logger with two rings: every entry, and warnings and worse, each kept to its last
500 (`logging/logging.go`), so a burst of info lines never pushes the warnings out. `LogRing` is
the same as a `logging.Handler` on the root logger: it sees what the configured level lets
through. Entries are Owncast's `AdminLog` {time, message, level}, with logrus' level names.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from owncast_fast.timefmt import rfc3339

# Owncast's `maxLogEntries`: enough for the admin log view, a few hundred KB at most.
MAX_ENTRIES = 500
# A record's message is shown in a table row; a multi-megabyte repr in a log line stays out.
MAX_MESSAGE_CHARS = 4096

# logrus' `Level.String()` values, which the admin UI filters on.
_LEVEL_NAMES = ((logging.CRITICAL, "fatal"), (logging.ERROR, "error"), (logging.WARNING, "warning"))


def level_name(levelno: int) -> str:
    for threshold, name in _LEVEL_NAMES:
        if levelno >= threshold:
            return name
    return "info" if levelno >= logging.INFO else "debug" if levelno >= logging.DEBUG else "trace"


@dataclass(frozen=True, slots=True)
class LogEntry:
    time: datetime
    message: str
    level: str

    def to_json(self) -> dict[str, Any]:
        return {"time": rfc3339(self.time), "message": self.message, "level": self.level}


class LogRing(logging.Handler):
    """Keeps the last `MAX_ENTRIES` records, and separately the last warnings and errors."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        super().__init__(logging.NOTSET)
        self._entries: deque[LogEntry] = deque(maxlen=max_entries)
        self._warnings: deque[LogEntry] = deque(maxlen=max_entries)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                message = f"{message}: {type(error).__name__}: {error}"
            entry = LogEntry(
                datetime.fromtimestamp(record.created, UTC), message[:MAX_MESSAGE_CHARS], level_name(record.levelno)
            )
        except Exception:
            self.handleError(record)
            return
        # `handle()` holds the handler's lock around `emit`, so the two rings change together.
        self._entries.append(entry)
        if record.levelno >= logging.WARNING:
            self._warnings.append(entry)

    def entries(self) -> list[LogEntry]:
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            return list(self._entries)

    def warnings(self) -> list[LogEntry]:
        with self.lock:  # type: ignore[union-attr]
            return list(self._warnings)

    def install(self) -> None:
        logging.getLogger().addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self)
