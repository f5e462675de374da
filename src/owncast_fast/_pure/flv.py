"""Pure-Python twin of `owncast_fast._native.flv`: same API, same results, same error messages.

FLV audio/video tag payloads as carried in RTMP messages. The spec quotations that explain each
field live above the Cython implementation in `ext/flv.pyx`; this module follows the same order
of checks so that both raise the same `ProtocolError` for the same malformed input. As there, a
parsed tag's `data` is a read-only memoryview of the payload `bytes` (a payload in any other
buffer is copied into `bytes` once first), here made by slicing a memoryview (the Cython module's
`PayloadView` is the same buffer in one cheaper object).
"""

from __future__ import annotations

from dataclasses import dataclass

from owncast_fast.errors import ProtocolError

PACKET_CONFIG = 0
PACKET_FRAME = 1
PACKET_END = 2
PACKET_METADATA = 3

_BytesLike = bytes | bytearray | memoryview
_Payload = bytes | memoryview  # a parsed tag's `data` is a read-only memoryview

_ENHANCED_CODECS = {b"hvc1": "hvc1", b"av01": "av01", b"vp09": "vp09", b"avc1": "avc1"}
_NAL_WALKED = frozenset({"avc1", "hvc1"})

_AUDIO_CODECS = {
    0: "pcm",
    2: "mp3",
    3: "pcm",
    4: "nellymoser",
    5: "nellymoser",
    6: "nellymoser",
    7: "g711a",
    8: "g711u",
    10: "mp4a",
    11: "speex",
    14: "mp3",
}
_AUDIO_CODEC_NAMES = tuple(_AUDIO_CODECS.get(i, f"flv-audio-{i}") for i in range(16))


@dataclass(slots=True)
class VideoTag:
    """One FLV video tag (legacy or Enhanced RTMP header), parsed by `parse_video_tag`.

    `keyframe` is True when the header's FrameType is 1 (key frame) and, for AVC/HEVC coded
    frames, also when the frame holds an IDR (AVC type 5) or IRAP (HEVC types 16-23) NAL unit:
    some encoders mark recovery points as inter frames.
    `codec` is "" only for an Enhanced RTMP command frame, which names no FourCC.
    `data` is a read-only memoryview of the parsed payload (see the module docstring); a tag made
    by its constructor keeps whatever it was given.
    """

    codec: str
    packet_type: int
    frame_type: int
    keyframe: bool
    composition_time: int
    data: _Payload
    nal_types: tuple[int, ...]


@dataclass(slots=True)
class AudioTag:
    """One FLV audio tag, parsed by `parse_audio_tag`; `data` as in VideoTag."""

    codec: str
    sound_format: int
    packet_type: int
    data: _Payload


def _as_bytes(data: _BytesLike) -> bytes:
    return data if type(data) is bytes else bytes(memoryview(data))


def _check_length_size(nal_length_size: int) -> None:
    if nal_length_size not in (1, 2, 4):
        raise ValueError(f"nal_length_size must be 1, 2 or 4, not {nal_length_size}")


def _walk_nals(data: bytes, start: int, size: int, context: str, whole: str) -> list[tuple[int, int]]:
    """Validates the run of length-prefixed NAL units in data[start:]; returns (offset, length) of
    each unit, offsets into `data` (messages count from `start`)."""
    units = []
    pos = start
    end = len(data)
    while pos < end:
        if end - pos < size:
            raise ProtocolError(
                f"{context}: NAL length prefix of {size} bytes overruns the {whole} ({end - pos} bytes left)"
            )
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
        if length == 0:
            raise ProtocolError(f"{context}: empty NAL unit at offset {pos - size - start}")
        if length > end - pos:
            raise ProtocolError(f"{context}: NAL unit length {length} overruns the {whole} ({end - pos} bytes left)")
        units.append((pos, length))
        pos += length
    return units


