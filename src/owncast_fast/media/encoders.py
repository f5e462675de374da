"""Which of Owncast's video encoders work on this host.

An encoder is offered (`supportedCodecs` in the admin config, and accepted by
`POST /api/admin/config/video/codec`) only when PyAV's FFmpeg was built with it AND a probe
encode of a few small frames succeeds here: FFmpeg lists NVENC or QSV on machines without the
hardware, and those fail only when opened. The probe runs once per process, in a worker thread
started at start-up; `supported_video_codecs()` waits for it.
"""

from __future__ import annotations

import logging
import threading
from fractions import Fraction

from owncast_fast.media.ladder import DEFAULT_VIDEO_CODEC, VIDEO_CODECS

log = logging.getLogger(__name__)

_PIXEL_FORMATS = {"h264_qsv": "nv12", "h264_videotoolbox": "nv12", "h264_vaapi": "nv12"}
PROBE_WIDTH, PROBE_HEIGHT = 256, 144

_lock = threading.Lock()
_supported: tuple[str, ...] | None = None


def pixel_format(codec: str) -> str:
    return _PIXEL_FORMATS.get(codec, "yuv420p")


def probe_encoder(codec: str) -> bool:
    """Open `codec` and encode a few frames; True when it produced a packet."""
    import av

    if codec not in av.codecs_available:
        return False
    try:
        context = av.CodecContext.create(codec, "w")
        assert isinstance(context, av.VideoCodecContext)
        context.width, context.height = PROBE_WIDTH, PROBE_HEIGHT
        context.pix_fmt = pixel_format(codec)
        context.time_base = Fraction(1, 30)
        context.framerate = Fraction(30)
        context.bit_rate = 200_000
        context.open()
        frame = av.VideoFrame(PROBE_WIDTH, PROBE_HEIGHT, pixel_format(codec))
        packets = 0
        for index in range(3):
            frame.pts = index
            packets += len(context.encode(frame))
        packets += len(context.encode(None))
        return packets > 0
    except Exception as exc:  # any failure means "not on this host"
        log.debug("video encoder %s is not usable here: %s", codec, exc)
        return False


def supported_video_codecs() -> tuple[str, ...]:
    """Owncast's encoder names that work here, probed once (thread-safe, blocking)."""
    global _supported
    with _lock:
        if _supported is None:
            found = tuple(codec for codec in VIDEO_CODECS if probe_encoder(codec))
            if DEFAULT_VIDEO_CODEC not in found:
                log.error("libx264 failed its probe encode: transcoded variants cannot be produced")
            _supported = found
            log.info("video encoders usable on this host: %s", ", ".join(found) or "none")
        return _supported


def start_probe() -> None:
    """Probe in the background so the first admin request does not wait for it."""
    threading.Thread(target=supported_video_codecs, name="encoder-probe", daemon=True).start()


def usable_codec(wanted: str) -> str:
    """The configured encoder if it works here, else libx264 (logged)."""
    supported = supported_video_codecs()
    if wanted in supported:
        return wanted
    log.warning("video codec %s is not usable on this host; encoding with %s", wanted, DEFAULT_VIDEO_CODEC)
    return DEFAULT_VIDEO_CODEC
