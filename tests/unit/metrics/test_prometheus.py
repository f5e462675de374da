"""The Prometheus exposition parses, keeps Owncast's names and labels, and adds ours."""

from __future__ import annotations

from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from owncast_fast.metrics.prometheus import HlsActivity, HubDrops, PrometheusExporter, Readings


def readings(**changes: Any) -> Readings:
    values: dict[str, Any] = {
        "version": "0.2.0",
        "host": "https://live.example.org",
        "online": True,
        "viewers": 3,
        "session_peak": 5,
        "overall_peak": 40,
        "cpu_percent": 12.5,
        "playback_errors": 2.0,
        "video_bitrate_kbps": 2500,
        "audio_bitrate_kbps": 128,
        "framerate": 30.0,
        "hub_drops": [HubDrops("variant-0", 90, 2)],
        "viewers_refused": 0,
    }
    values.update(changes)
    return Readings(**values)


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_owncast_gauges_keep_their_names_and_labels() -> None:
    body, content_type = PrometheusExporter(readings).expose(None)
    assert content_type.startswith("text/plain")
    found = samples(body.decode())
    labels = {"version": "0.2.0", "host": "https://live.example.org"}
    assert found["owncast_instance_active_viewer_count"] == [(labels, 3)]
    assert found["owncast_instance_cpu_usage"] == [(labels, 12.5)]
    assert found["owncast_instance_playback_error_count"] == [(labels, 2)]
    # Chat does not exist yet: its gauges are left out rather than reported as 0.
    assert not [name for name in found if "chat" in name]


def test_our_metrics() -> None:
    activity = HlsActivity()
    activity.parked, activity.playlists_served, activity.media_served = 4, 120, 300
    found = samples(PrometheusExporter(readings, activity).expose(None)[0].decode())
    assert found["owncast_fast_stream_online"] == [({}, 1)]
    assert found["owncast_fast_viewers_session_peak"] == [({}, 5)]
    assert found["owncast_fast_viewers_overall_peak"] == [({}, 40)]
    assert found["owncast_fast_ingest_video_bitrate_kbps"] == [({}, 2500)]
    assert found["owncast_fast_ingest_audio_bitrate_kbps"] == [({}, 128)]
    assert found["owncast_fast_ingest_framerate"] == [({}, 30)]
    assert found["owncast_fast_hub_dropped_units_total"] == [({"consumer": "variant-0"}, 90)]
    assert found["owncast_fast_hub_dropped_gops_total"] == [({"consumer": "variant-0"}, 2)]
    assert found["owncast_fast_hls_parked_requests"] == [({}, 4)]
    assert found["owncast_fast_hls_playlists_served_total"] == [({}, 120)]
    assert found["owncast_fast_hls_media_served_total"] == [({}, 300)]
    assert found["owncast_fast_viewers_refused_total"] == [({}, 0)]
    assert "process_cpu_seconds_total" in found
    assert "python_info" in found


def test_values_are_read_at_scrape_time() -> None:
    current = {"viewers": 1}
    exporter = PrometheusExporter(lambda: readings(viewers=current["viewers"], cpu_percent=None))
    current["viewers"] = 7
    found = samples(exporter.expose(None)[0].decode())
    assert found["owncast_instance_active_viewer_count"][0][1] == 7
    assert "owncast_instance_cpu_usage" not in found  # no hardware sample yet


def test_openmetrics_when_asked_for() -> None:
    body, content_type = PrometheusExporter(readings).expose("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    names = {family.name for family in parse_openmetrics(body.decode())}
    assert "owncast_instance_active_viewer_count" in names