def _coded_frame(codec: str, frame_type: int, composition_time: int, tag: bytes, start: int, size: int) -> VideoTag:
    """A FRAME tag of tag[start:]."""
    keyframe = frame_type == 1
    nal_types: tuple[int, ...] = ()
    if codec in _NAL_WALKED and len(tag) > start:
        units = _walk_nals(tag, start, size, "FLV video", "tag")
        if codec == "avc1":
            nal_types = tuple(tag[pos] & 0x1F for pos, _ in units)
            keyframe = keyframe or 5 in nal_types
        else:
            nal_types = tuple((tag[pos] >> 1) & 0x3F for pos, _ in units)
            keyframe = keyframe or any(16 <= nal_type <= 23 for nal_type in nal_types)
    return VideoTag(codec, PACKET_FRAME, frame_type, keyframe, composition_time, memoryview(tag)[start:], nal_types)


def _si24(data: bytes) -> int:
    return int.from_bytes(data, "big", signed=True)


def parse_video_tag(payload: _BytesLike, nal_length_size: int = 4) -> VideoTag:
    """Parses the payload of an RTMP video message (an FLV VIDEODATA tag body)."""
    _check_length_size(nal_length_size)
    tag = _as_bytes(payload)
    n = len(tag)
    if n == 0:
        raise ProtocolError("FLV video: empty tag")
    first = tag[0]
    if first & 0x80:
        return _parse_enhanced_video(tag, nal_length_size)
    frame_type = first >> 4
    codec_id = first & 0x0F
    if codec_id == 7:
        codec, name = "avc1", "AVC"
    elif codec_id == 12:
        codec, name = "hvc1", "HEVC"
    else:
        raise ProtocolError(f"FLV video: unknown codec id {codec_id}")
    if not 1 <= frame_type <= 5:
        raise ProtocolError(f"FLV video: unknown frame type {frame_type}")
    if frame_type == 5:
        if n < 2:
            raise ProtocolError(f"FLV video: tag of {n} bytes is shorter than its 2-byte command header")
        return VideoTag(codec, PACKET_METADATA, 5, False, 0, memoryview(tag)[1:], ())
    if n < 5:
        raise ProtocolError(f"FLV video: tag of {n} bytes is shorter than its 5-byte {name} header")
    packet_type = tag[1]
    if packet_type == 1:
        return _coded_frame(codec, frame_type, _si24(tag[2:5]), tag, 5, nal_length_size)
    if packet_type == 0:
        return VideoTag(codec, PACKET_CONFIG, frame_type, frame_type == 1, 0, memoryview(tag)[5:], ())
    if packet_type == 2:
        return VideoTag(codec, PACKET_END, frame_type, frame_type == 1, 0, memoryview(tag)[5:], ())
    raise ProtocolError(f"FLV video: unknown {name} packet type {packet_type}")


def _parse_enhanced_video(tag: bytes, nal_length_size: int) -> VideoTag:
    n = len(tag)
    frame_type = (tag[0] >> 4) & 0x07
    packet_type = tag[0] & 0x0F
    if packet_type != 4 and frame_type == 5:
        if n < 2:
            raise ProtocolError(f"FLV video: tag of {n} bytes is shorter than its 2-byte command header")
        return VideoTag("", PACKET_METADATA, 5, False, 0, memoryview(tag)[1:], ())
    if n < 5:
        raise ProtocolError(f"FLV video: tag of {n} bytes is shorter than its 5-byte enhanced header")
    fourcc = tag[1:5]
    codec = _ENHANCED_CODECS.get(fourcc)
    if codec is None:
        raise ProtocolError(f"FLV video: unknown enhanced FourCC {fourcc.decode('latin-1')!a}")
    if packet_type == 4:
        return VideoTag(codec, PACKET_METADATA, frame_type, False, 0, memoryview(tag)[5:], ())
    if not 1 <= frame_type <= 4:
        raise ProtocolError(f"FLV video: unknown frame type {frame_type}")
    if packet_type == 1:
        if codec not in _NAL_WALKED:
            return _coded_frame(codec, frame_type, 0, tag, 5, nal_length_size)
        if n < 8:
            raise ProtocolError(f"FLV video: tag of {n} bytes is shorter than its 8-byte enhanced CodedFrames header")
        return _coded_frame(codec, frame_type, _si24(tag[5:8]), tag, 8, nal_length_size)
    if packet_type == 3:
        return _coded_frame(codec, frame_type, 0, tag, 5, nal_length_size)
    if packet_type in (0, 5):
        return VideoTag(codec, PACKET_CONFIG, frame_type, frame_type == 1, 0, memoryview(tag)[5:], ())
    if packet_type == 2:
        return VideoTag(codec, PACKET_END, frame_type, frame_type == 1, 0, memoryview(tag)[5:], ())
    raise ProtocolError(f"FLV video: unsupported enhanced packet type {packet_type}")


