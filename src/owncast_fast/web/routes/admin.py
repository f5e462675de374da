"""Admin endpoints of the live stream: GET /api/admin/status, /api/admin/disconnect."""

from __future__ import annotations

from typing import Any

from robyn import Request, Response, SubRouter

from owncast_fast import OWNCAST_API_VERSION
from owncast_fast.lifecycle import Services, ServicesHolder
from owncast_fast.timefmt import rfc3339
from owncast_fast.web.auth import admin_only
from owncast_fast.web.responses import api_response, json_response, preflight


def admin_status_body(services: Services) -> dict[str, Any]:
    settings = services.settings.current
    status = services.status
    broadcaster = services.ingest.broadcaster()
    body: dict[str, Any] = {
        "broadcaster": None,
        "currentBroadcast": None,
        "online": status.online,
        "health": services.metrics.stream_health_json(),  # null until viewers report playback
        "viewerCount": status.viewer_count,
        "overallPeakViewerCount": services.metrics.viewers.overall_peak,
        "sessionPeakViewerCount": services.metrics.viewers.session_peak,
        "versionNumber": OWNCAST_API_VERSION,
        "streamTitle": settings.stream_title,
    }
    if broadcaster is not None:
        body["broadcaster"] = {
            "remoteAddr": broadcaster.remote_addr,
            "time": rfc3339(broadcaster.time),
            "streamDetails": broadcaster.details.to_json(),
        }
        body["currentBroadcast"] = {
            "outputSettings": status.output_settings,
            "latencyLevel": {"level": status.latency_level},
        }
    return body


def router(holder: ServicesHolder) -> SubRouter:
    api = SubRouter(prefix="/api/admin")
    admin = admin_only(lambda: holder.current.admin)

    @api.get("/status")
    @admin
    async def get_admin_status(request: Request) -> Response:
        return json_response(admin_status_body(holder.current))

    async def disconnect(request: Request) -> Response:
        if holder.current.ingest.disconnect_publisher():
            return api_response("inbound stream disconnected", True)
        return api_response("no inbound stream connected", False)

    # The 0.2.0 spec routes disconnect as GET; Owncast's admin UI and 0.1.x scripts POST it.
    api.get("/disconnect")(admin(disconnect))
    api.post("/disconnect")(admin(disconnect))

    def answer_preflight(request: Request) -> Response:
        return preflight()

    for path in ("/status", "/disconnect"):
        api.options(path)(answer_preflight)

    return api
