"""Live HLS state from segmenter events: window, retention, discontinuities, LL-HLS arithmetic.

Events are built by hand (their bytes are irrelevant here); playlists are checked as text and
through the independent `m3u8` parser.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import m3u8
import pytest

from owncast_fast.hls.live import HlsOutput, LiveVariant, PlaylistRequestError
from owncast_fast.hls.storage import FileKind, HlsStore
from owncast_fast.media.hub import TrackConfig
from owncast_fast.media.segmenter import Container, InitReady, PartReady, SegmenterEvent, SegmentReady
from owncast_fast.media.units import Track

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PART = 1 / 3
# avcC of a 640x360 30 fps x264 stream (profile High, level 3.0), as FLV delivers it.
AVCC = bytes.fromhex("0164001effe1001a6764001eacd940a02ff970110000030001000003003c0f162d9601000668ebe3cb22c0fdf8f800")


class Recorder:
    """A storage mirror that records what happens, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []

    def put(self, path: str, data: bytes, kind: FileKind) -> None:
        self.log.append(("put", path))

    def delete(self, path: str) -> None:
        self.log.append(("delete", path))

    def close(self) -> None:
        self.log.append(("close", ""))


def variant(*, window: int = 4, part_target: float | None = PART, container: Container = Container.FMP4) -> LiveVariant:
    return LiveVariant(
        0,
        HlsStore([Recorder()]),
        container=container,
        window=window,
        target_duration=2.0,
        part_target=part_target,
        session="abc123",
    )


def segment_events(msn: int, parts: int = 6, *, discontinuity: bool = False) -> list[SegmenterEvent]:
    events: list[SegmenterEvent] = [PartReady(msn, index, PART, index == 0, b"p" * 10) for index in range(parts)]
    events.append(
        SegmentReady(
            msn=msn,
            duration=parts * PART,
            data=b"s" * 100,
            program_date_time=START + timedelta(seconds=2 * msn),
            discontinuity=discontinuity,
            independent=True,
            init_generation=1,
        )
    )
    return events


def whole_segment_events(msn: int) -> list[SegmenterEvent]:
    """What an MPEG-TS segmenter emits: segments without parts."""
    return [event for event in segment_events(msn) if isinstance(event, SegmentReady)]


def feed(live: LiveVariant, *events: SegmenterEvent) -> None:
    live.apply(list(events))


def parsed(live: LiveVariant) -> m3u8.M3U8:
    assert live.playlist is not None
    return m3u8.loads(live.playlist.decode())


def test_nothing_listed_before_the_first_segment_completes() -> None:
    live = variant()
    feed(live, InitReady(b"init", 1), PartReady(0, 0, PART, True, b"p"))
    assert live.playlist is None
    assert live.store.get("0/abc123-init1.mp4") == b"init"
    assert live.store.get("0/abc123-0.0.m4s") == b"p"


def test_ll_playlist_lists_parts_hint_and_server_control() -> None:
    live = variant()
    feed(
        live,
        InitReady(b"init", 1),
        *segment_events(0),
        PartReady(1, 0, PART, True, b"p"),
        PartReady(1, 1, PART, False, b"p"),
    )
    text = live.playlist.decode() if live.playlist else ""
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,HOLD-BACK=6.0,PART-HOLD-BACK=1.0" in text
    assert "#EXT-X-PART-INF:PART-TARGET=0.33333" in text
    assert '#EXT-X-MAP:URI="abc123-init1.mp4"' in text
    assert text.count("#EXT-X-PART:") == 8
    assert text.rstrip().endswith('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="abc123-1.2.m4s"')
    playlist = parsed(live)
    assert playlist.media_sequence == 0 and playlist.target_duration == 2
    assert [s.uri for s in playlist.segments if s.uri] == ["abc123-0.m4s"]  # pending parts: no URI yet


def test_hint_moves_to_the_next_segment_after_its_last_part() -> None:
    live = variant()
    feed(live, *segment_events(0))
    assert live.expected_part() == "abc123-1.0.m4s"
    feed(live, PartReady(1, 0, PART, True, b"p"))
    assert live.expected_part() == "abc123-1.1.m4s"


def test_blocking_arithmetic_across_a_segment_boundary() -> None:
    live = variant()
    feed(live, *segment_events(0), PartReady(1, 0, PART, True, b"p"))
    assert live.has(0, None) and live.has(0, 5) and live.has(0, 99)  # a complete segment has every part
    assert live.has(1, 0) and not live.has(1, 1) and not live.has(1, None)
    assert not live.has(2, 0)
    live.check_request(3, None)  # up to two segments beyond the newest (1) are fine
    # The Advance Part Limit is 3 / PART-TARGET = 9 parts for 1/3 s parts.
    assert live.advance_part_limit == 9
    live.check_request(1, 9)
    live.check_request(2, 8)  # part 8 of the next segment: at least 9 parts ahead
    with pytest.raises(PlaylistRequestError, match=r"^_HLS_msn=4 is more than two segments beyond the last one \(1\)$"):
        live.check_request(4, None)
    with pytest.raises(
        PlaylistRequestError,
        match=r"^_HLS_part=10 of segment 1 is more than 9 parts beyond the last one \(segment 1 part 0\)$",
    ):
        live.check_request(1, 10)
    with pytest.raises(PlaylistRequestError, match=r"^_HLS_part=9 of segment 2 is more than 9 parts"):
        live.check_request(2, 9)


