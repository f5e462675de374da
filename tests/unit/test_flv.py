"""FLV tag payload parsing: the Cython module and its pure-Python twin, run through the same tests."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from owncast_fast._native import flv as native_flv
from owncast_fast._pure import flv as pure_flv
from owncast_fast.errors import ProtocolError

CONFIG, FRAME, END, METADATA = 0, 1, 2, 3


@pytest.fixture(scope="module", params=[native_flv, pure_flv], ids=["cython", "pure"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


def fields(tag: Any) -> tuple[Any, ...]:
    """A tag's public fields, so results of both implementations compare equal."""
    if hasattr(tag, "nal_types"):
        return (
            tag.codec,
            tag.packet_type,
            tag.frame_type,
            tag.keyframe,
            tag.composition_time,
            tag.data,
            tag.nal_types,
        )
    return (tag.codec, tag.sound_format, tag.packet_type, tag.data)


def nals(*units: bytes, size: int = 4) -> bytes:
    return b"".join(len(unit).to_bytes(size, "big") + unit for unit in units)


def legacy(frame_type: int, codec_id: int, packet_type: int, cts: int, body: bytes = b"") -> bytes:
    return bytes([frame_type << 4 | codec_id, packet_type]) + cts.to_bytes(3, "big", signed=True) + body


def enhanced(frame_type: int, packet_type: int, fourcc: bytes, body: bytes = b"") -> bytes:
    return bytes([0x80 | frame_type << 4 | packet_type]) + fourcc + body


