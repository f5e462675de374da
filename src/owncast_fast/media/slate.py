"""The offline slate: a short clip shown when the publisher stops (Owncast's `offline.ts`).

Owncast appends a bundled 8-second clip after a discontinuity to every variant playlist, then
EXT-X-ENDLIST (reference/owncast-behavior.md §4.9). We generate ours instead, from the offline
message and the logo, so it says what the admin wrote: a dark picture with the logo and the
message, H.264 (libx264, Main profile, closed GOPs of one second, no B-frames) and AAC silence.

The result is what ingest would have produced for such a stream: `TrackConfig`s with the same
fields the RTMP demuxer fills (avcC record; AudioSpecificConfig parsed by the same parser) and
`AccessUnit`s in AVCC layout with 90 kHz timestamps from 0, a video keyframe first. So a
variant's `Segmenter` muxes it like live media (`mux_slate`): `Slate.hub_items()` begins with a
`StreamStart`, hence a discontinuity.

Making one costs ~0.13 s of CPU at 720p, ~0.35 s at 1080p (run it in a worker thread), and it is made once per
stream end: `make_offline_slate` caches the last few by their inputs (message, logo bytes, size,
rate, duration). Output is deterministic: one encoder thread, no SEI (x264 writes its version and
options there), fixed settings.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import textwrap
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from owncast_fast._native import flv
from owncast_fast.media.annexb import (
    NAL_AUD,
    NAL_PPS,
    NAL_SEI,
    NAL_SPS,
    avc_decoder_configuration,
    nal_type,
    split_annexb,
    to_avcc,
)
from owncast_fast.media.hub import HubItem, StreamStart, TrackConfig
from owncast_fast.media.segmenter import Segmenter, SegmenterEvent
from owncast_fast.media.units import TIMESCALE, AccessUnit, Track

log = logging.getLogger(__name__)

# Shown when the admin left `custom_offline_message` empty.
DEFAULT_OFFLINE_MESSAGE = "This stream is offline. Check back soon!"
BACKGROUND = (0x16, 0x16, 0x1D)
TEXT_COLOUR = (0xF2, 0xF2, 0xF5)
MAX_MESSAGE_LINES = 4
AAC_FRAME_SAMPLES = 1024
# Bounds on what a caller may ask for: a slate is a few seconds of a picture that does not move.
MAX_SIDE = 4096
MAX_DURATION_S = 60.0
SLATE_CACHE_SIZE = 4  # one per variant size of a typical ladder


@dataclass(frozen=True, slots=True)
class Slate:
    video: TrackConfig
    audio: TrackConfig | None
    units: tuple[AccessUnit, ...]  # both tracks, in dts order; a video keyframe at dts 0 first
    duration: float  # seconds of video

    def hub_items(self) -> list[HubItem]:
        """What a hub consumer would see for this clip: start, configurations, units."""
        configs: list[HubItem] = [self.video] if self.audio is None else [self.video, self.audio]
        return [StreamStart(), *configs, *self.units]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled scalable font (no system font needed, same pixels everywhere).
    return ImageFont.load_default(size=size)


def _logo_image(logo: bytes | None, box: int) -> Image.Image | None:
    if not logo:
        return None
    try:
        with Image.open(io.BytesIO(logo)) as opened:
            image = opened.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        # SVG logos (Owncast's default) cannot be rasterised without a renderer: message only.
        log.info("offline slate: the logo cannot be drawn (%s); showing the message alone", exc)
        return None
    image.thumbnail((box, box), Image.Resampling.LANCZOS)
    return image


def slate_picture(message: str, logo: bytes | None, width: int, height: int) -> Image.Image:
    """The slate's one picture: the logo above the message, centred on a dark background."""
    picture = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    text = " ".join(message.split()) or DEFAULT_OFFLINE_MESSAGE
    font_size = max(10, height // 20)
    font = _font(font_size)
    # Characters per line from the font's average advance, so the text spans at most 80 % of the width.
    advance = max(1.0, draw.textlength("abcdefghijklmnopqrstuvwxyz", font=font) / 26)
    lines = textwrap.wrap(text, width=max(8, int(width * 0.8 / advance)))
    if len(lines) > MAX_MESSAGE_LINES:
        lines = lines[:MAX_MESSAGE_LINES]
        lines[-1] = lines[-1].rstrip(" .") + "…"
    line_height = round(font_size * 1.35)
    logo_image = _logo_image(logo, height // 3)
    gap = font_size if logo_image is not None else 0
    block = (logo_image.height + gap if logo_image is not None else 0) + line_height * len(lines)
    top = (height - block) // 2
    if logo_image is not None:
        picture.paste(logo_image, ((width - logo_image.width) // 2, top), logo_image)
        top += logo_image.height + gap
    for line in lines:
        draw.text((width / 2, top + line_height / 2), line, font=font, fill=TEXT_COLOUR, anchor="mm")
        top += line_height
    return picture


def _encode_video(picture: Image.Image, fps: int, frames: int) -> tuple[bytes, list[tuple[bool, bytes]]]:
    """(avcC, [(keyframe, AVCC data)] in decode order) for `frames` copies of one picture."""
    encoder = av.CodecContext.create("libx264", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height = picture.width, picture.height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.framerate = Fraction(fps)
    encoder.thread_count = 1
    encoder.options = {
        "preset": "veryfast",
        "tune": "stillimage",
        "profile": "main",
        "crf": "26",
        "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:bframes=0:open-gop=0:threads=1:sliced-threads=0",
    }
    frame = av.VideoFrame.from_image(picture).reformat(format="yuv420p")
    packets = []
    for index in range(frames):
        frame.pts = index
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    sps = pps = b""
    out = []
    for packet in packets:
        nals = split_annexb(bytes(packet))
        for nal in nals:
            if nal_type(nal) == NAL_SPS:
                sps = sps or nal
            elif nal_type(nal) == NAL_PPS:
                pps = pps or nal
        # Parameter sets live in avcC (the TS muxer repeats them before keyframes); SEI and AUD
        # are not needed to decode.
        kept = [nal for nal in nals if nal_type(nal) not in (NAL_SPS, NAL_PPS, NAL_SEI, NAL_AUD)]
        out.append((packet.is_keyframe, to_avcc(kept)))
    return avc_decoder_configuration(sps, pps), out


def _encode_silence(sample_rate: int, channels: int, frames: int) -> tuple[bytes, list[bytes]]:
    """(AudioSpecificConfig, raw AAC frames) of silence."""
    encoder = av.CodecContext.create("aac", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.sample_rate = sample_rate
    encoder.layout = "stereo" if channels == 2 else "mono"
    encoder.format = "fltp"
    encoder.time_base = Fraction(1, sample_rate)
    encoder.bit_rate = 64_000
    encoder.open()
    silence = av.AudioFrame(format="fltp", layout=encoder.layout, samples=AAC_FRAME_SAMPLES)
    silence.sample_rate = sample_rate
    for plane in silence.planes:
        plane.update(bytes(plane.buffer_size))
    packets: list[av.Packet] = []
    index = 0
    # The encoder holds back one frame (its priming delay): feed until `frames` packets came out.
    while len(packets) < frames:
        silence.pts = index * AAC_FRAME_SAMPLES
        packets += encoder.encode(silence)
        index += 1
    return bytes(encoder.extradata or b""), [bytes(packet) for packet in packets[:frames]]


def render_slate(
    message: str,
    logo: bytes | None,
    *,
    width: int,
    height: int,
    fps: int,
    duration_s: float,
    sample_rate: int = 48_000,
    channels: int = 2,
    audio: bool = True,
) -> Slate:
    """Make a slate (uncached; see `make_offline_slate`). CPU work: call it from a worker thread."""
    if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE) or width % 2 or height % 2:
        raise ValueError(f"slate size {width}x{height}: need even sides from 16 to {MAX_SIDE}")
    if not 1 <= fps <= 60 or not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"slate rate {fps} fps / duration {duration_s} s: need 1-60 fps and 0-{MAX_DURATION_S} s")
    if channels not in (1, 2):
        raise ValueError(f"slate audio: {channels} channels, need 1 or 2")
    video_frames = max(1, round(duration_s * fps))
    record, coded = _encode_video(slate_picture(message, logo, width, height), fps, video_frames)
    video_config = TrackConfig(
        Track.VIDEO, "avc1", flv.parse_avc_config(record).codecs, record, width=width, height=height
    )
    units = [
        AccessUnit(Track.VIDEO, index * TIMESCALE // fps, index * TIMESCALE // fps, keyframe, data)
        for index, (keyframe, data) in enumerate(coded)
    ]
    audio_config = None
    if audio:
        audio_frames = math.ceil(video_frames / fps * sample_rate / AAC_FRAME_SAMPLES)
        config, frames = _encode_silence(sample_rate, channels, audio_frames)
        aac = flv.parse_aac_config(config)
        audio_config = TrackConfig(
            Track.AUDIO, "mp4a", aac.codecs, config, sample_rate=aac.sample_rate, channels=aac.channels
        )
        for index, data in enumerate(frames):
            ticks = index * AAC_FRAME_SAMPLES * TIMESCALE // sample_rate
            units.append(AccessUnit(Track.AUDIO, ticks, ticks, True, data))
    units.sort(key=lambda unit: (unit.dts, unit.track))
    return Slate(video_config, audio_config, tuple(units), video_frames / fps)


@functools.lru_cache(maxsize=SLATE_CACHE_SIZE)
def _cached_slate(
    message: str,
    logo: bytes | None,
    width: int,
    height: int,
    fps: int,
    duration_s: float,
    sample_rate: int,
    channels: int,
    audio: bool,
) -> Slate:
    return render_slate(
        message,
        logo,
        width=width,
        height=height,
        fps=fps,
        duration_s=duration_s,
        sample_rate=sample_rate,
        channels=channels,
        audio=audio,
    )


def make_offline_slate(
    message: str,
    logo: Path | bytes | None,
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 5,
    duration_s: float = 8.0,
    sample_rate: int = 48_000,
    channels: int = 2,
    audio: bool = True,
) -> Slate:
    """The offline slate for this message and logo (a file, its bytes, or None), cached.

    `message` is Settings.custom_offline_message (drawn as plain text; empty: the default text).
    The logo is read on every call, so a new upload gives a new slate; a missing or undrawable
    file (SVG) gives the message alone. Thread-safe; CPU work on a miss: call it in a worker thread.
    """
    if isinstance(logo, Path):
        try:
            logo = logo.read_bytes()
        except OSError:
            logo = None
    return _cached_slate(message, logo, width, height, fps, float(duration_s), sample_rate, channels, audio)


def mux_slate(segmenter: Segmenter, slate: Slate, now: float) -> list[SegmenterEvent]:
    """The slate's segments after a stream that ended, for `LiveVariant.apply`, then `end_stream()`.

    Its `StreamStart` makes the first slate segment a discontinuity (and, in fMP4, brings a new
    init segment); the open slate segment is closed at the end. A publisher that returns sends a
    new `StreamStart` through the hub, so live media follows after another discontinuity.
    """
    events: list[SegmenterEvent] = []
    for item in slate.hub_items():
        events += segmenter.push(item, now)
    return events + segmenter.flush()
