"""MPEG-TS muxing throughput on a realistic stream: 1080p30 H.264 at 6 Mb/s plus AAC, 20 s (5 s quick).

The clip is made with ffmpeg at session scope and read with PyAV into access units (90 kHz times;
the avcC and AudioSpecificConfig from the demuxer). Each run muxes the whole clip the way the HLS
segmenter does: PAT/PMT at the first keyframe 3 s or more after the last segment start, one call
per access unit, every output kept (a live segment is held in memory until it is published).
The Cython muxer is measured against its pure-Python twin, and against ffmpeg's own HLS remux of
the same file.
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import pytest

from owncast_fast._native import segmenter as native_segmenter
from owncast_fast._pure import mpegts as pure_mpegts
from owncast_fast.media.units import AccessUnit, Track

IMPLS = {"cython": native_segmenter, "pure": pure_mpegts}
QUICK = os.environ.get("OWNCAST_FAST_BENCH_QUICK") == "1"
CLIP_SECONDS = 5 if QUICK else 20
HLS_TIME = 3
SEGMENT_TICKS = HLS_TIME * 90000


@dataclass(frozen=True)
class Clip:
    path: Path
    video_config: bytes
    audio_config: bytes
    units: list[AccessUnit]

    @property
    def media_megabytes(self) -> float:
        return sum(len(unit.data) for unit in self.units) / 1e6


@pytest.fixture(scope="session")
def clip(clip_1080p: Callable[[int], Path]) -> Clip:
    path = clip_1080p(CLIP_SECONDS)
    units = []
    with av.open(str(path)) as container:
        video_config = bytes(container.streams.video[0].codec_context.extradata or b"")
        audio_config = bytes(container.streams.audio[0].codec_context.extradata or b"")
        for packet in container.demux():
            if packet.size == 0 or packet.dts is None or packet.pts is None:
                continue
            track = Track.VIDEO if packet.stream.type == "video" else Track.AUDIO
            # FLV times are milliseconds: exactly 90 ticks each.
            units.append(AccessUnit(track, packet.dts * 90, packet.pts * 90, packet.is_keyframe, bytes(packet)))
    return Clip(path, video_config, audio_config, units)


def mux(impl: ModuleType, clip: Clip) -> list[list[bytes]]:
    """The clip as HLS segments, each the list of what the muxer returned for it."""
    muxer = impl.TsMuxer(video_codec="avc1", video_config=clip.video_config, audio_config=clip.audio_config)
    segments: list[list[bytes]] = []
    start = 0
    for unit in clip.units:
        if unit.track == Track.VIDEO:
            if unit.keyframe and (not segments or unit.dts - start >= SEGMENT_TICKS):
                segments.append([muxer.start_segment()])
                start = unit.dts
            segments[-1].append(muxer.write_video(unit.dts, unit.pts, unit.keyframe, unit.data))
        elif segments:
            segments[-1].append(muxer.write_audio(unit.pts, unit.data))
    return segments


class CopyFloor:
    """A stand-in muxer module whose output for each unit is its bytes copied once, nothing else.

    Driven by the same `mux()` loop, it is the floor for any muxer that copies each byte of media
    into kept output: pure / floor is the most any implementation could reach against the twin.
    """

    class TsMuxer:
        def __init__(self, **config: object) -> None:
            pass

        def start_segment(self) -> bytes:
            return b""

        def write_video(self, dts: int, pts: int, keyframe: bool, data: bytes) -> bytes:
            return bytes(memoryview(data))

        def write_audio(self, pts: int, data: bytes) -> bytes:
            return bytes(memoryview(data))


def mux_streaming(impl: ModuleType, clip: Clip) -> int:
    """The same calls with each output dropped as soon as it is made (as if written straight to a
    socket): the output memory is reused while still hot, so this measures the muxer itself."""
    muxer = impl.TsMuxer(video_codec="avc1", video_config=clip.video_config, audio_config=clip.audio_config)
    written = 0
    start: int | None = None
    for unit in clip.units:
        if unit.track == Track.VIDEO:
            if unit.keyframe and (start is None or unit.dts - start >= SEGMENT_TICKS):
                written += len(muxer.start_segment())
                start = unit.dts
            written += len(muxer.write_video(unit.dts, unit.pts, unit.keyframe, unit.data))
        elif start is not None:
            written += len(muxer.write_audio(unit.pts, unit.data))
    return written


def output_megabytes(segments: list[list[bytes]]) -> float:
    return sum(len(part) for segment in segments for part in segment) / 1e6


@pytest.mark.quick
@pytest.mark.parametrize("name", list(IMPLS))
def test_mux_clip(benchmark: Any, clip: Clip, name: str) -> None:
    impl = IMPLS[name]
    rounds = (10 if QUICK else 30) if name == "cython" else 3
    segments = benchmark.pedantic(mux, args=(impl, clip), rounds=rounds, iterations=1, warmup_rounds=1)
    assert segments == mux(native_segmenter, clip)
    if benchmark.stats is not None:
        seconds = benchmark.stats.stats.min
        benchmark.extra_info["MB_per_s"] = round(clip.media_megabytes / seconds, 1)
        benchmark.extra_info["input_MB"] = round(clip.media_megabytes, 2)
        benchmark.extra_info["output_MB"] = round(output_megabytes(segments), 2)
        benchmark.extra_info["realtime_x"] = round(CLIP_SECONDS / seconds)


def best_time(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def test_ratio_bar(clip: Clip) -> None:
    """Cython against the twin, measured side by side, alternating, best of several runs.

    The bar applies to the segmenter's workload, where every output is kept. At 6 Mb/s most bytes
    are in large keyframes, which both sides copy into fresh output memory; on the Cython side
    that copy and the kernel's page faults for the new memory are most of the time, the twin
    spends about half a microsecond per TS packet in its loop. The streaming figure (outputs
    dropped at once, memory reused while hot) shows the muxers themselves and is printed too, and
    so is the copy floor (`CopyFloor`: the same loop, each unit's bytes copied once): pure / floor
    is the ceiling for any muxer that copies each byte.
    """
    # The bar is 20x; measured 14-23x on the shared 2-core VM, so the full run asserts
    # it and the short CI run (5 s clip, noisier) guards against a regression at 12x.
    bar = float(os.environ.get("OWNCAST_FAST_BENCH_RATIO_TS", "12" if QUICK else "20"))
    megabytes = clip.media_megabytes
    ratios = {}
    for workload, run in (("kept", mux), ("streaming", mux_streaming)):
        best: dict[str, float] = dict.fromkeys(IMPLS, float("inf"))
        for _ in range(3 if QUICK else 5):
            for name, impl in IMPLS.items():
                best[name] = min(best[name], best_time(functools.partial(run, impl, clip), 2))
        ratios[workload] = best["pure"] / best["cython"]
        floor = best_time(functools.partial(run, CopyFloor, clip), 10)  # type: ignore[arg-type]
        print(
            f"\nMPEG-TS mux ({workload} outputs), {CLIP_SECONDS} s of 1080p30 6 Mb/s H.264 + AAC, "
            f"{megabytes:.1f} MB of media: cython {megabytes / best['cython']:.0f} MB/s, "
            f"pure {megabytes / best['pure']:.0f} MB/s, ratio {ratios[workload]:.1f}x"
            + (f" (bar {bar:g}x)" if workload == "kept" else "")
            + f"; copy floor {megabytes / floor:.0f} MB/s (pure / floor {best['pure'] / floor:.1f}x)"
        )
    assert ratios["kept"] >= bar, f"Cython/pure MPEG-TS muxing is {ratios['kept']:.1f}x, below the bar of {bar:g}x"


def ffmpeg_seconds(clip: Clip, out_dir: Path, *output: str) -> float:
    """Wall time of one ffmpeg run reading the clip, process start-up included."""
    out_dir.mkdir(exist_ok=True)
    start = time.perf_counter()
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(clip.path), *output], check=True)
    return time.perf_counter() - start


def mux_to_files(clip: Clip, out_dir: Path) -> None:
    out_dir.mkdir(exist_ok=True)
    for index, segment in enumerate(mux(native_segmenter, clip)):
        (out_dir / f"segment{index}.ts").write_bytes(b"".join(segment))


def test_ratio_bar_ffmpeg_remux(clip: Clip, tmp_path: Path) -> None:
    """Against `ffmpeg -c copy -f hls -hls_time 3`, in the same run, best of several.

    ffmpeg's wall time also covers its start-up and its FLV demuxing, which our side does not
    have (its units come from ingest already parsed); `-f null` measures those alone, so the
    difference estimates ffmpeg's own muxing, and both ratios are printed. The bar compares
    ffmpeg's whole remux with our muxing plus writing the same segment files.
    """
    bar = float(os.environ.get("OWNCAST_FAST_BENCH_RATIO_TS_FFMPEG", "1"))
    hls_dir, null_dir, our_dir = tmp_path / "ffmpeg_hls", tmp_path / "ffmpeg_null", tmp_path / "ours"
    hls_args = ("-c", "copy", "-f", "hls", "-hls_time", str(HLS_TIME), "-hls_list_size", "0", str(hls_dir / "out.m3u8"))
    best = {"ffmpeg_hls": float("inf"), "ffmpeg_null": float("inf"), "ours": float("inf"), "ours_files": float("inf")}
    for _ in range(3):
        best["ffmpeg_hls"] = min(best["ffmpeg_hls"], ffmpeg_seconds(clip, hls_dir, *hls_args))
        best["ffmpeg_null"] = min(best["ffmpeg_null"], ffmpeg_seconds(clip, null_dir, "-c", "copy", "-f", "null", "-"))
        best["ours"] = min(best["ours"], best_time(functools.partial(mux, native_segmenter, clip), 3))
        best["ours_files"] = min(best["ours_files"], best_time(functools.partial(mux_to_files, clip, our_dir), 3))
    ffmpeg_mux_only = max(best["ffmpeg_hls"] - best["ffmpeg_null"], 1e-6)
    ratio = best["ffmpeg_hls"] / best["ours_files"]
    print(
        f"\nMPEG-TS vs ffmpeg HLS remux of {CLIP_SECONDS} s: ffmpeg {best['ffmpeg_hls'] * 1e3:.0f} ms "
        f"(of which start-up + FLV demux {best['ffmpeg_null'] * 1e3:.0f} ms), "
        f"ours {best['ours'] * 1e3:.1f} ms muxing, {best['ours_files'] * 1e3:.1f} ms with the files written; "
        f"ffmpeg/ours {ratio:.1f}x whole, {ffmpeg_mux_only / best['ours']:.1f}x muxing only (bar {bar:g}x)"
    )
    assert ratio >= bar, f"ffmpeg's remux / ours is {ratio:.1f}x, below the bar of {bar:g}x"
