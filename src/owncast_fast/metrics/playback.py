"""Players' playback reports, aggregated per window, and the stream health overview.

Owncast's web player posts `{bandwidth, latency, errors, downloadDuration, qualityVariantChanges}`
to `POST /api/metrics/playback` (`controllers/playbackMetrics.go`). Within a window each client
(Owncast's viewer identity) counts once, with its latest report; every 2 minutes the window is
closed into one point per series (`metrics/playback.go`):

* errors and quality variant changes: the sum over clients;
* latency and segment download duration: median, minimum and maximum;
* bandwidth (the player's estimate, kbit/s): minimum, median and maximum, rounded;
* a series with no report in the window gets 0, as in Owncast.

A zero bandwidth, latency or download duration means "not measured" and is left out, as Owncast
does. Before a window closes while the stream is online, the health overview
(`metrics/healthOverview.go`) is computed from it: the share of clients without errors, and the
first applicable advice among encoder bitrate waste, CPU load, slow viewers and error rates.
The series keep Owncast's 300 points (10 hours of windows).
"""

from __future__ import annotations

import math
import sys
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from owncast_fast.metrics.series import TimestampedValue, series_json
from owncast_fast.metrics.viewers import MAX_VIEWERS

WINDOW_SECONDS = 120.0
MAX_POINTS = 300  # Owncast's `maxCollectionValues`
# A report is five numbers (about 120 bytes from Owncast's player); a larger body is not one.
MAX_REPORT_BYTES = 4096

# Owncast's health thresholds.
HEALTHY_PERCENTAGE_MIN = 75
MAX_CPU_USAGE = 90
MIN_CLIENTS_FOR_DETAILS = 3

REPORT_FIELDS = ("bandwidth", "latency", "errors", "downloadDuration", "qualityVariantChanges")


class PlaybackReportError(ValueError):
    """The body is not a playback report; the message names the field."""


@dataclass(frozen=True, slots=True)
class PlaybackReport:
    bandwidth: float = 0.0  # kbit/s
    latency: float = 0.0  # seconds
    errors: float = 0.0
    download_duration: float = 0.0  # seconds per segment
    quality_variant_changes: float = 0.0


def parse_report(data: Mapping[str, Any]) -> PlaybackReport:
    """Validate a decoded report against the spec's `PlaybackMetrics`: each field is a number.

    A field that is absent or null counts as 0, as Go's decoder leaves it: Owncast's player sends
    null where its average has no samples yet (JSON.stringify turns NaN into null). Other fields
    are ignored, as Owncast ignores them.
    """
    values: list[float] = []
    for name in REPORT_FIELDS:
        value = data.get(name)
        if value is None:
            values.append(0.0)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PlaybackReportError(f"{name} must be a number")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise PlaybackReportError(f"{name} is out of range")
        values.append(number)
    return PlaybackReport(*values)


def int_percentage(part: int, total: int) -> int:
    """Owncast's `utils.IntPercentage`, with 0 where it would divide by zero."""
    return int(part / total * 100) if total else 0


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """What the health overview reads besides the window: all sampled while the stream is online."""

    active_viewers: int
    recent_cpu: Sequence[float]  # the last two CPU samples, percent
    output_variants: Sequence[Mapping[str, Any]]  # the configured variants (Owncast reads the settings)
    inbound_video_bitrate: int  # kbit/s, from the broadcaster
    segment_seconds: int  # of the current broadcast's latency level


@dataclass(frozen=True, slots=True)
class StreamHealthOverview:
    healthy: bool
    health_percentage: int
    message: str
    representation: int

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "healthPercentage": self.health_percentage,
            "message": self.message,
            "representation": self.representation,
        }


@dataclass(slots=True)
class _Window:
    errors: dict[str, float]
    quality_variant_changes: dict[str, float]
    bandwidths: dict[str, float]
    latencies: dict[str, float]
    download_durations: dict[str, float]


def _new_window() -> _Window:
    return _Window({}, {}, {}, {}, {})


