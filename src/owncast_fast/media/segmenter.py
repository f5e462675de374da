"""Access units in, HLS init segments, parts and segments out. Sans-I/O.

Theory of operation
-------------------
`Segmenter.push(item, now)` takes what the media hub delivers (`StreamStart`, `TrackConfig`,
`AccessUnit`, `StreamEnd`) and returns events: `InitReady` (fMP4 only), `PartReady` (fMP4 only)
and `SegmentReady`. Cut decisions use only unit timestamps and keyframe flags; `now` (wall-clock
seconds) is read once per stream, to anchor EXT-X-PROGRAM-DATE-TIME at ingest arrival.

* A segment starts on a video keyframe (on any audio frame for audio-only streams) and is cut
  at the first keyframe at least `target_duration` after its start, so every segment is
  independently decodable. RFC 8216bis: "each Media Segment ... MUST begin with a key frame"
  only when EXT-X-INDEPENDENT-SEGMENTS applies; we always honour it, except below.
* A stream whose keyframes stop coming would hold one segment forever. After
  `MAX_SEGMENT_FACTOR x target_duration` without a keyframe the segment is cut anyway (logged):
  memory stays bounded by the playlist window, and the player sees a segment that needs the
  previous one.
* fMP4 segments are made of parts (one moof+mdat each) of about `part_target` seconds; a part
  is cut at the first unit at least `part_target` after the part began. The segment's bytes
  are its parts joined (plus `styp`), so LL-HLS clients and plain HLS clients read the same data.
* MPEG-TS segments have no parts; each starts with PAT/PMT.
* A new `StreamStart` (publisher reconnect) or a changed codec configuration starts a new
  segment flagged `discontinuity`, after a new `InitReady` for fMP4.
* Audio timestamps are re-derived from the sample count (1024 samples per AAC frame) so that
  RTMP's millisecond rounding does not make sample durations jitter; they re-sync to the
  source when the two drift apart by more than one frame (a gap in the source).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

from owncast_fast._native.segmenter import Fmp4Track, FragmentWriter, TsMuxer, init_segment
from owncast_fast.media.hub import HubItem, StreamEnd, StreamStart, TrackConfig
from owncast_fast.media.units import AUDIO, TIMESCALE, VIDEO, AccessUnit, Track

log = logging.getLogger(__name__)

VIDEO_TRACK_ID = 1
AUDIO_TRACK_ID = 2
AAC_FRAME_SAMPLES = 1024
# A segment with no keyframe for this many target durations is cut anyway.
MAX_SEGMENT_FACTOR = 4
# Audio-only detection: this much audio with no video configuration means no video will come.
AUDIO_ONLY_AFTER = TIMESCALE  # 1 s
PART_JITTER_TICKS = 2 * TIMESCALE // 1000  # 2 ms


class Container(Enum):
    FMP4 = "fmp4"
    MPEGTS = "ts"


@dataclass(frozen=True, slots=True)
class InitReady:
    data: bytes
    generation: int  # increases each time the init segment changes


@dataclass(frozen=True, slots=True)
class PartReady:
    msn: int  # media sequence number of the segment this part belongs to
    index: int  # part index within the segment, from 0
    duration: float  # seconds
    independent: bool  # starts with a keyframe
    data: bytes


@dataclass(frozen=True, slots=True)
class SegmentReady:
    msn: int
    duration: float
    data: bytes
    program_date_time: datetime
    discontinuity: bool
    independent: bool
    init_generation: int


SegmenterEvent = InitReady | PartReady | SegmentReady


@dataclass(slots=True)
class _Open:
    """The segment being built."""

    msn: int
    start_dts: int
    discontinuity: bool
    independent: bool
    program_date_time: datetime
    parts: list[bytes]
    part_index: int = 0
    part_start_dts: int = 0
    part_independent: bool = False
    end_dts: int = 0  # where the last unit of the primary track (video, else audio) ends


class Segmenter:
    def __init__(
        self,
        container: Container = Container.FMP4,
        *,
        target_duration: float = 3.0,
        part_target: float = 0.5,
        first_msn: int = 0,
    ) -> None:
        if target_duration <= 0 or part_target <= 0 or part_target > target_duration:
            raise ValueError("need 0 < part_target <= target_duration")
        self.container = container
        self._fmp4 = container is Container.FMP4
        self.target_ticks = round(target_duration * TIMESCALE)
        self.part_ticks = round(part_target * TIMESCALE)
        self.next_msn = first_msn
        self.init_generation = 0
        self.dropped_units = 0  # units that could not start a segment (no keyframe yet)
        self.forced_cuts = 0
        self._video: TrackConfig | None = None
        self._audio: TrackConfig | None = None
        self._started_configs: tuple[TrackConfig | None, TrackConfig | None] | None = None
        self._open: _Open | None = None
        self._pending_discontinuity = False
        self._writer: FragmentWriter | None = None
        self._ts: TsMuxer | None = None
        self._fragment_seq = 1
        self._anchor: tuple[float, int] | None = None  # (wall-clock seconds, dts) of the first unit
        # Where the last segment ended on the program date-time clock: the next stream (a
        # reconnect, the offline slate) never starts before it, so dates never go back.
        self._dates_end: float | None = None
        self._audio_clock: int | None = None  # next audio dts in samples
        self._audio_only_wait = 0
        self._any_segment = False
        self._last_video_dts: int | None = None
        self._video_step = TIMESCALE // 30  # until two video units have been seen
        # Last dts per track, indexed by Track (an int): a dict keyed by an Enum would hash each
        # key through Enum.__hash__, a Python call, for every unit.
        self._last_dts: list[int | None] = [None, None]
        self._fmp4_tracks: list[Fmp4Track] = []
        # A step in a track's timestamps beyond this (or any step back) is a discontinuity:
        # longer than any GOP the hub could have dropped, shorter than a player would wait.
        self.max_jump_ticks = max(10 * TIMESCALE, 2 * self.target_ticks)

    # -- input ---------------------------------------------------------------------------------

    def push(self, item: HubItem, now: float) -> list[SegmenterEvent]:
        events: list[SegmenterEvent] = []
        if isinstance(item, AccessUnit):
            self._unit(item, now, events)
        elif isinstance(item, TrackConfig):
            self._config(item, events)
        elif isinstance(item, StreamStart):
            self._finish(events, None)
            self._video = self._audio = None
            self._last_video_dts = None
            self._last_dts = [None, None]
            self._started_configs = None
            self._anchor = None
            self._audio_clock = None
            self._audio_only_wait = 0
            self._pending_discontinuity = self._any_segment
        elif isinstance(item, StreamEnd):
            self._finish(events, None)
        return events

    def flush(self) -> list[SegmenterEvent]:
        """End the open segment now (the stream stopped)."""
        events: list[SegmenterEvent] = []
        self._finish(events, None)
        return events

    # -- configuration -------------------------------------------------------------------------

    def _config(self, config: TrackConfig, events: list[SegmenterEvent]) -> None:
        current = self._video if config.track is Track.VIDEO else self._audio
        if current == config:
            return
        if config.track is Track.VIDEO:
            self._video = config
        else:
            self._audio = config
        if self._started_configs is not None:
            # The codec configuration changed mid-stream: a new init segment, a new segment
            # with a discontinuity, starting at the next keyframe.
            log.info("segmenter: %s configuration changed; starting a discontinuity", config.track.name.lower())
            self._finish(events, None)
            self._started_configs = None
            self._pending_discontinuity = True

    def _start_tracks(self, events: list[SegmenterEvent]) -> None:
        """Build the muxers for the current configurations (and emit the fMP4 init segment)."""
        video, audio = self._video, self._audio
        self._started_configs = (video, audio)
        if self.container is Container.FMP4:
            tracks = []
            if video is not None:
                tracks.append(
                    Fmp4Track(
                        VIDEO_TRACK_ID, "video", video.codec, video.config, TIMESCALE,
                        width=video.width, height=video.height,
                    )
                )  # fmt: skip
            if audio is not None:
                tracks.append(
                    Fmp4Track(
                        AUDIO_TRACK_ID, "audio", audio.codec, audio.config, audio.sample_rate or 48000,
                        sample_rate=audio.sample_rate or 48000, channels=audio.channels or 2,
                    )
                )  # fmt: skip
            self._fmp4_tracks = tracks
            self._writer = FragmentWriter(tracks)
            self.init_generation += 1
            events.append(InitReady(init_segment(tracks), self.init_generation))
        else:
            self._ts = TsMuxer(
                video_codec=video.codec if video is not None else None,
                video_config=video.config if video is not None else b"",
                audio_config=audio.config if audio is not None and audio.codec == "mp4a" else b"",
            )
            self.init_generation += 1

    # -- units ---------------------------------------------------------------------------------

    def _unit(self, unit: AccessUnit, now: float, events: list[SegmenterEvent]) -> None:
        is_video = unit.track is VIDEO
        if is_video and self._video is None:
            self.dropped_units += 1
            return
        if not is_video and self._audio is None:
            self.dropped_units += 1
            return
        open_segment = self._open
        if open_segment is not None and self._jumped(unit):
            self._restart_after_jump(unit, now, events)
            open_segment = None
        if open_segment is None:
            if not self._can_start(unit):
                self.dropped_units += 1
                return
            if self._started_configs is None:
                self._start_tracks(events)
            if self._anchor is None:
                self._anchor = (max(now, self._dates_end or now), unit.dts)
            open_segment = self._begin(unit.dts, independent=True)
        elif is_video and unit.keyframe and unit.dts - open_segment.start_dts >= self.target_ticks:
            self._finish(events, unit.dts)
            open_segment = self._begin(unit.dts, independent=True)
        elif unit.dts - open_segment.start_dts >= self.target_ticks * MAX_SEGMENT_FACTOR:
            self.forced_cuts += 1
            log.warning(
                "segmenter: no keyframe for %.1f s; cutting a segment that does not start with one",
                (unit.dts - open_segment.start_dts) / TIMESCALE,
            )
            self._finish(events, unit.dts)
            open_segment = self._begin(unit.dts, independent=False)
        elif self._fmp4 and (is_video or self._video is None) and self._part_full(unit):
            self._cut_part(events, unit.dts)
            open_segment.part_start_dts = unit.dts
            open_segment.part_independent = is_video and unit.keyframe
        self._write(unit, open_segment)

    def _part_full(self, unit: AccessUnit) -> bool:
        """Would this unit (lasting about one frame) push the open part past the part target?

        4.4.4.9: "The duration of a Partial Segment MUST be less than or equal to the Part Target
        Duration", so a part is closed before the unit that would overflow it, not after.
        """
        assert self._open is not None
        step = self._video_step if unit.track is VIDEO else AAC_FRAME_SAMPLES * TIMESCALE // self._audio_rate()
        # RTMP timestamps are whole milliseconds, so frame steps jitter by a millisecond or two;
        # without the allowance a 33/34 ms cadence would cut every part a frame early.
        return unit.dts - self._open.part_start_dts + step > self.part_ticks + PART_JITTER_TICKS

    def _jumped(self, unit: AccessUnit) -> bool:
        last = self._last_dts[unit.track]
        return last is not None and not 0 <= unit.dts - last <= self.max_jump_ticks

    def _restart_after_jump(self, unit: AccessUnit, now: float, events: list[SegmenterEvent]) -> None:
        """Timestamps went back or leapt ahead: close the segment, continue after a discontinuity."""
        last = self._last_dts[unit.track]
        assert last is not None
        log.warning(
            "segmenter: %s timestamp jumped by %+.3f s; starting a discontinuity",
            unit.track.name.lower(),
            (unit.dts - last) / TIMESCALE,
        )
        self._finish(events, None)
        self._pending_discontinuity = True
        self._last_dts = [None, None]
        self._last_video_dts = None
        self._audio_clock = None
        # Program date-time follows the wall clock across the jump (never backwards).
        self._anchor = (max(now, self._dates_end or now), unit.dts)
        if self._writer is not None:
            # The fragment writer refuses decode times that go back; the init segment stays valid.
            self._writer = FragmentWriter(self._fmp4_tracks)

    def _can_start(self, unit: AccessUnit) -> bool:
        if self._video is not None:
            return unit.track is VIDEO and unit.keyframe
        # No video configuration (yet): after a second of audio, this is an audio-only stream.
        self._audio_only_wait += 1
        waited = self._audio_only_wait * AAC_FRAME_SAMPLES * TIMESCALE // self._audio_rate()
        return waited >= AUDIO_ONLY_AFTER

    def _audio_rate(self) -> int:
        return self._audio.sample_rate if self._audio is not None and self._audio.sample_rate else 48000

    def _begin(self, start_dts: int, *, independent: bool) -> _Open:
        assert self._anchor is not None
        wall, anchor_dts = self._anchor
        pdt = datetime.fromtimestamp(wall, UTC) + timedelta(seconds=(start_dts - anchor_dts) / TIMESCALE)
        segment = _Open(
            msn=self.next_msn,
            start_dts=start_dts,
            discontinuity=self._pending_discontinuity,
            independent=independent,
            program_date_time=pdt,
            parts=[],
            part_start_dts=start_dts,
            part_independent=independent,
        )
        self._pending_discontinuity = False
        self.next_msn += 1
        self._open = segment
        if self.container is Container.FMP4:
            assert self._writer is not None
            segment.parts.append(self._writer.styp())
        else:
            assert self._ts is not None
            segment.parts.append(self._ts.start_segment())
        return segment

    def _write(self, unit: AccessUnit, segment: _Open) -> None:
        self._last_dts[unit.track] = unit.dts
        if unit.track is VIDEO:
            if self._last_video_dts is not None and unit.dts > self._last_video_dts:
                self._video_step = unit.dts - self._last_video_dts
            self._last_video_dts = unit.dts
            segment.end_dts = unit.dts + self._video_step
        elif self._video is None:
            segment.end_dts = unit.dts + AAC_FRAME_SAMPLES * TIMESCALE // self._audio_rate()
        if unit.track is AUDIO:
            dts = self._audio_dts(unit.dts)
            if self._fmp4:
                assert self._writer is not None
                self._writer.add(AUDIO_TRACK_ID, dts, dts, True, unit.data)
            else:
                assert self._ts is not None
                ticks = dts * TIMESCALE // self._audio_rate()
                segment.parts.append(self._ts.write_audio(ticks, unit.data))
        elif self._fmp4:
            assert self._writer is not None
            self._writer.add(VIDEO_TRACK_ID, unit.dts, unit.pts, unit.keyframe, unit.data)
        else:
            assert self._ts is not None
            segment.parts.append(self._ts.write_video(unit.dts, unit.pts, unit.keyframe, unit.data))

    def _audio_dts(self, dts_ticks: int) -> int:
        """Audio dts in samples: counted frame by frame, re-synced when the source skips ahead.

        A source that steps back by less than a large jump (e.g. ffmpeg's -stream_loop puts each
        wrap's first frame 1 ms after the last) keeps the count going: the track must never go back
        in time (a real step back is a discontinuity, handled by the jump check before this).
        """
        rate = self._audio_rate()
        source = dts_ticks * rate // TIMESCALE
        clock = self._audio_clock
        if clock is None or source - clock > AAC_FRAME_SAMPLES:
            clock = source
        self._audio_clock = clock + AAC_FRAME_SAMPLES
        return clock

    # -- cutting -------------------------------------------------------------------------------

    def _next_dts(self, boundary: int | None) -> dict[int, int] | None:
        """Where each track's next sample starts, to size the last sample of a part."""
        if boundary is None:
            return None
        next_dts: dict[int, int] = {}
        if self._video is not None:
            next_dts[VIDEO_TRACK_ID] = boundary
        if self._audio_clock is not None:
            next_dts[AUDIO_TRACK_ID] = self._audio_clock
        return next_dts

    def _cut_part(self, events: list[SegmenterEvent], next_video_dts: int | None) -> None:
        segment = self._open
        assert segment is not None and self._writer is not None
        data = self._writer.flush(self._fragment_seq, self._next_dts(next_video_dts))
        if not data:
            return
        self._fragment_seq += 1
        end = next_video_dts if next_video_dts is not None else segment.end_dts
        duration = max(end - segment.part_start_dts, 1) / TIMESCALE
        events.append(PartReady(segment.msn, segment.part_index, duration, segment.part_independent, data))
        segment.parts.append(data)
        segment.part_index += 1

    def _finish(self, events: list[SegmenterEvent], next_dts: int | None) -> None:
        """Close the open segment; `next_dts` is where the next one starts (None: stream end)."""
        segment = self._open
        if segment is None:
            return
        if self.container is Container.FMP4:
            self._cut_part(events, next_dts)
        self._open = None
        end = next_dts if next_dts is not None else segment.end_dts
        duration = max(end - segment.start_dts, 1) / TIMESCALE
        self._any_segment = True
        self._dates_end = segment.program_date_time.timestamp() + duration
        events.append(
            SegmentReady(
                msn=segment.msn,
                duration=duration,
                data=b"".join(segment.parts),
                program_date_time=segment.program_date_time,
                discontinuity=segment.discontinuity,
                independent=segment.independent,
                init_generation=self.init_generation,
            )
        )
