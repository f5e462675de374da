"""HLS playlists as typed values, rendered to bytes (draft-pantos-hls-rfc8216bis, LL-HLS included).

Theory of operation. The live state rebuilds a `MediaPlaylist` every time a part or segment
lands (several times a second with LL-HLS) and renders it once per change, so rendering is a
join of strings that were formatted earlier:

* each `PartialSegment` and `MediaSegment` formats its own lines once, when it is created; the
  live state keeps the same segment objects from one playlist to the next, so a segment's
  EXTINF, date and part lines are formatted once in its lifetime;
* a `MediaPlaylist` validates the rules below and formats its header when it is created;
  `render()` only picks the cached strings (with or without part lines) and joins them.

Rules the models enforce raise ValueError at construction: a playlist that breaks a MUST of the
draft is a bug in whoever built it, and clients "MUST fail to parse" such playlists (section 4).

EXT-X-PROGRAM-DATE-TIME: written for every segment that carries a date. The live state dates
every segment, as Owncast's ffmpeg (`-hls_flags program_date_time`) does. The draft asks for a
date on each segment after a discontinuity (6.2.1) and lets clients extrapolate the rest, but a
date on every segment keeps each segment's text independent of its neighbours (so it can be
cached), keeps the mapping exact after segments slide out or are skipped in a delta update, and
costs ~45 bytes per segment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime

# 4.2: "The following characters MUST NOT appear in a quoted-string: line feed (0xA), carriage
# return (0xD), or double quote (0x22). The string MUST be non-empty, unless specifically allowed."
# 4.1: "Playlist files MUST NOT contain UTF-8 control characters (U+0000 to U+001F and U+007F to
# U+009F), with the exceptions of CR (U+000D) and LF (U+000A)." URI lines and titles are checked
# the same way (no control characters, so no line breaks either).


def _check_quoted(value: str, what: str) -> None:
    if not value or '"' in value or not value.isprintable():
        raise ValueError(
            f"{what} {value!r} is not a valid quoted-string (empty, a double quote or a control character)"
        )


def _check_uri_line(value: str, what: str) -> None:
    if not value or value[0] == "#" or not value.isprintable():
        raise ValueError(f"{what} {value!r} is not a valid URI line (empty, starts with '#' or a control character)")


def _check_seconds(value: float, what: str) -> None:
    # 4.2: decimal-floating-point "expresses a non-negative floating-point number".
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{what} {value!r} is not a non-negative number of seconds")


def _seconds(value: float) -> str:
    """A decimal-floating-point attribute value with up to 5 decimals and at least one: 1.0, 0.33334."""
    text = f"{value:.5f}".rstrip("0")
    return text + "0" if text[-1] == "." else text


def _program_date_time(moment: datetime) -> str:
    """4.4.4.6: ISO 8601 "such as YYYY-MM-DDThh:mm:ss.SSSZ. It SHOULD indicate a time zone and
    fractional parts of seconds, to at least millisecond accuracy." UTC with milliseconds and Z."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"program date-time {moment!r} has no time zone")
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def minimum_target_duration(durations: Iterable[float]) -> int:
    """The smallest EXT-X-TARGETDURATION that the EXTINF values as rendered (3 decimals) allow.

    4.4.3.1: "The EXTINF duration of each Media Segment in a Playlist file, when rounded to the
    nearest integer, MUST be less than or equal to the Target Duration. [...] Its value MUST be at
    least 1." Rounding, not ceiling: a 3.0004 s segment keeps a 3 s target. 6.2.1 forbids changing
    the target during a stream, so the live state picks it once with headroom for late keyframes.
    """
    return max(1, max((_round_half_up(round(d, 3)) for d in durations), default=1))


def _part_duration_bounds(parts: tuple[PartialSegment, ...]) -> tuple[float, float]:
    """(longest duration, shortest duration of the parts that 4.4.4.9's 85% floor applies to), as rendered.

    The floor exempts parts "with the INDEPENDENT=YES or GAP=YES attribute, Partial Segments that
    are immediately followed by a Partial Segment with a GAP=YES attribute, and the final Partial
    Segment of any Parent Segment".
    """
    longest = max((part._rounded_duration for part in parts), default=0.0)
    last = len(parts) - 1
    shortest = min(
        (
            part._rounded_duration
            for i, part in enumerate(parts)
            if i != last and not part.independent and not part.gap and not parts[i + 1].gap
        ),
        default=math.inf,
    )
    return longest, shortest