def expect_error(call: Any, *args: Any, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        call(*args)
    assert str(caught.value) == message


SPS = bytes.fromhex("6764001facd9")
PPS = bytes.fromhex("68ebe3cb")
AVCC = bytes.fromhex("0164001fffe1") + nals(SPS, size=2) + b"\x01" + nals(PPS, size=2)
VPS_H = bytes.fromhex("40010c01")
SPS_H = bytes.fromhex("420101016000")
PPS_H = bytes.fromhex("4401c172")
HVCC = (
    bytes.fromhex("0101600000009000000000005df000fcfdf8f800000f03")
    + bytes.fromhex("a00001")
    + nals(VPS_H, size=2)
    + bytes.fromhex("a10001")
    + nals(SPS_H, size=2)
    + bytes.fromhex("a20001")
    + nals(PPS_H, size=2)
)
IDR = b"\x65\x88\x84\x00"
SLICE = b"\x41\x9a\x02"
SEI = b"\x06\x05\x01\xff"


# -- legacy AVC / HEVC (FLV v10.1 E.4.3.1) ---------------------------------------------------


def test_avc_sequence_header(impl: ModuleType) -> None:
    tag = impl.parse_video_tag(legacy(1, 7, 0, 0, AVCC))
    assert fields(tag) == ("avc1", CONFIG, 1, True, 0, AVCC, ())


def test_avc_composition_time_is_zero_outside_nalu_packets(impl: ModuleType) -> None:
    # "CompositionTime ... IF AVCPacketType == 1 Composition time offset ELSE 0"
    assert impl.parse_video_tag(legacy(1, 7, 0, 40, AVCC)).composition_time == 0


def test_avc_frame_walks_nal_units(impl: ModuleType) -> None:
    body = nals(SEI, SLICE)
    tag = impl.parse_video_tag(legacy(2, 7, 1, 66, body))
    assert fields(tag) == ("avc1", FRAME, 2, False, 66, body, (6, 1))


def test_avc_negative_composition_time(impl: ModuleType) -> None:
    assert impl.parse_video_tag(legacy(2, 7, 1, -33, nals(SLICE))).composition_time == -33
    assert impl.parse_video_tag(legacy(2, 7, 1, -(2**23), nals(SLICE))).composition_time == -(2**23)
    assert impl.parse_video_tag(legacy(2, 7, 1, 2**23 - 1, nals(SLICE))).composition_time == 2**23 - 1


def test_avc_keyframe_from_frame_type(impl: ModuleType) -> None:
    tag = impl.parse_video_tag(legacy(1, 7, 1, 0, nals(IDR)))
    assert (tag.keyframe, tag.nal_types) == (True, (5,))


def test_avc_idr_inside_an_inter_frame_is_a_keyframe(impl: ModuleType) -> None:
    tag = impl.parse_video_tag(legacy(2, 7, 1, 0, nals(SEI, IDR)))
    assert (tag.frame_type, tag.keyframe, tag.nal_types) == (2, True, (6, 5))


def test_avc_empty_frame(impl: ModuleType) -> None:
    assert fields(impl.parse_video_tag(legacy(2, 7, 1, 0))) == ("avc1", FRAME, 2, False, 0, b"", ())


def test_avc_end_of_sequence(impl: ModuleType) -> None:
    assert fields(impl.parse_video_tag(legacy(1, 7, 2, 0))) == ("avc1", END, 1, True, 0, b"", ())


def test_legacy_hevc_codec_id_12(impl: ModuleType) -> None:
    idr_w_radl = bytes([19 << 1, 1, 0xAF])
    trail_r = bytes([1 << 1, 1, 0xD0])
    assert fields(impl.parse_video_tag(legacy(1, 12, 0, 0, HVCC))) == ("hvc1", CONFIG, 1, True, 0, HVCC, ())
    tag = impl.parse_video_tag(legacy(2, 12, 1, 33, nals(idr_w_radl)))
    assert fields(tag) == ("hvc1", FRAME, 2, True, 33, nals(idr_w_radl), (19,))
    assert impl.parse_video_tag(legacy(2, 12, 1, 0, nals(trail_r))).keyframe is False


def test_hevc_irap_range_marks_keyframes(impl: ModuleType) -> None:
    for nal_type, expected in [(15, False), (16, True), (21, True), (23, True), (24, False), (32, False)]:
        tag = impl.parse_video_tag(legacy(2, 12, 1, 0, nals(bytes([nal_type << 1, 1]))))
        assert (tag.nal_types, tag.keyframe) == ((nal_type,), expected)


def test_legacy_command_frame(impl: ModuleType) -> None:
    # "If FrameType = 5, instead of a video payload, the message stream contains a UI8"
    assert fields(impl.parse_video_tag(b"\x57\x01")) == ("avc1", METADATA, 5, False, 0, b"\x01", ())


@pytest.mark.parametrize("size", [1, 2, 4])
def test_nal_length_sizes(impl: ModuleType, size: int) -> None:
    body = nals(SEI, IDR, size=size)
    tag = impl.parse_video_tag(legacy(1, 7, 1, 0, body), size)
    assert (tag.data, tag.nal_types) == (body, (6, 5))


def test_nal_length_size_must_be_1_2_or_4(impl: ModuleType) -> None:
    for call in (impl.parse_video_tag, impl.avcc_to_annexb):
        with pytest.raises(ValueError, match=r"^nal_length_size must be 1, 2 or 4, not 3$"):
            call(legacy(1, 7, 1, 0), 3)


# -- Enhanced RTMP (veovera enhanced-rtmp v1/v2) ---------------------------------------------


def test_enhanced_hevc_sequence_start(impl: ModuleType) -> None:
    tag = impl.parse_video_tag(enhanced(1, 0, b"hvc1", HVCC))
    assert fields(tag) == ("hvc1", CONFIG, 1, True, 0, HVCC, ())


def test_enhanced_mpeg2ts_sequence_start_is_a_config(impl: ModuleType) -> None:
    assert fields(impl.parse_video_tag(enhanced(1, 5, b"hvc1", b"\x01\x02"))) == (
        "hvc1",
        CONFIG,
        1,
        True,
        0,
        b"\x01\x02",
        (),
    )


def test_enhanced_hevc_coded_frames_carry_composition_time(impl: ModuleType) -> None:
    body = nals(bytes([19 << 1, 1, 0x11]), bytes([39 << 1, 1, 0x22]))
    tag = impl.parse_video_tag(enhanced(1, 1, b"hvc1", (-66).to_bytes(3, "big", signed=True) + body))
    assert fields(tag) == ("hvc1", FRAME, 1, True, -66, body, (19, 39))


def test_enhanced_hevc_coded_frames_x_have_no_composition_time(impl: ModuleType) -> None:
    body = nals(bytes([1 << 1, 1, 0x33]))
    tag = impl.parse_video_tag(enhanced(2, 3, b"hvc1", body))
    assert fields(tag) == ("hvc1", FRAME, 2, False, 0, body, (1,))


def test_enhanced_sequence_end(impl: ModuleType) -> None:
    assert fields(impl.parse_video_tag(enhanced(1, 2, b"hvc1"))) == ("hvc1", END, 1, True, 0, b"", ())


def test_enhanced_metadata_ignores_frame_type(impl: ModuleType) -> None:
    # "If VideoPacketType.Metadata is present, the FrameType flags at the top of this table should
    # be ignored."
    amf = b"\x02\x00\x09colorInfo\x03\x00\x00\x09"
    for frame_type in (0, 1, 5, 7):
        tag = impl.parse_video_tag(enhanced(frame_type, 4, b"hvc1", amf))
        assert fields(tag) == ("hvc1", METADATA, frame_type, False, 0, amf, ())


def test_enhanced_av1_and_vp9_frames_are_not_walked(impl: ModuleType) -> None:
    obus = b"\x12\x00\x0a\x0b\x00\x00\x00"
    assert fields(impl.parse_video_tag(enhanced(1, 1, b"av01", obus))) == (
        "av01",
        FRAME,
        1,
        True,
        0,
        obus,
        (),
    )
    assert fields(impl.parse_video_tag(enhanced(2, 3, b"vp09", b"\x86\x00"))) == (
        "vp09",
        FRAME,
        2,
        False,
        0,
        b"\x86\x00",
        (),
    )
    av1c = b"\x81\x08\x0c\x00"
    assert fields(impl.parse_video_tag(enhanced(1, 0, b"av01", av1c))) == (
        "av01",
        CONFIG,
        1,
        True,
        0,
        av1c,
        (),
    )


def test_enhanced_avc_fourcc(impl: ModuleType) -> None:
    body = nals(IDR)
    tag = impl.parse_video_tag(enhanced(1, 1, b"avc1", b"\x00\x00\x21" + body))
    assert fields(tag) == ("avc1", FRAME, 1, True, 33, body, (5,))


def test_enhanced_command_frame_names_no_codec(impl: ModuleType) -> None:
    # "if (videoPacketType != VideoPacketType.Metadata && videoFrameType == VideoFrameType.Command)
    # { videoCommand = UI8 as VideoCommand"; no FourCC follows.
    assert fields(impl.parse_video_tag(b"\xd1\x00")) == ("", METADATA, 5, False, 0, b"\x00", ())


# -- malformed video tags ---------------------------------------------------------------------

VIDEO_ERRORS = [
    (b"", "FLV video: empty tag"),
    (b"\x17\x01\x00", "FLV video: tag of 3 bytes is shorter than its 5-byte AVC header"),
    (b"\x1c\x01", "FLV video: tag of 2 bytes is shorter than its 5-byte HEVC header"),
    (b"\x14\x00\x00\x00\x00", "FLV video: unknown codec id 4"),
    (b"\x12\x00", "FLV video: unknown codec id 2"),
    (b"\x07\x01\x00\x00\x00", "FLV video: unknown frame type 0"),
    (b"\x67\x01\x00\x00\x00", "FLV video: unknown frame type 6"),
    (b"\x17\x03\x00\x00\x00", "FLV video: unknown AVC packet type 3"),
    (b"\x1c\x07\x00\x00\x00", "FLV video: unknown HEVC packet type 7"),
    (b"\x57", "FLV video: tag of 1 bytes is shorter than its 2-byte command header"),
    (b"\xd0", "FLV video: tag of 1 bytes is shorter than its 2-byte command header"),
    (b"\x90hvc", "FLV video: tag of 4 bytes is shorter than its 5-byte enhanced header"),
    (b"\x90abcd", "FLV video: unknown enhanced FourCC 'abcd'"),
    (b"\x90\x00\xffab", "FLV video: unknown enhanced FourCC '\\x00\\xffab'"),
    (b"\x91hvc1\x00\x00", "FLV video: tag of 7 bytes is shorter than its 8-byte enhanced CodedFrames header"),
    (b"\x81hvc1\x00\x00\x00", "FLV video: unknown frame type 0"),
    (b"\xf1hvc1\x00\x00\x00", "FLV video: unknown frame type 7"),
    (b"\x96hvc1", "FLV video: unsupported enhanced packet type 6"),
    (b"\x9fav01", "FLV video: unsupported enhanced packet type 15"),
    (
        legacy(1, 7, 1, 0, (70000).to_bytes(4, "big") + bytes(812)),
        "FLV video: NAL unit length 70000 overruns the tag (812 bytes left)",
    ),
    (
        legacy(1, 7, 1, 0, nals(IDR) + b"\x00\x00"),
        "FLV video: NAL length prefix of 4 bytes overruns the tag (2 bytes left)",
    ),
    (legacy(1, 7, 1, 0, nals(IDR) + bytes(4)), "FLV video: empty NAL unit at offset 8"),
    (
        enhanced(1, 3, b"hvc1", b"\x00\x00\x00\x09\x26\x01"),
        "FLV video: NAL unit length 9 overruns the tag (2 bytes left)",
    ),
]


@pytest.mark.parametrize(("payload", "message"), VIDEO_ERRORS)
def test_video_errors(impl: ModuleType, payload: bytes, message: str) -> None:
    expect_error(impl.parse_video_tag, payload, message=message)


def test_nal_errors_use_the_configured_length_size(impl: ModuleType) -> None:
    expect_error(
        impl.parse_video_tag,
        legacy(1, 7, 1, 0, b"\x00\x05\x65"),
        2,
        message="FLV video: NAL unit length 5 overruns the tag (1 bytes left)",
    )
    expect_error(
        impl.parse_video_tag,
        legacy(1, 7, 1, 0, b"\x00"),
        2,
        message="FLV video: NAL length prefix of 2 bytes overruns the tag (1 bytes left)",
    )


# -- inputs -----------------------------------------------------------------------------------


def test_accepts_any_contiguous_buffer(impl: ModuleType) -> None:
    payload = legacy(2, 7, 1, 12, nals(SEI, SLICE))
    expected = fields(impl.parse_video_tag(payload))
    framed = b"junk" + payload + b"tail"
    for view in (bytearray(payload), memoryview(payload), memoryview(framed)[4:-4]):
        tag = impl.parse_video_tag(view)
        assert fields(tag) == expected
        assert memoryview(tag.data).readonly and tag.data.readonly
        assert type(tag.data.obj) is bytes and tag.data.obj is not view  # one copy, into bytes
    assert fields(impl.parse_audio_tag(memoryview(b"x\xaf\x01\x21\x10y")[1:-1])) == (
        "mp4a",
        10,
        FRAME,
        b"\x21\x10",
    )


def test_payload_view_behaves_as_a_read_only_buffer_of_the_payload() -> None:
    """The Cython module's `data` type: one object per frame instead of a memoryview slice's two.

    Everything downstream takes it as a buffer (muxers, PyAV, bytes.join, file writes); these are
    the memoryview behaviours callers rely on, and the lifetime rules that make it safe."""
    frame = nals(SEI, IDR)
    payload = legacy(1, 7, 1, 0, frame)
    data = native_flv.parse_video_tag(payload).data
    assert type(data) is native_flv.PayloadView and repr(data) == f"<PayloadView of {len(frame)} bytes>"
    assert len(data) == len(frame) and bytes(data) == data.tobytes() == frame and bytearray(data) == frame
    assert data == frame and frame == data and data == memoryview(frame) and data != frame[1:]
    assert data != "text" and data != 5 and hash(data) == hash(frame)
    assert data[0] == frame[0] and data[-1] == frame[-1] and data[2:9] == frame[2:9]
    assert memoryview(data).cast("B", (len(frame),)).tolist() == list(frame)
    with pytest.raises(TypeError):
        data[0] = 1  # type: ignore[index]
    # A writable buffer is refused (the payload is shared, immutable bytes).
    with pytest.raises(TypeError, match="read-write"):
        io.BytesIO(b"overwrite").readinto(data)  # asks for a writable buffer
    writable = bytearray(len(frame))
    memoryview(writable)[:] = data  # reading into another buffer works
    assert writable == frame
    # The payload lives as long as the view, and the view as long as any buffer taken from it.
    del payload
    exported = memoryview(data)
    del data
    assert exported.tobytes() == frame and exported.obj is not None
    exported.release()


def test_rejects_what_is_not_a_buffer(impl: ModuleType) -> None:
    for call in (
        impl.parse_video_tag,
        impl.parse_audio_tag,
        impl.avcc_to_annexb,
        impl.parse_avc_config,
        impl.parse_hevc_config,
        impl.parse_aac_config,
    ):
        with pytest.raises(TypeError):
            call(8)


def test_data_does_not_alias_the_input(impl: ModuleType) -> None:
    buffer = bytearray(legacy(1, 7, 1, 0, nals(IDR)))
    tag = impl.parse_video_tag(buffer)
    buffer[9:] = bytes(len(buffer) - 9)
    assert tag.data == nals(IDR)


def test_data_is_a_read_only_view_sharing_the_payload(impl: ModuleType) -> None:
    # The chunk decoder hands over each message as its own bytes object: the frame is not copied.
    frame = nals(SEI, IDR)
    video = legacy(1, 7, 1, 0, frame)
    tag = impl.parse_video_tag(video)
    # A memoryview in the twin; in the Cython module a PayloadView, which exports the same buffer.
    assert tag.data.obj is video
    view = memoryview(tag.data)
    assert (view.readonly, view.format, view.ndim, view.contiguous) == (True, "B", 1, True)
    assert (len(tag.data), view.nbytes, bytes(tag.data), tag.data) == (len(frame), len(frame), frame, frame)
    assert view.tobytes() == tag.data.tobytes() == frame and b"".join((tag.data, tag.data)) == frame + frame
    assert tag.data[4] == frame[4] and tag.data[-2:] == frame[-2:] and hash(tag.data) == hash(frame)
    with pytest.raises(TypeError):
        tag.data[0] = 0
    for payload, header in (
        (legacy(1, 7, 0, 0, b"\x01config"), 5),
        (legacy(2, 7, 2, 0, b""), 5),
        (bytes((0x57, 0x00)), 1),
        (bytes((0x93,)) + b"hvc1" + nals(bytes((0x26, 0x01))), 5),
        (bytes((0x91,)) + b"hvc1" + b"\x00\x00\x21" + nals(bytes((0x26, 0x01))), 8),
        (bytes((0x91,)) + b"av01" + b"\x12\x00", 5),
        (bytes((0x94,)) + b"hvc1" + b"\x02amf", 5),
    ):
        tag = impl.parse_video_tag(payload)
        assert tag.data.obj is payload and tag.data.readonly and bytes(tag.data) == payload[header:]
    for payload, header in ((b"\xaf\x01\x21\x10", 2), (b"\xaf\x00\x12\x10", 2), (b"\x2f\xff\xfb", 1)):
        audio = impl.parse_audio_tag(payload)
        assert audio.data.obj is payload and audio.data.readonly and bytes(audio.data) == payload[header:]


def test_trailing_bytes_belong_to_the_tag(impl: ModuleType) -> None:
    # An RTMP message is exactly one tag: anything after the last NAL unit must be another NAL unit.
    expect_error(
        impl.parse_video_tag,
        legacy(1, 7, 1, 0, nals(IDR) + b"\x01"),
        message="FLV video: NAL length prefix of 4 bytes overruns the tag (1 bytes left)",
    )


def test_tag_objects(impl: ModuleType) -> None:
    tag = impl.VideoTag("avc1", FRAME, 1, True, 0, b"\x00", (5,))
    assert tag == impl.VideoTag("avc1", FRAME, 1, True, 0, b"\x00", (5,))
    assert tag != impl.VideoTag("avc1", FRAME, 2, True, 0, b"\x00", (5,))
    assert repr(tag) == (
        "VideoTag(codec='avc1', packet_type=1, frame_type=1, keyframe=True, composition_time=0, "
        "data=b'\\x00', nal_types=(5,))"
    )
    audio = impl.AudioTag("mp3", 2, FRAME, b"\xff")
    assert audio == impl.AudioTag("mp3", 2, FRAME, b"\xff")
    assert repr(audio) == "AudioTag(codec='mp3', sound_format=2, packet_type=1, data=b'\\xff')"
    assert (impl.PACKET_CONFIG, impl.PACKET_FRAME, impl.PACKET_END, impl.PACKET_METADATA) == (0, 1, 2, 3)


# -- audio (FLV v10.1 E.4.2.1) ----------------------------------------------------------------


def test_aac_sequence_header_and_raw_frame(impl: ModuleType) -> None:
    assert fields(impl.parse_audio_tag(b"\xaf\x00\x12\x10")) == ("mp4a", 10, CONFIG, b"\x12\x10")
    assert fields(impl.parse_audio_tag(b"\xaf\x01\x21\x1b")) == ("mp4a", 10, FRAME, b"\x21\x1b")
    assert fields(impl.parse_audio_tag(b"\xaf\x01")) == ("mp4a", 10, FRAME, b"")


@pytest.mark.parametrize(
    ("sound_format", "codec"),
    [
        (0, "pcm"),
        (1, "flv-audio-1"),
        (2, "mp3"),
        (3, "pcm"),
        (4, "nellymoser"),
        (5, "nellymoser"),
        (6, "nellymoser"),
        (7, "g711a"),
        (8, "g711u"),
        (9, "flv-audio-9"),
        (11, "speex"),
        (12, "flv-audio-12"),
        (13, "flv-audio-13"),
        (14, "mp3"),
        (15, "flv-audio-15"),
    ],
)
def test_other_sound_formats(impl: ModuleType, sound_format: int, codec: str) -> None:
    tag = impl.parse_audio_tag(bytes([sound_format << 4 | 0x0E, 0xFF, 0xFB]))
    assert fields(tag) == (codec, sound_format, FRAME, b"\xff\xfb")
    assert fields(impl.parse_audio_tag(bytes([sound_format << 4]))) == (codec, sound_format, FRAME, b"")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "FLV audio: empty tag"),
        (b"\xaf", "FLV audio: tag of 1 bytes is shorter than its 2-byte AAC header"),
        (b"\xaf\x02\x00", "FLV audio: unknown AAC packet type 2"),
    ],
)
def test_audio_errors(impl: ModuleType, payload: bytes, message: str) -> None:
    expect_error(impl.parse_audio_tag, payload, message=message)


