"""Fixtures for the store suite: one event loop per test, and a database of each backend.

There is no pytest-asyncio: a test that awaits takes the `runner` fixture (an `asyncio.Runner`) and
calls `runner.run(coroutine)`; the `store` fixture opens and closes its store on that same loop,
because an asyncpg pool only works on the loop that created it.

PostgreSQL tests (marked `postgres`) share one database created for the session and dropped at the
end; each test starts from an empty `public` schema, as a SQLite test starts from a new file. Point
OWNCAST_FAST_TEST_POSTGRES at another server's maintenance database to use it; deselect with
`-m "not postgres"` where there is no server.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from owncast_fast.store import Store, is_postgres_url, open_store

ADMIN_URL = os.environ.get("OWNCAST_FAST_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

SqlRunner = Callable[[str], list[tuple[Any, ...]]]


async def _postgres_execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"owncast_fast_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_postgres_execute(ADMIN_URL, f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        pytest.fail(f"cannot create a test database at {ADMIN_URL} ({exc}); deselect with -m 'not postgres'")
    yield urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))
    asyncio.run(_postgres_execute(ADMIN_URL, f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _postgres_sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        return [tuple(row) for row in await connection.fetch(statement)]
    finally:
        await connection.close()


def _sqlite_sql(path: str, statement: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        return connection.execute(statement).fetchall()
    finally:
        connection.close()


@pytest.fixture
def postgres_database(postgres_url: str) -> str:
    """The session's PostgreSQL database, emptied: a URL for `open_store`."""
    asyncio.run(_postgres_execute(postgres_url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    return postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What `open_store` is given: a SQLite path in a folder still to be created, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "data" / "owncast.db")
    url: str = request.getfixturevalue("postgres_database")
    return url


def _sql_runner(database: str) -> SqlRunner:
    if is_postgres_url(database):
        return lambda statement: asyncio.run(_postgres_sql(database, statement))
    return lambda statement: _sqlite_sql(database, statement)


@pytest.fixture
def sql(database: str) -> SqlRunner:
    """Run one statement on `database` behind the store's back (not from inside `runner.run`)."""
    return _sql_runner(database)


@pytest.fixture
def postgres_sql(postgres_database: str) -> SqlRunner:
    """Run one statement on `postgres_database` behind the store's back."""
    return _sql_runner(postgres_database)


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture
def store(database: str, runner: asyncio.Runner) -> Iterator[Store]:
    opened = runner.run(open_store(database))
    yield opened
    runner.run(opened.close())