def _check_part_durations(parts: tuple[PartialSegment, ...], longest: float, shortest: float) -> None:
    """Names the first part outside [shortest, longest] (floor exemptions as in _part_duration_bounds)."""
    last = len(parts) - 1
    for i, part in enumerate(parts):
        duration = part._rounded_duration
        if duration > longest:
            raise ValueError(f"part {part.uri} lasts {duration:.5f} s, above the part target {longest:.5f} s")
        if duration < shortest and i != last and not part.independent and not part.gap and not parts[i + 1].gap:
            raise ValueError(f"part {part.uri} lasts {duration:.5f} s, below 85% of the part target ({shortest:.5f} s)")


@dataclass(frozen=True, slots=True)
class PartialSegment:
    """One EXT-X-PART (4.4.4.9): DURATION with 5 decimals, INDEPENDENT=YES when it starts with a keyframe."""

    uri: str
    duration: float
    independent: bool
    gap: bool = False
    _line: str = field(init=False, repr=False, compare=False)
    _rounded_duration: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_quoted(self.uri, "part URI")
        _check_seconds(self.duration, "part duration")
        object.__setattr__(self, "_rounded_duration", round(self.duration, 5))
        line = f'#EXT-X-PART:DURATION={self.duration:.5f},URI="{self.uri}"'
        if self.independent:
            line += ",INDEPENDENT=YES"
        if self.gap:
            # 4.4.4.9: GAP "is REQUIRED for such Partial Segments" (those not available).
            line += ",GAP=YES"
        object.__setattr__(self, "_line", line + "\n")


