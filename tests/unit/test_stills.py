"""Thumbnail and preview stills: which units make a still, the images themselves, and the maker.

The source is an ffmpeg-made FLV read through the real demuxer (so units and configurations are
what a publisher sends) showing a picture we know: red left half, blue right half. The images are
decoded again with PyAV and their pixels compared with that picture.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import subprocess
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from tests.integration.media import demux_flv, make_two_colour_flv, require_tool

from owncast_fast.media.hub import HubItem, MediaHub, StreamEnd, StreamStart, TrackConfig
from owncast_fast.media.stills import (
    StillError,
    StillJob,
    StillMaker,
    StillPlanner,
    make_stills,
    write_atomically,
)
from owncast_fast.media.units import TIMESCALE, AccessUnit, Track

RED, BLUE = (255, 0, 0), (0, 0, 255)
WAIT_LIMIT = 20.0  # seconds a maker test waits for a file or a counter


def make_source(path: Path, *, seconds: float, gop: int, size: str = "320x240") -> list[HubItem]:
    """Demuxed hub items of a two-colour FLV: red on the left, blue on the right, a moving white square."""
    return demux_flv(make_two_colour_flv(path, seconds=seconds, gop=gop, size=size))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> list[HubItem]:
    # 6 s, a keyframe every second.
    return make_source(tmp_path_factory.mktemp("stills") / "src.flv", seconds=6, gop=30)


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory: pytest.TempPathFactory) -> list[HubItem]:
    # 30 s with one keyframe every 10 s: a GOP far longer than the preview.
    return make_source(tmp_path_factory.mktemp("stills") / "long.flv", seconds=30, gop=300, size="160x120")


def video_config(items: list[HubItem]) -> TrackConfig:
    return next(i for i in items if isinstance(i, TrackConfig) and i.track is Track.VIDEO)


def video_units(items: list[HubItem]) -> list[AccessUnit]:
    return [i for i in items if isinstance(i, AccessUnit) and i.track is Track.VIDEO]


def plan(planner: StillPlanner, items: list[HubItem], *, interval_asked: bool = True) -> list[StillJob]:
    """Push a stream; after every item ask for a still, as a viewer asking all the time would,
    and make the one due: the jobs made, in order."""
    jobs: list[StillJob] = []
    for item in [StreamStart(), *items]:
        planner.push(item)
        job = planner.due(jobs[-1] if jobs else None) if interval_asked else None
        if job is not None:
            jobs.append(job)
    return jobs


def rgb_at(image: av.VideoFrame, x: int, y: int) -> tuple[int, int, int]:
    plane = image.reformat(format="rgb24").planes[0]
    offset = y * plane.line_size + x * 3
    pixel = bytes(plane)[offset : offset + 3]
    return pixel[0], pixel[1], pixel[2]


def assert_close(actual: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 40) -> None:
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (actual, expected)


def decode_all(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data)) as container:
        return list(container.decode(video=0))


# -- planner ----------------------------------------------------------------------------------


def test_first_still_about_a_second_after_the_first_keyframe_then_every_interval(source: list[HubItem]) -> None:
    jobs = plan(StillPlanner(interval=2.0), source)
    starts = [job.units[0].dts / TIMESCALE for job in jobs]
    units = video_units(source)
    first_keyframe = next(u for u in units if u.keyframe).dts / TIMESCALE
    assert starts[0] == pytest.approx(first_keyframe, abs=1e-3)
    # One keyframe a second, asked all the time: a new still every 2 s of media time, each from a keyframe.
    assert [round(s - starts[0]) for s in starts] == [0, 2, 4]
    for job in jobs:
        assert job.units[0].keyframe and job.config == video_config(source)
        span = (job.units[-1].dts - job.units[0].dts) / TIMESCALE
        assert 0.9 <= span < 1.0  # about a second: the preview's length, no more
        assert all(u.track is Track.VIDEO for u in job.units)


def test_nothing_is_made_until_asked_and_then_from_the_newest_window(source: list[HubItem]) -> None:
    planner = StillPlanner(interval=2.0)
    assert plan(planner, source, interval_asked=False) == []
    assert planner.latest is not None
    latest = planner.latest
    assert planner.due(None) is latest  # the first request of the stream: the newest full window
    assert round(latest.units[0].dts / TIMESCALE) == 4  # the keyframe at 4 s; the one at 5 s never filled
    assert planner.due(latest) is None  # made from the newest window: fresh
    older = dataclasses.replace(latest, units=tuple(u for u in video_units(source) if u.dts >= 3 * TIMESCALE))
    assert planner.due(older) is None  # made from the window at 3 s: less than 2 s older than the newest
    oldest = dataclasses.replace(latest, units=tuple(video_units(source)))
    assert planner.due(oldest) is latest  # made from the window at 0 s: stale


def test_window_stays_bounded_under_a_long_gop(long_gop: list[HubItem]) -> None:
    planner = StillPlanner(interval=20.0)
    peak_units = peak_bytes = 0
    jobs: list[StillJob] = []
    for item in [StreamStart(), *long_gop]:
        planner.push(item)
        job = planner.due(jobs[-1] if jobs else None)
        jobs += [job] if job is not None else []
        peak_units = max(peak_units, planner.window_units)
        peak_bytes = max(peak_bytes, planner.window_bytes)
    assert peak_units == 30  # one second at 30 fps, although each GOP lasts 10 s
    assert [round(job.units[0].dts / TIMESCALE) for job in jobs] == [0, 20]
    # Tighter bounds than the second of video: the window stops at the bound.
    tight = StillPlanner(interval=20.0, max_units=5, max_bytes=10**9)
    assert all(len(job.units) == 5 for job in plan(tight, long_gop))
    biggest = max(len(u.data) for u in video_units(long_gop))
    by_bytes = StillPlanner(interval=20.0, max_bytes=2 * biggest)
    for job in plan(by_bytes, long_gop):
        assert sum(len(u.data) for u in job.units) <= 2 * biggest


def test_stream_boundaries_reset_the_schedule(source: list[HubItem]) -> None:
    planner = StillPlanner(interval=60.0)
    first = plan(planner, source)
    assert len(first) == 1 and first[0].stream == 1
    planner.push(StreamEnd("gone"))
    assert planner.window_units == 0 and planner.latest is None and planner.due(first[0]) is None
    again = plan(planner, source)  # same timestamps again: a new stream, a still at once
    assert len(again) == 1 and again[0].stream == 2
    assert planner.due(first[0]) is planner.latest  # a still of the last stream is never fresh


def test_timeline_going_back_makes_a_still_due(source: list[HubItem]) -> None:
    planner = StillPlanner(interval=60.0)
    late = [i for i in source if not isinstance(i, AccessUnit) or i.dts >= 3 * TIMESCALE]
    made = plan(planner, late)
    assert [round(job.units[0].dts / TIMESCALE) for job in made] == [3]
    # No StreamStart: the publisher's clock restarted within the stream, from 0.
    again = []
    for item in source:
        if isinstance(item, AccessUnit):
            planner.push(item)
            job = planner.due(again[-1] if again else made[-1])
            again += [job] if job is not None else []
    assert [round(job.units[0].dts / TIMESCALE) for job in again] == [0]


def test_no_stills_without_a_decodable_video_track(source: list[HubItem]) -> None:
    audio_only = [i for i in source if not (isinstance(i, AccessUnit | TrackConfig) and i.track is Track.VIDEO)]
    assert plan(StillPlanner(interval=1.0), audio_only) == []
    av1 = [dataclasses.replace(i, codec="av01") if isinstance(i, TrackConfig) else i for i in source]
    planner = StillPlanner(interval=1.0)
    assert plan(planner, av1) == [] and planner.unsupported == "av01"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="interval and preview_seconds must be positive"):
        StillPlanner(interval=0)


# -- images -----------------------------------------------------------------------------------


def test_thumbnail_is_a_jpeg_of_the_live_picture(source: list[HubItem]) -> None:
    stills = make_stills(plan(StillPlanner(interval=2.0), source)[1])
    assert stills.jpeg[:3] == b"\xff\xd8\xff" and stills.jpeg[-2:] == b"\xff\xd9"
    (picture,) = decode_all(stills.jpeg)
    assert (picture.width, picture.height) == (320, 240)
    assert_close(rgb_at(picture, 40, 60), RED)
    assert_close(rgb_at(picture, 280, 60), BLUE)


@pytest.mark.parametrize("palette", [True, False])
def test_preview_is_an_animated_gif_of_the_live_picture(source: list[HubItem], palette: bool) -> None:
    stills = make_stills(plan(StillPlanner(interval=2.0), source)[0], palette=palette)
    assert stills.gif[:6] == b"GIF89a"
    frames = decode_all(stills.gif)
    assert 7 <= len(frames) <= 8  # 1 s at 8 fps
    assert all((f.width, f.height) == (480, 360) for f in frames)
    assert_close(rgb_at(frames[0], 60, 90), RED, tolerance=60)
    assert_close(rgb_at(frames[0], 420, 90), BLUE, tolerance=60)
    # The white bar moves: the frames differ.
    assert len({bytes(f.reformat(format="rgb24").planes[0]) for f in frames}) == len(frames)


def test_thumbnail_width_is_capped(tmp_path: Path) -> None:
    wide = make_source(tmp_path / "wide.flv", seconds=1.2, gop=30, size="1920x1080")
    job = plan(StillPlanner(interval=2.0), wide)[0]
    (picture,) = decode_all(make_stills(job).jpeg)
    assert (picture.width, picture.height) == (1280, 720)


def test_a_corrupt_unit_costs_frames_not_the_still(source: list[HubItem]) -> None:
    job = plan(StillPlanner(interval=2.0), source)[0]
    broken = list(job.units)
    broken[5] = broken[5]._replace(data=b"\x00\x00\x00\x05\xff\xff\xff\xff\xff")
    stills = make_stills(dataclasses.replace(job, units=tuple(broken)))
    assert_close(rgb_at(decode_all(stills.jpeg)[0], 40, 60), RED)


def test_an_undecodable_keyframe_is_a_still_error(source: list[HubItem]) -> None:
    job = plan(StillPlanner(interval=2.0), source)[0]
    garbage = tuple(u._replace(data=b"\x00\x00\x00\x04\x65\x00\x00\x00") for u in job.units[:1])
    with pytest.raises(StillError, match=r"^no picture decoded from 1 units \(\d failed to decode\)$"):
        make_stills(dataclasses.replace(job, units=garbage))


def test_write_atomically_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "thumbnail.jpg"
    write_atomically(target, b"one")
    write_atomically(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thumbnail.jpg"]


# -- the maker on a hub -----------------------------------------------------------------------


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll the maker's files and counters, which have no event to wait on (bounded: WAIT_LIMIT)."""
    async with asyncio.timeout(WAIT_LIMIT):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def publish(hub: MediaHub, items: list[HubItem], maker: StillMaker, *, start: bool = True) -> None:
    """Push like the demuxer does, faster than real time (the maker's tap takes each item in `push`).
    `start`: a new stream begins (else the items continue the live one)."""
    if start:
        hub.start()
    for item in items:
        if isinstance(item, TrackConfig):
            hub.set_config(item)
        elif isinstance(item, AccessUnit):
            hub.push(item)