# -- Annex B ----------------------------------------------------------------------------------


def test_avcc_to_annexb(impl: ModuleType) -> None:
    start = b"\x00\x00\x00\x01"
    assert impl.avcc_to_annexb(nals(SEI, IDR)) == start + SEI + start + IDR
    assert impl.avcc_to_annexb(bytearray(nals(SLICE, size=2)), 2) == start + SLICE
    assert impl.avcc_to_annexb(memoryview(nals(SLICE, IDR, size=1)), 1) == start + SLICE + start + IDR
    assert impl.avcc_to_annexb(b"") == b""


def test_avcc_to_annexb_errors(impl: ModuleType) -> None:
    expect_error(
        impl.avcc_to_annexb,
        b"\x00\x00\x00\x0a\x65\x88\x84",
        message="AVCC: NAL unit length 10 overruns the frame (3 bytes left)",
    )
    expect_error(
        impl.avcc_to_annexb,
        nals(IDR) + b"\x00",
        message="AVCC: NAL length prefix of 4 bytes overruns the frame (1 bytes left)",
    )
    expect_error(impl.avcc_to_annexb, b"\x00\x00", 2, message="AVCC: empty NAL unit at offset 0")


# -- avcC -------------------------------------------------------------------------------------


def test_avc_config(impl: ModuleType) -> None:
    config = impl.parse_avc_config(AVCC)
    assert (config.profile_idc, config.profile_compat, config.level_idc, config.nal_length_size) == (
        100,
        0,
        31,
        4,
    )
    assert (config.sps, config.pps, config.extension) == ((SPS,), (PPS,), b"")
    assert config.codecs == "avc1.64001f"
    assert bytes(config) == AVCC


