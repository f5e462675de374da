"""PostgreSQL backend (asyncpg), for operators who run several nodes against one database.

Theory of operation: an asyncpg pool of 1 to 10 connections. Values travel as JSON text and are
stored as JSONB (see `store/codec.py`); asyncpg's default codec hands JSONB over as text, which we
encode and decode with orjson ourselves. Every node runs the migrations on open; a transaction-scoped
advisory lock (`pg_advisory_xact_lock`) serialises them, so nodes starting together apply each
migration exactly once, and a node that waited sees the version the other one recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from owncast_fast.store.base import StoreError
from owncast_fast.store.codec import decode_value, encode_value
from owncast_fast.store.migrations import Migration, load_migrations, refuse_newer
from owncast_fast.store.postgres.chat import PostgresChatRelay, PostgresChatRepository
from owncast_fast.store.postgres.time_series import PostgresTimeSeriesRepository

# A server that accepts the TCP connection but never answers (a stuck proxy, a paused VM) must
# fail start-up in seconds, not after asyncpg's default minute.
CONNECT_TIMEOUT_S = 5.0

# Settings traffic is light; chat (later issues) is what sizes the pool. Each node holds at most this
# many of the server's `max_connections`.
_POOL_MIN_SIZE = 1
_POOL_MAX_SIZE = 10

# Key of the advisory lock that serialises migrations across nodes: the bytes "owncast" as an integer.
_MIGRATION_LOCK = int.from_bytes(b"owncast", "big")

_UPSERT = (
    "INSERT INTO datastore (key, value, updated_at) VALUES ($1, $2::jsonb, now()) "
    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at"
)

_PASSWORD_IN_QUERY = re.compile(r"(?i)((?:^|&)password=)[^&]*")


def mask_password(url: str) -> str:
    """`url` with the password, in the user info or in a `password=` parameter, replaced by `***`."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user_info, _, hosts = netloc.rpartition("@")
        user = user_info.partition(":")[0]
        netloc = f"{user}:***@{hosts}"
    query = _PASSWORD_IN_QUERY.sub(r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class PostgresConfigRepository:
    """`ConfigRepository` over the `datastore` table; values are JSONB."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, key: str) -> Any | None:
        text = await self._pool.fetchval("SELECT value FROM datastore WHERE key = $1", key)
        return None if text is None else decode_value(text)

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        rows = await self._pool.fetch("SELECT key, value FROM datastore WHERE key = ANY($1::text[])", list(keys))
        return {row["key"]: decode_value(row["value"]) for row in rows}

    async def all(self) -> dict[str, Any]:
        rows = await self._pool.fetch("SELECT key, value FROM datastore")
        return {row["key"]: decode_value(row["value"]) for row in rows}

    async def set(self, key: str, value: Any) -> None:
        await self._pool.execute(_UPSERT, key, encode_value(value))

    async def set_many(self, values: Mapping[str, Any]) -> None:
        # Encoding everything first means an unencodable value fails before the transaction opens.
        rows = [(key, encode_value(value)) for key, value in values.items()]
        if not rows:
            return
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.executemany(_UPSERT, rows)

    async def delete(self, key: str) -> None:
        await self._pool.execute("DELETE FROM datastore WHERE key = $1", key)


class PostgresStore:
    """`Store` over one PostgreSQL database; create it with `await PostgresStore.open(url)`."""

    def __init__(self, pool: asyncpg.Pool, url_for_display: str, schema_version: int) -> None:
        self._pool = pool
        self._url_for_display = url_for_display
        self._schema_version = schema_version
        self._config = PostgresConfigRepository(pool)
        self._time_series = PostgresTimeSeriesRepository(pool)
        self._chat = PostgresChatRepository(pool)
        self._chat_relay = PostgresChatRelay(pool)

    @classmethod
    async def open(cls, url: str, *, connect_timeout: float = CONNECT_TIMEOUT_S) -> PostgresStore:
        """Connect to the database at `url` (`postgresql://` or `postgres://`) and migrate it."""
        display = mask_password(url)
        migrations = load_migrations(__package__ or __name__)
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=_POOL_MIN_SIZE,
                max_size=_POOL_MAX_SIZE,
                timeout=connect_timeout,
                server_settings={"application_name": "owncast-fast"},
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            reason = _connect_failure(exc, connect_timeout)
            password = urlsplit(url).password
            if password:
                reason = reason.replace(password, "***")
            raise StoreError(f"cannot connect to PostgreSQL {display}: {reason}") from exc
        try:
            version = await _migrate(pool, migrations, display)
        except BaseException:
            pool.terminate()
            raise
        return cls(pool, display, version)

    @property
    def config(self) -> PostgresConfigRepository:
        return self._config

    @property
    def time_series(self) -> PostgresTimeSeriesRepository:
        return self._time_series

    @property
    def chat(self) -> PostgresChatRepository:
        return self._chat

    @property
    def chat_relay(self) -> PostgresChatRelay:
        return self._chat_relay

    @property
    def schema_version(self) -> int:
        return self._schema_version

    @property
    def url_for_display(self) -> str:
        return self._url_for_display

    async def close(self) -> None:
        await self._pool.close()


def _connect_failure(exc: BaseException, connect_timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {connect_timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


async def _migrate(pool: asyncpg.Pool, migrations: tuple[Migration, ...], display: str) -> int:
    """Apply the missing migrations, each in one transaction holding the migration lock."""
    async with pool.acquire() as connection:
        try:
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                found = await _inspect(connection, display)
            refuse_newer(found, len(migrations))
        except asyncpg.PostgresError as exc:
            raise StoreError(f"cannot open PostgreSQL database {display}: {exc}") from exc
        for migration in migrations:
            try:
                async with connection.transaction():
                    await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                    current = await _current_version(connection)
                    refuse_newer(current, len(migrations))
                    if current >= migration.version:
                        continue
                    await connection.execute(migration.sql)
                    await connection.execute("INSERT INTO schema_migrations (version) VALUES ($1)", migration.version)
            except asyncpg.PostgresError as exc:
                raise StoreError(
                    f"cannot migrate PostgreSQL database {display} to version {migration.version} "
                    f"({migration.name}): {exc}"
                ) from exc
        return await _current_version(connection)


async def _inspect(connection: asyncpg.Connection, display: str) -> int:
    """The schema version found; creates `schema_migrations` in a database that has none yet."""
    has_migrations = await connection.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not has_migrations:
        if await connection.fetchval("SELECT to_regclass('datastore') IS NOT NULL"):
            raise StoreError(
                f"cannot open PostgreSQL database {display}: "
                "not an owncast-fast database (it has a datastore table but no schema_migrations)"
            )
        await connection.execute(
            "CREATE TABLE schema_migrations ("
            "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
    return await _current_version(connection)


async def _current_version(connection: asyncpg.Connection) -> int:
    return int(await connection.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
