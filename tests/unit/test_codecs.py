"""Codec parameters: real parameter sets from ffmpeg's encoders checked against ffprobe, hand-built
parameter sets for every syntax branch, exact error messages, and truncation/fuzz properties."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from owncast_fast._native import flv
from owncast_fast.errors import ProtocolError
from owncast_fast.media.codecs import (
    BitReader,
    H264Sps,
    HevcSps,
    codecs_string,
    find_av1_sequence_header,
    parse_av1_config,
    parse_av1_sequence_header,
    parse_h264_sps,
    parse_hevc_sps,
    parse_vp9_config,
    unescape_rbsp,
    video_dimensions,
)


def expect_error(message: str, call: Callable[..., object], *args: Any) -> None:
    with pytest.raises(ProtocolError) as caught:
        call(*args)
    assert str(caught.value) == message


# -- building parameter sets by hand --------------------------------------------------------------


class BitWriter:
    """The inverse of BitReader, for building parameter sets field by field."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, count: int, value: int) -> None:
        assert 0 <= value < (1 << count) or count == 0
        self.bits.extend((value >> (count - 1 - i)) & 1 for i in range(count))

    def flag(self, value: bool) -> None:
        self.u(1, int(value))

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() - 1, 0)
        self.u(code.bit_length(), code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def leading_zeros(self, count: int) -> None:
        self.bits.extend([0] * count)

    def rbsp(self) -> bytes:
        """rbsp_trailing_bits(): a stop bit, then zeros to the byte boundary."""
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))

    def raw(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


def escape(rbsp: bytes) -> bytes:
    """Inserts emulation_prevention_three_byte wherever 00 00 is followed by 00..03 (7.4.1)."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


@dataclass
class Vui:
    aspect_ratio_idc: int | None = None
    sar: tuple[int, int] = (0, 0)
    overscan: bool | None = None
    colour: tuple[int, int, int] | None = None
    video_signal: bool = False
    chroma_location: tuple[int, int] | None = None
    timing: tuple[int, int] | None = None
    default_display_window: tuple[int, int, int, int] | None = None  # HEVC only


def _write_vui_start(out: BitWriter, vui: Vui) -> None:
    out.flag(vui.aspect_ratio_idc is not None)
    if vui.aspect_ratio_idc is not None:
        out.u(8, vui.aspect_ratio_idc)
        if vui.aspect_ratio_idc == 255:
            out.u(16, vui.sar[0])
            out.u(16, vui.sar[1])
    out.flag(vui.overscan is not None)
    if vui.overscan is not None:
        out.flag(vui.overscan)
    out.flag(vui.video_signal)
    if vui.video_signal:
        out.u(3, 5)
        out.flag(True)
        out.flag(vui.colour is not None)
        if vui.colour is not None:
            for value in vui.colour:
                out.u(8, value)
    out.flag(vui.chroma_location is not None)
    if vui.chroma_location is not None:
        out.ue(vui.chroma_location[0])
        out.ue(vui.chroma_location[1])


def h264_sps(
    *,
    profile_idc: int = 100,
    constraint_flags: int = 0,
    level_idc: int = 31,
    sps_id: int = 0,
    chroma_format_idc: int = 1,
    separate_colour_plane: bool = False,
    bit_depth_luma: int = 8,
    bit_depth_chroma: int = 8,
    scaling_lists: list[list[int] | None] | None = None,
    poc_type: int = 0,
    poc_cycle: tuple[int, ...] = (),
    max_num_ref_frames: int = 4,
    width_in_mbs: int = 20,
    height_in_map_units: int = 15,
    frame_mbs_only: bool = True,
    crop: tuple[int, int, int, int] | None = None,
    vui: Vui | None = None,
) -> bytes:
    """An H.264 SPS NAL unit (7.3.2.1.1), escaped; `scaling_lists[i]` holds the delta_scale values."""
    out = BitWriter()
    out.u(8, profile_idc)
    out.u(8, constraint_flags)
    out.u(8, level_idc)
    out.ue(sps_id)
    if profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        out.ue(chroma_format_idc)
        if chroma_format_idc == 3:
            out.flag(separate_colour_plane)
        out.ue(bit_depth_luma - 8)
        out.ue(bit_depth_chroma - 8)
        out.flag(False)
        out.flag(scaling_lists is not None)
        if scaling_lists is not None:
            for deltas in scaling_lists:
                out.flag(deltas is not None)
                for delta in deltas or ():
                    out.se(delta)
    out.ue(0)  # log2_max_frame_num_minus4
    out.ue(poc_type)
    if poc_type == 0:
        out.ue(4)
    elif poc_type == 1:
        out.flag(False)
        out.se(-2)
        out.se(3)
        out.ue(len(poc_cycle))
        for offset in poc_cycle:
            out.se(offset)
    out.ue(max_num_ref_frames)
    out.flag(False)
    out.ue(width_in_mbs - 1)
    out.ue(height_in_map_units - 1)
    out.flag(frame_mbs_only)
    if not frame_mbs_only:
        out.flag(True)
    out.flag(True)
    out.flag(crop is not None)
    for offset in crop or ():
        out.ue(offset)
    out.flag(vui is not None)
    if vui is not None:
        _write_vui_start(out, vui)
        out.flag(vui.timing is not None)
        if vui.timing is not None:
            out.u(32, vui.timing[0])
            out.u(32, vui.timing[1])
            out.flag(True)
        out.flag(False)  # nal_hrd_parameters_present_flag
        out.flag(False)  # vcl_hrd_parameters_present_flag
        out.flag(False)  # pic_struct_present_flag
        out.flag(False)  # bitstream_restriction_flag
    return b"\x67" + escape(out.rbsp())


@dataclass
class SubLayer:
    profile: bool
    level: bool


def hevc_sps(
    *,
    sub_layers: tuple[SubLayer, ...] = (),
    profile_idc: int = 1,
    tier: int = 0,
    level_idc: int = 93,
    compatibility: int = 0x60000000,
    constraints: int = 0x900000000000,
    chroma_format_idc: int = 1,
    separate_colour_plane: bool = False,
    width: int = 1920,
    height: int = 1088,
    conformance_window: tuple[int, int, int, int] | None = (0, 0, 0, 4),
    bit_depth: int = 8,
    ordering_info_for_all: bool = True,
    scaling_list_data: bool | None = None,
    pcm: bool = False,
    short_term_sets: tuple[tuple[Any, ...], ...] = (),
    long_term_lsbs: tuple[int, ...] | None = None,
    vui: Vui | None = None,
) -> bytes:
    """An H.265 SPS NAL unit (7.3.2.2.1), escaped.

    `short_term_sets` entries are ("explicit", [(delta_minus1, used)...], [(delta_minus1, used)...])
    or ("inter", sign, abs_delta_rps_minus1, [(used, use_delta)...]).
    """
    out = BitWriter()
    out.u(4, 0)
    out.u(3, len(sub_layers))
    out.flag(True)
    out.u(2, 0)
    out.u(1, tier)
    out.u(5, profile_idc)
    out.u(32, compatibility)
    out.u(48, constraints)
    out.u(8, level_idc)
    for layer in sub_layers:
        out.flag(layer.profile)
        out.flag(layer.level)
    if sub_layers:
        for _ in range(len(sub_layers), 8):
            out.u(2, 0)
    for layer in sub_layers:
        if layer.profile:
            out.u(88 - 40, 0x5A5A5A5A5A5A)
            out.u(40, 0x0123456789)
        if layer.level:
            out.u(8, 90)
    out.ue(0)  # sps_seq_parameter_set_id
    out.ue(chroma_format_idc)
    if chroma_format_idc == 3:
        out.flag(separate_colour_plane)
    out.ue(width)
    out.ue(height)
    out.flag(conformance_window is not None)
    for offset in conformance_window or ():
        out.ue(offset)
    out.ue(bit_depth - 8)
    out.ue(bit_depth - 8)
    out.ue(4)  # log2_max_pic_order_cnt_lsb_minus4: 8-bit POC LSBs
    out.flag(ordering_info_for_all)
    for _ in range(len(sub_layers) + 1 if ordering_info_for_all else 1):
        out.ue(4)
        out.ue(2)
        out.ue(0)
    for value in (0, 2, 0, 3, 1, 1):  # coding/transform block sizes, hierarchy depths
        out.ue(value)
    out.flag(scaling_list_data is not None)
    if scaling_list_data is not None:
        out.flag(scaling_list_data)
        if scaling_list_data:
            for size_id in range(4):
                for matrix_id in range(0, 6, 3 if size_id == 3 else 1):
                    explicit = matrix_id % 2 == 1 or size_id == 3
                    out.flag(explicit)
                    if not explicit:
                        out.ue(1 if matrix_id else 0)
                        continue
                    if size_id > 1:
                        out.se(8)
                    for i in range(min(64, 1 << (4 + (size_id << 1)))):
                        out.se(1 if i % 3 == 0 else -1)
    out.flag(True)  # amp_enabled_flag
    out.flag(True)  # sample_adaptive_offset_enabled_flag
    out.flag(pcm)
    if pcm:
        out.u(4, 7)
        out.u(4, 7)
        out.ue(0)
        out.ue(1)
        out.flag(True)
    out.ue(len(short_term_sets))
    for index, entry in enumerate(short_term_sets):
        if index:
            out.flag(entry[0] == "inter")
        if entry[0] == "inter":
            _, sign, abs_minus1, flags = entry
            out.flag(sign)
            out.ue(abs_minus1)
            for used, use_delta in flags:
                out.flag(used)
                if not used:
                    out.flag(use_delta)
        else:
            _, negatives, positives = entry
            out.ue(len(negatives))
            out.ue(len(positives))
            for delta_minus1, used in (*negatives, *positives):
                out.ue(delta_minus1)
                out.flag(used)
    out.flag(long_term_lsbs is not None)
    if long_term_lsbs is not None:
        out.ue(len(long_term_lsbs))
        for lsb in long_term_lsbs:
            out.u(8, lsb)
            out.flag(True)
    out.flag(True)  # sps_temporal_mvp_enabled_flag
    out.flag(True)  # strong_intra_smoothing_enabled_flag
    out.flag(vui is not None)
    if vui is not None:
        _write_vui_start(out, vui)
        out.flag(False)  # neutral_chroma_indication_flag
        out.flag(False)  # field_seq_flag
        out.flag(False)  # frame_field_info_present_flag
        out.flag(vui.default_display_window is not None)
        for offset in vui.default_display_window or ():
            out.ue(offset)
        out.flag(vui.timing is not None)
        if vui.timing is not None:
            out.u(32, vui.timing[0])
            out.u(32, vui.timing[1])
            out.flag(False)  # vui_poc_proportional_to_timing_flag
            out.flag(False)  # vui_hrd_parameters_present_flag
        out.flag(False)  # bitstream_restriction_flag
    out.flag(False)  # sps_extension_present_flag
    return b"\x42\x01" + escape(out.rbsp())


@dataclass
class OperatingPoint:
    level: int
    tier: int = 0
    decoder_model: bool = False
    initial_display_delay: int | None = None


def av1_sequence_header(
    *,
    profile: int = 0,
    reduced_still_picture_header: bool = False,
    timing: tuple[int, int, int | None] | None = None,
    ticks_leading_zeros: int | None = None,
    decoder_model: bool = False,
    operating_points: tuple[OperatingPoint, ...] | None = None,
    width: int = 1920,
    height: int = 1080,
    frame_id_numbers: bool = False,
    order_hint: bool = True,
    screen_content: tuple[bool, int, bool, int] = (True, 0, False, 0),
    high_bitdepth: bool = False,
    twelve_bit: bool = False,
    mono_chrome: bool = False,
    colour: tuple[int, int, int] | None = None,
    color_range: bool = False,
    subsampling: tuple[int, int] = (1, 0),
    chroma_sample_position: int = 0,
) -> bytes:
    """A sequence_header_obu() payload (AV1 5.5.1). `timing` is (num_units_in_display_tick,
    time_scale, num_ticks_per_picture_minus_1 or None for unequal intervals);
    `ticks_leading_zeros` codes that uvlc() as so many zeros and a one, with no value bits."""
    operating_points = operating_points or (OperatingPoint(8),)
    out = BitWriter()
    out.u(3, profile)
    out.flag(False)  # still_picture
    out.flag(reduced_still_picture_header)
    if reduced_still_picture_header:
        out.u(5, operating_points[0].level)
    else:
        out.flag(timing is not None)
        if timing is not None:
            out.u(32, timing[0])
            out.u(32, timing[1])
            out.flag(timing[2] is not None)
            if ticks_leading_zeros is not None:
                out.leading_zeros(ticks_leading_zeros)
                out.flag(True)
            elif timing[2] is not None:
                code = timing[2] + 1
                out.u(code.bit_length() - 1, 0)
                out.u(code.bit_length(), code)
            out.flag(decoder_model)
            if decoder_model:
                out.u(5, 9)  # buffer_delay_length_minus_1: 10-bit delays
                out.u(32, 1)
                out.u(5, 31)
                out.u(5, 31)
        out.flag(any(point.initial_display_delay is not None for point in operating_points))
        out.u(5, len(operating_points) - 1)
        display_delay = any(point.initial_display_delay is not None for point in operating_points)
        for point in operating_points:
            out.u(12, 0x101)
            out.u(5, point.level)
            if point.level > 7:
                out.u(1, point.tier)
            if timing is not None and decoder_model:
                out.flag(point.decoder_model)
                if point.decoder_model:
                    out.u(10, 1000)
                    out.u(10, 500)
                    out.flag(True)
            if display_delay:
                out.flag(point.initial_display_delay is not None)
                if point.initial_display_delay is not None:
                    out.u(4, point.initial_display_delay)
    out.u(4, 15)  # frame_width_bits_minus_1
    out.u(4, 15)
    out.u(16, width - 1)
    out.u(16, height - 1)
    if not reduced_still_picture_header:
        out.flag(frame_id_numbers)
        if frame_id_numbers:
            out.u(4, 12)
            out.u(3, 2)
    out.flag(True)
    out.flag(True)
    out.flag(True)
    if not reduced_still_picture_header:
        for _ in range(4):
            out.flag(True)
        out.flag(order_hint)
        if order_hint:
            out.flag(True)
            out.flag(True)
        choose_tools, force_tools, choose_mv, force_mv = screen_content
        out.flag(choose_tools)
        if not choose_tools:
            out.u(1, force_tools)
        if choose_tools or force_tools:
            out.flag(choose_mv)
            if not choose_mv:
                out.u(1, force_mv)
        if order_hint:
            out.u(3, 6)
    out.flag(False)  # enable_superres
    out.flag(True)  # enable_cdef
    out.flag(True)  # enable_restoration
    out.flag(high_bitdepth)
    if profile == 2 and high_bitdepth:
        out.flag(twelve_bit)
    if profile != 1:
        out.flag(mono_chrome)
    out.flag(colour is not None)
    for value in colour or ():
        out.u(8, value)
    if mono_chrome:
        out.flag(color_range)
    elif colour != (1, 13, 0):
        out.flag(color_range)
        if profile == 0:
            coded_subsampling = (1, 1)
        elif profile == 1:
            coded_subsampling = (0, 0)
        elif high_bitdepth and twelve_bit:
            coded_subsampling = subsampling
            out.u(1, subsampling[0])
            if subsampling[0]:
                out.u(1, subsampling[1])
        else:
            coded_subsampling = (1, 0)
        if coded_subsampling == (1, 1):
            out.u(2, chroma_sample_position)
    out.flag(False)  # separate_uv_delta_q
    out.flag(False)  # film_grain_params_present
    return out.rbsp()


def obu(obu_type: int, payload: bytes, *, size_field: bool = True, extension: bool = False) -> bytes:
    header = bytes([(obu_type << 3) | (extension << 2) | (size_field << 1)])
    if extension:
        header += b"\x08"
    if not size_field:
        return header + payload
    size = len(payload)
    leb = bytearray()
    while True:
        byte = size & 0x7F
        size >>= 7
        leb.append(byte | (0x80 if size else 0))
        if not size:
            break
    return header + bytes(leb) + payload


def av1c(
    obus: bytes = b"",
    *,
    profile: int = 0,
    level: int = 8,
    tier: int = 0,
    bit_depth: int = 8,
    monochrome: bool = False,
    subsampling: tuple[int, int] = (1, 1),
    position: int = 0,
) -> bytes:
    second = (tier << 7) | ((bit_depth > 8) << 6) | ((bit_depth == 12) << 5) | (monochrome << 4)
    second |= (subsampling[0] << 3) | (subsampling[1] << 2) | position
    return bytes([0x81, (profile << 5) | level, second, 0]) + obus


def vpcc(
    *,
    profile: int = 0,
    level: int = 31,
    bit_depth: int = 8,
    chroma: int = 1,
    full_range: bool = False,
    colour: tuple[int, int, int] = (1, 1, 1),
    init: bytes = b"",
    box_header: bool = True,
) -> bytes:
    body = bytes([profile, level, (bit_depth << 4) | (chroma << 1) | full_range, *colour])
    body += len(init).to_bytes(2, "big") + init
    return (b"\x01\x00\x00\x00" if box_header else b"") + body


def avcc(*sps: bytes) -> bytes:
    head = bytes(
        [1, sps[0][1] if sps else 100, sps[0][2] if sps else 0, sps[0][3] if sps else 31, 0xFF, 0xE0 | len(sps)]
    )
    units = b"".join(len(unit).to_bytes(2, "big") + unit for unit in sps)
    return head + units + b"\x01" + (4).to_bytes(2, "big") + b"\x68\xeb\xe3\xcb"


# -- unescape and the bit reader -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("escaped", "rbsp"),
    [
        (b"\x00\x00\x03\x01", b"\x00\x00\x01"),
        (b"\x00\x00\x03\x00\x00\x03", b"\x00\x00\x00\x00"),
        (b"\x00\x00\x03\x03", b"\x00\x00\x03"),
        (b"\x00\x03\x00\x00\x03\x02", b"\x00\x03\x00\x00\x02"),
        (b"\x67\x64\x00\x1f", b"\x67\x64\x00\x1f"),
        (b"", b""),
    ],
)
def test_unescape_rbsp(escaped: bytes, rbsp: bytes) -> None:
    assert unescape_rbsp(escaped) == rbsp


def test_unescape_inverts_escaping() -> None:
    data = bytes(range(4)) * 3 + b"\x00\x00\x00\x00\x01\x00\x00\x02\x00\x00"
    assert unescape_rbsp(escape(data)) == data
    assert b"\x00\x00\x00" not in escape(data)


def bit_string(text: str) -> bytes:
    bits = text.replace(" ", "")
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def test_exp_golomb_codes_of_table_9_2() -> None:
    # Table 9-2 bit strings for codeNum 0..8, then 9.1.1's signed mapping of the same codes.
    reader = BitReader(bit_string("1 010 011 00100 00101 00110 00111 0001000 0001001"), "t")
    assert [reader.ue("x") for _ in range(9)] == list(range(9))
    assert reader.position == 41
    signed = BitReader(bit_string("1 010 011 00100 00101"), "t")
    assert [signed.se("x") for _ in range(5)] == [0, 1, -1, 2, -2]


def test_bit_reader_reads_across_bytes() -> None:
    reader = BitReader(b"\xab\xcd\xef", "t")
    assert reader.u(4, "a") == 0xA
    assert reader.u(12, "b") == 0xBCD
    assert reader.flag("c") is True
    assert reader.u(0, "d") == 0
    assert reader.u(7, "e") == 0x6F
    expect_error("t: truncated at bit 24 (f)", reader.u, 1, "f")
    expect_error("t: truncated at bit 24 (g)", reader.flag, "g")
    expect_error("t: truncated at bit 24 (h)", reader.skip, 1, "h")


def test_exp_golomb_errors() -> None:
    expect_error("t: truncated at bit 0 (x)", BitReader(b"\x00", "t").ue, "x")
    expect_error("t: truncated at bit 0 (x)", BitReader(b"\x01", "t").ue, "x")  # 7 zeros, a 1, no suffix
    expect_error("t: Exp-Golomb code at bit 0 (x) has more than 31 leading zero bits", BitReader(bytes(5), "t").ue, "x")
    largest = BitWriter()
    largest.ue(2**32 - 2)
    assert BitReader(largest.raw(), "t").ue("x") == 2**32 - 2
    expect_error("t: x 5 exceeds 4", BitReader(b"\x30", "t").ue, "x", 4)  # 00110 = 5
    expect_error("t: x -2 is outside -1..1", BitReader(b"\x28", "t").se, "x", -1, 1)  # 00101 = -2


# -- real parameter sets from ffmpeg's encoders --------------------------------------------------


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make system-deps`")
    return path


@dataclass(frozen=True)
class Clip:
    """A few frames encoded by ffmpeg, described by the filter graph and the encoder options."""

    name: str
    size: str
    rate: str
    codec: tuple[str, ...]
    scale: str | None = None


class ClipMaker:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made: dict[str, Path] = {}

    def __call__(self, clip: Clip) -> Path:
        if clip.name not in self.made:
            path = self.directory / f"{clip.name}.mp4"
            filters = ["-vf", f"scale={clip.scale}"] if clip.scale else []
            subprocess.run(
                [
                    tool("ffmpeg"),
                    *("-hide_banner", "-loglevel", "error", "-y"),
                    *("-f", "lavfi", "-i", f"testsrc2=size={clip.size}:rate={clip.rate}"),
                    *filters,
                    *("-frames:v", "3"),
                    *clip.codec,
                    str(path),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            self.made[clip.name] = path
        return self.made[clip.name]


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> ClipMaker:
    return ClipMaker(tmp_path_factory.mktemp("codecs"))


def probe(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            tool("ffprobe"),
            *("-v", "error", "-select_streams", "v:0", "-of", "json"),
            *(
                "-show_entries",
                "stream=width,height,r_frame_rate,profile,level,pix_fmt,field_order,sample_aspect_ratio",
            ),
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    stream: dict[str, Any] = json.loads(result.stdout)["streams"][0]
    return stream


def extradata(path: Path) -> bytes:
    with av.open(str(path)) as container:
        data = container.streams.video[0].codec_context.extradata
    assert data, f"{path} has no decoder configuration"
    return bytes(data)


def mp4_box(path: Path, name: bytes) -> bytes:
    """The body of the first box called `name` (enough for the tiny files made here)."""
    data = path.read_bytes()
    at = data.index(name)
    return data[at + 4 : at - 4 + int.from_bytes(data[at - 4 : at], "big")]


def assert_same_ratio(ours: tuple[int, int] | None, ffprobe: str | None) -> None:
    if ours is None:
        assert ffprobe in (None, "0:1")
        return
    assert ffprobe is not None
    width, height = ffprobe.split(":")
    assert Fraction(*ours) == pytest.approx(Fraction(int(width), int(height)), rel=1e-3)


X264 = ("-c:v", "libx264")
# x264 codes custom quantisation matrices (--cqm) in the PPS, never in the SPS, so the SPS scaling
# lists are covered by the hand-built parameter sets below.
H264_CLIPS = [
    # (clip, profile_idc, chroma_format_idc, bit depth)
    (Clip("avc-baseline-320x240", "320x240", "30", (*X264, "-profile:v", "baseline")), 66, 1, 8),
    (Clip("avc-main-1280x720-ntsc", "1280x720", "30000/1001", (*X264, "-profile:v", "main")), 77, 1, 8),
    (Clip("avc-high-1920x1080", "1920x1080", "30", (*X264, "-profile:v", "high")), 100, 1, 8),
    (Clip("avc-high-642x362", "642x362", "25", X264), 100, 1, 8),
    (Clip("avc-444-641x361", "642x362", "25", (*X264, "-pix_fmt", "yuv444p"), "641:361"), 244, 3, 8),
    (Clip("avc-422-10bit-1280x720", "1280x720", "60", (*X264, "-pix_fmt", "yuv422p10le")), 122, 2, 10),
    (Clip("avc-gray-641x361", "642x362", "24", (*X264, "-pix_fmt", "gray"), "641:361,format=gray"), 100, 0, 8),
    (
        Clip(
            "avc-interlaced-720x484", "720x484", "30", (*X264, "-flags", "+ilme+ildct", "-x264-params", "interlaced=1")
        ),
        100,
        1,
        8,
    ),
]
H264_PROFILE_NAMES = {66: "Baseline", 77: "Main", 100: "High", 122: "High 4:2:2", 244: "High 4:4:4 Predictive"}


@pytest.mark.parametrize(
    ("clip", "profile_idc", "chroma_format_idc", "bit_depth"), H264_CLIPS, ids=lambda v: getattr(v, "name", "")
)
def test_h264_sps_from_x264_matches_ffprobe(
    clips: ClipMaker, clip: Clip, profile_idc: int, chroma_format_idc: int, bit_depth: int
) -> None:
    path = clips(clip)
    expected = probe(path)
    config = extradata(path)
    sps_nal = flv.parse_avc_config(config).sps[0]
    sps = parse_h264_sps(sps_nal)
    assert (sps.width, sps.height) == (expected["width"], expected["height"])
    assert sps.frame_rate == pytest.approx(float(Fraction(expected["r_frame_rate"])))
    assert sps.level_idc == expected["level"]
    assert sps.profile_idc == profile_idc
    assert expected["profile"].endswith(H264_PROFILE_NAMES[profile_idc])
    assert (sps.chroma_format_idc, sps.bit_depth_luma, sps.bit_depth_chroma) == (
        chroma_format_idc,
        bit_depth,
        bit_depth,
    )
    assert sps.frame_mbs_only == (expected["field_order"] == "progressive")
    assert_same_ratio(sps.sample_aspect_ratio, expected.get("sample_aspect_ratio"))
    assert video_dimensions("avc1", config) == (sps.width, sps.height, sps.frame_rate)
    # RFC 6381 3.3: the three bytes after the NAL header, as avcC repeats them.
    assert codecs_string("avc1", config) == sps.codecs == f"avc1.{sps_nal[1:4].hex()}"


def test_h264_1080p_is_cropped_from_1088(clips: ClipMaker) -> None:
    sps = parse_h264_sps(flv.parse_avc_config(extradata(clips(H264_CLIPS[2][0]))).sps[0])
    assert (sps.width, sps.height) == (1920, 1080)
    assert b"\x00\x00\x03" in flv.parse_avc_config(extradata(clips(H264_CLIPS[2][0]))).sps[0]


X265 = ("-c:v", "libx265", "-x265-params", "log-level=error")
HEVC_CLIPS = [
    (Clip("hevc-main-320x240", "320x240", "30", X265), 1, 1, 8),
    (Clip("hevc-main-642x362-ntsc", "642x362", "30000/1001", X265), 1, 1, 8),
    (Clip("hevc-main10-1920x1080", "1920x1080", "25", (*X265, "-pix_fmt", "yuv420p10le")), 2, 1, 10),
    (Clip("hevc-444-641x361", "642x362", "25", (*X265, "-pix_fmt", "yuv444p"), "641:361"), 4, 3, 8),
    (
        Clip(
            "hevc-422-default-lists-two-sub-layers",
            "642x362",
            "50",
            (
                "-c:v",
                "libx265",
                "-pix_fmt",
                "yuv422p",
                "-x265-params",
                "log-level=error:scaling-list=default:temporal-layers=1",
            ),
            "640:360",
        ),
        4,
        2,
        8,
    ),
]
HEVC_PROFILE_NAMES = {1: "Main", 2: "Main 10", 4: "Rext"}


@pytest.mark.parametrize(
    ("clip", "profile_idc", "chroma_format_idc", "bit_depth"), HEVC_CLIPS, ids=lambda v: getattr(v, "name", "")
)
def test_hevc_sps_from_x265_matches_ffprobe(
    clips: ClipMaker, clip: Clip, profile_idc: int, chroma_format_idc: int, bit_depth: int
) -> None:
    path = clips(clip)
    expected = probe(path)
    config = extradata(path)
    record = flv.parse_hevc_config(config)
    sps = parse_hevc_sps(next(units[0] for nal_type, units in record.arrays if nal_type == 33))
    assert (sps.width, sps.height) == (expected["width"], expected["height"])
    assert sps.frame_rate == pytest.approx(float(Fraction(expected["r_frame_rate"])))
    assert sps.general_level_idc == expected["level"] == record.general_level_idc
    assert sps.general_profile_idc == profile_idc == record.general_profile_idc
    assert expected["profile"] == HEVC_PROFILE_NAMES[profile_idc]
    assert sps.general_profile_compatibility_flags == record.general_profile_compatibility_flags
    assert sps.general_constraint_indicator_flags == record.general_constraint_indicator_flags
    assert (sps.chroma_format_idc, sps.bit_depth_luma, sps.bit_depth_chroma) == (
        chroma_format_idc,
        bit_depth,
        bit_depth,
    )
    assert video_dimensions("hvc1", config) == (sps.width, sps.height, sps.frame_rate)
    assert codecs_string("hvc1", config) == record.codecs
    assert codecs_string("hvc1", config).startswith(f"hvc1.{profile_idc}.")


AV1_CLIPS = [
    Clip("av1-aom-320x240", "320x240", "30", ("-c:v", "libaom-av1", "-cpu-used", "8")),
    Clip("av1-svt-10bit-642x362", "642x362", "25", ("-c:v", "libsvtav1", "-pix_fmt", "yuv420p10le")),
    Clip("av1-aom-444", "642x362", "25", ("-c:v", "libaom-av1", "-cpu-used", "8", "-pix_fmt", "yuv444p")),
]
AV1_PROFILES = {"Main": 0, "High": 1, "Professional": 2}


@pytest.mark.parametrize("clip", AV1_CLIPS, ids=lambda clip: clip.name)
def test_av1_config_from_encoders_matches_ffprobe(clips: ClipMaker, clip: Clip) -> None:
    path = clips(clip)
    expected = probe(path)
    config = extradata(path)
    assert config == mp4_box(path, b"av1C")
    record = parse_av1_config(config)
    assert video_dimensions("av01", config) == (expected["width"], expected["height"], None)
    profile = AV1_PROFILES[expected["profile"]]
    bit_depth = 10 if "10" in expected["pix_fmt"] else 8
    short = f"av01.{profile}.{expected['level']:02d}M.{bit_depth:02d}"
    if expected["pix_fmt"].startswith("yuv420"):
        assert codecs_string("av01", config) == short
    else:
        # 4:4:4 needs the optional fields; ffmpeg's encoders code no colour description (2 = unspecified).
        assert codecs_string("av01", config) == f"{short}.0.000.02.02.02.0"
    assert record.seq_profile == profile


VP9_CLIPS = [
    (Clip("vp9-320x240", "320x240", "30", ("-c:v", "libvpx-vp9")), "vp09.00.{level:02d}.08"),
    (
        Clip(
            "vp9-444-pq",
            "320x240",
            "30",
            (
                "-c:v",
                "libvpx-vp9",
                "-pix_fmt",
                "yuv444p",
                *("-color_primaries", "bt2020", "-color_trc", "smpte2084"),
                "-colorspace",
                "bt2020nc",
            ),
        ),
        "vp09.01.{level:02d}.08.03.09.16.09.00",
    ),
]


@pytest.mark.parametrize(("clip", "expected"), VP9_CLIPS, ids=lambda v: getattr(v, "name", ""))
def test_vp9_config_from_libvpx(clips: ClipMaker, clip: Clip, expected: str) -> None:
    box = mp4_box(clips(clip), b"vpcC")
    assert codecs_string("vp09", box) == expected.format(level=box[5])
    assert video_dimensions("vp09", box) == (0, 0, None)


def test_aac_and_mp3_codecs(tmp_path: Path) -> None:
    path = tmp_path / "tone.m4a"
    subprocess.run(
        [
            tool("ffmpeg"),
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine",
            "-t",
            "0.1",
            "-c:a",
            "aac",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    with av.open(str(path)) as container:
        config = bytes(container.streams.audio[0].codec_context.extradata or b"")
    assert codecs_string("mp4a", config) == "mp4a.40.2"
    assert codecs_string("mp3", b"") == "mp4a.40.34"


# -- every branch of the H.264 SPS syntax, built by hand -------------------------------------------


def test_h264_baseline_without_vui() -> None:
    sps = parse_h264_sps(h264_sps(profile_idc=66, constraint_flags=0xC0, level_idc=30, poc_type=2))
    assert sps == H264Sps(
        profile_idc=66,
        constraint_flags=0xC0,
        level_idc=30,
        seq_parameter_set_id=0,
        chroma_format_idc=1,
        separate_colour_plane=False,
        bit_depth_luma=8,
        bit_depth_chroma=8,
        frame_mbs_only=True,
        width=320,
        height=240,
        sample_aspect_ratio=None,
        frame_rate=None,
    )
    assert sps.codecs == "avc1.42c01e"


def test_h264_poc_type_1_cycle() -> None:
    sps = parse_h264_sps(h264_sps(poc_type=1, poc_cycle=(1, -1, 7, 300000), vui=Vui(timing=(1001, 48000))))
    assert sps.frame_rate == pytest.approx(23.976, abs=1e-3)


def test_h264_scaling_lists_for_4_4_4_has_twelve() -> None:
    # List 0 uses the default matrix (first delta brings nextScale to 0); 1 has 16 explicit deltas;
    # 6 (8x8) stops early when nextScale hits 0; 11 is the last 4:4:4-only list.
    lists: list[list[int] | None] = [
        [-8],
        [1] * 16,
        None,
        None,
        None,
        None,
        [5, -13],
        None,
        None,
        None,
        None,
        [0] * 63 + [-8],
    ]
    sps = parse_h264_sps(h264_sps(profile_idc=244, chroma_format_idc=3, scaling_lists=lists, vui=Vui(timing=(1, 50))))
    assert (sps.chroma_format_idc, sps.frame_rate) == (3, 25.0)


def test_h264_scaling_lists_for_4_2_0_has_eight() -> None:
    lists: list[list[int] | None] = [None, [2] * 16, None, None, None, None, None, [-3] * 64]
    sps = parse_h264_sps(h264_sps(scaling_lists=lists, vui=Vui(timing=(1, 120))))
    assert sps.frame_rate == 60.0


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        # (SubWidthC, SubHeightC) x (2 - frame_mbs_only_flag) crop units, 7.4.2.1.1.
        ({"crop": (1, 2, 3, 4)}, (320 - 2 * 3, 240 - 2 * 7)),
        ({"chroma_format_idc": 2, "crop": (1, 2, 3, 4)}, (320 - 2 * 3, 240 - 7)),
        ({"chroma_format_idc": 3, "crop": (1, 2, 3, 4)}, (320 - 3, 240 - 7)),
        ({"chroma_format_idc": 3, "separate_colour_plane": True, "crop": (1, 2, 3, 4)}, (320 - 3, 240 - 7)),
        ({"chroma_format_idc": 0, "crop": (1, 2, 3, 4)}, (320 - 3, 240 - 7)),
        ({"frame_mbs_only": False, "height_in_map_units": 8, "crop": (1, 2, 1, 1)}, (320 - 2 * 3, 256 - 4 * 2)),
        (
            {"frame_mbs_only": False, "chroma_format_idc": 0, "height_in_map_units": 8, "crop": (0, 0, 1, 2)},
            (320, 256 - 2 * 3),
        ),
        ({"frame_mbs_only": False, "height_in_map_units": 9}, (320, 288)),
    ],
)
def test_h264_cropping_units(fields: dict[str, Any], size: tuple[int, int]) -> None:
    sps = parse_h264_sps(h264_sps(**fields))
    assert (sps.width, sps.height) == size
    assert sps.separate_colour_plane == fields.get("separate_colour_plane", False)


@pytest.mark.parametrize(
    ("vui", "sar", "rate"),
    [
        (Vui(aspect_ratio_idc=255, sar=(64, 45), overscan=True, video_signal=True, colour=(1, 1, 1)), (64, 45), None),
        (Vui(aspect_ratio_idc=255, sar=(0, 0)), None, None),
        (Vui(aspect_ratio_idc=0, video_signal=True), None, None),
        (Vui(aspect_ratio_idc=14, chroma_location=(1, 5)), (4, 3), None),
        (Vui(aspect_ratio_idc=17, overscan=False), None, None),
        (Vui(timing=(0, 60)), None, None),  # "shall be greater than 0": zero means unknown
        (Vui(timing=(1, 0)), None, None),
        (Vui(timing=(1, 60)), None, 30.0),
    ],
)
def test_h264_vui(vui: Vui, sar: tuple[int, int] | None, rate: float | None) -> None:
    sps = parse_h264_sps(h264_sps(vui=vui))
    assert (sps.sample_aspect_ratio, sps.frame_rate) == (sar, rate)


def test_h264_emulation_prevention_is_removed_before_parsing() -> None:
    nal = h264_sps(profile_idc=66, level_idc=0, poc_type=2, vui=Vui(timing=(1, 2)))
    assert b"\x00\x00\x03" in nal
    assert parse_h264_sps(nal).frame_rate == 1.0


def test_h264_trailing_data_is_ignored() -> None:
    nal = h264_sps(vui=Vui(timing=(1, 60)))
    assert parse_h264_sps(nal + b"\x00\x00\x00\x01\x68\xff") == parse_h264_sps(nal)


@pytest.mark.parametrize(
    ("nal", "message"),
    [
        (b"", "H.264 SPS: empty NAL unit"),
        (b"\xe7\x64", "H.264 SPS: forbidden_zero_bit is set"),
        (b"\x68\xeb\xe3\xcb", "H.264 SPS: NAL unit type 8 is not 7"),
        (b"\x67\x64\x00", "H.264 SPS: truncated at bit 24 (level_idc)"),
        (
            b"\x67\x64\x00\x1f\x00\x00\x00\x00\x00",
            "H.264 SPS: Exp-Golomb code at bit 32 (seq_parameter_set_id) has more than 31 leading zero bits",
        ),
        (h264_sps(sps_id=32), "H.264 SPS: seq_parameter_set_id 32 exceeds 31"),
        (h264_sps(chroma_format_idc=4), "H.264 SPS: chroma_format_idc 4 exceeds 3"),
        (h264_sps(bit_depth_luma=15), "H.264 SPS: bit_depth_luma_minus8 7 exceeds 6"),
        (h264_sps(scaling_lists=[[200]]), "H.264 SPS: delta_scale[0] 200 is outside -128..127"),
        (h264_sps(poc_type=3), "H.264 SPS: pic_order_cnt_type 3 exceeds 2"),
        (
            h264_sps(poc_type=1, poc_cycle=(0,) * 256),
            "H.264 SPS: num_ref_frames_in_pic_order_cnt_cycle 256 exceeds 255",
        ),
        (h264_sps(max_num_ref_frames=17), "H.264 SPS: max_num_ref_frames 17 exceeds 16"),
        (
            h264_sps(crop=(0, 0, 0, 120)),
            "H.264 SPS: frame cropping (left 0, right 0, top 0, bottom 120) leaves nothing of the 320x240 picture",
        ),
        (
            h264_sps(chroma_format_idc=3, crop=(320, 0, 0, 0)),
            "H.264 SPS: frame cropping (left 320, right 0, top 0, bottom 0) leaves nothing of the 320x240 picture",
        ),
    ],
)
def test_h264_errors(nal: bytes, message: str) -> None:
    expect_error(message, parse_h264_sps, nal)


# -- every branch of the H.265 SPS syntax, built by hand -------------------------------------------


def test_hevc_minimal() -> None:
    sps = parse_hevc_sps(hevc_sps())
    assert sps == HevcSps(
        general_profile_space=0,
        general_tier_flag=0,
        general_profile_idc=1,
        general_profile_compatibility_flags=0x60000000,
        general_constraint_indicator_flags=bytes.fromhex("900000000000"),
        general_level_idc=93,
        seq_parameter_set_id=0,
        chroma_format_idc=1,
        separate_colour_plane=False,
        bit_depth_luma=8,
        bit_depth_chroma=8,
        width=1920,
        height=1080,
        sample_aspect_ratio=None,
        frame_rate=None,
    )


def test_hevc_every_optional_structure_before_the_timing_info() -> None:
    nal = hevc_sps(
        sub_layers=(SubLayer(True, True), SubLayer(False, True), SubLayer(True, False)),
        tier=1,
        level_idc=153,
        ordering_info_for_all=True,
        scaling_list_data=True,
        pcm=True,
        short_term_sets=(
            ("explicit", [(0, True), (1, True)], [(0, False)]),
            ("inter", True, 0, [(True, True), (False, True), (False, False), (True, True)]),
            ("inter", False, 1, [(False, False), (True, True), (False, True), (True, True)]),
            ("explicit", [], []),
        ),
        long_term_lsbs=(3, 200),
        vui=Vui(
            aspect_ratio_idc=255,
            sar=(4, 3),
            overscan=False,
            video_signal=True,
            colour=(9, 16, 9),
            chroma_location=(2, 2),
            default_display_window=(1, 1, 1, 1),
            timing=(1001, 60000),
        ),
    )
    sps = parse_hevc_sps(nal)
    assert (sps.general_tier_flag, sps.general_level_idc) == (1, 153)
    assert sps.sample_aspect_ratio == (4, 3)
    assert sps.frame_rate == pytest.approx(59.94, abs=1e-2)


def test_hevc_ordering_info_for_the_highest_sub_layer_only() -> None:
    nal = hevc_sps(sub_layers=(SubLayer(False, False),), ordering_info_for_all=False, vui=Vui(timing=(1, 30)))
    assert parse_hevc_sps(nal).frame_rate == 30.0


def test_hevc_scaling_list_enabled_without_data() -> None:
    assert parse_hevc_sps(hevc_sps(scaling_list_data=False, vui=Vui(timing=(1, 25)))).frame_rate == 25.0


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        ({"conformance_window": (1, 2, 3, 4)}, (1920 - 2 * 3, 1088 - 2 * 7)),
        ({"chroma_format_idc": 2, "conformance_window": (1, 2, 3, 4)}, (1920 - 2 * 3, 1088 - 7)),
        ({"chroma_format_idc": 3, "conformance_window": (1, 2, 3, 4)}, (1920 - 3, 1088 - 7)),
        (
            {"chroma_format_idc": 3, "separate_colour_plane": True, "conformance_window": (1, 2, 3, 4)},
            (1920 - 3, 1088 - 7),
        ),
        ({"chroma_format_idc": 0, "conformance_window": (1, 2, 3, 4)}, (1920 - 3, 1088 - 7)),
        ({"conformance_window": None, "width": 641, "height": 361}, (641, 361)),
    ],
)
def test_hevc_conformance_window_units(fields: dict[str, Any], size: tuple[int, int]) -> None:
    sps = parse_hevc_sps(hevc_sps(**fields))
    assert (sps.width, sps.height) == size


@pytest.mark.parametrize(
    ("nal", "message"),
    [
        (b"\x42", "HEVC SPS: NAL unit of 1 bytes is shorter than its 2-byte header"),
        (b"\xc2\x01", "HEVC SPS: forbidden_zero_bit is set"),
        (b"\x44\x01\xc1\x72", "HEVC SPS: NAL unit type 34 is not 33"),
        (b"\x42\x09\x01", "HEVC SPS: nuh_layer_id 1 is not 0"),
        (b"\x42\x01\x01", "HEVC SPS: truncated at bit 24 (general_profile_space)"),
        (b"\x42\x01\x0f", "HEVC SPS: sps_max_sub_layers_minus1 7 exceeds 6"),
        (hevc_sps(chroma_format_idc=4), "HEVC SPS: chroma_format_idc 4 exceeds 3"),
        (hevc_sps(width=0), "HEVC SPS: picture size 0x1088 is empty"),
        (hevc_sps(bit_depth=17), "HEVC SPS: bit_depth_luma_minus8 9 exceeds 8"),
        (
            hevc_sps(conformance_window=(0, 960, 0, 0)),
            "HEVC SPS: conformance window (left 0, right 960, top 0, bottom 0) leaves nothing of the 1920x1088 picture",
        ),
        (
            hevc_sps(short_term_sets=(("explicit", [(0, True)] * 17, []),)),
            "HEVC SPS: num_negative_pics[0] 17 exceeds 16",
        ),
        (hevc_sps(short_term_sets=(("explicit", [], []),) * 65), "HEVC SPS: num_short_term_ref_pic_sets 65 exceeds 64"),
        (hevc_sps(long_term_lsbs=(0,) * 33), "HEVC SPS: num_long_term_ref_pics_sps 33 exceeds 32"),
    ],
)
def test_hevc_errors(nal: bytes, message: str) -> None:
    expect_error(message, parse_hevc_sps, nal)


def test_hevc_frame_rate_falls_back_to_hvcc_average_rate() -> None:
    sps = hevc_sps()
    record = flv.parse_hevc_config(
        bytes.fromhex("0101600000009000000000005df000fcfdf8f81e000f01")
        + b"\xa1\x00\x01"
        + len(sps).to_bytes(2, "big")
        + sps
    )
    assert record.avg_frame_rate == 0x1E00  # 30 frames per second, in frames per 256 s
    assert video_dimensions("hvc1", bytes(record)) == (1920, 1080, 30.0)


def test_configuration_records_without_an_sps() -> None:
    expect_error("AVC config: record holds no SPS", video_dimensions, "avc1", avcc())
    expect_error(
        "HEVC config: record holds no SPS",
        video_dimensions,
        "hvc1",
        bytes.fromhex("0101600000009000000000005df000fcfdf8f800000f00"),
    )


def test_avc_record_uses_its_first_sps() -> None:
    first = h264_sps(width_in_mbs=80, height_in_map_units=45, vui=Vui(timing=(1, 50)))
    second = h264_sps(sps_id=1)
    assert video_dimensions("avc1", avcc(first, second)) == (1280, 720, 25.0)
    assert codecs_string("avc1", avcc(first, second)) == "avc1.64001f"


# -- AV1 -----------------------------------------------------------------------------------------


def test_av1_config_fields() -> None:
    record = parse_av1_config(
        av1c(profile=2, level=13, tier=1, bit_depth=12, monochrome=True, position=2) + b"\x12\x00"
    )
    assert (record.seq_profile, record.seq_level_idx_0, record.seq_tier_0, record.bit_depth) == (2, 13, 1, 12)
    assert (record.monochrome, record.chroma_sample_position, record.config_obus) == (True, 2, b"\x12\x00")
    assert record.initial_presentation_delay_minus_one is None
    assert parse_av1_config(b"\x81\x00\x0c\x13").initial_presentation_delay_minus_one == 3


def test_av1_sequence_header_of_a_typical_stream() -> None:
    header = parse_av1_sequence_header(av1_sequence_header(colour=(1, 1, 1), color_range=True))
    assert (header.max_frame_width, header.max_frame_height, header.bit_depth) == (1920, 1080, 8)
    assert (header.seq_level_idx_0, header.seq_tier_0, header.frame_rate) == (8, 0, None)
    assert (header.color_primaries, header.transfer_characteristics, header.matrix_coefficients) == (1, 1, 1)
    assert (header.subsampling_x, header.subsampling_y, header.full_range) == (1, 1, True)


def test_av1_timing_decoder_model_and_operating_points() -> None:
    points = (
        OperatingPoint(12, tier=1, decoder_model=True, initial_display_delay=3),
        OperatingPoint(5, decoder_model=False),
        OperatingPoint(9, decoder_model=True, initial_display_delay=None),
    )
    payload = av1_sequence_header(
        timing=(1001, 60000, 1), decoder_model=True, operating_points=points, frame_id_numbers=True
    )
    header = parse_av1_sequence_header(payload)
    assert header.frame_rate == pytest.approx(29.97, abs=1e-2)
    assert (header.seq_level_idx_0, header.seq_tier_0) == (12, 1)
    assert (header.max_frame_width, header.max_frame_height) == (1920, 1080)


def test_av1_timing_without_equal_picture_interval_has_no_frame_rate() -> None:
    header = parse_av1_sequence_header(
        av1_sequence_header(timing=(1, 90000, None), order_hint=False, screen_content=(False, 1, True, 0))
    )
    assert header.frame_rate is None
    assert header.max_frame_width == 1920


def test_av1_uvlc_with_32_leading_zeros() -> None:
    # 4.10.3: 32 or more leading zeros decode as 2^32 - 1 without value bits.
    payload = av1_sequence_header(timing=(1, 30, 0), ticks_leading_zeros=40, width=640, height=480)
    header = parse_av1_sequence_header(payload)
    assert header.frame_rate == pytest.approx(30 / 2**32)
    assert (header.max_frame_width, header.max_frame_height) == (640, 480)


def test_av1_reduced_still_picture_header() -> None:
    header = parse_av1_sequence_header(
        av1_sequence_header(reduced_still_picture_header=True, operating_points=(OperatingPoint(3),))
    )
    assert (header.seq_level_idx_0, header.max_frame_width, header.frame_rate) == (3, 1920, None)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"profile": 0, "mono_chrome": True, "color_range": True}, (8, True, 1, 1, 0, True)),
        ({"profile": 0, "colour": (1, 13, 0)}, (8, False, 0, 0, 0, True)),
        ({"profile": 0, "chroma_sample_position": 2}, (8, False, 1, 1, 2, False)),
        ({"profile": 1, "high_bitdepth": True}, (10, False, 0, 0, 0, False)),
        ({"profile": 2, "high_bitdepth": False}, (8, False, 1, 0, 0, False)),
        ({"profile": 2, "high_bitdepth": True, "twelve_bit": False}, (10, False, 1, 0, 0, False)),
        (
            {
                "profile": 2,
                "high_bitdepth": True,
                "twelve_bit": True,
                "subsampling": (1, 1),
                "chroma_sample_position": 1,
            },
            (12, False, 1, 1, 1, False),
        ),
        ({"profile": 2, "high_bitdepth": True, "twelve_bit": True, "subsampling": (1, 0)}, (12, False, 1, 0, 0, False)),
        ({"profile": 2, "high_bitdepth": True, "twelve_bit": True, "subsampling": (0, 0)}, (12, False, 0, 0, 0, False)),
    ],
)
def test_av1_color_config(fields: dict[str, Any], expected: tuple[int, bool, int, int, int, bool]) -> None:
    header = parse_av1_sequence_header(av1_sequence_header(**fields))
    assert (
        header.bit_depth,
        header.mono_chrome,
        header.subsampling_x,
        header.subsampling_y,
        header.chroma_sample_position,
        header.full_range,
    ) == expected
    assert header.max_frame_height == 1080


def test_av1_obus_are_walked_to_the_sequence_header() -> None:
    header = av1_sequence_header(width=1280, height=720)
    temporal_delimiter = obu(2, b"")
    metadata = obu(5, b"\x01\x02\x03", extension=True)
    assert find_av1_sequence_header(temporal_delimiter + metadata + obu(1, header)) == header
    assert find_av1_sequence_header(temporal_delimiter + obu(1, header, size_field=False)) == header
    assert find_av1_sequence_header(metadata) is None
    assert find_av1_sequence_header(b"") is None
    assert video_dimensions("av01", av1c(temporal_delimiter + obu(1, header))) == (1280, 720, None)
    assert video_dimensions("av01", av1c()) == (0, 0, None)
    # A 200-byte OBU needs a two-byte leb128 size.
    assert find_av1_sequence_header(obu(15, bytes(200)) + obu(1, header)) == header


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (b"\x81\x00\x0c", "AV1 config: record of 3 bytes is shorter than its 4-byte header"),
        (b"\x01\x00\x0c\x00", "AV1 config: marker bit is not set"),
        (b"\x82\x00\x0c\x00", "AV1 config: version 2 is not 1"),
        (av1c(b"\x8a\x00"), "AV1 config: obu_forbidden_bit is set in the OBU at byte 0"),
        (av1c(b"\x12\x00\x0e"), "AV1 config: OBU header at byte 2 overruns the data"),
        (av1c(b"\x0a"), "AV1 config: OBU size field at byte 1 overruns the data"),
        (av1c(b"\x0a\x80"), "AV1 config: OBU size field at byte 1 overruns the data"),
        (av1c(b"\x0a" + b"\xff" * 8), "AV1 config: OBU size field at byte 1 is longer than 8 bytes"),
        (av1c(b"\x0a\x80\x80\x80\x80\x10"), "AV1 config: OBU size 4294967296 at byte 1 exceeds 2^32 - 1"),
        (av1c(b"\x0a\x05\x00"), "AV1 config: OBU of 5 bytes at byte 0 overruns the data (1 bytes left)"),
        (av1c(obu(1, b"\xe0")), "AV1 sequence header: seq_profile 7 exceeds 2"),
        (av1c(obu(1, b"")), "AV1 sequence header: truncated at bit 0 (seq_profile)"),
        (av1c(obu(1, b"\x00")), "AV1 sequence header: truncated at bit 7 (operating_points_cnt_minus_1)"),
    ],
)
def test_av1_errors(record: bytes, message: str) -> None:
    expect_error(message, video_dimensions, "av01", record)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (av1c(), "av01.0.08M.08"),
        (av1c(level=13, tier=1, bit_depth=10), "av01.0.13H.10"),
        (av1c(obu(1, av1_sequence_header(colour=(1, 1, 1)))), "av01.0.08M.08"),
        (av1c(obu(1, av1_sequence_header(colour=(2, 2, 2)))), "av01.0.08M.08"),
        # BT.2020 PQ (HDR10) and full range need the optional fields.
        (
            av1c(obu(1, av1_sequence_header(profile=0, high_bitdepth=True, colour=(9, 16, 9))), bit_depth=10),
            "av01.0.08M.10.0.110.09.16.09.0",
        ),
        (av1c(obu(1, av1_sequence_header(colour=(1, 1, 1), color_range=True))), "av01.0.08M.08.0.110.01.01.01.1"),
        (av1c(position=2, subsampling=(1, 1), monochrome=True), "av01.0.08M.08.1.112.02.02.02.0"),
        (av1c(profile=1, subsampling=(0, 0), position=2), "av01.1.08M.08.0.000.02.02.02.0"),
        (av1c(profile=2, bit_depth=12, subsampling=(1, 0)), "av01.2.08M.12.0.100.02.02.02.0"),
    ],
)
def test_av1_codecs_string(record: bytes, expected: str) -> None:
    assert codecs_string("av01", record) == expected


# -- VP9 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (vpcc(), "vp09.00.31.08"),
        (vpcc(box_header=False), "vp09.00.31.08"),
        (vpcc(chroma=0, colour=(2, 2, 2)), "vp09.00.31.08"),
        (vpcc(profile=2, level=41, bit_depth=10, colour=(9, 16, 9)), "vp09.02.41.10.01.09.16.09.00"),
        (vpcc(profile=1, level=10, chroma=3), "vp09.01.10.08.03.01.01.01.00"),
        (vpcc(full_range=True), "vp09.00.31.08.01.01.01.01.01"),
    ],
)
def test_vp9_codecs_string(record: bytes, expected: str) -> None:
    assert codecs_string("vp09", record) == expected


def test_vp9_config_fields() -> None:
    record = parse_vp9_config(vpcc(profile=3, level=62, bit_depth=12, chroma=2, init=b"", colour=(9, 18, 9)))
    assert (record.profile, record.level, record.bit_depth, record.chroma_subsampling) == (3, 62, 12, 2)
    assert (record.colour_primaries, record.transfer_characteristics, record.matrix_coefficients) == (9, 18, 9)
    assert parse_vp9_config(vpcc(init=b"\x01\x02")).codec_initialization_data == b"\x01\x02"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (b"\x01\x00\x00\x00\x00\x1f\x82", "VP9 config: record of 3 bytes is shorter than its 8-byte body"),
        (vpcc(bit_depth=9), "VP9 config: bitDepth 9 is not 8, 10 or 12"),
        (vpcc(init=b"\x01")[:-1], "VP9 config: codecInitializationData of 1 bytes overruns the record (0 bytes left)"),
    ],
)
def test_vp9_errors(record: bytes, message: str) -> None:
    expect_error(message, codecs_string, "vp09", record)


def test_unknown_codecs_are_the_callers_mistake() -> None:
    with pytest.raises(ValueError, match="no RFC 6381 codecs value for codec 'speex'"):
        codecs_string("speex", b"")
    with pytest.raises(ValueError, match="no video dimensions for codec 'mp4a'"):
        video_dimensions("mp4a", b"\x12\x10")


# -- truncation and fuzzing: ProtocolError and nothing else ----------------------------------------


def real_parameter_sets(clips: ClipMaker) -> Iterator[tuple[Callable[[bytes], object], bytes]]:
    for clip, *_ in H264_CLIPS:
        yield parse_h264_sps, flv.parse_avc_config(extradata(clips(clip))).sps[0]
    for clip, *_ in HEVC_CLIPS:
        record = flv.parse_hevc_config(extradata(clips(clip)))
        yield parse_hevc_sps, next(units[0] for nal_type, units in record.arrays if nal_type == 33)
    for clip in AV1_CLIPS:
        header = find_av1_sequence_header(extradata(clips(clip))[4:])
        assert header is not None
        yield parse_av1_sequence_header, header


HAND_BUILT: list[tuple[Callable[[bytes], object], bytes]] = [
    (
        parse_h264_sps,
        h264_sps(
            profile_idc=244,
            chroma_format_idc=3,
            scaling_lists=[[1] * 16] * 6 + [[1] * 64] * 6,
            poc_type=1,
            poc_cycle=(1, 2),
        ),
    ),
    (
        parse_h264_sps,
        h264_sps(frame_mbs_only=False, crop=(1, 1, 1, 1), vui=Vui(255, (4, 3), True, (1, 1, 1), True, (0, 0), (1, 60))),
    ),
    (
        parse_hevc_sps,
        hevc_sps(
            sub_layers=(SubLayer(True, True),),
            scaling_list_data=True,
            pcm=True,
            short_term_sets=(
                ("explicit", [(0, True)], [(1, False)]),
                ("inter", False, 0, [(True, True), (False, True), (False, False)]),
            ),
            long_term_lsbs=(7,),
            vui=Vui(255, (4, 3), True, (1, 1, 1), True, (0, 0), (1, 30), (2, 2, 2, 2)),
        ),
    ),
    (
        parse_av1_sequence_header,
        av1_sequence_header(timing=(1, 30, 0), decoder_model=True, operating_points=(OperatingPoint(9, 1, True, 2),)),
    ),
    (parse_vp9_config, vpcc(init=b"\x00\x01")),
]


def test_every_truncation_is_a_protocol_error_or_the_same_result(clips: ClipMaker) -> None:
    """A prefix holds the same bits as the whole input up to its end: the parser either reads only
    bits inside it (same result) or runs past its end (ProtocolError)."""
    for parse, data in [*real_parameter_sets(clips), *HAND_BUILT]:
        whole = parse(data)
        for end in range(len(data)):
            try:
                result = parse(data[:end])
            except ProtocolError:
                continue
            assert result == whole, (data.hex(), end)


@pytest.fixture(scope="module")
def all_parameter_sets(clips: ClipMaker) -> list[tuple[Callable[[bytes], object], bytes]]:
    return [*real_parameter_sets(clips), *HAND_BUILT]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_corrupted_parameter_sets_raise_protocol_error_only(
    all_parameter_sets: list[tuple[Callable[[bytes], object], bytes]], data: st.DataObject
) -> None:
    parse, original = data.draw(st.sampled_from(all_parameter_sets))
    corrupted = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(corrupted) - 1))
        corrupted[position] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(corrupted)))
    with contextlib.suppress(ProtocolError):
        parse(bytes(corrupted[:cut]))


@settings(max_examples=300, deadline=None)
@given(
    header=st.sampled_from([b"\x67", b"\x42\x01", b"\x81\x00\x0c\x00", b"\x01\x00\x00\x00", b""]),
    body=st.binary(max_size=64),
)
def test_random_bytes_raise_protocol_error_only(header: bytes, body: bytes) -> None:
    for call in (
        parse_h264_sps,
        parse_hevc_sps,
        parse_av1_sequence_header,
        lambda data: video_dimensions("av01", data),
        lambda data: codecs_string("av01", data),
        lambda data: codecs_string("vp09", data),
    ):
        with contextlib.suppress(ProtocolError):
            call(header + body)