def test_avc_config_keeps_the_high_profile_extension(impl: ModuleType) -> None:
    record = AVCC + bytes.fromhex("fdf8f800")
    config = impl.parse_avc_config(record)
    assert config.extension == bytes.fromhex("fdf8f800")
    assert bytes(config) == record


def test_avc_config_several_parameter_sets_and_short_lengths(impl: ModuleType) -> None:
    record = bytes.fromhex("0142c01efde2") + nals(SPS, SPS[:3], size=2) + b"\x00"
    config = impl.parse_avc_config(record)
    assert (config.nal_length_size, config.sps, config.pps, config.codecs) == (
        2,
        (SPS, SPS[:3]),
        (),
        "avc1.42c01e",
    )
    assert bytes(config) == record


def test_avc_config_object(impl: ModuleType) -> None:
    config = impl.AvcConfig(
        profile_idc=66, profile_compat=0xC0, level_idc=30, nal_length_size=1, sps=(), pps=(), extension=b""
    )
    assert bytes(config) == bytes.fromhex("0142c01efce000")
    assert impl.parse_avc_config(bytes(config)) == config
    with pytest.raises(ValueError, match=r"^an avcC record holds at most 31 SPS, not 32$"):
        bytes(impl.AvcConfig(66, 0, 30, 4, (b"\x67",) * 32, (), b""))


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (b"\x01\x64\x00", "AVC config: record of 3 bytes is shorter than its 6-byte header"),
        (bytes.fromhex("0064001fffe1"), "AVC config: configurationVersion 0 is not 1"),
        (bytes.fromhex("0164001ffee1"), "AVC config: NAL length size 3 is not 1, 2 or 4"),
        (
            bytes.fromhex("0164001fffe100"),
            "AVC config: SPS 0 length field overruns the record (1 bytes left)",
        ),
        (
            bytes.fromhex("0164001fffe1000767"),
            "AVC config: SPS 0 of 7 bytes overruns the record (1 bytes left)",
        ),
        (AVCC[:14], "AVC config: record ends before numOfPictureParameterSets"),
        (AVCC[:-4], "AVC config: PPS 0 of 4 bytes overruns the record (0 bytes left)"),
        (
            AVCC[:14] + b"\x02" + AVCC[15:],
            "AVC config: PPS 1 length field overruns the record (0 bytes left)",
        ),
    ],
)
def test_avc_config_errors(impl: ModuleType, record: bytes, message: str) -> None:
    expect_error(impl.parse_avc_config, record, message=message)


