"""AMF0: real command and metadata shapes, every type marker, and every error message verbatim."""

from __future__ import annotations

import copy
import math
import re
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from owncast_fast.errors import ProtocolError
from owncast_fast.ingest.rtmp import amf0
from owncast_fast.ingest.rtmp.amf0 import UNDEFINED, EcmaArray, decode, decode_all, encode, encode_all

FFMPEG_CONNECT = Path(__file__).resolve().parents[2] / "data" / "rtmp" / "ffmpeg_connect.bin"

# The script-data body of the first FLV tag written by ffmpeg 5.1 (Lavf59.27.100):
#   ffmpeg -f lavfi -i testsrc=size=64x64:rate=5 -f lavfi -i sine -t 0.4 -c:v libx264 -c:a aac -f flv pipe:1
# Over RTMP ffmpeg sends the same values behind "@setDataFrame".
FFMPEG_ON_METADATA = bytes.fromhex(
    "02000a6f6e4d65746144617461080000000d00086475726174696f6e0000000000000000000005776964746800405000"
    "00000000000006686569676874004050000000000000000d766964656f64617461726174650000000000000000000009"
    "6672616d6572617465004014000000000000000c766964656f636f646563696400401c000000000000000d617564696f"
    "6461746172617465004050d88000000000000f617564696f73616d706c65726174650040e5888000000000000f617564"
    "696f73616d706c6573697a65004030000000000000000673746572656f0100000c617564696f636f6465636964004024"
    "0000000000000007656e636f64657202000d4c61766635392e32372e313030000866696c6573697a6500000000000000"
    "0000000009"
)


def number(value: float) -> bytes:
    return b"\x00" + struct.pack(">d", value)


def short_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def string(text: str) -> bytes:
    return b"\x02" + short_string(text)


OBJECT_END = b"\x00\x00\x09"


def dechunk_first_message(stream: bytes, chunk_size: int = 128) -> tuple[int, bytes]:
    """Reassemble the first RTMP message of a capture: one type-0 chunk, then type-3 continuations."""
    assert stream[0] >> 6 == 0
    csid = stream[0] & 0x3F
    length = int.from_bytes(stream[4:7], "big")
    type_id = stream[7]
    payload = bytearray()
    position = 12
    while len(payload) < length:
        if payload:
            assert stream[position] == 0xC0 | csid
            position += 1
        take = min(chunk_size, length - len(payload))
        payload += stream[position : position + take]
        position += take
    return type_id, bytes(payload)


# -- real shapes --------------------------------------------------------------------------------------------


def test_ffmpeg_connect_capture() -> None:
    type_id, payload = dechunk_first_message(FFMPEG_CONNECT.read_bytes())
    assert type_id == 20
    name, transaction_id, command_object = decode_all(payload)
    assert (name, transaction_id) == ("connect", 1.0)
    # ffmpeg sends no swfUrl, pageUrl, capabilities or codec lists, and a fixed FMLE-style flashVer.
    assert list(command_object) == ["app", "type", "flashVer", "tcUrl"]
    assert command_object["app"] == "live"
    assert command_object["type"] == "nonprivate"
    assert command_object["flashVer"] == "FMLE/3.0 (compatible; Lavf59.27.100)"
    assert re.fullmatch(r"rtmp://127\.0\.0\.1:\d+/live", command_object["tcUrl"])
    assert encode_all(name, transaction_id, command_object) == payload


def test_obs_style_connect_command_bytes() -> None:
    command_object = {
        "app": "live",
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
        "swfUrl": "rtmp://example.org/live",
        "tcUrl": "rtmp://example.org/live",
    }
    expected = (
        string("connect")
        + number(1.0)
        + b"\x03"
        + b"".join(short_string(name) + string(value) for name, value in command_object.items())
        + OBJECT_END
    )
    assert encode_all("connect", 1, command_object) == expected
    assert decode_all(expected) == ["connect", 1.0, command_object]


def test_ffmpeg_on_metadata_is_an_ecma_array() -> None:
    name, metadata = decode_all(FFMPEG_ON_METADATA)
    assert name == "onMetaData"
    assert type(metadata) is EcmaArray
    assert metadata == {
        "duration": 0.0,
        "width": 64.0,
        "height": 64.0,
        "videodatarate": 0.0,
        "framerate": 5.0,
        "videocodecid": 7.0,
        "audiodatarate": 67.3828125,
        "audiosamplerate": 44100.0,
        "audiosamplesize": 16.0,
        "stereo": False,
        "audiocodecid": 10.0,
        "encoder": "Lavf59.27.100",
        "filesize": 0.0,
    }
    assert encode_all(name, metadata) == FFMPEG_ON_METADATA


