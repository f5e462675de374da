"""Stills of the live picture: `thumbnail.jpg` and `preview.gif` (Owncast's /thumbnail.jpg, /preview.gif).

Theory of operation
-------------------
Owncast runs ffmpeg every 20 s on the newest HLS segment of one variant, whether anyone looks or
not. We make a still when one is asked for (`/thumbnail.jpg`, `/preview.gif`: a page load, a link
preview, a directory crawler) and the one we hold is stale, from frames taken off the media hub
before any muxing, through a hub tap (`StillPlanner.push` is a few comparisons and a list append
per unit, on the loop; the decoding is on a worker thread), so a still never waits for a segment
and never slows the publisher or a variant. A stream nobody previews costs no decoding at all
(a 1080p still is ~0.3 s of CPU: every 20 s that was 1.5 % of a core).

* `StillPlanner` (sans-I/O) keeps a *window*: a video keyframe and the units after it, up to
  `preview_seconds` of media time. Units past a full window are ignored until the next keyframe,
  which opens a new window; so a 10 s GOP costs one second of frames, not ten. A GOP shorter than
  the window does not restart it (the window runs across keyframes until it is full). The newest
  full window is kept as `latest` (references to the hub's immutable units, no copy): memory is
  two windows at most, each bounded in units and bytes.
* `due(made_from)` decides whether the still made from `made_from` (a `StillJob`) may still be
  served: yes while the newest full window started less than `interval` of media time after it
  (Owncast's 20 s). Media time, not the wall clock; a timeline that went back, or a new stream,
  makes a still due at once.
* `make_stills(job)` decodes the job with a fresh decoder and encodes the JPEG (first frame, the
  keyframe) and the GIF (`preview_seconds` at 8 fps, 480 px wide, palettegen/paletteuse, as
  Owncast's ffmpeg command). Pure: bytes in, bytes out. ~0.25 s at 1080p (bench/test_bench_stills.py).
* `StillMaker` is the adapter: its hub tap, `await current()` for the routes, and one dedicated
  worker thread for the codec work and the files. Requests that arrive
  while a still is being made wait for that one (one decode however many ask); a job is tried once,
  so a failing window is not decoded again for every request (the last good still, else the logo,
  is served meanwhile). The still is also written to `<data>/tmp/` (Owncast's layout; temp file +
  rename). At stream end both files are removed and `current()` answers None, so /thumbnail.jpg and
  /preview.gif fall back to the logo (Owncast copies the logo over thumbnail.jpg; serving the logo
  gives the same answer). The worker thread runs its jobs in order, so a still that finishes after
  its stream ended is discarded, never written over the logo fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import av.error
import av.filter

from owncast_fast.media.hub import HubItem, MediaHub, StreamEnd, StreamStart, Tap, TrackConfig
from owncast_fast.media.units import TIMESCALE, VIDEO, AccessUnit, Track

log = logging.getLogger(__name__)

THUMBNAIL_NAME = "thumbnail.jpg"
PREVIEW_NAME = "preview.gif"
DEFAULT_INTERVAL = 20.0  # seconds, Owncast's thumbnail period
PREVIEW_SECONDS = 1.0
PREVIEW_FPS = 8
PREVIEW_WIDTH = 480
# A thumbnail is shown as a card or link preview; wider sources are scaled down to this.
THUMBNAIL_MAX_WIDTH = 1280
JPEG_QUALITY = 3  # ffmpeg's -q:v scale, 2 (best) .. 31
# Window bounds: one second of 240 fps video, and 4 MB (one second at 32 Mbit/s). A source beyond
# either gets a shorter preview rather than more memory.
MAX_WINDOW_UNITS = 240
MAX_WINDOW_BYTES = 4_000_000
# FourCC -> FFmpeg decoder. AV1 and VP9 sources get no stills (the logo is served), logged once.
DECODERS = {"avc1": "h264", "hvc1": "hevc"}


def stills_directory(data_path: Path) -> Path:
    """Where the stills live: `<data>/tmp/`, as Owncast's `data/tmp/thumbnail.jpg`."""
    return data_path / "tmp"


class StillError(Exception):
    """A still could not be made from a job; the message says why."""


@dataclass(frozen=True, slots=True)
class StillJob:
    config: TrackConfig
    units: tuple[AccessUnit, ...]  # a keyframe first, in decode order
    stream: int  # which stream (counted from 1) the units belong to


