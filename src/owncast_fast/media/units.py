"""The unit of media that flows from ingest to the segmenter and the transcoder.

Times are integers in the MPEG 90 kHz clock (`TIMESCALE`): RTMP milliseconds convert exactly
(x90), and it is the clock MPEG-TS and our fMP4 video tracks use, so no unit is rounded twice.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

from owncast_fast._native.flv import PayloadView

TIMESCALE = 90_000
MS_TO_TICKS = TIMESCALE // 1000


class Track(IntEnum):
    VIDEO = 0
    AUDIO = 1


# Per-frame code compares with these module constants: looking a member up on its Enum class
# costs ~0.1 µs each time.
VIDEO, AUDIO = Track.VIDEO, Track.AUDIO


class AccessUnit(NamedTuple):
    """One coded frame of one track (immutable).

    `data` holds the frame as the source delivered it: length-prefixed NAL units for
    AVC/HEVC (AVCC layout, prefix size from the track's decoder configuration), OBUs for
    AV1, raw AAC frames (no ADTS header) for audio. From RTMP ingest it is a read-only
    `PayloadView` of the message's bytes (the FLV parser copies nothing); from encoders,
    bytes. Consumers take it through the buffer protocol (len, slicing, `bytes(...)`,
    `av.Packet`, the muxers), never with bytes-only methods.

    A NamedTuple rather than a frozen dataclass: one is made per frame, and a frozen dataclass
    sets each field through `object.__setattr__` (1.2 µs against 0.45 µs here).
    """

    track: Track
    dts: int
    pts: int
    keyframe: bool
    data: bytes | memoryview | PayloadView