def test_parts_are_listed_for_the_last_three_segments_and_dropped_from_storage_after() -> None:
    live = variant(window=10)
    for msn in range(5):
        feed(live, *segment_events(msn))
    text = live.playlist.decode() if live.playlist else ""
    assert "abc123-1.0.m4s" not in text and "abc123-2.0.m4s" in text
    assert live.store.get("0/abc123-1.0.m4s") is None
    assert live.store.get("0/abc123-2.0.m4s") is not None
    assert live.store.get("0/abc123-1.m4s") is not None  # the segment itself stays


def test_window_slides_and_old_segments_are_deleted_after_a_grace() -> None:
    live = variant(window=3)
    for msn in range(10):
        feed(live, *segment_events(msn))
    playlist = parsed(live)
    assert playlist.media_sequence == 7
    assert [s.uri for s in playlist.segments] == ["abc123-7.m4s", "abc123-8.m4s", "abc123-9.m4s"]
    assert live.store.get("0/abc123-4.m4s") is not None  # just left the playlist: still fetchable
    assert live.store.get("0/abc123-3.m4s") is None
    segment_paths = [p for p in live.store.paths() if p.count(".") == 1 and p.endswith(".m4s")]
    assert len(segment_paths) == 3 + 3  # window + grace: memory is bounded by the window


def test_discontinuity_sequence_counts_tagged_segments_that_leave() -> None:
    live = variant(window=2, part_target=None)
    feed(live, *segment_events(0), *segment_events(1), *segment_events(2, discontinuity=True))
    assert "#EXT-X-DISCONTINUITY\n" in (live.playlist or b"").decode()
    feed(live, *segment_events(3), *segment_events(4))
    text = (live.playlist or b"").decode()
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in text and "#EXT-X-DISCONTINUITY\n" not in text


def test_end_of_stream_adds_endlist_and_no_hint_then_a_new_stream_goes_live() -> None:
    live = variant()
    feed(live, *segment_events(0), PartReady(1, 0, PART, True, b"p"))
    live.end_stream()
    text = (live.playlist or b"").decode()
    assert text.rstrip().endswith("#EXT-X-ENDLIST") and "PRELOAD-HINT" not in text
    assert live.ended and live.expected_part() is None
    feed(live, *segment_events(1, discontinuity=True))
    text = (live.playlist or b"").decode()
    assert "#EXT-X-ENDLIST" not in text and "#EXT-X-DISCONTINUITY" in text


def test_delta_update_skips_segments_older_than_can_skip_until() -> None:
    live = variant(window=10)
    for msn in range(9):  # 9 segments x 2 s = 18 s; CAN-SKIP-UNTIL = 12 s
        feed(live, *segment_events(msn))
    delta = (live.delta_playlist() or b"").decode()
    assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=3" in delta
    assert "#EXT-X-MEDIA-SEQUENCE:0" in delta and "#EXT-X-VERSION:9" in delta
    assert "abc123-2.m4s" not in delta and "abc123-3.m4s" in delta
    assert live.delta_playlist() is live.delta_playlist()  # rendered once per update


def test_part_durations_stay_inside_the_spec_bounds() -> None:
    live = variant()
    feed(
        live,
        PartReady(0, 0, 0.2, True, b"p"),  # independent: may be short
        PartReady(0, 1, 0.36, False, b"p"),  # a late frame: listed at the target
        PartReady(0, 2, 0.25, False, b"p"),  # jitter: listed at 85 %
        PartReady(0, 3, 0.1, False, b"p"),  # the segment's last part: may be short
        SegmentReady(0, 0.91, b"s", START, False, True, 1),
    )
    text = (live.playlist or b"").decode()
    durations = [float(line.split("DURATION=")[1].split(",")[0]) for line in text.splitlines() if "EXT-X-PART:" in line]
    assert durations == [0.2, 0.33333, 0.28333, 0.1]


def test_plain_hls_has_no_ll_tags() -> None:
    live = variant(part_target=None)
    feed(live, *segment_events(0))
    text = (live.playlist or b"").decode()
    assert "EXT-X-PART" not in text and "SERVER-CONTROL" not in text and "PRELOAD" not in text
    assert not live.low_latency and not live.can_block_reload


def test_ts_with_ll_hls_offers_blocking_reload_without_parts() -> None:
    live = variant(container=Container.MPEGTS)
    feed(live, *whole_segment_events(0))
    text = (live.playlist or b"").decode()
    # 4.4.3.8: HOLD-BACK at least three target durations; no parts, so no PART-HOLD-BACK.
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,HOLD-BACK=6.0\n" in text
    assert "EXT-X-PART" not in text and "PRELOAD" not in text and "CAN-SKIP" not in text
    assert live.can_block_reload and not live.low_latency
    assert live.has(0, None) and not live.has(1, None)
    live.check_request(2, None)  # within two segments of the last one
    with pytest.raises(PlaylistRequestError):
        live.check_request(3, None)


