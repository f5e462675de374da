"""Live HLS from a real `owncast-fast serve`, judged by independent readers: m3u8, ffprobe, PyAV, hls.js.

A publisher (ffmpeg or GStreamer) sends a live encode over RTMP; the tests read what a viewer
reads -- the multivariant and media playlists, init segments, segments -- and check it against
RFC 8216bis and Owncast's behaviour (reference/owncast-behavior.md: latency levels, headers).

Real-time publishes are slow, so the long scenarios are recorded once by module-scoped fixtures
(`live`: a ~15 s publish per container, watched by hls.js in Chromium meanwhile; `reconnect`: a
publisher that leaves and comes back) and each test judges one aspect of the recording: a
failure names what broke, and the suite pays for each publish once.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
import signal
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.logging
import m3u8
import psutil
import pytest
from browser import Chromium, HlsPlayer, Playback, chromium
from media import make_flv, require_tool
from tests.conftest import ServerFactory, ServerProcess, free_port

pytestmark = pytest.mark.integration

# Latency level 2, Owncast's default: 3 s segments, 10 of them in the playlist.
SEGMENT_SECONDS = 3
FRAME_RATE = 30
AUDIO_RATE = 44100
AAC_FRAME_SAMPLES = 1024
WIDTH, HEIGHT = 640, 360
# The publisher runs until the browser has played PLAY_SECONDS (then it stops, as OBS would),
# or at most LIVE_SECONDS; segments are complete every SEGMENT_SECONDS meanwhile.
LIVE_SECONDS = 30
PLAY_SECONDS = 10
MIN_LIVE_SEGMENTS = 4
FREEZE_LIMIT = 0.7  # seconds currentTime may stand still while playing (samples every 0.2 s)
MEDIA_PLAYLIST = "/hls/0/stream.m3u8"
MULTIVARIANT = "/hls/stream.m3u8"
PLAYLIST_CACHE = "no-cache, no-store, must-revalidate"
MEDIA_MAX_AGE = "max-age=31557600"  # one year, as Owncast caches segments
# "Playable within one segment duration of the first keyframe": the first segment is complete
# when the keyframe that ends it arrives, one segment duration after the first one.
FIRST_SEGMENT_SLACK = 1.5  # seconds, from the server seeing the publisher
PUBLISH_START_SLACK = 2.0  # seconds, from starting ffmpeg (which needs a moment to connect)
SEGMENT_NAME = re.compile(r"-(?P<msn>\d+)(?:\.(?P<part>\d+))?\.(?:m4s|ts)$")


# -- publishers -----------------------------------------------------------------------------------


def live_source(url: str, seconds: float, *, video_options: tuple[str, ...] = ()) -> list[str]:
    """ffmpeg encoding its test sources in real time, like a camera: H.264 with B-frames, AAC."""
    return [
        require_tool("ffmpeg"),
        *("-hide_banner", "-loglevel", "error"),
        *("-re", "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FRAME_RATE}"),
        *("-re", "-f", "lavfi", "-i", f"sine=sample_rate={AUDIO_RATE}"),
        *("-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", str(FRAME_RATE), *video_options),
        *("-c:a", "aac", "-f", "flv", url),
    ]


def copy_to(clip: Path, url: str) -> list[str]:
    """A recorded clip sent as fast as the server takes it."""
    ffmpeg = [require_tool("ffmpeg"), "-hide_banner", "-loglevel", "error"]
    return [*ffmpeg, "-i", str(clip), "-c", "copy", "-f", "flv", url]


@contextlib.contextmanager
def publishing(command: list[str]) -> Iterator[subprocess.Popen[str]]:
    """A publisher in the background; killed and reaped if it is still running at the end."""
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr is not None and not proc.stderr.closed:
            proc.communicate()  # reaps it and closes the pipe, unless the test already did


def gstreamer_aac_encoder() -> str:
    gst_inspect = require_tool("gst-inspect-1.0")
    for element in ("avenc_aac", "voaacenc", "fdkaacenc"):
        if subprocess.run([gst_inspect, element], capture_output=True, timeout=30).returncode == 0:
            return element
    pytest.fail("no GStreamer AAC encoder (avenc_aac, voaacenc, fdkaacenc): run `make system-deps`")


# -- reading what a viewer reads ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


def fetch(server: ServerProcess, path: str) -> Fetched:
    status, headers, body = server.request(path)
    return Fetched(status, {name.lower(): value for name, value in headers.items()}, body)


def numbered(playlist: m3u8.M3U8) -> list[tuple[int, m3u8.Segment]]:
    """(media sequence number, segment) of each complete segment; trailing LL-HLS parts are not one."""
    complete = [segment for segment in playlist.segments if segment.uri]
    return [(playlist.media_sequence + i, segment) for i, segment in enumerate(complete)]


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float  # seconds since the watcher's clock started
    text: str

    @property
    def playlist(self) -> m3u8.M3U8:
        return m3u8.loads(self.text)

    def msns(self) -> list[int]:
        return [msn for msn, _ in numbered(self.playlist)]


class PlaylistWatcher:
    """Polls the media playlist and keeps every distinct version, timed from `restart_clock()`."""

    def __init__(self, server: ServerProcess, path: str = MEDIA_PLAYLIST) -> None:
        self.server = server
        self.path = path
        self.started = time.monotonic()
        self.snapshots: list[Snapshot] = []

    def restart_clock(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def poll(self) -> None:
        response = fetch(self.server, self.path)
        if response.status == 200:
            text = response.body.decode()
            if not self.snapshots or self.snapshots[-1].text != text:
                self.snapshots.append(Snapshot(self.elapsed(), text))

    @property
    def latest(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None

    def segment_count(self) -> int:
        latest = self.latest
        return len(latest.msns()) if latest is not None else 0

    def wait(self, condition: Callable[[], bool], what: str, timeout: float, every: float = 0.025) -> float:
        """Poll until `condition()`; returns the watcher's clock then."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            if condition():
                return self.elapsed()
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {what}; log:\n{self.server.log()[-3000:]}")
            time.sleep(every)

    def hold(self, seconds: float) -> None:
        """Keep polling for a while."""
        end = time.monotonic() + seconds
        self.wait(lambda: time.monotonic() >= end, "nothing", seconds + 5)


