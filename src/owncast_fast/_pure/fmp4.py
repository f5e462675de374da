"""Pure-Python twin of the fMP4/CMAF half of `owncast_fast._native.segmenter`.

Same API, same bytes, same error messages as the Cython code in `ext/fmp4.pxi`; used only by the
differential tests and the benchmarks. The theory of operation and the spec quotations (ISO/IEC
14496-12, -14, -15 and the CMAF rules) are written once, above the Cython code; this module takes
the same steps in the same order so that both raise the same error for the same call.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass

from owncast_fast.errors import ProtocolError

_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFFFFFF
_I32_MIN = -0x80000000
_I32_MAX = 0x7FFFFFFF
_I64_MAX = 0x7FFFFFFFFFFFFFFF
_MAX_CONFIG = 1 << 20  # see ext/fmp4.pxi
_MAX_PENDING_SAMPLES = 1 << 16
_MAX_PENDING_BYTES = 1 << 28

_CODEC_KINDS = {"avc1": "video", "hvc1": "video", "av01": "video", "vp09": "video", "mp4a": "audio"}
_CONFIG_BOXES = {"avc1": b"avcC", "hvc1": b"hvcC", "av01": b"av1C"}

_SYNC_FLAGS = 0x02000000  # sample_depends_on = 2
_NON_SYNC_FLAGS = 0x01010000  # sample_depends_on = 1, sample_is_non_sync_sample = 1
_TRUN_FLAGS = 0x000701  # data-offset, sample-duration, sample-size, sample-flags
_TRUN_OFFSETS_FLAG = 0x000800  # sample-composition-time-offsets-present
_BASE_IS_MOOF = 0x020000
_UNITY_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
_LANGUAGE_UND = 0x55C4


def _box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24 | flags), *payload)


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"fMP4: {name} {value} is out of range ({low}..{high})")


@dataclass(frozen=True, slots=True)
class Fmp4Track:
    """One track of an fMP4 rendition: what the init segment describes and fragments refer to."""

    track_id: int
    kind: str
    codec: str
    config: bytes
    timescale: int
    _: KW_ONLY
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    channels: int = 0

    def __post_init__(self) -> None:
        _check_range("track id", self.track_id, 1, _U32_MAX)
        if self.kind not in ("video", "audio"):
            raise ValueError(f"fMP4: unknown track kind {self.kind!r}")
        if self.codec not in _CODEC_KINDS:
            raise ValueError(f"fMP4: unknown codec {self.codec!r}")
        if _CODEC_KINDS[self.codec] != self.kind:
            raise ValueError(f"fMP4: codec {self.codec!r} is not a {self.kind} codec")
        _check_range("timescale", self.timescale, 1, _U32_MAX)
        _check_range("width", self.width, 0, _U16_MAX)
        _check_range("height", self.height, 0, _U16_MAX)
        _check_range("sample rate", self.sample_rate, 0, _U32_MAX)
        _check_range("channels", self.channels, 0, _U16_MAX)
        if self.kind == "audio" and self.sample_rate == 0:
            raise ValueError(f"fMP4: audio track {self.track_id} needs a sample rate")
        config = bytes(memoryview(self.config))
        if len(config) > _MAX_CONFIG:
            raise ValueError(
                f"fMP4: codec configuration of {len(config)} bytes is above the limit of {_MAX_CONFIG} bytes"
            )
        object.__setattr__(self, "config", config)


def _checked_tracks(tracks: Iterable[Fmp4Track]) -> list[Fmp4Track]:
    checked = list(tracks)
    if not checked:
        raise ValueError("fMP4: no tracks")
    seen: set[int] = set()
    for track in checked:
        if not isinstance(track, Fmp4Track):
            raise TypeError(f"fMP4: expected Fmp4Track, got {type(track).__name__}")
        if track.track_id in seen:
            raise ValueError(f"fMP4: duplicate track id {track.track_id}")
        seen.add(track.track_id)
    return checked


# --- init segment -------------------------------------------------------------------------------


def _descriptor(tag: int, body: bytes) -> bytes:
    size = len(body)
    length = bytearray((size & 0x7F,))
    size >>= 7
    while size:
        length.insert(0, 0x80 | (size & 0x7F))
        size >>= 7
    return bytes((tag,)) + bytes(length) + body


def _esds(audio_specific_config: bytes) -> bytes:
    decoder_config = _descriptor(
        0x04,
        b"\x40\x15" + bytes(11) + _descriptor(0x05, audio_specific_config),
    )
    es = _descriptor(0x03, b"\x00\x00\x00" + decoder_config + _descriptor(0x06, b"\x02"))
    return _full_box(b"esds", 0, 0, es)


def _sample_entry(track: Fmp4Track) -> bytes:
    head = bytes(6) + struct.pack(">H", 1)
    if track.kind == "audio":
        rate = track.sample_rate if track.sample_rate <= _U16_MAX else 0
        return _box(
            b"mp4a",
            head,
            bytes(8),
            struct.pack(">HHHHI", track.channels, 16, 0, 0, rate << 16),
            _esds(track.config),
        )
    if track.codec == "vp09":
        config = _full_box(b"vpcC", 1, 0, track.config)
    else:
        config = _box(_CONFIG_BOXES[track.codec], track.config)
    return _box(
        track.codec.encode(),
        head,
        bytes(16),
        struct.pack(">HHIIIH", track.width, track.height, 0x00480000, 0x00480000, 0, 1),
        bytes(32),
        struct.pack(">Hh", 0x0018, -1),
        config,
    )


def _trak(track: Fmp4Track) -> bytes:
    video = track.kind == "video"
    tkhd = _full_box(
        b"tkhd",
        0,
        0x000003,
        struct.pack(">IIIII", 0, 0, track.track_id, 0, 0),
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0 if video else 0x0100, 0),
        _UNITY_MATRIX,
        struct.pack(">II", track.width << 16, track.height << 16),
    )
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, track.timescale, 0, _LANGUAGE_UND, 0))
    hdlr = _full_box(
        b"hdlr",
        0,
        0,
        struct.pack(">I4s", 0, b"vide" if video else b"soun"),
        bytes(12),
        b"VideoHandler\0" if video else b"SoundHandler\0",
    )
    media_header = _full_box(b"vmhd", 0, 1, bytes(8)) if video else _full_box(b"smhd", 0, 0, bytes(4))
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1)))
    stbl = _box(
        b"stbl",
        _full_box(b"stsd", 0, 0, struct.pack(">I", 1), _sample_entry(track)),
        _full_box(b"stts", 0, 0, bytes(4)),
        _full_box(b"stsc", 0, 0, bytes(4)),
        _full_box(b"stsz", 0, 0, bytes(8)),
        _full_box(b"stco", 0, 0, bytes(4)),
    )
    return _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, _box(b"minf", media_header, dinf, stbl)))


def init_segment(tracks: Iterable[Fmp4Track]) -> bytes:
    """ftyp + moov describing `tracks`, in order; the EXT-X-MAP of every fragment that follows."""
    checked = _checked_tracks(tracks)
    brands = [b"iso6", b"cmfc", b"mp41"] if len(checked) == 1 else [b"iso6", b"mp41"]
    ftyp = _box(b"ftyp", b"iso6", struct.pack(">I", 0), *brands)
    next_track_id = min(max(track.track_id for track in checked) + 1, _U32_MAX)
    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIIIIhH", 0, 0, 1000, 0, 0x00010000, 0x0100, 0),
        bytes(8),
        _UNITY_MATRIX,
        bytes(24),
        struct.pack(">I", next_track_id),
    )
    mvex = _box(
        b"mvex",
        *(
            _full_box(
                b"trex",
                0,
                0,
                struct.pack(
                    ">IIIII",
                    track.track_id,
                    1,
                    0,
                    0,
                    _NON_SYNC_FLAGS if track.kind == "video" else _SYNC_FLAGS,
                ),
            )
            for track in checked
        ),
    )
    return ftyp + _box(b"moov", mvhd, *(_trak(track) for track in checked), mvex)


# --- fragments ----------------------------------------------------------------------------------


class _TrackState:
    """A track's samples waiting for the next flush, and what carries over between flushes."""

    __slots__ = (
        "data",
        "default_duration",
        "dts",
        "flags",
        "last_dts",
        "last_duration",
        "nonzero_offsets",
        "offsets",
        "sizes",
        "track_id",
    )

    def __init__(self, track: Fmp4Track) -> None:
        self.track_id = track.track_id
        self.default_duration = 1024 if track.codec == "mp4a" else max(track.timescale // 30, 1)
        self.last_dts: int | None = None
        self.last_duration: int | None = None
        self.dts: list[int] = []
        self.offsets: list[int] = []
        self.flags: list[int] = []
        self.sizes: list[int] = []
        self.data: list[bytes | memoryview] = []
        self.nonzero_offsets = 0


def _check_times(track_id: int, dts: int, pts: int) -> None:
    if not 0 <= dts <= _I64_MAX:
        raise ProtocolError(f"fMP4: track {track_id} dts {dts} is out of range (0..{_I64_MAX})")
    offset = pts - dts
    if not _I32_MIN <= offset <= _I32_MAX:
        raise ProtocolError(
            f"fMP4: track {track_id} composition offset {offset} is out of range ({_I32_MIN}..{_I32_MAX})"
        )


def _check_next(state: _TrackState, dts: int) -> None:
    last = state.last_dts
    if last is None:
        return
    if dts < last:
        raise ProtocolError(f"fMP4: track {state.track_id} dts went backwards from {last} to {dts}")
    if state.dts and dts - last > _U32_MAX:
        raise ProtocolError(
            f"fMP4: track {state.track_id} dts jumped from {last} to {dts}, too far for a 32-bit sample duration"
        )


class FragmentWriter:
    """Buffers access units per track and emits them as one moof + mdat per `flush()`."""

    def __init__(self, tracks: Iterable[Fmp4Track]) -> None:
        self._states = [_TrackState(track) for track in _checked_tracks(tracks)]
        self._pending_bytes = 0

    def _find(self, track_id: int) -> _TrackState:
        for state in self._states:
            if state.track_id == track_id:
                return state
        raise ValueError(f"fMP4: unknown track id {track_id}")

    def add(self, track_id: int, dts: int, pts: int, keyframe: bool, data: bytes | bytearray | memoryview) -> None:
        """Queue one access unit; times are in the track's timescale."""
        state = self._find(track_id)
        _check_times(state.track_id, dts, pts)
        _check_next(state, dts)
        if len(state.dts) == _MAX_PENDING_SAMPLES:
            raise ProtocolError(
                f"fMP4: track {state.track_id} already has {_MAX_PENDING_SAMPLES} samples pending, "
                "the limit per fragment"
            )
        if type(data) is bytes:
            sample: bytes | memoryview = data
        else:
            # A read-only buffer (a frame's view of its RTMP message) is kept as it is until the
            # flush; a writable one may change before then, so the sample is what it holds now.
            view = memoryview(data)
            sample = view if view.readonly and view.c_contiguous else bytes(view)
        size = len(sample)
        if self._pending_bytes + size > _MAX_PENDING_BYTES:
            raise ProtocolError(
                f"fMP4: pending samples would take {self._pending_bytes + size} bytes, "
                f"above the limit of {_MAX_PENDING_BYTES} bytes"
            )
        offset = pts - dts
        state.last_dts = dts
        state.dts.append(dts)
        state.offsets.append(offset)
        state.flags.append(_SYNC_FLAGS if keyframe else _NON_SYNC_FLAGS)
        state.sizes.append(size)
        state.data.append(sample)
        if offset:
            state.nonzero_offsets += 1
        self._pending_bytes += size

    def pending(self, track_id: int) -> int:
        """How many samples of that track the next flush will write."""
        return len(self._find(track_id).dts)

    def flush(self, sequence_number: int, next_dts: dict[int, int] | None = None) -> bytes:
        """One moof + mdat holding every pending sample (b"" if none); see ext/fmp4.pxi for durations."""
        _check_range("sequence number", sequence_number, 0, _U32_MAX)
        ends: dict[int, int] = {}
        if next_dts is not None:
            for track_id, end in next_dts.items():
                state = self._find(track_id)
                if not 0 <= end <= _I64_MAX:
                    raise ProtocolError(f"fMP4: track {state.track_id} dts {end} is out of range (0..{_I64_MAX})")
                _check_next(state, end)
                ends[state.track_id] = end
        states = [state for state in self._states if state.dts]
        if not states:
            return b""

        trafs = []
        for state in states:
            times = state.dts
            count = len(times)
            durations = [b - a for a, b in itertools.pairwise(times)]
            next_time = ends.get(state.track_id)
            if next_time is not None:
                last_duration = next_time - times[-1]
            elif durations:
                last_duration = durations[-1]
            elif state.last_duration is not None:
                last_duration = state.last_duration
            else:
                last_duration = state.default_duration
            durations.append(last_duration)
            state.last_duration = last_duration
            fields = 4 if state.nonzero_offsets else 3
            entries: list[int] = [0] * (count * fields)
            entries[0::fields] = durations
            entries[1::fields] = state.sizes
            entries[2::fields] = state.flags
            if state.nonzero_offsets:
                entries[3::fields] = [offset & _U32_MAX for offset in state.offsets]
            trafs.append((state, count, fields, struct.pack(f">{len(entries)}I", *entries)))

        moof_size = 8 + 16 + sum(8 + 16 + 20 + 20 + len(table) for _, _, _, table in trafs)
        parts: list[bytes | memoryview] = [
            struct.pack(">I4sI4sII", moof_size, b"moof", 16, b"mfhd", 0, sequence_number)
        ]
        data_offset = moof_size + 8
        samples: list[bytes | memoryview] = []
        for state, count, fields, table in trafs:
            flags = _TRUN_FLAGS | (_TRUN_OFFSETS_FLAG if fields == 4 else 0)
            parts.append(
                struct.pack(
                    ">I4sI4sIII4sIQI4sIIi",
                    8 + 16 + 20 + 20 + len(table),
                    b"traf",
                    16,
                    b"tfhd",
                    _BASE_IS_MOOF,
                    state.track_id,
                    20,
                    b"tfdt",
                    1 << 24,
                    state.dts[0],
                    20 + len(table),
                    b"trun",
                    1 << 24 | flags,
                    count,
                    data_offset,
                )
            )
            parts.append(table)
            data_offset += sum(state.sizes)
            samples += state.data
            state.dts = []
            state.offsets = []
            state.flags = []
            state.sizes = []
            state.data = []
            state.nonzero_offsets = 0
        parts.append(struct.pack(">I4s", data_offset - moof_size, b"mdat"))
        self._pending_bytes = 0
        return b"".join(parts + samples)

    def styp(self) -> bytes:
        """The 'styp' box that opens a media segment (before its first fragment)."""
        return _box(b"styp", b"msdh", struct.pack(">I", 0), b"msdh")
