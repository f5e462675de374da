"""Properties of the MPEG-TS muxer: the Cython half of `owncast_fast._native.segmenter` and its
pure-Python twin produce the same bytes (and the same errors) for any sequence of calls, and what
they produce is always well-formed TS that gives back the units' timestamps and payloads."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from owncast_fast._native import segmenter as native_segmenter
from owncast_fast._pure import mpegts as pure_mpegts

CLOCK = 1 << 33
START = b"\x00\x00\x00\x01"


@pytest.fixture(scope="module", params=[native_segmenter, pure_mpegts], ids=["cython", "pure"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


def nal(draw: st.DrawFn, nal_type: int, hevc: bool) -> bytes:
    header = bytes(((nal_type << 1) & 0x7E, 1)) if hevc else bytes((0x60 | nal_type,))
    return header + draw(st.binary(max_size=draw(st.sampled_from([0, 3, 180, 700]))))


@st.composite
def video_configs(draw: st.DrawFn, codec: str) -> bytes:
    """Valid avcC/hvcC records, and now and then a broken one (cut short or bad length size)."""
    size = draw(st.sampled_from([1, 2, 4]))
    if codec == "avc1":
        sps = [nal(draw, 7, False) for _ in range(draw(st.integers(0, 2)))]
        pps = [nal(draw, 8, False) for _ in range(draw(st.integers(0, 2)))]
        record = bytes((1, 0x64, 0, 0x1F, 0xFC | (size - 1), 0xE0 | len(sps)))
        record += b"".join(len(n).to_bytes(2, "big") + n for n in sps) + bytes((len(pps),))
        record += b"".join(len(n).to_bytes(2, "big") + n for n in pps)
    else:
        arrays = [(t, [nal(draw, t, True) for _ in range(draw(st.integers(0, 2)))]) for t in (32, 33, 34)]
        record = bytes((1, 1)) + bytes(19) + bytes((0x0C | (size - 1), len(arrays)))
        for nal_type, nals in arrays:
            record += bytes((0x80 | nal_type,)) + len(nals).to_bytes(2, "big")
            record += b"".join(len(n).to_bytes(2, "big") + n for n in nals)
    if draw(st.integers(0, 9)) == 0:
        record = record[: draw(st.integers(0, len(record)))]
    return record


@st.composite
def access_units(draw: st.DrawFn, hevc: bool) -> tuple[bytes, int]:
    """An AVCC unit of random NAL units for each length size, sometimes with a broken last prefix."""
    aud, sps, idr, slice_ = (35, 33, 19, 1) if hevc else (9, 7, 5, 1)
    types = draw(st.lists(st.sampled_from([aud, sps, idr, slice_, 6]), max_size=5))
    nals = [nal(draw, t, hevc) for t in types]
    size = draw(st.sampled_from([1, 2, 4]))
    nals = [n[: (1 << (8 * size)) - 1] for n in nals]
    unit = b"".join(len(n).to_bytes(size, "big") + n for n in nals)
    if draw(st.integers(0, 9)) == 0:
        unit += draw(st.binary(min_size=1, max_size=6))
    return unit, size


timestamps = st.one_of(
    st.integers(0, 30 * 90000), st.integers(CLOCK - 20000, CLOCK + 20000), st.integers(-(2**40), 2**40)
)


@st.composite
def sessions(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[str, tuple[Any, ...]]]]:
    codec = draw(st.sampled_from(["avc1", "hvc1", None]))
    kwargs: dict[str, Any] = {"video_codec": codec}
    if codec is not None:
        kwargs["video_config"] = draw(video_configs(codec))
    if codec is None or draw(st.booleans()):
        object_type = draw(st.sampled_from([1, 2, 2, 3, 4, 5, 29, 6]))
        bits = (object_type << 11) | (draw(st.integers(0, 15)) << 7) | (draw(st.integers(0, 8)) << 3)
        kwargs["audio_config"] = bits.to_bytes(2, "big") + draw(st.binary(max_size=3))
    calls: list[tuple[str, tuple[Any, ...]]] = []
    clock = draw(timestamps)
    for _ in range(draw(st.integers(0, 25))):
        clock += draw(st.sampled_from([0, 1, 1500, 3003, 9000, 9001, 40000, 500000]))
        kind = draw(st.sampled_from(["segment", "video", "video", "audio", "audio", "config"]))
        if kind == "segment":
            calls.append(("start_segment", ()))
        elif kind == "video":
            unit, _ = draw(access_units(codec == "hvc1"))
            offset = draw(st.sampled_from([0, 0, 3003, 6006, -3003]))
            calls.append(("write_video", (clock, clock + offset, draw(st.booleans()), unit)))
        elif kind == "audio":
            size = draw(st.sampled_from([0, 1, 162, 163, 170, 176, 177, 183, 184, 400, 8184, 8185]))
            calls.append(("write_audio", (clock, draw(st.binary(min_size=size, max_size=size)))))
        elif codec is not None:
            calls.append(("set_video_config", (draw(video_configs(codec)),)))
    return kwargs, calls


def run(impl: ModuleType, kwargs: dict[str, Any], calls: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    """Every call's result, or its exception as (type, message); the session goes on after errors."""
    try:
        muxer = impl.TsMuxer(**kwargs)
    except Exception as error:
        return [(type(error).__name__, str(error))]
    results: list[Any] = []
    for name, args in calls:
        try:
            results.append(getattr(muxer, name)(*args))
        except Exception as error:
            results.append((type(error).__name__, str(error)))
    return results


