"""Properties of the RTMP chunk codec: any split of the input yields the same messages, and the
Cython module and its pure-Python twin agree on every input, garbage included."""

from __future__ import annotations

import itertools
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from owncast_fast._native import rtmp_chunk as native_rtmp_chunk
from owncast_fast._pure import rtmp_chunk as pure_rtmp_chunk
from owncast_fast.errors import ProtocolError

MessageTuple = tuple[int, int, int, int, bytes]


@pytest.fixture(scope="module", params=[native_rtmp_chunk, pure_rtmp_chunk], ids=["cython", "pure"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


def as_tuples(messages: list[Any]) -> list[MessageTuple]:
    return [(m.csid, m.type_id, m.stream_id, m.timestamp, m.payload) for m in messages]


csids = st.one_of(st.integers(3, 63), st.integers(64, 319), st.integers(320, 65599), st.sampled_from([3, 4, 6]))
timestamps = st.one_of(st.integers(0, 2000), st.integers(0xFFFFF0, 0x1000010), st.integers(0, 0xFFFFFFFF))
messages = st.tuples(
    st.sampled_from([4, 6, 8, 100, 400]) | csids,
    st.sampled_from([8, 9, 18, 20]),
    st.sampled_from([0, 1]) | st.integers(0, 0xFFFFFFFF),
    timestamps,
    st.binary(max_size=600),
)


@st.composite
def encoded_streams(draw: st.DrawFn) -> tuple[bytes, list[MessageTuple]]:
    """Messages through the Cython writer, with Set Chunk Size changes on chunk stream 2."""
    writer = native_rtmp_chunk.ChunkWriter()
    data = bytearray()
    expected: list[MessageTuple] = []
    for message in draw(st.lists(messages, max_size=12)):
        if draw(st.booleans()) and draw(st.booleans()):
            size = draw(st.sampled_from([1, 2, 7, 128, 129, 4096, 0xFFFFFF]))
            control = (2, 1, 0, 0, size.to_bytes(4, "big"))
            data += writer.write(*control)
            expected.append(control)
            writer.chunk_size = size
        data += writer.write(*message)
        expected.append(message)
    return bytes(data), expected


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=150, deadline=None)
@given(encoded_streams(), st.lists(st.integers(0, 1 << 20), max_size=20))
def test_any_split_yields_the_same_messages(
    impl: ModuleType, stream: tuple[bytes, list[MessageTuple]], cuts: list[int]
) -> None:
    data, expected = stream
    assert as_tuples(impl.ChunkDecoder(max_chunk_streams=200).feed(data)) == expected
    decoder = impl.ChunkDecoder(max_chunk_streams=200)
    out: list[Any] = []
    for piece in split(data, cuts):
        out += decoder.feed(piece)
    assert as_tuples(out) == expected
    assert decoder.bytes_received == len(data)


@settings(max_examples=100, deadline=None)
@given(st.lists(messages, max_size=10), st.sampled_from([1, 5, 128, 4096]))
def test_both_writers_write_the_same_bytes(message_list: list[MessageTuple], chunk_size: int) -> None:
    native = native_rtmp_chunk.ChunkWriter(chunk_size)
    pure = pure_rtmp_chunk.ChunkWriter(chunk_size)
    for message in message_list:
        assert native.write(*message) == pure.write(*message)


def run(module: ModuleType, pieces: list[bytes], limits: dict[str, int]) -> list[object]:
    """Per-feed results, ending with the error message if one was raised."""
    decoder = module.ChunkDecoder(**limits)
    results: list[object] = []
    for piece in pieces:
        try:
            results.append(as_tuples(decoder.feed(piece)))
        except ProtocolError as error:
            results.append(str(error))
            return results
    results.append((decoder.chunk_size, decoder.bytes_received))
    return results


small_limits = st.fixed_dictionaries(
    {
        "max_message_size": st.sampled_from([1, 300, 0xFFFFFF, 0xFFFFFF]),
        "max_chunk_streams": st.sampled_from([1, 3, 64, 64]),
        "max_buffered": st.sampled_from([1, 500, 1 << 24, 1 << 24]),
    }
)


@st.composite
def mangled_streams(draw: st.DrawFn) -> bytes:
    """Valid chunk streams with bytes overwritten, dropped or inserted: near misses reach deeper."""
    data = bytearray(draw(encoded_streams())[0])
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["set", "drop", "insert"]))
        if edit == "set":
            data[at] = draw(st.integers(0, 255))
        elif edit == "drop":
            del data[at]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


@st.composite
def raw_chunks(draw: st.DrawFn) -> bytes:
    """Hand-assembled chunks of every header type, bodies mostly cut where the chunk ends: type 3
    after type 0, extended fields where they do and do not belong, control messages, aborts."""
    data = bytearray()
    length = {2: 4, 3: 0, 4: 0, 64: 0, 320: 0}  # what the writer side believes, chunk size 128
    left = dict.fromkeys(length, 0)
    opened: set[int] = set()
    for _ in range(draw(st.integers(0, 16))):
        csid = draw(st.sampled_from(sorted(length)))
        fmt = draw(st.sampled_from([0, 0, 1, 2, 3, 3]))
        if csid not in opened and draw(st.integers(0, 9)):
            fmt = 0
        opened.add(csid)
        if csid < 64:
            data.append(fmt << 6 | csid)
        elif csid < 320:
            data += bytes((fmt << 6, csid - 64))
        else:
            data += bytes((fmt << 6 | 1, (csid - 64) & 0xFF, (csid - 64) >> 8))
        field = draw(st.sampled_from([0, 20, 1000, 0xFFFFFF]))
        type_id = 9
        if fmt < 3:
            data += field.to_bytes(3, "big")
        if fmt < 2:
            type_id = 1 if csid == 2 else draw(st.sampled_from([2, 8, 9]))
            if not left[csid] and draw(st.booleans()):
                length[csid] = 4 if type_id in (1, 2) else draw(st.sampled_from([0, 5, 100, 200, 300]))
            data += length[csid].to_bytes(3, "big")
            data.append(type_id)
        if fmt == 0:
            data += draw(st.sampled_from([0, 1])).to_bytes(4, "little")
        if (fmt < 3 and field == 0xFFFFFF) or draw(st.integers(0, 9)) == 0:
            data += draw(st.sampled_from([0, 40, 0x1000000])).to_bytes(4, "big")
        remaining = left[csid] or length[csid]
        take = min(128, remaining)
        if draw(st.integers(0, 9)) == 0:
            take = draw(st.integers(0, 200))
        if length[csid] == 4 and not left[csid]:
            body = draw(st.sampled_from([b"\x00\x00\x00\x80", b"\x00\x00\x00\x03", b"\x00\x00\x00\x04"]))
        else:
            body = draw(st.binary(min_size=take, max_size=take))
        data += body[:take]
        left[csid] = max(remaining - take, 0)
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.binary(max_size=2000), mangled_streams(), raw_chunks()),
    st.lists(st.integers(0, 1 << 20), max_size=8),
    small_limits,
)
def test_cython_and_twin_agree_on_any_input(data: bytes, cuts: list[int], limits: dict[str, int]) -> None:
    pieces = split(data, cuts)
    assert run(native_rtmp_chunk, pieces, limits) == run(pure_rtmp_chunk, pieces, limits)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 1 << 20), max_size=8))
def test_garbage_raises_only_protocol_errors(impl: ModuleType, data: bytes, cuts: list[int]) -> None:
    decoder = impl.ChunkDecoder()
    try:
        for piece in split(data, cuts):
            decoder.feed(piece)
    except ProtocolError as error:
        assert str(error).startswith("RTMP chunk: ")