def test_rendition_reports_name_every_other_variant() -> None:
    store = HlsStore()
    a = LiveVariant(0, store, container=Container.FMP4, window=4, target_duration=2.0, part_target=PART, session="aaa")
    b = LiveVariant(1, store, container=Container.FMP4, window=4, target_duration=2.0, part_target=PART, session="bbb")
    HlsOutput(store, [a, b])
    feed(b, *segment_events(0), PartReady(1, 0, PART, True, b"p"), PartReady(1, 1, PART, False, b"p"))
    feed(a, *segment_events(0))
    assert '#EXT-X-RENDITION-REPORT:URI="../1/stream.m3u8",LAST-MSN=1,LAST-PART=1' in (a.playlist or b"").decode()


def test_mpegts_rendition_reports_carry_no_part() -> None:
    store = HlsStore()
    a, b = (
        LiveVariant(i, store, container=Container.MPEGTS, window=4, target_duration=2.0, part_target=PART, session=s)
        for i, s in ((0, "aaa"), (1, "bbb"))
    )
    HlsOutput(store, [a, b])
    for msn in (0, 1):
        feed(b, *whole_segment_events(msn))
    feed(a, *whole_segment_events(0))
    text = (a.playlist or b"").decode()
    assert '#EXT-X-RENDITION-REPORT:URI="../1/stream.m3u8",LAST-MSN=1\n' in text


def test_multivariant_entry_from_the_real_parameter_sets() -> None:
    live = variant()
    live.set_track(TrackConfig(Track.VIDEO, "avc1", "avc1.64001e", AVCC))
    live.set_track(TrackConfig(Track.AUDIO, "mp4a", "mp4a.40.2", b"\x12\x10", sample_rate=44100, channels=2))
    output = HlsOutput(live.store, [live])
    assert output.multivariant() is None
    feed(live, *segment_events(0))
    body = output.multivariant()
    assert body is not None and output.multivariant() is body  # cached until an entry changes
    stream = m3u8.loads(body.decode()).playlists[0].stream_info
    assert stream.resolution == (640, 360) and stream.frame_rate == 30.0
    assert stream.codecs == "avc1.64001e,mp4a.40.2"
    assert stream.bandwidth == round(100 * 8 / (6 * PART))


def test_waiters_are_all_woken_by_one_update() -> None:
    async def scenario() -> list[bool]:
        live = variant()
        feed(live, *segment_events(0))
        waiters = [asyncio.ensure_future(live.wait_for_change()) for _ in range(1000)]
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiters)
        feed(live, PartReady(1, 0, PART, True, b"p"))
        await asyncio.sleep(0)
        return [w.done() for w in waiters]

    assert all(asyncio.run(scenario()))


def test_mirrors_see_segments_before_the_playlist_that_lists_them() -> None:
    live = variant()
    feed(live, *segment_events(0))
    recorder = live.store.mirrors[0]
    assert isinstance(recorder, Recorder)
    order = [path for action, path in recorder.log if action == "put"]
    assert order.index("0/abc123-0.m4s") < order.index("0/stream.m3u8")


def test_a_new_init_segment_gets_its_own_map_and_the_old_one_goes_when_unused() -> None:
    live = variant(window=2, part_target=None)

    def segment(msn: int, generation: int, discontinuity: bool = False) -> SegmentReady:
        return SegmentReady(msn, 2.0, b"s", START, discontinuity, True, generation)

    feed(live, InitReady(b"i1", 1), segment(0, 1), InitReady(b"i2", 2), segment(1, 2, True))
    text = (live.playlist or b"").decode()
    assert text.index('#EXT-X-MAP:URI="abc123-init1.mp4"') < text.index("abc123-0.m4s")
    assert (
        text.index("#EXT-X-DISCONTINUITY")
        < text.index('#EXT-X-MAP:URI="abc123-init2.mp4"')
        < text.index("abc123-1.m4s")
    )
    for msn in range(2, 7):
        feed(live, segment(msn, 2))
    text = (live.playlist or b"").decode()
    assert '#EXT-X-MAP:URI="abc123-init2.mp4"' in text and "init1" not in text
    assert live.store.get("0/abc123-init1.mp4") is None  # no fetchable segment needs it any more
    assert live.store.get("0/abc123-init2.mp4") == b"i2"


def test_parts_of_a_complete_segment_and_the_part_after_its_last() -> None:
    live = variant()
    feed(live, *segment_events(0))
    live.check_request(0, 5)  # the whole segment exists, so every one of its parts does
    assert live.has(0, 5)
    # 6.2.5.2: a part index past the segment's last part means part 0 of the next segment.
    assert not live.has(0, 6)
    live.check_request(0, 6)
    feed(live, PartReady(1, 0, PART, True, b"p"))
    assert live.has(0, 6)


def test_an_ended_playlist_is_never_a_delta_update() -> None:
    live = variant(window=10)
    for msn in range(9):
        feed(live, *segment_events(msn))
    live.end_stream()
    assert live.delta_playlist() is live.playlist
