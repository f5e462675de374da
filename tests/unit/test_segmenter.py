"""The sans-I/O segmenter on real media: cut rules, parts, discontinuities, bad timelines.

Units come from an ffmpeg-made FLV through the real demuxer, so configurations and timestamps are
what a publisher sends; the output is checked by demuxing it again with PyAV and ffprobe.
"""

from __future__ import annotations

import dataclasses
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest
from tests.integration.media import demux_flv as demux
from tests.integration.media import make_flv

from owncast_fast.media.hub import HubItem, StreamEnd, StreamStart, TrackConfig
from owncast_fast.media.segmenter import (
    MAX_SEGMENT_FACTOR,
    Container,
    InitReady,
    PartReady,
    Segmenter,
    SegmenterEvent,
    SegmentReady,
)
from owncast_fast.media.units import TIMESCALE, AccessUnit, Track

NOW = 1_800_000_000.0  # wall-clock anchor handed to the segmenter


@pytest.fixture(scope="session")
def av_items(tmp_path_factory: pytest.TempPathFactory) -> list[HubItem]:
    # 7 s, a keyframe every second, B-frames: segments of 2 s target cut at keyframes.
    path = make_flv(tmp_path_factory.mktemp("seg") / "av.flv", seconds=7, gop=30, bframes=2)
    return demux(path)


def run(segmenter: Segmenter, items: list[HubItem], *, end: bool = True) -> list[SegmenterEvent]:
    events = segmenter.push(StreamStart(), NOW)
    for n, item in enumerate(items):
        events += segmenter.push(item, NOW + 100 + n)  # arrival times; only the first anchors
    if end:
        events += segmenter.push(StreamEnd("done"), NOW + 100)
    return events


def units(items: list[HubItem], track: Track) -> list[AccessUnit]:
    return [i for i in items if isinstance(i, AccessUnit) and i.track is track]


def segments(events: list[SegmenterEvent]) -> list[SegmentReady]:
    return [e for e in events if isinstance(e, SegmentReady)]


def test_fmp4_segments_start_on_keyframes_and_honour_the_target(av_items: list[HubItem]) -> None:
    events = run(Segmenter(Container.FMP4, target_duration=2.0, part_target=0.5), av_items)
    assert isinstance(events[0], InitReady) and events[0].generation == 1
    done = segments(events)
    assert [s.msn for s in done] == list(range(len(done)))
    assert all(s.independent and not s.discontinuity for s in done)
    assert all(s.duration >= 2.0 for s in done[:-1])
    assert sum(s.duration for s in done) == pytest.approx(7.0, abs=0.05)
    # Program date-time: anchored at the arrival of the unit that starts the first segment (the
    # first video keyframe; `run` passes NOW + 100 + its index), then media time: later arrivals
    # do not move it.
    first = next(
        n for n, i in enumerate(av_items) if isinstance(i, AccessUnit) and i.keyframe and i.track is Track.VIDEO
    )
    for segment in done:
        offset = sum(s.duration for s in done if s.msn < segment.msn)
        expected = datetime.fromtimestamp(NOW + 100 + first, UTC) + timedelta(seconds=offset)
        assert abs(segment.program_date_time - expected) < timedelta(milliseconds=2)


def test_fmp4_parts_make_up_each_segment(av_items: list[HubItem]) -> None:
    events = run(Segmenter(Container.FMP4, target_duration=2.0, part_target=0.5), av_items)
    for segment in segments(events):
        parts = [e for e in events if isinstance(e, PartReady) and e.msn == segment.msn]
        assert [p.index for p in parts] == list(range(len(parts)))
        assert parts[0].independent
        assert all(p.duration <= 0.5 + 1e-9 for p in parts)  # never above the part target
        assert sum(p.duration for p in parts) == pytest.approx(segment.duration, abs=1e-6)
        assert segment.data.endswith(b"".join(p.data for p in parts))
        assert segment.data[4:8] == b"styp"


def test_fmp4_output_demuxes_to_the_exact_units(av_items: list[HubItem], tmp_path: Path) -> None:
    events = run(Segmenter(Container.FMP4, target_duration=2.0, part_target=0.5), av_items)
    init = next(e for e in events if isinstance(e, InitReady))
    path = tmp_path / "out.mp4"
    path.write_bytes(init.data + b"".join(s.data for s in segments(events)))
    source = units(av_items, Track.VIDEO)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        packets = [p for p in container.demux(video) if p.size]
        assert len(packets) == len(source)
        for packet, unit in zip(packets, source, strict=True):
            assert bytes(packet) == unit.data
            assert packet.dts * video.time_base == pytest.approx((unit.dts - source[0].dts) / TIMESCALE, abs=1e-6)
            assert packet.pts * video.time_base == pytest.approx((unit.pts - source[0].dts) / TIMESCALE, abs=1e-6)
            assert packet.is_keyframe == unit.keyframe
    with av.open(str(path)) as container:
        audio_packets = [p for p in container.demux(container.streams.audio[0]) if p.size]
        assert [bytes(p) for p in audio_packets] == [u.data for u in units(av_items, Track.AUDIO)]


