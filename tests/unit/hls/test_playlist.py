"""Playlist models: exact text of small playlists, round trips through the m3u8 parser, and every
rule of draft-pantos-hls-rfc8216bis that the models enforce."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import m3u8
import pytest

from owncast_fast.hls import playlist as playlist_module
from owncast_fast.hls.playlist import (
    MediaPlaylist,
    MediaSegment,
    MultivariantPlaylist,
    PartialSegment,
    PreloadHint,
    RenditionReport,
    ServerControl,
    VariantStream,
    minimum_target_duration,
)

START = datetime(2026, 11, 30, 11, 43, 31, 123456, tzinfo=UTC)
LL_CONTROL = ServerControl(can_block_reload=True, part_hold_back=1.5, can_skip_until=18.0)


def parts(name: str, count: int, duration: float = 0.5) -> tuple[PartialSegment, ...]:
    return tuple(PartialSegment(f"{name}.{i}.m4s", duration, i == 0) for i in range(count))


def segment(number: int, duration: float = 3.0, **fields: Any) -> MediaSegment:
    fields.setdefault("program_date_time", START + timedelta(seconds=3 * number))
    return MediaSegment(f"seg{number}.m4s", duration, **fields)


def ll_segments(count: int, first: int = 0) -> tuple[MediaSegment, ...]:
    return tuple(segment(n, parts=parts(f"seg{n}", 6)) for n in range(first, first + count))


def text(playlist: MediaPlaylist | MultivariantPlaylist) -> str:
    return playlist.render().decode()


def lines(*items: str) -> str:
    return "".join(item + "\n" for item in items)


# -- exact text -----------------------------------------------------------------------------------


def test_live_mpegts_playlist() -> None:
    playlist = MediaPlaylist(
        target_duration=3,
        media_sequence=17,
        segments=(
            MediaSegment("stream-abc-17.ts", 3.0, program_date_time=START),
            MediaSegment("stream-abc-18.ts", 2.96666, program_date_time=START + timedelta(seconds=3)),
        ),
    )
    assert text(playlist) == lines(
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:3",
        "#EXT-X-MEDIA-SEQUENCE:17",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-30T11:43:31.123Z",
        "#EXTINF:3.000,",
        "stream-abc-17.ts",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-30T11:43:34.123Z",
        "#EXTINF:2.967,",
        "stream-abc-18.ts",
    )


def test_fmp4_playlist_with_a_discontinuity_a_gap_and_an_end() -> None:
    playlist = MediaPlaylist(
        target_duration=4,
        media_sequence=0,
        discontinuity_sequence=2,
        map_uri="init-2.mp4",
        independent_segments=False,
        playlist_type="EVENT",
        endlist=True,
        segments=(
            MediaSegment("a.m4s", 4.0, title="first"),
            MediaSegment("b.m4s", 3.5, discontinuity=True, program_date_time=START, gap=True),
        ),
    )
    assert text(playlist) == lines(
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-TARGETDURATION:4",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-DISCONTINUITY-SEQUENCE:2",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        '#EXT-X-MAP:URI="init-2.mp4"',
        "#EXTINF:4.000,first",
        "a.m4s",
        "#EXT-X-DISCONTINUITY",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-30T11:43:31.123Z",
        "#EXT-X-GAP",
        "#EXTINF:3.500,",
        "b.m4s",
        "#EXT-X-ENDLIST",
    )


def test_low_latency_playlist() -> None:
    playlist = MediaPlaylist(
        target_duration=3,
        media_sequence=40,
        map_uri="init.mp4",
        part_target=1.0,
        server_control=ServerControl(can_block_reload=True, part_hold_back=3.0, hold_back=9.0),
        segments=(
            MediaSegment("s40.m4s", 3.0, parts=(PartialSegment("s40.0.m4s", 1.0, True),)),
            MediaSegment(
                "s41.m4s",
                2.9,
                parts=(PartialSegment("s41.0.m4s", 1.0, True), PartialSegment("s41.1.m4s", 1.0, False)),
            ),
        ),
        pending_parts=(PartialSegment("s42.0.m4s", 0.96667, True), PartialSegment("s42.1.m4s", 0.9, False, gap=True)),
        preload_hint=PreloadHint("s42.2.m4s"),
        rendition_reports=(RenditionReport("../1/stream.m3u8", 42, 1), RenditionReport("../2/stream.m3u8", 41)),
        parts_window=1,
    )
    assert text(playlist) == lines(
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-TARGETDURATION:3",
        "#EXT-X-MEDIA-SEQUENCE:40",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=9.0,PART-HOLD-BACK=3.0",
        "#EXT-X-PART-INF:PART-TARGET=1.0",
        '#EXT-X-MAP:URI="init.mp4"',
        "#EXTINF:3.000,",
        "s40.m4s",
        '#EXT-X-PART:DURATION=1.00000,URI="s41.0.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=1.00000,URI="s41.1.m4s"',
        "#EXTINF:2.900,",
        "s41.m4s",
        '#EXT-X-PART:DURATION=0.96667,URI="s42.0.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.90000,URI="s42.1.m4s",GAP=YES',
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s42.2.m4s"',
        '#EXT-X-RENDITION-REPORT:URI="../1/stream.m3u8",LAST-MSN=42,LAST-PART=1',
        '#EXT-X-RENDITION-REPORT:URI="../2/stream.m3u8",LAST-MSN=41',
    )


def test_delta_update_skips_the_oldest_segments() -> None:
    segments = tuple(MediaSegment(f"s{n}.m4s", 3.0, discontinuity=n == 1) for n in range(8))
    control = ServerControl(can_block_reload=True, can_skip_until=18.0)
    full = MediaPlaylist(
        target_duration=3, media_sequence=100, discontinuity_sequence=5, segments=segments, server_control=control
    )
    delta = MediaPlaylist(
        target_duration=3,
        media_sequence=100,
        discontinuity_sequence=5,
        segments=segments,
        server_control=control,
        skip=2,
    )
    assert text(delta) == lines(
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        "#EXT-X-TARGETDURATION:3",
        "#EXT-X-MEDIA-SEQUENCE:100",
        "#EXT-X-DISCONTINUITY-SEQUENCE:5",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=18.0",
        "#EXT-X-SKIP:SKIPPED-SEGMENTS=2",
        *[line for n in range(2, 8) for line in ("#EXTINF:3.000,", f"s{n}.m4s")],
    )
    # Everything after the EXT-X-SKIP line is the full playlist's tail, byte for byte.
    assert text(full).endswith(text(delta).split("#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n")[1])
    assert full.version == 3


def test_vod_playlist_and_preload_hint_attributes() -> None:
    playlist = MediaPlaylist(
        target_duration=5,
        segments=(MediaSegment("a.ts", 5.0),),
        playlist_type="VOD",
        endlist=True,
        independent_segments=False,
    )
    assert text(playlist).endswith("#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:5.000,\na.ts\n#EXT-X-ENDLIST\n")
    assert PreloadHint("init.mp4", "MAP").line() == '#EXT-X-PRELOAD-HINT:TYPE=MAP,URI="init.mp4"\n'
    assert PreloadHint("big.m4s", byterange_start=2048).line() == (
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="big.m4s",BYTERANGE-START=2048\n'
    )
    assert PreloadHint("big.m4s", byterange_start=0).line() == '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="big.m4s"\n'


def test_server_control_attributes() -> None:
    control = ServerControl(
        can_block_reload=True, part_hold_back=1.0, can_skip_until=36.0, can_skip_dateranges=True, hold_back=18.0
    )
    assert control.line() == (
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=36.0,CAN-SKIP-DATERANGES=YES,"
        "HOLD-BACK=18.0,PART-HOLD-BACK=1.0\n"
    )
    assert ServerControl(part_hold_back=1.000004).line() == "#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=1.0\n"
    assert ServerControl(part_hold_back=0.33334).line() == "#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=0.33334\n"


def test_multivariant_playlist() -> None:
    playlist = MultivariantPlaylist(
        (
            VariantStream(
                "0/stream.m3u8",
                6_000_000,
                average_bandwidth=5_000_000,
                codecs="avc1.64002a,mp4a.40.2",
                resolution=(1920, 1080),
                frame_rate=30,
                name="1080p",
            ),
            VariantStream("1/stream.m3u8", 1_200_000, codecs="avc1.4d401f,mp4a.40.2", frame_rate=29.97002997),
            VariantStream("2/stream.m3u8", 64_000),
        )
    )
    assert text(playlist) == lines(
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-STREAM-INF:BANDWIDTH=6000000,AVERAGE-BANDWIDTH=5000000,RESOLUTION=1920x1080,FRAME-RATE=30.000,"
        'CODECS="avc1.64002a,mp4a.40.2",NAME="1080p"',
        "0/stream.m3u8",
        '#EXT-X-STREAM-INF:BANDWIDTH=1200000,FRAME-RATE=29.970,CODECS="avc1.4d401f,mp4a.40.2"',
        "1/stream.m3u8",
        "#EXT-X-STREAM-INF:BANDWIDTH=64000",
        "2/stream.m3u8",
    )
    assert MultivariantPlaylist(playlist.variants[2:], independent_segments=False, version=7).render() == (
        b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=64000\n2/stream.m3u8\n"
    )


# -- program date-time and durations --------------------------------------------------------------


def test_program_date_time_is_utc_with_milliseconds() -> None:
    paris = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 30, 12, 43, 31, 999999, tzinfo=paris)
    assert (
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-30T11:43:31.999Z\n"
        in MediaSegment("a.ts", 1, program_date_time=local)._with_parts
    )
    at_second = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (
        "#EXT-X-PROGRAM-DATE-TIME:2026-01-02T03:04:05.000Z\n"
        in MediaSegment("a.ts", 1, program_date_time=at_second)._with_parts
    )
    with pytest.raises(ValueError, match="has no time zone"):
        MediaSegment("a.ts", 1, program_date_time=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("durations", "target"),
    [
        ([], 1),
        ([0.2], 1),
        ([3.0, 3.0004, 2.5], 3),
        ([3.4994], 3),
        ([3.4996], 4),  # rendered as 3.500, which rounds to 4
        ([2.5], 3),
        ([6.0, 1.0], 6),
    ],
)
def test_minimum_target_duration_rounds_to_nearest(durations: list[float], target: int) -> None:
    assert minimum_target_duration(durations) == target
    segments = tuple(MediaSegment(f"{i}.ts", d) for i, d in enumerate(durations))
    MediaPlaylist(target_duration=target, segments=segments)
    if target > 1:
        with pytest.raises(ValueError, match="rounds above the target duration"):
            MediaPlaylist(target_duration=target - 1, segments=segments)


def test_extinf_has_three_decimals_and_parts_five() -> None:
    assert "#EXTINF:0.333,\n" in MediaSegment("a.ts", 1 / 3)._with_parts
    assert PartialSegment("p", 1 / 3, False)._line == '#EXT-X-PART:DURATION=0.33333,URI="p"\n'


# -- parts window ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("window", "with_parts"), [(0, []), (1, [9]), (3, [7, 8, 9]), (20, list(range(10)))])
def test_parts_are_rendered_for_the_last_segments_only(window: int, with_parts: list[int]) -> None:
    playlist = MediaPlaylist(
        target_duration=3,
        segments=ll_segments(10),
        part_target=0.5,
        server_control=LL_CONTROL,
        pending_parts=parts("seg10", 2),
        parts_window=window,
    )
    rendered = text(playlist)
    for n in range(10):
        assert (f'URI="seg{n}.0.m4s"' in rendered) == (n in with_parts)
    assert rendered.count("#EXT-X-PART:") == 6 * len(with_parts) + 2


def test_parts_window_counts_from_the_end_after_a_skip() -> None:
    playlist = MediaPlaylist(
        target_duration=3, segments=ll_segments(10), part_target=0.5, server_control=LL_CONTROL, skip=3, parts_window=20
    )
    rendered = text(playlist)
    assert 'URI="seg2.0.m4s"' not in rendered
    assert rendered.count("#EXT-X-PART:") == 6 * 7


# -- round trips through the m3u8 parser ----------------------------------------------------------


def test_low_latency_round_trip() -> None:
    segments = ll_segments(10, first=100)
    segments = (
        *segments[:4],
        segment(104, discontinuity=True, parts=parts("seg104", 6)),
        *segments[5:],
    )
    playlist = MediaPlaylist(
        target_duration=3,
        media_sequence=100,
        discontinuity_sequence=3,
        map_uri="init.mp4",
        part_target=0.5,
        server_control=ServerControl(can_block_reload=True, part_hold_back=1.5, can_skip_until=18.0, hold_back=9.0),
        segments=segments,
        pending_parts=parts("seg110", 3),
        preload_hint=PreloadHint("seg110.3.m4s"),
        rendition_reports=(RenditionReport("../1/stream.m3u8", 110, 2), RenditionReport("../2/stream.m3u8", 109)),
        skip=2,
    )
    parsed = m3u8.loads(text(playlist))
    assert (parsed.version, parsed.target_duration, parsed.media_sequence) == (9, 3, 100)
    assert parsed.discontinuity_sequence == 3
    assert parsed.is_independent_segments
    assert parsed.skip.skipped_segments == 2
    assert parsed.part_inf.part_target == 0.5
    control = parsed.server_control
    assert (control.can_block_reload, control.part_hold_back, control.can_skip_until, control.hold_back) == (
        "YES",
        1.5,
        18.0,
        9.0,
    )
    assert parsed.segment_map[0].uri == "init.mp4"
    complete = [s for s in parsed.segments if s.uri is not None]
    assert [s.uri for s in complete] == [s.uri for s in segments[2:]]
    # m3u8 numbers segments from EXT-X-MEDIA-SEQUENCE and does not add SKIPPED-SEGMENTS (6.2.5.1:
    # the first segment after EXT-X-SKIP is number MEDIA-SEQUENCE + SKIPPED-SEGMENTS).
    assert [s.media_sequence + parsed.skip.skipped_segments for s in complete] == list(range(102, 110))
    assert [s.duration for s in complete] == [3.0] * 8
    assert [s.discontinuity for s in complete] == [s.discontinuity for s in segments[2:]]
    assert [s.program_date_time for s in complete] == [
        s.program_date_time.replace(microsecond=123000) for s in segments[2:] if s.program_date_time
    ]
    assert [len(s.parts) for s in complete] == [0, 0, 0, 0, 0, 6, 6, 6]
    last = complete[-1].parts
    assert [(p.uri, p.duration, p.independent) for p in last] == [
        (p.uri, 0.5, "YES" if p.independent else None) for p in segments[-1].parts
    ]
    pending = parsed.segments[-1]
    assert pending.uri is None
    assert [p.uri for p in pending.parts] == ["seg110.0.m4s", "seg110.1.m4s", "seg110.2.m4s"]
    assert (parsed.preload_hint.hint_type, parsed.preload_hint.uri) == ("PART", "seg110.3.m4s")
    assert [(r.uri, r.last_msn, r.last_part) for r in parsed.rendition_reports] == [
        ("../1/stream.m3u8", 110, 2),
        ("../2/stream.m3u8", 109, None),
    ]
    assert not parsed.is_endlist


def test_finished_playlist_round_trip() -> None:
    playlist = MediaPlaylist(
        target_duration=2,
        media_sequence=7,
        segments=(MediaSegment("a.ts", 2.0, title="opening"), MediaSegment("b.ts", 1.25, gap=True)),
        playlist_type="VOD",
        endlist=True,
    )
    parsed = m3u8.loads(text(playlist))
    assert parsed.is_endlist
    assert parsed.playlist_type == "vod"
    assert [(s.uri, s.duration, s.title, s.gap_tag) for s in parsed.segments] == [
        ("a.ts", 2.0, "opening", None),
        ("b.ts", 1.25, "", True),
    ]


def test_multivariant_round_trip() -> None:
    playlist = MultivariantPlaylist(
        (
            VariantStream(
                "0/stream.m3u8",
                3_500_000,
                average_bandwidth=3_000_000,
                codecs="avc1.640028,mp4a.40.2",
                resolution=(1280, 720),
                frame_rate=60,
            ),
            VariantStream(
                "1/stream.m3u8", 900_000, codecs="avc1.4d401e,mp4a.40.2", resolution=(640, 360), frame_rate=30
            ),
        )
    )
    parsed = m3u8.loads(text(playlist))
    assert parsed.is_variant
    assert [
        (
            v.uri,
            v.stream_info.bandwidth,
            v.stream_info.average_bandwidth,
            v.stream_info.codecs,
            v.stream_info.resolution,
            v.stream_info.frame_rate,
        )
        for v in parsed.playlists
    ] == [
        ("0/stream.m3u8", 3_500_000, 3_000_000, "avc1.640028,mp4a.40.2", (1280, 720), 60.0),
        ("1/stream.m3u8", 900_000, None, "avc1.4d401e,mp4a.40.2", (640, 360), 30.0),
    ]


# -- rendering is a join of cached text -----------------------------------------------------------


def test_render_formats_nothing_that_a_segment_already_formatted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live state rebuilds the playlist for every part; segment lines are formatted once, when
    the segment is made, so neither building the playlist nor rendering it formats dates again."""
    segments = ll_segments(30)
    monkeypatch.setattr(playlist_module, "_program_date_time", lambda moment: pytest.fail("date formatted again"))
    first = MediaPlaylist(target_duration=3, segments=segments, part_target=0.5, server_control=LL_CONTROL)
    second = MediaPlaylist(
        target_duration=3,
        segments=segments,
        part_target=0.5,
        server_control=LL_CONTROL,
        pending_parts=parts("seg30", 1),
    )
    assert first.render() == first.render()
    assert second.render().startswith(first.render())
    assert second.render().endswith(b'#EXT-X-PART:DURATION=0.50000,URI="seg30.0.m4s",INDEPENDENT=YES\n')


