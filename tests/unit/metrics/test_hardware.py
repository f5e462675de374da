"""Hardware samples: psutil readings in percent, bounded series, Owncast's {cpu, memory, disk} shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from owncast_fast.metrics.hardware import HardwareReading, HardwareSeries, prime_cpu_counter, read_hardware

T0 = datetime(2025, 1, 11, 12, 0, tzinfo=UTC)


def test_a_reading_is_three_percentages(tmp_path: Path) -> None:
    prime_cpu_counter()
    reading = read_hardware(tmp_path)
    for value in (reading.cpu, reading.memory, reading.disk):
        assert 0.0 <= value <= 100.0
    assert reading.disk > 0.0  # the file system holding tmp_path has something on it


def test_series_keep_the_last_samples() -> None:
    series = HardwareSeries(max_samples=2)
    for minute in range(3):
        series.add(HardwareReading(cpu=minute, memory=50.5, disk=70.0), T0 + timedelta(minutes=minute))
    assert series.recent_cpu(2) == [1, 2]
    assert series.to_json() == {
        "cpu": [
            {"time": "2025-01-11T12:01:00.000000Z", "value": 1},
            {"time": "2025-01-11T12:02:00.000000Z", "value": 2},
        ],
        "memory": [
            {"time": "2025-01-11T12:01:00.000000Z", "value": 50.5},
            {"time": "2025-01-11T12:02:00.000000Z", "value": 50.5},
        ],
        "disk": [
            {"time": "2025-01-11T12:01:00.000000Z", "value": 70},
            {"time": "2025-01-11T12:02:00.000000Z", "value": 70},
        ],
    }


def test_empty_series_are_empty_arrays() -> None:
    assert HardwareSeries().to_json() == {"cpu": [], "memory": [], "disk": []}
    assert HardwareSeries().recent_cpu(2) == []