# -- hvcC -------------------------------------------------------------------------------------


def test_hevc_config(impl: ModuleType) -> None:
    config = impl.parse_hevc_config(HVCC)
    assert (
        config.general_profile_space,
        config.general_tier_flag,
        config.general_profile_idc,
        config.general_profile_compatibility_flags,
        config.general_constraint_indicator_flags,
        config.general_level_idc,
    ) == (0, 0, 1, 0x60000000, bytes.fromhex("900000000000"), 93)
    assert (
        config.min_spatial_segmentation_idc,
        config.parallelism_type,
        config.chroma_format_idc,
        config.bit_depth_luma_minus8,
        config.bit_depth_chroma_minus8,
        config.avg_frame_rate,
        config.constant_frame_rate,
        config.num_temporal_layers,
        config.temporal_id_nested,
        config.nal_length_size,
    ) == (0, 0, 1, 0, 0, 0, 0, 1, 1, 4)
    assert config.arrays == ((32, (VPS_H,)), (33, (SPS_H,)), (34, (PPS_H,)))
    assert config.array_completeness == (True, True, True)
    assert config.codecs == "hvc1.1.6.L93.90"
    assert bytes(config) == HVCC


def hevc_config(impl: ModuleType, **changes: Any) -> Any:
    values = {
        "general_profile_space": 0,
        "general_tier_flag": 0,
        "general_profile_idc": 1,
        "general_profile_compatibility_flags": 0x60000000,
        "general_constraint_indicator_flags": bytes.fromhex("b00000000000"),
        "general_level_idc": 93,
        "min_spatial_segmentation_idc": 0,
        "parallelism_type": 0,
        "chroma_format_idc": 1,
        "bit_depth_luma_minus8": 0,
        "bit_depth_chroma_minus8": 0,
        "avg_frame_rate": 0,
        "constant_frame_rate": 0,
        "num_temporal_layers": 1,
        "temporal_id_nested": 1,
        "nal_length_size": 4,
        "arrays": (),
        "array_completeness": (),
    }
    values.update(changes)
    return impl.HevcConfig(**values)