@dataclass(frozen=True, slots=True)
class Stills:
    jpeg: bytes
    gif: bytes


class StillPlanner:
    """Keeps the window the next still is made from. Sans-I/O: hub items in, `StillJob`s out."""

    def __init__(
        self,
        *,
        interval: float = DEFAULT_INTERVAL,
        preview_seconds: float = PREVIEW_SECONDS,
        max_units: int = MAX_WINDOW_UNITS,
        max_bytes: int = MAX_WINDOW_BYTES,
    ) -> None:
        if interval <= 0 or preview_seconds <= 0:
            raise ValueError("interval and preview_seconds must be positive")
        self.interval_ticks = round(interval * TIMESCALE)
        self.preview_ticks = round(preview_seconds * TIMESCALE)
        self.max_units = max_units
        self.max_bytes = max_bytes
        self.stream = 0
        self.unsupported: str | None = None  # codec of a video track we cannot decode
        self.latest: StillJob | None = None  # the newest full window of the live stream
        self._config: TrackConfig | None = None
        self._window: list[AccessUnit] = []
        self._window_bytes = 0
        self._full = False

    @property
    def window_units(self) -> int:
        return len(self._window)

    @property
    def window_bytes(self) -> int:
        return self._window_bytes

    def push(self, item: HubItem) -> None:
        """Take one hub item."""
        if type(item) is AccessUnit:  # the hot path: every frame
            if item.track is VIDEO and self._config is not None:
                self._video(item)
        elif isinstance(item, TrackConfig):
            if item.track is Track.VIDEO:
                self._reset_window()
                supported = item.codec in DECODERS
                self._config = item if supported else None
                self.unsupported = None if supported else item.codec
        elif isinstance(item, StreamStart | StreamEnd):
            self._config = None
            self.latest = None
            self._reset_window()
            if isinstance(item, StreamStart):
                self.stream += 1

    def due(self, made_from: StillJob | None) -> StillJob | None:
        """The job to make now, or None when the still made from `made_from` may still be served
        (or when there is nothing to make a still from)."""
        latest = self.latest
        if latest is None or made_from is latest:
            return None
        if made_from is None or made_from.stream != latest.stream:
            return latest
        made, newest = made_from.units[0].dts, latest.units[0].dts
        # A timeline that went back (the publisher's clock reset) makes a still due at once.
        return None if made <= newest < made + self.interval_ticks else latest

    def _video(self, unit: AccessUnit) -> None:
        if self._window and unit.dts < self._window[-1].dts:
            self._reset_window()  # decode times went back: the window's units are another timeline
        if self._window and not self._full and self._fills_window(unit):
            self._full = True
            assert self._config is not None
            self.latest = StillJob(self._config, tuple(self._window), self.stream)
        if self._full or not self._window:
            if not unit.keyframe:
                return  # nothing decodes before a keyframe; a full window takes no more
            self._reset_window()
        self._window.append(unit)
        self._window_bytes += len(unit.data)

    def _fills_window(self, unit: AccessUnit) -> bool:
        """Would this unit take the window past the preview's length or a bound?"""
        return (
            unit.dts - self._window[0].dts >= self.preview_ticks
            or len(self._window) >= self.max_units
            or self._window_bytes + len(unit.data) > self.max_bytes
        )

    def _reset_window(self) -> None:
        self._window = []
        self._window_bytes = 0
        self._full = False


# -- codec work (worker thread) ---------------------------------------------------------------


def decode_frames(job: StillJob) -> list[av.VideoFrame]:
    """The job's pictures, from a fresh decoder. Units that fail to decode are skipped."""
    decoder = av.CodecContext.create(DECODERS[job.config.codec], "r")
    assert isinstance(decoder, av.VideoCodecContext)
    decoder.extradata = job.config.config
    decoder.thread_count = 1  # Owncast's -threads 1: one still must not take every core
    frames: list[av.VideoFrame] = []
    errors = 0
    for unit in job.units:
        packet = av.Packet(cast(bytes, unit.data))  # any buffer; PyAV's type hints say bytes
        packet.pts, packet.dts = unit.pts, unit.dts
        packet.time_base = Fraction(1, TIMESCALE)
        try:
            frames += decoder.decode(packet)
        except av.error.FFmpegError:
            errors += 1
    with contextlib.suppress(av.error.FFmpegError):
        frames += decoder.decode(None)
    if not frames:
        raise StillError(f"no picture decoded from {len(job.units)} units ({errors} failed to decode)")
    return frames


