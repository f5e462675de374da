"""`TimeSeriesRepository` over SQLite's `metric_samples` table (times in whole unix seconds)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TypeVar

from owncast_fast.store.base import Sample
from owncast_fast.store.time_series import check_value, from_unix_second, unix_second

_T = TypeVar("_T")

_UPSERT = (
    "INSERT INTO metric_samples (metric, time, value) VALUES (?, ?, ?) "
    "ON CONFLICT (metric, time) DO UPDATE SET value = excluded.value"
)


class SqliteTimeSeriesRepository:
    """Runs on the store's one connection and worker thread, like the config repository."""

    def __init__(self, executor: ThreadPoolExecutor, connection: sqlite3.Connection) -> None:
        self._executor = executor
        self._connection = connection

    async def _call(self, function: Callable[[sqlite3.Connection], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, self._connection)

    async def add(self, metric: str, time: datetime, value: float) -> None:
        row = (metric, unix_second(time), check_value(value))

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(_UPSERT, row)

        await self._call(write)

    async def between(self, metric: str, start: datetime, end: datetime) -> list[Sample]:
        bounds = (metric, unix_second(start), unix_second(end))

        def query(connection: sqlite3.Connection) -> list[tuple[int, float]]:
            sql = "SELECT time, value FROM metric_samples WHERE metric = ? AND time BETWEEN ? AND ? ORDER BY time"
            return connection.execute(sql, bounds).fetchall()

        return [Sample(from_unix_second(time), float(value)) for time, value in await self._call(query)]

    async def delete_before(self, time: datetime) -> int:
        cutoff = unix_second(time)

        def write(connection: sqlite3.Connection) -> int:
            return connection.execute("DELETE FROM metric_samples WHERE time < ?", (cutoff,)).rowcount

        return await self._call(write)
