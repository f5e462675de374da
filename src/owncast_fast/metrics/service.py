"""The metrics service: wires the sans-I/O metrics cores to the clock, the bus, the store and psutil.

Background jobs, each on its own period (constructor arguments, so tests can shorten them):

| job | every | what |
|---|---|---|
| prune viewers | 5 s | forget viewers unseen for 15 s; `status.viewer_count` follows |
| save peaks | 1 min | `peak_viewers_session`, `peak_viewers_overall` settings if changed; also at stream end, stop |
| sample viewers | 2 min | while online, the viewer count into the store's `viewer_count` series; expire old samples |
| sample hardware | 1 min | CPU, memory, disk into the in-memory rings (first sample 1 s after start) |
| close playback window | 2 min | players' reports into one point per series; the health overview while online |

Everything runs on the event loop except the psutil reading (a worker thread: `statvfs` can
block on a slow disk). `stop()` cancels the jobs, waits for pending writes and saves the peaks.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from owncast_fast import OWNCAST_API_VERSION
from owncast_fast.config.runtime import LATENCY_LEVELS, MAX_LATENCY_LEVEL, SettingsService
from owncast_fast.events import Event, EventBus, StreamStarted, StreamStopped
from owncast_fast.metrics.hardware import SAMPLE_INTERVAL_SECONDS, HardwareSeries, prime_cpu_counter, read_hardware
from owncast_fast.metrics.logs import LogRing
from owncast_fast.metrics.playback import WINDOW_SECONDS, HealthInputs, PlaybackMetrics, PlaybackReport
from owncast_fast.metrics.prometheus import HubDrops, PrometheusExporter, Readings
from owncast_fast.metrics.series import number
from owncast_fast.metrics.viewers import (
    PRUNE_INTERVAL_SECONDS,
    VIEWER_EXPIRY_SECONDS,
    ViewerTracker,
    client_id,
    client_ip,
)
from owncast_fast.status import Broadcaster, StreamStatus
from owncast_fast.store import TimeSeriesRepository
from owncast_fast.timefmt import parse_rfc3339, rfc3339, utcnow

log = logging.getLogger(__name__)

VIEWER_COUNT_METRIC = "viewer_count"  # Owncast's tstorage metric name
# One sample per 2 minutes of live time: 30 days is at most 21,600 rows, and more than the
# admin's viewer chart offers.
SAMPLE_RETENTION = timedelta(days=30)


class BroadcasterSource(Protocol):
    def broadcaster(self) -> Broadcaster | None: ...


class HubConsumer(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def dropped_units(self) -> int: ...
    @property
    def dropped_gops(self) -> int: ...


class HubSource(Protocol):
    @property
    def consumers(self) -> Sequence[HubConsumer]: ...


@dataclass(frozen=True, slots=True)
class Periods:
    """Seconds; Owncast's values by default."""

    viewer_expiry: float = VIEWER_EXPIRY_SECONDS
    prune: float = PRUNE_INTERVAL_SECONDS
    save_peaks: float = 60.0
    sample_viewers: float = 120.0
    sample_hardware: float = SAMPLE_INTERVAL_SECONDS
    first_hardware_sample: float = 1.0
    playback_window: float = WINDOW_SECONDS


