"""`ChatRepository` over PostgreSQL: users, user_access_tokens, messages, ip_bans (migration 0003)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from owncast_fast.store.base import ChatMessageRow, ChatUser, IpBan

_USER_COLUMNS = (
    "u.id, u.display_name, u.display_color, u.created_at, u.previous_names, u.namechanged_at, "
    "u.disabled_at, u.scopes, u.authenticated_at, u.type"
)
_MESSAGE_COLUMNS = "m.id, m.user_id, m.body, m.event_type, m.timestamp, m.hidden_at"


def _utc(time: datetime | None) -> datetime | None:
    return None if time is None else time.astimezone(UTC)


def _aware(time: datetime | None) -> datetime | None:
    if time is not None and time.tzinfo is None:
        raise ValueError(f"time {time.isoformat()} has no timezone")
    return time


def _split(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.split(",") if part)


def _user(row: Any, offset: int = 0) -> ChatUser:
    values = tuple(row)[offset : offset + 10]
    return ChatUser(
        id=values[0],
        display_name=values[1],
        display_color=int(values[2]),
        created_at=values[3].astimezone(UTC),
        previous_names=_split(values[4]),
        name_changed_at=_utc(values[5]),
        disabled_at=_utc(values[6]),
        scopes=_split(values[7]),
        authenticated_at=_utc(values[8]),
        type=values[9],
    )


def _message(row: Any) -> ChatMessageRow:
    values = tuple(row)[:6]
    return ChatMessageRow(values[0], values[1], values[2], values[3], values[4].astimezone(UTC), _utc(values[5]))


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])  # "UPDATE <count>", "DELETE <count>", "INSERT 0 <count>"


class PostgresChatRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_user(self, user: ChatUser, token: str) -> None:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO users (id, display_name, display_color, created_at, previous_names, "
                "namechanged_at, disabled_at, scopes, authenticated_at, type) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
                user.id,
                user.display_name,
                user.display_color,
                _aware(user.created_at),
                ",".join(user.previous_names),
                _aware(user.name_changed_at),
                _aware(user.disabled_at),
                ",".join(user.scopes),
                _aware(user.authenticated_at),
                user.type,
            )
            await connection.execute(
                "INSERT INTO user_access_tokens (token, user_id, timestamp) VALUES ($1, $2, $3)",
                token,
                user.id,
                user.created_at,
            )

    async def _one_user(self, where: str, value: str) -> ChatUser | None:
        row = await self._pool.fetchrow(f"SELECT {_USER_COLUMNS} FROM users u {where}", value)
        return None if row is None else _user(row)

    async def _users(self, where: str, *values: Any) -> list[ChatUser]:
        rows = await self._pool.fetch(
            f"SELECT {_USER_COLUMNS} FROM users u {where} ORDER BY u.created_at, u.id", *values
        )
        return [_user(row) for row in rows]

    async def user_by_token(self, token: str) -> ChatUser | None:
        return await self._one_user("JOIN user_access_tokens t ON t.user_id = u.id WHERE t.token = $1", token)

    async def user_by_id(self, user_id: str) -> ChatUser | None:
        return await self._one_user("WHERE u.id = $1", user_id)

    async def rename_user(self, user_id: str, name: str, changed_at: datetime) -> None:
        await self._pool.execute(
            "UPDATE users SET display_name = $1, namechanged_at = $2, "
            "previous_names = CASE WHEN previous_names = '' THEN $1 ELSE previous_names || ',' || $1 END "
            "WHERE id = $3",
            name,
            _aware(changed_at),
            user_id,
        )

    async def set_user_color(self, user_id: str, color: int) -> None:
        await self._pool.execute("UPDATE users SET display_color = $1 WHERE id = $2", color, user_id)

    async def set_user_disabled(self, user_id: str, disabled_at: datetime | None) -> None:
        await self._pool.execute("UPDATE users SET disabled_at = $1 WHERE id = $2", _aware(disabled_at), user_id)

    async def set_user_scopes(self, user_id: str, scopes: tuple[str, ...]) -> None:
        await self._pool.execute("UPDATE users SET scopes = $1 WHERE id = $2", ",".join(scopes), user_id)

    async def name_is_registered(self, name: str) -> bool:
        found = await self._pool.fetchval(
            "SELECT 1 FROM users WHERE display_name = $1 AND disabled_at IS NULL "
            "AND (authenticated_at IS NOT NULL OR type = 'API') LIMIT 1",
            name,
        )
        return found is not None

    async def disabled_users(self) -> list[ChatUser]:
        return await self._users("WHERE u.disabled_at IS NOT NULL")

    async def users_with_scope(self, scope: str) -> list[ChatUser]:
        return await self._users("WHERE $1 = ANY(string_to_array(u.scopes, ','))", scope)

    async def add_message(self, message: ChatMessageRow) -> None:
        await self._pool.execute(
            "INSERT INTO messages (id, user_id, body, event_type, timestamp, hidden_at) VALUES ($1,$2,$3,$4,$5,$6)",
            message.id,
            message.user_id,
            message.body,
            message.event_type,
            _aware(message.timestamp),
            _aware(message.hidden_at),
        )

    async def _history(self, where: str, limit: int) -> list[tuple[ChatMessageRow, ChatUser]]:
        rows = await self._pool.fetch(
            f"SELECT {_MESSAGE_COLUMNS}, {_USER_COLUMNS} FROM messages m JOIN users u ON u.id = m.user_id "
            f"{where} ORDER BY m.timestamp DESC, m.seq DESC LIMIT $1",
            limit,
        )
        return [(_message(row), _user(row, 6)) for row in rows]

    async def visible_history(self, limit: int) -> list[tuple[ChatMessageRow, ChatUser]]:
        rows = await self._history("WHERE m.hidden_at IS NULL AND u.disabled_at IS NULL", limit)
        rows.reverse()
        return rows

    async def all_history(self, limit: int) -> list[tuple[ChatMessageRow, ChatUser]]:
        return await self._history("", limit)

    async def messages_of_user(self, user_id: str, limit: int) -> list[ChatMessageRow]:
        rows = await self._pool.fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages m WHERE m.user_id = $1 "
            "ORDER BY m.timestamp DESC, m.seq DESC LIMIT $2",
            user_id,
            limit,
        )
        return [_message(row) for row in rows]

    async def set_messages_hidden(self, ids: Iterable[str], hidden_at: datetime | None) -> list[str]:
        rows = await self._pool.fetch(
            "WITH changed AS (UPDATE messages SET hidden_at = $1 WHERE id = ANY($2::text[]) RETURNING id, seq) "
            "SELECT id FROM changed ORDER BY seq",
            _aware(hidden_at),
            list(ids),
        )
        return [row["id"] for row in rows]

    async def hide_messages_of_user(self, user_id: str, hidden_at: datetime) -> list[str]:
        rows = await self._pool.fetch(
            "WITH changed AS (UPDATE messages SET hidden_at = $1 WHERE user_id = $2 AND hidden_at IS NULL "
            "RETURNING id, seq) SELECT id FROM changed ORDER BY seq",
            _aware(hidden_at),
            user_id,
        )
        return [row["id"] for row in rows]

    async def delete_messages_before(self, time: datetime) -> int:
        return _count(await self._pool.execute("DELETE FROM messages WHERE timestamp <= $1", _aware(time)))

    async def add_ip_ban(self, ban: IpBan) -> bool:
        status = await self._pool.execute(
            "INSERT INTO ip_bans (ip_address, notes, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            ban.ip_address,
            ban.notes,
            _aware(ban.created_at),
        )
        return _count(status) == 1

    async def remove_ip_ban(self, ip_address: str) -> bool:
        return _count(await self._pool.execute("DELETE FROM ip_bans WHERE ip_address = $1", ip_address)) == 1

    async def ip_bans(self) -> list[IpBan]:
        rows = await self._pool.fetch("SELECT ip_address, notes, created_at FROM ip_bans ORDER BY created_at")
        return [IpBan(row[0], row[1], row[2].astimezone(UTC)) for row in rows]

    async def counts(self) -> tuple[int, int]:
        row = await self._pool.fetchrow("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM messages)")
        return int(row[0]), int(row[1])


RELAY_CHANNEL = "owncast_fast_chat"


class PostgresChatRelay:
    """LISTEN/NOTIFY on one channel; the listening connection is held out of the pool while started."""

    shared = True

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._connection: Any = None
        self._listener: Callable[..., None] | None = None

    async def start(self, receive: Callable[[str], None]) -> None:
        def listener(connection: Any, pid: int, channel: str, payload: str) -> None:
            receive(payload)

        self._connection = await self._pool.acquire()
        self._listener = listener
        await self._connection.add_listener(RELAY_CHANNEL, listener)

    async def publish(self, payload: str) -> None:
        await self._pool.execute("SELECT pg_notify($1, $2)", RELAY_CHANNEL, payload)

    async def stop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._listener is not None:
            await connection.remove_listener(RELAY_CHANNEL, self._listener)
        await self._pool.release(connection)
