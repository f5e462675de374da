"""FLV audio/video tag payloads as carried in RTMP messages (compiled from ext/flv.pyx).

Twin: `owncast_fast._pure.flv` (same API, results and error messages). Every malformed input
raises `owncast_fast.errors.ProtocolError` with a message naming what broke. A parsed tag's `data`
is a read-only `PayloadView` of the payload `bytes`, not a copy (a payload in any other buffer is
copied into `bytes` once first); the twin gives a memoryview slice, which behaves the same.
"""

from typing import Final, final, overload

@final
class PayloadView:
    """A read-only window on part of a payload's `bytes`: one small object per frame where a
    memoryview slice costs two. It exports the bytes through the buffer protocol (read-only), so
    whatever takes a memoryview takes it; it keeps the payload alive."""

    @property
    def obj(self) -> bytes:
        """The payload viewed (as `memoryview.obj`)."""
    @property
    def readonly(self) -> bool: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, key: int, /) -> int: ...
    @overload
    def __getitem__(self, key: slice, /) -> memoryview: ...
    def __bytes__(self) -> bytes: ...
    def tobytes(self) -> bytes: ...
    def __hash__(self) -> int: ...

_BytesLike = bytes | bytearray | memoryview | PayloadView
_Payload = bytes | memoryview | PayloadView

PACKET_CONFIG: Final = 0
"""Sequence header: decoder configuration record (avcC/hvcC/av1C/vpcC) or AAC AudioSpecificConfig."""
PACKET_FRAME: Final = 1
"""Coded frame."""
PACKET_END: Final = 2
"""End of sequence."""
PACKET_METADATA: Final = 3
"""Enhanced RTMP video metadata (raw AMF in `data`), or a video info/command frame."""

@final
class VideoTag:
    """One FLV video tag (legacy or Enhanced RTMP header).

    `keyframe` is True when FrameType is 1 and, for AVC/HEVC coded frames, also when the frame
    holds an IDR (AVC type 5) or IRAP (HEVC types 16-23) NAL unit. `codec` is "" only for an
    Enhanced RTMP command frame, which names no FourCC.
    """

    def __init__(
        self,
        codec: str,
        packet_type: int,
        frame_type: int,
        keyframe: bool,
        composition_time: int,
        data: _Payload,
        nal_types: tuple[int, ...],
    ) -> None: ...
    @property
    def codec(self) -> str:
        """ "avc1", "hvc1", "av01" or "vp09" ("" for an Enhanced RTMP command frame)."""
    @property
    def packet_type(self) -> int:
        """One of the PACKET_* constants."""
    @property
    def frame_type(self) -> int:
        """1 key, 2 inter, 3 disposable, 4 generated key, 5 info/command frame."""
    @property
    def keyframe(self) -> bool: ...
    @property
    def composition_time(self) -> int:
        """Milliseconds, signed 24-bit; 0 where the packet has none."""
    @property
    def data(self) -> _Payload:
        """The payload after the FLV headers: the config record, the frame, or the command/AMF.

        From `parse_video_tag`, a read-only `PayloadView` sharing the payload's bytes (keeping them
        alive); from the constructor, what it was given."""
    @property
    def nal_types(self) -> tuple[int, ...]:
        """NAL unit types in order for AVC/HEVC coded frames; () otherwise."""

@final
class AudioTag:
    """One FLV audio tag."""

    def __init__(self, codec: str, sound_format: int, packet_type: int, data: _Payload) -> None: ...
    @property
    def codec(self) -> str:
        """One of mp4a, mp3, speex, pcm, nellymoser, g711a, g711u; else "flv-audio-<SoundFormat>"."""
    @property
    def sound_format(self) -> int: ...
    @property
    def packet_type(self) -> int:
        """PACKET_CONFIG for the AAC sequence header, PACKET_FRAME otherwise."""
    @property
    def data(self) -> _Payload:
        """As VideoTag.data: from `parse_audio_tag`, a read-only `PayloadView` of the payload."""

def parse_video_tag(payload: _BytesLike, nal_length_size: int = 4) -> VideoTag:
    """Parses an RTMP video message payload; NAL lengths use `nal_length_size` (1, 2 or 4) bytes."""

def parse_audio_tag(payload: _BytesLike) -> AudioTag:
    """Parses an RTMP audio message payload."""

def avcc_to_annexb(data: _BytesLike, nal_length_size: int = 4) -> bytes:
    """Rewrites length-prefixed NAL units as Annex B (00 00 00 01 before each unit)."""