def test_models_are_values() -> None:
    a = MediaSegment("a.ts", 2.0, program_date_time=START)
    assert a == MediaSegment("a.ts", 2.0, program_date_time=START)
    assert hash(a) == hash(MediaSegment("a.ts", 2.0, program_date_time=START))
    assert "_with_parts" not in repr(a)
    with pytest.raises(AttributeError):
        a.duration = 3.0  # type: ignore[misc]


# -- rules enforced at construction ---------------------------------------------------------------


def invalid(message: str, build: Any, **fields: Any) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build(**fields)


def ll(**fields: Any) -> MediaPlaylist:
    base: dict[str, Any] = {
        "target_duration": 3,
        "segments": ll_segments(8),
        "part_target": 0.5,
        "server_control": LL_CONTROL,
    }
    return MediaPlaylist(**(base | fields))


def test_playlist_structure_rules() -> None:
    invalid("target duration 0 is below 1", MediaPlaylist, target_duration=0)
    invalid(
        "media sequence -1 / discontinuity sequence 0 is negative", MediaPlaylist, target_duration=1, media_sequence=-1
    )
    invalid(
        "segment seg0.m4s lasts 3.600 s, which rounds above the target duration of 3 s",
        MediaPlaylist,
        target_duration=3,
        segments=(segment(0, 3.6),),
    )
    invalid("playlist type 'LIVE' is not EVENT or VOD", MediaPlaylist, target_duration=3, playlist_type="LIVE")
    invalid("a VOD playlist must end with EXT-X-ENDLIST", MediaPlaylist, target_duration=3, playlist_type="VOD")
    invalid(
        "EXT-X-MAP URI 'in\"it.mp4' is not a valid quoted-string", MediaPlaylist, target_duration=3, map_uri='in"it.mp4'
    )
    invalid("parts window -1 is negative", MediaPlaylist, target_duration=3, parts_window=-1)


