"""`ChatRepository` over SQLite: users, user_access_tokens, messages, ip_bans (migration 0003).

Times are stored as RFC 3339 text in UTC with microseconds, so text order is time order.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from owncast_fast.store.base import ChatMessageRow, ChatUser, IpBan
from owncast_fast.store.codec import encode_value

_T = TypeVar("_T")

_USER_COLUMNS = (
    "u.id, u.display_name, u.display_color, u.created_at, u.previous_names, u.namechanged_at, "
    "u.disabled_at, u.scopes, u.authenticated_at, u.type"
)
_MESSAGE_COLUMNS = "m.id, m.user_id, m.body, m.event_type, m.timestamp, m.hidden_at"


def _text(time: datetime | None) -> str | None:
    if time is None:
        return None
    if time.tzinfo is None:
        raise ValueError(f"time {time.isoformat()} has no timezone")
    return time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",") if part)


def _user(row: tuple[Any, ...]) -> ChatUser:
    created = _time(row[3])
    assert created is not None
    return ChatUser(
        id=row[0],
        display_name=row[1],
        display_color=int(row[2]),
        created_at=created,
        previous_names=_split(row[4]),
        name_changed_at=_time(row[5]),
        disabled_at=_time(row[6]),
        scopes=_split(row[7]),
        authenticated_at=_time(row[8]),
        type=row[9],
    )


def _message(row: tuple[Any, ...]) -> ChatMessageRow:
    timestamp = _time(row[4])
    assert timestamp is not None
    return ChatMessageRow(row[0], row[1], row[2], row[3], timestamp, _time(row[5]))


class SqliteChatRepository:
    """Runs on the store's one connection and worker thread, like the config repository."""

    def __init__(self, executor: ThreadPoolExecutor, connection: sqlite3.Connection) -> None:
        self._executor = executor
        self._connection = connection

    async def _call(self, function: Callable[[sqlite3.Connection], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, self._connection)

    async def _one_user(self, where: str, value: str) -> ChatUser | None:
        def query(connection: sqlite3.Connection) -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = connection.execute(
                f"SELECT {_USER_COLUMNS} FROM users u {where}", (value,)
            ).fetchone()
            return row

        row = await self._call(query)
        return None if row is None else _user(row)

    async def _users(self, where: str, *values: Any) -> list[ChatUser]:
        def query(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            sql = f"SELECT {_USER_COLUMNS} FROM users u {where} ORDER BY u.created_at, u.id"
            return connection.execute(sql, values).fetchall()

        return [_user(row) for row in await self._call(query)]

    async def _write(self, sql: str, *values: Any) -> int:
        def write(connection: sqlite3.Connection) -> int:
            return connection.execute(sql, values).rowcount

        return await self._call(write)

    async def create_user(self, user: ChatUser, token: str) -> None:
        row = (
            user.id,
            user.display_name,
            user.display_color,
            _text(user.created_at),
            ",".join(user.previous_names),
            _text(user.name_changed_at),
            _text(user.disabled_at),
            ",".join(user.scopes),
            _text(user.authenticated_at),
            user.type,
        )

        def write(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(
                    "INSERT INTO users (id, display_name, display_color, created_at, previous_names, "
                    "namechanged_at, disabled_at, scopes, authenticated_at, type) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    row,
                )
                connection.execute(
                    "INSERT INTO user_access_tokens (token, user_id, timestamp) VALUES (?, ?, ?)",
                    (token, user.id, row[3]),
                )
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

        await self._call(write)

    async def user_by_token(self, token: str) -> ChatUser | None:
        return await self._one_user("JOIN user_access_tokens t ON t.user_id = u.id WHERE t.token = ?", token)

    async def user_by_id(self, user_id: str) -> ChatUser | None:
        return await self._one_user("WHERE u.id = ?", user_id)

    async def rename_user(self, user_id: str, name: str, changed_at: datetime) -> None:
        await self._write(
            "UPDATE users SET display_name = ?, namechanged_at = ?, "
            "previous_names = CASE WHEN previous_names = '' THEN ? ELSE previous_names || ',' || ? END "
            "WHERE id = ?",
            name,
            _text(changed_at),
            name,
            name,
            user_id,
        )

    async def set_user_color(self, user_id: str, color: int) -> None:
        await self._write("UPDATE users SET display_color = ? WHERE id = ?", color, user_id)

    async def set_user_disabled(self, user_id: str, disabled_at: datetime | None) -> None:
        await self._write("UPDATE users SET disabled_at = ? WHERE id = ?", _text(disabled_at), user_id)

    async def set_user_scopes(self, user_id: str, scopes: tuple[str, ...]) -> None:
        await self._write("UPDATE users SET scopes = ? WHERE id = ?", ",".join(scopes), user_id)

    async def name_is_registered(self, name: str) -> bool:
        def query(connection: sqlite3.Connection) -> bool:
            sql = (
                "SELECT 1 FROM users WHERE display_name = ? AND disabled_at IS NULL "
                "AND (authenticated_at IS NOT NULL OR type = 'API') LIMIT 1"
            )
            return connection.execute(sql, (name,)).fetchone() is not None

        return await self._call(query)

    async def disabled_users(self) -> list[ChatUser]:
        return await self._users("WHERE u.disabled_at IS NOT NULL")

    async def users_with_scope(self, scope: str) -> list[ChatUser]:
        return await self._users("WHERE ',' || u.scopes || ',' LIKE '%,' || ? || ',%'", scope)

    async def add_message(self, message: ChatMessageRow) -> None:
        await self._write(
            "INSERT INTO messages (id, user_id, body, event_type, timestamp, hidden_at) VALUES (?,?,?,?,?,?)",
            message.id,
            message.user_id,
            message.body,
            message.event_type,
            _text(message.timestamp),
            _text(message.hidden_at),
        )

    async def _history(self, where: str, order: str, limit: int) -> list[tuple[ChatMessageRow, ChatUser]]:
        def query(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            sql = (
                f"SELECT {_MESSAGE_COLUMNS}, {_USER_COLUMNS} FROM messages m JOIN users u ON u.id = m.user_id "
                f"{where} ORDER BY m.timestamp DESC, m.seq DESC LIMIT ?"
            )
            return connection.execute(sql, (limit,)).fetchall()

        rows = [(_message(row[:6]), _user(row[6:])) for row in await self._call(query)]
        if order == "oldest first":
            rows.reverse()
        return rows

    async def visible_history(self, limit: int) -> list[tuple[ChatMessageRow, ChatUser]]:
        return await self._history("WHERE m.hidden_at IS NULL AND u.disabled_at IS NULL", "oldest first", limit)

    async def all_history(self, limit: int) -> list[tuple[ChatMessageRow, ChatUser]]:
        return await self._history("", "newest first", limit)

    async def messages_of_user(self, user_id: str, limit: int) -> list[ChatMessageRow]:
        def query(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            sql = (
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.user_id = ? "
                "ORDER BY m.timestamp DESC, m.seq DESC LIMIT ?"
            )
            return connection.execute(sql, (user_id, limit)).fetchall()

        return [_message(row) for row in await self._call(query)]

    async def set_messages_hidden(self, ids: Iterable[str], hidden_at: datetime | None) -> list[str]:
        wanted = encode_value(list(ids))
        stamp = _text(hidden_at)

        def write(connection: sqlite3.Connection) -> list[str]:
            matching = "id IN (SELECT value FROM json_each(?))"
            found = [
                row[0]
                for row in connection.execute(f"SELECT id FROM messages WHERE {matching} ORDER BY seq", (wanted,))
            ]
            connection.execute(f"UPDATE messages SET hidden_at = ? WHERE {matching}", (stamp, wanted))
            return found

        return await self._call(write)

    async def hide_messages_of_user(self, user_id: str, hidden_at: datetime) -> list[str]:
        stamp = _text(hidden_at)

        def write(connection: sqlite3.Connection) -> list[str]:
            matching = "user_id = ? AND hidden_at IS NULL"
            found = [
                row[0]
                for row in connection.execute(f"SELECT id FROM messages WHERE {matching} ORDER BY seq", (user_id,))
            ]
            connection.execute(f"UPDATE messages SET hidden_at = ? WHERE {matching}", (stamp, user_id))
            return found

        return await self._call(write)

    async def delete_messages_before(self, time: datetime) -> int:
        return await self._write("DELETE FROM messages WHERE timestamp <= ?", _text(time))

    async def add_ip_ban(self, ban: IpBan) -> bool:
        return (
            await self._write(
                "INSERT INTO ip_bans (ip_address, notes, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                ban.ip_address,
                ban.notes,
                _text(ban.created_at),
            )
            == 1
        )

    async def remove_ip_ban(self, ip_address: str) -> bool:
        return await self._write("DELETE FROM ip_bans WHERE ip_address = ?", ip_address) == 1

    async def ip_bans(self) -> list[IpBan]:
        def query(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return connection.execute(
                "SELECT ip_address, notes, created_at FROM ip_bans ORDER BY created_at"
            ).fetchall()

        bans = []
        for address, notes, created in await self._call(query):
            created_at = _time(created)
            assert created_at is not None
            bans.append(IpBan(address, notes, created_at))
        return bans

    async def counts(self) -> tuple[int, int]:
        def query(connection: sqlite3.Connection) -> tuple[int, int]:
            users = connection.execute("SELECT count(*) FROM users").fetchone()[0]
            messages = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
            return int(users), int(messages)

        return await self._call(query)


class SingleNodeRelay:
    """A SQLite database has one server: nothing to relay."""

    shared = False

    async def start(self, receive: Callable[[str], None]) -> None:
        return None

    async def publish(self, payload: str) -> None:
        return None

    async def stop(self) -> None:
        return None
