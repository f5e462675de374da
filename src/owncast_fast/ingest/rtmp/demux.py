"""RTMP audio/video messages -> track configs and access units for the media hub.

Per-frame Python over the per-byte Cython parser (`owncast_fast._native.flv`). It keeps what a
stream needs between frames: the current decoder configurations (the NAL length size of AVC and
HEVC comes from them), and the last few seconds of frame sizes for the measured bitrate and
frame rate shown in the admin status. Frames go on as the parser's read-only views of the message
payload (no copy); a decoder configuration record, kept for the whole stream, is copied into
`bytes` once.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Protocol

from owncast_fast._native import flv
from owncast_fast.media.hub import TrackConfig
from owncast_fast.media.units import AUDIO, MS_TO_TICKS, VIDEO, AccessUnit, Track
from owncast_fast.status import StreamDetails

log = logging.getLogger(__name__)

# onMetaData codec ids -> the names Owncast shows (reference/owncast-behavior.md §4.1).
VIDEO_CODEC_NAMES = {7: "H.264", 12: "H.265"}
AUDIO_CODEC_NAMES = {2: "MP3", 10: "AAC", 11: "Speex"}
FOURCC_NAMES = {"avc1": "H.264", "hvc1": "H.265", "av01": "AV1", "vp09": "VP9"}
# Frames kept for the measured rates: 4 s of 60 fps video, ~4 s of 48 kHz AAC.
RATE_WINDOW = 240


class MediaSink(Protocol):
    def set_config(self, config: TrackConfig) -> None: ...
    def push(self, unit: AccessUnit) -> None: ...


class _RateMeter:
    """Bitrate and frame rate over the last RATE_WINDOW frames, on the media timeline."""

    def __init__(self) -> None:
        self._frames: collections.deque[tuple[int, int]] = collections.deque(maxlen=RATE_WINDOW)
        self._bytes = 0

    def add(self, timestamp_ms: int, size: int) -> None:
        if len(self._frames) == self._frames.maxlen:
            self._bytes -= self._frames[0][1]
        self._frames.append((timestamp_ms, size))
        self._bytes += size

    def rates(self) -> tuple[int, float]:
        """(kbit/s, frames/s), or zeros before two frames a non-zero time apart."""
        if len(self._frames) < 2:
            return 0, 0.0
        span_ms = self._frames[-1][0] - self._frames[0][0]
        if span_ms <= 0:
            return 0, 0.0
        # The last frame's bytes are not inside the span between first and last timestamps.
        bits = (self._bytes - self._frames[-1][1]) * 8
        return round(bits / span_ms), round((len(self._frames) - 1) * 1000 / span_ms, 2)


class FlvDemuxer:
    def __init__(self, sink: MediaSink) -> None:
        self._sink = sink
        self._nal_length_size = 4
        self._video_config: TrackConfig | None = None
        self._audio_config: TrackConfig | None = None
        self._video_rate = _RateMeter()
        self._audio_rate = _RateMeter()
        self._metadata: dict[str, Any] = {}
        self.video_frames = 0
        self.audio_frames = 0
        self.frames_without_config = 0
        self._warned: set[str] = set()

    # -- inputs --------------------------------------------------------------------------------

    def metadata(self, values: dict[str, Any]) -> None:
        self._metadata = values

    def video(self, timestamp_ms: int, payload: bytes) -> None:
        tag = flv.parse_video_tag(payload, self._nal_length_size)
        if tag.packet_type == flv.PACKET_CONFIG:
            self._video_config = self._video_track_config(tag.codec, bytes(tag.data))
            self._sink.set_config(self._video_config)
        elif tag.packet_type == flv.PACKET_FRAME:
            if self._video_config is None:
                self._missing_config("video")
                return
            dts = timestamp_ms * MS_TO_TICKS
            pts = (timestamp_ms + tag.composition_time) * MS_TO_TICKS
            self.video_frames += 1
            self._video_rate.add(timestamp_ms, len(payload))
            self._sink.push(AccessUnit(VIDEO, dts, pts, tag.keyframe, tag.data))

    def audio(self, timestamp_ms: int, payload: bytes) -> None:
        tag = flv.parse_audio_tag(payload)
        if tag.packet_type == flv.PACKET_CONFIG:
            if tag.codec == "mp4a":
                record = bytes(tag.data)
                aac = flv.parse_aac_config(record)
                self._audio_config = TrackConfig(
                    Track.AUDIO,
                    "mp4a",
                    aac.codecs,
                    record,
                    sample_rate=aac.sample_rate,
                    channels=aac.channels,
                )
                self._sink.set_config(self._audio_config)
            return
        if self._audio_config is None:
            if tag.codec != "mp3":
                self._missing_config("audio" if tag.codec == "mp4a" else f"audio codec {tag.codec}")
                return
            # MP3 has no sequence header: the first frame defines the track.
            self._audio_config = TrackConfig(Track.AUDIO, "mp3", "mp4a.40.34", b"")
            self._sink.set_config(self._audio_config)
        ticks = timestamp_ms * MS_TO_TICKS
        self.audio_frames += 1
        self._audio_rate.add(timestamp_ms, len(payload))
        self._sink.push(AccessUnit(AUDIO, ticks, ticks, True, tag.data))

    # -- outputs -------------------------------------------------------------------------------

    def details(self) -> StreamDetails:
        """Owncast's streamDetails: announced values from onMetaData, plus measured rates."""
        meta = self._metadata
        video_kbps, fps = self._video_rate.rates()
        audio_kbps, _ = self._audio_rate.rates()
        return StreamDetails(
            video_codec=self._video_codec_name(meta.get("videocodecid")),
            audio_codec=self._audio_codec_name(meta.get("audiocodecid")),
            encoder=str(meta.get("encoder", "")),
            width=_int(meta.get("width")),
            height=_int(meta.get("height")),
            video_bitrate=_int(meta.get("videodatarate")),
            audio_bitrate=_int(meta.get("audiodatarate")),
            framerate=_float(meta.get("framerate")),
            measured_video_bitrate=video_kbps,
            measured_audio_bitrate=audio_kbps,
            measured_framerate=fps,
        )

    # -- helpers -------------------------------------------------------------------------------

    def _video_track_config(self, codec: str, record: bytes) -> TrackConfig:
        width = _int(self._metadata.get("width"))
        height = _int(self._metadata.get("height"))
        if codec == "avc1":
            avc = flv.parse_avc_config(record)
            self._nal_length_size = avc.nal_length_size
            return TrackConfig(Track.VIDEO, codec, avc.codecs, record, width=width, height=height)
        if codec == "hvc1":
            hevc = flv.parse_hevc_config(record)
            self._nal_length_size = hevc.nal_length_size
            return TrackConfig(Track.VIDEO, codec, hevc.codecs, record, width=width, height=height)
        # AV1 and VP9 pass through with their configuration record; their CODECS string is
        # refined by the segmenter's codec module from the record.
        return TrackConfig(Track.VIDEO, codec, codec, record, width=width, height=height)

    def _missing_config(self, what: str) -> None:
        self.frames_without_config += 1
        if what not in self._warned:
            self._warned.add(what)
            log.warning("RTMP: %s frames arrive without a sequence header; dropping them", what)

    def _video_codec_name(self, codec_id: object) -> str:
        if self._video_config is not None and codec_id is None:
            return FOURCC_NAMES.get(self._video_config.codec, "Unknown")
        return _codec_name(codec_id, VIDEO_CODEC_NAMES, FOURCC_NAMES, "Unknown")

    def _audio_codec_name(self, codec_id: object) -> str:
        if codec_id is None:
            return "No audio" if self._audio_config is None else _AUDIO_FOURCC.get(self._audio_config.codec, "")
        return _codec_name(codec_id, AUDIO_CODEC_NAMES, _AUDIO_FOURCC, "Unknown")


_AUDIO_FOURCC = {"mp4a": "AAC", "mp3": "MP3"}


def _codec_name(codec_id: object, by_number: dict[int, str], by_fourcc: dict[str, str], unknown: str) -> str:
    if isinstance(codec_id, str):
        return by_fourcc.get(codec_id, codec_id)
    if isinstance(codec_id, int | float) and not isinstance(codec_id, bool):
        number = int(codec_id)
        if number in by_number:
            return by_number[number]
        # Enhanced RTMP encoders announce FourCCs as numbers (e.g. 'hvc1' as 0x68766331).
        fourcc = number.to_bytes(4, "big", signed=False).decode("latin-1") if 0 < number < 1 << 32 else ""
        return by_fourcc.get(fourcc, unknown)
    return unknown


def _int(value: object) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return int(value)
    return 0


def _float(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return round(float(value), 3)
    return 0.0
