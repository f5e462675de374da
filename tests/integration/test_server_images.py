"""/thumbnail.jpg and /preview.gif through a real server: the logo while no stream is live, stills of
the live picture (made when asked for) while ffmpeg publishes, the logo again once it has left;
Owncast's max-age=20 throughout."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

import av
import pytest
from tests.conftest import ServerFactory
from tests.integration.media import make_two_colour_flv, require_tool

pytestmark = pytest.mark.integration

WAIT_LIMIT = 20.0


def first_picture(data: bytes) -> av.VideoFrame:
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(video=0))


def test_images_are_the_logo_offline_and_stills_of_the_live_picture(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    logo = server.request("/logo")[2]
    for path in ("/thumbnail.jpg", "/preview.gif"):
        status, headers, body = server.request(path)
        assert (status, headers["content-type"], headers["cache-control"]) == (
            200, "image/svg+xml", "public, max-age=20"
        )  # fmt: skip
        assert body == logo

    clip = make_two_colour_flv(tmp_path / "clip.flv", seconds=8, gop=15)
    command = [require_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-re", "-i", str(clip)]
    publisher = subprocess.Popen([*command, "-c", "copy", "-f", "flv", server.rtmp_url()])
    try:
        deadline = time.monotonic() + WAIT_LIMIT
        while (response := server.request("/thumbnail.jpg"))[1]["content-type"] != "image/jpeg":
            assert time.monotonic() < deadline, "no live thumbnail"
            time.sleep(0.2)
        status, headers, body = response
        assert (status, headers["cache-control"]) == (200, "public, max-age=20")
        picture = first_picture(body)
        assert (picture.width, picture.height) == (320, 240)
        status, headers, body = server.request("/preview.gif")
        assert (status, headers["content-type"], headers["cache-control"]) == (200, "image/gif", "public, max-age=20")
        assert body[:6] == b"GIF89a" and first_picture(body).width == 480
        # Owncast's layout: the still is in <data>/tmp/ too.
        assert (server.data_dir / "tmp" / "thumbnail.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
        assert publisher.wait(timeout=30) == 0
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
    deadline = time.monotonic() + WAIT_LIMIT
    while server.request("/thumbnail.jpg")[2] != logo:
        assert time.monotonic() < deadline, "the logo did not come back after the stream"
        time.sleep(0.2)
    assert server.request("/preview.gif")[2] == logo
