"""Viewers, metrics, logs, auto-update and directory reset endpoints (Owncast's "Metrics" and "Misc").

Public: `GET /api/ping`, `POST /api/metrics/playback`. Admin (Basic): `viewers`, `viewersOverTime`,
`hardwarestats`, `metrics/video`, `prometheus` (GET/POST/PUT/DELETE), `logs`, `logs/warnings`,
`update/options|start|forcequit`, `yp/reset`; each admin path also answers its OPTIONS preflight
with 204 before auth, as Owncast's middleware does (`/admin/prometheus` included: its spec OPTIONS
operation goes through the same middleware).

Auto-update: owncast-fast is installed with pip, not Owncast's installer script, so
`supportsUpdate` is always false and `update/start` always fails. `canRestart` is true only under
systemd (`INVOCATION_ID` is set for every process systemd starts as a service); force quit then
stops the server cleanly, as SIGTERM would, and systemd starts it again when the unit says
`Restart=always` (exit status 0). Owncast also counts a parent PID of 1 as systemd; that is true of
any process whose parent died or that runs under a container's init, neither of which restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import UTC, datetime

from robyn import Request, Response, SubRouter

from owncast_fast.lifecycle import ServicesHolder
from owncast_fast.metrics.playback import MAX_REPORT_BYTES, PlaybackReportError, parse_report
from owncast_fast.web.auth import admin_only
from owncast_fast.web.responses import api_response, json_response, preflight, read_json

log = logging.getLogger(__name__)

# Seconds between the force-quit answer and the shutdown, so the answer reaches the admin first.
FORCE_QUIT_DELAY = 0.5
# datetime's range in unix seconds (years 1..9999): Owncast clamps nothing, Go's time does not fail.
_MIN_UNIX, _MAX_UNIX = -62135596800, 253402300799


def supervised() -> bool:
    """Whether a supervisor restarts this process when it exits (systemd: see the module docstring)."""
    return bool(os.environ.get("INVOCATION_ID"))


def _peer(request: Request) -> tuple[str | None, str | None, str]:
    headers = request.headers
    return request.ip_addr, headers.get("x-forwarded-for"), headers.get("user-agent") or ""


def window_start(raw: str | None) -> datetime | None:
    """`windowStart` as a time; absent means every retained sample. None when it is not an integer."""
    if raw is None or raw == "":
        return datetime.fromtimestamp(0, UTC)
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isdigit() or len(digits) > 18:
        return None
    seconds = min(max(int(text), _MIN_UNIX), _MAX_UNIX)
    return datetime.fromtimestamp(seconds, UTC)


def router(holder: ServicesHolder) -> SubRouter:
    api = SubRouter(prefix="/api")
    admin = admin_only(lambda: holder.current.admin)

    # -- public -------------------------------------------------------------------------------------

    # Sync: Robyn runs it on a worker thread, so the 4-second pings of every viewer never queue
    # behind work on the event loop; the tracker has its own lock.
    @api.get("/ping")
    def ping(request: Request) -> Response:
        holder.current.metrics.viewer_seen(*_peer(request))
        return Response(200, {}, b"")

    @api.post("/metrics/playback")
    def report_playback(request: Request) -> Response:
        body = read_json(request, MAX_REPORT_BYTES)
        if isinstance(body, Response):
            return body
        try:
            report = parse_report(body)
        except PlaybackReportError as exc:
            return api_response(str(exc), False)
        holder.current.metrics.report_playback(*_peer(request), report)
        return Response(200, {}, b"")

    # -- admin --------------------------------------------------------------------------------------

    @api.get("/admin/viewers")
    @admin
    async def active_viewers(request: Request) -> Response:
        return json_response(holder.current.metrics.active_viewers_json())

    @api.get("/admin/viewersOverTime")
    @admin
    async def viewers_over_time(request: Request) -> Response:
        start = window_start(request.query_params.get("windowStart", None))
        if start is None:
            return api_response("windowStart must be a unix time in whole seconds", False)
        return json_response(await holder.current.metrics.viewers_over_time_json(start))

    @api.get("/admin/hardwarestats")
    @admin
    async def hardware_stats(request: Request) -> Response:
        return json_response(holder.current.metrics.hardware.to_json())

    @api.get("/admin/metrics/video")
    @admin
    async def video_metrics(request: Request) -> Response:
        return json_response(holder.current.metrics.video_metrics_json())

    async def prometheus(request: Request) -> Response:
        body, content_type = holder.current.metrics.prometheus.expose(request.headers.get("accept"))
        return Response(200, {"Content-Type": content_type}, body)

    guarded_prometheus = admin(prometheus)
    for method in ("get", "post", "put", "delete"):
        getattr(api, method)("/admin/prometheus")(guarded_prometheus)

    @api.get("/admin/logs")
    @admin
    async def logs(request: Request) -> Response:
        return json_response([entry.to_json() for entry in holder.current.metrics.logs.entries()])

    @api.get("/admin/logs/warnings")
    @admin
    async def warnings(request: Request) -> Response:
        return json_response([entry.to_json() for entry in holder.current.metrics.logs.warnings()])

    @api.get("/admin/update/options")
    @admin
    async def update_options(request: Request) -> Response:
        return json_response({"supportsUpdate": False, "canRestart": supervised()})

    @api.get("/admin/update/start")
    @admin
    async def update_start(request: Request) -> Response:
        return api_response(
            "in-place updates are not supported: owncast-fast is upgraded with pip (pip install -U owncast-fast), "
            "then restarted",
            False,
        )

    @api.get("/admin/update/forcequit")
    @admin
    async def force_quit(request: Request) -> Response:
        if not supervised():
            return api_response(
                "not quitting: owncast-fast is not running under systemd, so nothing would start it again", False
            )
        log.warning("owncast-fast is exiting at the admin's request (systemd will restart it)")
        # The same clean shutdown as `systemctl stop` (serve.py's SIGTERM handler), after the answer.
        asyncio.get_running_loop().call_later(FORCE_QUIT_DELAY, os.kill, os.getpid(), signal.SIGTERM)
        return api_response("forcing quit", True)

    @api.get("/admin/yp/reset")
    @admin
    async def reset_directory_registration(request: Request) -> Response:
        await holder.current.settings.update(directory_registration_key="")
        return api_response("directory registration reset", True)

    def answer_preflight(request: Request) -> Response:
        return preflight()

    for path in (
        "/admin/viewers",
        "/admin/viewersOverTime",
        "/admin/hardwarestats",
        "/admin/metrics/video",
        "/admin/prometheus",
        "/admin/logs",
        "/admin/logs/warnings",
        "/admin/update/options",
        "/admin/update/start",
        "/admin/update/forcequit",
        "/admin/yp/reset",
    ):
        api.options(path)(answer_preflight)

    return api
