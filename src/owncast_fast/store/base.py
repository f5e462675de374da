"""The repositories the rest of owncast-fast depends on, declared as Protocols.

Two backends implement them: SQLite (`store/sqlite/`, the single-node default) and PostgreSQL
(`store/postgres/`, shared by several nodes). Both pass the same contract suite in
`tests/unit/store/test_store_contract.py`; code outside `store/` sees only these Protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


@dataclass(frozen=True, slots=True)
class ChatUser:
    """A row of Owncast's `users` table (reference §1.3, §6.2). Times are timezone-aware UTC."""

    id: str
    display_name: str
    display_color: int
    created_at: datetime
    previous_names: tuple[str, ...] = ()
    name_changed_at: datetime | None = None
    disabled_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    authenticated_at: datetime | None = None
    type: str = "STANDARD"  # or "API" for integration bots


@dataclass(frozen=True, slots=True)
class ChatMessageRow:
    """A row of `messages`: `body` is the rendered HTML; `user_id` is None for system/action rows."""

    id: str
    user_id: str | None
    body: str
    event_type: str
    timestamp: datetime
    hidden_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IpBan:
    ip_address: str
    notes: str
    created_at: datetime


class ChatRepository(Protocol):
    """Chat users, their access tokens, messages and IP bans (Owncast's tables of the same names)."""

    async def create_user(self, user: ChatUser, token: str) -> None:
        """Insert `user` and its first access token, in one transaction."""
        ...

    async def user_by_token(self, token: str) -> ChatUser | None: ...

    async def user_by_id(self, user_id: str) -> ChatUser | None: ...

    async def rename_user(self, user_id: str, name: str, changed_at: datetime) -> None:
        """Set the display name, append it to `previous_names` and set `namechanged_at`."""
        ...

    async def set_user_color(self, user_id: str, color: int) -> None: ...

    async def set_user_disabled(self, user_id: str, disabled_at: datetime | None) -> None: ...

    async def set_user_scopes(self, user_id: str, scopes: tuple[str, ...]) -> None: ...

    async def name_is_registered(self, name: str) -> bool:
        """Whether an enabled, registered (authenticated or API) user has exactly this display name."""
        ...

    async def disabled_users(self) -> list[ChatUser]: ...

    async def users_with_scope(self, scope: str) -> list[ChatUser]: ...

    async def add_message(self, message: ChatMessageRow) -> None: ...

    async def visible_history(self, limit: int) -> list[tuple[ChatMessageRow, ChatUser]]:
        """The `limit` newest messages that have an author, are not hidden and whose author is
        enabled, oldest first, each with its author."""
        ...

    async def all_history(self, limit: int) -> list[tuple[ChatMessageRow, ChatUser]]:
        """The `limit` newest messages that have an author, hidden ones included, newest first."""
        ...

    async def messages_of_user(self, user_id: str, limit: int) -> list[ChatMessageRow]:
        """The user's `limit` newest messages, newest first."""
        ...

    async def set_messages_hidden(self, ids: Iterable[str], hidden_at: datetime | None) -> list[str]:
        """Set `hidden_at` on the messages with these ids; returns the ids that exist."""
        ...

    async def hide_messages_of_user(self, user_id: str, hidden_at: datetime) -> list[str]:
        """Hide every visible message of the user; returns their ids, oldest first."""
        ...

    async def delete_messages_before(self, time: datetime) -> int: ...

    async def add_ip_ban(self, ban: IpBan) -> bool:
        """Record the ban; False when the address was already banned (the first ban is kept)."""
        ...

    async def remove_ip_ban(self, ip_address: str) -> bool: ...

    async def ip_bans(self) -> list[IpBan]:
        """Every ban, oldest first."""
        ...

    async def counts(self) -> tuple[int, int]:
        """How many users and how many messages are stored."""
        ...


class ChatRelay(Protocol):
    """Chat fan-out between the nodes that share this store.

    PostgreSQL relays through LISTEN/NOTIFY (payloads under 8,000 bytes, delivered to every
    listening node, the sender included, in commit order); a SQLite store has one node, so its
    relay is not `shared` and delivers nothing.
    """

    @property
    def shared(self) -> bool: ...

    async def start(self, receive: Callable[[str], None]) -> None:
        """Start listening; `receive` is called on the event loop with each payload."""
        ...

    async def publish(self, payload: str) -> None: ...

    async def stop(self) -> None: ...


class Store(Protocol):
    """An open database: its repositories, and what an operator needs to know about it."""

    @property
    def config(self) -> ConfigRepository: ...

    @property
    def chat(self) -> ChatRepository: ...

    @property
    def chat_relay(self) -> ChatRelay: ...

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
