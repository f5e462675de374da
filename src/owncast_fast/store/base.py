"""The repositories the rest of owncast-fast depends on, declared as Protocols.

Two backends implement them: SQLite (`store/sqlite/`, the single-node default) and PostgreSQL
(`store/postgres/`, shared by several nodes). Both pass the same contract suite in
`tests/unit/store/test_store_contract.py`; code outside `store/` sees only these Protocols.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


class Store(Protocol):
    """An open database: its repositories, and what an operator needs to know about it."""

    @property
    def config(self) -> ConfigRepository: ...

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
