"""FLV demuxer: frames go to the hub as views of the RTMP message payload, configs as bytes."""

from __future__ import annotations

from owncast_fast.ingest.rtmp.demux import FlvDemuxer
from owncast_fast.media.hub import TrackConfig
from owncast_fast.media.units import AccessUnit, Track

# avcC: version 1, High profile 4.0, 4-byte NAL lengths, one SPS, one PPS.
SPS = b"\x67\x64\x00\x28\xac"
PPS = b"\x68\xee\x3c\x80"
AVCC = b"\x01\x64\x00\x28\xff\xe1" + len(SPS).to_bytes(2, "big") + SPS + b"\x01" + len(PPS).to_bytes(2, "big") + PPS
AAC_LC_44100_STEREO = b"\x12\x10"
IDR = b"\x00\x00\x00\x04\x65\x88\x84\x00"


class ListSink:
    def __init__(self) -> None:
        self.configs: list[TrackConfig] = []
        self.units: list[AccessUnit] = []

    def set_config(self, config: TrackConfig) -> None:
        self.configs.append(config)

    def push(self, unit: AccessUnit) -> None:
        self.units.append(unit)


def test_frames_are_read_only_views_of_the_payload_and_configs_are_bytes() -> None:
    sink = ListSink()
    demuxer = FlvDemuxer(sink)
    demuxer.video(0, b"\x17\x00\x00\x00\x00" + AVCC)
    demuxer.audio(0, b"\xaf\x00" + AAC_LC_44100_STEREO)
    video = b"\x17\x01\x00\x00\x21" + IDR
    audio = b"\xaf\x01" + b"\x21\x10\x04"
    demuxer.video(40, video)
    demuxer.audio(23, audio)

    assert [(c.track, c.codecs, c.config) for c in sink.configs] == [
        (Track.VIDEO, "avc1.640028", AVCC),
        (Track.AUDIO, "mp4a.40.2", AAC_LC_44100_STEREO),
    ]
    assert all(type(config.config) is bytes for config in sink.configs)
    first, second = sink.units
    assert (first.track, first.dts, first.pts, first.keyframe, first.data) == (Track.VIDEO, 3600, 6570, True, IDR)
    assert (second.track, second.dts, second.data) == (Track.AUDIO, 2070, b"\x21\x10\x04")
    for unit, payload in ((first, video), (second, audio)):
        assert memoryview(unit.data).readonly
        assert unit.data.obj is payload
