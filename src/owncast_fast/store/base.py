"""The repositories the rest of owncast-fast depends on, declared as Protocols.

Two backends implement them: SQLite (`store/sqlite/`, the single-node default) and PostgreSQL
(`store/postgres/`, shared by several nodes). Both pass the same contract suite in
`tests/unit/store/test_store_contract.py`; code outside `store/` sees only these Protocols.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class StoreError(Exception):
    """The store cannot be opened; the message is one line naming the problem (and never a password).

    Raised for unreadable or corrupt SQLite files, unreachable or missing PostgreSQL databases,
    schema versions newer than this code, failed migrations and databases that are not ours.
    """


class ConfigRepository(Protocol):
    """Owncast's "datastore": setting key → JSON-serialisable value (see `store/codec.py`)."""

    async def get(self, key: str) -> Any | None:
        """The value stored under `key`, or None when there is none."""
        ...

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The stored values among `keys`; keys without a value are left out of the result."""
        ...

    async def all(self) -> dict[str, Any]:
        """Every stored key and value."""
        ...

    async def set(self, key: str, value: Any) -> None:
        """Store `value` under `key`, replacing any previous value.

        Raises TypeError (orjson.JSONEncodeError) when `value` is not JSON-serialisable.
        """
        ...

    async def set_many(self, values: Mapping[str, Any]) -> None:
        """Store every pair in one transaction: either all are written or none is."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key`; removing a key that is not there is not an error."""
        ...


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of a time series, at a whole second (UTC)."""

    time: datetime
    value: float


class TimeSeriesRepository(Protocol):
    """Timestamped numbers by metric name, such as the viewer count sampled while live.

    Owncast keeps these in `data/metrics` (a tstorage database, reference §5); here they live in the
    store so that they survive restarts and are shared by every node. Times are kept to the second
    (tstorage's precision) and must be timezone-aware.
    """

    async def add(self, metric: str, time: datetime, value: float) -> None:
        """Record `value` at `time`; a second sample of `metric` in the same second replaces the first.

        Raises ValueError for a naive `time` or a value that is not finite (NaN or infinite).
        """
        ...

    async def between(self, metric: str, start: datetime, end: datetime) -> list[Sample]:
        """The samples of `metric` with `start <= time <= end` (both to the second), oldest first."""
        ...

    async def delete_before(self, time: datetime) -> int:
        """Remove every sample, of every metric, older than `time`; returns how many were removed."""
        ...


class Store(Protocol):
    """An open database: its repositories, and what an operator needs to know about it."""

    @property
    def config(self) -> ConfigRepository: ...

    @property
    def time_series(self) -> TimeSeriesRepository: ...

    @property
    def schema_version(self) -> int:
        """The migration number the database is at (after the migrations run on open)."""
        ...

    @property
    def url_for_display(self) -> str:
        """Where the database is, safe to log: passwords are masked as `***`."""
        ...

    async def close(self) -> None:
        """Release the connection(s); closing twice is harmless."""
        ...