class MetricsService:
    def __init__(
        self,
        *,
        settings: SettingsService,
        bus: EventBus,
        status: StreamStatus,
        time_series: TimeSeriesRepository,
        data_dir: Path,
        ingest: BroadcasterSource,
        hub: HubSource,
        periods: Periods = Periods(),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._bus = bus
        self._status = status
        self._time_series = time_series
        self._data_dir = data_dir
        self._ingest = ingest
        self._hub = hub
        self._periods = periods
        self._clock = clock
        current = settings.current
        self.viewers = ViewerTracker.restored(
            session_peak=current.peak_viewers_session,
            overall_peak=current.peak_viewers_overall,
            last_disconnect=parse_rfc3339(current.last_disconnect_time),
            now=clock(),
            expiry=periods.viewer_expiry,
        )
        self.hardware = HardwareSeries()
        self.playback = PlaybackMetrics()
        self.logs = LogRing()
        self.prometheus = PrometheusExporter(self._readings)
        self._jobs: list[asyncio.Task[None]] = []
        self.loop_lag = LoopLag()
        self._writes: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        self.logs.install()
        prime_cpu_counter()
        self._unsubscribe = self._bus.subscribe(self._on_event)
        # A session peak forgotten at start-up (the last stream ended over 5 minutes ago) is stored at once.
        self._write(self._save_peaks(), "save viewer peaks")
        periods = self._periods
        self._jobs = [
            self._every(periods.prune, self._prune, "prune viewers"),
            self._every(periods.save_peaks, self._save_peaks, "save viewer peaks"),
            self._every(periods.sample_viewers, self._sample_viewers, "sample viewers"),
            self._every(
                periods.sample_hardware, self._sample_hardware, "sample hardware", first=periods.first_hardware_sample
            ),
            self._every(periods.playback_window, self._close_playback_window, "close playback window"),
            asyncio.create_task(self.loop_lag.run(), name="metrics: event-loop lag"),
        ]

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for job in self._jobs:
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
        self._jobs = []
        if self._writes:
            await asyncio.wait(tuple(self._writes))
        try:
            await self._save_peaks()
        except Exception:
            log.exception("could not save the viewer peaks at shutdown")
        self.logs.uninstall()

    def _every(
        self, period: float, job: Callable[[], Awaitable[None]], what: str, *, first: float | None = None
    ) -> asyncio.Task[None]:
        async def run() -> None:
            await asyncio.sleep(period if first is None else first)
            while True:
                try:
                    await job()
                except Exception:
                    log.exception("metrics: %s failed", what)
                await asyncio.sleep(period)

        return asyncio.create_task(run(), name=f"metrics: {what}")

    def _write(self, coro: Awaitable[None], what: str) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("metrics: %s failed", what)

        task = asyncio.create_task(run())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, StreamStarted):
            self.viewers.stream_started()
            self._status.viewer_count = 0
        elif isinstance(event, StreamStopped):
            self.viewers.stream_stopped()
            self._status.viewer_count = 0
            self._write(self._save_peaks(), "save viewer peaks")

    # -- jobs ---------------------------------------------------------------------------------------

    async def _prune(self) -> None:
        self.viewers.prune(self._clock())
        self._status.viewer_count = self.viewers.count

    async def _save_peaks(self) -> None:
        current = self._settings.current
        session, overall = self.viewers.session_peak, self.viewers.overall_peak
        if (session, overall) != (current.peak_viewers_session, current.peak_viewers_overall):
            await self._settings.update(peak_viewers_session=session, peak_viewers_overall=overall)

    async def _sample_viewers(self) -> None:
        if not self.viewers.online:
            return
        now = self._clock()
        await self._time_series.add(VIEWER_COUNT_METRIC, now, self.viewers.count)
        await self._time_series.delete_before(now - SAMPLE_RETENTION)

    async def _sample_hardware(self) -> None:
        reading = await asyncio.to_thread(read_hardware, self._data_dir)
        self.hardware.add(reading, self._clock())

    async def _close_playback_window(self) -> None:
        self.playback.close_window(self._clock(), self._health_inputs() if self._status.online else None)

    def _health_inputs(self) -> HealthInputs:
        broadcaster = self._ingest.broadcaster()
        details = broadcaster.details if broadcaster is not None else None
        return HealthInputs(
            active_viewers=self.viewers.count,
            recent_cpu=self.hardware.recent_cpu(2),
            output_variants=self._settings.current.video_stream_output_variants,
            inbound_video_bitrate=(details.video_bitrate or details.measured_video_bitrate) if details else 0,
            segment_seconds=_segment_seconds(self._status.latency_level),
        )

    # -- what the routes call -------------------------------------------------------------------------

    def viewer_seen(self, peer: str | None, forwarded_for: str | None, user_agent: str) -> None:
        """A ping or a media playlist fetch (from any thread)."""
        if self.viewers.mark_active(client_ip(peer, forwarded_for), user_agent, self._clock()):
            self._status.viewer_count = self.viewers.count

    def active_viewers_json(self) -> list[dict[str, Any]]:
        return [viewer.to_json() for viewer in self.viewers.viewers()]

    async def viewers_over_time_json(self, start: datetime) -> list[dict[str, Any]]:
        samples = await self._time_series.between(VIEWER_COUNT_METRIC, start, self._clock())
        return [{"time": rfc3339(sample.time), "value": number(sample.value)} for sample in samples]

    def report_playback(
        self, peer: str | None, forwarded_for: str | None, user_agent: str, report: PlaybackReport
    ) -> None:
        """A player's report, kept under its viewer identity (Owncast's client ID)."""
        self.playback.report(client_id(client_ip(peer, forwarded_for), user_agent), report)

    def stream_health_json(self) -> dict[str, Any] | None:
        """Admin status' `health` (Owncast's `StreamHealthOverview`): null while nobody watches."""
        health = self.playback.health
        if health is None or self.viewers.count == 0:
            return None
        return health.to_json()

    def video_metrics_json(self) -> dict[str, Any]:
        """`GET /api/admin/metrics/video`: the series, the variants' bitrates and the segment length."""
        if self._status.online:
            variants = self._status.output_settings
            segment_seconds = _segment_seconds(self._status.latency_level)
        else:
            variants = self._settings.current.video_stream_output_variants
            segment_seconds = self._settings.current.segment_seconds()
        body = self.playback.to_json()
        body["availableBitrates"] = [_video_bitrate(variant) for variant in variants]
        body["segmentLength"] = segment_seconds
        body["representation"] = self.playback.representation(self.viewers.count)
        return body

    def _readings(self) -> Readings:
        broadcaster = self._ingest.broadcaster()
        details = broadcaster.details if broadcaster is not None else None
        cpu = self.hardware.recent_cpu(1)
        return Readings(
            version=OWNCAST_API_VERSION,
            host=self._settings.current.server_url or "unknown",
            online=self._status.online,
            viewers=self.viewers.count,
            session_peak=self.viewers.session_peak,
            overall_peak=self.viewers.overall_peak,
            cpu_percent=cpu[0] if cpu else None,
            playback_errors=self.playback.last_errors(),
            video_bitrate_kbps=details.measured_video_bitrate if details else 0,
            audio_bitrate_kbps=details.measured_audio_bitrate if details else 0,
            framerate=details.measured_framerate if details else 0.0,
            hub_drops=[HubDrops(c.name, c.dropped_units, c.dropped_gops) for c in self._hub.consumers],
            viewers_refused=self.viewers.refused,
            loop_lag=self.loop_lag.quantiles(),
        )


