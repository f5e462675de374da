"""Viewers, metrics, logs, update and directory endpoints on a real `owncast-fast serve` process.

Expiry, sampling periods and window aggregation are tested in tests/unit/metrics with short periods;
here: counting through ping and playlist fetches while live, the admin lists, persistence across a
restart, auth and the truthful auto-update answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from media import require_tool
from prometheus_client.parser import text_string_to_metric_families

from owncast_fast.store import open_store

if TYPE_CHECKING:
    from tests.conftest import ServerFactory, ServerProcess

pytestmark = pytest.mark.integration

ADMIN = "abc123"
ADMIN_PATHS = (
    "/api/admin/viewers",
    "/api/admin/viewersOverTime",
    "/api/admin/hardwarestats",
    "/api/admin/metrics/video",
    "/api/admin/prometheus",
    "/api/admin/logs",
    "/api/admin/logs/warnings",
    "/api/admin/update/options",
    "/api/admin/update/start",
    "/api/admin/update/forcequit",
    "/api/admin/yp/reset",
)


def live_source(url: str, seconds: float) -> list[str]:
    """ffmpeg's test sources encoded live, paced in real time like a camera."""
    return [
        require_tool("ffmpeg"),
        *("-hide_banner", "-loglevel", "error"),
        *("-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"),
        *("-re", "-f", "lavfi", "-i", "sine=sample_rate=44100"),
        *("-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "30"),
        *("-c:a", "aac", "-f", "flv", url),
    ]


@contextlib.contextmanager
def publishing(server: ServerProcess, seconds: float) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        live_source(server.rtmp_url(), seconds),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: bool(json_get(server, "/api/status")["online"]), "the stream to be online")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def json_get(server: ServerProcess, path: str, *, admin: bool = False, headers: dict[str, str] | None = None) -> Any:
    status, response_headers, body = server.request(path, admin=ADMIN if admin else None, headers=headers)
    assert status == 200, (path, status, body)
    assert response_headers["content-type"].startswith("application/json"), response_headers
    return json.loads(body)


def ping(server: ServerProcess, user_agent: str, forwarded_for: str | None = None) -> None:
    headers = {"User-Agent": user_agent}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    status, _, body = server.request("/api/ping", headers=headers)
    assert (status, body) == (200, b"")


def viewer_count(server: ServerProcess) -> int:
    return int(json_get(server, "/api/status")["viewerCount"])


def prometheus(server: ServerProcess) -> dict[str, float]:
    status, headers, body = server.request("/api/admin/prometheus", admin=ADMIN)
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_ping_and_playlist_fetches_count_viewers_while_live(server_factory: ServerFactory) -> None:
    server = server_factory()
    ping(server, "viewer-one")
    assert viewer_count(server) == 0  # offline: Owncast counts nobody
    assert json_get(server, "/api/admin/viewers", admin=True) == []

    with publishing(server, seconds=20):
        ping(server, "viewer-one")
        ping(server, "viewer-one")  # the same identity again
        ping(server, "viewer-behind-proxy", forwarded_for="198.51.100.4, 10.0.0.1")
        status, _, _ = server.request("/hls/0/stream.m3u8", headers={"User-Agent": "hls-player"})
        assert status in (200, 404)  # counted even before the first segment exists
        assert viewer_count(server) == 3

        viewers = {viewer["userAgent"]: viewer for viewer in json_get(server, "/api/admin/viewers", admin=True)}
        assert set(viewers) == {"viewer-one", "viewer-behind-proxy", "hls-player"}
        one = viewers["viewer-one"]
        assert one["ipAddress"] == "127.0.0.1"
        assert one["clientID"] == hashlib.md5(b"127.0.0.1viewer-one").hexdigest()
        assert one["geo"] is None  # no GeoIP database
        assert datetime.fromisoformat(one["firstSeen"]) <= datetime.now(UTC)
        assert viewers["viewer-behind-proxy"]["ipAddress"] == "198.51.100.4"
        assert prometheus(server)["owncast_instance_active_viewer_count"] == 3

        server.request("/api/admin/disconnect", admin=ADMIN)
        wait_until(lambda: not json_get(server, "/api/status")["online"], "the stream to end")

    assert viewer_count(server) == 0

    def peaks() -> tuple[int, int]:
        admin = json_get(server, "/api/admin/status", admin=True)
        return admin["sessionPeakViewerCount"], admin["overallPeakViewerCount"]

    wait_until(lambda: peaks() == (3, 3), "the peaks to be saved at the end of the stream")
    server.stop()
    restarted = server_factory(data_dir=server.data_dir)
    admin = json_get(restarted, "/api/admin/status", admin=True)
    assert (admin["sessionPeakViewerCount"], admin["overallPeakViewerCount"]) == (3, 3)  # ended < 5 min ago