def _spread(values: Iterable[float]) -> tuple[float, float, float]:
    """(minimum, median, maximum), or zeros when there is no value."""
    ordered = sorted(values)
    if not ordered:
        return 0.0, 0.0, 0.0
    middle = len(ordered) // 2
    # Halving first keeps the mean of two huge values finite; halving is exact, so it is the same
    # number as (a + b) / 2 wherever that does not overflow.
    median = ordered[middle] if len(ordered) % 2 else ordered[middle - 1] / 2 + ordered[middle] / 2
    return ordered[0], median, ordered[-1]


def _total(values: Iterable[float]) -> float:
    """The sum, held to the largest finite float: reports are finite but their sum may not be."""
    return max(-sys.float_info.max, min(sum(values), sys.float_info.max))


class PlaybackMetrics:
    def __init__(self, *, max_points: int = MAX_POINTS, max_clients: int = MAX_VIEWERS) -> None:
        self._lock = threading.Lock()
        self._window = _new_window()
        self._max_clients = max_clients
        self.refused = 0  # reports from new clients dropped because the window was full
        self.health: StreamHealthOverview | None = None
        names = (
            "errors",
            "qualityVariantChanges",
            "highestLatency",
            "medianLatency",
            "lowestLatency",
            "medianSegmentDownloadDuration",
            "maximumSegmentDownloadDuration",
            "minimumSegmentDownloadDuration",
            "minPlayerBitrate",
            "medianPlayerBitrate",
            "maxPlayerBitrate",
        )
        self.series: dict[str, deque[TimestampedValue]] = {name: deque(maxlen=max_points) for name in names}

    def report(self, client_id: str, report: PlaybackReport) -> bool:
        """Keep `report` as this client's numbers for the current window."""
        with self._lock:
            window = self._window
            # Every report sets `errors`, so its keys bound every map of the window.
            if client_id not in window.errors and len(window.errors) >= self._max_clients:
                self.refused += 1
                return False
            window.errors[client_id] = report.errors
            window.quality_variant_changes[client_id] = report.quality_variant_changes
            if report.bandwidth != 0:
                window.bandwidths[client_id] = report.bandwidth
            if report.latency != 0:
                window.latencies[client_id] = report.latency
            if report.download_duration != 0:
                window.download_durations[client_id] = report.download_duration
            return True

    def representation(self, active_viewers: int) -> int:
        """The share of active viewers whose bandwidth is in the current window, percent."""
        with self._lock:
            return int_percentage(len(self._window.bandwidths), active_viewers)

    def last_errors(self) -> float:
        """The error count of the last closed window (Owncast's Prometheus gauge)."""
        errors = self.series["errors"]
        return errors[-1].value if errors else 0.0

    def close_window(self, now: datetime, health: HealthInputs | None) -> None:
        """Turn the window into one point per series; `health` is given while the stream is online."""
        with self._lock:
            window, self._window = self._window, _new_window()
        if health is not None:
            self.health = stream_health(window, health)
        points = {
            "errors": _total(window.errors.values()),
            "qualityVariantChanges": _total(window.quality_variant_changes.values()),
        }
        low, median, high = _spread(window.latencies.values())
        points.update(lowestLatency=low, medianLatency=median, highestLatency=high)
        low, median, high = _spread(window.download_durations.values())
        points.update(
            minimumSegmentDownloadDuration=low,
            medianSegmentDownloadDuration=median,
            maximumSegmentDownloadDuration=high,
        )
        low, median, high = _spread(window.bandwidths.values())
        points.update(minPlayerBitrate=round(low), medianPlayerBitrate=round(median), maxPlayerBitrate=round(high))
        for name, value in points.items():
            self.series[name].append(TimestampedValue(now, float(value)))

    def to_json(self) -> dict[str, Any]:
        """The series of `GET /api/admin/metrics/video` (the caller adds bitrates, segment length, representation)."""
        return {name: series_json(values) for name, values in self.series.items()}


# -- the health overview --------------------------------------------------------------------------


