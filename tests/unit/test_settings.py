"""Owncast runtime settings: defaults, persistence through the real SQLite store, bus events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from owncast_fast.config.runtime import KEYS, LATENCY_LEVELS, Settings, SettingsService
from owncast_fast.events import Event, EventBus, SettingChanged
from owncast_fast.store import open_store


def test_defaults_are_owncasts() -> None:
    s = Settings()
    assert s.server_name == "New Owncast Server"
    assert s.stream_keys == [{"key": "abc123", "comment": "Default stream key"}]
    assert s.video_latency_level == 2 and s.segment_seconds() == 3
    assert s.video_stream_output_variants[0]["videoBitrate"] == 1200
    assert s.video_stream_output_variants[0]["framerate"] == 24
    assert s.blocked_usernames == ["owncast", "operator", "admin", "system"]
    assert s.chat_join_messages_enabled and s.chat_spam_protection_enabled and not s.chat_slur_filter_enabled
    assert KEYS["admin_password_hash"] == "admin_password_key"
    assert LATENCY_LEVELS[4] == (5, 5)


def test_defaults_are_not_shared_between_instances() -> None:
    a, b = Settings(), Settings()
    a.stream_keys.append({"key": "x", "comment": ""})
    assert len(b.stream_keys) == 1


def run(coro_fn):  # type: ignore[no-untyped-def]
    return asyncio.run(coro_fn())


def test_first_load_writes_defaults_and_updates_persist(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    seen: list[Event] = []

    async def first() -> None:
        store = await open_store(str(db))
        bus = EventBus()
        bus.subscribe(seen.append)
        service = SettingsService(store.config, bus)
        await service.load()
        stored = await store.config.all()
        assert stored["server_name"] == "New Owncast Server"
        assert set(stored) == set(KEYS.values())
        await service.update(stream_title="Live now", nsfw=True)
        assert service.current.stream_title == "Live now"
        await store.close()

    async def second() -> None:
        store = await open_store(str(db))
        service = SettingsService(store.config, EventBus())
        await service.load()
        assert service.current.stream_title == "Live now" and service.current.nsfw is True
        await store.close()

    run(first)
    run(second)
    assert seen == [SettingChanged("stream_title", "Live now"), SettingChanged("nsfw", True)]


def test_update_rejects_wrong_types_and_unknown_names_and_saves_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store(str(tmp_path / "s.db"))
        service = SettingsService(store.config, EventBus())
        await service.load()
        with pytest.raises(TypeError, match=r"^setting video_latency_level: expected int, got '3'$"):
            await service.update(stream_title="ok", video_latency_level="3")
        with pytest.raises(TypeError, match=r"expected int, got True"):
            await service.update(http_port_number=True)
        with pytest.raises(KeyError, match="unknown setting 'colour'"):
            await service.update(colour="red")
        assert (await store.config.get("stream_title")) == ""
        await store.close()

    run(scenario)


def test_a_stored_value_of_the_wrong_type_falls_back_to_the_default(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await open_store(str(tmp_path / "s.db"))
        await store.config.set("video_latency_level", "fast")
        service = SettingsService(store.config, EventBus())
        await service.load()
        assert service.current.video_latency_level == 2
        await store.close()

    run(scenario)