def encode_jpeg(frame: av.VideoFrame, *, max_width: int = THUMBNAIL_MAX_WIDTH) -> bytes:
    width, height = frame.width, frame.height
    if width > max_width:
        width, height = max_width, max(2, round(height * max_width / width / 2) * 2)
    encoder = av.CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.qscale = True
    encoder.global_quality = JPEG_QUALITY * 118  # FF_QP2LAMBDA: what ffmpeg's -q:v sets
    picture = frame.reformat(width=width, height=height, format="yuvj420p", interpolation="AREA")
    picture.pts = 0
    return b"".join(bytes(packet) for packet in [*encoder.encode(picture), *encoder.encode(None)])


def _palette_filters() -> bool:
    available = av.filter.filters_available
    return "palettegen" in available and "paletteuse" in available


def preview_frames(
    frames: Sequence[av.VideoFrame], *, seconds: float, fps: int, width: int, palette: bool
) -> list[av.VideoFrame]:
    """`seconds` of `frames` at `fps`, `width` wide: pal8 through palettegen/paletteuse (one palette
    made for the whole clip, as Owncast's ffmpeg command), else rgb8 (a fixed 3-3-2 palette)."""
    first = frames[0]
    graph = av.filter.Graph()
    source = graph.add_buffer(
        width=first.width, height=first.height, format=first.format, time_base=Fraction(1, TIMESCALE)
    )
    chain = [graph.add("fps", str(fps)), graph.add("scale", f"{width}:-2:flags=lanczos")]
    sink = graph.add("buffersink")
    source.link_to(chain[0])
    chain[0].link_to(chain[1])
    if palette:
        split, palettegen, paletteuse = graph.add("split"), graph.add("palettegen"), graph.add("paletteuse")
        # The palette's colour histogram is built from a quarter-width copy: a third of the
        # preview's CPU (noisy pictures have a colour per pixel) for a palette of the same colours.
        small = graph.add("scale", f"{max(2, width // 4)}:-2:flags=area")
        chain[1].link_to(split)
        split.link_to(paletteuse, 0, 0)
        split.link_to(small, 1, 0)
        small.link_to(palettegen)
        palettegen.link_to(paletteuse, 0, 1)
        paletteuse.link_to(sink)
    else:
        to_rgb8 = graph.add("format", "rgb8")
        chain[1].link_to(to_rgb8)
        to_rgb8.link_to(sink)
    graph.configure()
    end = first.pts + round(seconds * TIMESCALE) if first.pts is not None else None
    for frame in frames:
        if end is not None and frame.pts is not None and frame.pts >= end:
            break
        graph.push(frame)
    graph.push(None)
    out: list[av.VideoFrame] = []
    while True:
        try:
            pulled = graph.pull()
        except (av.error.EOFError, av.error.BlockingIOError):
            break
        assert isinstance(pulled, av.VideoFrame)
        out.append(pulled)
    return out


def encode_gif(frames: Sequence[av.VideoFrame], fps: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="gif") as container:
        stream = container.add_stream("gif", rate=fps)
        stream.width, stream.height = frames[0].width, frames[0].height
        stream.pix_fmt = frames[0].format.name
        for index, frame in enumerate(frames):
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def make_stills(
    job: StillJob,
    *,
    preview_seconds: float = PREVIEW_SECONDS,
    preview_fps: int = PREVIEW_FPS,
    preview_width: int = PREVIEW_WIDTH,
    palette: bool | None = None,
) -> Stills:
    """The thumbnail (the job's first picture) and the preview of one job. CPU work: worker thread."""
    frames = decode_frames(job)
    use_palette = _palette_filters() if palette is None else palette
    clip = preview_frames(frames, seconds=preview_seconds, fps=preview_fps, width=preview_width, palette=use_palette)
    if not clip:
        raise StillError(f"the preview filter gave no frame from {len(frames)} pictures")
    return Stills(encode_jpeg(frames[0]), encode_gif(clip, preview_fps))


# -- adapter ----------------------------------------------------------------------------------