def parse_audio_tag(payload: _BytesLike) -> AudioTag:
    """Parses the payload of an RTMP audio message (an FLV AUDIODATA tag body)."""
    tag = _as_bytes(payload)
    n = len(tag)
    if n == 0:
        raise ProtocolError("FLV audio: empty tag")
    sound_format = tag[0] >> 4
    codec = _AUDIO_CODEC_NAMES[sound_format]
    if sound_format != 10:
        return AudioTag(codec, sound_format, PACKET_FRAME, memoryview(tag)[1:])
    if n < 2:
        raise ProtocolError(f"FLV audio: tag of {n} bytes is shorter than its 2-byte AAC header")
    if tag[1] == 0:
        packet_type = PACKET_CONFIG
    elif tag[1] == 1:
        packet_type = PACKET_FRAME
    else:
        raise ProtocolError(f"FLV audio: unknown AAC packet type {tag[1]}")
    return AudioTag(codec, sound_format, packet_type, memoryview(tag)[2:])


def avcc_to_annexb(data: _BytesLike, nal_length_size: int = 4) -> bytes:
    """Rewrites length-prefixed NAL units (AVCC/HVCC layout) as Annex B: 00 00 00 01 before each."""
    _check_length_size(nal_length_size)
    frame = _as_bytes(data)
    units = _walk_nals(frame, 0, nal_length_size, "AVCC", "frame")
    return b"".join([b"\x00\x00\x00\x01" + frame[pos : pos + length] for pos, length in units])


# Decoder configuration records.


def _read_units(record: bytes, pos: int, count: int, context: str, what: str) -> tuple[tuple[bytes, ...], int]:
    """Reads `count` units, each behind a 16-bit length, as in avcC and hvcC."""
    n = len(record)
    units = []
    for i in range(count):
        if n - pos < 2:
            raise ProtocolError(f"{context}: {what} {i} length field overruns the record ({n - pos} bytes left)")
        length = int.from_bytes(record[pos : pos + 2], "big")
        pos += 2
        if length > n - pos:
            raise ProtocolError(f"{context}: {what} {i} of {length} bytes overruns the record ({n - pos} bytes left)")
        units.append(record[pos : pos + length])
        pos += length
    return tuple(units), pos


def _write_units(units: tuple[bytes, ...]) -> bytes:
    return b"".join([len(unit).to_bytes(2, "big") + unit for unit in units])


@dataclass(frozen=True, slots=True)
class AvcConfig:
    """AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1), the avcC box body.

    `extension` keeps the bytes after the PPS list verbatim (the chroma_format / bit depth /
    SPS extension block of High profiles), so `bytes(config)` re-serialises the record exactly.
    """

    profile_idc: int
    profile_compat: int
    level_idc: int
    nal_length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]
    extension: bytes

    @property
    def codecs(self) -> str:
        """RFC 6381 CODECS value: avc1.PPCCLL (profile_idc, constraint flags, level_idc)."""
        return f"avc1.{self.profile_idc:02x}{self.profile_compat:02x}{self.level_idc:02x}"

    def __bytes__(self) -> bytes:
        if len(self.sps) > 31:
            raise ValueError(f"an avcC record holds at most 31 SPS, not {len(self.sps)}")
        head = bytes(
            [
                1,
                self.profile_idc,
                self.profile_compat,
                self.level_idc,
                0xFC | (self.nal_length_size - 1),
                0xE0 | len(self.sps),
            ]
        )
        return head + _write_units(self.sps) + bytes([len(self.pps)]) + _write_units(self.pps) + self.extension


