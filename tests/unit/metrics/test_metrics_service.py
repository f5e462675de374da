"""The metrics service on a real loop and SQLite store, with its periods shortened."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from owncast_fast.config.runtime import SettingsService
from owncast_fast.events import EventBus, StreamStarted, StreamStopped
from owncast_fast.metrics.playback import PlaybackReport
from owncast_fast.metrics.service import VIEWER_COUNT_METRIC, MetricsService, Periods
from owncast_fast.status import Broadcaster, StreamDetails, StreamStatus
from owncast_fast.store import Store, open_store
from owncast_fast.timefmt import rfc3339

FAST = Periods(
    viewer_expiry=0.3,
    prune=0.05,
    save_peaks=0.05,
    sample_viewers=0.05,
    sample_hardware=0.05,
    first_hardware_sample=0.0,
    playback_window=0.05,
)
FIREFOX = "Mozilla/5.0 Firefox/134.0"


@dataclass
class FakeConsumer:
    name: str
    dropped_units: int = 0
    dropped_gops: int = 0


class FakeHub:
    consumers = (FakeConsumer("variant-0", 12, 1),)


class FakeIngest:
    def __init__(self, status: StreamStatus) -> None:
        self.status = status

    def broadcaster(self) -> Broadcaster | None:
        return self.status.broadcaster


@dataclass
class Rig:
    service: MetricsService
    store: Store
    settings: SettingsService
    bus: EventBus
    status: StreamStatus

    def go_live(self) -> None:
        now = datetime.now(UTC)
        details = StreamDetails(video_bitrate=2500, measured_video_bitrate=2400, measured_audio_bitrate=128)
        self.status.broadcaster = Broadcaster("127.0.0.1", now, details)
        self.status.latency_level = 2
        self.status.output_settings = [{"videoPassthrough": True, "videoBitrate": 1200}]
        self.bus.publish(StreamStarted(now, "127.0.0.1", "title"))

    def go_offline(self) -> None:
        self.status.broadcaster = None
        self.bus.publish(StreamStopped(datetime.now(UTC), "ended", "title"))


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait (5 s at most) until `check()` holds."""
    async with asyncio.timeout(5.0):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


def make_rig(tmp_path: Path) -> Callable[[], Awaitable[Rig]]:
    async def build() -> Rig:
        store = await open_store(str(tmp_path / "owncast.db"))
        bus = EventBus()
        settings = SettingsService(store.config, bus)
        await settings.load()
        status = StreamStatus()
        service = MetricsService(
            settings=settings,
            bus=bus,
            status=status,
            time_series=store.time_series,
            data_dir=tmp_path,
            ingest=FakeIngest(status),
            hub=FakeHub(),
            periods=FAST,
        )
        return Rig(service, store, settings, bus, status)

    return build


def run(tmp_path: Path, scenario: Callable[[Rig], Awaitable[None]]) -> None:
    async def main() -> None:
        rig = await make_rig(tmp_path)()
        rig.service.start()
        try:
            await scenario(rig)
        finally:
            await rig.service.stop()
            await rig.store.close()

    asyncio.run(main())


