"""The /api/status body: the cached renderer gives exactly the fields, and follows every change."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson

from owncast_fast.config.runtime import Settings
from owncast_fast.status import Broadcaster, StreamStatus
from owncast_fast.web.routes.status import StatusRenderer, status_fields

SERVER_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def services() -> Any:
    return SimpleNamespace(status=StreamStatus(), settings=SimpleNamespace(current=Settings()))


def rendered(renderer: StatusRenderer, svc: Any) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(renderer.render(svc))
    server_time = body.pop("serverTime")
    assert SERVER_TIME.match(server_time), server_time
    moment = datetime.fromisoformat(server_time.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 5
    return body


def test_renderer_equals_the_fields_and_follows_changes() -> None:
    svc = services()
    renderer = StatusRenderer()
    assert (
        rendered(renderer, svc)
        == status_fields(svc)
        == {
            "lastConnectTime": None,
            "lastDisconnectTime": None,
            "versionNumber": "0.2.0",
            "streamTitle": "",
            "online": False,
            "viewerCount": 0,
        }
    )
    moment = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    svc.status.broadcaster = Broadcaster("127.0.0.1", moment)
    svc.status.last_connect_time = moment
    svc.status.viewer_count = 3
    svc.settings.current = Settings(stream_title="Live!")
    assert rendered(renderer, svc) == status_fields(svc)
    assert rendered(renderer, svc)["online"] is True
    assert rendered(renderer, svc)["lastConnectTime"] == "2026-11-30T12:00:00.000000Z"
    svc.settings.current = Settings(stream_title="Live!", hide_viewer_count=True)
    assert "viewerCount" not in rendered(renderer, svc)
