"""Headless Chromium playing HLS with hls.js (from web/node_modules), driven by Playwright's sync API.

The page is a blank document with hls.js injected and one muted, autoplaying `<video>`. It is served
from another loopback origin (`http://localhost:PORT/`, a tiny server in this process), so the player's
requests to the server under test are cross-origin and Chromium enforces its CORS headers, as for an
embedded player. It cannot be `about:blank`: Chromium's Private Network Access blocks requests from
that opaque, non-secure origin to loopback ("the request client is not a secure context and the
resource is in more-private address space `loopback`"). Everything the
tests judge playback by is recorded inside the page, on the page's clock, so the test thread may do
other work (poll playlists, download segments) while the player runs and read it all afterwards:

* `currentTime` samples every 200 ms;
* media element events (`playing`, `waiting`, `ended`, `error`, ...) with the time they fired;
* every hls.js `ERROR` event (type, details, fatal);
* whether hls.js loaded a playlist that ended (`details.live` false: EXT-X-ENDLIST), the one case in
  which a viewer page may restart its player to pick up a publisher that came back.

Chromium is the Debian package (`/usr/bin/chromium`, installed by scripts/install-test-deps.sh),
never a browser build downloaded by Playwright, and runs with a fresh profile directory.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from media import require_tool

HLS_JS = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "hls.js" / "dist" / "hls.min.js"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SAMPLE_INTERVAL_MS = 200

# Runs once in the page after hls.js: defines `window.player`.
PLAYER_JS = """
(() => {
  const clock = () => performance.now() / 1000;
  const state = {
    samples: [], events: [], errors: [], firstPlaying: null, endlistAt: null, restarts: 0, levels: [],
    switches: [],
  };
  const video = document.createElement("video");
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  document.body.appendChild(video);
  for (const name of ["playing", "waiting", "stalled", "ended", "error", "emptied"]) {
    video.addEventListener(name, () => {
      state.events.push([clock(), name, video.currentTime]);
      if (name === "playing" && state.firstPlaying === null) state.firstPlaying = clock();
    });
  }
  setInterval(() => state.samples.push([clock(), video.currentTime]), SAMPLE_INTERVAL_MS);
  let hls = null;
  let url = null;
  function attach() {
    hls = new Hls();
    hls.on(Hls.Events.ERROR, (_, data) => {
      state.errors.push({
        at: clock(), type: data.type, details: data.details, fatal: data.fatal,
        reason: String(data.reason || data.error || ""),
      });
    });
    hls.on(Hls.Events.LEVEL_LOADED, (_, data) => {
      const details = data.details;
      state.levels.push([clock(), details.live, details.startSN, details.endSN]);
      if (!details.live && state.endlistAt === null) state.endlistAt = clock();
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => state.switches.push([clock(), data.level]));
    hls.loadSource(url);
    hls.attachMedia(video);
  }
  window.player = {
    state,
    clock,
    play(source) { url = source; attach(); },
    restart() {
      // Only a player whose playlist ended has a reason to start over: a live one must carry on.
      if (state.endlistAt === null) throw new Error("restart refused: hls.js never saw the stream end");
      hls.destroy();
      state.restarts += 1;
      state.endlistAt = null;
      attach();
    },
    currentTime() { return video.currentTime; },
    levelCount() { return hls ? hls.levels.length : 0; },
    // A smooth switch, as the ABR controller makes one: from the next fragment on.
    nextLevel(level) { hls.nextLevel = level; },
  };
})();
""".replace("SAMPLE_INTERVAL_MS", str(SAMPLE_INTERVAL_MS))


@dataclass(frozen=True, slots=True)
class Playback:
    """What the page recorded; times are seconds on the page's clock."""

    now: float
    samples: list[tuple[float, float]]  # (time, currentTime)
    events: list[tuple[float, str, float]]  # (time, media event, currentTime)
    errors: list[dict[str, Any]]  # hls.js ERROR events
    first_playing: float | None
    endlist_at: float | None
    restarts: int
    levels: list[tuple[float, bool, int, int]]  # (time, live, first and last media sequence number)

    def events_named(self, name: str, start: float, end: float) -> list[tuple[float, str, float]]:
        return [event for event in self.events if event[1] == name and start <= event[0] <= end]

    def advanced(self, start: float, end: float) -> float:
        """How far currentTime moved between two page times (by the samples nearest inside)."""
        inside = [position for at, position in self.samples if start <= at <= end]
        return inside[-1] - inside[0] if len(inside) >= 2 else 0.0

    def longest_freeze(self, start: float, end: float) -> float:
        """The longest time currentTime stood still between two page times (a stall, seen or not)."""
        inside = [(at, position) for at, position in self.samples if start <= at <= end]
        longest, frozen_since = 0.0, None
        for (before_at, before), (at, position) in itertools.pairwise(inside):
            if position == before:
                frozen_since = before_at if frozen_since is None else frozen_since
                longest = max(longest, at - frozen_since)
            else:
                frozen_since = None
        return longest

    def went_back(self, start: float, end: float) -> list[tuple[float, float, float]]:
        """(time, from, to) wherever currentTime decreased between two consecutive samples."""
        inside = [(at, position) for at, position in self.samples if start <= at <= end]
        return [(b[0], a[1], b[1]) for a, b in itertools.pairwise(inside) if b[1] < a[1]]

    def summary(self) -> str:
        """Events, errors and every fifth sample: what a failure message needs."""
        samples = ", ".join(f"{at:.1f}:{position:.2f}" for at, position in self.samples[::5])
        return (
            f"events={[(round(t, 2), n, round(p, 2)) for t, n, p in self.events]} errors={self.errors} "
            f"first_playing={self.first_playing} endlist_at={self.endlist_at} restarts={self.restarts} "
            f"levels={self.levels[-5:]} samples=[{samples}]"
        )


@dataclass(frozen=True, slots=True)
class Chromium:
    context: Any  # playwright.sync_api.BrowserContext
    page_url: str  # a blank page on its own loopback origin


class HlsPlayer:
    """One page playing one HLS URL with hls.js."""

    def __init__(self, browser: Chromium) -> None:
        if not HLS_JS.is_file():
            pytest.fail(f"{HLS_JS} is missing: run scripts/install-test-deps.sh")
        self.page = browser.context.new_page()
        self.page.goto(browser.page_url)
        self.page.add_script_tag(path=str(HLS_JS))
        self.page.evaluate(PLAYER_JS)

    def play(self, url: str) -> None:
        self.page.evaluate("url => window.player.play(url)", url)

    def restart(self) -> None:
        self.page.evaluate("() => window.player.restart()")

    def played_for(self) -> float | None:
        """Seconds since the video first played, or None before that."""
        return self.page.evaluate(
            "() => window.player.state.firstPlaying === null ? null"
            " : window.player.clock() - window.player.state.firstPlaying"
        )

    def current_time(self) -> float:
        return float(self.page.evaluate("() => window.player.currentTime()"))

    def level_count(self) -> int:
        return int(self.page.evaluate("() => window.player.levelCount()"))

    def switch_to(self, level: int) -> None:
        self.page.evaluate("level => window.player.nextLevel(level)", level)

    def switches(self) -> list[tuple[float, int]]:
        """(page time, level) of every LEVEL_SWITCHED event."""
        return [(at, level) for at, level in self.page.evaluate("() => window.player.state.switches")]

    def wait(self, seconds: float) -> None:
        """Let the page run; the sync API only serves the page's events while it is called."""
        self.page.wait_for_timeout(seconds * 1000)

    def playback(self) -> Playback:
        state = self.page.evaluate("() => ({now: window.player.clock(), ...window.player.state})")
        return Playback(
            now=state["now"],
            samples=[(at, position) for at, position in state["samples"]],
            events=[(at, name, position) for at, name, position in state["events"]],
            errors=list(state["errors"]),
            first_playing=state["firstPlaying"],
            endlist_at=state["endlistAt"],
            restarts=state["restarts"],
            levels=[(at, live, first, last) for at, live, first, last in state["levels"]],
        )

    def close(self) -> None:
        self.page.close()


class _BlankPage(http.server.BaseHTTPRequestHandler):
    BODY = b"<!doctype html><html><head><title>player</title></head><body></body></html>"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the page is fetched once per player."""


@contextlib.contextmanager
def _page_origin() -> Iterator[str]:
    """A blank page's URL on localhost, served from a thread until the block ends."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BlankPage)
    thread = threading.Thread(target=httpd.serve_forever, name="player-page", daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@contextlib.contextmanager
def chromium(profile_dir: Path) -> Iterator[Chromium]:
    """The system Chromium with a fresh profile, through Playwright; closed on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run scripts/install-test-deps.sh")
    executable = require_tool("chromium")
    with _page_origin() as page_url, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir), executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield Chromium(context, page_url)
        finally:
            context.close()
