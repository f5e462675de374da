"""Owncast's three chat gauges, added to the Prometheus registry of `/api/admin/prometheus`.

Names, help texts and the `version`/`host` labels are Owncast's (`metrics/prometheus.go`):
connected chat clients, stored chat users and stored chat messages. The stored counts are read
from the store at start and after every prune, and kept up to date in between by the chat service.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from owncast_fast import OWNCAST_API_VERSION
from owncast_fast.config.runtime import SettingsService


class ChatCounts(Protocol):
    @property
    def client_count(self) -> int: ...

    @property
    def user_count(self) -> int: ...

    @property
    def message_count(self) -> int: ...


class ChatCollector(Collector):
    def __init__(self, chat: ChatCounts, settings: SettingsService) -> None:
        self._chat = chat
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        labels = {"version": OWNCAST_API_VERSION, "host": self._settings.current.server_url or "unknown"}
        for name, documentation, value in (
            ("owncast_instance_active_chat_client_count", "Number of active chat clients.", self._chat.client_count),
            ("owncast_instance_total_chat_users", "Number of chat users.", self._chat.user_count),
            ("owncast_instance_current_chat_message_count", "Number of chat messages.", self._chat.message_count),
        ):
            gauge = GaugeMetricFamily(name, documentation, labels=list(labels))
            gauge.add_metric(list(labels.values()), value)
            yield gauge