def test_viewers_over_time_come_from_the_store_after_a_restart(server_factory: ServerFactory) -> None:
    server = server_factory()
    server.stop()
    sampled_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    async def seed() -> None:
        store = await open_store(str(server.data_dir / "owncast-fast.db"))
        try:
            await store.time_series.add("viewer_count", sampled_at - timedelta(minutes=2), 4)
            await store.time_series.add("viewer_count", sampled_at, 7)
        finally:
            await store.close()

    asyncio.run(seed())
    restarted = server_factory(data_dir=server.data_dir)
    start = int(sampled_at.timestamp())
    window = json_get(restarted, f"/api/admin/viewersOverTime?windowStart={start}", admin=True)
    assert window == [{"time": sampled_at.strftime("%Y-%m-%dT%H:%M:%S.000000Z"), "value": 7}]
    everything = json_get(restarted, "/api/admin/viewersOverTime", admin=True)
    assert [point["value"] for point in everything] == [4, 7]
    assert json_get(restarted, f"/api/admin/viewersOverTime?windowStart={start + 1}", admin=True) == []

    status, headers, body = restarted.request("/api/admin/viewersOverTime?windowStart=yesterday", admin=ADMIN)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": "windowStart must be a unix time in whole seconds", "success": False}


def test_hardware_stats_have_owncasts_shape(server: ServerProcess) -> None:
    wait_until(lambda: bool(json_get(server, "/api/admin/hardwarestats", admin=True)["cpu"]), "a hardware sample")
    body = json_get(server, "/api/admin/hardwarestats", admin=True)
    assert set(body) == {"cpu", "memory", "disk"}
    for series in body.values():
        [point] = series
        assert set(point) == {"time", "value"}
        assert 0 <= point["value"] <= 100
        assert datetime.fromisoformat(point["time"]) <= datetime.now(UTC)
    assert body["disk"][0]["value"] > 0


def test_playback_reports_round_trip(server_factory: ServerFactory) -> None:
    server = server_factory(transcode=True)  # Owncast's default variant

    def post(body: bytes, user_agent: str = "player") -> tuple[int, bytes]:
        status, _, response = server.request(
            "/api/metrics/playback", method="POST", body=body, headers={"User-Agent": user_agent}
        )
        return status, response

    assert post(b'{"bandwidth": 4200.5, "latency": null, "errors": 0}') == (200, b"")
    status, body = post(b'{"latency": "slow"}')
    assert (status, json.loads(body)) == (400, {"message": "latency must be a number", "success": False})
    assert post(b"[1, 2]")[0] == 400
    assert post(b"{not json")[0] == 400
    status, body = post(b'{"errors": 1, "pad": "' + b"x" * 8192 + b'"}')
    assert (status, json.loads(body)["message"]) == (400, "request body is larger than the limit of 4096 bytes")

    metrics = json_get(server, "/api/admin/metrics/video", admin=True)
    assert metrics["availableBitrates"] == [1200]  # Owncast's default variant
    assert metrics["segmentLength"] == 3  # latency level 2
    assert metrics["representation"] == 0  # offline: no viewers to represent

    with publishing(server, seconds=15):
        ping(server, "player")
        assert post(b'{"bandwidth": 4200.5, "latency": 3.5, "errors": 0, "downloadDuration": 0.8}') == (200, b"")
        live = json_get(server, "/api/admin/metrics/video", admin=True)
        assert live["representation"] == 100  # the one viewer reported its bandwidth
        for name in ("errors", "medianLatency", "maxPlayerBitrate", "minimumSegmentDownloadDuration"):
            assert isinstance(live[name], list)  # points appear when the 2-minute window closes
        server.request("/api/admin/disconnect", admin=ADMIN)