def test_viewers_are_counted_into_the_status_and_expire(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        rig.service.viewer_seen("203.0.113.7", None, FIREFOX)
        assert rig.status.viewer_count == 0  # offline: nobody is counted
        rig.go_live()
        rig.service.viewer_seen("203.0.113.7", None, FIREFOX)
        rig.service.viewer_seen("10.0.0.2", "198.51.100.4, 10.0.0.2", FIREFOX)
        assert rig.status.viewer_count == 2
        assert {v["ipAddress"] for v in rig.service.active_viewers_json()} == {"203.0.113.7", "198.51.100.4"}

        async def expired() -> bool:
            return rig.status.viewer_count == 0

        await eventually(expired)
        assert rig.service.viewers.session_peak == 2

    run(tmp_path, scenario)


def test_peaks_are_saved_while_live_and_at_stream_end(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        rig.go_live()
        for host in range(3):
            rig.service.viewer_seen(f"203.0.113.{host}", None, FIREFOX)

        async def saved() -> bool:
            return await rig.store.config.get_many(["peak_viewers_session", "peak_viewers_overall"]) == {
                "peak_viewers_session": 3,
                "peak_viewers_overall": 3,
            }

        await eventually(saved)
        rig.go_offline()

        async def all_expired() -> bool:
            return rig.service.active_viewers_json() == []

        await eventually(all_expired)
        rig.go_live()  # a new stream: the session peak starts again
        rig.service.viewer_seen("203.0.113.9", None, FIREFOX)
        assert rig.status.viewer_count == 1

        async def session_reset() -> bool:
            return await rig.store.config.get("peak_viewers_session") == 1

        await eventually(session_reset)
        assert rig.settings.current.peak_viewers_overall == 3

    run(tmp_path, scenario)


def test_viewer_counts_are_sampled_into_the_store_only_while_live(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        start = datetime.now(UTC) - timedelta(seconds=1)
        await asyncio.sleep(0.2)
        assert await rig.service.viewers_over_time_json(start) == []
        rig.go_live()
        rig.service.viewer_seen("203.0.113.7", None, FIREFOX)

        async def sampled() -> bool:
            return bool(await rig.store.time_series.between(VIEWER_COUNT_METRIC, start, datetime.now(UTC)))

        await eventually(sampled)
        [point, *_] = await rig.service.viewers_over_time_json(start)
        assert point["value"] == 1
        assert isinstance(point["value"], int)
        later = await rig.service.viewers_over_time_json(datetime.now(UTC) + timedelta(seconds=5))
        assert later == []

    run(tmp_path, scenario)


def test_hardware_is_sampled_and_read_by_prometheus(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        async def sampled() -> bool:
            return len(rig.service.hardware.cpu) >= 2

        await eventually(sampled)
        body = rig.service.hardware.to_json()
        assert set(body) == {"cpu", "memory", "disk"}
        assert all(0 <= point["value"] <= 100 for series in body.values() for point in series)
        rig.go_live()
        text = rig.service.prometheus.expose(None)[0].decode()
        assert 'owncast_instance_cpu_usage{host="unknown",version="0.2.0"}' in text
        assert "owncast_fast_ingest_video_bitrate_kbps 2400.0" in text
        assert 'owncast_fast_hub_dropped_gops_total{consumer="variant-0"} 1.0' in text

    run(tmp_path, scenario)


def test_playback_reports_give_video_metrics_and_health(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        offline = rig.service.video_metrics_json()
        assert offline["segmentLength"] == 3  # the configured latency level (2)
        assert offline["availableBitrates"] == [1200]  # Owncast's default variant
        assert offline["representation"] == 0
        rig.go_live()
        rig.service.viewer_seen("203.0.113.7", None, FIREFOX)
        rig.service.report_playback("203.0.113.7", None, FIREFOX, PlaybackReport(bandwidth=4000, latency=4))

        async def health() -> bool:
            return rig.service.stream_health_json() is not None

        await eventually(health)
        assert rig.service.stream_health_json() == {
            "healthy": True,
            "healthPercentage": 100,
            "message": "",
            "representation": 100,
        }
        body = rig.service.video_metrics_json()
        assert body["availableBitrates"] == [1200]
        assert body["segmentLength"] == 3
        assert any(point["value"] == 4000 for point in body["maxPlayerBitrate"])

        async def no_viewers() -> bool:
            return rig.service.stream_health_json() is None

        await eventually(no_viewers)  # the viewer expired: no health without viewers

    run(tmp_path, scenario)


def test_the_log_ring_is_installed_while_running(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        logging.getLogger("owncast_fast.test").warning("metrics test line")
        assert [e.message for e in rig.service.logs.warnings()][-1:] == ["metrics test line"]

    run(tmp_path, scenario)
    assert all(not hasattr(h, "warnings") for h in logging.getLogger().handlers)


def test_stop_leaves_no_task_behind(tmp_path: Path) -> None:
    async def main() -> None:
        rig = await make_rig(tmp_path)()
        rig.service.start()
        rig.go_live()
        rig.service.viewer_seen("203.0.113.7", None, FIREFOX)
        rig.go_offline()  # a peak write is pending
        await rig.service.stop()
        assert [task for task in asyncio.all_tasks() if task is not asyncio.current_task()] == []
        assert await rig.store.config.get("peak_viewers_overall") == 1
        await rig.store.close()

    asyncio.run(main())


def test_a_restart_within_five_minutes_keeps_the_session_peak(tmp_path: Path) -> None:
    async def main() -> None:
        rig = await make_rig(tmp_path)()
        recent = rfc3339(datetime.now(UTC) - timedelta(minutes=2)) or ""
        await rig.settings.update(peak_viewers_session=6, peak_viewers_overall=8, last_disconnect_time=recent)
        await rig.store.close()
        again = await make_rig(tmp_path)()
        assert (again.service.viewers.session_peak, again.service.viewers.overall_peak) == (6, 8)
        await again.store.close()

    asyncio.run(main())
