"""Stills from a real publisher: ffmpeg -> RTMP ingest -> hub -> StillMaker -> the /thumbnail.jpg and
/preview.gif handlers' logic, in-process on the server's kind of loop (uvloop)."""

from __future__ import annotations

import asyncio
import io
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import av
import pytest
import uvloop
from media import make_two_colour_flv, require_tool

from owncast_fast.config.runtime import Settings
from owncast_fast.events import EventBus
from owncast_fast.ingest.rtmp.server import RtmpIngest
from owncast_fast.media.hub import MediaHub
from owncast_fast.media.stills import StillMaker, stills_directory
from owncast_fast.status import StreamStatus
from owncast_fast.web.routes.config import DEFAULT_LOGO
from owncast_fast.web.routes.images import StillFiles

pytestmark = pytest.mark.integration

KEY = "abc123"
WAIT_LIMIT = 20.0  # seconds for any one step


def pixel(frame: av.VideoFrame, x: int, y: int) -> tuple[int, ...]:
    rgb = frame.to_image().convert("RGB")
    value = rgb.getpixel((x, y))
    assert isinstance(value, tuple)
    return value


def near(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 48) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def decode(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data)) as container:
        return list(container.decode(video=0))


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_LIMIT):
            while not condition():  # noqa: ASYNC110 (files and counters have no event to wait on)
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out after {WAIT_LIMIT} s waiting for {what}")


def test_stills_of_a_live_ffmpeg_publisher_then_the_logo(tmp_path: Path) -> None:
    clip = make_two_colour_flv(tmp_path / "clip.flv", seconds=5, gop=15)
    files = StillFiles()

    async def scenario() -> tuple[bytes, bytes, bytes, StillMaker]:
        hub = MediaHub()
        ingest = RtmpIngest(
            hub=hub,
            bus=EventBus(),
            status=StreamStatus(),
            key_is_valid=lambda key: key == KEY,
            stream_title=lambda: "stills",
            max_message_size=8 * 1024 * 1024,
        )
        maker = StillMaker(hub, stills_directory(tmp_path), interval=1.0)
        maker.start()
        services = SimpleNamespace(
            options=SimpleNamespace(data_path=tmp_path), settings=SimpleNamespace(current=Settings()), stills=maker
        )
        port = await ingest.listen("127.0.0.1", 0)
        command = [require_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-readrate", "1", "-i", str(clip)]
        command += ["-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{port}/live/{KEY}"]
        publisher = await asyncio.create_subprocess_exec(*command, stdin=subprocess.DEVNULL)
        try:
            await wait_for(lambda: maker.planner.latest is not None, "a second of live video")
            assert maker.made == 0  # made when asked for, not before
            thumbnail = bytes((await files.response(services, preview=False)).description)
            preview = bytes((await files.response(services, preview=True)).description)
            assert maker.made == 1  # one still served both requests
            assert await publisher.wait() == 0
            await wait_for(lambda: not maker.thumbnail_path.exists(), "the stills to go at stream end")
            offline = bytes((await files.response(services, preview=False)).description)
        finally:
            if publisher.returncode is None:
                publisher.kill()
                await publisher.wait()
            await ingest.close()
            await maker.close()
        return thumbnail, preview, offline, maker

    thumbnail, preview, offline, maker = uvloop.run(scenario())
    assert maker.failures == 0
    (picture,) = decode(thumbnail)
    assert (picture.width, picture.height) == (320, 240)
    assert near(pixel(picture, 40, 60), (255, 0, 0)) and near(pixel(picture, 280, 60), (0, 0, 255))
    frames = decode(preview)
    assert len(frames) >= 7 and frames[0].width == 480
    assert near(pixel(frames[0], 60, 90), (255, 0, 0), 64) and near(pixel(frames[0], 420, 90), (0, 0, 255), 64)
    assert offline == DEFAULT_LOGO
