"""CPU, memory and disk use over time for `/api/admin/hardwarestats` (Owncast's `CollectedMetrics`).

Owncast samples with gopsutil every 2 minutes and keeps the last 300 values of each series
(`metrics/hardware.go`): total CPU percent since the previous sample, used virtual memory percent,
and used percent of the disk holding its working directory. We sample every minute, through psutil,
the disk that holds the data directory (where the database and the HLS copy grow), and keep the
same number of values: the last five hours.

`HardwareSeries` is the pure part (values in, bounded series out); `read_hardware` does the reading
and may block on a slow disk, so the service runs it in a worker thread.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from owncast_fast.metrics.series import TimestampedValue, series_json

SAMPLE_INTERVAL_SECONDS = 60.0
# Owncast's `maxCollectionValues`.
MAX_SAMPLES = 300


@dataclass(frozen=True, slots=True)
class HardwareReading:
    cpu: float  # percent of all CPUs since the previous reading
    memory: float  # percent of physical memory in use
    disk: float  # percent of the data directory's file system in use


def prime_cpu_counter() -> None:
    """psutil measures CPU use between two calls: make the first sample span a real interval."""
    psutil.cpu_percent(interval=None)


def read_hardware(data_dir: Path) -> HardwareReading:
    return HardwareReading(
        cpu=psutil.cpu_percent(interval=None),
        memory=psutil.virtual_memory().percent,
        disk=psutil.disk_usage(str(data_dir)).percent,
    )


class HardwareSeries:
    def __init__(self, max_samples: int = MAX_SAMPLES) -> None:
        self.cpu: deque[TimestampedValue] = deque(maxlen=max_samples)
        self.memory: deque[TimestampedValue] = deque(maxlen=max_samples)
        self.disk: deque[TimestampedValue] = deque(maxlen=max_samples)

    def add(self, reading: HardwareReading, now: datetime) -> None:
        self.cpu.append(TimestampedValue(now, reading.cpu))
        self.memory.append(TimestampedValue(now, reading.memory))
        self.disk.append(TimestampedValue(now, reading.disk))

    def recent_cpu(self, samples: int) -> list[float]:
        return [value.value for value in list(self.cpu)[-samples:]]

    def to_json(self) -> dict[str, Any]:
        """Owncast's `GetHardwareStats` body: {cpu, memory, disk}, each [{time, value}]."""
        return {"cpu": series_json(self.cpu), "memory": series_json(self.memory), "disk": series_json(self.disk)}
