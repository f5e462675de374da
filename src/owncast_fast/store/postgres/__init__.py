"""PostgreSQL backend: asyncpg pool, JSONB values, migrations under an advisory lock (see `store.py`)."""

from owncast_fast.store.postgres.store import PostgresConfigRepository, PostgresStore, mask_password
from owncast_fast.store.postgres.time_series import PostgresTimeSeriesRepository

__all__ = ["PostgresConfigRepository", "PostgresStore", "PostgresTimeSeriesRepository", "mask_password"]
