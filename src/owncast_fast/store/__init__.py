"""Persistence: repository Protocols (`base.py`) and the two backends that implement them.

`open_store(database)` is the one entry point: a `postgresql://` or `postgres://` URL opens PostgreSQL
(`postgres/`), anything else is the path of a SQLite file (`sqlite/`, the default). Either way the
schema is migrated to the newest version this code knows before the store is returned.
"""

from __future__ import annotations

from owncast_fast.store.base import (
    ChatMessageRow,
    ChatRelay,
    ChatRepository,
    ChatUser,
    ConfigRepository,
    IpBan,
    Sample,
    Store,
    StoreError,
    TimeSeriesRepository,
)

__all__ = [
    "ChatMessageRow",
    "ChatRelay",
    "ChatRepository",
    "ChatUser",
    "ConfigRepository",
    "IpBan",
    "Sample",
    "Store",
    "StoreError",
    "TimeSeriesRepository",
    "is_postgres_url",
    "open_store",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(database: str) -> bool:
    """Whether `database` names a PostgreSQL database rather than a SQLite file."""
    return database.lower().startswith(_POSTGRES_SCHEMES)


async def open_store(database: str) -> Store:
    """Open and migrate the store named by `database`; raises StoreError with a one-line reason."""
    if is_postgres_url(database):
        # Imported here so that SQLite-only installs never load asyncpg.
        from owncast_fast.store.postgres import PostgresStore

        return await PostgresStore.open(database)
    from owncast_fast.store.sqlite import SqliteStore

    return await SqliteStore.open(database)
