"""FLV tag properties: truncated or hostile input only ever raises ProtocolError, the Cython module
and its pure-Python twin agree on every input (same result or same message), and decoder
configuration records round-trip through parse and bytes()."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from owncast_fast._native import flv as native_flv
from owncast_fast._pure import flv as pure_flv
from owncast_fast.errors import ProtocolError

IMPLS = pytest.mark.parametrize("impl", [native_flv, pure_flv], ids=["cython", "pure"])

nal_length_sizes = st.sampled_from([1, 2, 4])
si24 = st.integers(min_value=-(2**23), max_value=2**23 - 1)
units = st.lists(st.binary(min_size=1, max_size=24), max_size=5)


def nals(parts: list[bytes], size: int) -> bytes:
    return b"".join(len(part).to_bytes(size, "big") + part for part in parts)


@st.composite
def legacy_tags(draw: st.DrawFn, size: int) -> bytes:
    codec_id = draw(st.sampled_from([7, 12]))
    frame_type = draw(st.integers(min_value=1, max_value=5))
    if frame_type == 5:
        return bytes([frame_type << 4 | codec_id]) + draw(st.binary(min_size=1, max_size=4))
    packet_type = draw(st.integers(min_value=0, max_value=2))
    body = nals(draw(units), size) if packet_type == 1 else draw(st.binary(max_size=40))
    return bytes([frame_type << 4 | codec_id, packet_type]) + draw(si24).to_bytes(3, "big", signed=True) + body


@st.composite
def enhanced_tags(draw: st.DrawFn, size: int) -> bytes:
    fourcc = draw(st.sampled_from([b"avc1", b"hvc1", b"av01", b"vp09"]))
    walked = fourcc in (b"avc1", b"hvc1")
    packet_type = draw(st.sampled_from([0, 1, 2, 3, 4, 5]))
    frame_type = draw(st.integers(min_value=0, max_value=7) if packet_type == 4 else st.integers(1, 4))
    if packet_type == 1 and walked:
        body = draw(si24).to_bytes(3, "big", signed=True) + nals(draw(units), size)
    elif packet_type in (1, 3) and walked:
        body = nals(draw(units), size)
    else:
        body = draw(st.binary(max_size=40))
    return bytes([0x80 | frame_type << 4 | packet_type]) + fourcc + body


@st.composite
def video_tags(draw: st.DrawFn) -> tuple[bytes, int]:
    size = draw(nal_length_sizes)
    command = st.binary(min_size=1, max_size=4).map(lambda rest: b"\xd1" + rest)
    return draw(st.one_of(legacy_tags(size), enhanced_tags(size), command)), size


audio_tags = st.one_of(
    st.tuples(st.sampled_from([0xAF, 0xAE]), st.sampled_from([0, 1]), st.binary(max_size=20)).map(
        lambda parts: bytes(parts[:2]) + parts[2]
    ),
    st.binary(min_size=1, max_size=20).filter(lambda tag: tag[0] >> 4 != 10),
)


def public_fields(value: Any) -> tuple[Any, ...]:
    """The fields of a parse result, read the same way from both implementations."""
    if isinstance(value, bytes):
        return (value,)
    twin = getattr(pure_flv, type(value).__name__)
    return tuple(getattr(value, field.name) for field in dataclasses.fields(twin))


def outcome(call: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    try:
        return "ok", public_fields(call(*args))
    except ProtocolError as error:
        return "error", str(error)


def assert_same(name: str, *args: Any) -> None:
    assert outcome(getattr(native_flv, name), *args) == outcome(getattr(pure_flv, name), *args)


def parses_or_protocol_error(call: Callable[..., Any], *args: Any) -> None:
    with contextlib.suppress(ProtocolError):
        call(*args)


# -- truncation: parse or ProtocolError, never another exception ------------------------------


@IMPLS
@given(tag=video_tags(), data=st.data())
def test_video_tag_truncations(impl: ModuleType, tag: tuple[bytes, int], data: st.DataObject) -> None:
    payload, size = tag
    impl.parse_video_tag(payload, size)  # the whole tag is valid
    cut = data.draw(st.integers(min_value=0, max_value=len(payload)))
    parses_or_protocol_error(impl.parse_video_tag, payload[:cut], size)


@IMPLS
@given(tag=video_tags())
def test_every_truncation_of_a_video_tag(impl: ModuleType, tag: tuple[bytes, int]) -> None:
    payload, size = tag
    for cut in range(len(payload)):
        parses_or_protocol_error(impl.parse_video_tag, payload[:cut], size)
        parses_or_protocol_error(impl.parse_video_tag, memoryview(payload)[cut:], size)


@IMPLS
@given(payload=audio_tags)
def test_every_truncation_of_an_audio_tag(impl: ModuleType, payload: bytes) -> None:
    impl.parse_audio_tag(payload)
    for cut in range(len(payload)):
        parses_or_protocol_error(impl.parse_audio_tag, payload[:cut])


# -- differential: both implementations agree on every input -----------------------------------


@given(payload=st.binary(max_size=64), size=nal_length_sizes)
def test_random_bytes_agree(payload: bytes, size: int) -> None:
    assert_same("parse_video_tag", payload, size)
    assert_same("parse_audio_tag", payload)
    assert_same("avcc_to_annexb", payload, size)
    assert_same("parse_avc_config", payload)
    assert_same("parse_hevc_config", payload)
    assert_same("parse_aac_config", payload)


@given(tag=video_tags(), position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_mutated_video_tags_agree(tag: tuple[bytes, int], position: int, value: int) -> None:
    payload, size = tag
    mutated = bytearray(payload)
    mutated[position % len(mutated)] = value
    assert_same("parse_video_tag", bytes(mutated), size)
    assert_same("parse_video_tag", payload, size)


@given(parts=units, size=nal_length_sizes, cut=st.integers(min_value=0, max_value=200))
def test_annexb_agrees_and_keeps_the_units(parts: list[bytes], size: int, cut: int) -> None:
    frame = nals(parts, size)
    annexb = native_flv.avcc_to_annexb(frame, size)
    assert annexb == b"".join(b"\x00\x00\x00\x01" + part for part in parts)
    assert_same("avcc_to_annexb", frame, size)
    assert_same("avcc_to_annexb", frame[:cut], size)


# -- configuration records: round trips, truncations, agreement --------------------------------

parameter_sets = st.lists(st.binary(min_size=1, max_size=30), max_size=3).map(tuple)
byte = st.integers(min_value=0, max_value=255)


@st.composite
def avc_configs(draw: st.DrawFn) -> bytes:
    config = pure_flv.AvcConfig(
        profile_idc=draw(byte),
        profile_compat=draw(byte),
        level_idc=draw(byte),
        nal_length_size=draw(nal_length_sizes),
        sps=draw(parameter_sets),
        pps=draw(parameter_sets),
        extension=draw(st.binary(max_size=8)),
    )
    return bytes(config)


@st.composite
def hevc_configs(draw: st.DrawFn) -> bytes:
    arrays = draw(st.lists(st.tuples(st.integers(0, 63), parameter_sets), max_size=4))
    config = pure_flv.HevcConfig(
        general_profile_space=draw(st.integers(0, 3)),
        general_tier_flag=draw(st.integers(0, 1)),
        general_profile_idc=draw(st.integers(0, 31)),
        general_profile_compatibility_flags=draw(st.integers(0, 2**32 - 1)),
        general_constraint_indicator_flags=draw(st.binary(min_size=6, max_size=6)),
        general_level_idc=draw(byte),
        min_spatial_segmentation_idc=draw(st.integers(0, 4095)),
        parallelism_type=draw(st.integers(0, 3)),
        chroma_format_idc=draw(st.integers(0, 3)),
        bit_depth_luma_minus8=draw(st.integers(0, 7)),
        bit_depth_chroma_minus8=draw(st.integers(0, 7)),
        avg_frame_rate=draw(st.integers(0, 65535)),
        constant_frame_rate=draw(st.integers(0, 3)),
        num_temporal_layers=draw(st.integers(0, 7)),
        temporal_id_nested=draw(st.integers(0, 1)),
        nal_length_size=draw(nal_length_sizes),
        arrays=tuple(arrays),
        array_completeness=tuple(draw(st.booleans()) for _ in arrays),
    )
    return bytes(config)


@IMPLS
@given(record=avc_configs())
def test_avc_config_round_trip_and_truncations(impl: ModuleType, record: bytes) -> None:
    assert bytes(impl.parse_avc_config(record)) == record
    for cut in range(len(record)):
        parses_or_protocol_error(impl.parse_avc_config, record[:cut])


@IMPLS
@given(record=hevc_configs())
def test_hevc_config_round_trip_and_truncations(impl: ModuleType, record: bytes) -> None:
    config = impl.parse_hevc_config(record)
    assert bytes(config) == record
    assert config.codecs == pure_flv.parse_hevc_config(record).codecs
    for cut in range(len(record)):
        parses_or_protocol_error(impl.parse_hevc_config, record[:cut])


@IMPLS
@given(record=st.binary(max_size=12))
def test_every_parseable_aac_config_round_trips(impl: ModuleType, record: bytes) -> None:
    try:
        config = impl.parse_aac_config(record)
    except ProtocolError:
        return
    assert bytes(config) == record
    assert config.codecs == f"mp4a.40.{config.object_type}"


@given(record=st.one_of(avc_configs(), hevc_configs()), cut=st.integers(min_value=0, max_value=400))
def test_config_records_agree(record: bytes, cut: int) -> None:
    for name in ("parse_avc_config", "parse_hevc_config", "parse_aac_config"):
        assert_same(name, record)
        assert_same(name, record[:cut])
