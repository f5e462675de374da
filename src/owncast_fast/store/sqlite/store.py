"""SQLite backend: the single-node default.

Theory of operation: sqlite3 calls block, so a store owns ONE connection living on ONE worker thread
(a single-thread executor). Opening, migrating, every repository call and closing are plain functions
shipped to that thread and awaited from the event loop, which therefore never waits on the disk. One
connection serialises all callers, matching SQLite's single-writer rule, so transactions never
interleave. The connection runs in autocommit mode (`isolation_level=None`); the few multi-statement
writes open their own `BEGIN IMMEDIATE` transaction.

Opening validates before it changes anything: a corrupt file, a database from a newer owncast-fast or
a database that is not ours is refused while it is only being read, so the file stays byte-for-byte as
it was (switching to WAL would rewrite its header and leave -wal/-shm files behind).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from owncast_fast.store.base import StoreError
from owncast_fast.store.codec import decode_value, encode_value
from owncast_fast.store.migrations import Migration, load_migrations, refuse_newer
from owncast_fast.store.sqlite.chat import SingleNodeRelay, SqliteChatRepository
from owncast_fast.store.sqlite.time_series import SqliteTimeSeriesRepository

_T = TypeVar("_T")

# How long a write waits for a lock held by another process (a backup, the sqlite3 shell) before
# failing with "database is locked"; within this process the single connection never contends.
_BUSY_TIMEOUT_MS = 5000

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

_UPSERT = (
    f"INSERT INTO datastore (key, value, updated_at) VALUES (?, ?, {_NOW}) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)


class SqliteConfigRepository:
    """`ConfigRepository` over the `datastore` table; values are JSON text."""

    def __init__(self, executor: ThreadPoolExecutor, connection: sqlite3.Connection) -> None:
        self._executor = executor
        self._connection = connection

    async def _call(self, function: Callable[[sqlite3.Connection], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, self._connection)

    async def get(self, key: str) -> Any | None:
        def query(connection: sqlite3.Connection) -> str | None:
            row = connection.execute("SELECT value FROM datastore WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        text = await self._call(query)
        return None if text is None else decode_value(text)

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        # One JSON array parameter instead of one `?` per key: no limit on how many keys are asked for.
        wanted = encode_value(list(keys))

        def query(connection: sqlite3.Connection) -> list[tuple[str, str]]:
            sql = "SELECT key, value FROM datastore WHERE key IN (SELECT value FROM json_each(?))"
            return connection.execute(sql, (wanted,)).fetchall()

        return {key: decode_value(text) for key, text in await self._call(query)}

    async def all(self) -> dict[str, Any]:
        def query(connection: sqlite3.Connection) -> list[tuple[str, str]]:
            return connection.execute("SELECT key, value FROM datastore").fetchall()

        return {key: decode_value(text) for key, text in await self._call(query)}

    async def set(self, key: str, value: Any) -> None:
        text = encode_value(value)

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(_UPSERT, (key, text))

        await self._call(write)

    async def set_many(self, values: Mapping[str, Any]) -> None:
        # Encoding everything first means an unencodable value fails before the transaction opens.
        rows = [(key, encode_value(value)) for key, value in values.items()]
        if not rows:
            return

        def write(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(_UPSERT, rows)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

        await self._call(write)

    async def delete(self, key: str) -> None:
        def write(connection: sqlite3.Connection) -> None:
            connection.execute("DELETE FROM datastore WHERE key = ?", (key,))

        await self._call(write)


class SqliteStore:
    """`Store` over one SQLite file; create it with `await SqliteStore.open(path)`."""

    def __init__(
        self, path: Path, executor: ThreadPoolExecutor, connection: sqlite3.Connection, schema_version: int
    ) -> None:
        self._path = path
        self._executor = executor
        self._connection = connection
        self._schema_version = schema_version
        self._config = SqliteConfigRepository(executor, connection)
        self._time_series = SqliteTimeSeriesRepository(executor, connection)
        self._chat = SqliteChatRepository(executor, connection)
        self._chat_relay = SingleNodeRelay()
        self._closed = False

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> SqliteStore:
        """Open (creating it and its folders if needed) and migrate the database at `path`."""
        database = Path(path)
        migrations = load_migrations(__package__ or __name__)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="owncast-fast-sqlite")
        try:
            connection, version = await asyncio.get_running_loop().run_in_executor(
                executor, _open_and_migrate, database, migrations
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(database, executor, connection, version)

    @property
    def config(self) -> SqliteConfigRepository:
        return self._config

    @property
    def time_series(self) -> SqliteTimeSeriesRepository:
        return self._time_series

    @property
    def chat(self) -> SqliteChatRepository:
        return self._chat

    @property
    def chat_relay(self) -> SingleNodeRelay:
        return self._chat_relay

    @property
    def schema_version(self) -> int:
        return self._schema_version

    @property
    def url_for_display(self) -> str:
        return str(self._path)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._connection.close)
        finally:
            # The close job has run, so the worker is idle and joins at once.
            self._executor.shutdown(wait=True)


def _open_and_migrate(path: Path, migrations: tuple[Migration, ...]) -> tuple[sqlite3.Connection, int]:
    """Runs on the store's worker thread, which then owns the returned connection."""
    problem = f"cannot open SQLite database {path}"
    _check_location(path, problem)
    try:
        connection = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"{problem}: {exc}") from exc
    try:
        found = _inspect(connection, problem)
        refuse_newer(found, len(migrations))
        _configure(connection, problem)
        return connection, _migrate(connection, migrations, path)
    except BaseException:
        connection.close()
        raise