def test_set_data_frame_as_obs_sends_it() -> None:
    metadata = EcmaArray(
        duration=0.0,
        fileSize=0.0,
        width=1920.0,
        height=1080.0,
        videocodecid=7.0,
        videodatarate=2500.0,
        framerate=30.0,
        audiocodecid=10.0,
        audiodatarate=160.0,
        audiosamplerate=48000.0,
        audiosamplesize=16.0,
        audiochannels=2.0,
        stereo=True,
        encoder="obs-output module (libobs version 30.0.2)",
    )
    body = encode_all("@setDataFrame", "onMetaData", metadata)
    assert body[len(string("@setDataFrame") + string("onMetaData")) :][:5] == b"\x08\x00\x00\x00\x0e"
    assert decode_all(body) == ["@setDataFrame", "onMetaData", metadata]


# -- each type ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (number(1.5), 1.5),
        (b"\x01\x00", False),
        (b"\x01\x01", True),
        (b"\x01\x7f", True),  # "0 is false, <> 0 is true"
        (string("héllo"), "héllo"),
        (b"\x0c\x00\x00\x00\x02hi", "hi"),
        (b"\x0f\x00\x00\x00\x07<a/>\xe2\x82\xac", "<a/>€"),
        (b"\x05", None),
        (b"\x0a\x00\x00\x00\x02" + b"\x05" + number(2), [None, 2.0]),
        (b"\x0a\x00\x00\x00\x00", []),
        (b"\x03" + OBJECT_END, {}),
        (b"\x10" + short_string("flex.Thing") + short_string("a") + b"\x05" + OBJECT_END, {"a": None}),
    ],
)
def test_decode_each_type(data: bytes, value: Any) -> None:
    assert decode(data) == (value, len(data))


def test_undefined_and_unsupported_read_as_undefined() -> None:
    assert decode(b"\x06") == (UNDEFINED, 1)
    assert decode(b"\x0d") == (UNDEFINED, 1)
    assert UNDEFINED is not None
    assert repr(UNDEFINED) == "UNDEFINED"
    assert copy.deepcopy(UNDEFINED) is UNDEFINED
    assert type(UNDEFINED)() is UNDEFINED
    assert encode(UNDEFINED) == b"\x06"


def test_date_decodes_to_aware_utc_and_ignores_the_time_zone_field() -> None:
    data = b"\x0b" + struct.pack(">dh", 1_700_000_000_123.0, -60)
    value, end = decode(data)
    assert end == 11
    assert value == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert value.tzinfo is UTC


def test_date_round_trip_and_conversion_to_utc() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert decode(encode(moment))[0] == moment
    elsewhere = moment.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert encode(elsewhere) == encode(moment)
    assert encode(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == b"\x0b" + struct.pack(">dh", 1000.0, 0)


def test_ecma_array_count_is_only_a_hint() -> None:
    data = b"\x08\x00\x00\x00\x63" + short_string("a") + number(1) + OBJECT_END
    value, end = decode(data)
    assert (type(value), value, end) == (EcmaArray, {"a": 1.0}, len(data))
    assert repr(value) == "EcmaArray({'a': 1.0})"


def test_ecma_array_and_object_stay_distinct() -> None:
    assert encode(EcmaArray(a=1)) == b"\x08\x00\x00\x00\x01" + short_string("a") + number(1) + OBJECT_END
    assert encode({"a": 1}) == b"\x03" + short_string("a") + number(1) + OBJECT_END
    assert type(decode(encode({"a": 1}))[0]) is dict


def test_empty_property_name_with_a_value_is_a_property() -> None:
    data = b"\x03" + short_string("") + number(3) + OBJECT_END
    assert decode(data) == ({"": 3.0}, len(data))
    assert encode({"": 3.0}) == data


def test_references_resolve_across_values_of_one_message() -> None:
    inner = b"\x03" + short_string("k") + string("v") + OBJECT_END
    data = b"\x0a\x00\x00\x00\x02" + inner + b"\x07\x00\x01" + b"\x07\x00\x00"
    first, second = decode_all(data)
    assert first == [{"k": "v"}, {"k": "v"}]
    assert first[0] is first[1]
    assert second is first


def test_decode_with_offset_and_trailing_data() -> None:
    data = b"junk" + string("x") + b"\xff\xff"
    assert decode(data, 4) == ("x", 8)
    assert decode(memoryview(data), 4) == ("x", 8)
    assert decode(bytearray(data), 4) == ("x", 8)


def test_decode_all_of_nothing() -> None:
    assert decode_all(b"") == []
    with pytest.raises(ProtocolError) as raised:
        decode(b"")
    assert str(raised.value) == "AMF0: truncated value at offset 0"


def test_string_length_boundary() -> None:
    at_limit = "a" * 0xFFFF
    assert encode(at_limit)[:3] == b"\x02\xff\xff"
    over = "€" * 21846  # 65538 bytes of UTF-8
    encoded = encode(over)
    assert encoded[:5] == b"\x0c\x00\x01\x00\x02"
    assert decode(encoded) == (over, len(encoded))


def test_numbers() -> None:
    assert encode(3) == number(3.0)
    assert encode(-0.0) == number(-0.0)
    assert math.isnan(decode(encode(math.nan))[0])
    assert decode(encode(math.inf))[0] == math.inf
    assert encode(True) == b"\x01\x01"
    assert encode(tuple([1, "a"])) == encode([1, "a"])


# -- AMF3 behind the avmplus-object marker ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"\x11\x00", UNDEFINED),
        (b"\x11\x01", None),
        (b"\x11\x02", False),
        (b"\x11\x03", True),
        (b"\x11\x04\x05", 5.0),
        (b"\x11\x04\x81\x00", 128.0),
        (b"\x11\x04\xff\xff\x7f", 2**21 - 1),
        (b"\x11\x04\xbf\xff\xff\xff", 2**28 - 1),
        (b"\x11\x04\xff\xff\xff\xff", -1.0),
        (b"\x11\x04\xc0\x80\x80\x00", -(2**28)),
        (b"\x11\x05" + struct.pack(">d", 2.25), 2.25),
        (b"\x11\x06\x0bhello", "hello"),
        (b"\x11\x06\x01", ""),
    ],
)
def test_amf3_scalars(data: bytes, value: Any) -> None:
    assert decode(data) == (value, len(data))


