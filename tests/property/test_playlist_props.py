"""Playlist properties over random live playlists: every rendering parses with the m3u8 library, keeps
the target duration rule, numbers segments and discontinuities consistently, and a delta update is
exactly the full playlist with its oldest segments replaced by EXT-X-SKIP."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import m3u8
from hypothesis import given, settings
from hypothesis import strategies as st

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


@dataclass(frozen=True)
class Case:
    playlist: MediaPlaylist
    low_latency: bool


def to_millisecond(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@st.composite
def live_playlists(draw: st.DrawFn) -> Case:
    low_latency = draw(st.booleans())
    part_target = draw(st.sampled_from([0.2, 0.33334, 0.5, 1.0])) if low_latency else None
    # Part durations of at least 86% of the target stay above the 85% floor after rounding.
    part_durations = st.floats(0.86 * part_target, part_target) if part_target else st.nothing()
    moment = draw(st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)))
    segments = []
    for number in range(draw(st.integers(0, 30))):
        if part_target:
            durations = draw(st.lists(part_durations, min_size=1, max_size=8))
            parts = tuple(PartialSegment(f"s{number}.{i}.m4s", d, i == 0) for i, d in enumerate(durations))
            duration = sum(durations)
        else:
            parts = ()
            duration = draw(st.floats(0.1, 12.0))
        segments.append(
            MediaSegment(
                f"s{number}.m4s",
                duration,
                discontinuity=draw(st.booleans()),
                program_date_time=moment if draw(st.booleans()) else None,
                parts=parts,
            )
        )
        moment += timedelta(seconds=duration)
    target = minimum_target_duration(s.duration for s in segments) + draw(st.integers(0, 2))
    skip_boundary = 6.0 * target
    # 6.2.5.1: only segments that end at least the Skip Boundary before the end may be skipped.
    skippable = max(
        (k for k in range(len(segments) + 1) if sum(s.duration for s in segments[k:]) >= skip_boundary), default=0
    )
    pending = ()
    preload = None
    if part_target:
        pending = tuple(
            PartialSegment(f"next.{i}.m4s", draw(part_durations), i == 0) for i in range(draw(st.integers(0, 3)))
        )
        if draw(st.booleans()):
            preload = PreloadHint(f"next.{len(pending)}.m4s")
    playlist = MediaPlaylist(
        target_duration=target,
        media_sequence=draw(st.integers(0, 2**40)),
        discontinuity_sequence=draw(st.integers(0, 2**20)),
        segments=tuple(segments),
        map_uri=draw(st.sampled_from([None, "init.mp4"])),
        part_target=part_target,
        server_control=ServerControl(
            can_block_reload=True,
            can_skip_until=skip_boundary,
            part_hold_back=3 * part_target if part_target else None,
            hold_back=draw(st.sampled_from([None, 3.0 * target, 4.5 * target])),
        ),
        pending_parts=pending,
        preload_hint=preload,
        rendition_reports=tuple(
            RenditionReport(f"../{i}/stream.m3u8", draw(st.integers(0, 2**40)), draw(st.none() | st.integers(0, 20)))
            for i in range(draw(st.integers(0, 3)))
        ),
        skip=draw(st.just(skippable) | st.integers(0, skippable)),
        parts_window=draw(st.integers(0, 5)),
    )
    return Case(playlist, low_latency)


def discontinuity_numbers(first: int, flags: list[bool]) -> list[int]:
    """6.2.1: a segment's number is EXT-X-DISCONTINUITY-SEQUENCE plus the EXT-X-DISCONTINUITY tags before its URI."""
    numbers = []
    for flag in flags:
        first += flag
        numbers.append(first)
    return numbers


