"""Live HLS state: segmenter events in, stored files and rendered playlists out.

One `LiveVariant` per output variant keeps the playlist window (Owncast's latency level decides
how many segments), stores each init segment, part and segment under a name that is unique for
this server run, deletes files soon after they leave the playlist, and renders each form of the
media playlist (full, delta) at most once per change: every viewer request is then a dict lookup,
and the many LL-HLS requests waiting for the same update all get the same bytes.

Low-Latency HLS (draft-pantos-hls-rfc8216bis): on fMP4, parts are listed for the last segments
and the next part is hinted; MPEG-TS keeps blocking reload for whole segments. A blocking request
parks on one asyncio.Event that the next update sets for all waiters at once (no polling, no
thread per request). `HlsOutput` holds the variants and the multivariant playlist.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import secrets
from dataclasses import dataclass

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
from owncast_fast.hls.storage import FileKind, HlsStore
from owncast_fast.media.codecs import video_dimensions
from owncast_fast.media.hub import TrackConfig
from owncast_fast.media.segmenter import Container, InitReady, PartReady, SegmenterEvent, SegmentReady
from owncast_fast.media.units import Track

log = logging.getLogger(__name__)

# Segments that left the playlist stay fetchable this much longer: a client that read the
# previous playlist may still be downloading them.
KEEP_AFTER_WINDOW = 3
# EXT-X-PART lines are kept for the last segments only: 6.2.2 "Partial Segments SHOULD be removed
# from the Playlist after they are greater than three Target Durations from the end".
PARTS_WINDOW = 3
PLAYLIST_NAME = "stream.m3u8"


class PlaylistRequestError(ValueError):
    """A blocking-reload request the server must refuse (400)."""


@dataclass(slots=True)
class _Stored:
    msn: int
    path: str
    size: int
    duration: float
    model: MediaSegment
    part_paths: list[str]
    part_count: int
    init_generation: int


class LiveVariant:
    def __init__(
        self,
        index: int,
        store: HlsStore,
        *,
        container: Container,
        window: int,
        target_duration: float,
        part_target: float | None = None,
        session: str | None = None,
        name: str = "",
    ) -> None:
        self.index = index
        self.name = name
        self.store = store
        self.container = container
        self.window = window
        # 6.2.1: "The EXT-X-TARGETDURATION tag MUST NOT change" for the life of the playlist. It
        # starts at the configured segment length and only grows if a publisher's keyframes are
        # further apart than that (a segment can only be cut at a keyframe).
        self.target_duration = minimum_target_duration([target_duration])
        # Partial segments only apply to fMP4. MPEG-TS output with LL-HLS on keeps blocking
        # reload (6.2.5.2), which needs no parts: a player asking for the next segment gets the
        # playlist the moment it is listed instead of up to half a target duration later.
        self.can_block_reload = part_target is not None
        self.part_target = part_target if container is Container.FMP4 else None
        self.session = session or secrets.token_hex(3)
        self.playlist: bytes | None = None  # the full playlist, as plain HLS clients get it
        self.tracks: dict[Track, TrackConfig] = {}
        self.segments: collections.deque[_Stored] = collections.deque()
        self.peers: list[LiveVariant] = []  # the other variants, for EXT-X-RENDITION-REPORT
        self.stream: VariantStream | None = None  # this variant's multivariant entry
        self._retired: collections.deque[_Stored] = collections.deque()
        self._pending_parts: list[PartialSegment] = []
        self._pending_part_paths: list[str] = []
        self._open_msn: int | None = None  # msn of the segment being built (parts announced)
        self._inits: dict[int, str] = {}  # init generation -> file name (fMP4)
        self._discontinuity_sequence = 0
        self._ended = False
        self._changed = asyncio.Event()
        self._delta: bytes | None = None

    @property
    def prefix(self) -> str:
        return str(self.index)

    @property
    def low_latency(self) -> bool:
        return self.part_target is not None

    def _path(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    # -- input ---------------------------------------------------------------------------------

    def set_track(self, config: TrackConfig) -> None:
        self.tracks[config.track] = config

    def apply(self, events: list[SegmenterEvent]) -> None:
        changed = False
        for position, event in enumerate(events):
            if isinstance(event, PartReady):
                following = events[position + 1] if position + 1 < len(events) else None
                final = isinstance(following, SegmentReady) and following.msn == event.msn
                changed |= self._part(event, final=final)
            elif isinstance(event, SegmentReady):
                self._segment(event)
                changed = True
            elif isinstance(event, InitReady):
                name = f"{self.session}-init{event.generation}.mp4"
                self.store.put(self._path(name), event.data, FileKind.INIT)
                self._inits[event.generation] = name
        if changed:
            self._render()

    def end_stream(self) -> None:
        """The publisher left: finish the playlist (EXT-X-ENDLIST) until a stream starts again."""
        self._pending_parts.clear()
        self._pending_part_paths.clear()
        self._open_msn = None
        if self.segments and not self._ended:
            self._ended = True
            self._render()

    def _part(self, event: PartReady, *, final: bool) -> bool:
        name = f"{self.session}-{event.msn}.{event.index}.m4s"
        self.store.put(self._path(name), event.data, FileKind.PART)
        self._pending_part_paths.append(self._path(name))
        if self.part_target is None:
            return False
        self._open_msn = event.msn
        duration = self._part_duration(event, final=final)
        self._pending_parts.append(PartialSegment(name, duration, event.independent))
        return True

    def _part_duration(self, event: PartReady, *, final: bool) -> float:
        """The duration as listed: within 4.4.4.9's bounds, which a jittery source can overstep.

        Parts are cut before the frame that would overflow the target, so this only moves a
        duration when a source's frame timestamps are irregular, by less than one frame.
        """
        assert self.part_target is not None
        duration = min(event.duration, self.part_target)
        # "... with the exception of Partial Segments with the INDEPENDENT=YES ... attribute, [...]
        # and the final Partial Segment of any Parent Segment."
        if not event.independent and not final:
            duration = max(duration, 0.85 * self.part_target)
        return duration

    def _segment(self, event: SegmentReady) -> None:
        extension = "m4s" if self.container is Container.FMP4 else "ts"
        name = f"{self.session}-{event.msn}.{extension}"
        self.store.put(self._path(name), event.data, FileKind.SEGMENT)
        self._ended = False  # a publisher is (back) live
        needed = minimum_target_duration([event.duration])
        if needed > self.target_duration:
            log.warning(
                "variant %d: a %.3f s segment (keyframes further apart than the target) raises the target duration",
                self.index,
                event.duration,
            )
            self.target_duration = needed
        parts = tuple(self._pending_parts) if self._open_msn == event.msn else ()
        # A new init segment (a reconnect with other settings, a codec change) starts with its own
        # EXT-X-MAP, so the segments before it keep being read with theirs (4.4.4.5).
        new_map = bool(self.segments) and self.segments[-1].init_generation != event.init_generation
        model = MediaSegment(
            name,
            event.duration,
            program_date_time=event.program_date_time,
            discontinuity=event.discontinuity and bool(self.segments),
            parts=parts,
            map_uri=self._inits.get(event.init_generation) if new_map else None,
        )
        part_paths, self._pending_part_paths = self._pending_part_paths, []
        self._pending_parts = []
        self._open_msn = None
        stored = _Stored(
            event.msn,
            self._path(name),
            len(event.data),
            event.duration,
            model,
            part_paths,
            len(parts),
            event.init_generation,
        )
        self.segments.append(stored)
        while len(self.segments) > self.window:
            gone = self.segments.popleft()
            # A segment's Discontinuity Sequence Number is EXT-X-DISCONTINUITY-SEQUENCE plus the
            # EXT-X-DISCONTINUITY tags before it (4.4.3.3); removing a tagged segment must not
            # renumber the rest, so the sequence takes over its tag.
            if gone.model.discontinuity:
                self._discontinuity_sequence += 1
            self._retired.append(gone)
        while len(self._retired) > KEEP_AFTER_WINDOW:
            old = self._retired.popleft()
            self.store.delete(old.path)
            self._drop_parts(old)
            self._drop_unused_inits(event.init_generation)
        # Parts are only listed near the live edge; the segment holds the same bytes.
        if len(self.segments) > PARTS_WINDOW:
            self._drop_parts(self.segments[-PARTS_WINDOW - 1])

    def discard(self) -> None:
        """Delete every file of this variant from the store."""
        prefix = self.prefix + "/"
        for path in self.store.paths():
            if path.startswith(prefix):
                self.store.delete(path)
        self.segments.clear()
        self._retired.clear()
        self.playlist = None
        self.stream = None
        self._ended = True
        self._changed.set()  # release waiting clients: they will find the variant gone

    def _drop_unused_inits(self, current: int) -> None:
        """Delete init segments that no segment still fetchable refers to."""
        in_use = {s.init_generation for s in self.segments} | {s.init_generation for s in self._retired}
        for generation in [g for g in self._inits if g not in in_use and g != current]:
            self.store.delete(self._path(self._inits.pop(generation)))

    def _drop_parts(self, stored: _Stored) -> None:
        for part in stored.part_paths:
            self.store.delete(part)
        stored.part_paths = []

    # -- state for blocking requests -----------------------------------------------------------

    @property
    def last_msn(self) -> int | None:
        return self.segments[-1].msn if self.segments else None

    def _newest(self) -> tuple[int, int] | None:
        """(msn, part index) of the newest listed part; part -1 means "the whole segment"."""
        if self._pending_parts and self._open_msn is not None:
            return self._open_msn, len(self._pending_parts) - 1
        if self.segments:
            return self.segments[-1].msn, -1
        return None

    def has(self, msn: int, part: int | None) -> bool:
        """Whether the playlist already holds segment `msn` (or its part `part`), or later media.

        6.2.5.2: a request for a part index beyond the last part of a complete segment is "for
        the first Partial Segment of the following Parent Segment".
        """
        if self.segments and msn <= self.segments[-1].msn:
            if part is None:
                return True
            stored = self._find(msn)
            if stored is None or part < stored.part_count or not stored.part_count:
                return True  # a complete segment holds all of its parts
            return self.has(msn + 1, 0)
        newest = self._newest()
        if newest is None or part is None:
            return False
        return (msn, part) <= newest

    def _find(self, msn: int) -> _Stored | None:
        for stored in reversed(self.segments):
            if stored.msn == msn:
                return stored
            if stored.msn < msn:
                break
        return None

    @property
    def advance_part_limit(self) -> int:
        """6.2.5.2: "the Advance Part Limit is 3 divided by the Part Target Duration if the Part
        Target Duration is less than 1, or 3 otherwise"."""
        if self.part_target is None or self.part_target >= 1:
            return 3
        return int(3 / self.part_target + 1e-9)

    def check_request(self, msn: int, part: int | None) -> None:
        """6.2.5.2: refuse requests too far ahead of the live edge (400)."""
        if self.has(msn, part):
            return
        newest = self._newest()
        current = newest[0] if newest is not None else -1
        if msn > current + 2:
            raise PlaylistRequestError(
                f"_HLS_msn={msn} is more than two segments beyond the last one ({max(current, 0)})"
            )
        if part is None or newest is None:
            return
        limit = self.advance_part_limit
        # Parts ahead of the newest listed one: within its segment, or at least part + 1 into a
        # later segment (the current one still has parts to come).
        ahead = part - newest[1] if msn == newest[0] else part + 1
        if ahead > limit:
            raise PlaylistRequestError(
                f"_HLS_part={part} of segment {msn} is more than {limit} parts beyond the last one "
                f"(segment {newest[0]} part {newest[1]})"
            )

    @property
    def ended(self) -> bool:
        return self._ended

    async def wait_for_change(self) -> None:
        await self._changed.wait()

    def expected_part(self) -> str | None:
        """The name of the next part (the preload hint), if one is expected."""
        if self.part_target is None or self._ended or (not self.segments and self._open_msn is None):
            return None
        if self._open_msn is not None:
            return f"{self.session}-{self._open_msn}.{len(self._pending_parts)}.m4s"
        return f"{self.session}-{self.segments[-1].msn + 1}.0.m4s"

    def delta_playlist(self) -> bytes | None:
        """The Playlist Delta Update (`_HLS_skip=YES`), rendered at most once per change.

        6.2.5.1: an ended playlist (EXT-X-ENDLIST) is never sent as a delta update.
        """
        if self._ended:
            return self.playlist
        if self._delta is None and self.segments:
            self._delta = self._build(skip=True).render()
        return self._delta if self._delta is not None else self.playlist

    # -- output --------------------------------------------------------------------------------

    def _server_control(self) -> ServerControl | None:
        if not self.can_block_reload:
            return None
        # 4.4.3.8: HOLD-BACK "MUST be at least three times the Target Duration".
        if self.part_target is None:
            return ServerControl(can_block_reload=True, hold_back=3.0 * self.target_duration)
        return ServerControl(
            can_block_reload=True,
            # 4.4.3.8: PART-HOLD-BACK "MUST be at least twice the Part Target Duration" and
            # "SHOULD be at least three times"; HOLD-BACK "MUST be at least three times the
            # Target Duration"; CAN-SKIP-UNTIL "MUST be at least six times the Target Duration".
            part_hold_back=round(3 * self.part_target, 5),
            can_skip_until=6.0 * self.target_duration,
            hold_back=3.0 * self.target_duration,
        )

    def _skippable(self, control: ServerControl | None) -> int:
        """Segments that end more than CAN-SKIP-UNTIL before the end of the playlist."""
        if control is None or control.can_skip_until is None:
            return 0
        remaining = sum(s.duration for s in self.segments)
        skip = 0
        for stored in self.segments:
            remaining -= stored.duration
            if remaining < control.can_skip_until:
                break
            skip += 1
        return skip

    def _build(self, *, skip: bool) -> MediaPlaylist:
        control = self._server_control()
        low_latency = self.part_target is not None and not self._ended
        hint = self.expected_part() if low_latency else None
        reports: tuple[RenditionReport, ...] = ()
        if self.can_block_reload:  # 4.4.5.4: reports exist for blocking reloads on other variants
            reports = tuple(
                RenditionReport(f"../{peer.prefix}/{PLAYLIST_NAME}", *peer._report())
                for peer in self.peers
                if peer.segments
            )
        skipped = self._skippable(control) if skip else 0
        # The header's EXT-X-MAP is the init of the first segment listed after any skip.
        first_listed = self.segments[min(skipped, len(self.segments) - 1)]
        return MediaPlaylist(
            target_duration=self.target_duration,
            segments=tuple(s.model for s in self.segments),
            media_sequence=self.segments[0].msn,
            discontinuity_sequence=self._discontinuity_sequence,
            map_uri=self._inits.get(first_listed.init_generation) if self.container is Container.FMP4 else None,
            part_target=self.part_target,
            server_control=control,
            pending_parts=tuple(self._pending_parts) if low_latency else (),
            preload_hint=PreloadHint(hint) if hint is not None else None,
            rendition_reports=reports,
            endlist=self._ended,
            skip=skipped,
            parts_window=PARTS_WINDOW,
        )

    def _report(self) -> tuple[int, int | None]:
        """(LAST-MSN, LAST-PART) for other variants' rendition reports."""
        newest = self._newest()
        assert newest is not None
        msn, part = newest
        if part >= 0:
            return msn, part
        last = self.segments[-1]
        return msn, (last.part_count - 1 if last.part_count else None)

    def _render(self) -> None:
        if not self.segments:
            return  # parts of the very first segment: nothing to list before it completes
        body = self._build(skip=False).render()
        self.stream = self.variant_stream()
        self.playlist = body
        self._delta = None
        self.store.put(self._path(PLAYLIST_NAME), body, FileKind.PLAYLIST)
        # Wake everyone waiting for a newer playlist with one event, then arm the next one.
        self._changed.set()
        self._changed = asyncio.Event()

    def bandwidth(self) -> tuple[int, int]:
        """(peak, average) bits per second over the segments in the window."""
        rates = [s.size * 8 / s.duration for s in self.segments if s.duration > 0]
        if not rates:
            return 0, 0
        total_bits = sum(s.size * 8 for s in self.segments)
        total_seconds = sum(s.duration for s in self.segments)
        return round(max(rates)), round(total_bits / total_seconds)

    def variant_stream(self) -> VariantStream | None:
        if not self.segments:
            return None
        peak, average = self.bandwidth()
        codecs = [config.codecs for track, config in sorted(self.tracks.items()) if config.codecs]
        resolution: tuple[int, int] | None = None
        frame_rate: float | None = None
        video = self.tracks.get(Track.VIDEO)
        if video is not None:
            try:
                width, height, fps = video_dimensions(video.codec, video.config)
            except Exception:  # a parameter set we cannot read only costs the attributes
                log.warning("variant %d: cannot read the video dimensions from the codec configuration", self.index)
                width, height, fps = video.width, video.height, None
            resolution = (width, height) if width and height else None
            frame_rate = fps
        return VariantStream(
            f"{self.prefix}/{PLAYLIST_NAME}",
            peak,
            average_bandwidth=average,
            codecs=",".join(codecs),
            resolution=resolution,
            frame_rate=frame_rate,
            name=self.name,
        )