def test_end_list_excludes_hints_and_pending_parts() -> None:
    message = "a playlist with EXT-X-ENDLIST cannot hint or hold parts of an unfinished segment"
    invalid(message, ll, endlist=True, preload_hint=PreloadHint("x.m4s"))
    invalid(message, ll, endlist=True, pending_parts=parts("seg8", 1))
    assert ll(endlist=True).render().endswith(b"#EXT-X-ENDLIST\n")


def test_hold_back_bounds() -> None:
    invalid(
        "HOLD-BACK 8.9 is below three target durations (9)",
        ll,
        server_control=ServerControl(part_hold_back=1.5, hold_back=8.9),
    )
    invalid(
        "CAN-SKIP-UNTIL 17.0 is below six target durations (18)",
        ll,
        server_control=ServerControl(part_hold_back=1.5, can_skip_until=17.0),
    )
    invalid(
        "PART-HOLD-BACK 0.9 is below twice the part target (1.0)",
        ll,
        server_control=ServerControl(part_hold_back=0.9),
    )
    invalid("a playlist with EXT-X-PART-INF needs PART-HOLD-BACK in EXT-X-SERVER-CONTROL", ll, server_control=None)
    invalid(
        "a playlist with EXT-X-PART-INF needs PART-HOLD-BACK in EXT-X-SERVER-CONTROL",
        ll,
        server_control=ServerControl(),
    )
    invalid("CAN-SKIP-DATERANGES requires CAN-SKIP-UNTIL", ServerControl, can_skip_dateranges=True)
    invalid("hold_back -1.0 is not a non-negative number of seconds", ServerControl, hold_back=-1.0)