def parse_avc_config(data: _BytesLike) -> AvcConfig:
    """Parses an AVCDecoderConfigurationRecord (the AVC sequence header of an FLV tag)."""
    record = _as_bytes(data)
    n = len(record)
    if n < 6:
        raise ProtocolError(f"AVC config: record of {n} bytes is shorter than its 6-byte header")
    if record[0] != 1:
        raise ProtocolError(f"AVC config: configurationVersion {record[0]} is not 1")
    nal_length_size = (record[4] & 0x03) + 1
    if nal_length_size == 3:
        raise ProtocolError("AVC config: NAL length size 3 is not 1, 2 or 4")
    sps, pos = _read_units(record, 6, record[5] & 0x1F, "AVC config", "SPS")
    if pos >= n:
        raise ProtocolError("AVC config: record ends before numOfPictureParameterSets")
    pps, pos = _read_units(record, pos + 1, record[pos], "AVC config", "PPS")
    return AvcConfig(
        profile_idc=record[1],
        profile_compat=record[2],
        level_idc=record[3],
        nal_length_size=nal_length_size,
        sps=sps,
        pps=pps,
        extension=record[pos:],
    )


@dataclass(frozen=True, slots=True)
class HevcConfig:
    """HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1), the hvcC box body.

    `arrays` holds (NAL unit type, units) per parameter-set array and `array_completeness` each
    array's completeness bit. Reserved bits are written as ones; records whose reserved bits are
    ones and that end after the last array round-trip through `bytes(config)`.
    """

    general_profile_space: int
    general_tier_flag: int
    general_profile_idc: int
    general_profile_compatibility_flags: int
    general_constraint_indicator_flags: bytes
    general_level_idc: int
    min_spatial_segmentation_idc: int
    parallelism_type: int
    chroma_format_idc: int
    bit_depth_luma_minus8: int
    bit_depth_chroma_minus8: int
    avg_frame_rate: int
    constant_frame_rate: int
    num_temporal_layers: int
    temporal_id_nested: int
    nal_length_size: int
    arrays: tuple[tuple[int, tuple[bytes, ...]], ...]
    array_completeness: tuple[bool, ...]

    @property
    def codecs(self) -> str:
        """RFC 6381 CODECS value per ISO/IEC 14496-15 Annex E, e.g. "hvc1.1.6.L93.B0"."""
        reversed_flags = int(f"{self.general_profile_compatibility_flags:032b}"[::-1], 2)
        parts = [
            "hvc1",
            f"{('', 'A', 'B', 'C')[self.general_profile_space]}{self.general_profile_idc}",
            f"{reversed_flags:X}",
            f"{'LH'[self.general_tier_flag]}{self.general_level_idc}",
        ]
        parts.extend(f"{byte:X}" for byte in self.general_constraint_indicator_flags.rstrip(b"\x00"))
        return ".".join(parts)

    def __bytes__(self) -> bytes:
        out = bytearray(
            [1, (self.general_profile_space << 6) | (self.general_tier_flag << 5) | self.general_profile_idc]
        )
        out += self.general_profile_compatibility_flags.to_bytes(4, "big")
        out += self.general_constraint_indicator_flags
        out.append(self.general_level_idc)
        out += (0xF000 | self.min_spatial_segmentation_idc).to_bytes(2, "big")
        out.append(0xFC | self.parallelism_type)
        out.append(0xFC | self.chroma_format_idc)
        out.append(0xF8 | self.bit_depth_luma_minus8)
        out.append(0xF8 | self.bit_depth_chroma_minus8)
        out += self.avg_frame_rate.to_bytes(2, "big")
        out.append(
            (self.constant_frame_rate << 6)
            | (self.num_temporal_layers << 3)
            | (self.temporal_id_nested << 2)
            | (self.nal_length_size - 1)
        )
        out.append(len(self.arrays))
        for (nal_type, units), complete in zip(self.arrays, self.array_completeness, strict=True):
            out.append((complete << 7) | nal_type)
            out += len(units).to_bytes(2, "big")
            out += _write_units(units)
        return bytes(out)