def write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class StillMaker:
    """Hub tap + one worker thread: the live stills, made when asked for (`await current()`).

    `start()` on the server loop (removes stills left by a previous run: the server starts offline);
    `await close()` at shutdown. Stream start and end come through the hub; nothing else to call.
    """

    def __init__(
        self,
        hub: MediaHub,
        directory: Path,
        *,
        interval: float = DEFAULT_INTERVAL,
        preview_seconds: float = PREVIEW_SECONDS,
        max_units: int = MAX_WINDOW_UNITS,
        max_bytes: int = MAX_WINDOW_BYTES,
    ) -> None:
        self.hub = hub
        self.directory = directory
        self.thumbnail_path = directory / THUMBNAIL_NAME
        self.preview_path = directory / PREVIEW_NAME
        self.planner = StillPlanner(
            interval=interval, preview_seconds=preview_seconds, max_units=max_units, max_bytes=max_bytes
        )
        self.preview_seconds = preview_seconds
        self.tap: Tap | None = None
        self.made = 0
        self.failures = 0
        self._failed_stream = 0  # the last stream whose failure was logged (once per stream)
        self._warned_codec: str | None = None
        self._current_stream = 0  # read by the worker: a job of an ended stream is discarded
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stills")
        self._tried: StillJob | None = None  # the last job handed to the worker
        self._pending: asyncio.Future[Stills | None] | None = None  # its result, while it is made
        self._held: tuple[StillJob, Stills] | None = None  # the last still made, and from what

    def start(self) -> None:
        self._worker.submit(self._remove_stills)
        self.tap = self.hub.tap("stills", self._take)

    async def close(self) -> None:
        if self.tap is not None:
            self.hub.untap(self.tap)
            self.tap = None
        self._current_stream = -1
        await asyncio.to_thread(self._worker.shutdown)

    async def current(self) -> Stills | None:
        """The live still, made now if the one held is stale; None while no stream is live (or
        before its first window is full, or when no still could be made this stream)."""
        job = self.planner.due(self._tried)
        if job is not None:
            self._tried = job
            pending = asyncio.wrap_future(self._worker.submit(self._make, job))
            pending.add_done_callback(functools.partial(self._settle, job))
            self._pending = pending
        if self._pending is not None:
            await asyncio.shield(self._pending)  # a caller that goes away leaves it to the others
        held = self._held
        if held is None or self.planner.latest is None or held[0].stream != self.planner.stream:
            return None
        return held[1]

    def _settle(self, job: StillJob, done: asyncio.Future[Stills | None]) -> None:
        """On the loop, before any waiter resumes: keep what the worker made."""
        if self._pending is done:
            self._pending = None
        stills = None if done.cancelled() or done.exception() is not None else done.result()
        if stills is not None and job.stream == self.planner.stream:
            self._held = (job, stills)

    def _take(self, item: HubItem) -> None:
        """The hub tap, on the loop."""
        self.planner.push(item)
        if isinstance(item, AccessUnit):
            return
        if isinstance(item, StreamStart):
            self._current_stream = self.planner.stream
        elif isinstance(item, StreamEnd):
            self._current_stream = 0
            self._held = None
            self._worker.submit(self._remove_stills)
        elif isinstance(item, TrackConfig) and self.planner.unsupported not in (None, self._warned_codec):
            self._warned_codec = self.planner.unsupported
            log.info("stills: no decoder for %s video; the logo stands in for the thumbnail", self._warned_codec)

    def _make(self, job: StillJob) -> Stills | None:
        """Worker thread: one still, written unless its stream has ended meanwhile."""
        try:
            stills = make_stills(job, preview_seconds=self.preview_seconds)
            if job.stream != self._current_stream:
                return None
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(self.thumbnail_path, stills.jpeg)
            write_atomically(self.preview_path, stills.gif)
            self.made += 1
            return stills
        except Exception as exc:  # a still costs that still, never the maker
            self.failures += 1
            if self._failed_stream != job.stream:
                self._failed_stream = job.stream
                log.warning("stills: could not make a thumbnail (%s); further failures this stream not logged", exc)
            else:
                log.debug("stills: could not make a thumbnail (%s)", exc)
            return None

    def _remove_stills(self) -> None:
        for path in (self.thumbnail_path, self.preview_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