def test_amf3_string_references_within_a_message() -> None:
    data = b"\x11\x06\x01" + b"\x11\x06\x07abc" + b"\x11\x06\x07xyz" + b"\x11\x06\x02" + b"\x11\x06\x00"
    assert decode_all(data) == ["", "abc", "xyz", "xyz", "abc"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x11", "AMF3: truncated value at offset 1"),
        (b"\x11\x04\xff\xff", "AMF3: truncated integer at offset 1"),
        (b"\x11\x05\x00", "AMF3: truncated double at offset 1"),
        (b"\x11\x06", "AMF3: truncated string at offset 1"),
        (b"\x11\x06\x07ab", "AMF3: truncated string at offset 1"),
        (b"\x11\x06\x03\xff", "AMF3: invalid UTF-8 in string at offset 1"),
        (b"\x11\x06\x02", "AMF3: string reference 1 at offset 1 is not in the table"),
        (b"\x11\x0a\x0b\x01", "AMF3: unsupported object value (marker 0x0a) at offset 1"),
        (b"\x11\x09\x01\x01", "AMF3: unsupported array value (marker 0x09) at offset 1"),
        (b"\x11\x0c\x01", "AMF3: unsupported byte array value (marker 0x0c) at offset 1"),
        (b"\x11\x12", "AMF3: unknown type marker 0x12 at offset 1"),
    ],
)
def test_amf3_errors(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        decode_all(data)
    assert str(raised.value) == message


# -- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x05\x42", "AMF0: unknown type marker 0x42 at offset 1"),
        (b"\x05\x05\x05\x42", "AMF0: unknown type marker 0x42 at offset 3"),
        (b"\x04", "AMF0: reserved type marker 0x04 at offset 0"),
        (b"\x0e", "AMF0: reserved type marker 0x0e at offset 0"),
        (b"\x09", "AMF0: object-end marker outside an object at offset 0"),
        (b"\x00\x00\x00", "AMF0: truncated number at offset 0"),
        (b"\x01", "AMF0: truncated boolean at offset 0"),
        (b"\x05" * 17 + b"\x02\x00\x05abc", "AMF0: truncated string at offset 17"),
        (b"\x02\x00", "AMF0: truncated string at offset 0"),
        (b"\x0c\x00\x00\x01\x00abc", "AMF0: truncated long string at offset 0"),
        (b"\x0f\x00\x00", "AMF0: truncated XML document at offset 0"),
        (b"\x0b" + b"\x00" * 9, "AMF0: truncated date at offset 0"),
        (b"\x07\x00", "AMF0: truncated reference at offset 0"),
        (b"\x08\x00\x00", "AMF0: truncated ECMA array at offset 0"),
        (b"\x0a\x00\x00", "AMF0: truncated strict array at offset 0"),
        (b"\x03\x00\x01a", "AMF0: truncated value at offset 4"),
        (b"\x03\x00\x05ab", "AMF0: truncated property name at offset 1"),
        (b"\x03" + short_string("a") + number(1), "AMF0: truncated property name at offset 13"),
        (b"\x03\x00\x00", "AMF0: truncated value at offset 3"),
        (b"\x10\x00\x04ab", "AMF0: truncated typed object class name at offset 1"),
        (b"\x02\x00\x02\xc3\x28", "AMF0: invalid UTF-8 in string at offset 0"),
        (b"\x03\x00\x01\xff\x05" + OBJECT_END, "AMF0: invalid UTF-8 in property name at offset 1"),
        (b"\x0c\x00\x00\x00\x01\x80", "AMF0: invalid UTF-8 in long string at offset 0"),
        (b"\x03\x00\x01a\x09", "AMF0: object-end marker after property name at offset 1"),
        (
            b"\x0a\x00\x00\x00\x05\x05\x05",
            "AMF0: strict array of 5 values at offset 0 cannot fit in the 2 bytes left",
        ),
        (
            b"\x0a\xff\xff\xff\xff",
            "AMF0: strict array of 4294967295 values at offset 0 cannot fit in the 0 bytes left",
        ),
        (b"\x07\x00\x00", "AMF0: reference 0 at offset 0 but only 0 objects precede it"),
        (b"\x03\x00\x01a\x07\x00\x00" + OBJECT_END, "AMF0: reference 0 at offset 4 points into itself"),
        (b"\x0b" + struct.pack(">dh", math.nan, 0), "AMF0: date out of range at offset 0"),
        (b"\x0b" + struct.pack(">dh", math.inf, 0), "AMF0: date out of range at offset 0"),
        (b"\x0b" + struct.pack(">dh", 1e300, 0), "AMF0: date out of range at offset 0"),
        (b"\x0b" + struct.pack(">dh", 3e14, 0), "AMF0: date out of range at offset 0"),
    ],
)
def test_decode_errors(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        decode_all(data)
    assert str(raised.value) == message


def nested_lists(levels: int) -> bytes:
    return b"\x0a\x00\x00\x00\x01" * levels + b"\x05"


def test_nesting_limit() -> None:
    value, _end = decode(nested_lists(amf0.MAX_DEPTH))
    for _ in range(amf0.MAX_DEPTH):
        value = value[0]
    assert value is None
    with pytest.raises(ProtocolError) as raised:
        decode(nested_lists(amf0.MAX_DEPTH + 1))
    assert str(raised.value) == "AMF0: nesting deeper than 64 levels"


def test_nesting_limit_counts_referenced_objects() -> None:
    deep = nested_lists(amf0.MAX_DEPTH)  # references 0..63, outermost first
    assert decode_all(deep + b"\x0a\x00\x00\x00\x01\x07\x00\x3f")[1] == [[None]]
    first, again = decode_all(deep + b"\x07\x00\x00")
    assert again is first
    with pytest.raises(ProtocolError) as raised:
        decode_all(deep + b"\x0a\x00\x00\x00\x01\x07\x00\x00")
    assert str(raised.value) == "AMF0: nesting deeper than 64 levels"


def test_references_cannot_expand_without_bound() -> None:
    # Object n is a two-element array of references to object n-1: a few hundred bytes, 2**n values.
    data = bytearray(b"\x0a\x00\x00\x00\x00")
    for index in range(40):
        data += b"\x0a\x00\x00\x00\x02" + (b"\x07" + index.to_bytes(2, "big")) * 2
    with pytest.raises(ProtocolError) as raised:
        decode_all(bytes(data))
    assert str(raised.value) == "AMF0: references expand to more than 65536 values"


@pytest.mark.parametrize("message", [FFMPEG_ON_METADATA, dechunk_first_message(FFMPEG_CONNECT.read_bytes())[1]])
def test_truncation_at_every_offset_of_a_real_message(message: bytes) -> None:
    whole = decode_all(message)
    value_ends = set()
    position = 0
    for _ in whole:
        position = decode(message, position)[1]
        value_ends.add(position)
    for end in range(1, len(message)):
        if end in value_ends:
            assert decode_all(message[:end]) == whole[: len([e for e in value_ends if e <= end])]
            continue
        with pytest.raises(ProtocolError, match=r"^AMF0: truncated "):
            decode_all(message[:end])


# -- encoding errors ----------------------------------------------------------------------------------------


def test_encode_errors() -> None:
    with pytest.raises(TypeError, match=r"^AMF0 cannot encode bytes$"):
        encode(b"raw")
    with pytest.raises(TypeError, match=r"^AMF0 property names are strings, got int$"):
        encode({1: "a"})
    with pytest.raises(ValueError, match=r"^AMF0 dates are instants: pass a timezone-aware datetime$"):
        encode(datetime(2024, 1, 1))
    with pytest.raises(ValueError, match=r"^AMF0: property name longer than 65535 bytes$"):
        encode({"a" * 65536: 1})
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match=r"^AMF0: nesting deeper than 64 levels$"):
        encode(looped)
