"""Public server status: GET /api/status (Owncast `GetStatus`)."""

from __future__ import annotations

from typing import Any

from robyn import Response, SubRouter

from owncast_fast import OWNCAST_API_VERSION
from owncast_fast.lifecycle import Services, ServicesHolder
from owncast_fast.timefmt import rfc3339, utcnow
from owncast_fast.web.responses import json_response


def status_body(services: Services) -> dict[str, Any]:
    status = services.status
    settings = services.settings.current
    body: dict[str, Any] = {
        "serverTime": rfc3339(utcnow()),
        "lastConnectTime": rfc3339(status.last_connect_time),
        "lastDisconnectTime": rfc3339(status.last_disconnect_time),
        "versionNumber": OWNCAST_API_VERSION,
        "streamTitle": settings.stream_title,
        "online": status.online,
    }
    if not settings.hide_viewer_count:
        body["viewerCount"] = status.viewer_count
    return body


def router(holder: ServicesHolder) -> SubRouter:
    api = SubRouter(prefix="/api")

    # A sync handler: Robyn runs it on its worker threads, off the event loop, and it only
    # reads immutable values, so the hottest public endpoint never queues behind ingest work.
    # No `request` parameter: Robyn 0.88 then skips building the request object (~30 us).
    @api.get("/status")
    def get_status() -> Response:
        return json_response(status_body(holder.current))

    return api
