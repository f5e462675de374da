# The MPEG-TS half of the `owncast_fast._native.segmenter` stub (Cython, built from ext/mpegts.pxi via
# ext/segmenter.pyx); merged into segmenter.pyi with the fMP4 half. Twin: owncast_fast._pure.mpegts.

from typing import ClassVar, final

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
        video_config: bytes | bytearray | memoryview = b"",
        audio_config: bytes | bytearray | memoryview = b"",
    ) -> None: ...
    def set_video_config(self, video_config: bytes | bytearray | memoryview) -> None:
        """Replace the avcC/hvcC record: its length size applies from the next unit, its parameter
        sets from the next keyframe (they are only ever inserted before keyframes)."""
    def start_segment(self) -> bytes:
        """PAT and PMT, to begin a segment (two TS packets)."""
    def write_video(self, dts: int, pts: int, keyframe: bool, data: bytes | bytearray | memoryview) -> bytes:
        """One video access unit (AVCC) as TS packets: one PES of Annex B with an AUD first."""
    def write_audio(self, pts: int, data: bytes | bytearray | memoryview) -> bytes:
        """One raw AAC frame as TS packets: one PES holding one ADTS frame (b"" for an empty frame)."""