def parse_hevc_config(data: _BytesLike) -> HevcConfig:
    """Parses an HEVCDecoderConfigurationRecord (the HEVC sequence start of an FLV tag)."""
    record = _as_bytes(data)
    n = len(record)
    if n < 23:
        raise ProtocolError(f"HEVC config: record of {n} bytes is shorter than its 23-byte header")
    if record[0] != 1:
        raise ProtocolError(f"HEVC config: configurationVersion {record[0]} is not 1")
    nal_length_size = (record[21] & 0x03) + 1
    if nal_length_size == 3:
        raise ProtocolError("HEVC config: NAL length size 3 is not 1, 2 or 4")
    arrays = []
    completeness = []
    pos = 23
    for i in range(record[22]):
        if n - pos < 3:
            raise ProtocolError(f"HEVC config: array {i} header overruns the record ({n - pos} bytes left)")
        completeness.append(bool(record[pos] & 0x80))
        nal_type = record[pos] & 0x3F
        count = int.from_bytes(record[pos + 1 : pos + 3], "big")
        units, pos = _read_units(record, pos + 3, count, "HEVC config", f"array {i} unit")
        arrays.append((nal_type, units))
    return HevcConfig(
        general_profile_space=record[1] >> 6,
        general_tier_flag=(record[1] >> 5) & 1,
        general_profile_idc=record[1] & 0x1F,
        general_profile_compatibility_flags=int.from_bytes(record[2:6], "big"),
        general_constraint_indicator_flags=record[6:12],
        general_level_idc=record[12],
        min_spatial_segmentation_idc=int.from_bytes(record[13:15], "big") & 0x0FFF,
        parallelism_type=record[15] & 0x03,
        chroma_format_idc=record[16] & 0x03,
        bit_depth_luma_minus8=record[17] & 0x07,
        bit_depth_chroma_minus8=record[18] & 0x07,
        avg_frame_rate=int.from_bytes(record[19:21], "big"),
        constant_frame_rate=record[21] >> 6,
        num_temporal_layers=(record[21] >> 3) & 0x07,
        temporal_id_nested=(record[21] >> 2) & 1,
        nal_length_size=nal_length_size,
        arrays=tuple(arrays),
        array_completeness=tuple(completeness),
    )


_AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
_AAC_CHANNELS = (0, 1, 2, 3, 4, 5, 6, 8, -1, -1, -1, 7, 8, 24, 8, -1)
_AAC_GA_OBJECT_TYPES = frozenset({1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23})


class _BitReader:
    __slots__ = ("_bit", "_record")

    def __init__(self, record: bytes) -> None:
        self._record = record
        self._bit = 0

    def read(self, count: int, field: str) -> int:
        n = len(self._record)
        if self._bit + count > n * 8:
            raise ProtocolError(f"AAC config: record of {n} bytes ends inside {field}")
        value = 0
        for _ in range(count):
            value = (value << 1) | ((self._record[self._bit >> 3] >> (7 - (self._bit & 7))) & 1)
            self._bit += 1
        return value

    def object_type(self) -> int:
        value = self.read(5, "audioObjectType")
        if value == 31:
            value = 32 + self.read(6, "audioObjectType")
        return value

    def sample_rate(self, index: int, field: str) -> int:
        if index == 15:
            return self.read(24, field.replace("Index", ""))
        if index > 12:
            raise ProtocolError(f"AAC config: reserved {field} {index}")
        return _AAC_SAMPLE_RATES[index]

    def rest(self) -> str:
        """The bits not read yet, as "0"/"1" text."""
        n = len(self._record)
        return f"{int.from_bytes(self._record, 'big'):0{n * 8}b}"[self._bit :]