def test_maker_makes_stills_when_asked_and_reverts_at_stream_end(source: list[HubItem], tmp_path: Path) -> None:
    asyncio.run(maker_makes_stills_and_reverts(source, tmp_path))


async def maker_makes_stills_and_reverts(source: list[HubItem], tmp_path: Path) -> None:
    directory = tmp_path / "tmp"
    directory.mkdir()
    (directory / "thumbnail.jpg").write_bytes(b"left over from the last run")
    hub = MediaHub()
    maker = StillMaker(hub, directory, interval=2.0)
    maker.start()
    try:
        await wait_for(lambda: not maker.thumbnail_path.exists())  # the server starts offline
        assert await maker.current() is None
        await publish(hub, source, maker)
        assert maker.made == 0  # nobody asked: nothing decoded
        # Three viewers at once: one still made, all three get it.
        first, second, third = await asyncio.gather(maker.current(), maker.current(), maker.current())
        assert first is not None and first is second is third and maker.made == 1 and maker.failures == 0
        (picture,) = decode_all(first.jpeg)
        assert_close(rgb_at(picture, 280, 60), BLUE)
        assert len(decode_all(first.gif)) >= 7
        assert await maker.current() is first and maker.made == 1  # fresh: served again
        # Owncast's layout on disk too.
        assert maker.thumbnail_path.read_bytes() == first.jpeg and maker.preview_path.read_bytes() == first.gif
        assert sorted(p.name for p in directory.iterdir()) == ["preview.gif", "thumbnail.jpg"]
        hub.end("publisher left")
        await wait_for(lambda: not maker.thumbnail_path.exists() and not maker.preview_path.exists())
        assert await maker.current() is None and maker.made == 1
    finally:
        await maker.close()
    assert hub.taps == () and hub.consumers == ()


