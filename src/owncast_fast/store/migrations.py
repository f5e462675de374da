"""Numbered SQL migrations shipped as package data, one dialect per backend.

Each backend package holds `migrations/NNNN_name.sql`, numbered from 0001 without gaps; both
backends carry the same numbers and names so that `schema_version` means the same schema whichever
database is used. The version a database is at is the highest `version` in its
`schema_migrations(version, applied_at)` table, which the backend creates before the first migration.
A migration is applied in one transaction together with the row that records it, so migration files
hold plain statements and never BEGIN or COMMIT themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files

from owncast_fast.store.base import StoreError

_FILE_NAME = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> tuple[Migration, ...]:
    """The migrations in `package`'s `migrations/` folder, ordered by version, checked gap-free."""
    folder = files(package).joinpath("migrations")
    migrations = []
    for entry in folder.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            continue
        migrations.append(Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8")))
    migrations.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise StoreError(f"migrations in {package} are not numbered 1..{len(versions)}: {versions}")
    return tuple(migrations)


def refuse_newer(found: int, supported: int) -> None:
    """Raise when a database was migrated by a newer owncast-fast: we could corrupt its data."""
    if found > supported:
        raise StoreError(f"database schema version {found} is newer than this owncast-fast supports ({supported})")
