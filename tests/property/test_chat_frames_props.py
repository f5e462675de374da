"""Any inbound frame, however malformed, leaves the chat service working: no exception escapes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from owncast_fast.chat.service import ChatService, Peer
from owncast_fast.config.runtime import SettingsService
from owncast_fast.events import EventBus
from owncast_fast.status import StreamStatus
from owncast_fast.store import open_store

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
EVENTS = st.fixed_dictionaries(
    {"type": st.sampled_from(["CHAT", "NAME_CHANGE", "COLOR_CHANGE", "PONG", "PING", "WHAT", ""])},
    optional={"body": JSON_VALUES, "newName": JSON_VALUES, "newColor": JSON_VALUES},
).map(json.dumps)
FRAMES = st.one_of(EVENTS, st.text(max_size=300), st.binary(max_size=300), EVENTS.map(str.encode))


class Sink:
    def __init__(self) -> None:
        self.closed: list[str] = []

    def send(self, connection: str, text: str) -> None:
        for line in text.split("\n"):
            if line.startswith("{"):
                json.loads(line)  # every line we send is JSON

    def broadcast(self, text: str) -> None:
        self.send("", text)

    def close(self, connection: str) -> None:
        self.closed.append(connection)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(FRAMES, min_size=1, max_size=15))
def test_any_frames_leave_the_service_working(tmp_path: Path, frames: list[Any]) -> None:
    async def scenario() -> None:
        store = await open_store(str(tmp_path / "props.db"))
        try:
            bus = EventBus()
            settings_service = SettingsService(store.config, bus)
            await settings_service.load()
            await settings_service.update(chat_spam_protection_enabled=False, chat_slur_filter_enabled=True)
            service = ChatService(store.chat, settings_service, bus, StreamStatus(), tmp_path / "emoji")
            service.transport = Sink()
            await service.start()
            _, token = await service.register("prop", "", Peer("192.0.2.1", "hypothesis"))
            assert await service.connect("c", token) is not None
            for frame in frames:
                await service.receive("c", frame)
                await asyncio.sleep(0)
            await service.stop()
        finally:
            await store.close()

    asyncio.run(scenario())