def stream_health(window: _Window, inputs: HealthInputs) -> StreamHealthOverview | None:
    if inputs.active_viewers == 0 or not window.errors:
        return None
    with_errors = sum(1 for errors in window.errors.values() if errors > 0)
    percentage = 100 - int_percentage(with_errors, len(window.errors))
    if percentage < 1:
        return None
    return StreamHealthOverview(
        healthy=percentage > HEALTHY_PERCENTAGE_MIN,
        health_percentage=percentage,
        message=_advice(window, inputs, with_errors),
        representation=int_percentage(len(window.bandwidths), inputs.active_viewers),
    )


def _advice(window: _Window, inputs: HealthInputs, with_errors: int) -> str:
    for message in (
        _wasteful_bitrate(inputs),
        _cpu_usage(inputs),
        _network_speed(window, inputs),
        _error_count(window, inputs, with_errors),
    ):
        if message:
            return message
    return ""


def _ranked_bitrates(variants: Sequence[Mapping[str, Any]]) -> list[int]:
    """Video bitrates, passthrough variants first, then highest to lowest (Owncast's order)."""
    ranked = sorted(variants, key=lambda v: (not v.get("videoPassthrough"), -_bitrate(v)))
    return [_bitrate(v) for v in ranked]


def _bitrate(variant: Mapping[str, Any]) -> int:
    value = variant.get("videoBitrate", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _cpu_is_at_least(inputs: HealthInputs, threshold: float) -> bool:
    recent = list(inputs.recent_cpu)[-2:]
    return len(recent) == 2 and sum(recent) / 2 >= threshold


def _wasteful_bitrate(inputs: HealthInputs) -> str:
    if not _cpu_is_at_least(inputs, MAX_CPU_USAGE - 10) or inputs.inbound_video_bitrate == 0:
        return ""
    bitrates = _ranked_bitrates(inputs.output_variants)
    if not bitrates or inputs.inbound_video_bitrate <= bitrates[0]:
        return ""
    return (
        f"You're streaming to Owncast at {inputs.inbound_video_bitrate}kbps but only broadcasting to your "
        f"viewers at {bitrates[0]}kbps, requiring unnecessary work to be performed and possible excessive CPU "
        "use. You may want to decrease what you're sending to Owncast or increase what you send to your "
        "viewers so the highest bitrate matches."
    )


def _cpu_usage(inputs: HealthInputs) -> str:
    if not _cpu_is_at_least(inputs, MAX_CPU_USAGE):
        return ""
    return (
        f"The CPU usage on your server is over {MAX_CPU_USAGE}%. This may cause video to be provided slower "
        "than necessary, causing buffering for your viewers. Consider increasing the resources available or "
        "reducing the number of output variants you made available."
    )


def _network_speed(window: _Window, inputs: HealthInputs) -> str:
    bitrates = _ranked_bitrates(inputs.output_variants)
    clients = len(window.bandwidths)
    if not bitrates or clients == 0:
        return ""
    lowest = bitrates[-1]
    slow = sum(1 for speed in window.bandwidths.values() if int(speed) < int(lowest * 1.1))
    if slow == 0:
        return ""
    return (
        f"{slow} of {clients} viewers ({int(slow / clients * 100)}%) are consuming video slower than, or too "
        f"close to your bitrate of {lowest} kbps."
    )


def _error_count(window: _Window, inputs: HealthInputs, with_errors: int) -> str:
    clients = len(window.bandwidths)
    if clients < MIN_CLIENTS_FOR_DETAILS or with_errors == 0:
        return ""
    share = int_percentage(with_errors, clients)
    if any(variant.get("videoPassthrough") for variant in inputs.output_variants):
        return (
            f"{with_errors} of {clients} viewers ({share}%) are experiencing errors. You're currently using a "
            "video passthrough output, often known for causing playback issues for people. It is suggested "
            "you turn it off."
        )
    if inputs.segment_seconds < 3:
        return (
            f"{with_errors} of {clients} viewers ({share}%) may be experiencing some issues. You may want to "
            "increase your latency buffer level in your video configuration to see if it helps."
        )
    return f"{with_errors} of {clients} viewers ({share}%) may be experiencing some issues."