@pytest.mark.parametrize(
    ("changes", "codecs"),
    [
        ({}, "hvc1.1.6.L93.B0"),
        (
            {
                "general_profile_idc": 2,
                "general_profile_compatibility_flags": 0x20000000,
                "general_level_idc": 123,
            },
            "hvc1.2.4.L123.B0",
        ),
        ({"general_tier_flag": 1, "general_level_idc": 150}, "hvc1.1.6.H150.B0"),
        ({"general_profile_space": 1}, "hvc1.A1.6.L93.B0"),
        ({"general_profile_space": 3}, "hvc1.C1.6.L93.B0"),
        ({"general_constraint_indicator_flags": bytes(6)}, "hvc1.1.6.L93"),
        ({"general_constraint_indicator_flags": bytes.fromhex("900008000000")}, "hvc1.1.6.L93.90.0.8"),
        ({"general_profile_compatibility_flags": 0}, "hvc1.1.0.L93.B0"),
        ({"general_profile_compatibility_flags": 0xFFFFFFFF}, "hvc1.1.FFFFFFFF.L93.B0"),
        ({"general_profile_compatibility_flags": 1}, "hvc1.1.80000000.L93.B0"),
    ],
)
def test_hevc_codecs_strings(impl: ModuleType, changes: dict[str, Any], codecs: str) -> None:
    config = hevc_config(impl, **changes)
    assert config.codecs == codecs
    assert impl.parse_hevc_config(bytes(config)) == config


def test_hevc_config_nal_length_size(impl: ModuleType) -> None:
    assert impl.parse_hevc_config(bytes(hevc_config(impl, nal_length_size=2))).nal_length_size == 2


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (HVCC[:22], "HEVC config: record of 22 bytes is shorter than its 23-byte header"),
        (b"\x02" + HVCC[1:], "HEVC config: configurationVersion 2 is not 1"),
        (HVCC[:21] + b"\x0e" + HVCC[22:], "HEVC config: NAL length size 3 is not 1, 2 or 4"),
        (HVCC[:25], "HEVC config: array 0 header overruns the record (2 bytes left)"),
        (HVCC[:27], "HEVC config: array 0 unit 0 length field overruns the record (1 bytes left)"),
        (HVCC[:29], "HEVC config: array 0 unit 0 of 4 bytes overruns the record (1 bytes left)"),
        (HVCC[:32], "HEVC config: array 1 header overruns the record (0 bytes left)"),
        (HVCC[:22] + b"\x04" + HVCC[23:], "HEVC config: array 3 header overruns the record (0 bytes left)"),
    ],
)
def test_hevc_config_errors(impl: ModuleType, record: bytes, message: str) -> None:
    expect_error(impl.parse_hevc_config, record, message=message)


# -- AAC AudioSpecificConfig ------------------------------------------------------------------

