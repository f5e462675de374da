"""PostgreSQL backend: asyncpg pool, JSONB values, migrations under an advisory lock (see `store.py`)."""

from owncast_fast.store.postgres.store import PostgresConfigRepository, PostgresStore, mask_password

__all__ = ["PostgresConfigRepository", "PostgresStore", "mask_password"]
