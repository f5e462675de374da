"""SQLite-only behaviour: where the file may live, what it refuses to open, and its worker thread."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from owncast_fast.store import StoreError, open_store
from owncast_fast.store.migrations import Migration, load_migrations
from owncast_fast.store.sqlite import SqliteStore
from owncast_fast.store.sqlite import store as sqlite_store

needs_non_root = pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")


def open_and_close(path: Path) -> None:
    async def run() -> None:
        store = await open_store(str(path))
        await store.close()

    asyncio.run(run())


def refusal(path: Path) -> str:
    with pytest.raises(StoreError) as raised:
        open_and_close(path)
    return str(raised.value)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}


def test_missing_folders_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "owncast.db"
    open_and_close(path)
    assert path.is_file()


def test_an_empty_file_becomes_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "owncast.db"
    path.touch()
    open_and_close(path)
    assert path.stat().st_size > 0


def test_relative_path_is_relative_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    async def run() -> str:
        store = await open_store("data/owncast.db")
        await store.close()
        return store.url_for_display

    assert asyncio.run(run()) == "data/owncast.db"
    assert (tmp_path / "data" / "owncast.db").is_file()


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "owncast.db"
    open_and_close(path)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "owncast.db"
    path.mkdir()
    assert refusal(path) == f"cannot open SQLite database {path}: it is a directory"
    assert list(path.iterdir()) == []


@pytest.mark.parametrize("below", [(), ("data",)])
def test_a_path_below_a_regular_file_is_refused(tmp_path: Path, below: tuple[str, ...]) -> None:
    regular = tmp_path / "regular"
    regular.write_bytes(b"not a folder")
    path = regular.joinpath(*below, "owncast.db")
    assert refusal(path) == f"cannot open SQLite database {path}: {regular} is not a directory"
    assert snapshot(tmp_path) == {"regular": b"not a folder"}


@needs_non_root
def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "owncast.db"
    open_and_close(path)
    path.chmod(0)
    assert refusal(path) == f"cannot open SQLite database {path}: permission denied"


@needs_non_root
def test_an_unwritable_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o555)
    path = folder / "owncast.db"
    assert refusal(path) == f"cannot open SQLite database {path}: directory {folder} is not writable"


def test_a_corrupt_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "owncast.db"
    path.write_bytes(random.Random(6).randbytes(8192))
    before = snapshot(tmp_path)
    assert refusal(path) == f"cannot open SQLite database {path}: file is not a database"
    assert snapshot(tmp_path) == before  # byte for byte, and no -wal, -shm or -journal left behind


def test_an_owncast_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "owncast.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT)")
        connection.execute("CREATE TABLE datastore (key TEXT PRIMARY KEY, value BLOB, timestamp DATE)")
        connection.execute("INSERT INTO config VALUES ('version', '7')")
    connection.close()
    before = snapshot(tmp_path)
    assert refusal(path) == (
        f"cannot open SQLite database {path}: not an owncast-fast database (it has tables but no schema_migrations)"
    )
    assert snapshot(tmp_path) == before


def test_a_newer_database_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "owncast.db"
    open_and_close(path)
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO schema_migrations VALUES (9, '2030-01-01T00:00:00Z')")
    connection.close()
    before = snapshot(tmp_path)
    supported = len(load_migrations("owncast_fast.store.sqlite"))
    assert refusal(path) == f"database schema version 9 is newer than this owncast-fast supports ({supported})"
    assert snapshot(tmp_path) == before


def test_a_failing_migration_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "owncast.db"
    open_and_close(path)
    shipped = load_migrations("owncast_fast.store.sqlite")
    broken = Migration(len(shipped) + 1, "broken", "CREATE TABLE half_done (x INTEGER);\nNOT SQL;\n")
    monkeypatch.setattr(sqlite_store, "load_migrations", lambda package: (*shipped, broken))
    assert refusal(path) == (
        f'cannot migrate SQLite database {path} to version {broken.version} (broken): near "NOT": syntax error'
    )
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        versions = connection.execute("SELECT version FROM schema_migrations").fetchall()
    connection.close()
    assert "half_done" not in tables
    assert versions == [(migration.version,) for migration in shipped]


class RecordingConnection(sqlite3.Connection):
    """Notes the thread of every call that can block."""

    threads: set[str] = set()

    def execute(self, *args: Any) -> sqlite3.Cursor:
        self.threads.add(threading.current_thread().name)
        return super().execute(*args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        self.threads.add(threading.current_thread().name)
        return super().executemany(*args)

    def executescript(self, *args: Any) -> sqlite3.Cursor:
        self.threads.add(threading.current_thread().name)
        return super().executescript(*args)

    def close(self) -> None:
        self.threads.add(threading.current_thread().name)
        super().close()


def test_every_sqlite_call_runs_on_the_worker_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    connect = sqlite3.connect

    def recording_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        RecordingConnection.threads.add(threading.current_thread().name)
        return connect(*args, factory=RecordingConnection, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", recording_connect)
    RecordingConnection.threads.clear()

    async def use() -> None:
        store = await SqliteStore.open(tmp_path / "owncast.db")
        await store.config.set("a", 1)
        await store.config.set_many({"b": 2, "c": 3})
        await store.config.get("a")
        await store.config.get_many(["a", "b"])
        await store.config.all()
        await store.config.delete("a")
        await store.close()

    asyncio.run(use())
    assert len(RecordingConnection.threads) == 1
    assert RecordingConnection.threads.pop().startswith("owncast-fast-sqlite")
