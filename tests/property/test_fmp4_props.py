"""Properties of the fMP4 muxer: the Cython module and its pure-Python twin give the same bytes and
the same errors for any call sequence, and whatever the flush schedule, the fragments describe
exactly the samples that were added (read back with a box reader written here)."""

from __future__ import annotations

import struct
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from owncast_fast._native import segmenter as native_segmenter
from owncast_fast._pure import fmp4 as pure_fmp4


@pytest.fixture(scope="module", params=[native_segmenter, pure_fmp4], ids=["cython", "pure"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


CODECS = [("video", "avc1"), ("video", "hvc1"), ("video", "av01"), ("video", "vp09"), ("audio", "mp4a")]


@st.composite
def track_specs(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    ids = draw(st.lists(st.integers(1, 0xFFFFFFFF) | st.integers(1, 4), min_size=1, max_size=3, unique=True))
    specs = []
    for track_id in ids:
        kind, codec = draw(st.sampled_from(CODECS))
        timescale = draw(st.sampled_from([90000, 1000, 44100, 48000]) | st.integers(1, 0xFFFFFFFF))
        config = draw(st.binary(max_size=300))
        extra = {
            "width": draw(st.integers(0, 0xFFFF)),
            "height": draw(st.integers(0, 0xFFFF)),
            "sample_rate": draw(st.integers(1, 0xFFFFFFFF) if kind == "audio" else st.just(0)),
            "channels": draw(st.integers(0, 8)),
        }
        specs.append(((track_id, kind, codec, config, timescale), extra))
    return specs


deltas = st.one_of(
    st.integers(0, 4000),
    st.sampled_from([0, 1, 1024, 3000, 0xFFFFFFFF, 0x100000000]),
    st.integers(-3000, -1),
)
offsets = st.one_of(st.just(0), st.integers(-6000, 12000), st.sampled_from([-(1 << 31), (1 << 31) - 1, 1 << 31]))
add_ops = st.tuples(st.just("add"), st.integers(0, 3), deltas, offsets, st.booleans(), st.binary(max_size=40))
flush_ops = st.tuples(
    st.just("flush"),
    st.integers(0, 3),
    st.none() | st.integers(-10, 5000),
    st.integers(-1, 0xFFFFFFFF),
    st.booleans(),
    st.just(b""),
)


def run(impl: ModuleType, specs: list[tuple[Any, ...]], ops: list[tuple[Any, ...]]) -> list[Any]:
    """Every result or error, in order, of playing `ops` against a writer for `specs`."""
    tracks = [impl.Fmp4Track(*args, **extra) for args, extra in specs]
    results: list[Any] = [impl.init_segment(tracks)]
    writer = impl.FragmentWriter(tracks)
    clock = [0] * len(tracks)
    for op, which, delta, value, flag, data in ops:
        index = which % len(tracks)
        track_id = tracks[index].track_id if which < 3 else 0
        try:
            if op == "add":
                dts = clock[index] + delta
                writer.add(track_id, dts, dts + value, flag, data)
                clock[index] = dts
                results.append(writer.pending(track_id))
            else:
                ends = None if delta is None else {track_id: clock[index] + delta}
                results.append(writer.flush(value, ends))
        except Exception as error:  # every error must be the same type with the same message
            results.append((type(error).__name__, str(error)))
    results.append(writer.flush(1))
    return results


@settings(max_examples=300, deadline=None)
@given(specs=track_specs(), ops=st.lists(add_ops | flush_ops, max_size=60))
def test_native_and_pure_agree(specs: list[tuple[Any, ...]], ops: list[tuple[Any, ...]]) -> None:
    assert run(native_segmenter, specs, ops) == run(pure_fmp4, specs, ops)


@settings(max_examples=100, deadline=None)
@given(
    codec=st.sampled_from(CODECS),
    bad=st.dictionaries(
        st.sampled_from(["track_id", "kind", "codec", "timescale", "width", "height", "sample_rate", "channels"]),
        st.integers(-2, 1 << 33) | st.sampled_from(["video", "audio", "avc1", "mp4a", "data"]),
        max_size=2,
    ),
)
def test_native_and_pure_agree_on_tracks(codec: tuple[str, str], bad: dict[str, Any]) -> None:
    kind, name = codec
    fields: dict[str, Any] = {"track_id": 1, "kind": kind, "codec": name, "config": b"", "timescale": 1000}
    fields["sample_rate"] = 8000 if kind == "audio" else 0
    fields |= bad
    outcomes = []
    for impl in (native_segmenter, pure_fmp4):
        try:
            outcomes.append(repr(impl.Fmp4Track(**fields)))
        except (ValueError, TypeError) as error:
            outcomes.append(f"{type(error).__name__}: {error}")
    assert outcomes[0] == outcomes[1]


# --- reading fragments back ---------------------------------------------------------------------


def boxes(data: bytes, start: int, end: int) -> list[tuple[str, int, int]]:
    """(type, start, end) of the boxes between start and end, each checked to fit."""
    out = []
    while start < end:
        size, kind = struct.unpack_from(">I4s", data, start)
        assert 8 <= size <= end - start
        out.append((kind.decode("ascii"), start, start + size))
        start += size
    return out


def read_fragment(data: bytes) -> list[tuple[int, int, int, int, bytes]]:
    """(track id, dts, pts, sample flags, data) of every sample of one moof + mdat, in file order."""
    (moof_kind, moof_start, moof_end), (mdat_kind, mdat_start, mdat_end) = boxes(data, 0, len(data))
    assert (moof_kind, mdat_kind, moof_end) == ("moof", "mdat", mdat_start)
    samples = []
    next_data = mdat_start + 8
    for kind, start, end in boxes(data, moof_start + 8, moof_end)[1:]:
        assert kind == "traf"
        (_, tfhd, _), (_, tfdt, _), (_, trun, trun_end) = boxes(data, start + 8, end)
        (track_id,) = struct.unpack_from(">I", data, tfhd + 12)
        (dts,) = struct.unpack_from(">Q", data, tfdt + 12)
        flags, count, data_offset = struct.unpack_from(">IIi", data, trun + 8)
        assert moof_start + data_offset == next_data
        with_offsets = bool(flags & 0x800)
        fmt = ">IIIi" if with_offsets else ">III"
        pos = trun + 20
        for _ in range(count):
            duration, size, sample_flags, *offset = struct.unpack_from(fmt, data, pos)
            pos += struct.calcsize(fmt)
            pts = dts + (offset[0] if with_offsets else 0)
            samples.append((track_id, dts, pts, sample_flags, data[next_data : next_data + size]))
            next_data += size
            dts += duration
        assert pos == trun_end
    assert next_data == mdat_end
    return samples


@st.composite
def sample_streams(draw: st.DrawFn) -> list[tuple[int, int, int, bool, bytes]]:
    """Valid access units of two tracks, interleaved in any order, each track's dts non-decreasing."""
    clocks = {1: draw(st.integers(0, 1 << 40)), 2: draw(st.integers(0, 1 << 33))}
    units = []
    for _ in range(draw(st.integers(0, 80))):
        track_id = draw(st.sampled_from([1, 2]))
        clocks[track_id] += draw(st.integers(0, 6000))
        offset = draw(st.integers(-3000, 9000)) if track_id == 1 else 0
        units.append(
            (track_id, clocks[track_id], clocks[track_id] + offset, draw(st.booleans()), draw(st.binary(max_size=30)))
        )
    return units


@settings(max_examples=200, deadline=None)
@given(units=sample_streams(), cuts=st.lists(st.booleans(), max_size=80))
def test_any_flush_schedule_describes_the_samples_added(
    impl: ModuleType, units: list[tuple[int, int, int, bool, bytes]], cuts: list[bool]
) -> None:
    tracks = [
        impl.Fmp4Track(1, "video", "avc1", b"", 90000),
        impl.Fmp4Track(2, "audio", "mp4a", b"", 48000, sample_rate=48000),
    ]
    writer = impl.FragmentWriter(tracks)
    fragments = []
    for index, (track_id, dts, pts, keyframe, data) in enumerate(units):
        if index < len(cuts) and cuts[index]:
            fragments.append(writer.flush(len(fragments) + 1))
        writer.add(track_id, dts, pts, keyframe, data)
    fragments.append(writer.flush(len(fragments) + 1))
    got = [sample for fragment in fragments if fragment for sample in read_fragment(fragment)]
    expected = [(t, dts, pts, 0x02000000 if key else 0x01010000, data) for t, dts, pts, key, data in units]
    assert len(got) == len(expected)
    for track_id in (1, 2):
        assert [s for s in got if s[0] == track_id] == [s for s in expected if s[0] == track_id]
