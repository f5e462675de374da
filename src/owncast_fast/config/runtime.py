"""Owncast's runtime settings: what the admin edits while the server runs.

Each setting is one field of `Settings`, with Owncast 0.2's datastore key and default
(`reference/owncast-behavior.md` §6.4, §4.4, §4.5). `SettingsService` keeps the current values in
memory (readers never wait on the store), persists every change, and publishes `SettingChanged`
on the event bus so the parts that apply settings live (stream title, chat switches, ...) react.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from owncast_fast.events import EventBus, SettingChanged

log = logging.getLogger(__name__)

DEFAULT_EXTRA_PAGE_CONTENT = (
    "# Welcome to Owncast!\n\n"
    "- This is a live stream powered by [Owncast](https://owncast.online), a free and open source "
    "live streaming server.\n\n"
    "- To discover more examples of streams, visit [Owncast's directory](https://directory.owncast.online).\n\n"
    "- If you're the owner of this server you should visit the admin and customize the content on this "
    "page.\n"
)

DEFAULT_VARIANT: dict[str, Any] = {
    "videoPassthrough": False,
    "audioPassthrough": True,
    "videoBitrate": 1200,
    "audioBitrate": 0,
    "scaledWidth": 0,
    "scaledHeight": 0,
    "framerate": 24,
    "cpuUsageLevel": 2,
    "name": "",
}

# Latency level -> (segment seconds, segments in the playlist), Owncast's table (§4.5).
LATENCY_LEVELS: dict[int, tuple[int, int]] = {0: (1, 25), 1: (2, 15), 2: (3, 10), 3: (4, 8), 4: (5, 5)}
DEFAULT_LATENCY_LEVEL = 2
MAX_LATENCY_LEVEL = 4


def _list(*items: Any) -> Any:
    return field(default_factory=lambda: [dict(i) if isinstance(i, dict) else i for i in items])


def _dict(**items: Any) -> Any:
    return field(default_factory=lambda: dict(items))


@dataclass(slots=True)
class Settings:
    """Current values. Field name -> datastore key is `KEYS`; defaults equal Owncast's."""

    server_name: str = "New Owncast Server"
    server_summary: str = "This is a new live video streaming server powered by Owncast."
    server_welcome_message: str = ""
    extra_page_content: str = DEFAULT_EXTRA_PAGE_CONTENT
    logo_path: str = "logo.svg"
    favicon_path: str = ""
    server_metadata_tags: list[str] = _list("owncast", "streaming")
    social_handles: list[dict[str, str]] = _list({"platform": "github", "url": "https://github.com/owncast/owncast"})
    admin_password_hash: str = ""  # bcrypt; written on first start from the initial password
    stream_keys: list[dict[str, str]] = _list({"key": "abc123", "comment": "Default stream key"})
    http_port_number: int = 8080
    http_listen_address: str = "0.0.0.0"
    rtmp_port_number: int = 1935
    rtmp_listen_address: str = "0.0.0.0"
    video_latency_level: int = DEFAULT_LATENCY_LEVEL
    video_stream_output_variants: list[dict[str, Any]] = _list(DEFAULT_VARIANT)
    video_codec: str = "libx264"
    ffmpeg_path: str = ""
    s3_storage_config: dict[str, Any] = _dict(enabled=False)
    video_serving_endpoint: str = ""
    stream_title: str = ""
    nsfw: bool = False
    hide_viewer_count: bool = False
    disable_search_indexing: bool = False
    custom_offline_message: str = ""
    custom_styles: str = ""
    custom_javascript: str = ""
    custom_color_variable_values: dict[str, str] = _dict()
    external_actions: list[dict[str, Any]] = _list()
    directory_enabled: bool = False
    directory_registration_key: str = ""
    server_url: str = ""
    websocket_host_override: str = ""
    chat_disabled: bool = False
    chat_join_messages_enabled: bool = True
    chat_established_users_only_mode: bool = False
    chat_spam_protection_enabled: bool = True
    chat_slur_filter_enabled: bool = False
    blocked_usernames: list[str] = _list("owncast", "operator", "admin", "system")
    suggested_usernames: list[str] = _list()
    federation_enabled: bool = False
    federation_username: str = "streamer"
    federation_private: bool = False
    federation_go_live_message: str = "I've gone live!"
    federation_show_engagement: bool = True
    federation_blocked_domains: list[str] = _list()
    notifications_enabled: bool = False
    discord_configuration: dict[str, Any] = _dict(enabled=False)
    browser_push_configuration: dict[str, Any] = _dict(enabled=True, goLiveMessage="I've gone live!")
    peak_viewers_session: int = 0
    peak_viewers_overall: int = 0
    last_disconnect_time: str = ""
    server_init_date: str = ""

    def segment_seconds(self) -> int:
        return LATENCY_LEVELS[min(self.video_latency_level, MAX_LATENCY_LEVEL)][0]


# Field -> datastore key. Equal to the field name except where Owncast's key differs.
KEYS: dict[str, str] = {f.name: f.name for f in dataclasses.fields(Settings)}
KEYS["admin_password_hash"] = "admin_password_key"
FIELDS_BY_KEY: dict[str, str] = {key: name for name, key in KEYS.items()}

# The container type each stored value must have (list, dict, str, int, bool).
_TYPES: dict[str, type] = {
    name: typing.get_origin(hint) or hint for name, hint in typing.get_type_hints(Settings).items()
}


class ConfigRepository(Protocol):
    async def all(self) -> dict[str, Any]: ...
    async def set_many(self, values: Mapping[str, Any]) -> None: ...


class SettingsService:
    """In-memory current settings, persisted through the store, changes published on the bus."""

    def __init__(self, repo: ConfigRepository, bus: EventBus) -> None:
        self._repo = repo
        self._bus = bus
        self.current = Settings()

    async def load(self) -> None:
        """Read stored values over the defaults; write defaults for keys never stored."""
        stored = await self._repo.all()
        values: dict[str, Any] = {}
        missing: dict[str, Any] = {}
        for name, key in KEYS.items():
            if key in stored and _is_type(name, stored[key]):
                values[name] = stored[key]
            else:
                if key in stored:
                    log.warning("stored setting %s has the wrong type; using the default", key)
                missing[key] = getattr(self.current, name)
        self.current = dataclasses.replace(self.current, **values)
        if missing:
            await self._repo.set_many(missing)

    async def update(self, **changes: Any) -> None:
        """Validate types, persist all changes in one transaction, then publish each change."""
        for name, value in changes.items():
            if name not in KEYS:
                raise KeyError(f"unknown setting {name!r}")
            if not _is_type(name, value):
                raise TypeError(f"setting {name}: expected {_TYPES[name].__name__}, got {value!r}")
        await self._repo.set_many({KEYS[name]: value for name, value in changes.items()})
        self.current = dataclasses.replace(self.current, **changes)
        for name, value in changes.items():
            self._bus.publish(SettingChanged(name, value))


def _is_type(name: str, value: Any) -> bool:
    expected = _TYPES[name]
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)