def test_logs_hold_lines_we_caused(server: ServerProcess) -> None:
    with publishing(server, seconds=10):
        server.request("/api/admin/disconnect", admin=ADMIN)
    wrong_key = subprocess.run(
        live_source(server.rtmp_url(key="not-the-key"), 2), capture_output=True, text=True, timeout=30
    )
    assert wrong_key.returncode != 0

    def messages(path: str) -> list[dict[str, Any]]:
        body = json_get(server, path, admin=True)
        assert all(set(entry) == {"time", "message", "level"} for entry in body)
        return list(body)

    wait_until(
        lambda: any("stream started" in e["message"] and e["level"] == "info" for e in messages("/api/admin/logs")),
        "the stream started line",
    )
    wait_until(
        lambda: any(
            e["level"] == "warning" and "closing connection" in e["message"]
            for e in messages("/api/admin/logs/warnings")
        ),
        "the refused publisher's warning",
    )
    assert all(e["level"] in ("warning", "error", "fatal") for e in messages("/api/admin/logs/warnings"))


def test_prometheus_needs_the_admin(server: ServerProcess) -> None:
    for method in ("GET", "POST", "PUT", "DELETE"):
        status, headers, _ = server.request("/api/admin/prometheus", method=method)
        assert status == 401, method
        assert headers["www-authenticate"] == 'Basic realm="Owncast Authenticated Request"'
        status, headers, body = server.request("/api/admin/prometheus", method=method, admin=ADMIN)
        assert status == 200, method
        assert b"owncast_instance_active_viewer_count" in body
    assert prometheus(server)["owncast_fast_stream_online"] == 0


def test_admin_paths_need_the_admin_and_answer_preflights_first(server: ServerProcess) -> None:
    for path in ADMIN_PATHS:
        status, _, _ = server.request(path)
        assert status == 401, path
        status, _, _ = server.request(path, admin="wrong")
        assert status == 401, path
        status, headers, body = server.request(path, method="OPTIONS")
        assert (status, body) == (204, b""), path
        assert headers["access-control-allow-origin"] == "*"


def test_update_endpoints_tell_the_truth_without_a_supervisor(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    server = server_factory()
    assert json_get(server, "/api/admin/update/options", admin=True) == {"supportsUpdate": False, "canRestart": False}
    for path in ("/api/admin/update/start", "/api/admin/update/forcequit"):
        status, _, body = server.request(path, admin=ADMIN)
        assert status == 400, path
        assert json.loads(body)["success"] is False
    assert json_get(server, "/api/status")["online"] is False  # still running
    reset = json_get(server, "/api/admin/yp/reset", admin=True)
    assert reset == {"message": "directory registration reset", "success": True}


def test_force_quit_under_systemd_exits_cleanly(server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")  # as systemd sets it
    server = server_factory()
    assert json_get(server, "/api/admin/update/options", admin=True) == {"supportsUpdate": False, "canRestart": True}
    status, _, _ = server.request("/api/admin/update/start", admin=ADMIN)
    assert status == 400  # restarting is possible, updating in place is not
    assert json_get(server, "/api/admin/update/forcequit", admin=True) == {"message": "forcing quit", "success": True}
    assert server.proc is not None
    assert server.proc.wait(timeout=10) == 0  # systemd's Restart=always brings it back
    assert server.stop() == 0  # closes its log file
    assert "exiting at the admin's request" in server.log()
