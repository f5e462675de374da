"""The variant ladder: Owncast's `StreamOutputVariant` settings turned into encoder settings.

Pure functions, no codec library: what each variant encodes to (size, frame rate, bitrates,
keyframe interval, preset) follows Owncast's rules (`owncast-behavior.md` §4.3-4.4):

- a framerate of 0 reads as 24, a video bitrate of 0 as 1200 kbit/s;
- the video encoder gets the configured bitrate minus 192 kbit/s kept for audio, a maxrate of
  1.08 times that and a VBV buffer of one maxrate;
- one keyframe per segment (`fps x segment seconds` frames), no scene-cut keyframes, closed GOPs;
- `cpuUsageLevel` 0-4 picks the preset (x264 `ultrafast`..`fast`, NVENC `p1`..`p5`); an invalid
  level falls back to Owncast's fallback (`superfast`, `p3`);
- a scaled width or height alone keeps the aspect ratio with an even other side (`scale=-2:H`).

Two differences, both deliberate: the audio reserve never takes a variant below 64 kbit/s
(Owncast would hand ffmpeg a negative bitrate), and the keyframes we force follow the source's
keyframes where it has them, so transcoded variants cut where the passthrough variant cuts.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

AUDIO_RESERVE_KBPS = 192
MIN_VIDEO_KBPS = 64
DEFAULT_FRAMERATE = 24
DEFAULT_VIDEO_KBPS = 1200
DEFAULT_AUDIO_KBPS = 128
MAXRATE_FACTOR = 1.08

_LEVEL_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast")
_NVENC_PRESETS = ("p1", "p2", "p3", "p4", "p5")

# Owncast's codec names (the `videoCodec` setting), in the order the admin lists them.
VIDEO_CODECS = ("libx264", "h264_nvenc", "h264_vaapi", "h264_qsv", "h264_v4l2m2m", "h264_videotoolbox", "h264_omx")
DEFAULT_VIDEO_CODEC = "libx264"


def preset_for(codec: str, level: int) -> str | None:
    """The encoder preset for a CPU usage level; None where the encoder has no presets."""
    if codec == "h264_nvenc":
        return _NVENC_PRESETS[level] if 0 <= level < len(_NVENC_PRESETS) else "p3"
    if codec in ("libx264", "h264_qsv"):
        return _LEVEL_PRESETS[level] if 0 <= level < len(_LEVEL_PRESETS) else "superfast"
    return None  # VA-API, V4L2 M2M, VideoToolbox and OMX take no preset option in FFmpeg


# --- Owncast's StreamOutputVariant getters (names for /api/video/variants, admin values) ----


def _bitrate_text(kbps: int) -> str:
    """`800Kbps`, `3Mbps`, `1.2Mbps`; Owncast formats float32(kbps)/1000 with %.1f."""
    if kbps == 0:
        return ""
    if kbps < 1000:
        return f"{kbps}Kbps"
    if kbps % 1000 == 0:
        return f"{kbps // 1000}Mbps"
    as_float32 = struct.unpack("<f", struct.pack("<f", kbps / 1000))[0]
    return f"{as_float32:.1f}Mbps"


def variant_name(variant: Mapping[str, Any]) -> str:
    """Owncast's StreamOutputVariant.GetName, including its upstream bug: 720p is recognised only
    for a width of 1080 (not 1280), so 1280x720 is named `720h`."""
    name = str(variant.get("name") or "")
    bitrate = _bitrate_text(int(variant.get("videoBitrate") or 0))
    width = int(variant.get("scaledWidth") or 0)
    height = int(variant.get("scaledHeight") or 0)
    if name:
        return name
    if variant.get("videoPassthrough"):
        return "Source"
    if height == 720 and width == 1080:
        return f"720p @{bitrate}"
    if height == 1080 and width == 1920:
        return f"1080p @{bitrate}"
    if height:
        return f"{height}h"
    if width:
        return f"{width}w"
    return f"{bitrate}@{int(variant.get('framerate') or 0)}fps"


def variant_framerate(variant: Mapping[str, Any]) -> int:
    """Owncast's GetFramerate: 0 for passthrough, else the framerate or 24."""
    if variant.get("videoPassthrough"):
        return 0
    return int(variant.get("framerate") or 0) or 24