@dataclass(frozen=True, slots=True)
class AacConfig:
    """AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), the AAC sequence header of an FLV tag.

    `sample_rate` is the output rate: for explicitly signalled HE-AAC (object type 5 or 29) the
    SBR extension rate, otherwise `core_sample_rate`. `frame_length` is the core coder's samples
    per frame (1024, or 960 when GASpecificConfig's frameLengthFlag is set); SBR doubles it at
    `sample_rate`. `extension_sampling_frequency_index` is -1 without explicit SBR signalling.
    `remaining_bits` keeps, as "0"/"1" text, every bit after the fields above (the rest of
    GASpecificConfig, sync extensions such as the 0x2B7 one ffmpeg appends, padding), so that
    `bytes(config)` re-serialises the record exactly. Backward-compatible (sync extension) SBR
    signalling is not interpreted: `object_type` and `codecs` name the core object type then.
    """

    object_type: int
    sample_rate: int
    channels: int
    frame_length: int
    sampling_frequency_index: int
    core_sample_rate: int
    channel_configuration: int
    extension_sampling_frequency_index: int
    core_object_type: int
    remaining_bits: str

    @property
    def codecs(self) -> str:
        """RFC 6381 CODECS value: mp4a.40.<audioObjectType>."""
        return f"mp4a.40.{self.object_type}"

    def __bytes__(self) -> bytes:
        fields: list[tuple[int, int]] = []

        def put_object_type(value: int) -> None:
            if value >= 31:
                fields.append((5, 31))
                fields.append((6, value - 32))
            else:
                fields.append((5, value))

        put_object_type(self.object_type)
        fields.append((4, self.sampling_frequency_index))
        if self.sampling_frequency_index == 15:
            fields.append((24, self.core_sample_rate))
        fields.append((4, self.channel_configuration))
        if self.extension_sampling_frequency_index >= 0:
            fields.append((4, self.extension_sampling_frequency_index))
            if self.extension_sampling_frequency_index == 15:
                fields.append((24, self.sample_rate))
            put_object_type(self.core_object_type)
        if self.core_object_type in _AAC_GA_OBJECT_TYPES:
            fields.append((1, self.frame_length == 960))
        if self.remaining_bits:
            fields.append((len(self.remaining_bits), int(self.remaining_bits, 2)))
        value = 0
        width = 0
        for bits, field in fields:
            value = (value << bits) | field
            width += bits
        pad = -width % 8
        return (value << pad).to_bytes((width + pad) // 8, "big")


def parse_aac_config(data: _BytesLike) -> AacConfig:
    """Parses an AAC AudioSpecificConfig (the AAC sequence header of an FLV audio tag)."""
    reader = _BitReader(_as_bytes(data))
    object_type = reader.object_type()
    if object_type == 0:
        raise ProtocolError("AAC config: audioObjectType 0 is the null object")
    frequency_index = reader.read(4, "samplingFrequencyIndex")
    core_sample_rate = reader.sample_rate(frequency_index, "samplingFrequencyIndex")
    sample_rate = core_sample_rate
    channel_configuration = reader.read(4, "channelConfiguration")
    channels = _AAC_CHANNELS[channel_configuration]
    if channels < 0:
        raise ProtocolError(f"AAC config: reserved channelConfiguration {channel_configuration}")
    core_object_type = object_type
    extension_index = -1
    if object_type in (5, 29):
        extension_index = reader.read(4, "extensionSamplingFrequencyIndex")
        sample_rate = reader.sample_rate(extension_index, "extensionSamplingFrequencyIndex")
        core_object_type = reader.object_type()
        if core_object_type == 22:
            raise ProtocolError("AAC config: SBR over ER BSAC (object type 22) is not supported")
    frame_length = 1024
    if core_object_type in _AAC_GA_OBJECT_TYPES and reader.read(1, "GASpecificConfig"):
        frame_length = 960
    remaining_bits = reader.rest()
    return AacConfig(
        object_type=object_type,
        sample_rate=sample_rate,
        channels=channels,
        frame_length=frame_length,
        sampling_frequency_index=frequency_index,
        core_sample_rate=core_sample_rate,
        channel_configuration=channel_configuration,
        extension_sampling_frequency_index=extension_index,
        core_object_type=core_object_type,
        remaining_bits=remaining_bits,
    )
