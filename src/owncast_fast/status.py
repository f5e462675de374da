"""What the server knows about the live stream right now (read by /api/status and admin status).

Written only on the event-loop thread by the ingest; read from any thread (Robyn runs sync
handlers on its worker threads). Readers get a consistent view because every change replaces
whole immutable values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class StreamDetails:
    """Owncast's `InboundStreamDetails`, from onMetaData plus what we measure."""

    video_codec: str = "Unknown"
    audio_codec: str = "No audio"
    encoder: str = ""
    width: int = 0
    height: int = 0
    video_bitrate: int = 0  # kbit/s, as announced by the encoder
    audio_bitrate: int = 0
    framerate: float = 0.0
    measured_video_bitrate: int = 0  # kbit/s, from the media we receive
    measured_audio_bitrate: int = 0
    measured_framerate: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "videoCodec": self.video_codec,
            "audioCodec": self.audio_codec,
            "encoder": self.encoder,
            "width": self.width,
            "height": self.height,
            "videoBitrate": self.video_bitrate or self.measured_video_bitrate,
            "audioBitrate": self.audio_bitrate or self.measured_audio_bitrate,
            "framerate": self.framerate or self.measured_framerate,
            "measuredVideoBitrate": self.measured_video_bitrate,
            "measuredAudioBitrate": self.measured_audio_bitrate,
            "measuredFramerate": self.measured_framerate,
        }


@dataclass(frozen=True, slots=True)
class Broadcaster:
    remote_addr: str
    time: datetime
    details: StreamDetails = field(default_factory=StreamDetails)


@dataclass(slots=True)
class StreamStatus:
    broadcaster: Broadcaster | None = None
    last_connect_time: datetime | None = None
    last_disconnect_time: datetime | None = None
    viewer_count: int = 0  # active viewers; counted by the viewer tracker
    # Owncast's `currentBroadcast`: the variants and latency level snapshotted at connect.
    output_settings: list[dict[str, Any]] = field(default_factory=list)
    latency_level: int = 0

    @property
    def online(self) -> bool:
        return self.broadcaster is not None
