"""The in-process event bus.

Publishers (ingest, settings, chat) call `publish(event)` on the event-loop thread; subscribers
(webhooks, notifications, federation, metrics, tests) are plain callables run in order, right
away. A subscriber that does I/O puts the event on its own bounded queue and returns, so a slow
subscriber can never stall the publisher. A subscriber that raises is logged and skipped.

Event `type` strings are Owncast's webhook event names where Owncast has one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from owncast_fast.store.base import ChatUser

log = logging.getLogger(__name__)


class Event:
    type: ClassVar[str]


@dataclass(frozen=True, slots=True)
class StreamStarted(Event):
    type: ClassVar[str] = "STREAM_STARTED"
    time: datetime
    remote_addr: str
    stream_title: str


@dataclass(frozen=True, slots=True)
class StreamStopped(Event):
    type: ClassVar[str] = "STREAM_STOPPED"
    time: datetime
    reason: str
    stream_title: str


@dataclass(frozen=True, slots=True)
class SettingChanged(Event):
    type: ClassVar[str] = "SETTING_CHANGED"
    name: str
    value: Any


# Chat events carry everything Owncast's webhook payloads hold (reference §3); `user` is the author
# as it is after the event (a renamed user already carries the new name).


@dataclass(frozen=True, slots=True)
class ChatMessageSent(Event):
    """A user's accepted chat message (webhook CHAT: user, clientId, body, rawBody, id, visible, timestamp)."""

    type: ClassVar[str] = "CHAT"
    id: str
    timestamp: datetime
    user: ChatUser
    client_id: int
    body: str  # sanitized HTML
    raw_body: str  # what the client sent
    visible: bool = True


@dataclass(frozen=True, slots=True)
class UserJoined(Event):
    type: ClassVar[str] = "USER_JOINED"
    id: str
    timestamp: datetime
    user: ChatUser
    client_id: int


@dataclass(frozen=True, slots=True)
class UserParted(Event):
    type: ClassVar[str] = "USER_PARTED"
    id: str
    timestamp: datetime
    user: ChatUser
    client_id: int


@dataclass(frozen=True, slots=True)
class NameChanged(Event):
    type: ClassVar[str] = "NAME_CHANGE"
    id: str
    timestamp: datetime
    user: ChatUser  # already renamed
    client_id: int
    old_name: str
    new_name: str


@dataclass(frozen=True, slots=True)
class VisibilityUpdated(Event):
    """Messages hidden or shown (webhook VISIBILITY-UPDATE: id, timestamp, MessageIDs, Visible)."""

    type: ClassVar[str] = "VISIBILITY-UPDATE"
    id: str
    timestamp: datetime
    message_ids: tuple[str, ...]
    visible: bool


@dataclass(frozen=True, slots=True)
class ChatActionSent(Event):
    """A CHAT_ACTION notice (no webhook in Owncast); `body` is the rendered HTML."""

    type: ClassVar[str] = "CHAT_ACTION"
    id: str
    timestamp: datetime
    body: str


@dataclass(frozen=True, slots=True)
class UserEnabledChanged(Event):
    """A moderator or the admin disabled (banned) or re-enabled a chat user."""

    type: ClassVar[str] = "USER_ENABLED_CHANGED"
    timestamp: datetime
    user: ChatUser
    enabled: bool
    banned_ips: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModeratorChanged(Event):
    type: ClassVar[str] = "MODERATOR_CHANGED"
    timestamp: datetime
    user: ChatUser
    is_moderator: bool


@dataclass(frozen=True, slots=True)
class IpBanChanged(Event):
    type: ClassVar[str] = "IP_BAN_CHANGED"
    timestamp: datetime
    ip_address: str
    banned: bool
    notes: str = ""


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, event: Event) -> None:
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", subscriber, event.type)
