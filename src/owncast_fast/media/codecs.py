"""Codec parameters: H.264/H.265 sequence parameter sets, AV1/VP9 configuration records, RFC 6381 strings.

Runs once per decoder configuration (per publish, or when the encoder changes settings), so it is
plain Python. Every malformed input raises `owncast_fast.errors.ProtocolError`, naming the
structure, the bit where it broke and the syntax element being read. Bit offsets count from the
first bit of the NAL unit header *after* emulation-prevention bytes are removed (the RBSP the
syntax tables describe), or from the first bit of the OBU payload for AV1.

References: ITU-T H.264 (08/2021) 7.3.2.1.1 and Annex E.1.1; ITU-T H.265 (09/2023) 7.3.2.2.1,
7.3.3, 7.3.4, 7.3.7 and Annex E.2.1; AV1 bitstream 5.5 and the AV1 ISOBMFF binding 2.3 (av1C)
and "Codecs Parameter String"; the VP9 ISOBMFF binding (vpcC) and its codecs parameter string;
RFC 6381 3.3 (avc1) and ISO/IEC 14496-15 Annex E (hvc1).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from owncast_fast._native import flv
from owncast_fast.errors import ProtocolError

# -- bit reading ---------------------------------------------------------------------------------


def unescape_rbsp(nal: bytes) -> bytes:
    """Removes emulation_prevention_three_byte from a NAL unit (H.264 7.3.1 / H.265 7.3.1.1).

    "emulation_prevention_three_byte is a byte equal to 0x03. When an emulation_prevention_three_byte
    is present in the NAL unit, it shall be discarded by the decoding process." The syntax tests
    next_bits(24) == 0x000003 left to right and resumes after the 0x03, which is exactly a
    non-overlapping left-to-right replacement of 00 00 03 by 00 00.
    """
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class BitReader:
    """Most-significant-bit-first reader with the Exp-Golomb codes of H.264/H.265 9.1 / 9.2.

    `context` prefixes every error ("H.264 SPS"); each read names its syntax element so that a
    truncated or out-of-range input is reported as "<context>: truncated at bit N (element)".
    """

    __slots__ = ("_context", "_data", "_pos", "_size")

    def __init__(self, data: bytes, context: str, position: int = 0) -> None:
        self._data = data
        self._size = len(data) * 8
        self._pos = position
        self._context = context

    @property
    def position(self) -> int:
        """The next bit to read, counted from the first bit of `data`."""
        return self._pos

    def error(self, message: str) -> ProtocolError:
        return ProtocolError(f"{self._context}: {message}")

    def u(self, bits: int, field: str) -> int:
        """u(n) / f(n): an unsigned integer of `bits` bits."""
        pos = self._pos
        end = pos + bits
        if end > self._size:
            raise self.error(f"truncated at bit {pos} ({field})")
        first = pos >> 3
        last = (end + 7) >> 3
        chunk = int.from_bytes(self._data[first:last], "big")
        self._pos = end
        return (chunk >> ((last << 3) - end)) & ((1 << bits) - 1)

    def flag(self, field: str) -> bool:
        pos = self._pos
        if pos >= self._size:
            raise self.error(f"truncated at bit {pos} ({field})")
        self._pos = pos + 1
        return bool((self._data[pos >> 3] >> (7 - (pos & 7))) & 1)

    def skip(self, bits: int, field: str) -> None:
        if self._pos + bits > self._size:
            raise self.error(f"truncated at bit {self._pos} ({field})")
        self._pos += bits

    def ue(self, field: str, maximum: int = 0xFFFFFFFE) -> int:
        """ue(v), 9.1: 2^leadingZeroBits - 1 + read_bits(leadingZeroBits), at most 32 bits of value."""
        start = self._pos
        zeros = 0
        while True:
            if self._pos >= self._size:
                raise self.error(f"truncated at bit {start} ({field})")
            if self.flag(field):
                break
            zeros += 1
            if zeros > 31:
                raise self.error(f"Exp-Golomb code at bit {start} ({field}) has more than 31 leading zero bits")
        if zeros:
            if self._pos + zeros > self._size:
                raise self.error(f"truncated at bit {start} ({field})")
            value = (1 << zeros) - 1 + self.u(zeros, field)
        else:
            value = 0
        if value > maximum:
            raise self.error(f"{field} {value} exceeds {maximum}")
        return value

    def se(self, field: str, minimum: int = -(2**31) + 1, maximum: int = 2**31 - 1) -> int:
        """se(v), 9.1.1: codeNum k maps to (-1)^(k+1) * Ceil(k / 2)."""
        code = self.ue(field)
        value = (code + 1) >> 1 if code & 1 else -(code >> 1)
        if not minimum <= value <= maximum:
            raise self.error(f"{field} {value} is outside {minimum}..{maximum}")
        return value


# Table E-1 (identical in H.264 and H.265): aspect_ratio_idc 1..16; 255 is Extended_SAR.
_SAMPLE_ASPECT_RATIOS = (
    None,
    (1, 1),
    (12, 11),
    (10, 11),
    (16, 11),
    (40, 33),
    (24, 11),
    (20, 11),
    (32, 11),
    (80, 33),
    (18, 11),
    (15, 11),
    (64, 33),
    (160, 99),
    (4, 3),
    (3, 2),
    (2, 1),
)
_EXTENDED_SAR = 255


def _sample_aspect_ratio(reader: BitReader) -> tuple[int, int] | None:
    """aspect_ratio_idc (+ sar_width/sar_height for Extended_SAR); None when unspecified or reserved."""
    idc = reader.u(8, "aspect_ratio_idc")
    if idc == _EXTENDED_SAR:
        width = reader.u(16, "sar_width")
        height = reader.u(16, "sar_height")
        return (width, height) if width and height else None
    return _SAMPLE_ASPECT_RATIOS[idc] if idc < len(_SAMPLE_ASPECT_RATIOS) else None


def _video_signal_and_chroma_location(reader: BitReader) -> None:
    """The VUI fields between overscan and timing that both codecs share (E.1.1 / E.2.1)."""
    if reader.flag("video_signal_type_present_flag"):
        reader.skip(3, "video_format")
        reader.skip(1, "video_full_range_flag")
        if reader.flag("colour_description_present_flag"):
            reader.skip(24, "colour_primaries")
    if reader.flag("chroma_loc_info_present_flag"):
        reader.ue("chroma_sample_loc_type_top_field", 5)
        reader.ue("chroma_sample_loc_type_bottom_field", 5)


# -- H.264 ----------------------------------------------------------------------------------------

_H264_NAL_SPS = 7
# 7.3.2.1.1: the profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices.
_H264_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
# Table 6-1: (SubWidthC, SubHeightC) per chroma_format_idc 1..3.
_CHROMA_SUBSAMPLING = {1: (2, 2), 2: (2, 1), 3: (1, 1)}
# A.3.1 / A.3.2: MaxDpbFrames never exceeds 16, the bound on max_num_ref_frames.
_H264_MAX_REF_FRAMES = 16


@dataclass(frozen=True, slots=True)
class H264Sps:
    """The fields of an H.264 sequence parameter set that the server uses.

    `constraint_flags` is the byte after profile_idc: constraint_set0_flag in bit 7 down to
    constraint_set5_flag in bit 2, then reserved_zero_2bits. `width` and `height` are the cropped
    output size (7.4.2.1.1). `frame_rate` is time_scale / (2 * num_units_in_tick) from the VUI
    timing information (E.2.1: a frame lasts two clock ticks), None when the SPS has none.
    `sample_aspect_ratio` is None when unspecified.
    """

    profile_idc: int
    constraint_flags: int
    level_idc: int
    seq_parameter_set_id: int
    chroma_format_idc: int
    separate_colour_plane: bool
    bit_depth_luma: int
    bit_depth_chroma: int
    frame_mbs_only: bool
    width: int
    height: int
    sample_aspect_ratio: tuple[int, int] | None
    frame_rate: float | None

    @property
    def codecs(self) -> str:
        """RFC 6381 3.3: avc1.PPCCLL from profile_idc, the constraint byte and level_idc."""
        return f"avc1.{self.profile_idc:02x}{self.constraint_flags:02x}{self.level_idc:02x}"


def _h264_scaling_list(reader: BitReader, size: int, index: int) -> None:
    """scaling_list(), 7.3.2.1.1.1: only the syntax is consumed; the values are not needed."""
    last_scale = 8
    next_scale = 8
    for _ in range(size):
        if next_scale != 0:
            delta = reader.se(f"delta_scale[{index}]", -128, 127)
            next_scale = (last_scale + delta + 256) % 256
        if next_scale != 0:
            last_scale = next_scale


def parse_h264_sps(nal: bytes) -> H264Sps:
    """Parses an H.264 SPS NAL unit (header byte included, emulation prevention still in place)."""
    if not nal:
        raise ProtocolError("H.264 SPS: empty NAL unit")
    if nal[0] & 0x80:
        raise ProtocolError("H.264 SPS: forbidden_zero_bit is set")
    nal_type = nal[0] & 0x1F
    if nal_type != _H264_NAL_SPS:
        raise ProtocolError(f"H.264 SPS: NAL unit type {nal_type} is not 7")
    reader = BitReader(unescape_rbsp(nal), "H.264 SPS", 8)
    profile_idc = reader.u(8, "profile_idc")
    constraint_flags = reader.u(8, "constraint_set_flags")
    level_idc = reader.u(8, "level_idc")
    sps_id = reader.ue("seq_parameter_set_id", 31)
    chroma_format_idc = 1
    separate_colour_plane = False
    bit_depth_luma = bit_depth_chroma = 8
    if profile_idc in _H264_HIGH_PROFILES:
        chroma_format_idc = reader.ue("chroma_format_idc", 3)
        if chroma_format_idc == 3:
            separate_colour_plane = reader.flag("separate_colour_plane_flag")
        bit_depth_luma = 8 + reader.ue("bit_depth_luma_minus8", 6)
        bit_depth_chroma = 8 + reader.ue("bit_depth_chroma_minus8", 6)
        reader.skip(1, "qpprime_y_zero_transform_bypass_flag")
        if reader.flag("seq_scaling_matrix_present_flag"):
            for i in range(8 if chroma_format_idc != 3 else 12):
                if reader.flag(f"seq_scaling_list_present_flag[{i}]"):
                    _h264_scaling_list(reader, 16 if i < 6 else 64, i)
    reader.ue("log2_max_frame_num_minus4", 12)
    poc_type = reader.ue("pic_order_cnt_type", 2)
    if poc_type == 0:
        reader.ue("log2_max_pic_order_cnt_lsb_minus4", 12)
    elif poc_type == 1:
        reader.skip(1, "delta_pic_order_always_zero_flag")
        reader.se("offset_for_non_ref_pic")
        reader.se("offset_for_top_to_bottom_field")
        # 7.4.2.1.1: num_ref_frames_in_pic_order_cnt_cycle is in 0..255, which bounds the loop.
        for i in range(reader.ue("num_ref_frames_in_pic_order_cnt_cycle", 255)):
            reader.se(f"offset_for_ref_frame[{i}]")
    reader.ue("max_num_ref_frames", _H264_MAX_REF_FRAMES)
    reader.skip(1, "gaps_in_frame_num_value_allowed_flag")
    width_in_mbs = reader.ue("pic_width_in_mbs_minus1") + 1
    height_in_map_units = reader.ue("pic_height_in_map_units_minus1") + 1
    frame_mbs_only = reader.flag("frame_mbs_only_flag")
    if not frame_mbs_only:
        reader.skip(1, "mb_adaptive_frame_field_flag")
    reader.skip(1, "direct_8x8_inference_flag")
    # 7.4.2.1.1: FrameHeightInMbs = (2 - frame_mbs_only_flag) * PicHeightInMapUnits.
    coded_width = width_in_mbs * 16
    coded_height = (1 if frame_mbs_only else 2) * height_in_map_units * 16
    width, height = coded_width, coded_height
    if reader.flag("frame_cropping_flag"):
        left = reader.ue("frame_crop_left_offset")
        right = reader.ue("frame_crop_right_offset")
        top = reader.ue("frame_crop_top_offset")
        bottom = reader.ue("frame_crop_bottom_offset")
        # 7.4.2.1.1: with ChromaArrayType 0 CropUnitX = 1, CropUnitY = 2 - frame_mbs_only_flag;
        # otherwise CropUnitX = SubWidthC, CropUnitY = SubHeightC * (2 - frame_mbs_only_flag).
        chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
        sub_width, sub_height = _CHROMA_SUBSAMPLING.get(chroma_array_type, (1, 1))
        crop_unit_x = sub_width
        crop_unit_y = sub_height * (1 if frame_mbs_only else 2)
        width = coded_width - crop_unit_x * (left + right)
        height = coded_height - crop_unit_y * (top + bottom)
        if width <= 0 or height <= 0:
            raise reader.error(
                f"frame cropping (left {left}, right {right}, top {top}, bottom {bottom}) "
                f"leaves nothing of the {coded_width}x{coded_height} picture"
            )
    sample_aspect_ratio = None
    frame_rate = None
    if reader.flag("vui_parameters_present_flag"):
        # E.1.1 up to timing_info; HRD and bitstream restriction fields that follow are not read.
        if reader.flag("aspect_ratio_info_present_flag"):
            sample_aspect_ratio = _sample_aspect_ratio(reader)
        if reader.flag("overscan_info_present_flag"):
            reader.skip(1, "overscan_appropriate_flag")
        _video_signal_and_chroma_location(reader)
        if reader.flag("timing_info_present_flag"):
            num_units_in_tick = reader.u(32, "num_units_in_tick")
            time_scale = reader.u(32, "time_scale")
            # E.2.1: both "shall be greater than 0"; like ffmpeg we treat zeros as absent timing
            # rather than refusing an otherwise playable stream.
            if num_units_in_tick and time_scale:
                frame_rate = time_scale / (2 * num_units_in_tick)
    return H264Sps(
        profile_idc=profile_idc,
        constraint_flags=constraint_flags,
        level_idc=level_idc,
        seq_parameter_set_id=sps_id,
        chroma_format_idc=chroma_format_idc,
        separate_colour_plane=separate_colour_plane,
        bit_depth_luma=bit_depth_luma,
        bit_depth_chroma=bit_depth_chroma,
        frame_mbs_only=frame_mbs_only,
        width=width,
        height=height,
        sample_aspect_ratio=sample_aspect_ratio,
        frame_rate=frame_rate,
    )


# -- H.265 ----------------------------------------------------------------------------------------

_HEVC_NAL_SPS = 33
# A.4.2: MaxDpbSize is at most 16, bounding the reference picture counts read in loops.
_HEVC_MAX_DPB_SIZE = 16
_HEVC_MAX_SHORT_TERM_REF_PIC_SETS = 64  # 7.4.3.2.1: num_short_term_ref_pic_sets in 0..64
_HEVC_MAX_LONG_TERM_REF_PICS = 32  # 7.4.3.2.1: num_long_term_ref_pics_sps in 0..32


@dataclass(frozen=True, slots=True)
class HevcSps:
    """The fields of an H.265 sequence parameter set that the server uses.

    `width` and `height` apply the conformance window (7.4.3.2.1). `frame_rate` is
    vui_time_scale / vui_num_units_in_tick (E.3.1: in HEVC a tick is one picture), None without VUI
    timing information. `general_constraint_indicator_flags` is the 48-bit field as 6 bytes.
    """

    general_profile_space: int
    general_tier_flag: int
    general_profile_idc: int
    general_profile_compatibility_flags: int
    general_constraint_indicator_flags: bytes
    general_level_idc: int
    seq_parameter_set_id: int
    chroma_format_idc: int
    separate_colour_plane: bool
    bit_depth_luma: int
    bit_depth_chroma: int
    width: int
    height: int
    sample_aspect_ratio: tuple[int, int] | None
    frame_rate: float | None


def _hevc_sub_layers(reader: BitReader, max_sub_layers_minus1: int) -> None:
    """The sub-layer part of profile_tier_level(1, sps_max_sub_layers_minus1), 7.3.3."""
    profile_present = []
    level_present = []
    for i in range(max_sub_layers_minus1):
        profile_present.append(reader.flag(f"sub_layer_profile_present_flag[{i}]"))
        level_present.append(reader.flag(f"sub_layer_level_present_flag[{i}]"))
    if max_sub_layers_minus1 > 0:
        reader.skip(2 * (8 - max_sub_layers_minus1), "reserved_zero_2bits")
    for i in range(max_sub_layers_minus1):
        if profile_present[i]:
            # profile_space, tier, profile_idc, 32 compatibility flags, 48 constraint bits.
            reader.skip(88, f"sub_layer_profile[{i}]")
        if level_present[i]:
            reader.skip(8, f"sub_layer_level_idc[{i}]")


def _hevc_scaling_list_data(reader: BitReader) -> None:
    """scaling_list_data(), 7.3.4: consumed, not kept."""
    for size_id in range(4):
        for matrix_id in range(0, 6, 3 if size_id == 3 else 1):
            if not reader.flag(f"scaling_list_pred_mode_flag[{size_id}][{matrix_id}]"):
                reader.ue(f"scaling_list_pred_matrix_id_delta[{size_id}][{matrix_id}]", 5)
                continue
            if size_id > 1:
                reader.se(f"scaling_list_dc_coef_minus8[{size_id}][{matrix_id}]", -7, 247)
            for _ in range(min(64, 1 << (4 + (size_id << 1)))):
                reader.se(f"scaling_list_delta_coef[{size_id}][{matrix_id}]", -128, 127)


def _hevc_short_term_ref_pic_sets(reader: BitReader, count: int) -> None:
    """st_ref_pic_set(stRpsIdx) for stRpsIdx in 0..count-1, 7.3.7, tracking NumDeltaPocs (7.4.8)."""
    num_delta_pocs: list[int] = []
    for index in range(count):
        if index and reader.flag(f"inter_ref_pic_set_prediction_flag[{index}]"):
            # delta_idx_minus1 is only present in slice headers (stRpsIdx == num_short_term_ref_pic_sets),
            # so in an SPS RefRpsIdx is always the previous set.
            reader.skip(1, f"delta_rps_sign[{index}]")
            reader.ue(f"abs_delta_rps_minus1[{index}]", 2**15 - 1)
            used = 0
            for j in range(num_delta_pocs[index - 1] + 1):
                if reader.flag(f"used_by_curr_pic_flag[{index}][{j}]") or reader.flag(f"use_delta_flag[{index}][{j}]"):
                    used += 1
            num_delta_pocs.append(used)
            continue
        negative = reader.ue(f"num_negative_pics[{index}]", _HEVC_MAX_DPB_SIZE)
        positive = reader.ue(f"num_positive_pics[{index}]", _HEVC_MAX_DPB_SIZE)
        for i in range(negative):
            reader.ue(f"delta_poc_s0_minus1[{index}][{i}]", 2**15 - 1)
            reader.skip(1, f"used_by_curr_pic_s0_flag[{index}][{i}]")
        for i in range(positive):
            reader.ue(f"delta_poc_s1_minus1[{index}][{i}]", 2**15 - 1)
            reader.skip(1, f"used_by_curr_pic_s1_flag[{index}][{i}]")
        num_delta_pocs.append(negative + positive)


def parse_hevc_sps(nal: bytes) -> HevcSps:
    """Parses an H.265 SPS NAL unit (2-byte header included, emulation prevention in place)."""
    if len(nal) < 2:
        raise ProtocolError(f"HEVC SPS: NAL unit of {len(nal)} bytes is shorter than its 2-byte header")
    if nal[0] & 0x80:
        raise ProtocolError("HEVC SPS: forbidden_zero_bit is set")
    nal_type = (nal[0] >> 1) & 0x3F
    if nal_type != _HEVC_NAL_SPS:
        raise ProtocolError(f"HEVC SPS: NAL unit type {nal_type} is not 33")
    layer_id = ((nal[0] & 1) << 5) | (nal[1] >> 3)
    if layer_id:
        # F.7.3.2.2.1 changes the syntax for nuh_layer_id > 0 (multi-layer extensions).
        raise ProtocolError(f"HEVC SPS: nuh_layer_id {layer_id} is not 0")
    reader = BitReader(unescape_rbsp(nal), "HEVC SPS", 16)
    reader.skip(4, "sps_video_parameter_set_id")
    max_sub_layers_minus1 = reader.u(3, "sps_max_sub_layers_minus1")
    if max_sub_layers_minus1 > 6:
        raise reader.error(f"sps_max_sub_layers_minus1 {max_sub_layers_minus1} exceeds 6")
    reader.skip(1, "sps_temporal_id_nesting_flag")
    profile_space = reader.u(2, "general_profile_space")
    tier_flag = reader.u(1, "general_tier_flag")
    profile_idc = reader.u(5, "general_profile_idc")
    compatibility_flags = reader.u(32, "general_profile_compatibility_flags")
    constraint_flags = reader.u(48, "general_constraint_indicator_flags").to_bytes(6, "big")
    level_idc = reader.u(8, "general_level_idc")
    _hevc_sub_layers(reader, max_sub_layers_minus1)
    sps_id = reader.ue("sps_seq_parameter_set_id", 15)
    chroma_format_idc = reader.ue("chroma_format_idc", 3)
    separate_colour_plane = chroma_format_idc == 3 and reader.flag("separate_colour_plane_flag")
    coded_width = reader.ue("pic_width_in_luma_samples")
    coded_height = reader.ue("pic_height_in_luma_samples")
    if not coded_width or not coded_height:
        raise reader.error(f"picture size {coded_width}x{coded_height} is empty")
    width, height = coded_width, coded_height
    if reader.flag("conformance_window_flag"):
        left = reader.ue("conf_win_left_offset")
        right = reader.ue("conf_win_right_offset")
        top = reader.ue("conf_win_top_offset")
        bottom = reader.ue("conf_win_bottom_offset")
        # 7.4.3.2.1: the window is in chroma units, SubWidthC x SubHeightC (1 x 1 without chroma
        # arrays, i.e. monochrome or separate colour planes).
        chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
        sub_width, sub_height = _CHROMA_SUBSAMPLING.get(chroma_array_type, (1, 1))
        width = coded_width - sub_width * (left + right)
        height = coded_height - sub_height * (top + bottom)
        if width <= 0 or height <= 0:
            raise reader.error(
                f"conformance window (left {left}, right {right}, top {top}, bottom {bottom}) "
                f"leaves nothing of the {coded_width}x{coded_height} picture"
            )
    bit_depth_luma = 8 + reader.ue("bit_depth_luma_minus8", 8)
    bit_depth_chroma = 8 + reader.ue("bit_depth_chroma_minus8", 8)
    log2_max_poc_lsb = 4 + reader.ue("log2_max_pic_order_cnt_lsb_minus4", 12)
    ordering_info_for_all = reader.flag("sps_sub_layer_ordering_info_present_flag")
    for i in range(0 if ordering_info_for_all else max_sub_layers_minus1, max_sub_layers_minus1 + 1):
        reader.ue(f"sps_max_dec_pic_buffering_minus1[{i}]", _HEVC_MAX_DPB_SIZE - 1)
        reader.ue(f"sps_max_num_reorder_pics[{i}]", _HEVC_MAX_DPB_SIZE - 1)
        reader.ue(f"sps_max_latency_increase_plus1[{i}]")
    reader.ue("log2_min_luma_coding_block_size_minus3", 3)
    reader.ue("log2_diff_max_min_luma_coding_block_size", 3)
    reader.ue("log2_min_luma_transform_block_size_minus2", 3)
    reader.ue("log2_diff_max_min_luma_transform_block_size", 3)
    reader.ue("max_transform_hierarchy_depth_inter", 4)
    reader.ue("max_transform_hierarchy_depth_intra", 4)
    if reader.flag("scaling_list_enabled_flag") and reader.flag("sps_scaling_list_data_present_flag"):
        _hevc_scaling_list_data(reader)
    reader.skip(1, "amp_enabled_flag")
    reader.skip(1, "sample_adaptive_offset_enabled_flag")
    if reader.flag("pcm_enabled_flag"):
        reader.skip(4, "pcm_sample_bit_depth_luma_minus1")
        reader.skip(4, "pcm_sample_bit_depth_chroma_minus1")
        reader.ue("log2_min_pcm_luma_coding_block_size_minus3", 2)
        reader.ue("log2_diff_max_min_pcm_luma_coding_block_size", 2)
        reader.skip(1, "pcm_loop_filter_disabled_flag")
    _hevc_short_term_ref_pic_sets(reader, reader.ue("num_short_term_ref_pic_sets", _HEVC_MAX_SHORT_TERM_REF_PIC_SETS))
    if reader.flag("long_term_ref_pics_present_flag"):
        for i in range(reader.ue("num_long_term_ref_pics_sps", _HEVC_MAX_LONG_TERM_REF_PICS)):
            reader.skip(log2_max_poc_lsb, f"lt_ref_pic_poc_lsb_sps[{i}]")
            reader.skip(1, f"used_by_curr_pic_lt_sps_flag[{i}]")
    reader.skip(1, "sps_temporal_mvp_enabled_flag")
    reader.skip(1, "strong_intra_smoothing_enabled_flag")
    sample_aspect_ratio = None
    frame_rate = None
    if reader.flag("vui_parameters_present_flag"):
        # E.2.1 up to vui_timing_info; HRD and bitstream restriction fields are not read.
        if reader.flag("aspect_ratio_info_present_flag"):
            sample_aspect_ratio = _sample_aspect_ratio(reader)
        if reader.flag("overscan_info_present_flag"):
            reader.skip(1, "overscan_appropriate_flag")
        _video_signal_and_chroma_location(reader)
        reader.skip(1, "neutral_chroma_indication_flag")
        reader.skip(1, "field_seq_flag")
        reader.skip(1, "frame_field_info_present_flag")
        if reader.flag("default_display_window_flag"):
            for side in ("left", "right", "top", "bottom"):
                reader.ue(f"def_disp_win_{side}_offset")
        if reader.flag("vui_timing_info_present_flag"):
            num_units_in_tick = reader.u(32, "vui_num_units_in_tick")
            time_scale = reader.u(32, "vui_time_scale")
            if num_units_in_tick and time_scale:  # both "shall be greater than 0"; zeros = unknown
                frame_rate = time_scale / num_units_in_tick
    return HevcSps(
        general_profile_space=profile_space,
        general_tier_flag=tier_flag,
        general_profile_idc=profile_idc,
        general_profile_compatibility_flags=compatibility_flags,
        general_constraint_indicator_flags=constraint_flags,
        general_level_idc=level_idc,
        seq_parameter_set_id=sps_id,
        chroma_format_idc=chroma_format_idc,
        separate_colour_plane=separate_colour_plane,
        bit_depth_luma=bit_depth_luma,
        bit_depth_chroma=bit_depth_chroma,
        width=width,
        height=height,
        sample_aspect_ratio=sample_aspect_ratio,
        frame_rate=frame_rate,
    )


# -- AV1 ------------------------------------------------------------------------------------------

_AV1_OBU_SEQUENCE_HEADER = 1
_AV1_SELECT_SCREEN_CONTENT_TOOLS = 2
# AV1 6.4.2 color_config(): code points that change which fields follow.
_AV1_CP_BT_709, _AV1_TC_SRGB, _AV1_MC_IDENTITY = 1, 13, 0
_AV1_UNSPECIFIED = 2  # CP_UNSPECIFIED, TC_UNSPECIFIED, MC_UNSPECIFIED


@dataclass(frozen=True, slots=True)
class Av1Config:
    """AV1CodecConfigurationRecord (AV1 ISOBMFF binding 2.3.3), the av1C box body."""

    seq_profile: int
    seq_level_idx_0: int
    seq_tier_0: int
    high_bitdepth: bool
    twelve_bit: bool
    monochrome: bool
    chroma_subsampling_x: int
    chroma_subsampling_y: int
    chroma_sample_position: int
    initial_presentation_delay_minus_one: int | None
    config_obus: bytes

    @property
    def bit_depth(self) -> int:
        return 12 if self.twelve_bit else 10 if self.high_bitdepth else 8


def parse_av1_config(data: bytes) -> Av1Config:
    """Parses an av1C record: 4 bytes of fields, then configOBUs."""
    record = bytes(data)
    if len(record) < 4:
        raise ProtocolError(f"AV1 config: record of {len(record)} bytes is shorter than its 4-byte header")
    if not record[0] & 0x80:
        raise ProtocolError("AV1 config: marker bit is not set")
    version = record[0] & 0x7F
    if version != 1:
        raise ProtocolError(f"AV1 config: version {version} is not 1")
    return Av1Config(
        seq_profile=record[1] >> 5,
        seq_level_idx_0=record[1] & 0x1F,
        seq_tier_0=record[2] >> 7,
        high_bitdepth=bool(record[2] & 0x40),
        twelve_bit=bool(record[2] & 0x20),
        monochrome=bool(record[2] & 0x10),
        chroma_subsampling_x=(record[2] >> 3) & 1,
        chroma_subsampling_y=(record[2] >> 2) & 1,
        chroma_sample_position=record[2] & 0x03,
        initial_presentation_delay_minus_one=(record[3] & 0x0F) if record[3] & 0x10 else None,
        config_obus=record[4:],
    )


def _leb128(data: bytes, pos: int, context: str) -> tuple[int, int]:
    """leb128() (AV1 4.10.5): at most 8 bytes, value below 2^32."""
    value = 0
    for i in range(8):
        if pos + i >= len(data):
            raise ProtocolError(f"{context}: OBU size field at byte {pos} overruns the data")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value > 0xFFFFFFFF:
                raise ProtocolError(f"{context}: OBU size {value} at byte {pos} exceeds 2^32 - 1")
            return value, pos + i + 1
    raise ProtocolError(f"{context}: OBU size field at byte {pos} is longer than 8 bytes")


def find_av1_sequence_header(obus: bytes, context: str = "AV1 config") -> bytes | None:
    """The payload of the first sequence header OBU in a run of OBUs (5.3), or None."""
    pos = 0
    n = len(obus)
    while pos < n:
        header = obus[pos]
        if header & 0x80:
            raise ProtocolError(f"{context}: obu_forbidden_bit is set in the OBU at byte {pos}")
        obu_type = (header >> 3) & 0x0F
        header_size = 2 if header & 0x04 else 1
        if pos + header_size > n:
            raise ProtocolError(f"{context}: OBU header at byte {pos} overruns the data")
        if header & 0x02:
            size, start = _leb128(obus, pos + header_size, context)
            if start + size > n:
                raise ProtocolError(
                    f"{context}: OBU of {size} bytes at byte {pos} overruns the data ({n - start} bytes left)"
                )
        else:
            start = pos + header_size
            size = n - start
        if obu_type == _AV1_OBU_SEQUENCE_HEADER:
            return obus[start : start + size]
        pos = start + size
    return None


@dataclass(frozen=True, slots=True)
class Av1SequenceHeader:
    """The fields of an AV1 sequence header OBU (5.5) that the server uses.

    `max_frame_width`/`max_frame_height` bound every frame of the sequence; encoders set them to
    the coded size. `frame_rate` comes from timing_info() when it declares equal picture intervals.
    Colour fields hold the inferred CP/TC/MC_UNSPECIFIED (2) when no colour description is coded.
    """

    seq_profile: int
    still_picture: bool
    seq_level_idx_0: int
    seq_tier_0: int
    max_frame_width: int
    max_frame_height: int
    bit_depth: int
    mono_chrome: bool
    subsampling_x: int
    subsampling_y: int
    chroma_sample_position: int
    color_primaries: int
    transfer_characteristics: int
    matrix_coefficients: int
    full_range: bool
    frame_rate: float | None


def _av1_uvlc(reader: BitReader, field: str) -> int:
    """uvlc() (AV1 4.10.3): every leading zero is consumed; 32 or more of them mean 2^32 - 1."""
    zeros = 0
    while not reader.flag(field):
        zeros += 1
    if zeros >= 32:
        return (1 << 32) - 1
    return reader.u(zeros, field) + (1 << zeros) - 1


def parse_av1_sequence_header(payload: bytes) -> Av1SequenceHeader:
    """Parses a sequence_header_obu() payload (5.5.1) up to and including color_config()."""
    reader = BitReader(payload, "AV1 sequence header")
    seq_profile = reader.u(3, "seq_profile")
    if seq_profile > 2:
        raise reader.error(f"seq_profile {seq_profile} exceeds 2")
    still_picture = reader.flag("still_picture")
    reduced_still_picture_header = reader.flag("reduced_still_picture_header")
    frame_rate = None
    seq_tier_0 = 0
    if reduced_still_picture_header:
        seq_level_idx_0 = reader.u(5, "seq_level_idx[0]")
    else:
        decoder_model_info_present = False
        buffer_delay_length = 0
        if reader.flag("timing_info_present_flag"):
            num_units_in_display_tick = reader.u(32, "num_units_in_display_tick")
            time_scale = reader.u(32, "time_scale")
            if reader.flag("equal_picture_interval"):
                ticks_per_picture = _av1_uvlc(reader, "num_ticks_per_picture_minus_1") + 1
                if num_units_in_display_tick and time_scale:
                    frame_rate = time_scale / (num_units_in_display_tick * ticks_per_picture)
            decoder_model_info_present = reader.flag("decoder_model_info_present_flag")
            if decoder_model_info_present:
                buffer_delay_length = reader.u(5, "buffer_delay_length_minus_1") + 1
                reader.skip(32, "num_units_in_decoding_tick")
                reader.skip(5, "buffer_removal_time_length_minus_1")
                reader.skip(5, "frame_presentation_time_length_minus_1")
        initial_display_delay_present = reader.flag("initial_display_delay_present_flag")
        seq_level_idx_0 = 0
        for i in range(reader.u(5, "operating_points_cnt_minus_1") + 1):
            reader.skip(12, f"operating_point_idc[{i}]")
            level = reader.u(5, f"seq_level_idx[{i}]")
            tier = reader.u(1, f"seq_tier[{i}]") if level > 7 else 0
            if i == 0:
                seq_level_idx_0, seq_tier_0 = level, tier
            if decoder_model_info_present and reader.flag(f"decoder_model_present_for_this_op[{i}]"):
                reader.skip(buffer_delay_length, f"decoder_buffer_delay[{i}]")
                reader.skip(buffer_delay_length, f"encoder_buffer_delay[{i}]")
                reader.skip(1, f"low_delay_mode_flag[{i}]")
            if initial_display_delay_present and reader.flag(f"initial_display_delay_present_for_this_op[{i}]"):
                reader.skip(4, f"initial_display_delay_minus_1[{i}]")
    width_bits = reader.u(4, "frame_width_bits_minus_1") + 1
    height_bits = reader.u(4, "frame_height_bits_minus_1") + 1
    max_frame_width = reader.u(width_bits, "max_frame_width_minus_1") + 1
    max_frame_height = reader.u(height_bits, "max_frame_height_minus_1") + 1
    if not reduced_still_picture_header and reader.flag("frame_id_numbers_present_flag"):
        reader.skip(4, "delta_frame_id_length_minus_2")
        reader.skip(3, "additional_frame_id_length_minus_1")
    reader.skip(1, "use_128x128_superblock")
    reader.skip(1, "enable_filter_intra")
    reader.skip(1, "enable_intra_edge_filter")
    if not reduced_still_picture_header:
        reader.skip(1, "enable_interintra_compound")
        reader.skip(1, "enable_masked_compound")
        reader.skip(1, "enable_warped_motion")
        reader.skip(1, "enable_dual_filter")
        enable_order_hint = reader.flag("enable_order_hint")
        if enable_order_hint:
            reader.skip(1, "enable_jnt_comp")
            reader.skip(1, "enable_ref_frame_mvs")
        if reader.flag("seq_choose_screen_content_tools"):
            force_screen_content_tools = _AV1_SELECT_SCREEN_CONTENT_TOOLS
        else:
            force_screen_content_tools = reader.u(1, "seq_force_screen_content_tools")
        if force_screen_content_tools > 0 and not reader.flag("seq_choose_integer_mv"):
            reader.skip(1, "seq_force_integer_mv")
        if enable_order_hint:
            reader.skip(3, "order_hint_bits_minus_1")
    reader.skip(1, "enable_superres")
    reader.skip(1, "enable_cdef")
    reader.skip(1, "enable_restoration")
    # color_config(), 5.5.2.
    high_bitdepth = reader.flag("high_bitdepth")
    if seq_profile == 2 and high_bitdepth:
        bit_depth = 12 if reader.flag("twelve_bit") else 10
    else:
        bit_depth = 10 if high_bitdepth else 8
    mono_chrome = False if seq_profile == 1 else reader.flag("mono_chrome")
    color_primaries = transfer = matrix = _AV1_UNSPECIFIED
    if reader.flag("color_description_present_flag"):
        color_primaries = reader.u(8, "color_primaries")
        transfer = reader.u(8, "transfer_characteristics")
        matrix = reader.u(8, "matrix_coefficients")
    chroma_sample_position = 0
    if mono_chrome:
        full_range = reader.flag("color_range")
        subsampling_x = subsampling_y = 1
    elif (color_primaries, transfer, matrix) == (_AV1_CP_BT_709, _AV1_TC_SRGB, _AV1_MC_IDENTITY):
        full_range = True
        subsampling_x = subsampling_y = 0
    else:
        full_range = reader.flag("color_range")
        if seq_profile == 0:
            subsampling_x = subsampling_y = 1
        elif seq_profile == 1:
            subsampling_x = subsampling_y = 0
        elif bit_depth == 12:
            subsampling_x = reader.u(1, "subsampling_x")
            subsampling_y = reader.u(1, "subsampling_y") if subsampling_x else 0
        else:
            subsampling_x, subsampling_y = 1, 0
        if subsampling_x and subsampling_y:
            chroma_sample_position = reader.u(2, "chroma_sample_position")
    return Av1SequenceHeader(
        seq_profile=seq_profile,
        still_picture=still_picture,
        seq_level_idx_0=seq_level_idx_0,
        seq_tier_0=seq_tier_0,
        max_frame_width=max_frame_width,
        max_frame_height=max_frame_height,
        bit_depth=bit_depth,
        mono_chrome=mono_chrome,
        subsampling_x=subsampling_x,
        subsampling_y=subsampling_y,
        chroma_sample_position=chroma_sample_position,
        color_primaries=color_primaries,
        transfer_characteristics=transfer,
        matrix_coefficients=matrix,
        full_range=full_range,
        frame_rate=frame_rate,
    )


# -- VP9 ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vp9Config:
    """VPCodecConfigurationRecord (VP codec ISOBMFF binding, vpcC version 1)."""

    profile: int
    level: int
    bit_depth: int
    chroma_subsampling: int
    full_range: bool
    colour_primaries: int
    transfer_characteristics: int
    matrix_coefficients: int
    codec_initialization_data: bytes


def parse_vp9_config(data: bytes) -> Vp9Config:
    """Parses a vpcC record, with or without the FullBox version/flags that precede it in the box.

    ffmpeg's muxers (and so Enhanced RTMP senders built on them) send the box payload: version 1 and
    flags 0 first. A bare record starting 01 00 00 would have bitDepth 0, which is invalid, so
    "01 00 00 00" can only be that FullBox header.
    """
    record = bytes(data)
    if record[:4] == b"\x01\x00\x00\x00":
        record = record[4:]
    if len(record) < 8:
        raise ProtocolError(f"VP9 config: record of {len(record)} bytes is shorter than its 8-byte body")
    bit_depth = record[2] >> 4
    if bit_depth not in (8, 10, 12):
        raise ProtocolError(f"VP9 config: bitDepth {bit_depth} is not 8, 10 or 12")
    init_size = int.from_bytes(record[6:8], "big")
    if init_size > len(record) - 8:
        raise ProtocolError(
            f"VP9 config: codecInitializationData of {init_size} bytes overruns the record "
            f"({len(record) - 8} bytes left)"
        )
    return Vp9Config(
        profile=record[0],
        level=record[1],
        bit_depth=bit_depth,
        chroma_subsampling=(record[2] >> 1) & 0x07,
        full_range=bool(record[2] & 1),
        colour_primaries=record[3],
        transfer_characteristics=record[4],
        matrix_coefficients=record[5],
        codec_initialization_data=record[8 : 8 + init_size],
    )


# -- RFC 6381 codecs values and picture size ------------------------------------------------------

# Both bindings: the optional colour fields default to BT.709 (1) and limited range; the value 2
# means "unspecified" and is not worth the long form either.
_COLOUR_DEFAULT_OR_UNSPECIFIED = frozenset({1, _AV1_UNSPECIFIED})
_VP9_CHROMA_420 = frozenset({0, 1})  # 4:2:0 with vertical or colocated chroma siting
_MP3_CODECS = "mp4a.40.34"  # MPEG-4 audio object type 34, Layer-3


def _colour_needs_long_form(primaries: int, transfer: int, matrix: int, full_range: bool) -> bool:
    return full_range or not {primaries, transfer, matrix} <= _COLOUR_DEFAULT_OR_UNSPECIFIED


def _av1_codecs(config: Av1Config) -> str:
    """av01.P.LLT.DD, and the optional fields when a client would otherwise assume wrongly.

    AV1 binding, Codecs Parameter String: mono_chrome, chromaSubsampling, colorPrimaries,
    transferCharacteristics, matrixCoefficients and videoFullRangeFlag are "optional, mutually
    inclusive (all or none)" with defaults 0, 110, 1, 1, 1, 0. We emit them only when the stream
    is monochrome, not 4:2:0, full range, or declares colours other than BT.709/unspecified (HDR).
    """
    base = (
        f"av01.{config.seq_profile}.{config.seq_level_idx_0:02d}{'H' if config.seq_tier_0 else 'M'}"
        f".{config.bit_depth:02d}"
    )
    header_payload = find_av1_sequence_header(config.config_obus)
    primaries = transfer = matrix = _AV1_UNSPECIFIED
    full_range = False
    if header_payload is not None:
        header = parse_av1_sequence_header(header_payload)
        primaries, transfer, matrix = (
            header.color_primaries,
            header.transfer_characteristics,
            header.matrix_coefficients,
        )
        full_range = header.full_range
    chroma_420 = config.chroma_subsampling_x == 1 and config.chroma_subsampling_y == 1
    if not config.monochrome and chroma_420 and not _colour_needs_long_form(primaries, transfer, matrix, full_range):
        return base
    position = config.chroma_sample_position if chroma_420 else 0
    return (
        f"{base}.{int(config.monochrome)}.{config.chroma_subsampling_x}{config.chroma_subsampling_y}{position}"
        f".{primaries:02d}.{transfer:02d}.{matrix:02d}.{int(full_range)}"
    )


def _vp9_codecs(config: Vp9Config) -> str:
    """vp09.PP.LL.DD, and the optional fields (same rule as AV1) from the VP9 binding."""
    base = f"vp09.{config.profile:02d}.{config.level:02d}.{config.bit_depth:02d}"
    if config.chroma_subsampling in _VP9_CHROMA_420 and not _colour_needs_long_form(
        config.colour_primaries, config.transfer_characteristics, config.matrix_coefficients, config.full_range
    ):
        return base
    return (
        f"{base}.{config.chroma_subsampling:02d}.{config.colour_primaries:02d}"
        f".{config.transfer_characteristics:02d}.{config.matrix_coefficients:02d}.{int(config.full_range):02d}"
    )


def codecs_string(codec: str, config: bytes) -> str:
    """The RFC 6381 CODECS value of a track from its sample entry FourCC and decoder configuration.

    `codec` is the name the FLV layer reports: avc1, hvc1, av01, vp09 (config: avcC, hvcC, av1C,
    vpcC), mp4a (config: AudioSpecificConfig) or mp3 (no config). Malformed configuration raises
    ProtocolError; a codec HLS cannot describe raises ValueError (the caller picks the codecs).
    """
    if codec == "avc1":
        return flv.parse_avc_config(config).codecs
    if codec == "hvc1":
        return flv.parse_hevc_config(config).codecs
    if codec == "av01":
        return _av1_codecs(parse_av1_config(config))
    if codec == "vp09":
        return _vp9_codecs(parse_vp9_config(config))
    if codec == "mp4a":
        return flv.parse_aac_config(config).codecs
    if codec in ("mp3", ".mp3"):
        return _MP3_CODECS
    raise ValueError(f"no RFC 6381 codecs value for codec {codec!r}")


@functools.lru_cache(maxsize=16)
def video_dimensions(codec: str, config: bytes) -> tuple[int, int, float | None]:
    """(width, height, frames per second or None) from a video decoder configuration record.

    Cached: every playlist update of a live variant asks again for the same record (one bit-level
    SPS parse each time, ~5 % of the ingest path's CPU otherwise).

    AVC and HEVC read the first SPS of the record (HEVC falls back to hvcC avgFrameRate, in
    frames per 256 s). AV1 reads the sequence header OBU in av1C's configOBUs; (0, 0, None) when
    the record carries none. vpcC holds no picture size: (0, 0, None) once the record is valid.
    """
    if codec == "avc1":
        avc = flv.parse_avc_config(config)
        if not avc.sps:
            raise ProtocolError("AVC config: record holds no SPS")
        sps = parse_h264_sps(avc.sps[0])
        return sps.width, sps.height, sps.frame_rate
    if codec == "hvc1":
        hevc = flv.parse_hevc_config(config)
        units = next((units for nal_type, units in hevc.arrays if nal_type == _HEVC_NAL_SPS and units), None)
        if units is None:
            raise ProtocolError("HEVC config: record holds no SPS")
        hevc_sps = parse_hevc_sps(units[0])
        frame_rate = hevc_sps.frame_rate
        if frame_rate is None and hevc.avg_frame_rate:
            frame_rate = hevc.avg_frame_rate / 256
        return hevc_sps.width, hevc_sps.height, frame_rate
    if codec == "av01":
        payload = find_av1_sequence_header(parse_av1_config(config).config_obus)
        if payload is None:
            return 0, 0, None
        header = parse_av1_sequence_header(payload)
        return header.max_frame_width, header.max_frame_height, header.frame_rate
    if codec == "vp09":
        parse_vp9_config(config)
        return 0, 0, None
    raise ValueError(f"no video dimensions for codec {codec!r}")