def is_online(server: ServerProcess) -> bool:
    body = server.get("/api/status")
    return isinstance(body, dict) and bool(body["online"])


def ffprobe_url(url: str) -> subprocess.CompletedProcess[str]:
    """ffprobe's view of an HLS URL; `-v warning` so that anything it disliked is on stderr."""
    return subprocess.run(
        [
            require_tool("ffprobe"),
            *("-v", "warning", "-of", "json"),
            *("-show_entries", "stream=codec_type,codec_name,width,height,avg_frame_rate,sample_rate"),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def probed_streams(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return {stream["codec_type"]: stream for stream in json.loads(result.stdout)["streams"]}


# -- decoding segments with PyAV ------------------------------------------------------------------


@dataclass(slots=True)
class TrackTimes:
    dts: list[Fraction] = field(default_factory=list)  # seconds, demuxed order
    pts: list[Fraction] = field(default_factory=list)
    keyframes: list[bool] = field(default_factory=list)
    frames: int = 0  # decoded


@dataclass(slots=True)
class DecodedSegment:
    name: str
    video: TrackTimes
    audio: TrackTimes
    size: tuple[int, int] | None  # decoded picture size
    problems: list[str]  # FFmpeg warnings and errors while demuxing and decoding


@contextlib.contextmanager
def ffmpeg_log() -> Iterator[list[tuple[int, str, str]]]:
    """FFmpeg's warnings and errors while inside (PyAV keeps FFmpeg's log off unless asked)."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture() as captured:
            yield captured
    finally:
        av.logging.set_level(previous)


def decode_segment(name: str, data: bytes, init: bytes | None) -> DecodedSegment:
    """Demux and decode one segment on its own (after its init segment for fMP4)."""
    video, audio = TrackTimes(), TrackTimes()
    size = None
    with ffmpeg_log() as log:
        try:
            with av.open(io.BytesIO((init or b"") + data), format="mp4" if init else "mpegts") as container:
                for packet in container.demux():
                    times = video if packet.stream.type == "video" else audio
                    if packet.size:
                        assert packet.dts is not None and packet.pts is not None and packet.time_base is not None
                        times.dts.append(packet.dts * packet.time_base)
                        times.pts.append(packet.pts * packet.time_base)
                        times.keyframes.append(packet.is_keyframe)
                    for frame in packet.decode():
                        times.frames += 1
                        if isinstance(frame, av.VideoFrame):
                            size = (frame.width, frame.height)
            problems = []
        except av.FFmpegError as exc:
            problems = [f"PyAV raised {exc!r}"]
    problems += [f"{level} {source}: {message.strip()}" for level, source, message in log]
    return DecodedSegment(name, video, audio, size, problems)


# -- one live publish, recorded -------------------------------------------------------------------


@dataclass
class LiveRun:
    container: str
    before: dict[str, Fetched]  # playlists before anything was published
    online_after: float  # seconds from starting ffmpeg to /api/status saying online
    first_segment_after: float  # seconds from starting ffmpeg to a segment in the media playlist
    snapshots: list[Snapshot]  # every version of the media playlist while live
    multivariant: Fetched  # while live
    media: Fetched  # while live
    files: dict[str, Fetched]  # what kind of file -> response
    not_found: dict[str, Fetched]  # unknown paths -> response
    ffprobe: subprocess.CompletedProcess[str]
    final: Snapshot  # the media playlist after the publisher left
    init: bytes | None
    segments: list[tuple[str, bytes]]  # every segment of the final playlist, before the offline slate
    slate: list[m3u8.Segment]  # the offline slate's segments, after a discontinuity
    playback: Playback
    window_while_live: bool  # the playback window ended before the publisher did
    log: str


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as launched:
        yield launched


@contextlib.contextmanager
def started_server(data_dir: Path, *args: str) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir, free_port(), free_port(), list(args))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["fmp4", "ts"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, browser: Chromium) -> LiveRun:
    container = str(request.param)
    data_dir = tmp_path_factory.mktemp(f"live-{container}") / "data"
    with started_server(data_dir, "--hls-container", container) as server:
        return record_live_run(server, container, HlsPlayer(browser))


def record_live_run(server: ServerProcess, container: str, player: HlsPlayer) -> LiveRun:
    before = {path: fetch(server, path) for path in (MULTIVARIANT, MEDIA_PLAYLIST)}
    watcher = PlaylistWatcher(server)
    with publishing(live_source(server.rtmp_url(), LIVE_SECONDS)) as publisher:
        watcher.restart_clock()
        online_after = watcher.wait(lambda: is_online(server), "the stream to go online", 10)
        first_segment_after = watcher.wait(lambda: watcher.segment_count() >= 1, "the first segment", 15)
        # LL-HLS players start PART-HOLD-BACK from the live edge, inside the first segment. A plain
        # HLS player given one segment must start at its beginning, a segment duration from the
        # edge, and the next must then arrive within the moment it took the player to start: a
        # race with the page, not a test of the server. It joins with two segments listed, the
        # least that leaves it a segment of media in hand (the draft asks for three, 6.3.3).
        if container == "ts":
            watcher.wait(lambda: watcher.segment_count() >= 2, "a second segment", 10)
        player.play(server.base_url + MULTIVARIANT)
        watcher.wait(lambda: watcher.segment_count() >= 2, "a second segment", 10)

        multivariant = fetch(server, MULTIVARIANT)
        media = fetch(server, MEDIA_PLAYLIST)
        playlist = m3u8.loads(media.body.decode())
        first_segment = numbered(playlist)[0][1]
        files = {"segment": fetch(server, f"/hls/0/{first_segment.uri}")}
        if first_segment.init_section is not None:
            files["init"] = fetch(server, f"/hls/0/{first_segment.init_section.uri}")
        parts = [part.uri for segment in playlist.segments for part in segment.parts]
        if parts:
            files["part"] = fetch(server, f"/hls/0/{parts[-1]}")
        extension = ".m4s" if container == "fmp4" else ".ts"
        not_found = {
            path: fetch(server, path)
            for path in ("/hls/9/stream.m3u8", f"/hls/0/no-such-segment{extension}", f"/hls/9/{first_segment.uri}")
        }
        ffprobe = ffprobe_url(server.base_url + MULTIVARIANT)

        def played_long_enough() -> bool:
            played = player.played_for()
            return played is not None and played >= PLAY_SECONDS + 0.5

        watcher.wait(played_long_enough, f"{PLAY_SECONDS} s of playback in Chromium", LIVE_SECONDS, every=0.1)
        window_while_live = publisher.poll() is None
        # ffmpeg stops on SIGINT like a streamer pressing stop: it flushes, sends FCUnpublish, and
        # exits with 255 ("Exiting normally, received signal 2").
        publisher.send_signal(signal.SIGINT)
        _, stderr = publisher.communicate(timeout=15)
        assert publisher.returncode == 255, stderr
    playback = player.playback()
    player.close()

    def ended() -> bool:
        latest = watcher.latest
        return latest is not None and latest.playlist.is_endlist

    watcher.wait(ended, "EXT-X-ENDLIST after the publisher left", 10)
    final = watcher.latest
    assert final is not None
    segments = []
    init = None
    slate: list[m3u8.Segment] = []
    for _, segment in numbered(final.playlist):
        if segment.discontinuity or slate:
            slate.append(segment)  # the offline slate the server appends when the stream ends
            continue
        if segment.init_section is not None and init is None:
            init = fetch(server, f"/hls/0/{segment.init_section.uri}").body
        response = fetch(server, f"/hls/0/{segment.uri}")
        assert response.status == 200, f"{segment.uri} listed but {response.status}"
        segments.append((segment.uri, response.body))
    return LiveRun(
        container=container,
        before=before,
        online_after=online_after,
        first_segment_after=first_segment_after,
        snapshots=[s for s in watcher.snapshots if s.at <= final.at and not s.playlist.is_endlist],
        multivariant=multivariant,
        media=media,
        files=files,
        not_found=not_found,
        ffprobe=ffprobe,
        final=final,
        init=init,
        segments=segments,
        slate=slate,
        playback=playback,
        window_while_live=window_while_live,
        log=server.log(),
    )


def live_media_playlist(server: ServerProcess, text: str) -> str:
    """An ended media playlist cut before the offline slate, with absolute URIs."""
    base = f"{server.base_url}/hls/0/"
    lines = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-DISCONTINUITY"):
            break
        if line.startswith("#EXT-X-MAP:URI="):
            line = line.replace('URI="', f'URI="{base}')
        elif line and not line.startswith("#"):
            line = base + line
        elif line.startswith(("#EXT-X-PART:", "#EXT-X-PRELOAD-HINT", "#EXT-X-SERVER-CONTROL", "#EXT-X-PART-INF")):
            continue
        lines.append(line)
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


@pytest.fixture(scope="module")
def decoded(live: LiveRun) -> list[DecodedSegment]:
    return [decode_segment(name, data, live.init) for name, data in live.segments]


# -- 1. playlists, segments, timing ---------------------------------------------------------------


def test_the_ended_playlist_goes_on_into_the_offline_slate(live: LiveRun) -> None:
    # Owncast: a discontinuity, its 8 s offline clip, ENDLIST. Ours is generated (8 s, 1 s GOPs).
    assert live.final.playlist.is_endlist
    assert live.slate and live.slate[0].discontinuity
    assert 7.5 <= sum(segment.duration for segment in live.slate) <= 8.5
    if live.container == "fmp4":
        assert live.slate[0].init_section is not None  # its own init segment (new track configuration)


def test_first_segment_is_listed_within_one_segment_of_the_first_keyframe(
    live: LiveRun, record_property: Callable[[str, object], None]
) -> None:
    after_online = live.first_segment_after - live.online_after
    record_property(f"{live.container}_publish_to_first_segment_s", round(live.first_segment_after, 3))
    record_property(f"{live.container}_online_to_first_segment_s", round(after_online, 3))
    print(
        f"{live.container}: first segment listed {live.first_segment_after:.2f} s after starting ffmpeg, "
        f"{after_online:.2f} s after the server saw the stream"
    )
    assert after_online < SEGMENT_SECONDS + FIRST_SEGMENT_SLACK
    assert live.first_segment_after < SEGMENT_SECONDS + PUBLISH_START_SLACK


def test_multivariant_playlist_describes_the_source(live: LiveRun) -> None:
    assert live.multivariant.status == 200
    playlist = m3u8.loads(live.multivariant.body.decode())
    assert playlist.is_variant
    [variant] = playlist.playlists
    info = variant.stream_info
    assert variant.uri == "0/stream.m3u8"
    assert info.bandwidth > 0
    assert info.resolution == (WIDTH, HEIGHT)
    assert info.frame_rate == FRAME_RATE
    video, audio = info.codecs.split(",")
    assert re.fullmatch(r"avc1\.[0-9a-f]{6}", video), info.codecs
    assert audio == "mp4a.40.2"


def test_media_playlist_while_live(live: LiveRun) -> None:
    text = live.media.body.decode()
    playlist = m3u8.loads(text)
    assert playlist.target_duration == SEGMENT_SECONDS
    assert playlist.is_independent_segments
    assert not playlist.is_endlist
    segments = [segment for _, segment in numbered(playlist)]
    assert segments
    # Every segment carries its own date (Owncast's ffmpeg writes one per segment too).
    assert text.count("#EXT-X-PROGRAM-DATE-TIME:") == len(segments), text
    if live.container == "fmp4":
        assert all(segment.init_section is not None for segment in segments), text
    else:
        assert "#EXT-X-MAP" not in text
        assert all(segment.uri.endswith(".ts") for segment in segments)
    for segment in segments:
        assert segment.duration == pytest.approx(SEGMENT_SECONDS, abs=0.01), text


def test_media_sequence_counts_every_segment_once(live: LiveRun) -> None:
    """Across every version of the live playlist, a URI keeps its number and numbers have no gaps."""
    number_of: dict[str, int] = {}
    for snapshot in live.snapshots:
        listed = numbered(snapshot.playlist)
        assert [msn for msn, _ in listed] == list(range(listed[0][0], listed[0][0] + len(listed))), snapshot.text
        for msn, segment in listed:
            assert number_of.setdefault(segment.uri, msn) == msn, f"{segment.uri} renumbered: {snapshot.text}"
    assert sorted(number_of.values()) == list(range(len(number_of)))
    assert len(number_of) >= MIN_LIVE_SEGMENTS


def test_program_date_times_follow_segment_durations(live: LiveRun) -> None:
    segments = [segment for _, segment in numbered(live.final.playlist)]
    for earlier, later in itertools.pairwise(segments):
        gap = later.program_date_time - earlier.program_date_time
        if later.discontinuity:
            # The offline slate starts at the wall clock, but never before the stream ended.
            assert gap >= timedelta(seconds=earlier.duration) - timedelta(milliseconds=5), (earlier.uri, later.uri)
            continue
        assert abs(gap - timedelta(seconds=earlier.duration)) < timedelta(milliseconds=5), (earlier.uri, later.uri)


def test_ffprobe_reads_the_live_stream_without_complaint(live: LiveRun) -> None:
    streams = probed_streams(live.ffprobe)
    assert live.ffprobe.stderr == ""
    assert (streams["video"]["codec_name"], streams["video"]["width"], streams["video"]["height"]) == (
        "h264",
        WIDTH,
        HEIGHT,
    )
    assert streams["video"]["avg_frame_rate"] == f"{FRAME_RATE}/1"
    assert (streams["audio"]["codec_name"], int(streams["audio"]["sample_rate"])) == ("aac", AUDIO_RATE)


def test_every_segment_decodes(live: LiveRun, decoded: list[DecodedSegment]) -> None:
    assert len(decoded) >= MIN_LIVE_SEGMENTS
    for segment in decoded:
        assert segment.problems == [], segment.name
        assert segment.size == (WIDTH, HEIGHT), segment.name
        assert segment.video.keyframes[0], f"{segment.name} does not start with a keyframe"
        assert segment.video.frames == len(segment.video.dts), segment.name
        assert segment.audio.frames == len(segment.audio.dts), segment.name
    # The source's frames are all there: 30 per second, whole segments of 3 s but the last.
    for segment in decoded[:-1]:
        assert len(segment.video.dts) == SEGMENT_SECONDS * FRAME_RATE, segment.name


@pytest.mark.parametrize(
    ("track", "frame_duration"),
    [("video", Fraction(1, FRAME_RATE)), ("audio", Fraction(AAC_FRAME_SAMPLES, AUDIO_RATE))],
)
def test_timestamps_continue_across_segments(
    decoded: list[DecodedSegment], track: str, frame_duration: Fraction
) -> None:
    """The next segment's first dts is the previous segment's last dts plus one frame (1 ms)."""
    for earlier, later in itertools.pairwise(decoded):
        last = getattr(earlier, track).dts[-1]
        first = getattr(later, track).dts[0]
        assert abs(first - (last + frame_duration)) <= Fraction(1, 1000), (
            f"{track}: {later.name} starts at {float(first):.4f} s, {earlier.name} ended at "
            f"{float(last):.4f} s + {float(frame_duration):.4f} s"
        )


def test_audio_and_video_start_together_in_each_segment(decoded: list[DecodedSegment]) -> None:
    for segment in decoded:
        video_start, audio_start = min(segment.video.pts), min(segment.audio.pts)
        assert abs(video_start - audio_start) <= Fraction(1, 10), (
            f"{segment.name}: video starts at {float(video_start):.3f} s, audio at {float(audio_start):.3f} s"
        )


# -- 2. content types, caching, 404s --------------------------------------------------------------


def test_nothing_is_served_before_a_stream_was_published(live: LiveRun) -> None:
    for path, response in live.before.items():
        assert response.status == 404, path
        assert response.headers.get("access-control-allow-origin") == "*", path


@pytest.mark.parametrize("which", ["multivariant", "media"])
def test_playlists_are_never_cached(live: LiveRun, which: str) -> None:
    response: Fetched = getattr(live, which)
    assert response.status == 200
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert response.headers["cache-control"] == PLAYLIST_CACHE
    assert response.headers["access-control-allow-origin"] == "*"


def test_media_files_are_cached_for_a_year(live: LiveRun) -> None:
    expected = {"fmp4": {"init", "segment", "part"}, "ts": {"segment"}}[live.container]
    assert expected <= set(live.files)
    content_types = {"init": "video/mp4", "segment": "video/iso.segment", "part": "video/iso.segment"}
    if live.container == "ts":
        content_types["segment"] = "video/mp2t"
    for kind, response in live.files.items():
        assert response.status == 200, kind
        assert MEDIA_MAX_AGE in response.headers["cache-control"], kind
        assert response.headers["access-control-allow-origin"] == "*", kind
        assert response.headers["content-type"] == content_types[kind], kind


def test_unknown_variants_and_segments_are_not_found(live: LiveRun) -> None:
    for path, response in live.not_found.items():
        assert response.status == 404, path
        assert response.headers.get("access-control-allow-origin") == "*", path


# -- 5. a browser plays it ------------------------------------------------------------------------


def test_hls_js_in_chromium_plays_without_stalling(live: LiveRun) -> None:
    playback = live.playback
    print(f"{live.container}: {playback.summary()}")
    assert playback.first_playing is not None, playback.summary()
    start, end = playback.first_playing, playback.first_playing + PLAY_SECONDS
    assert live.window_while_live, "the publisher stopped before the playback window ended"
    assert [e for e in playback.errors if e["at"] <= end] == [], playback.summary()
    assert playback.events_named("waiting", start, end) == [], playback.summary()
    assert playback.went_back(start, end) == [], playback.summary()
    # Chromium may play a little slower than the wall clock on a loaded machine, but never stops.
    assert playback.longest_freeze(start, end) < FREEZE_LIMIT, playback.summary()
    assert playback.advanced(start, end) >= 0.8 * PLAY_SECONDS, playback.summary()


# -- 4. a publisher that leaves and comes back ----------------------------------------------------

FIRST_PUBLISH_SECONDS = 6
SECOND_PUBLISH_SECONDS = 6
PLAYED_INTO_SECOND = 3.0  # seconds of the second publish the player must play


@dataclass
class ReconnectRun:
    snapshots: list[Snapshot]  # every version of the media playlist, from the first publish on
    first_left_at: float  # the first publisher exited (watcher clock)
    second_listed: Snapshot  # the first playlist that lists the second publish's first segment
    first_last_msn: int
    first_media_seconds: float  # duration of the first publish's segments: where the second starts
    playback: Playback
    restarted_at: float | None  # page clock, when the page restarted hls.js
    reload_between: Fetched  # a blocking reload for the next segment while nobody publishes
    reload_between_seconds: float
    last_part: int  # index of the last part listed for the first publish's last segment
    reload_last_part: Fetched  # a blocking reload for that part, once the segment is complete
    log: str


@pytest.fixture(scope="module")
def reconnect(tmp_path_factory: pytest.TempPathFactory, browser: Chromium) -> ReconnectRun:
    with started_server(tmp_path_factory.mktemp("reconnect") / "data") as server:
        return record_reconnect(server, HlsPlayer(browser))


def record_reconnect(server: ServerProcess, player: HlsPlayer) -> ReconnectRun:
    watcher = PlaylistWatcher(server)

    def latest_msn() -> int:
        latest = watcher.latest
        msns = latest.msns() if latest is not None else []
        return msns[-1] if msns else -1

    def ended() -> bool:
        latest = watcher.latest
        return latest is not None and latest.playlist.is_endlist

    with publishing(live_source(server.rtmp_url(), FIRST_PUBLISH_SECONDS)) as first:
        watcher.restart_clock()
        watcher.wait(lambda: watcher.segment_count() >= 1, "the first segment", 15)
        player.play(server.base_url + MULTIVARIANT)
        watcher.wait(lambda: first.poll() is not None, "the first publisher to finish", FIRST_PUBLISH_SECONDS + 15)
    first_left_at = watcher.elapsed()
    watcher.wait(ended, "EXT-X-ENDLIST after the first publisher left", 10)
    ended_playlist = watcher.latest
    assert ended_playlist is not None
    first_last_msn = latest_msn()
    first_media_seconds = sum(segment.duration for _, segment in numbered(ended_playlist.playlist))
    # What an LL-HLS player asks for next (hls.js does, right after the publisher leaves).
    asked = time.monotonic()
    reload_between = fetch(server, f"{MEDIA_PLAYLIST}?_HLS_msn={first_last_msn + 1}&_HLS_part=0")
    reload_between_seconds = time.monotonic() - asked
    last_part = len(numbered(ended_playlist.playlist)[-1][1].parts) - 1
    reload_last_part = fetch(server, f"{MEDIA_PLAYLIST}?_HLS_msn={first_last_msn}&_HLS_part={last_part}")
    # Nobody publishes for a moment: the playlist must stay ended meanwhile.
    watcher.hold(1.0)

    with publishing(live_source(server.rtmp_url(), SECOND_PUBLISH_SECONDS)) as second:
        watcher.wait(lambda: latest_msn() > first_last_msn, "the second publish's first segment", 15)
        second_listed = watcher.latest
        assert second_listed is not None
        restarted_at: float | None = None

        def played_into_second() -> bool:
            nonlocal restarted_at
            playback = player.playback()
            # hls.js stops reloading a playlist once it has EXT-X-ENDLIST (a finished presentation),
            # so it cannot see the publisher come back by itself. A viewer page restarts its player
            # then -- and only then: the page refuses a restart hls.js gave no reason for.
            if restarted_at is None and playback.endlist_at is not None:
                player.restart()
                restarted_at = player.playback().now
                return False
            return played_after(playback, restarted_at, first_media_seconds) >= PLAYED_INTO_SECOND

        watcher.wait(played_into_second, "hls.js to play the second publish", SECOND_PUBLISH_SECONDS + 15, every=0.1)
        watcher.wait(lambda: second.poll() is not None, "the second publisher to finish", SECOND_PUBLISH_SECONDS + 15)
    watcher.wait(lambda: ended() and latest_msn() > first_last_msn, "EXT-X-ENDLIST after the second publish", 10)
    playback = player.playback()
    player.close()
    return ReconnectRun(
        snapshots=watcher.snapshots,
        first_left_at=first_left_at,
        second_listed=second_listed,
        first_last_msn=first_last_msn,
        first_media_seconds=first_media_seconds,
        playback=playback,
        restarted_at=restarted_at,
        reload_between=reload_between,
        reload_between_seconds=reload_between_seconds,
        last_part=last_part,
        reload_last_part=reload_last_part,
        log=server.log(),
    )


def played_after(playback: Playback, since: float | None, position: float) -> float:
    """How far currentTime advanced beyond `position` (where the second publish starts), from `since`."""
    beyond = [p for at, p in playback.samples if at >= (since or 0.0) and p > position]
    return beyond[-1] - beyond[0] if beyond else 0.0


def test_reconnect_starts_a_discontinuity(reconnect: ReconnectRun) -> None:
    snapshot = reconnect.second_listed
    flagged = [msn for msn, segment in numbered(snapshot.playlist) if segment.discontinuity]
    # The offline slate's (appended when the first publisher left), then the returning publisher's.
    assert len(flagged) == 2 and flagged[-1] == reconnect.first_last_msn + 1, snapshot.text


def test_reconnect_keeps_counting_media_sequence_numbers(reconnect: ReconnectRun) -> None:
    number_of: dict[str, int] = {}
    for snapshot in reconnect.snapshots:
        listed = numbered(snapshot.playlist)
        assert [msn for msn, _ in listed] == list(range(listed[0][0], listed[0][0] + len(listed))), snapshot.text
        for msn, segment in listed:
            assert number_of.setdefault(segment.uri, msn) == msn, f"{segment.uri} renumbered: {snapshot.text}"
    assert sorted(number_of.values()) == list(range(len(number_of)))
    assert max(number_of.values()) > reconnect.first_last_msn + 1


def test_playlist_is_ended_while_nobody_publishes(reconnect: ReconnectRun) -> None:
    """EXT-X-ENDLIST from the first publisher's departure until the second one's first segment."""
    snapshots = reconnect.snapshots
    ended_at = next(s.at for s in snapshots if s.playlist.is_endlist)
    # The server may see FCUnpublish a moment before this process sees ffmpeg exit.
    assert -0.5 < ended_at - reconnect.first_left_at < 2.0, "EXT-X-ENDLIST came at the wrong time"
    between = [s for s in snapshots if ended_at <= s.at < reconnect.second_listed.at]
    assert all(s.playlist.is_endlist for s in between), [s.text for s in between]
    assert all(s.msns()[-1] == reconnect.first_last_msn for s in between)
    assert not reconnect.second_listed.playlist.is_endlist, reconnect.second_listed.text


def test_blocking_reload_after_the_publisher_left_gets_the_ended_playlist(reconnect: ReconnectRun) -> None:
    """hls.js asks for the next part right after the last one; once the stream has ended, the answer
    it can act on is the playlist with EXT-X-ENDLIST, at once (a 503 is an error it retries)."""
    response = reconnect.reload_between
    assert response.status == 200, response.body
    assert m3u8.loads(response.body.decode()).is_endlist
    assert reconnect.reload_between_seconds < 1.0


def test_blocking_reload_for_a_part_of_a_complete_segment_is_answered(reconnect: ReconnectRun) -> None:
    """6.2.5.2: 400 is for a part more than the Advance Part Limit beyond the last Partial Segment in
    the Playlist; a part the Playlist already lists is available, so the Playlist is the answer. The
    same 400 is what a client gets during a live stream if it asks in the moment between a segment's
    completion and the next segment's first part."""
    assert reconnect.last_part > 3, "the segment has too few parts to tell"
    response = reconnect.reload_last_part
    assert response.status == 200, response.body


def test_hls_js_carries_on_after_the_publisher_returns(reconnect: ReconnectRun) -> None:
    """The player plays the second publish, after a restart only if hls.js saw the stream end."""
    playback = reconnect.playback
    print(f"restarted at {reconnect.restarted_at}, second publish starts at {reconnect.first_media_seconds:.3f} s")
    print(playback.summary())
    assert playback.first_playing is not None, playback.summary()
    assert [e for e in playback.errors if e["fatal"]] == [], playback.summary()
    assert playback.restarts == (0 if reconnect.restarted_at is None else 1), playback.summary()
    since = reconnect.restarted_at or 0.0
    second = [(at, p) for at, p in playback.samples if at >= since and p > reconnect.first_media_seconds]
    assert played_after(playback, since, reconnect.first_media_seconds) >= PLAYED_INTO_SECOND, playback.summary()
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(second)), playback.summary()


SLATE_SIZE = (1280, 720)  # the offline slate after each publish


def test_each_publish_keeps_its_own_init_segment(server: ServerProcess, media_dir: Path) -> None:
    """RFC 8216bis 4.4.4.5: EXT-X-MAP "applies to every Media Segment that appears after it in the
    Playlist until the next EXT-X-MAP tag"; a publisher that returns with other settings needs one."""
    clips = [
        (
            make_flv(
                media_dir / f"map-{w}x{h}.flv", seconds=4, size=f"{w}x{h}", video_options=("-preset", "ultrafast")
            ),
            (w, h),
        )
        for w, h in ((640, 360), (320, 240))
    ]
    watcher = PlaylistWatcher(server)
    sizes: dict[int, tuple[int, int]] = {}
    for clip, size in clips:
        result = subprocess.run(copy_to(clip, server.rtmp_url()), capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr

        def all_listed() -> bool:
            latest = watcher.latest
            return latest is not None and latest.playlist.is_endlist and max(latest.msns()) not in sizes

        watcher.wait(all_listed, "the publish's segments and EXT-X-ENDLIST", 10)
        assert watcher.latest is not None
        listed = numbered(watcher.latest.playlist)
        slate_from = max(msn for msn, segment in listed if segment.discontinuity)  # this publish's slate
        sizes.update((msn, SLATE_SIZE if msn >= slate_from else size) for msn, _ in listed if msn not in sizes)
    final = watcher.latest
    assert final is not None
    for msn, segment in numbered(final.playlist):
        assert segment.init_section is not None, final.text
        init = fetch(server, f"/hls/0/{segment.init_section.uri}").body
        decoded = decode_segment(segment.uri, fetch(server, f"/hls/0/{segment.uri}").body, init)
        assert (decoded.size, decoded.problems) == (sizes[msn], []), (
            f"{segment.uri} read with {segment.init_section.uri}"
        )


# -- 3. segments leave memory and disk soon after they leave the playlist --------------------------

RETENTION_SECONDS = 35
LOWEST_LATENCY_LEVEL = 0  # Owncast's level 0: 1 s segments, 25 in the playlist
LEVEL_0_WINDOW = 25
# A segment that left the playlist may stay fetchable a little longer (a client that read the
# previous playlist may still be downloading it); "soon" means within this many segments.
GRACE_SEGMENTS = 4
# Constant 8 Mbit/s (x264 pads with filler NAL units): 1 MB a second, so that a server that
# keeps what it should have dropped grows by megabytes within seconds.
CBR = ("-b:v", "8M", "-minrate", "8M", "-maxrate", "8M", "-bufsize", "1M", "-x264-params", "nal-hrd=cbr")
STREAM_BYTES_PER_SECOND = 1_000_000
# Memory is judged once the window is full and segments should be leaving: RSS rises by about
# a segment a second until then (25 segments + the grace period: ~30 s at level 0), and must
# stay flat after, within allocator noise (measured: under 0.1 MiB).
RSS_GROWTH_LIMIT = int(1.5 * 1024 * 1024)


def set_latency_level(database: Path, level: int) -> None:
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        changed = connection.execute(
            "UPDATE datastore SET value = ? WHERE key = 'video_latency_level'", (json.dumps(level),)
        ).rowcount
    assert changed == 1, "no video_latency_level in the datastore"


@dataclass(frozen=True, slots=True)
class RetentionCheck:
    at: float
    first_msn: int
    served_after_leaving: list[str]  # URIs that left the playlist long ago and still answer 200
    on_disk_after_leaving: list[str]  # their files under data/hls/0
    listed_but_missing: list[str]  # listed segments that do not answer 200
    listed_not_on_disk: list[str]


def check_retention(server: ServerProcess, snapshot: Snapshot, seen: dict[str, int], disk: Path) -> RetentionCheck:
    listed = numbered(snapshot.playlist)
    first = listed[0][0]
    stale = sorted(uri for uri, msn in seen.items() if msn < first - GRACE_SEGMENTS)
    stale_files = sorted(
        path.name
        for path in disk.iterdir()
        if (match := SEGMENT_NAME.search(path.name)) and int(match["msn"]) < first - GRACE_SEGMENTS
    )
    return RetentionCheck(
        at=snapshot.at,
        first_msn=first,
        served_after_leaving=[uri for uri in stale if fetch(server, f"/hls/0/{uri}").status != 404],
        on_disk_after_leaving=stale_files,
        listed_but_missing=[s.uri for _, s in listed if fetch(server, f"/hls/0/{s.uri}").status != 200],
        # The disk copy is written by a thread: the newest segment may not be there yet.
        listed_not_on_disk=[s.uri for _, s in listed[:-1] if not (disk / s.uri).is_file()],
    )


def test_segments_leave_memory_and_disk_soon_after_they_leave_the_playlist(
    server_factory: ServerFactory, record_property: Callable[[str, object], None]
) -> None:
    server = server_factory("--hls-disk-copy", "true")
    server.stop()
    set_latency_level(server.data_dir / "owncast-fast.db", LOWEST_LATENCY_LEVEL)
    server.start()
    assert server.proc is not None
    process = psutil.Process(server.proc.pid)
    disk = server.data_dir / "hls" / "0"
    watcher = PlaylistWatcher(server)
    seen: dict[str, int] = {}  # every segment and part URI ever listed -> its segment's number
    rss: list[tuple[float, int]] = []
    checks: list[RetentionCheck] = []
    steady_from: float | None = None  # when segments must have started leaving
    with publishing(live_source(server.rtmp_url(), RETENTION_SECONDS, video_options=CBR)) as publisher:
        watcher.restart_clock()
        next_check = 0.0
        while publisher.poll() is None:
            watcher.poll()
            latest = watcher.latest
            if latest is not None:
                listed = numbered(latest.playlist)
                for msn, segment in listed:
                    seen[segment.uri] = msn
                    seen.update((part.uri, msn) for part in segment.parts)
                if steady_from is None and listed[0][0] >= GRACE_SEGMENTS:
                    steady_from = latest.at
                if steady_from is not None and watcher.elapsed() >= next_check:
                    checks.append(check_retention(server, latest, seen, disk))
                    next_check = watcher.elapsed() + 2.0
            rss.append((watcher.elapsed(), process.memory_info().rss))
            time.sleep(0.2)
        _, stderr = publisher.communicate()
        assert publisher.returncode == 0, stderr
    final = watcher.latest
    assert final is not None
    # The level took effect: 1 s segments, a 25-segment window, and the window slid.
    assert final.playlist.target_duration == 1
    assert len(final.msns()) == LEVEL_0_WINDOW
    assert steady_from is not None and checks, "no segment left the playlist"
    for check in checks:
        assert check.served_after_leaving == [], check
        assert check.on_disk_after_leaving == [], check
        assert check.listed_but_missing == [], check
        assert check.listed_not_on_disk == [], check
    end = rss[-1][0]
    # Medians over the first and the last second: a leak of the segments alone would add about
    # STREAM_BYTES_PER_SECOND for every second between them, at least twice the limit.
    assert (end - steady_from - 1) * STREAM_BYTES_PER_SECOND > 2 * RSS_GROWTH_LIMIT, "too short to judge memory"
    early = statistics.median(value for at, value in rss if steady_from <= at < steady_from + 1)
    late = statistics.median(value for at, value in rss if at >= end - 1)
    at_20 = statistics.median(value for at, value in rss if 20 <= at < 21)
    record_property("rss_growth_steady_bytes", late - early)
    print(
        f"server RSS {at_20 / 2**20:.1f} MiB at 20 s, {early / 2**20:.1f} MiB at {steady_from:.1f} s "
        f"(segments leaving), {late / 2**20:.1f} MiB at {end:.1f} s"
    )
    assert late - early < RSS_GROWTH_LIMIT


# -- 6. GStreamer -------------------------------------------------------------------------------

GSTREAMER_SECONDS = 5


def test_gstreamer_publish_is_playable(server: ServerProcess, tmp_path: Path) -> None:
    encoder = gstreamer_aac_encoder()
    pipeline = (
        f"videotestsrc num-buffers={GSTREAMER_SECONDS * FRAME_RATE} is-live=true"
        f" ! video/x-raw,width=320,height=240,framerate={FRAME_RATE}/1"
        f" ! x264enc tune=zerolatency key-int-max={FRAME_RATE} ! h264parse"
        f" ! flvmux name=m streamable=true ! rtmp2sink location={server.rtmp_url()}"
        f" audiotestsrc num-buffers={GSTREAMER_SECONDS * AUDIO_RATE // AAC_FRAME_SAMPLES} samplesperbuffer=1024"
        f" is-live=true ! audio/x-raw,rate={AUDIO_RATE} ! audioconvert ! {encoder} ! aacparse ! m."
    )
    watcher = PlaylistWatcher(server)
    with publishing([require_tool("gst-launch-1.0"), "-q", *pipeline.split()]) as gst:
        watcher.wait(lambda: watcher.segment_count() >= 1, "the first segment", 15)
        live_probe = ffprobe_url(server.base_url + MULTIVARIANT)
        _, stderr = gst.communicate(timeout=30)
        assert gst.returncode == 0, stderr
    streams = probed_streams(live_probe)
    assert live_probe.stderr == ""
    assert (streams["video"]["codec_name"], streams["video"]["width"], streams["video"]["height"]) == ("h264", 320, 240)
    assert streams["audio"]["codec_name"] == "aac"
    # Once ended, every frame of the stream decodes from the URL without a complaint.
    watcher.wait(lambda: watcher.latest is not None and watcher.latest.playlist.is_endlist, "EXT-X-ENDLIST", 10)
    # The live segments only: after them comes the offline slate with its own init segment, which
    # ffmpeg's HLS reader does not switch to at a discontinuity (hls.js and Safari do).
    live_only = tmp_path / "live.m3u8"
    live_only.write_text(live_media_playlist(server, fetch(server, MEDIA_PLAYLIST).body.decode()))
    counted = subprocess.run(
        [
            require_tool("ffprobe"),
            *("-v", "warning", "-of", "json", "-count_frames"),
            *("-show_entries", "stream=codec_type,nb_read_frames"),
            *("-protocol_whitelist", "file,http,tcp"),
            str(live_only),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    frames = {kind: int(stream["nb_read_frames"]) for kind, stream in probed_streams(counted).items()}
    assert counted.stderr == ""
    assert frames["video"] == GSTREAMER_SECONDS * FRAME_RATE
    # Audio that arrives before the first keyframe has no segment to go in; the AAC encoder may
    # add a frame or two when it flushes.
    assert frames["audio"] == pytest.approx(GSTREAMER_SECONDS * AUDIO_RATE // AAC_FRAME_SAMPLES, abs=3)