@settings(max_examples=300, deadline=None)
@given(case=live_playlists())
def test_rendered_playlists_parse_and_keep_the_rules(case: Case) -> None:
    playlist = case.playlist
    text = playlist.render().decode()
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:")
    assert text.endswith("\n")
    assert text.count("#EXT-X-VERSION:") == 1
    parsed = m3u8.loads(text)
    assert parsed.version == playlist.version == (9 if playlist.skip else 6 if playlist.map_uri else 3)
    assert parsed.target_duration == playlist.target_duration
    assert parsed.media_sequence == playlist.media_sequence
    assert (parsed.discontinuity_sequence or 0) == playlist.discontinuity_sequence
    assert (parsed.skip.skipped_segments if parsed.skip else 0) == playlist.skip

    shown = playlist.segments[playlist.skip :]
    complete = [s for s in parsed.segments if s.uri is not None]
    assert [s.uri for s in complete] == [s.uri for s in shown]
    for ours, theirs in zip(shown, complete, strict=True):
        # 4.4.3.1: every EXTINF, rounded to the nearest integer, is at most the target duration.
        assert math.floor(theirs.duration + 0.5) <= playlist.target_duration
        assert abs(theirs.duration - ours.duration) <= 0.0005
        assert theirs.discontinuity == ours.discontinuity
        expected_date = to_millisecond(ours.program_date_time) if ours.program_date_time else None
        assert theirs.program_date_time == expected_date
    # Media Sequence Numbers continue from the first segment overall, skipped ones included.
    assert [s.media_sequence + playlist.skip for s in complete] == [
        playlist.media_sequence + playlist.skip + i for i in range(len(shown))
    ]

    first_with_parts = len(playlist.segments) - playlist.parts_window
    for index, theirs in zip(range(playlist.skip, len(playlist.segments)), complete, strict=True):
        expected = playlist.segments[index].parts if index >= first_with_parts else ()
        assert [(p.uri, p.independent == "YES") for p in theirs.parts] == [(p.uri, p.independent) for p in expected]
        assert all(round(p.duration, 5) <= round(playlist.part_target or 0, 5) for p in theirs.parts)
    trailing = parsed.segments[-1] if parsed.segments and parsed.segments[-1].uri is None else None
    assert [p.uri for p in (trailing.parts if trailing else [])] == [p.uri for p in playlist.pending_parts]
    assert (parsed.preload_hint.uri if parsed.preload_hint else None) == (
        playlist.preload_hint.uri if playlist.preload_hint else None
    )
    assert [(r.uri, r.last_msn, r.last_part) for r in parsed.rendition_reports] == [
        (r.uri, r.last_msn, r.last_part) for r in playlist.rendition_reports
    ]
    assert (parsed.part_inf.part_target if parsed.part_inf else None) == playlist.part_target


@settings(max_examples=200, deadline=None)
@given(case=live_playlists())
def test_a_delta_update_is_the_full_playlist_minus_skipped_segments(case: Case) -> None:
    delta = case.playlist
    full = replace(delta, skip=0)
    full_text = full.render().decode()
    delta_text = delta.render().decode()
    if delta.skip:
        header, _, delta_body = delta_text.partition(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={delta.skip}\n")
        # The same header, but for EXT-X-VERSION (9 with EXT-X-SKIP) ...
        header_lines = header.splitlines()
        full_lines = full_text.splitlines()[: len(header_lines)]
        assert [line for line in header_lines if not line.startswith("#EXT-X-VERSION:")] == [
            line for line in full_lines if not line.startswith("#EXT-X-VERSION:")
        ]
        # ... and the same lines from the first segment kept to the end.
        assert full_text.endswith(delta_body)
        full_segments = m3u8.loads(full_text).segments
        assert [s.uri for s in full_segments[delta.skip :]] == [s.uri for s in m3u8.loads(delta_text).segments]
    # 6.2.1 arithmetic on the full playlist: skipping never changes EXT-X-DISCONTINUITY-SEQUENCE.
    parsed = m3u8.loads(full_text)
    complete = [s for s in parsed.segments if s.uri is not None]
    assert discontinuity_numbers(parsed.discontinuity_sequence or 0, [s.discontinuity for s in complete]) == (
        discontinuity_numbers(delta.discontinuity_sequence, [s.discontinuity for s in delta.segments])
    )


variants = st.builds(
    VariantStream,
    uri=st.integers(0, 9).map(lambda n: f"{n}/stream.m3u8"),
    bandwidth=st.integers(1, 10**9),
    average_bandwidth=st.none() | st.integers(1, 10**9),
    codecs=st.sampled_from(["", "avc1.64002a,mp4a.40.2", "hvc1.1.6.L93.B0", "av01.0.08M.08,mp4a.40.2"]),
    resolution=st.none() | st.tuples(st.integers(16, 7680), st.integers(16, 4320)),
    frame_rate=st.none() | st.floats(1.0, 240.0),
    name=st.sampled_from(["", "Source", "720p @1.2Mbps"]),
)


@settings(max_examples=200, deadline=None)
@given(variants=st.lists(variants, min_size=1, max_size=6), independent=st.booleans())
def test_multivariant_playlists_parse(variants: list[VariantStream], independent: bool) -> None:
    parsed = m3u8.loads(MultivariantPlaylist(tuple(variants), independent_segments=independent).render().decode())
    assert parsed.is_variant
    assert parsed.is_independent_segments == independent
    for ours, theirs in zip(variants, parsed.playlists, strict=True):
        info = theirs.stream_info
        assert theirs.uri == ours.uri
        assert (info.bandwidth, info.average_bandwidth, info.resolution) == (
            ours.bandwidth,
            ours.average_bandwidth,
            ours.resolution,
        )
        assert info.codecs == (ours.codecs or None)
        if ours.frame_rate is None:
            assert info.frame_rate is None
        else:
            assert abs(info.frame_rate - ours.frame_rate) <= 0.0005
