"""SQLite backend: one file, WAL, one connection on one worker thread (see `store.py`)."""

from owncast_fast.store.sqlite.store import SqliteConfigRepository, SqliteStore
from owncast_fast.store.sqlite.time_series import SqliteTimeSeriesRepository

__all__ = ["SqliteConfigRepository", "SqliteStore", "SqliteTimeSeriesRepository"]