def variant_audio_passthrough(variant: Mapping[str, Any]) -> bool:
    """Owncast's GetIsAudioPassthrough: set, or implied by an audio bitrate of 0."""
    return bool(variant.get("audioPassthrough")) or not variant.get("audioBitrate")


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """One output variant, with Owncast's fallbacks applied."""

    index: int
    name: str
    video_passthrough: bool
    audio_passthrough: bool
    video_kbps: int  # as configured (audio reserve included)
    audio_kbps: int
    width: int  # 0 = follow the source (or the aspect ratio)
    height: int
    framerate: int
    cpu_usage_level: int

    @classmethod
    def from_setting(cls, index: int, variant: Mapping[str, Any]) -> VariantSpec:
        audio_kbps = int(variant.get("audioBitrate") or 0)
        return cls(
            index=index,
            name=variant_name(variant),
            video_passthrough=bool(variant.get("videoPassthrough")),
            audio_passthrough=variant_audio_passthrough(variant),
            video_kbps=int(variant.get("videoBitrate") or 0) or DEFAULT_VIDEO_KBPS,
            audio_kbps=audio_kbps if audio_kbps > 0 else DEFAULT_AUDIO_KBPS,
            width=max(0, int(variant.get("scaledWidth") or 0)),
            height=max(0, int(variant.get("scaledHeight") or 0)),
            framerate=int(variant.get("framerate") or 0) or DEFAULT_FRAMERATE,
            cpu_usage_level=int(variant.get("cpuUsageLevel") or 0),
        )

    @property
    def encoder_kbps(self) -> int:
        return max(self.video_kbps - AUDIO_RESERVE_KBPS, MIN_VIDEO_KBPS)

    @property
    def maxrate_kbps(self) -> int:
        return int(self.encoder_kbps * MAXRATE_FACTOR)

    def gop_frames(self, segment_seconds: float) -> int:
        return max(1, round(self.framerate * segment_seconds))

    def output_size(self, source_width: int, source_height: int) -> tuple[int, int]:
        """The encoded picture size: as configured, the other side by aspect ratio, even numbers."""
        width, height = self.width, self.height
        if source_width <= 0 or source_height <= 0:
            return _even(width or 2), _even(height or 2)
        if width and height:
            return _even(width), _even(height)
        if height:
            return _even(round(source_width * height / source_height)), _even(height)
        if width:
            return _even(width), _even(round(source_height * width / source_width))
        return _even(source_width), _even(source_height)


def _even(value: int) -> int:
    return max(2, value - value % 2)


def ladder(variants: Sequence[Mapping[str, Any]]) -> list[VariantSpec]:
    """The configured variants in their HLS order (the index is the playlist folder)."""
    return [VariantSpec.from_setting(index, variant) for index, variant in enumerate(variants)]


def x264_options(spec: VariantSpec, segment_seconds: float) -> dict[str, str]:
    """libx264 options as Owncast passes them, for PyAV's `CodecContext.options`.

    `tune=zerolatency` (Owncast passes it for x264 always) means no lookahead, no B-frames and
    sliced threads: a frame comes out of the encoder as soon as it went in.
    """
    gop = spec.gop_frames(segment_seconds)
    return {
        "preset": preset_for("libx264", spec.cpu_usage_level) or "superfast",
        "tune": "zerolatency",
        "profile": "high",
        "maxrate": f"{spec.maxrate_kbps}k",
        "bufsize": f"{spec.maxrate_kbps}k",
        # Our forced keyframes (one per segment, on the source's keyframes) drive the GOP; x264's
        # own interval is a safety net twice as long so it never adds a misaligned keyframe.
        "g": str(gop * 2),
        "keyint_min": str(gop),
        "sc_threshold": "0",
        "forced-idr": "1",
        "x264-params": "scenecut=0:open_gop=0",
    }


def hardware_options(codec: str, spec: VariantSpec) -> dict[str, str]:
    """Options for the hardware encoders Owncast offers (used only when a probe encode passed)."""
    options: dict[str, str] = {"maxrate": f"{spec.maxrate_kbps}k", "bufsize": f"{spec.maxrate_kbps}k"}
    preset = preset_for(codec, spec.cpu_usage_level)
    if preset is not None:
        options["preset"] = preset
    if codec == "h264_nvenc":
        options["tune"] = "ll"
        options["bf"] = "0"
    if codec == "h264_videotoolbox":
        options["realtime"] = "1"
    return options
