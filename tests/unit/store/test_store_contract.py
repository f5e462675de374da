"""The contract every store backend keeps; each test runs against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from owncast_fast.store import Sample, Store, StoreError, open_store
from owncast_fast.store.migrations import load_migrations

SqlRunner = Callable[[str], list[tuple[Any, ...]]]

LATEST_VERSION = len(load_migrations("owncast_fast.store.sqlite"))

NESTED = {
    "social_handles": [{"platform": "github", "url": "https://github.com/owncast/owncast"}],
    "s3_storage_config": {"enabled": False, "endpoint": "", "maxRetries": 3, "acl": None},
    "deep": {"a": [[1, [2, [3, {"b": [True, False, None]}]]]]},
}


def test_get_of_a_missing_key_is_none(store: Store, runner: asyncio.Runner) -> None:
    assert runner.run(store.config.get("server_name")) is None


def test_set_then_get(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.config.set("server_name", "New Owncast Server"))
    assert runner.run(store.config.get("server_name")) == "New Owncast Server"


def test_set_overwrites(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.config.set("http_port_number", 8080))
    runner.run(store.config.set("http_port_number", 8081))
    assert runner.run(store.config.all()) == {"http_port_number": 8081}


def test_delete_removes_only_that_key(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.config.set_many({"nsfw": True, "chat_disabled": False}))
    runner.run(store.config.delete("nsfw"))
    runner.run(store.config.delete("nsfw"))  # deleting what is not there is not an error
    assert runner.run(store.config.all()) == {"chat_disabled": False}


def test_get_many_leaves_out_missing_keys(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.config.set_many({"a": 1, "b": 2, "c": 3}))
    assert runner.run(store.config.get_many(key for key in ["a", "c", "missing"])) == {"a": 1, "c": 3}
    assert runner.run(store.config.get_many([])) == {}


def test_null_is_a_stored_value(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.config.set("directory_registration_key", None))
    assert runner.run(store.config.get("directory_registration_key")) is None
    assert runner.run(store.config.get_many(["directory_registration_key"])) == {"directory_registration_key": None}


def test_unicode_keys_and_values(store: Store, runner: asyncio.Runner) -> None:
    values = {
        "server_name": "Ünïcödé 🎥 ライブ",
        "ключ": "שלום עולם",
        "combining": "e\u0301 \u2028 \u2029 \ufeff",
        "emoji 🔑": ["🙂", {"🧪": "ok"}],
    }
    runner.run(store.config.set_many(values))
    assert runner.run(store.config.all()) == values


@pytest.mark.parametrize(
    "value",
    [
        NESTED,
        [],
        {},
        "",
        0,
        -(2**63),
        2**64 - 1,
        0.1,
        1500.0,
        5e-324,
        True,
        ["owncast", "operator", "admin", "system"],
    ],
)
def test_json_values_round_trip(store: Store, runner: asyncio.Runner, value: Any) -> None:
    runner.run(store.config.set("key", value))
    stored = runner.run(store.config.get("key"))
    assert stored == value
    assert type(stored) is type(value)


# Lone surrogates are not text (no UTF-8 form); PostgreSQL text cannot hold U+0000.
JSON_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    # Above 1e16 PostgreSQL's JSONB turns floats into ints (see store/codec.py).
    | st.floats(min_value=-1e15, max_value=1e15)
    | JSON_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(JSON_TEXT, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=JSON_TEXT, value=JSON_VALUES)
def test_any_json_value_round_trips(store: Store, runner: asyncio.Runner, key: str, value: Any) -> None:
    runner.run(store.config.set(key, value))
    assert runner.run(store.config.get_many([key])) == {key: value}


def test_unencodable_value_is_refused_and_keeps_the_old_one(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.config.set("stream_title", "before"))
    with pytest.raises(TypeError):
        runner.run(store.config.set("stream_title", object()))
    assert runner.run(store.config.get("stream_title")) == "before"


def test_set_many_writes_every_pair(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.config.set("nsfw", False))
    runner.run(store.config.set_many({"nsfw": True, "stream_title": "Live", "tags": ["a", "b"]}))
    assert runner.run(store.config.all()) == {"nsfw": True, "stream_title": "Live", "tags": ["a", "b"]}
    runner.run(store.config.set_many({}))
    assert len(runner.run(store.config.all())) == 3


def test_set_many_with_an_unencodable_value_writes_nothing(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.config.set("a", 1))
    with pytest.raises(TypeError):
        runner.run(store.config.set_many({"a": 2, "b": 3, "c": {1, 2}}))
    assert runner.run(store.config.all()) == {"a": 1}


def test_set_many_failing_in_the_database_writes_nothing(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.config.set("a", 1))
    # "a" and "b" reach the database before the NULL key breaks the NOT NULL constraint.
    with pytest.raises((sqlite3.IntegrityError, asyncpg.NotNullViolationError)):
        runner.run(store.config.set_many({"a": 2, "b": 3, None: 4}))  # type: ignore[dict-item]
    assert runner.run(store.config.all()) == {"a": 1}


def test_concurrent_sets_from_many_tasks(store: Store, runner: asyncio.Runner) -> None:
    async def write_all() -> None:
        distinct = [store.config.set(f"key-{number}", number) for number in range(200)]
        shared = [store.config.set("shared", number) for number in range(50)]
        await asyncio.gather(*distinct, *shared)

    runner.run(write_all())
    stored = runner.run(store.config.all())
    assert {key: value for key, value in stored.items() if key != "shared"} == {
        f"key-{number}": number for number in range(200)
    }
    assert stored["shared"] in range(50)


def test_concurrent_set_many_never_interleave(store: Store, runner: asyncio.Runner) -> None:
    async def write_pairs() -> None:
        await asyncio.gather(*(store.config.set_many({"x": number, "y": number}) for number in range(100)))

    runner.run(write_pairs())
    stored = runner.run(store.config.all())
    assert stored["x"] == stored["y"]


def test_data_survives_close_and_reopen(database: str, runner: asyncio.Runner) -> None:
    async def write() -> None:
        store = await open_store(database)
        await store.config.set_many({"server_name": "Persistent", "nested": NESTED})
        await store.close()

    async def read() -> dict[str, Any]:
        store = await open_store(database)
        try:
            return await store.config.all()
        finally:
            await store.close()

    runner.run(write())
    assert runner.run(read()) == {"server_name": "Persistent", "nested": NESTED}


def test_schema_version_is_the_newest_migration(store: Store, sql: SqlRunner) -> None:
    assert store.schema_version == LATEST_VERSION == 3
    assert [row[0] for row in sql("SELECT version FROM schema_migrations ORDER BY version")] == [1, 2, 3]


def test_reopening_applies_no_migration_twice(database: str, runner: asyncio.Runner, sql: SqlRunner) -> None:
    async def open_and_close() -> int:
        store = await open_store(database)
        await store.close()
        return store.schema_version

    assert runner.run(open_and_close()) == LATEST_VERSION
    recorded = sql("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert runner.run(open_and_close()) == LATEST_VERSION
    assert sql("SELECT version, applied_at FROM schema_migrations ORDER BY version") == recorded


def test_concurrent_opens_migrate_once(database: str, runner: asyncio.Runner, sql: SqlRunner) -> None:
    async def open_several() -> list[int]:
        stores = await asyncio.gather(*(open_store(database) for _ in range(4)))
        await asyncio.gather(*(store.close() for store in stores))
        return [store.schema_version for store in stores]

    assert runner.run(open_several()) == [LATEST_VERSION] * 4
    assert sorted(row[0] for row in sql("SELECT version FROM schema_migrations")) == [1, 2, 3]


def test_newer_schema_refuses_to_open_and_changes_nothing(store: Store, runner: asyncio.Runner, sql: SqlRunner) -> None:
    runner.run(store.config.set("server_name", "kept"))
    sql("INSERT INTO schema_migrations (version, applied_at) VALUES (9, '2030-01-01T00:00:00Z')")
    migrations_before = sql("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    with pytest.raises(StoreError) as raised:
        runner.run(open_store(store.url_for_display))
    assert str(raised.value) == "database schema version 9 is newer than this owncast-fast supports (3)"
    assert sql("SELECT version, applied_at FROM schema_migrations ORDER BY version") == migrations_before
    assert runner.run(store.config.all()) == {"server_name": "kept"}


def test_close_twice_is_harmless(database: str, runner: asyncio.Runner) -> None:
    store = runner.run(open_store(database))
    runner.run(store.close())
    runner.run(store.close())


def test_url_for_display_names_the_database(store: Store, database: str) -> None:
    # The test databases have no password, so there is nothing to mask.
    assert store.url_for_display == database


# -- time series ------------------------------------------------------------------------------------

T0 = datetime(2025, 1, 11, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_time_series_returns_the_window_oldest_first(store: Store, runner: asyncio.Runner) -> None:
    async def write() -> None:
        for offset, value in [(240, 3.0), (0, 1.0), (120, 2.0), (360, 4.0)]:
            await store.time_series.add("viewer_count", at(offset), value)
        await store.time_series.add("chat_client_count", at(120), 9.0)

    runner.run(write())
    window = runner.run(store.time_series.between("viewer_count", at(120), at(240)))
    assert window == [Sample(at(120), 2.0), Sample(at(240), 3.0)]  # both ends included
    assert runner.run(store.time_series.between("viewer_count", at(-60), at(600))) == [
        Sample(at(0), 1.0),
        Sample(at(120), 2.0),
        Sample(at(240), 3.0),
        Sample(at(360), 4.0),
    ]
    assert runner.run(store.time_series.between("missing", at(0), at(600))) == []
    assert runner.run(store.time_series.between("viewer_count", at(600), at(0))) == []


def test_time_series_keeps_whole_seconds_in_utc(store: Store, runner: asyncio.Runner) -> None:
    paris = timezone(timedelta(hours=1))
    runner.run(store.time_series.add("viewer_count", datetime(2025, 1, 11, 13, 0, 5, 999_999, tzinfo=paris), 7))
    [sample] = runner.run(store.time_series.between("viewer_count", at(5), at(5)))
    assert sample == Sample(at(5), 7.0)
    assert sample.time.utcoffset() == timedelta(0)
    assert type(sample.value) is float


def test_time_series_sample_in_the_same_second_replaces(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.time_series.add("viewer_count", at(10.2), 1))
    runner.run(store.time_series.add("viewer_count", at(10.7), 2))
    assert runner.run(store.time_series.between("viewer_count", at(0), at(60))) == [Sample(at(10), 2.0)]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_time_series_refuses_values_that_are_not_finite(store: Store, runner: asyncio.Runner, value: float) -> None:
    with pytest.raises(ValueError, match="is not finite"):
        runner.run(store.time_series.add("viewer_count", at(0), value))
    assert runner.run(store.time_series.between("viewer_count", at(0), at(0))) == []


def test_time_series_refuses_a_naive_time(store: Store, runner: asyncio.Runner) -> None:
    with pytest.raises(ValueError, match="has no timezone"):
        runner.run(store.time_series.add("viewer_count", datetime(2025, 1, 11), 1))
    with pytest.raises(ValueError, match="has no timezone"):
        runner.run(store.time_series.between("viewer_count", datetime(2025, 1, 11), at(0)))


def test_time_series_delete_before_removes_older_samples_of_every_metric(store: Store, runner: asyncio.Runner) -> None:
    async def write() -> None:
        for offset in (0, 60, 120):
            await store.time_series.add("viewer_count", at(offset), offset)
            await store.time_series.add("chat_client_count", at(offset), offset)

    runner.run(write())
    assert runner.run(store.time_series.delete_before(at(60))) == 2  # strictly older
    assert runner.run(store.time_series.delete_before(at(60))) == 0
    assert [s.time for s in runner.run(store.time_series.between("viewer_count", at(0), at(120)))] == [at(60), at(120)]
    assert len(runner.run(store.time_series.between("chat_client_count", at(0), at(120)))) == 2


def test_time_series_survives_close_and_reopen(database: str, runner: asyncio.Runner) -> None:
    async def write() -> None:
        store = await open_store(database)
        await store.time_series.add("viewer_count", at(0), 12)
        await store.close()

    async def read() -> list[Sample]:
        store = await open_store(database)
        try:
            return await store.time_series.between("viewer_count", at(0), at(0))
        finally:
            await store.close()

    runner.run(write())
    assert runner.run(read()) == [Sample(at(0), 12.0)]