def test_a_still_of_an_earlier_moment_is_remade_when_stale(source: list[HubItem], tmp_path: Path) -> None:
    asyncio.run(stale_still_is_remade(source, tmp_path))


async def stale_still_is_remade(source: list[HubItem], tmp_path: Path) -> None:
    hub = MediaHub()
    maker = StillMaker(hub, tmp_path, interval=2.0)
    maker.start()
    early = [i for i in source if not isinstance(i, AccessUnit) or i.dts < 2.5 * TIMESCALE]
    try:
        await publish(hub, early, maker)
        before = await maker.current()
        await publish(
            hub, [i for i in source if isinstance(i, AccessUnit) and i.dts >= 2.5 * TIMESCALE], maker, start=False
        )
        after = await maker.current()
        assert before is not None and after is not None and after is not before and maker.made == 2
    finally:
        await maker.close()


def test_maker_survives_failures_and_logs_once_per_stream(
    source: list[HubItem], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    maker = asyncio.run(maker_with_failures(source, tmp_path))
    assert maker.failures == 2  # one failed job per stream, however often it was asked for
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "owncast_fast.media.stills"]
    assert len(warnings) == 2
    assert warnings[0].getMessage().startswith("stills: could not make a thumbnail (no picture decoded from")


async def maker_with_failures(source: list[HubItem], tmp_path: Path) -> StillMaker:
    # Every keyframe of the first 3 s is garbage: stills of those windows fail, later ones work.
    def spoil(item: HubItem) -> HubItem:
        if isinstance(item, AccessUnit) and item.track is Track.VIDEO and item.keyframe and item.dts < 3 * TIMESCALE:
            return item._replace(data=b"\x00\x00\x00\x04\x65\x00\x00\x00")
        return item

    early = [spoil(i) for i in source if not isinstance(i, AccessUnit) or i.dts < 2.5 * TIMESCALE]
    rest = [i for i in source if isinstance(i, AccessUnit) and i.dts >= 2.5 * TIMESCALE]
    hub = MediaHub()
    maker = StillMaker(hub, tmp_path, interval=1.0)
    maker.start()
    try:
        for _ in range(2):  # two streams: one warning each
            await publish(hub, early, maker)
            assert [await maker.current() for _ in range(3)] == [None] * 3  # the logo; tried once
            await publish(hub, rest, maker, start=False)
            assert await maker.current() is not None and maker.made == 1
            hub.end("publisher left")
            await wait_for(lambda: not maker.thumbnail_path.exists())
            maker.made = 0
    finally:
        await maker.close()
    return maker


def test_hevc_sources_make_stills_too(tmp_path: Path) -> None:
    """H.265 from an MP4 (hvcC record + length-prefixed NAL units, as Enhanced RTMP carries them)."""
    path = tmp_path / "hevc.mp4"
    subprocess.run(
        [
            require_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", "color=c=blue:s=320x240:r=30", "-t", "1.2", "-c:v", "libx265", "-x265-params", "log-level=error",
            "-tag:v", "hvc1", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        record = bytes(stream.codec_context.extradata or b"")
        scale = stream.time_base * TIMESCALE
        units = tuple(
            AccessUnit(Track.VIDEO, int(p.dts * scale), int(p.pts * scale), p.is_keyframe, bytes(p))
            for p in container.demux(stream)
            if p.size and p.dts is not None and p.pts is not None
        )
    config = TrackConfig(Track.VIDEO, "hvc1", "hvc1", record, width=320, height=240)
    jobs = plan(StillPlanner(interval=20.0), [config, *units])
    assert len(jobs) == 1
    stills = make_stills(jobs[0])
    (picture,) = decode_all(stills.jpeg)
    assert_close(rgb_at(picture, 160, 120), BLUE)
    assert len(decode_all(stills.gif)) >= 7