def test_part_rules() -> None:
    invalid("a playlist with EXT-X-PART lines needs a part target (EXT-X-PART-INF)", ll, part_target=None)
    invalid(
        "a playlist with EXT-X-PART lines needs a part target (EXT-X-PART-INF)",
        ll,
        part_target=None,
        segments=(),
        pending_parts=parts("x", 1),
    )
    # Parts outside the window are not in the playlist, so no PART-INF is needed for them.
    ll(part_target=None, parts_window=0)
    invalid("the part target must be positive", ll, part_target=0.0)
    invalid(
        "part seg5.0.m4s lasts 0.50000 s, above the part target 0.40000 s",
        ll,
        part_target=0.4,
        server_control=LL_CONTROL,
    )
    too_short = (
        PartialSegment("a.0", 0.5, True),
        PartialSegment("a.1", 0.42, False),
        PartialSegment("a.2", 0.5, False),
    )
    invalid(
        "part a.1 lasts 0.42000 s, below 85% of the part target (0.42500 s)",
        ll,
        segments=(MediaSegment("a", 1.42, parts=too_short),),
    )
    invalid(
        "part a.1 lasts 0.42000 s, below 85% of the part target (0.42500 s)", ll, segments=(), pending_parts=too_short
    )


@pytest.mark.parametrize(
    "allowed",
    [
        # 4.4.4.9's exceptions to the 85% floor: INDEPENDENT=YES, GAP=YES, followed by a gap, last of its parent.
        (PartialSegment("a.0", 0.1, True), PartialSegment("a.1", 0.5, False)),
        (
            PartialSegment("a.0", 0.5, True),
            PartialSegment("a.1", 0.1, False, gap=True),
            PartialSegment("a.2", 0.5, False),
        ),
        (
            PartialSegment("a.0", 0.5, True),
            PartialSegment("a.1", 0.1, False),
            PartialSegment("a.2", 0.5, False, gap=True),
        ),
        (PartialSegment("a.0", 0.5, True), PartialSegment("a.1", 0.1, False)),
        (PartialSegment("a.0", 0.5, True), PartialSegment("a.1", 0.425, False), PartialSegment("a.2", 0.5, False)),
    ],
)
def test_short_parts_that_are_allowed(allowed: tuple[PartialSegment, ...]) -> None:
    duration = sum(part.duration for part in allowed)
    ll(segments=(MediaSegment("a", duration, parts=allowed),))
    ll(segments=(), pending_parts=allowed)


