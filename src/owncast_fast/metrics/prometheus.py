"""Prometheus exposition for `/api/admin/prometheus`, with its own `CollectorRegistry`.

Owncast's gauges keep their names and labels (`metrics/prometheus.go`; const labels `version` and
`host`, the server URL or "unknown"):

* `owncast_instance_active_viewer_count`: the viewer count (Owncast sets it every 2 minutes
  while live; we read it at scrape time, so it is 0 as soon as the stream ends);
* `owncast_instance_cpu_usage`: the last CPU sample, percent;
* `owncast_instance_playback_error_count`: errors players reported in the last window.

Owncast's chat gauges (`owncast_instance_active_chat_client_count`, `..._total_chat_users`,
`..._current_chat_message_count`) come from the chat's collector (`chat/metrics.py`), same registry.
Ours are prefixed `owncast_fast_`: stream online, viewer peaks, ingest rates, hub drops per
consumer, LL-HLS requests parked, HLS media served, event-loop lag. The registry also carries prometheus-client's
process, platform and GC collectors (Owncast's default registry carries Go's equivalents).

Values are read when scraped, on the event loop, from the live objects: nothing to keep in sync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector


class HlsActivity:
    """Counters the HLS routes keep (`web/routes/hls.py`); only the event loop changes them."""

    __slots__ = ("media_served", "parked", "playlists_served")

    def __init__(self) -> None:
        self.parked = 0  # LL-HLS blocking reloads and early part requests waiting right now
        self.playlists_served = 0  # media playlists
        self.media_served = 0  # segments, parts and init sections


HLS_ACTIVITY = HlsActivity()


@dataclass(frozen=True, slots=True)
class HubDrops:
    consumer: str
    units: int
    gops: int


@dataclass(frozen=True, slots=True)
class Readings:
    """Everything the exposition shows, read at scrape time."""

    version: str
    host: str
    online: bool
    viewers: int
    session_peak: int
    overall_peak: int
    cpu_percent: float | None  # None before the first hardware sample
    playback_errors: float
    video_bitrate_kbps: int
    audio_bitrate_kbps: int
    framerate: float
    hub_drops: Sequence[HubDrops] = field(default_factory=tuple)
    viewers_refused: int = 0
    loop_lag: Sequence[tuple[str, float]] = field(default_factory=tuple)  # (quantile, seconds), last minute


class OwncastCollector(Collector):
    def __init__(self, read: Callable[[], Readings], hls: HlsActivity = HLS_ACTIVITY) -> None:
        self._read = read
        self._hls = hls

    def collect(self) -> Iterator[Metric]:
        r = self._read()
        labels = {"version": r.version, "host": r.host}

        def owncast_gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
            gauge = GaugeMetricFamily(name, documentation, labels=list(labels))
            gauge.add_metric(list(labels.values()), value)
            return gauge

        yield owncast_gauge("owncast_instance_active_viewer_count", "The number of viewers.", r.viewers)
        if r.cpu_percent is not None:
            yield owncast_gauge("owncast_instance_cpu_usage", "CPU usage as seen internally to Owncast.", r.cpu_percent)
        yield owncast_gauge(
            "owncast_instance_playback_error_count",
            "Errors collected from players within this window",
            r.playback_errors,
        )

        yield GaugeMetricFamily("owncast_fast_stream_online", "1 while a publisher is connected.", value=int(r.online))
        yield GaugeMetricFamily(
            "owncast_fast_viewers_session_peak", "Most viewers at once during the current stream.", value=r.session_peak
        )
        yield GaugeMetricFamily("owncast_fast_viewers_overall_peak", "Most viewers at once ever.", value=r.overall_peak)
        yield CounterMetricFamily(
            "owncast_fast_viewers_refused",
            "New viewer identities not tracked because the viewer table was full.",
            value=r.viewers_refused,
        )
        yield GaugeMetricFamily(
            "owncast_fast_ingest_video_bitrate_kbps",
            "Video bitrate received from the publisher.",
            value=r.video_bitrate_kbps,
        )
        yield GaugeMetricFamily(
            "owncast_fast_ingest_audio_bitrate_kbps",
            "Audio bitrate received from the publisher.",
            value=r.audio_bitrate_kbps,
        )
        yield GaugeMetricFamily("owncast_fast_ingest_framerate", "Video frames per second received.", value=r.framerate)
        units = CounterMetricFamily(
            "owncast_fast_hub_dropped_units", "Access units a slow consumer missed.", labels=["consumer"]
        )
        gops = CounterMetricFamily(
            "owncast_fast_hub_dropped_gops", "Times a slow consumer skipped to the next keyframe.", labels=["consumer"]
        )
        for drops in r.hub_drops:
            units.add_metric([drops.consumer], drops.units)
            gops.add_metric([drops.consumer], drops.gops)
        yield units
        yield gops
        lag = GaugeMetricFamily(
            "owncast_fast_event_loop_lag_seconds",
            "How late the event loop ran a once-a-second timer over the last five minutes (quantile 1 is the worst).",
            labels=["quantile"],
        )
        for quantile, seconds in r.loop_lag:
            lag.add_metric([quantile], seconds)
        yield lag
        yield GaugeMetricFamily(
            "owncast_fast_hls_parked_requests",
            "LL-HLS blocking playlist reloads and early part requests waiting for media.",
            value=self._hls.parked,
        )
        yield CounterMetricFamily(
            "owncast_fast_hls_playlists_served", "Media playlists served.", value=self._hls.playlists_served
        )
        yield CounterMetricFamily(
            "owncast_fast_hls_media_served", "Segments, parts and init sections served.", value=self._hls.media_served
        )


class PrometheusExporter:
    def __init__(self, read: Callable[[], Readings], hls: HlsActivity = HLS_ACTIVITY) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(OwncastCollector(read, hls))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def expose(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format `accept` asks for (text by default): (body, content type)."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type
