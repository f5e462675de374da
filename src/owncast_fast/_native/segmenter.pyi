"""The HLS muxers (Cython, ext/segmenter.pyx): fMP4/CMAF from ext/fmp4.pxi, MPEG-TS from ext/mpegts.pxi.

Twins: `owncast_fast._pure.fmp4` and `owncast_fast._pure.mpegts` (same API, bytes and error
messages). Times are integers in each
track's timescale; a stream that breaks the format's limits (dts going backwards, offsets beyond
32 bits, too much pending) raises `owncast_fast.errors.ProtocolError`, a bad argument `ValueError`.
"""

from collections.abc import Iterable
from typing import ClassVar, final

from owncast_fast._native.flv import PayloadView

_BytesLike = bytes | bytearray | memoryview | PayloadView

@final
class Fmp4Track:
    """One track of an fMP4 rendition: what the init segment describes and fragments refer to.

    `codec` is "avc1", "hvc1", "av01" or "vp09" (kind "video") or "mp4a" (kind "audio"); `config` is
    the avcC / hvcC / av1C / vpcC record (vpcC without its FullBox header) or the AAC
    AudioSpecificConfig. Video uses the 90 kHz timescale, audio its sample rate.
    """

    def __init__(
        self,
        track_id: int,
        kind: str,
        codec: str,
        config: _BytesLike,
        timescale: int,
        *,
        width: int = 0,
        height: int = 0,
        sample_rate: int = 0,
        channels: int = 0,
    ) -> None: ...
    @property
    def track_id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def codec(self) -> str: ...
    @property
    def config(self) -> bytes: ...
    @property
    def timescale(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def channels(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def init_segment(tracks: Iterable[Fmp4Track]) -> bytes:
    """ftyp + moov describing `tracks`, in order; the EXT-X-MAP of every fragment that follows."""

@final
class FragmentWriter:
    """Buffers access units per track and emits them as one moof + mdat per `flush()`."""

    def __init__(self, tracks: Iterable[Fmp4Track]) -> None: ...
    def add(self, track_id: int, dts: int, pts: int, keyframe: bool, data: _BytesLike) -> None:
        """Queue one access unit; times are in the track's timescale. The data is kept, not copied."""
    def pending(self, track_id: int) -> int:
        """How many samples of that track the next flush will write."""
    def flush(self, sequence_number: int, next_dts: dict[int, int] | None = None) -> bytes:
        """One moof + mdat holding every pending sample, tracks in order (b"" if none).

        A track's last sample lasts until `next_dts[track_id]` when given, else as long as the
        sample before it (in this flush or the last one written), else 1024 ticks (audio) or one
        frame at 30 fps (video).
        """
    def styp(self) -> bytes:
        """The 'styp' box that opens a media segment (before its first fragment)."""

@final
class TsMuxer:
    """MPEG-TS muxer for one HLS rendition: PAT/PMT per segment, one PES per access unit.

    PIDs: PMT 0x1000, video 0x100, audio 0x101; the PCR is on the video PID (audio when there is
    no video). Timestamps are 90 kHz ticks, taken mod 2**33.
    """

    PACKET_SIZE: ClassVar[int]
    PMT_PID: ClassVar[int]
    VIDEO_PID: ClassVar[int]
    AUDIO_PID: ClassVar[int]
    def __init__(
        self,
        *,
        video_codec: str | None = None,
        video_config: _BytesLike = b"",
        audio_config: _BytesLike = b"",
    ) -> None: ...
    def set_video_config(self, video_config: _BytesLike) -> None:
        """Replace the avcC/hvcC record: its length size applies from the next unit, its parameter
        sets from the next keyframe (they are only ever inserted before keyframes)."""
    def start_segment(self) -> bytes:
        """PAT and PMT, to begin a segment (two TS packets)."""
    def write_video(self, dts: int, pts: int, keyframe: bool, data: _BytesLike) -> bytes:
        """One video access unit (AVCC) as TS packets: one PES of Annex B with an AUD first."""
    def write_audio(self, pts: int, data: _BytesLike) -> bytes:
        """One raw AAC frame as TS packets: one PES holding one ADTS frame (b"" for an empty frame)."""
