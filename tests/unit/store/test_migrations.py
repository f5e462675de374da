"""The migration files: shipped as package data, numbered without gaps, the same for both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from owncast_fast.store import StoreError
from owncast_fast.store.migrations import load_migrations


def test_both_backends_ship_the_same_migrations() -> None:
    sqlite = load_migrations("owncast_fast.store.sqlite")
    postgres = load_migrations("owncast_fast.store.postgres")
    assert [(m.version, m.name) for m in sqlite] == [(m.version, m.name) for m in postgres]
    assert [(m.version, m.name) for m in sqlite] == [(1, "initial"), (2, "metric_samples"), (3, "chat")]
    assert "CREATE TABLE datastore" in sqlite[0].sql
    assert "JSONB" in postgres[0].sql
    assert "CREATE TABLE metric_samples" in sqlite[1].sql
    assert "TIMESTAMPTZ" in postgres[1].sql


def make_package(root: Path, files: dict[str, str]) -> str:
    package = root / "fake_backend"
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name, text in files.items():
        (package / "migrations" / name).write_text(text)
    return "fake_backend"


@pytest.fixture
def package_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "fake_backend", raising=False)
    return tmp_path


def test_migrations_are_ordered_by_number_and_other_files_ignored(package_root: Path) -> None:
    package = make_package(
        package_root,
        {"0002_users.sql": "two", "0001_initial.sql": "one", "README.md": "", "0003_draft.sql.orig": ""},
    )
    assert [(m.version, m.name, m.sql) for m in load_migrations(package)] == [
        (1, "initial", "one"),
        (2, "users", "two"),
    ]


def test_a_gap_in_the_numbering_is_refused(package_root: Path) -> None:
    package = make_package(package_root, {"0001_initial.sql": "", "0003_chat.sql": ""})
    with pytest.raises(StoreError) as raised:
        load_migrations(package)
    assert str(raised.value) == "migrations in fake_backend are not numbered 1..2: [1, 3]"