def test_skip_rules() -> None:
    segments = tuple(MediaSegment(f"s{n}.ts", 3.0) for n in range(8))
    control = ServerControl(can_skip_until=18.0)
    invalid(
        "cannot skip 9 of 8 segments",
        MediaPlaylist,
        target_duration=3,
        segments=segments,
        server_control=control,
        skip=9,
    )
    invalid(
        "cannot skip -1 of 8 segments",
        MediaPlaylist,
        target_duration=3,
        segments=segments,
        server_control=control,
        skip=-1,
    )
    invalid(
        "a delta update needs EXT-X-SERVER-CONTROL with CAN-SKIP-UNTIL",
        MediaPlaylist,
        target_duration=3,
        segments=segments,
        skip=1,
    )
    invalid(
        "a delta update needs EXT-X-SERVER-CONTROL with CAN-SKIP-UNTIL",
        MediaPlaylist,
        target_duration=3,
        segments=segments,
        server_control=ServerControl(can_block_reload=True),
        skip=1,
    )
    invalid(
        "a playlist with EXT-X-ENDLIST is never sent as a delta update",
        MediaPlaylist,
        target_duration=3,
        segments=segments,
        server_control=control,
        skip=1,
        endlist=True,
    )
    # 6 segments of 3 s still reach back 18 s; a seventh skipped one would not.
    MediaPlaylist(target_duration=3, segments=segments, server_control=control, skip=2)
    invalid(
        "skipping 3 segments keeps 15.000 s, less than the skip boundary of 18.0 s",
        MediaPlaylist,
        target_duration=3,
        segments=segments,
        server_control=control,
        skip=3,
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: PartialSegment("", 0.5, True), "part URI '' is not a valid quoted-string"),
        (lambda: PartialSegment('a"b', 0.5, True), "part URI 'a\"b' is not a valid quoted-string"),
        (lambda: PartialSegment("a\nb", 0.5, True), "part URI 'a\\nb' is not a valid quoted-string"),
        (lambda: PartialSegment("a", float("nan"), True), "part duration nan is not a non-negative number of seconds"),
        (lambda: MediaSegment("#a.ts", 1.0), "segment URI '#a.ts' is not a valid URI line"),
        (lambda: MediaSegment("a\r.ts", 1.0), "segment URI 'a\\r.ts' is not a valid URI line"),
        (lambda: MediaSegment("a.ts", -1.0), "segment duration -1.0 is not a non-negative number of seconds"),
        (lambda: MediaSegment("a.ts", float("inf")), "segment duration inf is not a non-negative number of seconds"),
        (lambda: MediaSegment("a.ts", 1.0, title="x\ny"), "segment title 'x\\ny' contains a control character"),
        (lambda: PreloadHint("a", "SEGMENT"), "preload hint TYPE 'SEGMENT' is not PART or MAP"),
        (lambda: PreloadHint("a", byterange_start=-1), "preload hint BYTERANGE-START -1 is negative"),
        (lambda: PreloadHint("a\x00"), "preload hint URI 'a\\x00' is not a valid quoted-string"),
        (lambda: RenditionReport("../1/stream.m3u8", -1), "rendition report LAST-MSN -1 / LAST-PART None is negative"),
        (lambda: RenditionReport("../1/stream.m3u8", 1, -1), "rendition report LAST-MSN 1 / LAST-PART -1 is negative"),
        (lambda: RenditionReport("", 1), "rendition report URI '' is not a valid quoted-string"),
        (lambda: VariantStream("", 1), "variant URI '' is not a valid URI line"),
        (lambda: VariantStream("a", -1), "BANDWIDTH -1 / AVERAGE-BANDWIDTH None is negative"),
        (lambda: VariantStream("a", 1, average_bandwidth=-1), "BANDWIDTH 1 / AVERAGE-BANDWIDTH -1 is negative"),
        (lambda: VariantStream("a", 1, codecs='avc1"'), "CODECS 'avc1\"' is not a valid quoted-string"),
        (lambda: VariantStream("a", 1, name="a\tb"), "NAME 'a\\tb' is not a valid quoted-string"),
        (lambda: VariantStream("a", 1, resolution=(-1, 2)), "RESOLUTION (-1, 2) is negative"),
        (lambda: VariantStream("a", 1, frame_rate=-30.0), "FRAME-RATE -30.0 is not a non-negative number of seconds"),
        (lambda: MultivariantPlaylist(()), "a multivariant playlist needs at least one variant"),
        (lambda: MultivariantPlaylist((VariantStream("a", 1),), version=0), "EXT-X-VERSION 0 is below 1"),
    ],
)
def test_invalid_values(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_utf8_titles_and_names() -> None:
    playlist = MediaPlaylist(target_duration=1, segments=(MediaSegment("a.ts", 1.0, title="café ☕"),))
    assert "#EXTINF:1.000,café ☕\n".encode() in playlist.render()
    assert 'NAME="Qualité"'.encode() in MultivariantPlaylist((VariantStream("a", 1, name="Qualité"),)).render()
