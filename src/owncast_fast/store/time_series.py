"""What both backends' time-series repositories share: checking a sample and rounding its time."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def unix_second(time: datetime) -> int:
    """`time` as whole unix seconds (truncated, as tstorage keeps Owncast's samples)."""
    if time.tzinfo is None or time.utcoffset() is None:
        raise ValueError(f"time {time.isoformat()} has no timezone")
    return math.floor(time.timestamp())


def from_unix_second(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def check_value(value: float) -> float:
    """`value` as a float; NaN and infinities have no SQL form that both backends keep."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"sample value {value!r} is not finite")
    return number
