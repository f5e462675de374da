"""`open_store` picks the backend from the string it is given."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from owncast_fast.store import is_postgres_url, open_store
from owncast_fast.store.postgres import PostgresStore
from owncast_fast.store.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("database", "postgres"),
    [
        ("postgresql://postgres@127.0.0.1/owncast", True),
        ("postgres://postgres@127.0.0.1/owncast", True),
        ("PostgreSQL://db/owncast", True),
        ("data/owncast.db", False),
        ("postgresql.db", False),
        ("/var/lib/owncast/postgres://odd", False),
        ("sqlite:///owncast.db", False),
    ],
)
def test_is_postgres_url(database: str, postgres: bool) -> None:
    assert is_postgres_url(database) is postgres


def test_a_path_opens_sqlite(tmp_path: Path) -> None:
    async def run() -> object:
        store = await open_store(str(tmp_path / "owncast.db"))
        await store.close()
        return store

    assert isinstance(asyncio.run(run()), SqliteStore)


@pytest.mark.postgres
def test_a_url_opens_postgres(postgres_database: str) -> None:
    async def run() -> object:
        store = await open_store(postgres_database)
        await store.close()
        return store

    assert isinstance(asyncio.run(run()), PostgresStore)
