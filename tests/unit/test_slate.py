"""The offline slate: its picture, that its units decode, and that the segmenter muxes it into
fMP4 and MPEG-TS that ffprobe and PyAV read back as an 8 s H.264 + AAC clip."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import av
import pytest
from PIL import Image
from tests.integration.media import demux_flv, make_two_colour_flv, require_tool

from owncast_fast._native import flv
from owncast_fast.hls.live import LiveVariant
from owncast_fast.hls.storage import HlsStore
from owncast_fast.media.annexb import (
    annexb_to_avcc,
    avc_decoder_configuration,
    avcc_record_from_extradata,
    split_annexb,
    to_avcc,
)
from owncast_fast.media.hub import HubItem, StreamEnd, StreamStart, TrackConfig
from owncast_fast.media.segmenter import Container, InitReady, Segmenter, SegmentReady
from owncast_fast.media.slate import (
    BACKGROUND,
    DEFAULT_OFFLINE_MESSAGE,
    Slate,
    make_offline_slate,
    mux_slate,
    render_slate,
    slate_picture,
)
from owncast_fast.media.units import TIMESCALE, AccessUnit, Track

NOW = 1_800_000_000.0
LOGO_COLOUR = (0xE0, 0x20, 0x90)


def png(colour: tuple[int, int, int], size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def slate() -> Slate:
    return render_slate("Back at nine!", png(LOGO_COLOUR), width=640, height=360, fps=5, duration_s=8.0)


def near(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def decode_video(slate: Slate) -> list[av.VideoFrame]:
    decoder = av.CodecContext.create("h264", "r")
    decoder.extradata = slate.video.config
    frames = []
    for unit in slate.units:
        if unit.track is Track.VIDEO:
            frames += decoder.decode(av.Packet(unit.data))
    return frames + decoder.decode(None)


def test_picture_shows_the_logo_above_the_message() -> None:
    picture = slate_picture("Back at nine!", png(LOGO_COLOUR), 640, 360)
    assert picture.size == (640, 360)
    assert picture.getpixel((5, 5)) == BACKGROUND
    # The logo (scaled to a third of the height at most, so 64 px) sits centred above the text.
    column = [picture.getpixel((320, y)) for y in range(360)]
    logo_rows = [y for y, pixel in enumerate(column) if near(pixel, LOGO_COLOUR, 4)]
    assert len(logo_rows) == 64
    text_rows = [y for y in range(360) if any(sum(picture.getpixel((x, y))) > 600 for x in range(640))]
    assert text_rows and min(text_rows) > max(logo_rows)


def test_message_defaults_wraps_and_the_logo_is_optional() -> None:
    def text_rows(picture: Image.Image) -> int:
        return sum(any(sum(picture.getpixel((x, y))) > 600 for x in range(0, 640, 2)) for y in range(360))

    default = slate_picture("  ", None, 640, 360)
    assert default == slate_picture(DEFAULT_OFFLINE_MESSAGE, None, 640, 360)
    long = slate_picture("word " * 200, None, 640, 360)
    assert text_rows(long) > 2 * text_rows(slate_picture("word", None, 640, 360))  # several lines, capped
    assert text_rows(long) < 360 // 2
    # An SVG logo (Owncast's default) cannot be drawn here: the message alone, no error.
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    assert slate_picture("Off", svg, 640, 360) == slate_picture("Off", None, 640, 360)


def test_configs_are_what_the_rtmp_demuxer_produces(slate: Slate) -> None:
    video, audio = slate.video, slate.audio
    assert audio is not None
    avc = flv.parse_avc_config(video.config)
    assert (video.codec, video.codecs, avc.nal_length_size) == ("avc1", avc.codecs, 4)
    assert video.codecs.startswith("avc1.4d")  # Main profile
    assert (video.width, video.height) == (640, 360)
    aac = flv.parse_aac_config(audio.config)
    assert (audio.codec, audio.codecs, audio.sample_rate, audio.channels) == ("mp4a", "mp4a.40.2", 48000, 2)
    assert (aac.sample_rate, aac.channels) == (48000, 2)


def test_units_start_at_zero_with_a_keyframe_in_dts_order(slate: Slate) -> None:
    units = slate.units
    assert units[0].track is Track.VIDEO and units[0].keyframe and units[0].dts == 0
    assert [u.dts for u in units] == sorted(u.dts for u in units)
    video = [u for u in units if u.track is Track.VIDEO]
    assert len(video) == 40 and slate.duration == 8.0
    assert all(u.pts == u.dts == n * TIMESCALE // 5 for n, u in enumerate(video))
    assert [n for n, u in enumerate(video) if u.keyframe] == [0, 5, 10, 15, 20, 25, 30, 35]  # one a second
    audio = [u for u in units if u.track is Track.AUDIO]
    assert len(audio) == 375 and audio[-1].dts + 1920 >= 8 * TIMESCALE  # 8 s of 1024-sample frames


def test_units_decode_to_the_picture(slate: Slate) -> None:
    frames = decode_video(slate)
    assert len(frames) == 40
    assert all((f.width, f.height) == (640, 360) for f in frames)
    rgb = frames[-1].to_image()
    assert near(rgb.getpixel((5, 5)), BACKGROUND)
    assert near(rgb.getpixel((320, 130)), LOGO_COLOUR, 40)


def segment_slate(slate: Slate, container: Container) -> tuple[bytes, list[SegmentReady]]:
    segmenter = Segmenter(container, target_duration=2.0, part_target=0.5)
    events = []
    for item in [*slate.hub_items(), StreamEnd("offline")]:
        events += segmenter.push(item, NOW)
    init = b"".join(e.data for e in events if isinstance(e, InitReady))
    return init, [e for e in events if isinstance(e, SegmentReady)]


def ffprobe(path: Path) -> dict[str, dict[str, str]]:
    result = subprocess.run(
        [
            require_tool("ffprobe"), "-v", "error", "-count_frames",
            "-show_entries", "stream=codec_name,codec_type,nb_read_frames,width,height:format=duration",
            "-of", "json", str(path),
        ],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    probed = json.loads(result.stdout)
    streams = {s["codec_type"]: s for s in probed["streams"]}
    return {"format": probed["format"], **streams}


@pytest.mark.parametrize("container", [Container.FMP4, Container.MPEGTS])
def test_slate_muxes_into_segments_ffprobe_reads(slate: Slate, container: Container, tmp_path: Path) -> None:
    init, segments = segment_slate(slate, container)
    assert [round(s.duration, 3) for s in segments] == [2.0, 2.0, 2.0, 2.0]
    assert all(s.independent for s in segments)
    path = tmp_path / ("slate.mp4" if container is Container.FMP4 else "slate.ts")
    path.write_bytes(init + b"".join(s.data for s in segments))
    probed = ffprobe(path)
    assert probed["video"]["codec_name"] == "h264" and probed["audio"]["codec_name"] == "aac"
    assert (probed["video"]["width"], probed["video"]["height"]) == (640, 360)
    assert int(probed["video"]["nb_read_frames"]) == 40
    assert float(probed["format"]["duration"]) == pytest.approx(8.0, abs=0.1)
    with av.open(str(path)) as muxed:
        assert sum(1 for _ in muxed.decode(video=0)) == 40


def test_slate_after_a_stream_is_a_discontinuity(slate: Slate) -> None:
    segmenter = Segmenter(Container.FMP4, target_duration=2.0, part_target=0.5)
    events = []
    for item in [*slate.hub_items(), StreamEnd("publisher left"), *slate.hub_items(), StreamEnd("again")]:
        events += segmenter.push(item, NOW)
    flags = [e.discontinuity for e in events if isinstance(e, SegmentReady)]
    assert flags == [False, False, False, False, True, False, False, False]


def test_deterministic_and_cached(tmp_path: Path) -> None:
    first = render_slate("Off", None, width=320, height=180, fps=2, duration_s=2.0, audio=False)
    assert first == render_slate("Off", None, width=320, height=180, fps=2, duration_s=2.0, audio=False)
    assert first.audio is None and all(u.track is Track.VIDEO for u in first.units)
    logo = tmp_path / "logo.png"
    logo.write_bytes(png((0, 200, 0)))
    cached = make_offline_slate("Off", logo, width=320, height=180, fps=2, duration_s=2.0)
    assert make_offline_slate("Off", logo, width=320, height=180, fps=2, duration_s=2.0) is cached
    logo.write_bytes(png((200, 0, 0)))  # a new upload: a new slate
    assert make_offline_slate("Off", logo, width=320, height=180, fps=2, duration_s=2.0) is not cached
    missing = make_offline_slate("Off", tmp_path / "gone.png", width=320, height=180, fps=2, duration_s=2.0)
    assert missing == make_offline_slate("Off", None, width=320, height=180, fps=2, duration_s=2.0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"width": 641, "height": 360}, "slate size 641x360: need even sides from 16 to 4096"),
        ({"width": 8192, "height": 360}, "slate size 8192x360: need even sides from 16 to 4096"),
        ({"fps": 0}, "slate rate 0 fps / duration 8.0 s: need 1-60 fps and 0-60.0 s"),
        ({"duration_s": 600.0}, "slate rate 5 fps / duration 600.0 s: need 1-60 fps and 0-60.0 s"),
        ({"channels": 6}, "slate audio: 6 channels, need 1 or 2"),
    ],
)
def test_bad_arguments(arguments: dict[str, int | float], message: str) -> None:
    values: dict[str, int | float] = {"width": 640, "height": 360, "fps": 5, "duration_s": 8.0, **arguments}
    with pytest.raises(ValueError) as caught:
        render_slate("", None, **values)  # type: ignore[arg-type]
    assert str(caught.value) == message


# -- Annex B <-> AVCC -------------------------------------------------------------------------


def test_annexb_split_and_avcc_record_round_trip(slate: Slate) -> None:
    avc = flv.parse_avc_config(slate.video.config)
    sps, pps = avc.sps[0], avc.pps[0]
    stream = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + pps + b"\x00\x00\x01\x65\x88\x80\x00"
    assert split_annexb(stream) == [sps, pps, b"\x65\x88\x80"]
    assert split_annexb(b"no start code") == []
    assert avc_decoder_configuration(sps, pps) == slate.video.config
    assert to_avcc([b"\x65\x01", b"\x06"]) == b"\x00\x00\x00\x02\x65\x01\x00\x00\x00\x01\x06"
    with pytest.raises(ValueError, match=r"^avcC: expected an SPS \(type 7\) and a PPS \(type 8\)$"):
        avc_decoder_configuration(pps, sps)
    high = bytes([sps[0], 100]) + sps[2:]
    record = avc_decoder_configuration(high, pps)
    assert record[:6] == bytes([1, 100, sps[2], sps[3], 0xFF, 0xE1])
    assert record.endswith(bytes([0xFD, 0xF8, 0xF8, 0]))  # High: 4:2:0, 8-bit, no SPS extensions


def test_encoder_output_to_avcc() -> None:
    sps, pps, idr = b"\x67\x64\x00\x1f\xac", b"\x68\xee\x3c\x80", b"\x65\x88\x84"
    stream = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + pps + b"\x00\x00\x00\x01\x09\xf0" + b"\x00\x00\x01" + idr
    avcc = annexb_to_avcc(stream + b"\x00\x00")
    assert avcc == len(idr).to_bytes(4, "big") + idr  # parameter sets and the AUD dropped
    assert annexb_to_avcc(avcc) == avcc  # already length-prefixed
    record = avcc_record_from_extradata(b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps)
    assert record == avc_decoder_configuration(sps, pps)
    assert avcc_record_from_extradata(record) == record
    with pytest.raises(ValueError, match="SPS"):
        avcc_record_from_extradata(b"\x00\x00\x01" + pps)


# -- in a live playlist -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_items(tmp_path_factory: pytest.TempPathFactory) -> list[HubItem]:
    return demux_flv(make_two_colour_flv(tmp_path_factory.mktemp("live") / "live.flv", seconds=4, gop=30))


def video_frames(path: Path) -> int:
    result = subprocess.run(
        [
            require_tool("ffprobe"), "-v", "error", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=nb_read_frames", "-of", "json", str(path),
        ],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return int(json.loads(result.stdout)["streams"][0]["nb_read_frames"])


def stream_into(segmenter: Segmenter, live: LiveVariant, items: list[HubItem]) -> None:
    """What the variant pipeline does with a live stream, StreamStart to StreamEnd."""
    for item in [StreamStart(), *items, StreamEnd("publisher left")]:
        if isinstance(item, TrackConfig):
            live.set_track(item)
        live.apply(segmenter.push(item, NOW))


@pytest.mark.parametrize("container", [Container.FMP4, Container.MPEGTS])
def test_playlist_ends_with_the_slate_then_resumes_after_a_discontinuity(
    slate: Slate, live_items: list[HubItem], container: Container, tmp_path: Path
) -> None:
    store = HlsStore()
    live = LiveVariant(0, store, container=container, window=15, target_duration=2.0, session="s")
    segmenter = Segmenter(container, target_duration=2.0, part_target=0.5)
    stream_into(segmenter, live, live_items)
    live.apply(mux_slate(segmenter, slate, NOW))
    live.end_stream()
    assert live.playlist is not None
    ended = live.playlist.decode()
    assert ended.endswith("#EXT-X-ENDLIST\n")
    entries = [line for line in ended.splitlines() if line.startswith(("#EXTINF", "#EXT-X-DISCONTINUITY\n"))]
    assert len(entries) == 2 + 4  # 4 s of live in 2 s segments, then the 8 s slate
    lines = ended.splitlines()
    first_slate = lines.index("#EXT-X-DISCONTINUITY")
    assert sum(line.startswith("#EXTINF") for line in lines[:first_slate]) == 2
    assert lines.count("#EXT-X-DISCONTINUITY") == 1

    # The whole ended playlist plays: every live frame, then every slate frame. ffmpeg's HLS reader
    # keeps the first EXT-X-MAP's decoder across a new one (players switch), so in fMP4 each run of
    # segments is read with its own init segment; MPEG-TS segments carry their own configuration.
    live_frames = sum(1 for i in live_items if isinstance(i, AccessUnit) and i.track is Track.VIDEO)
    if container is Container.MPEGTS:
        for path in store.paths():
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_bytes(store.get(path) or b"")
        (tmp_path / "0" / "stream.m3u8").write_bytes(live.playlist)
        assert video_frames(tmp_path / "0" / "stream.m3u8") == live_frames + 40
    else:
        maps = [line for line in lines if line.startswith("#EXT-X-MAP")]
        assert maps == ['#EXT-X-MAP:URI="s-init1.mp4"', '#EXT-X-MAP:URI="s-init2.mp4"']
        assert lines[first_slate + 1] == maps[1]
        uris = [line for line in lines if line and not line.startswith("#")]
        for init, names, frames in (("s-init1.mp4", uris[:2], live_frames), ("s-init2.mp4", uris[2:], 40)):
            run = tmp_path / init
            run.write_bytes(b"".join(store.get(f"0/{name}") or b"" for name in [init, *names]))
            assert video_frames(run) == frames

    # The publisher returns: the playlist goes on after another discontinuity, no longer ended.
    stream_into(segmenter, live, live_items)
    resumed = live.playlist.decode()
    assert "#EXT-X-ENDLIST" not in resumed
    assert resumed.splitlines().count("#EXT-X-DISCONTINUITY") == 2
