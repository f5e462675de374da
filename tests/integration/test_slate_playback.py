"""The offline slate plays in a browser: hls.js in Chromium plays an ended playlist to its end,
live segments, then the slate after its discontinuity, in fMP4 and in MPEG-TS.

The playlist is built as the variant pipeline builds it (demuxed publisher media -> Segmenter ->
LiveVariant, then `mux_slate` and `end_stream`) and served from a loopback server with CORS.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import Chromium, HlsPlayer, chromium
from media import demux_flv, make_two_colour_flv

from owncast_fast.hls.live import LiveVariant
from owncast_fast.hls.storage import HlsStore
from owncast_fast.media.hub import StreamEnd, StreamStart, TrackConfig
from owncast_fast.media.segmenter import Container, Segmenter
from owncast_fast.media.slate import make_offline_slate, mux_slate

pytestmark = pytest.mark.integration

NOW = 1_800_000_000.0
LIVE_SECONDS = 4
SLATE_SECONDS = 8
PLAY_LIMIT = 40.0  # seconds of wall time for 12 s of media


class CorsFiles(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        ".m3u8": "application/vnd.apple.mpegurl",
        ".mp4": "video/mp4",
        ".m4s": "video/iso.segment",
        ".ts": "video/mp2t",
    }

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(CorsFiles, directory=str(directory)))
    thread = threading.Thread(target=httpd.serve_forever, name="hls-files", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as launched:
        yield launched


def ended_playlist(directory: Path, container: Container) -> None:
    """A 4 s stream from a publisher, then the slate, then EXT-X-ENDLIST, written under `directory`."""
    # What ffmpeg announces in onMetaData (the demuxer's source of the track size, which the fMP4
    # sample entry needs: Chromium refuses a 0x0 avc1).
    items = demux_flv(
        make_two_colour_flv(directory / "live.flv", seconds=LIVE_SECONDS, gop=30), {"width": 320, "height": 240}
    )
    store = HlsStore()
    live = LiveVariant(0, store, container=container, window=15, target_duration=2.0, session="s")
    segmenter = Segmenter(container, target_duration=2.0, part_target=0.5)
    for item in [StreamStart(), *items, StreamEnd("publisher left")]:
        if isinstance(item, TrackConfig):
            live.set_track(item)
        live.apply(segmenter.push(item, NOW))
    slate = make_offline_slate("Back soon", None, width=320, height=240, fps=5, duration_s=SLATE_SECONDS)
    live.apply(mux_slate(segmenter, slate, NOW))
    live.end_stream()
    assert live.playlist is not None and live.playlist.endswith(b"#EXT-X-ENDLIST\n")
    for path in store.paths():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_bytes(store.get(path) or b"")
    (directory / "0" / "stream.m3u8").write_bytes(live.playlist)


@pytest.mark.parametrize("container", [Container.FMP4, Container.MPEGTS])
def test_hls_js_plays_through_the_slate_to_the_end(browser: Chromium, container: Container, tmp_path: Path) -> None:
    ended_playlist(tmp_path, container)
    player = HlsPlayer(browser)
    try:
        with serve(tmp_path) as base:
            player.play(f"{base}/0/stream.m3u8")
            deadline = time.monotonic() + PLAY_LIMIT
            while not player.playback().events_named("ended", 0, float("inf")) and time.monotonic() < deadline:
                player.wait(0.5)
            playback = player.playback()
    finally:
        player.close()
    assert playback.events_named("ended", 0, playback.now), playback.summary()
    assert playback.endlist_at is not None
    assert not [e for e in playback.errors if e["fatal"]], playback.summary()
    final = playback.events_named("ended", 0, playback.now)[0][2]
    assert final == pytest.approx(LIVE_SECONDS + SLATE_SECONDS, abs=0.5), playback.summary()
