"""Test media made at test-session scope with ffmpeg (nothing committed), and what ffprobe reads in it.

ffprobe is the independent reference: the ingest must hand the hub exactly the packets ffprobe lists
for the same file, timestamps in 90 kHz ticks (FLV milliseconds x 90, so no rounding on either side).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from owncast_fast.media.hub import HubItem, TrackConfig
from owncast_fast.media.units import MS_TO_TICKS, AccessUnit, Track


def require_tool(name: str) -> str:
    """The tool's path; a missing one fails the test (`make system-deps` installs them all)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make system-deps`")
    return path


def make_flv(
    path: Path,
    *,
    seconds: float,
    size: str = "320x240",
    rate: int = 30,
    gop: int = 30,
    bframes: int = 2,
    video_options: tuple[str, ...] = (),
    audio_options: tuple[str, ...] = (),
    picture_filter: str = "",
) -> Path:
    """An H.264 + AAC FLV of `seconds` from ffmpeg's test sources (testsrc2 picture, sine tone).

    `picture_filter` is appended to the picture source (e.g. `noise=alls=30:allf=t` for a picture
    that does not compress away, so encoders reach their target bitrates)."""
    subprocess.run(
        [
            require_tool("ffmpeg"),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}:rate={rate}" + (f",{picture_filter}" if picture_filter else ""),
            "-f",
            "lavfi",
            "-i",
            "sine",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-bf",
            str(bframes),
            "-g",
            str(gop),
            *video_options,
            "-c:a",
            "aac",
            *audio_options,
            "-f",
            "flv",
            str(path),
        ],
        check=True,
        timeout=120,
    )
    return path


def make_two_colour_flv(path: Path, *, seconds: float, gop: int, size: str = "320x240", rate: int = 30) -> Path:
    """An H.264 + AAC FLV whose picture is known: red left half, blue right half, and a 16-pixel white
    square moving along the bottom (so consecutive frames differ). One keyframe every `gop` frames."""
    width, height = (int(v) for v in size.split("x"))
    picture = (
        f"color=c=red:s={size}:r={rate},drawbox=x={width // 2}:y=0:w={width // 2}:h={height}:color=blue:t=fill[bg];"
        f"color=c=white:s=16x16:r={rate}[bar];"
        f"[bg][bar]overlay=x='mod(t*240,{width})':y={height - 16}:shortest=1,format=yuv420p[v]"
    )
    subprocess.run(
        [
            require_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y",
            "-filter_complex", picture, "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo",
            "-map", "[v]", "-map", "0:a", "-t", str(seconds),
            "-c:v", "libx264", "-g", str(gop), "-sc_threshold", "0", "-bf", "2",
            "-c:a", "aac", "-f", "flv", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


@dataclass(frozen=True, slots=True)
class ProbedPacket:
    """One packet as ffprobe lists it, times converted to 90 kHz ticks."""

    track: Track
    dts: int
    pts: int
    keyframe: bool
    size: int


def probe_packets(path: Path) -> list[ProbedPacket]:
    """Every audio and video packet of an FLV file, in file order."""
    result = subprocess.run(
        [
            require_tool("ffprobe"),
            "-v",
            "error",
            "-show_packets",
            "-show_entries",
            "packet=codec_type,pts,dts,size,flags",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    packets = []
    for packet in json.loads(result.stdout)["packets"]:
        track = {"video": Track.VIDEO, "audio": Track.AUDIO}[packet["codec_type"]]
        packets.append(
            ProbedPacket(
                track,
                # FLV's time base is 1/1000: ffprobe's pts/dts are milliseconds.
                int(packet["dts"]) * MS_TO_TICKS,
                int(packet["pts"]) * MS_TO_TICKS,
                packet["flags"].startswith("K"),
                int(packet["size"]),
            )
        )
    return packets


@dataclass(frozen=True, slots=True)
class FlvTag:
    """One tag of an FLV file: exactly the body of the RTMP message that carries it."""

    type_id: int  # 8 audio, 9 video, 18 script data: the RTMP message types
    timestamp: int  # ms
    payload: bytes


def read_flv_tags(path: Path) -> list[FlvTag]:
    """The tags of an FLV file (FLV specification v10.1, Annex E), in file order."""
    data = path.read_bytes()
    if data[:3] != b"FLV":
        raise ValueError(f"{path} is not an FLV file")
    position = int.from_bytes(data[5:9], "big") + 4  # header, then PreviousTagSize0
    tags = []
    while position + 11 <= len(data):
        size = int.from_bytes(data[position + 1 : position + 4], "big")
        # TimestampExtended (byte 7) holds the upper 8 bits of the 32-bit millisecond timestamp.
        timestamp = int.from_bytes(data[position + 4 : position + 7], "big") | data[position + 7] << 24
        body = position + 11
        tags.append(FlvTag(data[position] & 0x1F, timestamp, data[body : body + size]))
        position = body + size + 4
    return tags


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A P-256 certificate for 127.0.0.1 and its key, made with the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            require_tool("openssl"),
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


class _ListSink:
    def __init__(self) -> None:
        self.items: list[HubItem] = []

    def set_config(self, config: TrackConfig) -> None:
        self.items.append(config)

    def push(self, unit: AccessUnit) -> None:
        self.items.append(unit)


def demux_flv(path: Path, metadata: dict[str, object] | None = None) -> list[HubItem]:
    """A file's FLV tags through our demuxer: the hub items a publisher of it would produce
    (`metadata`: what the publisher announced in onMetaData first)."""
    from owncast_fast.ingest.rtmp.demux import FlvDemuxer

    sink = _ListSink()
    demuxer = FlvDemuxer(sink)
    if metadata is not None:
        demuxer.metadata(metadata)
    for tag in read_flv_tags(path):
        if tag.type_id == 9:
            demuxer.video(tag.timestamp, tag.payload)
        elif tag.type_id == 8:
            demuxer.audio(tag.timestamp, tag.payload)
    return sink.items
