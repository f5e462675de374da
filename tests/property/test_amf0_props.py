"""AMF0 properties: round trips of every supported value, and hostile bytes only ever raise ProtocolError."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from owncast_fast.errors import ProtocolError
from owncast_fast.ingest.rtmp.amf0 import UNDEFINED, EcmaArray, decode, decode_all, encode, encode_all

# AMF0 dates are doubles of milliseconds: whole milliseconds round-trip over the full datetime range.
dates = st.datetimes(timezones=st.just(UTC)).map(
    lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000)
)
scalars = st.one_of(
    st.none(),
    st.just(UNDEFINED),
    st.booleans(),
    st.floats(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.text(),
    dates,
)
names = st.text(max_size=20)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(names, children, max_size=5),
        st.dictionaries(names, children, max_size=5).map(EcmaArray),
    ),
    max_leaves=30,
)


def same(decoded: Any, original: Any) -> bool:
    """Equality as AMF0 promises it: numbers come back as floats, NaN as NaN, containers keep their kind."""
    if isinstance(original, bool) or original is None or original is UNDEFINED:
        return decoded is original
    if isinstance(original, int | float):
        if math.isnan(original):
            return type(decoded) is float and math.isnan(decoded)
        return type(decoded) is float and decoded == original
    if isinstance(original, list):
        return (
            type(decoded) is list
            and len(decoded) == len(original)
            and all(same(left, right) for left, right in zip(decoded, original, strict=True))
        )
    if isinstance(original, dict):
        return (
            type(decoded) is type(original)
            and list(decoded) == list(original)
            and all(same(decoded[name], original[name]) for name in original)
        )
    return type(decoded) is type(original) and decoded == original


@given(values)
def test_decode_inverts_encode(value: Any) -> None:
    data = encode(value)
    decoded, end = decode(data)
    assert end == len(data)
    assert same(decoded, value)
    assert encode(decoded) == data


@given(st.lists(values, max_size=4), st.binary(max_size=8))
def test_values_read_one_at_a_time_match_decode_all(items: list[Any], prefix: bytes) -> None:
    data = encode_all(*items)
    position = 0
    one_by_one = []
    while position < len(data):
        value, position = decode(prefix + data, len(prefix) + position)
        position -= len(prefix)
        one_by_one.append(value)
    assert len(one_by_one) == len(items)
    assert all(same(left, right) for left, right in zip(one_by_one, items, strict=True))
    assert all(same(left, right) for left, right in zip(decode_all(data), items, strict=True))


@given(values, st.data())
def test_every_truncation_is_a_protocol_error(value: Any, data: st.DataObject) -> None:
    encoded = encode(value)
    end = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    try:
        decode(encoded[:end])
    except ProtocolError as error:
        # A cut strict array may already show a count that the bytes left cannot hold.
        assert str(error).startswith(("AMF0: truncated ", "AMF3: truncated ", "AMF0: strict array of "))
    else:
        raise AssertionError(f"a {end}-byte prefix of a {len(encoded)}-byte value decoded")


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_garbage_only_ever_raises_protocol_error(garbage: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_all(garbage)


@settings(max_examples=300)
@given(values, st.data())
def test_corrupted_values_only_ever_raise_protocol_error(value: Any, data: st.DataObject) -> None:
    encoded = bytearray(encode(value))
    index = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[index] = data.draw(st.integers(min_value=0, max_value=255))
    with contextlib.suppress(ProtocolError):
        decode_all(bytes(encoded))


@given(
    st.lists(
        st.sampled_from(
            [
                b"\x11\x00",
                b"\x11\x01",
                b"\x11\x02",
                b"\x11\x03",
                b"\x11\x04",
                b"\x11\x05",
                b"\x11\x06",
                b"\x11",
            ]
        ),
        max_size=6,
    ),
    st.binary(max_size=40),
)
def test_amf3_switches_followed_by_garbage(markers: list[bytes], tail: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_all(b"".join(markers) + tail)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_dates_near_now_keep_their_microseconds(moment: datetime) -> None:
    assert decode(encode(moment))[0] == moment
