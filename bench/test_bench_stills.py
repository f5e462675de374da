"""What a still and a slate cost, and that making them leaves the event loop free.

* `make_stills` on a 1080p H.264 window (a keyframe + 1 s at 30 fps): decode, JPEG, 8 fps GIF with
  palettegen/paletteuse. Made once per 20 s per stream, so anything under a second is plenty; here
  it is ~0.25 s (testsrc2, two shared cores).
* `render_slate`: 8 s at 5 fps, 720p, with AAC silence. Made once per stream end (and cached).
* Loop lag: a 5 ms ticker on the loop while three 1080p stills are made in a worker thread. PyAV
  releases the GIL in FFmpeg's calls, so the ticker barely notices (measured here: ~5 ms worst case
  against ~0.5 ms idle, on two shared cores). The bar: never above 50 ms, a frame and a half of
  30 fps video.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from _integration import load
from owncast_fast.media.hub import StreamStart
from owncast_fast.media.slate import render_slate
from owncast_fast.media.stills import StillJob, StillPlanner, make_stills
from owncast_fast.media.units import Track

MAX_LOOP_LAG = 0.050
TICK = 0.005


@pytest.fixture(scope="module")
def job_1080p(tmp_path_factory: pytest.TempPathFactory) -> StillJob:
    media = load("media")
    path = media.make_flv(
        tmp_path_factory.mktemp("stills") / "hd.flv", seconds=2.2, size="1920x1080", gop=60, bframes=2
    )
    video = [item for item in media.demux_flv(Path(path)) if getattr(item, "track", None) is Track.VIDEO]
    planner = StillPlanner()
    for item in [StreamStart(), *video]:
        planner.push(item)
        if planner.latest is not None:
            return planner.latest  # the first full window of the clip
    raise AssertionError("the clip never filled a still's window")


def test_still_1080p(benchmark: Any, job_1080p: StillJob) -> None:
    stills = benchmark.pedantic(make_stills, args=(job_1080p,), rounds=5, iterations=1, warmup_rounds=1)
    assert stills.jpeg[:2] == b"\xff\xd8" and stills.gif[:6] == b"GIF89a"
    benchmark.extra_info["jpeg_kB"] = round(len(stills.jpeg) / 1000, 1)
    benchmark.extra_info["gif_kB"] = round(len(stills.gif) / 1000, 1)


def test_slate_720p(benchmark: Any) -> None:
    def render() -> object:
        return render_slate("The stream is offline.", None, width=1280, height=720, fps=5, duration_s=8.0)

    slate = benchmark.pedantic(render, rounds=5, iterations=1, warmup_rounds=1)
    assert slate is not None


def test_loop_lag_while_stills_are_made(job_1080p: StillJob) -> None:
    async def measure() -> list[float]:
        loop = asyncio.get_running_loop()
        lags: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                started = loop.time()
                await asyncio.sleep(TICK)
                lags.append(loop.time() - started - TICK)

        task = asyncio.create_task(ticker())
        for _ in range(3):
            await asyncio.to_thread(make_stills, job_1080p)
        done.set()
        await task
        return lags

    lags = asyncio.run(measure())
    assert len(lags) > 10
    assert max(lags) < MAX_LOOP_LAG, f"worst loop lag {max(lags) * 1000:.1f} ms"