def test_ts_segments_are_each_decodable(av_items: list[HubItem], tmp_path: Path) -> None:
    events = run(Segmenter(Container.MPEGTS, target_duration=2.0, part_target=0.5), av_items)
    assert not any(isinstance(e, InitReady | PartReady) for e in events)
    done = segments(events)
    assert len(done) >= 3
    for segment in done:
        assert segment.data[0] == 0x47 and len(segment.data) % 188 == 0
        path = tmp_path / f"{segment.msn}.ts"
        path.write_bytes(segment.data)
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert probe.returncode == 0 and probe.stderr == ""
    frames = 0
    for segment in done:
        with av.open(str(tmp_path / f"{segment.msn}.ts")) as container:
            frames += sum(1 for _ in container.decode(video=0))
    assert frames == len(units(av_items, Track.VIDEO))


def test_reconnect_starts_a_discontinuity_with_a_new_init(av_items: list[HubItem]) -> None:
    segmenter = Segmenter(Container.FMP4, target_duration=2.0, part_target=0.5)
    first = run(segmenter, av_items)
    second = run(segmenter, av_items)
    assert segments(second)[0].discontinuity and not any(s.discontinuity for s in segments(second)[1:])
    assert [e.generation for e in second if isinstance(e, InitReady)] == [2]
    assert segments(second)[0].msn == segments(first)[-1].msn + 1


def test_codec_change_mid_stream_cuts_and_restarts(av_items: list[HubItem]) -> None:
    segmenter = Segmenter(Container.FMP4, target_duration=2.0, part_target=0.5)
    half = len(av_items) // 2
    events = run(segmenter, av_items[:half], end=False)
    config = next(i for i in av_items if isinstance(i, TrackConfig) and i.track is Track.VIDEO)
    changed = dataclasses.replace(config, width=config.width + 2)
    events = segmenter.push(changed, NOW)
    assert segments(events) and not segments(events)[-1].discontinuity
    events = []
    for item in av_items[half:]:
        events += segmenter.push(item, NOW)
    assert [e.generation for e in events if isinstance(e, InitReady)] == [2]
    assert segments(events)[0].discontinuity


def test_no_keyframe_no_segment_and_the_drops_are_counted(av_items: list[HubItem]) -> None:
    segmenter = Segmenter(Container.FMP4, target_duration=2.0, part_target=0.5)
    configs = [i for i in av_items if isinstance(i, TrackConfig)]
    inter = [u for u in units(av_items, Track.VIDEO) if not u.keyframe]
    assert run(segmenter, [*configs, *inter]) == []
    assert segmenter.dropped_units == len(inter)


def test_keyframes_that_stop_coming_force_a_bounded_cut(av_items: list[HubItem]) -> None:
    segmenter = Segmenter(Container.FMP4, target_duration=1.0, part_target=0.5)
    configs = [i for i in av_items if isinstance(i, TrackConfig) and i.track is Track.VIDEO]
    video = units(av_items, Track.VIDEO)
    stream = [video[0]] + [u._replace(keyframe=False) for u in video[1:]]
    events = run(segmenter, [*configs, *stream])
    done = segments(events)
    assert segmenter.forced_cuts >= 1
    assert done[0].independent and not done[1].independent
    assert all(s.duration <= MAX_SEGMENT_FACTOR * 1.0 + 0.05 for s in done)


def test_timestamp_jump_starts_a_discontinuity(av_items: list[HubItem]) -> None:
    segmenter = Segmenter(Container.FMP4, target_duration=2.0, part_target=0.5)
    shifted: list[HubItem] = []
    jump = 60 * TIMESCALE
    seen_units = 0
    for item in av_items:
        if isinstance(item, AccessUnit):
            seen_units += 1
            if seen_units > len(av_items) // 2:
                item = item._replace(dts=item.dts + jump, pts=item.pts + jump)
        shifted.append(item)
    done = segments(run(segmenter, shifted))
    assert any(s.discontinuity for s in done)
    assert all(s.duration < 10 for s in done)


def test_audio_only_stream_is_segmented_after_a_second_of_audio(av_items: list[HubItem]) -> None:
    segmenter = Segmenter(Container.FMP4, target_duration=2.0, part_target=0.5)
    audio = [i for i in av_items if not (isinstance(i, TrackConfig | AccessUnit) and i.track is Track.VIDEO)]
    events = run(segmenter, audio)
    done = segments(events)
    assert done and all(s.duration >= 1.9 for s in done[:-1])
    assert any(isinstance(e, PartReady) for e in events)


def test_bad_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="need 0 < part_target <= target_duration"):
        Segmenter(target_duration=1.0, part_target=2.0)


def test_audio_that_steps_back_a_little_keeps_counting_forward(av_items: list[HubItem]) -> None:
    """ffmpeg -stream_loop: each wrap's first audio frame is 1 ms after the previous one."""
    configs = [i for i in av_items if isinstance(i, TrackConfig) and i.track is Track.AUDIO]
    audio = units(av_items, Track.AUDIO)[:100]
    wrapped = list(audio)
    for _ in range(3):
        wrapped += [u._replace(dts=u.dts - audio[0].dts + wrapped[-1].dts + 90) for u in audio]
    wrapped = [u._replace(pts=u.dts) for u in wrapped]
    segmenter = Segmenter(Container.FMP4, target_duration=1.0, part_target=0.5)
    events = run(segmenter, [*configs, *wrapped])  # the fMP4 writer raises if audio went back
    assert segments(events)