@dataclass(frozen=True, slots=True)
class MediaSegment:
    """One Media Segment with the tags that apply only to it, and its parts (for the live edge)."""

    uri: str
    duration: float
    _: KW_ONLY
    title: str = ""
    program_date_time: datetime | None = None
    discontinuity: bool = False
    parts: tuple[PartialSegment, ...] = ()
    gap: bool = False
    # An EXT-X-MAP starting at this segment (a new init segment after a discontinuity). 4.4.4.5:
    # "It applies to every Media Segment that appears after it in the Playlist until the next
    # EXT-X-MAP tag or until the end of the Playlist."
    map_uri: str | None = None
    _with_parts: str = field(init=False, repr=False, compare=False)
    _without_parts: str = field(init=False, repr=False, compare=False)
    _rounded_duration: int = field(init=False, repr=False, compare=False)
    _part_bounds: tuple[float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_uri_line(self.uri, "segment URI")
        _check_seconds(self.duration, "segment duration")
        if self.title and not self.title.isprintable():
            raise ValueError(f"segment title {self.title!r} contains a control character")
        head = "#EXT-X-DISCONTINUITY\n" if self.discontinuity else ""
        if self.map_uri is not None:
            _check_quoted(self.map_uri, "EXT-X-MAP URI")
            head += f'#EXT-X-MAP:URI="{self.map_uri}"\n'
        if self.program_date_time is not None:
            head += f"#EXT-X-PROGRAM-DATE-TIME:{_program_date_time(self.program_date_time)}\n"
        # 4.4.4.1: EXTINF "is REQUIRED for each Media Segment"; 3 decimals keep accumulated error
        # below a millisecond per segment ("enough accuracy to avoid perceptible error").
        extinf = f"{self.duration:.3f}"
        tail = f"#EXTINF:{extinf},{self.title}\n{self.uri}\n"
        if self.gap:
            tail = "#EXT-X-GAP\n" + tail
        # 4.4.4.9: DISCONTINUITY, KEY, MAP and PROGRAM-DATE-TIME "MUST appear before the first
        # EXT-X-PART tag of that Parent Segment"; the parts precede the segment's URI (3.2).
        object.__setattr__(self, "_with_parts", head + "".join([part._line for part in self.parts]) + tail)
        object.__setattr__(self, "_without_parts", head + tail)
        object.__setattr__(self, "_rounded_duration", _round_half_up(float(extinf)))
        object.__setattr__(self, "_part_bounds", _part_duration_bounds(self.parts))


_PRELOAD_TYPES = frozenset({"PART", "MAP"})


@dataclass(frozen=True, slots=True)
class PreloadHint:
    """EXT-X-PRELOAD-HINT (4.4.5.3): the resource a client may request before it exists."""

    uri: str
    type: str = "PART"
    byterange_start: int | None = None

    def __post_init__(self) -> None:
        if self.type not in _PRELOAD_TYPES:
            raise ValueError(f"preload hint TYPE {self.type!r} is not PART or MAP")
        _check_quoted(self.uri, "preload hint URI")
        if self.byterange_start is not None and self.byterange_start < 0:
            raise ValueError(f"preload hint BYTERANGE-START {self.byterange_start} is negative")

    def line(self) -> str:
        text = f'#EXT-X-PRELOAD-HINT:TYPE={self.type},URI="{self.uri}"'
        # "BYTERANGE-START [...] absence implies 0": omitted when 0.
        if self.byterange_start:
            text += f",BYTERANGE-START={self.byterange_start}"
        return text + "\n"


@dataclass(frozen=True, slots=True)
class RenditionReport:
    """EXT-X-RENDITION-REPORT (4.4.5.4) about another variant's media playlist.

    "URI [...] MUST be relative to the URI of the Media Playlist containing the
    EXT-X-RENDITION-REPORT tag", e.g. "../1/stream.m3u8". LAST-PART "is REQUIRED if the Rendition
    contains a Partial Segment"; None omits it.
    """

    uri: str
    last_msn: int
    last_part: int | None = None

    def __post_init__(self) -> None:
        _check_quoted(self.uri, "rendition report URI")
        if self.last_msn < 0 or (self.last_part is not None and self.last_part < 0):
            raise ValueError(f"rendition report LAST-MSN {self.last_msn} / LAST-PART {self.last_part} is negative")

    def line(self) -> str:
        text = f'#EXT-X-RENDITION-REPORT:URI="{self.uri}",LAST-MSN={self.last_msn}'
        if self.last_part is not None:
            text += f",LAST-PART={self.last_part}"
        return text + "\n"


@dataclass(frozen=True, slots=True)
class ServerControl:
    """EXT-X-SERVER-CONTROL (4.4.3.8); the bounds that involve the target durations are checked by
    `MediaPlaylist`, which knows them."""

    _: KW_ONLY
    can_block_reload: bool = False
    part_hold_back: float | None = None
    can_skip_until: float | None = None
    can_skip_dateranges: bool = False
    hold_back: float | None = None

    def __post_init__(self) -> None:
        for name in ("part_hold_back", "can_skip_until", "hold_back"):
            value = getattr(self, name)
            if value is not None:
                _check_seconds(value, name)
        # CAN-SKIP-DATERANGES: "It REQUIRES the presence of the CAN-SKIP-UNTIL attribute."
        if self.can_skip_dateranges and self.can_skip_until is None:
            raise ValueError("CAN-SKIP-DATERANGES requires CAN-SKIP-UNTIL")

    def line(self) -> str:
        attributes = []
        if self.can_block_reload:
            attributes.append("CAN-BLOCK-RELOAD=YES")
        if self.can_skip_until is not None:
            attributes.append(f"CAN-SKIP-UNTIL={_seconds(self.can_skip_until)}")
        if self.can_skip_dateranges:
            attributes.append("CAN-SKIP-DATERANGES=YES")
        if self.hold_back is not None:
            attributes.append(f"HOLD-BACK={_seconds(self.hold_back)}")
        if self.part_hold_back is not None:
            attributes.append(f"PART-HOLD-BACK={_seconds(self.part_hold_back)}")
        return f"#EXT-X-SERVER-CONTROL:{','.join(attributes)}\n"


_PLAYLIST_TYPES = frozenset({"EVENT", "VOD"})
# Section 8: the lowest compatibility version each feature we write needs.
_VERSION_FLOAT_EXTINF = 3  # "Floating-point EXTINF duration values" need 3 or higher.
_VERSION_MAP = 6  # "EXT-X-MAP in a Media Playlist that DOES NOT contain EXT-X-I-FRAMES-ONLY" needs 6.
_VERSION_SKIP = 9  # "A Playlist MUST indicate an EXT-X-VERSION of 9 or higher if it contains [...] EXT-X-SKIP".


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    """A Media Playlist (4.4.3), live or finished, optionally low-latency and/or a delta update.

    `segments` are the complete segments in order; `media_sequence` is the Media Sequence Number of
    the first of them and `discontinuity_sequence` its Discontinuity Sequence Number. For LL-HLS,
    `pending_parts` are the parts of the segment still being built (rendered after the last
    segment), and EXT-X-PART lines are rendered for the last `parts_window` segments only (6.2.2:
    parts "SHOULD be removed from the Playlist after they are greater than three Target Durations
    from the end"). `skip` > 0 renders a Playlist Delta Update (6.2.5.1): the first `skip`
    segments are replaced by EXT-X-SKIP, and EXT-X-MEDIA-SEQUENCE still numbers the first segment
    overall. `version` is computed: the lowest EXT-X-VERSION the content needs (section 8).
    """

    _: KW_ONLY
    target_duration: int
    segments: tuple[MediaSegment, ...] = ()
    media_sequence: int = 0
    discontinuity_sequence: int = 0
    map_uri: str | None = None
    independent_segments: bool = True
    part_target: float | None = None
    server_control: ServerControl | None = None
    pending_parts: tuple[PartialSegment, ...] = ()
    preload_hint: PreloadHint | None = None
    rendition_reports: tuple[RenditionReport, ...] = ()
    endlist: bool = False
    playlist_type: str | None = None
    skip: int = 0
    parts_window: int = 3
    _header: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_structure()
        self._check_parts()
        lines = [
            "#EXTM3U\n",
            # 4.4.1.2: EXT-X-VERSION "MUST appear in all Playlists containing tags or attributes
            # that are not compatible with protocol version 1"; floating EXTINF always are.
            f"#EXT-X-VERSION:{self.version}\n",
            f"#EXT-X-TARGETDURATION:{self.target_duration}\n",
            # 4.4.3.2 / 4.4.3.3: both "MUST appear before the first Media Segment", and the
            # discontinuity sequence "before any EXT-X-DISCONTINUITY tag"; without it the first
            # segment's Discontinuity Sequence Number "SHALL be considered to be 0".
            f"#EXT-X-MEDIA-SEQUENCE:{self.media_sequence}\n",
        ]
        if self.discontinuity_sequence:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_sequence}\n")
        if self.playlist_type is not None:
            lines.append(f"#EXT-X-PLAYLIST-TYPE:{self.playlist_type}\n")
        if self.independent_segments:
            lines.append("#EXT-X-INDEPENDENT-SEGMENTS\n")
        if self.server_control is not None:
            lines.append(self.server_control.line())
        if self.part_target is not None:
            lines.append(f"#EXT-X-PART-INF:PART-TARGET={_seconds(self.part_target)}\n")
        if self.map_uri is not None:
            lines.append(f'#EXT-X-MAP:URI="{self.map_uri}"\n')
        if self.skip:
            # 4.4.5.2: "the EXT-X-SKIP tag replaces the segment URI lines and all Media Segment Tags
            # that are applied to those segments"; EXT-X-MAP applies to later segments too, so it
            # stays ("All tags that were not skipped MUST remain in the Playlist Delta Update").
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={self.skip}\n")
        object.__setattr__(self, "_header", "".join(lines))

    @property
    def version(self) -> int:
        if self.skip:
            return _VERSION_SKIP
        if self.map_uri is not None:
            return _VERSION_MAP
        return _VERSION_FLOAT_EXTINF

    def _check_structure(self) -> None:
        target = self.target_duration
        # 4.4.3.1: the Target Duration's "value MUST be at least 1".
        if target < 1:
            raise ValueError(f"target duration {target} is below 1")
        if self.media_sequence < 0 or self.discontinuity_sequence < 0:
            raise ValueError(
                f"media sequence {self.media_sequence} / discontinuity sequence "
                f"{self.discontinuity_sequence} is negative"
            )
        # 4.4.3.1: "The EXTINF duration of each Media Segment in a Playlist file, when rounded to
        # the nearest integer, MUST be less than or equal to the Target Duration."
        for segment in self.segments:
            if segment._rounded_duration > target:
                raise ValueError(
                    f"segment {segment.uri} lasts {segment.duration:.3f} s, which rounds above "
                    f"the target duration of {target} s"
                )
        if self.map_uri is not None:
            _check_quoted(self.map_uri, "EXT-X-MAP URI")
        if self.playlist_type is not None and self.playlist_type not in _PLAYLIST_TYPES:
            raise ValueError(f"playlist type {self.playlist_type!r} is not EVENT or VOD")
        # 6.2.1: "An EXT-X-PLAYLIST-TYPE tag with a value of VOD indicates that the Playlist file
        # MUST NOT change", and "If the Media Playlist contains the final Media Segment of the
        # presentation, then the Playlist file MUST contain the EXT-X-ENDLIST tag".
        if self.playlist_type == "VOD" and not self.endlist:
            raise ValueError("a VOD playlist must end with EXT-X-ENDLIST")
        # 4.4.5.3: "A Playlist containing an EXT-X-ENDLIST tag MUST NOT contain an
        # EXT-X-PRELOAD-HINT tag."
        if self.endlist and (self.preload_hint is not None or self.pending_parts):
            raise ValueError("a playlist with EXT-X-ENDLIST cannot hint or hold parts of an unfinished segment")
        control = self.server_control
        if control is not None:
            # 4.4.3.8: HOLD-BACK "MUST be at least three times the Target Duration"; the Skip
            # Boundary "MUST be at least six times the Target Duration".
            if control.hold_back is not None and control.hold_back < 3 * target:
                raise ValueError(f"HOLD-BACK {control.hold_back} is below three target durations ({3 * target})")
            if control.can_skip_until is not None and control.can_skip_until < 6 * target:
                raise ValueError(
                    f"CAN-SKIP-UNTIL {control.can_skip_until} is below six target durations ({6 * target})"
                )
        if self.skip:
            self._check_skip()
        if self.parts_window < 0:
            raise ValueError(f"parts window {self.parts_window} is negative")

    def _check_skip(self) -> None:
        control = self.server_control
        if self.skip < 0 or self.skip > len(self.segments):
            raise ValueError(f"cannot skip {self.skip} of {len(self.segments)} segments")
        # 6.2.5.1: "A Server MUST ignore the _HLS_skip directive if the Playlist does not contain
        # the CAN-SKIP-UNTIL attribute, or if it contains an EXT-X-ENDLIST tag."
        if control is None or control.can_skip_until is None:
            raise ValueError("a delta update needs EXT-X-SERVER-CONTROL with CAN-SKIP-UNTIL")
        if self.endlist:
            raise ValueError("a playlist with EXT-X-ENDLIST is never sent as a delta update")
        # 6.2.5.1: only "Media Segments that are further from the end of the last (Parent) Media
        # Segment in the Playlist than the Skip Boundary" are replaced: every skipped segment must
        # end at least CAN-SKIP-UNTIL seconds before the end of the last segment.
        kept = sum(segment.duration for segment in self.segments[self.skip :])
        if kept < control.can_skip_until:
            raise ValueError(
                f"skipping {self.skip} segments keeps {kept:.3f} s, less than the skip boundary "
                f"of {control.can_skip_until} s"
            )

    def _check_parts(self) -> None:
        window = self._segments_with_parts()
        has_parts = bool(self.pending_parts) or any(segment.parts for segment in window)
        part_target = self.part_target
        if part_target is None:
            # 4.4.3.7: EXT-X-PART-INF "is REQUIRED if a Playlist contains one or more EXT-X-PART tags".
            if has_parts:
                raise ValueError("a playlist with EXT-X-PART lines needs a part target (EXT-X-PART-INF)")
            return
        _check_seconds(part_target, "part target")
        if part_target <= 0:
            raise ValueError("the part target must be positive")
        # 4.4.3.8: "PART-HOLD-BACK is REQUIRED if the Playlist contains the EXT-X-PART-INF tag";
        # its "value MUST be at least twice the Part Target Duration".
        control = self.server_control
        if control is None or control.part_hold_back is None:
            raise ValueError("a playlist with EXT-X-PART-INF needs PART-HOLD-BACK in EXT-X-SERVER-CONTROL")
        if control.part_hold_back < 2 * part_target:
            raise ValueError(
                f"PART-HOLD-BACK {control.part_hold_back} is below twice the part target ({2 * part_target})"
            )
        # 4.4.4.9: "The duration of a Partial Segment MUST be less than or equal to the Part Target
        # Duration. The duration of each Partial Segment MUST be at least 85% of the Part Target
        # Duration, with the exception of Partial Segments with the INDEPENDENT=YES or GAP=YES
        # attribute, Partial Segments that are immediately followed by a Partial Segment with a
        # GAP=YES attribute, and the final Partial Segment of any Parent Segment." Durations are
        # compared as rendered (5 decimals), each segment's bounds worked out once when it was made.
        # The last pending part is exempt too: it is final if the next keyframe closes its segment,
        # which is not known yet.
        longest = round(part_target, 5)
        shortest = round(0.85 * part_target, 5)
        for segment in window:
            segment_longest, segment_shortest = segment._part_bounds
            if segment_longest > longest or segment_shortest < shortest:
                _check_part_durations(segment.parts, longest, shortest)
        _check_part_durations(self.pending_parts, longest, shortest)

    def _segments_with_parts(self) -> tuple[MediaSegment, ...]:
        start = max(self.skip, len(self.segments) - self.parts_window)
        return self.segments[start:]

    def render(self) -> bytes:
        segments = self.segments
        count = len(segments)
        first_with_parts = count - self.parts_window
        out = [self._header]
        for index in range(self.skip, count):
            segment = segments[index]
            out.append(segment._with_parts if index >= first_with_parts else segment._without_parts)
        for part in self.pending_parts:
            out.append(part._line)
        if self.preload_hint is not None:
            out.append(self.preload_hint.line())
        for report in self.rendition_reports:
            out.append(report.line())
        if self.endlist:
            out.append("#EXT-X-ENDLIST\n")
        return "".join(out).encode()


