"""Playback reports: validation, per-window aggregation (Owncast's metrics/playback.go), health overview."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from owncast_fast.metrics.playback import (
    HealthInputs,
    PlaybackMetrics,
    PlaybackReport,
    PlaybackReportError,
    StreamHealthOverview,
    parse_report,
)

T0 = datetime(2025, 1, 11, 12, 0, tzinfo=UTC)
SERIES = (
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
VARIANT = {"videoPassthrough": False, "videoBitrate": 1200}
PASSTHROUGH = {"videoPassthrough": True, "videoBitrate": 0}


def last_points(metrics: PlaybackMetrics) -> dict[str, float]:
    return {name: values[-1].value for name, values in metrics.series.items()}


def inputs(**changes: Any) -> HealthInputs:
    values: dict[str, Any] = {
        "active_viewers": 4,
        "recent_cpu": [10.0, 12.0],
        "output_variants": [VARIANT],
        "inbound_video_bitrate": 1000,
        "segment_seconds": 3,
    }
    values.update(changes)
    return HealthInputs(**values)


# -- validation -------------------------------------------------------------------------------------


def test_a_full_report_parses() -> None:
    body = {"bandwidth": 5200.5, "latency": 7.25, "errors": 1, "downloadDuration": 0.4, "qualityVariantChanges": 2}
    assert parse_report(body) == PlaybackReport(5200.5, 7.25, 1.0, 0.4, 2.0)


def test_absent_null_and_unknown_fields_are_zero_or_ignored() -> None:
    # Owncast's player sends null for an average with no samples yet (JSON.stringify(NaN)).
    assert parse_report({"latency": None, "errors": 0, "somethingNew": "x"}) == PlaybackReport()
    assert parse_report({}) == PlaybackReport()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"bandwidth": "5200"}, "bandwidth must be a number"),
        ({"latency": True}, "latency must be a number"),
        ({"errors": [1]}, "errors must be a number"),
        ({"downloadDuration": {"s": 1}}, "downloadDuration must be a number"),
        ({"qualityVariantChanges": 10**400}, "qualityVariantChanges is out of range"),
        ({"bandwidth": 1e308 * 10}, "bandwidth is out of range"),
    ],
)
def test_a_field_that_is_not_a_number_is_refused_by_name(body: dict[str, Any], message: str) -> None:
    with pytest.raises(PlaybackReportError) as raised:
        parse_report(body)
    assert str(raised.value) == message


# -- aggregation ------------------------------------------------------------------------------------


def test_an_empty_window_closes_into_zeros() -> None:
    metrics = PlaybackMetrics()
    metrics.close_window(T0, None)
    assert last_points(metrics) == dict.fromkeys(SERIES, 0.0)
    assert all(values[-1].time == T0 for values in metrics.series.values())


def test_each_client_counts_once_with_its_latest_report() -> None:
    metrics = PlaybackMetrics()
    metrics.report("a", PlaybackReport(bandwidth=1000, latency=9, errors=5))
    metrics.report("a", PlaybackReport(bandwidth=3000, latency=3, errors=1, quality_variant_changes=1))
    metrics.close_window(T0, None)
    points = last_points(metrics)
    assert points["errors"] == 1
    assert points["qualityVariantChanges"] == 1
    assert points["medianLatency"] == points["lowestLatency"] == points["highestLatency"] == 3
    assert points["minPlayerBitrate"] == points["maxPlayerBitrate"] == 3000


def test_a_window_gives_sums_medians_and_extremes_over_clients() -> None:
    metrics = PlaybackMetrics()
    reports = {
        "a": PlaybackReport(bandwidth=1000.4, latency=2.0, errors=0, download_duration=0.5, quality_variant_changes=1),
        "b": PlaybackReport(bandwidth=2500.6, latency=4.0, errors=2, download_duration=1.5, quality_variant_changes=0),
        "c": PlaybackReport(bandwidth=4000.0, latency=9.0, errors=3, download_duration=0.7, quality_variant_changes=2),
        "d": PlaybackReport(bandwidth=5000.0, latency=5.0, errors=0, download_duration=2.5),
    }
    for client, report in reports.items():
        metrics.report(client, report)
    metrics.close_window(T0, None)
    assert last_points(metrics) == {
        "errors": 5,
        "qualityVariantChanges": 3,
        "lowestLatency": 2.0,
        "medianLatency": 4.5,
        "highestLatency": 9.0,
        "minimumSegmentDownloadDuration": 0.5,
        "medianSegmentDownloadDuration": 1.1,
        "maximumSegmentDownloadDuration": 2.5,
        "minPlayerBitrate": 1000,  # bitrates are rounded, as Owncast rounds them
        "medianPlayerBitrate": 3250,
        "maxPlayerBitrate": 5000,
    }


def test_zero_bandwidth_latency_and_duration_mean_not_measured() -> None:
    metrics = PlaybackMetrics()
    metrics.report("a", PlaybackReport(bandwidth=2000, latency=4, download_duration=1))
    metrics.report("b", PlaybackReport(errors=1))
    metrics.close_window(T0, None)
    points = last_points(metrics)
    assert points["minPlayerBitrate"] == points["medianPlayerBitrate"] == 2000
    assert points["lowestLatency"] == points["medianLatency"] == 4
    assert points["errors"] == 1


def test_closing_starts_a_new_window() -> None:
    metrics = PlaybackMetrics()
    metrics.report("a", PlaybackReport(bandwidth=2000, errors=4))
    metrics.close_window(T0, None)
    metrics.close_window(T0 + timedelta(minutes=2), None)
    assert [point.value for point in metrics.series["errors"]] == [4, 0]
    assert [point.value for point in metrics.series["maxPlayerBitrate"]] == [2000, 0]
    assert metrics.last_errors() == 0


def test_series_are_bounded() -> None:
    metrics = PlaybackMetrics(max_points=3)
    for minute in range(5):
        metrics.report("a", PlaybackReport(errors=minute))
        metrics.close_window(T0 + timedelta(minutes=minute), None)
    assert [point.value for point in metrics.series["errors"]] == [2, 3, 4]


def test_the_window_is_bounded_by_clients_and_refusals_counted() -> None:
    metrics = PlaybackMetrics(max_clients=2)
    assert metrics.report("a", PlaybackReport(errors=1))
    assert metrics.report("b", PlaybackReport(errors=1))
    assert not metrics.report("c", PlaybackReport(errors=1))
    assert metrics.report("a", PlaybackReport(errors=2))
    metrics.close_window(T0, None)
    assert (metrics.last_errors(), metrics.refused) == (3, 1)


def test_representation_is_the_share_of_viewers_reporting_bandwidth() -> None:
    metrics = PlaybackMetrics()
    metrics.report("a", PlaybackReport(bandwidth=2000))
    metrics.report("b", PlaybackReport(latency=3))
    assert metrics.representation(active_viewers=4) == 25
    assert metrics.representation(active_viewers=0) == 0  # Owncast divides by zero here


def test_json_has_every_series_of_the_spec() -> None:
    metrics = PlaybackMetrics()
    metrics.report("a", PlaybackReport(bandwidth=2000, latency=2.5))
    metrics.close_window(T0, None)
    body = metrics.to_json()
    assert set(body) == set(SERIES)
    assert body["maxPlayerBitrate"] == [{"time": "2025-01-11T12:00:00.000000Z", "value": 2000}]
    assert body["medianLatency"] == [{"time": "2025-01-11T12:00:00.000000Z", "value": 2.5}]


# -- health overview --------------------------------------------------------------------------------


def health_after(reports: dict[str, PlaybackReport], health: HealthInputs) -> StreamHealthOverview | None:
    metrics = PlaybackMetrics()
    for client, report in reports.items():
        metrics.report(client, report)
    metrics.close_window(T0, health)
    return metrics.health


def test_no_health_without_viewers_or_reports() -> None:
    assert health_after({"a": PlaybackReport(bandwidth=5000)}, inputs(active_viewers=0)) is None
    assert health_after({}, inputs()) is None


def test_health_is_the_share_of_clients_without_errors() -> None:
    reports = {c: PlaybackReport(bandwidth=5000, errors=1 if c == "a" else 0) for c in "abcd"}
    assert health_after(reports, inputs()) == StreamHealthOverview(
        healthy=False,  # 75 is not above Owncast's 75
        health_percentage=75,
        message="1 of 4 viewers (25%) may be experiencing some issues.",
        representation=100,
    )
    reports = {c: PlaybackReport(bandwidth=5000) for c in "ab"}
    assert health_after(reports, inputs()) == StreamHealthOverview(True, 100, "", 50)


def test_no_health_when_every_client_has_errors() -> None:
    assert health_after({"a": PlaybackReport(bandwidth=5000, errors=2)}, inputs()) is None


def test_health_is_kept_while_offline_and_recomputed_online() -> None:
    metrics = PlaybackMetrics()
    metrics.report("a", PlaybackReport(bandwidth=5000))
    metrics.close_window(T0, inputs())
    before = metrics.health
    metrics.close_window(T0, None)
    assert metrics.health == before is not None


def test_advice_for_slow_viewers() -> None:
    reports = {"a": PlaybackReport(bandwidth=1300), "b": PlaybackReport(bandwidth=5000)}
    health = health_after(reports, inputs())
    assert health is not None
    assert health.message == (
        "1 of 2 viewers (50%) are consuming video slower than, or too close to your bitrate of 1200 kbps."
    )


def test_advice_for_high_cpu_comes_before_slow_viewers() -> None:
    health = health_after({"a": PlaybackReport(bandwidth=100)}, inputs(recent_cpu=[50.0, 95.0, 91.0]))
    assert health is not None
    assert health.message.startswith("The CPU usage on your server is over 90%.")


def test_advice_for_an_encoder_sending_more_than_the_viewers_get() -> None:
    health = health_after(
        {"a": PlaybackReport(bandwidth=9000)}, inputs(recent_cpu=[85.0, 82.0], inbound_video_bitrate=6000)
    )
    assert health is not None
    assert health.message.startswith(
        "You're streaming to Owncast at 6000kbps but only broadcasting to your viewers at 1200kbps,"
    )
    # Below 80% CPU the waste is not worth mentioning.
    health = health_after(
        {"a": PlaybackReport(bandwidth=9000)}, inputs(recent_cpu=[70.0, 75.0], inbound_video_bitrate=6000)
    )
    assert health is not None
    assert health.message == ""


def test_advice_for_errors_needs_three_clients() -> None:
    errors = {"a": 1, "b": 0, "c": 0}
    reports = {c: PlaybackReport(bandwidth=9000, errors=n) for c, n in errors.items()}
    health = health_after(reports, inputs(segment_seconds=4))
    assert health is not None
    assert health.message == "1 of 3 viewers (33%) may be experiencing some issues."
    health = health_after(reports, inputs(segment_seconds=2))
    assert health is not None
    assert health.message.endswith(
        "You may want to increase your latency buffer level in your video configuration to see if it helps."
    )
    health = health_after(reports, inputs(output_variants=[VARIANT, PASSTHROUGH]))
    assert health is not None
    assert "You're currently using a video passthrough output" in health.message
    two = {c: PlaybackReport(bandwidth=9000, errors=n) for c, n in {"a": 1, "b": 0}.items()}
    health = health_after(two, inputs())
    assert health is not None
    assert health.message == ""


def test_huge_reports_stay_finite_numbers() -> None:
    metrics = PlaybackMetrics()
    for client in "ab":
        metrics.report(client, PlaybackReport(bandwidth=1.7e308, errors=1.7e308, latency=1e300))
    metrics.close_window(T0, None)
    points = last_points(metrics)
    assert points["errors"] == sys.float_info.max  # the sum overflowed: held at the largest float
    assert points["medianPlayerBitrate"] == 1.7e308  # the median of two huge values does not overflow
    assert points["medianLatency"] == 1e300
