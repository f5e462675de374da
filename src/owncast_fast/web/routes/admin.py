"""Admin endpoints of the live stream: GET /api/admin/status, /api/admin/disconnect."""

from __future__ import annotations

import time
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
        "health": stream_health(services),
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
    body["encoders"] = encoders_json(services)
    return body


def encoders_json(services: Services) -> list[dict[str, Any]]:
    """Ours, beside Owncast's fields: one entry per variant, in HLS order. Transcoded variants
    carry their encoder's speed (x real time), frames encoded and dropped, CPU seconds of the
    encoder thread and the frame-in to unit-out latency."""
    transcoder = services.transcoder
    encoded = {entry["index"]: entry for entry in transcoder.health_json()} if transcoder is not None else {}
    entries = []
    for pipeline in services.pipelines:
        index = pipeline.live.index
        entries.append(encoded.get(index) or {"index": index, "name": pipeline.live.name, "passthrough": True})
    if transcoder is not None and entries:
        entries[0] = entries[0] | {"sourceFramesDropped": transcoder.stats.dropped_source_frames}
    return entries


def stream_health(services: Services) -> dict[str, Any] | None:
    """Owncast's health overview (null until viewers report playback), overridden by a warning
    while a transcoded variant cannot keep up with real time."""
    health = services.metrics.stream_health_json()
    transcoder = services.transcoder
    lagging = transcoder.lagging() if transcoder is not None and services.status.online else []
    if not lagging:
        return health
    now = time.monotonic()
    dropped = [(stats, stats.dropped_recently(now)) for stats in lagging]
    names = ", ".join(f"{stats.name} ({count} frames)" for stats, count in dropped)
    # The share of the last minute's frames the worst variant delivered.
    delivered = min(1.0 - min(1.0, count / (stats.framerate * 60.0)) for stats, count in dropped)
    message = (
        f"The server cannot encode every variant in real time and dropped frames in the last minute: {names}. "
        "Use fewer variants, smaller sizes or a lower CPU usage level."
    )
    percentage = int(delivered * 100)
    if health is not None:
        percentage = min(percentage, int(health.get("healthPercentage") or 0))
    base = health or {"representation": 0}
    return base | {"healthy": False, "healthPercentage": percentage, "message": message}


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