@settings(max_examples=400, deadline=None)
@given(sessions())
def test_cython_and_twin_agree(session: tuple[dict[str, Any], list[tuple[str, tuple[Any, ...]]]]) -> None:
    kwargs, calls = session
    assert run(native_segmenter, kwargs, calls) == run(pure_mpegts, kwargs, calls)


def pes_of(data: bytes, pid: int) -> list[tuple[int, int | None, bytes]]:
    """(PTS, DTS, payload) of each PES on `pid`; checks sync bytes, lengths and continuity."""
    assert len(data) % 188 == 0
    found: list[tuple[int, int | None, bytes]] = []
    current = bytearray()
    counter = None

    def timestamp(b: bytes) -> int:
        return ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1

    def close() -> None:
        header = 9 + current[8]
        pts = timestamp(current[9:14])
        dts = timestamp(current[14:19]) if current[7] == 0xC0 else None
        found.append((pts, dts, bytes(current[header:])))

    for offset in range(0, len(data), 188):
        packet = data[offset : offset + 188]
        assert packet[0] == 0x47
        if ((packet[1] & 0x1F) << 8 | packet[2]) != pid or not packet[3] & 0x10:
            continue
        if counter is not None:
            assert packet[3] & 0x0F == (counter + 1) % 16
        counter = packet[3] & 0x0F
        start = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
        if packet[1] & 0x40 and current:
            close()
            current.clear()
        current += packet[start:]
    if current:
        close()
    return found


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-(2**34), 2**34),
            st.integers(0, 9000),
            st.booleans(),
            st.lists(st.binary(min_size=1, max_size=500), min_size=1, max_size=4),
        ),
        max_size=12,
    )
)
def test_units_come_back(impl: ModuleType, units: list[tuple[int, int, bool, list[bytes]]]) -> None:
    """Whatever the sizes, the PES payloads read back from the packets are the Annex B units."""
    config = bytes((1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 2, 0x67, 0x64, 1, 0, 2, 0x68, 0xEB))
    muxer = impl.TsMuxer(video_codec="avc1", video_config=config)
    data = b"".join(
        muxer.write_video(dts, dts + offset, key, b"".join((1 + len(n)).to_bytes(4, "big") + b"\x41" + n for n in nals))
        for dts, offset, key, nals in units
    )
    expected = [
        (
            (dts + offset) % CLOCK,
            None if offset == 0 else dts % CLOCK,
            START
            + b"\x09\xf0"
            + (START + b"\x67\x64" + START + b"\x68\xeb" if key else b"")
            + b"".join(START + b"\x41" + n for n in nals),
        )
        for dts, offset, key, nals in units
    ]
    assert pes_of(data, 0x100) == expected
