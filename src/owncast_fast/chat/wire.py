"""Chat event JSON as Owncast sends it on the websocket and in history (reference §1.3, §1.6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from owncast_fast.store.base import ChatMessageRow, ChatUser
from owncast_fast.timefmt import rfc3339

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time

CHAT = "CHAT"
NAME_CHANGE = "NAME_CHANGE"
COLOR_CHANGE = "COLOR_CHANGE"
USER_JOINED = "USER_JOINED"
USER_PARTED = "USER_PARTED"
CONNECTED_USER_INFO = "CONNECTED_USER_INFO"
CHAT_ACTION = "CHAT_ACTION"
SYSTEM = "SYSTEM"
VISIBILITY_UPDATE = "VISIBILITY-UPDATE"
ERROR_NEEDS_REGISTRATION = "ERROR_NEEDS_REGISTRATION"
ERROR_USER_DISABLED = "ERROR_USER_DISABLED"
ERROR_MAX_CONNECTIONS_EXCEEDED = "ERROR_MAX_CONNECTIONS_EXCEEDED"
CHAT_DISABLED = "CHAT_DISABLED"
PONG = "PONG"
PING = "PING"


def user_json(user: ChatUser) -> dict[str, Any]:
    """Owncast's user object: `disabledAt` and `scopes` only when set; `nameChangedAt` always
    (Go's zero time when the user never renamed, as users loaded by token carry it)."""
    body: dict[str, Any] = {
        "id": user.id,
        "displayName": user.display_name,
        "displayColor": user.display_color,
        "createdAt": rfc3339(user.created_at),
        "previousNames": list(user.previous_names),
        "nameChangedAt": rfc3339(user.name_changed_at) or ZERO_TIME,
        "isBot": user.type == "API",
        "authenticated": user.authenticated_at is not None,
    }
    if user.disabled_at is not None:
        body["disabledAt"] = rfc3339(user.disabled_at)
    if user.scopes:
        body["scopes"] = list(user.scopes)
    return body


def encode(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode()


def chat_event(message: ChatMessageRow, user: ChatUser) -> dict[str, Any]:
    return {
        "type": CHAT,
        "id": message.id,
        "timestamp": rfc3339(message.timestamp),
        "body": message.body,
        "user": user_json(user),
        "visible": message.hidden_at is None,
    }


def history_item(message: ChatMessageRow, user: ChatUser) -> dict[str, Any]:
    """A history entry: the chat event without `visible`, with `hiddenAt` when hidden."""
    item: dict[str, Any] = {
        "id": message.id,
        "timestamp": rfc3339(message.timestamp),
        "type": message.event_type,
        "user": user_json(user),
        "body": message.body,
    }
    if message.hidden_at is not None:
        item["hiddenAt"] = rfc3339(message.hidden_at)
    return item


def user_event(kind: str, event_id: str, now: datetime, user: ChatUser) -> dict[str, Any]:
    """USER_JOINED, USER_PARTED, CONNECTED_USER_INFO."""
    return {"type": kind, "id": event_id, "timestamp": rfc3339(now), "user": user_json(user)}


def name_change_event(event_id: str, now: datetime, user: ChatUser, old_name: str) -> dict[str, Any]:
    return {
        "type": NAME_CHANGE,
        "id": event_id,
        "timestamp": rfc3339(now),
        "user": user_json(user),
        "oldName": old_name,
    }


def action_event(event_id: str, now: datetime, body_html: str) -> dict[str, Any]:
    return {"type": CHAT_ACTION, "id": event_id, "timestamp": rfc3339(now), "body": body_html}


def system_event(event_id: str, now: datetime, body_html: str, server_name: str) -> dict[str, Any]:
    return {
        "type": SYSTEM,
        "id": event_id,
        "timestamp": rfc3339(now),
        "body": body_html,
        "user": {"displayName": server_name},
    }


def visibility_event(event_id: str, now: datetime, ids: list[str], visible: bool) -> dict[str, Any]:
    return {"type": VISIBILITY_UPDATE, "id": event_id, "timestamp": rfc3339(now), "ids": ids, "visible": visible}


def error_event(kind: str, event_id: str, now: datetime) -> dict[str, Any]:
    return {"type": kind, "id": event_id, "timestamp": rfc3339(now), "user": None}