def _check_location(path: Path, problem: str) -> None:
    """Create the missing folders and explain, in words, why a path cannot hold the database."""
    try:
        parent = path.parent
        nearest = next(folder for folder in (parent, *parent.parents) if folder.exists())
        if not nearest.is_dir():
            raise StoreError(f"{problem}: {nearest} is not a directory")
        parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise StoreError(f"{problem}: it is a directory")
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise StoreError(f"{problem}: permission denied")
        # WAL mode keeps -wal and -shm files next to the database.
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(f"{problem}: directory {parent} is not writable")
    except OSError as exc:
        raise StoreError(f"{problem}: {exc.strerror or exc}") from exc


def _inspect(connection: sqlite3.Connection, problem: str) -> int:
    """The schema version found, reading only (a corrupt file fails here, untouched)."""
    try:
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return 0
        if "schema_migrations" not in tables:
            # For instance an Owncast database, whose gob-encoded settings we cannot read (store/codec.py).
            raise StoreError(f"{problem}: not an owncast-fast database (it has tables but no schema_migrations)")
        return _current_version(connection)
    except sqlite3.Error as exc:
        raise StoreError(f"{problem}: {exc}") from exc


def _configure(connection: sqlite3.Connection, problem: str) -> None:
    try:
        # WAL lets readers (backups, the sqlite3 shell) work while we write; with WAL, NORMAL only
        # risks the last transactions on power loss, never corruption. Owncast uses the same pair.
        _set_wal(connection)
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA temp_store = MEMORY")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
    except sqlite3.Error as exc:
        raise StoreError(f"{problem}: {exc}") from exc


def _set_wal(connection: sqlite3.Connection) -> None:
    """Switch to WAL (persistent in the file). Changing the journal mode needs the database to
    itself and SQLite answers "locked" at once, without its busy handler, while another opener
    migrates it: retry for as long as the busy timeout would have waited."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _current_version(connection: sqlite3.Connection) -> int:
    row = connection.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0])


def _migrate(connection: sqlite3.Connection, migrations: tuple[Migration, ...], path: Path) -> int:
    """Apply the missing migrations, each in one transaction with the row that records it."""
    for migration in migrations:
        if _current_version(connection) >= migration.version:
            continue
        # The recording INSERT comes first: if another process applied this migration since we
        # looked, the primary key stops us before any of the migration's statements run.
        # (executescript commits a pending transaction first, so BEGIN must be part of the script.)
        script = (
            "BEGIN IMMEDIATE;\n"
            f"INSERT INTO schema_migrations (version, applied_at) VALUES ({migration.version}, {_NOW});\n"
            f"{migration.sql}\n;\nCOMMIT;"
        )
        try:
            connection.executescript(script)
        except sqlite3.Error as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if _current_version(connection) >= migration.version:
                continue
            raise StoreError(
                f"cannot migrate SQLite database {path} to version {migration.version} ({migration.name}): {exc}"
            ) from exc
    version = _current_version(connection)
    refuse_newer(version, len(migrations))
    return version