AAC_CONFIGS = [
    # record, (object_type, sample_rate, channels, frame_length), codecs
    ("1210", (2, 44100, 2, 1024), "mp4a.40.2"),
    ("1188", (2, 48000, 1, 1024), "mp4a.40.2"),
    ("1214", (2, 44100, 2, 960), "mp4a.40.2"),
    ("178055f010", (2, 44000, 2, 1024), "mp4a.40.2"),  # samplingFrequencyIndex 15: explicit 24-bit rate
    ("f94640", (42, 48000, 2, 1024), "mp4a.40.42"),  # audioObjectType escape (31 + 6 bits)
    ("2b118800", (5, 48000, 2, 1024), "mp4a.40.5"),  # HE-AAC, explicit SBR signalling
    ("eb098800", (29, 48000, 1, 1024), "mp4a.40.29"),  # HE-AAC v2 (PS)
    ("2b178061a80800", (5, 50000, 2, 1024), "mp4a.40.5"),  # explicit extension rate
    ("b990", (23, 48000, 2, 1024), "mp4a.40.23"),
    ("13b8", (2, 22050, 8, 1024), "mp4a.40.2"),  # channelConfiguration 7: 7.1, 8 channels
]


@pytest.mark.parametrize(("record", "expected", "codecs"), AAC_CONFIGS)
def test_aac_config(impl: ModuleType, record: str, expected: tuple[int, int, int, int], codecs: str) -> None:
    config = impl.parse_aac_config(bytes.fromhex(record))
    assert (config.object_type, config.sample_rate, config.channels, config.frame_length) == expected
    assert config.codecs == codecs
    assert bytes(config).hex() == record


def test_aac_config_core_and_extension_fields(impl: ModuleType) -> None:
    config = impl.parse_aac_config(bytes.fromhex("2b118800"))
    assert (
        config.sampling_frequency_index,
        config.core_sample_rate,
        config.channel_configuration,
        config.extension_sampling_frequency_index,
        config.core_object_type,
    ) == (6, 24000, 2, 3, 2)
    plain = impl.parse_aac_config(bytes.fromhex("1210"))
    assert (plain.extension_sampling_frequency_index, plain.core_object_type, plain.core_sample_rate) == (
        -1,
        2,
        44100,
    )


def test_aac_config_keeps_trailing_bits(impl: ModuleType) -> None:
    # ffmpeg's AAC encoder appends the 0x2B7 sync extension (SBR object type 5, sbrPresentFlag 0)
    # after GASpecificConfig's dependsOnCoreCoder and extensionFlag bits.
    record = bytes.fromhex("120856e500")
    config = impl.parse_aac_config(record)
    assert (config.object_type, config.sample_rate, config.channels) == (2, 44100, 1)
    assert config.remaining_bits == "00" + "01010110111001010" + "0000000"
    assert bytes(config) == record
    assert impl.parse_aac_config(bytes.fromhex("1210")).remaining_bits == "00"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("", "AAC config: record of 0 bytes ends inside audioObjectType"),
        ("12", "AAC config: record of 1 bytes ends inside samplingFrequencyIndex"),
        ("1780", "AAC config: record of 2 bytes ends inside samplingFrequency"),
        ("f8", "AAC config: record of 1 bytes ends inside audioObjectType"),
        ("0210", "AAC config: audioObjectType 0 is the null object"),
        ("1690", "AAC config: reserved samplingFrequencyIndex 13"),
        ("1240", "AAC config: reserved channelConfiguration 8"),
        ("2b168800", "AAC config: reserved extensionSamplingFrequencyIndex 13"),
        ("2b1780", "AAC config: record of 3 bytes ends inside extensionSamplingFrequency"),
        ("2b11d800", "AAC config: SBR over ER BSAC (object type 22) is not supported"),
    ],
)
def test_aac_config_errors(impl: ModuleType, record: str, message: str) -> None:
    expect_error(impl.parse_aac_config, bytes.fromhex(record), message=message)


# -- real media made by ffmpeg ----------------------------------------------------------------


def read_flv(data: bytes) -> list[tuple[int, int, bytes]]:
    """(tag type, timestamp ms, payload) of every tag of an FLV file."""
    assert data[:3] == b"FLV"
    pos = int.from_bytes(data[5:9], "big") + 4  # the header, then PreviousTagSize0
    tags = []
    while pos + 11 <= len(data):
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        timestamp = int.from_bytes(data[pos + 4 : pos + 7], "big") | data[pos + 7] << 24
        tags.append((data[pos] & 0x1F, timestamp, data[pos + 11 : pos + 11 + size]))
        pos += 11 + size + 4
    assert pos == len(data)
    return tags


def ffprobe(path: Path, stream: str, entries: str) -> Any:
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            entries,
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)


def keyframe_count(path: Path) -> int:
    packets = ffprobe(path, "v:0", "packet=flags")["packets"]
    return sum("K" in packet["flags"] for packet in packets)


@pytest.fixture(scope="session")
def h264_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("ffmpeg is not installed")
    path = tmp_path_factory.mktemp("flv") / "h264_aac.flv"
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-nostdin",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
            "-f", "lavfi", "-i", "sine",
            "-t", "2", "-c:v", "libx264", "-g", "30", "-c:a", "aac", "-f", "flv", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="session")