@dataclass(frozen=True, slots=True)
class VariantStream:
    """One EXT-X-STREAM-INF (4.4.6.2) and the media playlist URI that follows it.

    `name` becomes a NAME attribute, which the draft does not define: conforming clients "ignore
    any other attribute/value pair with an unrecognized AttributeName" (6.3.1), and hls.js shows it
    as the quality level's name. `codecs` "" omits CODECS, which every tag SHOULD carry.
    """

    uri: str
    bandwidth: int
    _: KW_ONLY
    average_bandwidth: int | None = None
    codecs: str = ""
    resolution: tuple[int, int] | None = None
    frame_rate: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        _check_uri_line(self.uri, "variant URI")
        if self.bandwidth < 0 or (self.average_bandwidth is not None and self.average_bandwidth < 0):
            raise ValueError(f"BANDWIDTH {self.bandwidth} / AVERAGE-BANDWIDTH {self.average_bandwidth} is negative")
        if self.codecs:
            _check_quoted(self.codecs, "CODECS")
        if self.name:
            _check_quoted(self.name, "NAME")
        if self.resolution is not None and min(self.resolution) < 0:
            raise ValueError(f"RESOLUTION {self.resolution} is negative")
        if self.frame_rate is not None:
            _check_seconds(self.frame_rate, "FRAME-RATE")

    def lines(self) -> str:
        # 4.4.6.2: "Every EXT-X-STREAM-INF tag MUST include the BANDWIDTH attribute."
        attributes = [f"BANDWIDTH={self.bandwidth}"]
        if self.average_bandwidth is not None:
            attributes.append(f"AVERAGE-BANDWIDTH={self.average_bandwidth}")
        if self.resolution is not None:
            attributes.append(f"RESOLUTION={self.resolution[0]}x{self.resolution[1]}")
        if self.frame_rate is not None:
            # FRAME-RATE: "the maximum frame rate [...], rounded to three decimal places".
            attributes.append(f"FRAME-RATE={self.frame_rate:.3f}")
        if self.codecs:
            attributes.append(f'CODECS="{self.codecs}"')
        if self.name:
            attributes.append(f'NAME="{self.name}"')
        return f"#EXT-X-STREAM-INF:{','.join(attributes)}\n{self.uri}\n"


@dataclass(frozen=True, slots=True)
class MultivariantPlaylist:
    """The Multivariant Playlist (4.4.6) listing every variant's media playlist.

    `version` defaults to 3, what Owncast's ffmpeg writes; nothing here needs more than 1.
    """

    variants: tuple[VariantStream, ...]
    _: KW_ONLY
    independent_segments: bool = True
    version: int = 3

    def __post_init__(self) -> None:
        # 4.1: "A Multivariant Playlist contains at least one of the Multivariant Playlist Tags".
        if not self.variants:
            raise ValueError("a multivariant playlist needs at least one variant")
        if self.version < 1:
            raise ValueError(f"EXT-X-VERSION {self.version} is below 1")

    def render(self) -> bytes:
        out = ["#EXTM3U\n", f"#EXT-X-VERSION:{self.version}\n"]
        if self.independent_segments:
            out.append("#EXT-X-INDEPENDENT-SEGMENTS\n")
        out.extend(variant.lines() for variant in self.variants)
        return "".join(out).encode()
