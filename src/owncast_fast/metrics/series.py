"""Owncast's `TimestampedValue` ({time, value}), the element of every metric series it serves."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from owncast_fast.timefmt import rfc3339


@dataclass(frozen=True, slots=True)
class TimestampedValue:
    time: datetime
    value: float


# Whole floats up to 2**53 are exact as ints; past that (and past orjson's 64-bit ints) stay floats.
_EXACT_INT = 2.0**53


def number(value: float) -> float | int:
    """A whole value as an int: Go prints float64(3) as `3`, as Owncast's clients expect."""
    return int(value) if float(value).is_integer() and abs(value) <= _EXACT_INT else value


def series_json(values: Iterable[TimestampedValue]) -> list[dict[str, Any]]:
    return [{"time": rfc3339(item.time), "value": number(item.value)} for item in values]
