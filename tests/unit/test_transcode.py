"""The transcoder in process: real H.264/AAC in (ffmpeg-made FLV through our demuxer), PyAV
decode/scale/encode in threads, units out to per-variant sinks on the loop."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest
from tests.integration.media import demux_flv as demux
from tests.integration.media import make_flv

from owncast_fast.media.hub import HubItem, MediaHub, StreamEnd, StreamStart, TrackConfig
from owncast_fast.media.ladder import VariantSpec
from owncast_fast.media.segmenter import Container, Segmenter, SegmentReady
from owncast_fast.media.transcode import Transcoder, VariantEncoder
from owncast_fast.media.units import TIMESCALE, AccessUnit, Track


def spec(index: int, **fields: Any) -> VariantSpec:
    base = {"videoBitrate": 800, "framerate": 30, "cpuUsageLevel": 0}
    return VariantSpec.from_setting(index, base | {"name": f"v{index}"} | fields)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> list[HubItem]:
    # 4 s of 640x360 at 30 fps, a keyframe every second (as OBS at keyint 1 s would send).
    path = make_flv(tmp_path_factory.mktemp("tc") / "src.flv", seconds=4, size="640x360", gop=30, bframes=2)
    return demux(path)


async def run_ladder(
    items: list[HubItem], specs: list[VariantSpec], *, pace: float = 0.0, **options: Any
) -> tuple[dict[int, list[HubItem]], Transcoder]:
    hub = MediaHub()
    out: dict[int, list[HubItem]] = {s.index: [] for s in specs}
    ended = {s.index: asyncio.Event() for s in specs}

    def sink(index: int) -> Callable[[HubItem], None]:
        def take(item: HubItem) -> None:
            out[index].append(item)
            if isinstance(item, StreamEnd):
                ended[index].set()

        return take

    # Unpaced input arrives far faster than real time: a deep queue keeps every frame, unless a
    # test wants to see the drop policy.
    options.setdefault("queue_frames", 1000)
    transcoder = Transcoder(hub, specs, {s.index: sink(s.index) for s in specs}, segment_seconds=1.0, **options)
    transcoder.start()
    hub.start()
    for item in items:
        if isinstance(item, TrackConfig):
            hub.set_config(item)
        elif isinstance(item, AccessUnit):
            hub.push(item)
            if pace and item.track is Track.VIDEO:
                await asyncio.sleep(pace)
            else:
                await asyncio.sleep(0)
    hub.end("test over")
    async with asyncio.timeout(60):
        for event in ended.values():
            await event.wait()
    await transcoder.close()
    return out, transcoder


def video_units(items: list[HubItem]) -> list[AccessUnit]:
    return [i for i in items if isinstance(i, AccessUnit) and i.track is Track.VIDEO]


def decode_all(items: list[HubItem]) -> list[av.VideoFrame]:
    config = next(i for i in items if isinstance(i, TrackConfig) and i.track is Track.VIDEO)
    decoder = av.CodecContext.create("h264", "r")
    decoder.extradata = config.config
    frames: list[av.VideoFrame] = []
    for unit in video_units(items):
        packet = av.Packet(unit.data)
        packet.pts = unit.pts
        frames.extend(decoder.decode(packet))  # type: ignore[arg-type]
    frames.extend(decoder.decode(None))  # type: ignore[arg-type]
    return frames


def test_ladder_scales_encodes_and_keeps_audio(source: list[HubItem]) -> None:
    specs = [
        spec(1, scaledHeight=180, framerate=15, audioBitrate=64, cpuUsageLevel=2),  # AAC re-encoded at 64k
        spec(2, scaledWidth=320, scaledHeight=240, audioPassthrough=True),
    ]
    out, transcoder = asyncio.run(run_ladder(source, specs))
    assert transcoder.stats.decoded_frames == 120
    low, square = out[1], out[2]
    low_video = next(i for i in low if isinstance(i, TrackConfig) and i.track is Track.VIDEO)
    assert (low_video.width, low_video.height) == (320, 180)  # 16:9 kept, even width
    assert low_video.codecs.startswith("avc1.64")  # high profile at veryfast (ultrafast is baseline)
    frames = decode_all(low)
    assert (frames[0].width, frames[0].height) == (320, 180)
    assert 58 <= len(frames) <= 62  # 30 -> 15 fps over 4 s
    assert len(decode_all(square)) == 120
    # Keyframes: one per second, on the source's keyframes, identical in both variants.
    source_keys = [u.pts for u in video_units(source) if u.keyframe]
    for items in (low, square):
        assert [u.pts for u in video_units(items) if u.keyframe] == source_keys
    # Audio: re-encoded AAC at 64k for one, the source's own units for the other.
    low_audio = next(i for i in low if isinstance(i, TrackConfig) and i.track is Track.AUDIO)
    source_audio = next(i for i in source if isinstance(i, TrackConfig) and i.track is Track.AUDIO)
    assert low_audio.codec == "mp4a" and low_audio.config != b""
    square_audio = [i for i in square if isinstance(i, AccessUnit) and i.track is Track.AUDIO]
    assert square_audio == [i for i in source if isinstance(i, AccessUnit) and i.track is Track.AUDIO]
    assert source_audio in square
    low_audio_units = [i for i in low if isinstance(i, AccessUnit) and i.track is Track.AUDIO]
    assert len(low_audio_units) >= 0.9 * len(square_audio)
    assert isinstance(low[-1], StreamEnd) and isinstance(square[-1], StreamEnd)
    health = transcoder.health_json()
    assert [h["index"] for h in health] == [1, 2]
    assert all(h["encodedFrames"] > 0 and h["droppedFrames"] == 0 and h["speed"] > 1 for h in health)


def test_transcoded_output_segments_like_the_source(source: list[HubItem]) -> None:
    out, _ = asyncio.run(run_ladder(source, [spec(1, scaledHeight=180)]))
    for container in (Container.FMP4, Container.MPEGTS):
        source_cuts, cuts = _cuts(source, container), _cuts(out[1], container)
        # Players switch variants at the same points (the last segment's end is an estimate).
        assert len(source_cuts) == len(cuts) == 4
        assert source_cuts[:-1] == cuts[:-1]


def _cuts(items: list[HubItem], container: Container) -> list[int]:
    segmenter = Segmenter(container, target_duration=1.0, part_target=1 / 3)
    events = []
    for item in items:
        events += segmenter.push(item, 0.0)
    events += segmenter.flush()
    return [round(e.duration * TIMESCALE) for e in events if isinstance(e, SegmentReady)]


def test_long_source_gop_still_gets_a_keyframe_every_segment(tmp_path: Path) -> None:
    items = demux(make_flv(tmp_path / "gop.flv", seconds=4, gop=300, bframes=0))  # one keyframe
    out, _ = asyncio.run(run_ladder(items, [spec(1, scaledHeight=120)]))
    keys = [u.pts for u in video_units(out[1]) if u.keyframe]
    assert len(keys) == 4
    assert all(b - a == TIMESCALE for a, b in itertools.pairwise(keys))


def test_an_encoder_that_cannot_keep_up_drops_frames_and_says_so(
    source: list[HubItem], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = VariantEncoder._encode
    peak = 0

    def slow_encode(self: VariantEncoder, *args: Any) -> None:
        nonlocal peak
        peak = max(peak, self.frames_queued)
        time.sleep(0.08)  # ~12 fps: far slower than the 30 fps source
        original(self, *args)

    monkeypatch.setattr(VariantEncoder, "_encode", slow_encode)
    out, transcoder = asyncio.run(run_ladder(source, [spec(1, scaledHeight=120)], pace=1 / 30, queue_frames=4))
    stats = transcoder.encoders[0].stats
    assert stats.dropped_frames > 30
    assert peak <= 4  # the queue never grew past its bound
    assert stats.encoded_frames + stats.dropped_frames == 120
    assert transcoder.lagging() == [stats]
    assert transcoder.health_json()[0]["droppedFramesLastMinute"] == stats.dropped_frames
    frames = decode_all(out[1])
    assert len(frames) == stats.encoded_frames  # what was encoded still decodes
    keys = [u for u in video_units(out[1]) if u.keyframe]
    assert len(keys) >= 4  # a dropped keyframe makes the next frame one


def test_stream_restart_reopens_the_encoders(source: list[HubItem]) -> None:
    twice: list[HubItem] = [*source, StreamStart(), *source]

    async def go() -> dict[int, list[HubItem]]:
        hub = MediaHub()
        got: list[HubItem] = []
        first_ended, ended = asyncio.Event(), asyncio.Event()

        def take(item: HubItem) -> None:
            got.append(item)
            ends = sum(isinstance(i, StreamEnd) for i in got)
            if ends >= 1:
                first_ended.set()
            if ends == 2:
                ended.set()

        transcoder = Transcoder(hub, [spec(1, scaledHeight=120)], {1: take}, segment_seconds=1.0, queue_frames=1000)
        transcoder.start()
        hub.start()
        for item in twice:
            if isinstance(item, StreamStart):
                hub.end("publisher left")
                # A publisher takes a moment to come back; unpaced, the second stream would pile
                # up behind the first and meet the inbox bound (dropped, by design).
                async with asyncio.timeout(60):
                    await first_ended.wait()
                hub.start()
            elif isinstance(item, TrackConfig):
                hub.set_config(item)
            elif isinstance(item, AccessUnit):
                hub.push(item)
                await asyncio.sleep(0)
        hub.end("done")
        async with asyncio.timeout(60):
            await ended.wait()
        await transcoder.close()
        return {1: got}

    got = asyncio.run(go())[1]
    configs = [i for i in got if isinstance(i, TrackConfig) and i.track is Track.VIDEO]
    assert len(configs) == 2  # each stream starts with its own encoder (and init segment)
    assert any(isinstance(i, StreamStart) for i in got)
