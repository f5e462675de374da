"""`TimeSeriesRepository` over PostgreSQL's `metric_samples` table (TIMESTAMPTZ to the second)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from owncast_fast.store.base import Sample
from owncast_fast.store.time_series import check_value, from_unix_second, unix_second

_UPSERT = (
    "INSERT INTO metric_samples (metric, time, value) VALUES ($1, $2, $3) "
    "ON CONFLICT (metric, time) DO UPDATE SET value = EXCLUDED.value"
)


def _whole_second(time: datetime) -> datetime:
    return from_unix_second(unix_second(time))


class PostgresTimeSeriesRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, metric: str, time: datetime, value: float) -> None:
        await self._pool.execute(_UPSERT, metric, _whole_second(time), check_value(value))

    async def between(self, metric: str, start: datetime, end: datetime) -> list[Sample]:
        rows = await self._pool.fetch(
            "SELECT time, value FROM metric_samples WHERE metric = $1 AND time BETWEEN $2 AND $3 ORDER BY time",
            metric,
            _whole_second(start),
            _whole_second(end),
        )
        return [Sample(_whole_second(row["time"]), float(row["value"])) for row in rows]

    async def delete_before(self, time: datetime) -> int:
        status: str = await self._pool.execute("DELETE FROM metric_samples WHERE time < $1", _whole_second(time))
        return int(status.rsplit(" ", 1)[1])  # "DELETE <count>"
