"""Video settings changed in the admin API apply from the next stream, without a restart."""

from __future__ import annotations

import json
import subprocess
import time

import m3u8
import pytest
from tests.conftest import ServerProcess

pytestmark = pytest.mark.integration


def publish(server: ServerProcess, seconds: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i", "sine",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-c:a", "aac",
            "-f", "flv", server.rtmp_url(),
        ]
    )  # fmt: skip


def media_playlist(server: ServerProcess, timeout: float = 15) -> m3u8.M3U8:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, body = server.request("/hls/0/stream.m3u8")
        if status == 200:
            playlist = m3u8.loads(body.decode())
            if playlist.segments and not playlist.is_endlist:
                return playlist
        time.sleep(0.2)
    raise AssertionError("no live media playlist")


def test_latency_level_change_applies_to_the_next_stream(server: ServerProcess) -> None:
    first = publish(server, 5)
    assert media_playlist(server).target_duration == 3  # level 2: 3 s segments
    first.wait(timeout=30)
    body = json.dumps({"value": 0}).encode()
    status, _, answer = server.request(
        "/api/admin/config/video/streamlatencylevel",
        method="POST",
        body=body,
        admin="abc123",
        headers={"Content-Type": "application/json"},
    )
    assert status == 200, answer
    second = publish(server, 4)
    try:
        playlist = media_playlist(server)
        assert playlist.target_duration == 1  # level 0: 1 s segments, from this stream on
        assert playlist.media_sequence == 0 and not any(s.discontinuity for s in playlist.segments)
    finally:
        second.wait(timeout=30)
    assert "Traceback" not in server.log()
