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