class HlsOutput:
    """Every variant of the stream, and the multivariant playlist that lists them."""

    def __init__(
        self, store: HlsStore, variants: list[LiveVariant], *, base_url: str = "", serve_media: bool = True
    ) -> None:
        self.store = store
        # Owncast's video serving endpoint (a CDN in front of us) and S3 mode: the multivariant
        # playlist, still served here, points at absolute variant URLs there.
        self.base_url = base_url
        # S3 mode: players read media playlists and segments from the bucket, not from here.
        self.serve_media = serve_media
        self.variants: list[LiveVariant] = []
        self._by_name: dict[str, LiveVariant] = {}
        self._rendered: tuple[tuple[VariantStream, ...], bytes] | None = None
        for variant in variants:
            self.add(variant)

    def add(self, variant: LiveVariant) -> None:
        for other in self.variants:
            other.peers.append(variant)
            variant.peers.append(other)
        self.variants.append(variant)
        self._by_name[variant.prefix] = variant

    def variant(self, name: str) -> LiveVariant | None:
        return self._by_name.get(name)

    def discard_variants(self) -> None:
        """Forget every variant and delete its files (the variants are being rebuilt)."""
        for variant in self.variants:
            variant.discard()
        self.variants = []
        self._by_name = {}
        self._rendered = None

    def multivariant(self) -> bytes | None:
        """Rendered again only when a variant's entry changed (read on Robyn's threads)."""
        streams = tuple(v.stream for v in self.variants if v.stream is not None)
        if not streams:
            return None
        rendered = self._rendered
        if rendered is not None and rendered[0] == streams:
            return rendered[1]
        listed = streams
        if self.base_url:
            listed = tuple(dataclasses.replace(s, uri=f"{self.base_url}/{s.uri}") for s in streams)
        body = MultivariantPlaylist(listed).render()
        self._rendered = (streams, body)
        return body