def hevc_flv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """HEVC in Enhanced RTMP FLV, plus the MP4 it was remuxed from (the reference for ffprobe).

    Debian's ffmpeg 5.1 cannot write HEVC into FLV ("Video codec hevc not compatible with flv");
    the FFmpeg that PyAV bundles (7.1+) writes Enhanced RTMP tags, so the remux goes through PyAV.
    """
    av = pytest.importorskip("av")
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("ffmpeg is not installed")
    directory = tmp_path_factory.mktemp("flv")
    mp4 = directory / "hevc_aac.mp4"
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-nostdin",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
            "-f", "lavfi", "-i", "sine",
            "-t", "1", "-c:v", "libx265", "-x265-params", "log-level=error", "-g", "15",
            "-c:a", "aac", str(mp4),
        ],
        check=True,
    )  # fmt: skip
    flv_path = directory / "hevc_aac.flv"
    try:
        with av.open(str(mp4)) as source, av.open(str(flv_path), "w", format="flv") as sink:
            streams = {stream.index: sink.add_stream_from_template(stream) for stream in source.streams}
            for packet in source.demux():
                if packet.dts is None:
                    continue
                packet.stream = streams[packet.stream.index]
                sink.mux(packet)
    except av.error.FFmpegError as error:
        pytest.skip(f"this FFmpeg cannot write HEVC into FLV: {error}")
    return flv_path, mp4


H264_PROFILES = {"Baseline": 66, "Constrained Baseline": 66, "Main": 77, "High": 100}


def test_ffmpeg_h264_aac_file(impl: ModuleType, h264_flv: Path) -> None:
    tags = read_flv(h264_flv.read_bytes())
    video = [impl.parse_video_tag(payload) for kind, _, payload in tags if kind == 9]
    audio = [impl.parse_audio_tag(payload) for kind, _, payload in tags if kind == 8]

    assert video[0].packet_type == CONFIG
    assert video[-1].packet_type == END  # ffmpeg closes the stream with an AVC end of sequence
    avc = impl.parse_avc_config(video[0].data)
    stream = ffprobe(h264_flv, "v:0", "stream=profile,level")["streams"][0]
    assert (avc.profile_idc, avc.level_idc) == (H264_PROFILES[stream["profile"]], stream["level"])
    assert avc.codecs == f"avc1.{avc.profile_idc:02x}{avc.profile_compat:02x}{avc.level_idc:02x}"
    assert bytes(avc) == video[0].data

    frames = [tag for tag in video if tag.packet_type == FRAME]
    assert len(frames) == 60
    assert all(tag.codec == "avc1" and tag.nal_types for tag in frames)
    assert sum(tag.keyframe for tag in frames) == keyframe_count(h264_flv) == 2
    assert all(tag.keyframe == (5 in tag.nal_types) for tag in frames)
    assert any(tag.composition_time > 0 for tag in frames)  # x264's B-frames

    assert audio[0].packet_type == CONFIG
    aac = impl.parse_aac_config(audio[0].data)
    stream = ffprobe(h264_flv, "a:0", "stream=sample_rate,channels")["streams"][0]
    assert (aac.sample_rate, aac.channels, aac.object_type, aac.frame_length) == (
        int(stream["sample_rate"]),
        stream["channels"],
        2,
        1024,
    )
    assert bytes(aac) == audio[0].data
    assert all(tag.codec == "mp4a" and tag.packet_type == FRAME and tag.data for tag in audio[1:])


def test_annexb_of_ffmpeg_frames_decodes(impl: ModuleType, h264_flv: Path) -> None:
    av = pytest.importorskip("av")
    tags = [impl.parse_video_tag(payload) for kind, _, payload in read_flv(h264_flv.read_bytes()) if kind == 9]
    avc = impl.parse_avc_config(tags[0].data)
    parameter_sets = b"".join(b"\x00\x00\x00\x01" + unit for unit in avc.sps + avc.pps)
    access_units = [impl.avcc_to_annexb(tag.data, avc.nal_length_size) for tag in tags if tag.packet_type == FRAME]
    access_units[0] = parameter_sets + access_units[0]
    decoder = av.CodecContext.create("h264", "r")
    decoded = [frame for unit in access_units for frame in decoder.decode(av.Packet(unit))]
    decoded += decoder.decode(None)
    assert len(decoded) == 60
    assert (decoded[0].width, decoded[0].height) == (320, 240)


def test_ffmpeg_hevc_enhanced_rtmp_file(impl: ModuleType, hevc_flv: tuple[Path, Path]) -> None:
    flv_path, mp4 = hevc_flv
    tags = read_flv(flv_path.read_bytes())
    video = [impl.parse_video_tag(payload) for kind, _, payload in tags if kind == 9]
    assert all(tag.codec == "hvc1" for tag in video)
    assert video[0].packet_type == CONFIG
    hevc = impl.parse_hevc_config(video[0].data)
    stream = ffprobe(mp4, "v:0", "stream=profile,level")["streams"][0]
    assert stream["profile"] == "Main"
    assert (hevc.general_profile_idc, hevc.general_level_idc) == (1, stream["level"])
    assert hevc.codecs.startswith(f"hvc1.1.6.L{stream['level']}")
    assert [nal_type for nal_type, _ in hevc.arrays][:3] == [32, 33, 34]  # then ffmpeg's SEI (39)
    assert bytes(hevc) == video[0].data

    frames = [tag for tag in video if tag.packet_type == FRAME]
    assert len(frames) == 30
    assert all(tag.nal_types for tag in frames)
    assert sum(tag.keyframe for tag in frames) == keyframe_count(mp4)
    assert any(tag.composition_time != 0 for tag in frames)  # x265's B-frames
