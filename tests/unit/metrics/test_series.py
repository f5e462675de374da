"""TimestampedValue JSON: whole values print as Go prints them, and any finite value serializes."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson
import pytest

from owncast_fast.metrics.series import TimestampedValue, number, series_json


@pytest.mark.parametrize(("value", "expected"), [(3.0, 3), (0.0, 0), (-2.0, -2), (2.0**53, 2**53), (1.5, 1.5)])
def test_whole_values_are_ints(value: float, expected: float) -> None:
    assert number(value) == expected
    assert type(number(value)) is type(expected)


@pytest.mark.parametrize("value", [1e300, -1e300, 2.0**63, 2.0**64, 2.0**53 + 2])
def test_values_past_exact_ints_stay_floats_and_serialize(value: float) -> None:
    [point] = orjson.loads(orjson.dumps(series_json([TimestampedValue(datetime.now(UTC), value)])))
    assert math.isclose(point["value"], value)
