"""PostgreSQL-only behaviour: connection failures, masked passwords, databases that are not ours."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from owncast_fast.store import StoreError, open_store
from owncast_fast.store.migrations import Migration, load_migrations
from owncast_fast.store.postgres import PostgresStore, mask_password
from owncast_fast.store.postgres import store as postgres_store

SqlRunner = Callable[[str], list[tuple[Any, ...]]]


def refusal(url: str) -> str:
    async def run() -> None:
        store = await open_store(url)
        await store.close()

    with pytest.raises(StoreError) as raised:
        asyncio.run(run())
    return str(raised.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://postgres@127.0.0.1:5432/owncast", "postgresql://postgres@127.0.0.1:5432/owncast"),
        ("postgresql://user:secret@db/owncast", "postgresql://user:***@db/owncast"),
        (
            "postgres://user:p%40ss%3Aw@db:5433/o?sslmode=require",
            "postgres://user:***@db:5433/o?sslmode=require",
        ),
        ("postgresql://user:a@b@db/owncast", "postgresql://user:***@db/owncast"),
        ("postgresql://user:@db/owncast", "postgresql://user:***@db/owncast"),
        (
            "postgresql://db/o?user=u&password=secret&sslmode=disable",
            "postgresql://db/o?user=u&password=***&sslmode=disable",
        ),
        ("postgresql://u:s@h1:5432,h2:5433/o", "postgresql://u:***@h1:5432,h2:5433/o"),
    ],
)
def test_mask_password(url: str, masked: str) -> None:
    assert mask_password(url) == masked


def test_an_unreachable_server_fails_fast_with_the_password_masked() -> None:
    started = time.monotonic()
    message = refusal("postgresql://user:secret@127.0.0.1:1/db")
    assert message == "cannot connect to PostgreSQL postgresql://user:***@127.0.0.1:1/db: connection refused"
    assert time.monotonic() - started < 3


def test_a_server_that_never_answers_times_out() -> None:
    async def run() -> str:
        peers: list[asyncio.StreamWriter] = []

        async def accept_and_ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append(writer)
            await reader.read()

        server = await asyncio.start_server(accept_and_ignore, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(StoreError) as raised:
                await PostgresStore.open(f"postgresql://u:secret@127.0.0.1:{port}/db", connect_timeout=0.3)
        finally:
            for writer in peers:
                writer.close()
            server.close()
            await server.wait_closed()
        return str(raised.value).replace(str(port), "PORT")

    assert asyncio.run(run()) == (
        "cannot connect to PostgreSQL postgresql://u:***@127.0.0.1:PORT/db: no answer within 0.3 s"
    )


@pytest.mark.postgres
def test_a_missing_database_is_refused_and_not_created(postgres_url: str) -> None:
    name = f"owncast_fast_missing_{secrets.token_hex(4)}"
    url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    assert refusal(url) == f'cannot connect to PostgreSQL {url}: database "{name}" does not exist'

    async def exists() -> bool:
        connection = await asyncpg.connect(postgres_url, timeout=5)
        try:
            return bool(await connection.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name))
        finally:
            await connection.close()

    assert not asyncio.run(exists())


@pytest.mark.postgres
def test_a_foreign_datastore_table_is_refused_and_left_untouched(
    postgres_database: str, postgres_sql: SqlRunner
) -> None:
    postgres_sql("CREATE TABLE datastore (key TEXT PRIMARY KEY, value BYTEA)")
    postgres_sql("INSERT INTO datastore VALUES ('server_name', '\\x0c')")
    assert refusal(postgres_database) == (
        f"cannot open PostgreSQL database {postgres_database}: "
        "not an owncast-fast database (it has a datastore table but no schema_migrations)"
    )
    assert postgres_sql("SELECT to_regclass('schema_migrations') IS NULL") == [(True,)]
    assert postgres_sql("SELECT key, value FROM datastore") == [("server_name", b"\x0c")]


@pytest.mark.postgres
def test_a_failing_migration_is_rolled_back(
    postgres_database: str, postgres_sql: SqlRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = load_migrations("owncast_fast.store.postgres")
    broken = Migration(len(shipped) + 1, "broken", "CREATE TABLE half_done (x INTEGER);\nNOT SQL;\n")
    monkeypatch.setattr(postgres_store, "load_migrations", lambda package: (*shipped, broken))
    assert refusal(postgres_database) == (
        f"cannot migrate PostgreSQL database {postgres_database} to version {broken.version} (broken): "
        'syntax error at or near "NOT"'
    )
    assert postgres_sql("SELECT to_regclass('half_done') IS NULL") == [(True,)]
    assert postgres_sql("SELECT version FROM schema_migrations ORDER BY version") == [
        (migration.version,) for migration in shipped
    ]


@pytest.mark.postgres
def test_values_are_stored_as_jsonb(postgres_database: str, postgres_sql: SqlRunner) -> None:
    async def run() -> None:
        store = await open_store(postgres_database)
        await store.config.set("video_stream_output_variants", [{"framerate": 24, "videoBitrate": 1200}])
        await store.close()

    asyncio.run(run())
    assert postgres_sql("SELECT jsonb_typeof(value), value -> 0 ->> 'framerate' FROM datastore") == [("array", "24")]