class AvcConfig:
    """AVCDecoderConfigurationRecord; `extension` keeps the bytes after the PPS list verbatim."""

    def __init__(
        self,
        profile_idc: int,
        profile_compat: int,
        level_idc: int,
        nal_length_size: int,
        sps: tuple[bytes, ...],
        pps: tuple[bytes, ...],
        extension: bytes,
    ) -> None: ...
    @property
    def profile_idc(self) -> int: ...
    @property
    def profile_compat(self) -> int: ...
    @property
    def level_idc(self) -> int: ...
    @property
    def nal_length_size(self) -> int: ...
    @property
    def sps(self) -> tuple[bytes, ...]: ...
    @property
    def pps(self) -> tuple[bytes, ...]: ...
    @property
    def extension(self) -> bytes: ...
    @property
    def codecs(self) -> str:
        """RFC 6381 CODECS value, "avc1.PPCCLL"."""
    def __bytes__(self) -> bytes: ...

def parse_avc_config(data: _BytesLike) -> AvcConfig: ...

class HevcConfig:
    """HEVCDecoderConfigurationRecord; `arrays` is ((NAL unit type, units), ...)."""

    def __init__(
        self,
        general_profile_space: int,
        general_tier_flag: int,
        general_profile_idc: int,
        general_profile_compatibility_flags: int,
        general_constraint_indicator_flags: bytes,
        general_level_idc: int,
        min_spatial_segmentation_idc: int,
        parallelism_type: int,
        chroma_format_idc: int,
        bit_depth_luma_minus8: int,
        bit_depth_chroma_minus8: int,
        avg_frame_rate: int,
        constant_frame_rate: int,
        num_temporal_layers: int,
        temporal_id_nested: int,
        nal_length_size: int,
        arrays: tuple[tuple[int, tuple[bytes, ...]], ...],
        array_completeness: tuple[bool, ...],
    ) -> None: ...
    @property
    def general_profile_space(self) -> int: ...
    @property
    def general_tier_flag(self) -> int: ...
    @property
    def general_profile_idc(self) -> int: ...
    @property
    def general_profile_compatibility_flags(self) -> int: ...
    @property
    def general_constraint_indicator_flags(self) -> bytes: ...
    @property
    def general_level_idc(self) -> int: ...
    @property
    def min_spatial_segmentation_idc(self) -> int: ...
    @property
    def parallelism_type(self) -> int: ...
    @property
    def chroma_format_idc(self) -> int: ...
    @property
    def bit_depth_luma_minus8(self) -> int: ...
    @property
    def bit_depth_chroma_minus8(self) -> int: ...
    @property
    def avg_frame_rate(self) -> int: ...
    @property
    def constant_frame_rate(self) -> int: ...
    @property
    def num_temporal_layers(self) -> int: ...
    @property
    def temporal_id_nested(self) -> int: ...
    @property
    def nal_length_size(self) -> int: ...
    @property
    def arrays(self) -> tuple[tuple[int, tuple[bytes, ...]], ...]: ...
    @property
    def array_completeness(self) -> tuple[bool, ...]: ...
    @property
    def codecs(self) -> str:
        """RFC 6381 CODECS value per ISO/IEC 14496-15 Annex E, e.g. "hvc1.1.6.L93.B0"."""
    def __bytes__(self) -> bytes: ...

def parse_hevc_config(data: _BytesLike) -> HevcConfig: ...

class AacConfig:
    """AudioSpecificConfig; `sample_rate` is the output rate (the SBR rate for explicit HE-AAC)."""

    def __init__(
        self,
        object_type: int,
        sample_rate: int,
        channels: int,
        frame_length: int,
        sampling_frequency_index: int,
        core_sample_rate: int,
        channel_configuration: int,
        extension_sampling_frequency_index: int,
        core_object_type: int,
        remaining_bits: str,
    ) -> None: ...
    @property
    def object_type(self) -> int: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def frame_length(self) -> int: ...
    @property
    def sampling_frequency_index(self) -> int: ...
    @property
    def core_sample_rate(self) -> int: ...
    @property
    def channel_configuration(self) -> int: ...
    @property
    def extension_sampling_frequency_index(self) -> int: ...
    @property
    def core_object_type(self) -> int: ...
    @property
    def remaining_bits(self) -> str:
        """Every bit after the parsed fields, as "0"/"1" text, so that bytes() round-trips."""
    @property
    def codecs(self) -> str:
        """RFC 6381 CODECS value, "mp4a.40.<object_type>"."""
    def __bytes__(self) -> bytes: ...

def parse_aac_config(data: _BytesLike) -> AacConfig: ...
