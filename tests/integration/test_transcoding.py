"""A real server transcoding a real publisher: ffmpeg pushes a 1080p30 clip over RTMP, the server
builds Owncast's ladder (source passthrough, 720p, 480p) with PyAV, and ffprobe, PyAV and hls.js in
Chromium check what comes out."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import m3u8
import psutil
import pytest
from browser import Chromium, HlsPlayer, chromium
from media import make_flv, require_tool
from tests.conftest import ServerFactory, ServerProcess, free_port

pytestmark = pytest.mark.integration

LADDER: list[dict[str, Any]] = [
    {"videoPassthrough": True, "audioPassthrough": True},
    {"scaledWidth": 1280, "scaledHeight": 720, "videoBitrate": 2000, "framerate": 30, "cpuUsageLevel": 0},
    {"scaledWidth": 854, "scaledHeight": 480, "videoBitrate": 1000, "framerate": 30, "cpuUsageLevel": 0,
     "audioPassthrough": False, "audioBitrate": 96},
]  # fmt: skip
SECONDS = 20


def publish(server: ServerProcess, clip: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [require_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-re", "-i", str(clip), "-c", "copy",
         "-f", "flv", server.rtmp_url()]
    )  # fmt: skip


def playlist(server: ServerProcess, path: str) -> m3u8.M3U8 | None:
    status, _, body = server.request(path)
    return m3u8.loads(body.decode(), uri=server.base_url + path) if status == 200 else None


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Ladder:
    server: ServerProcess
    variants: list[dict[str, Any]]  # /api/video/variants while live
    multivariant: m3u8.M3U8
    admin_status: dict[str, Any]  # while live
    media: dict[int, m3u8.M3U8]  # each variant's playlist near the end
    segments: dict[int, list[tuple[int, bytes]]]  # (msn, init + segment bytes)
    switches: list[tuple[float, int]]
    freeze: float
    errors: list[dict[str, Any]]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Noise on top of the test picture: it does not compress away, so the encoders work at their
    # target bitrates (a clean test pattern would undershoot any target).
    return make_flv(
        tmp_path_factory.mktemp("ladder") / "1080p.flv",
        seconds=SECONDS,
        size="1920x1080",
        gop=60,
        bframes=0,
        picture_filter="noise=alls=20:allf=t",
        video_options=("-preset", "ultrafast", "-b:v", "6M", "-maxrate", "6M", "-bufsize", "6M"),
    )


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as launched:
        yield launched


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory, clip: Path, browser: Chromium) -> Iterator[Ladder]:
    data_dir = tmp_path_factory.mktemp("ladder-server") / "data"

    server = ServerProcess(data_dir, free_port(), free_port(), ["--ll-hls", "false"], variants=LADDER)
    server.start()
    publisher = publish(server, clip)
    player = HlsPlayer(browser)
    try:
        wait_for(lambda: all(playlist(server, f"/hls/{i}/stream.m3u8") for i in range(3)), 20, "three variants")
        variants = json.loads(server.request("/api/video/variants")[2])
        multivariant = playlist(server, "/hls/stream.m3u8")
        assert multivariant is not None
        player.play(server.base_url + "/hls/stream.m3u8")
        wait_for(lambda: player.played_for() is not None, 20, "playback")
        started = player.playback().now
        for level in (2, 1, 0, 2):
            player.switch_to(level)
            player.wait(2.5)
        admin_status = json.loads(server.request("/api/admin/status", admin="abc123")[2])
        playback = player.playback()
        freeze = playback.longest_freeze(started, playback.now)
        switches = player.switches()
        errors = playback.errors
    finally:
        player.close()
        publisher.wait(timeout=60)
    # The ended stream's playlists stay up: every segment of the run, each variant.
    media = {i: playlist(server, f"/hls/{i}/stream.m3u8") for i in range(3)}
    segments = {i: fetch_segments(server, i, media[i]) for i in range(3) if media[i] is not None}
    try:
        yield Ladder(
            server, variants, multivariant, admin_status, {i: m for i, m in media.items() if m}, segments,
            switches, freeze, errors,
        )  # fmt: skip
    finally:
        server.stop()


def fetch_segments(server: ServerProcess, index: int, media: m3u8.M3U8 | None) -> list[tuple[int, bytes]]:
    assert media is not None
    out = []
    for number, segment in enumerate(media.segments, media.media_sequence):
        init = b""
        if segment.init_section is not None:
            init = server.request(f"/hls/{index}/{segment.init_section.uri}")[2]
        status, _, body = server.request(f"/hls/{index}/{segment.uri}")
        assert status == 200
        out.append((number, init + body))
    return out


def probe(data: bytes, tmp: Path, name: str) -> dict[str, Any]:
    path = tmp / name
    path.write_bytes(data)
    result = subprocess.run(
        [require_tool("ffprobe"), "-v", "error", "-show_streams", "-show_packets", "-of", "json", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    return json.loads(result.stdout)


def test_variants_are_named_as_owncast_names_them(ladder: Ladder) -> None:
    # Passthrough first, then by bitrate; 1280x720 is "720h" (Owncast's 720p check wants 1080 wide).
    assert ladder.variants == [
        {"index": 0, "name": "Source"},
        {"index": 1, "name": "720h"},
        {"index": 2, "name": "480h"},
    ]


def test_multivariant_lists_the_ladder(ladder: Ladder) -> None:
    streams = {p.uri: p.stream_info for p in ladder.multivariant.playlists}
    assert set(streams) == {"0/stream.m3u8", "1/stream.m3u8", "2/stream.m3u8"}
    assert streams["0/stream.m3u8"].resolution == (1920, 1080)
    assert streams["1/stream.m3u8"].resolution == (1280, 720)
    assert streams["2/stream.m3u8"].resolution == (854, 480)
    assert streams["1/stream.m3u8"].bandwidth < streams["0/stream.m3u8"].bandwidth


def test_each_variant_has_its_size_rate_and_bitrate(ladder: Ladder, tmp_path: Path) -> None:
    expected = {1: (1280, 720, 1808), 2: (854, 480, 808)}  # bitrate minus Owncast's 192k for audio
    for index, (width, height, kbps) in expected.items():
        segments = ladder.segments[index][1:-1]  # whole segments from the middle of the stream
        assert len(segments) >= 2
        video_bytes, seconds = 0, 0.0
        for number, data in segments:
            info = probe(data, tmp_path, f"{index}-{number}.mp4")
            video = next(s for s in info["streams"] if s["codec_type"] == "video")
            assert (video["width"], video["height"]) == (width, height)
            assert video["codec_name"] == "h264"
            assert video["r_frame_rate"] == "30/1"
            packets = [p for p in info["packets"] if p["codec_type"] == "video"]
            assert packets[0]["flags"].startswith("K")  # every segment starts with a keyframe
            video_bytes += sum(int(p["size"]) for p in packets)
            seconds += len(packets) / 30
        measured = video_bytes * 8 / seconds / 1000
        assert abs(measured - kbps) / kbps <= 0.15, f"variant {index}: {measured:.0f} kbit/s vs {kbps}"


def test_keyframes_are_aligned_across_variants(ladder: Ladder, tmp_path: Path) -> None:
    starts: dict[int, dict[int, str]] = {}
    for index, segments in ladder.segments.items():
        starts[index] = {}
        for number, data in segments:
            info = probe(data, tmp_path, f"k{index}-{number}.mp4")
            first = next(p for p in info["packets"] if p["codec_type"] == "video")
            starts[index][number] = first["pts_time"]
    common = set.intersection(*(set(s) for s in starts.values()))
    assert len(common) >= 2
    for number in common:
        assert starts[0][number] == starts[1][number] == starts[2][number]


def test_audio_is_passed_through_or_reencoded_per_variant(ladder: Ladder, tmp_path: Path) -> None:
    source = probe(ladder.segments[0][1][1], tmp_path, "a0.mp4")
    low = probe(ladder.segments[2][1][1], tmp_path, "a2.mp4")
    source_audio = next(s for s in source["streams"] if s["codec_type"] == "audio")
    low_audio = next(s for s in low["streams"] if s["codec_type"] == "audio")
    assert source_audio["codec_name"] == low_audio["codec_name"] == "aac"
    audio_packets = [p for p in low["packets"] if p["codec_type"] == "audio"]
    seconds = len(audio_packets) * 1024 / int(low_audio["sample_rate"])
    kbps = sum(int(p["size"]) for p in audio_packets) * 8 / seconds / 1000
    assert 60 <= kbps <= 110  # asked for 96 kbit/s (AAC overshoots a little at low rates)


def test_hls_js_switches_variants_without_stalls(ladder: Ladder) -> None:
    levels = {level for _, level in ladder.switches}
    assert levels >= {0, 1, 2}, ladder.switches
    assert not [e for e in ladder.errors if e["fatal"]], ladder.errors
    assert ladder.freeze < 1.0, f"playback froze for {ladder.freeze:.2f} s"


def test_admin_status_reports_each_encoder(ladder: Ladder) -> None:
    encoders = ladder.admin_status["encoders"]
    assert [e["index"] for e in encoders] == [0, 1, 2]
    assert encoders[0]["passthrough"] is True
    for entry in encoders[1:]:
        assert entry["passthrough"] is False
        assert entry["encodedFrames"] > 100
        assert entry["droppedFrames"] == 0
        assert entry["speed"] > 1.0
        assert entry["latencyMsP50"] is not None and entry["latencyMsP50"] < 300
    assert ladder.admin_status["health"] is None  # nothing to warn about, nobody reported playback
    assert "Traceback" not in ladder.server.log()


def test_an_overloaded_ladder_drops_frames_stays_live_and_says_so(server_factory: ServerFactory, clip: Path) -> None:
    # Five 1080p x264 encodes at the slowest preset level: far more than this machine can do.
    heavy = [{"videoPassthrough": True}] + [
        {"scaledWidth": 1920, "scaledHeight": 1080, "videoBitrate": 4000, "framerate": 30, "cpuUsageLevel": 4}
    ] * 5
    server = server_factory("--ll-hls", "false")
    server.set_variants(heavy)
    publisher = publish(server, clip)
    process = psutil.Process(server.proc.pid if server.proc else 0)
    try:
        wait_for(lambda: playlist(server, "/hls/5/stream.m3u8"), 20, "the heavy variant")
        rss: list[int] = []
        lengths: list[int] = []
        for _ in range(8):
            time.sleep(1)
            rss.append(process.memory_info().rss)
            media = playlist(server, "/hls/5/stream.m3u8")
            lengths.append(len(media.segments) + media.media_sequence if media else 0)
        status = json.loads(server.request("/api/admin/status", admin="abc123")[2])
    finally:
        publisher.wait(timeout=60)
    heavy_encoders = status["encoders"][1:]
    assert all(e["droppedFrames"] > 0 for e in heavy_encoders), heavy_encoders
    assert status["health"]["healthy"] is False
    assert "dropped frames" in status["health"]["message"]
    assert lengths[-1] > lengths[0]  # the starved variant still makes segments: it stays live
    # Bounded queues: memory levels off instead of growing with the backlog.
    assert max(rss) - rss[0] < 150 * 2**20, [r // 2**20 for r in rss]
    assert all(b >= a for a, b in itertools.pairwise(lengths))