class LoopLag:
    """How late the event loop wakes a periodic timer: every request, RTMP read and segment
    waits behind whatever holds the loop, so this is the latency the server adds under load.

    One probe a second over the last five minutes (300 samples for the p99). On a shared virtual
    machine a timer that wakes an idle loop costs ~0.5-0.9 ms of CPU (cold caches: the longer the
    sleep, the dearer the wake-up), so 20 probes a second were 0.5-1.5 % of a core and 4 a second
    still ~0.2 %, most of an idle server's cost and a sixth of a passthrough stream's. A stall is
    seen when a probe falls due during it: one of L seconds with odds of about L in a second, so
    the long stalls, the ones that matter, are still caught.
    """

    def __init__(self, interval: float = 1.0, window: float = 300.0) -> None:
        self.interval = interval
        self.samples: collections.deque[float] = collections.deque(maxlen=int(window / interval))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            self.samples.append(max(0.0, loop.time() - before - self.interval))

    def quantiles(self) -> list[tuple[str, float]]:
        ordered = sorted(self.samples)
        if not ordered:
            return []
        last = len(ordered) - 1
        return [
            ("0.5", ordered[min(last, len(ordered) // 2)]),
            ("0.99", ordered[min(last, int(len(ordered) * 0.99))]),
            ("1", ordered[last]),
        ]


def _segment_seconds(latency_level: int) -> int:
    return LATENCY_LEVELS[min(max(latency_level, 0), MAX_LATENCY_LEVEL)][0]


def _video_bitrate(variant: dict[str, Any]) -> int:
    value = variant.get("videoBitrate", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
