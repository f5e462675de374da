"""RTMP chunk stream codec: the Cython module and its pure-Python twin, run through the same tests."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from owncast_fast._native import rtmp_chunk as native_rtmp_chunk
from owncast_fast._pure import rtmp_chunk as pure_rtmp_chunk
from owncast_fast.errors import ProtocolError
from owncast_fast.ingest.rtmp.server import READ_BUFFER_SIZE

MessageTuple = tuple[int, int, int, int, bytes]
CAPTURES = Path(__file__).resolve().parents[1] / "data" / "rtmp"


@pytest.fixture(scope="module", params=[native_rtmp_chunk, pure_rtmp_chunk], ids=["cython", "pure"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


def as_tuples(messages: list[Any]) -> list[MessageTuple]:
    return [(m.csid, m.type_id, m.stream_id, m.timestamp, m.payload) for m in messages]


def feed_whole(impl: ModuleType, data: bytes, **limits: int) -> list[MessageTuple]:
    return as_tuples(impl.ChunkDecoder(**limits).feed(data))


def feed_bytewise(impl: ModuleType, data: bytes) -> list[MessageTuple]:
    decoder = impl.ChunkDecoder()
    out: list[Any] = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    return as_tuples(out)


def type0(csid: int, timestamp: int, length: int, type_id: int, stream_id: int) -> bytes:
    """A type 0 chunk header with a 1-byte basic header (no extended timestamp)."""
    return (
        bytes((csid,))
        + timestamp.to_bytes(3, "big")
        + length.to_bytes(3, "big")
        + bytes((type_id,))
        + stream_id.to_bytes(4, "little")
    )


def set_chunk_size(value: int) -> bytes:
    return type0(2, 0, 4, 1, 0) + value.to_bytes(4, "big")


def expect_error(impl: ModuleType, data: bytes, message: str, **limits: int) -> None:
    decoder = impl.ChunkDecoder(**limits)
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(data)
    assert str(caught.value) == message


# --- round trips --------------------------------------------------------------------------------

CSIDS = [2, 3, 4, 6, 63, 64, 65, 319, 320, 1000, 65599]
TIMESTAMPS = [0, 1, 33, 0xFFFFFE, 0xFFFFFF, 0x1000000, 0x7FFFFFFF, 0xFFFFFFFF]
STREAM_IDS = [0, 1, 0x01020304, 0xFFFFFFFF]


def message_mix(chunk_size: int, seed: int) -> list[MessageTuple]:
    """Streams that exercise every header type: steady media cadence, jumps, repeats, rewinds."""
    rng = random.Random(seed)
    sizes = [0, 1, chunk_size - 1, chunk_size, chunk_size + 1, 3 * chunk_size + 5, 20000]
    # One chunk stream with a steady extended delta: type 0, type 2, then type 3 with extended field.
    messages: list[MessageTuple] = [(5, 9, 1, i * 0x1000000, bytes(chunk_size + 3)) for i in range(4)]
    clock = {csid: rng.choice(TIMESTAMPS) for csid in CSIDS}
    for _ in range(400):
        csid = rng.choice(CSIDS)
        roll = rng.random()
        if roll < 0.5:
            clock[csid] = (clock[csid] + 33) & 0xFFFFFFFF  # steady cadence: types 2 and 3
        elif roll < 0.7:
            clock[csid] = rng.choice(TIMESTAMPS)  # jumps, rewinds, extended timestamps
        elif roll < 0.8:
            clock[csid] = (clock[csid] + 0x1000000) & 0xFFFFFFFF  # extended delta
        length = rng.choice(sizes) if rng.random() < 0.5 else 40
        payload = rng.randbytes(length)
        type_id = 9 if rng.random() < 0.8 else rng.choice([8, 18, 20])
        stream_id = 1 if rng.random() < 0.8 else rng.choice(STREAM_IDS)
        messages.append((csid, type_id, stream_id, clock[csid], payload))
    return messages


@pytest.mark.parametrize("chunk_size", [128, 4096])
def test_round_trip_whole_bytewise_and_split(impl: ModuleType, chunk_size: int) -> None:
    messages = message_mix(chunk_size, seed=chunk_size)
    writer = impl.ChunkWriter()
    stream = writer.write(2, 1, 0, 0, chunk_size.to_bytes(4, "big"))
    writer.chunk_size = chunk_size
    formats: set[int] = set()
    for message in messages:
        encoded = writer.write(*message)
        formats.add(encoded[0] >> 6)
        stream += encoded
    assert formats == {0, 1, 2, 3}
    expected = [(2, 1, 0, 0, chunk_size.to_bytes(4, "big")), *messages]

    assert feed_whole(impl, stream, max_chunk_streams=len({*CSIDS, 5})) == expected

    decoder = impl.ChunkDecoder()
    out: list[Any] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert as_tuples(out) == expected
    assert decoder.chunk_size == chunk_size
    assert decoder.bytes_received == len(stream)

    rng = random.Random(7)
    decoder = impl.ChunkDecoder()
    out = []
    pos = 0
    while pos < len(stream):
        step = rng.choice([1, 2, 3, 17, 18, 19, 129, 4097, 65536])
        out += decoder.feed(memoryview(stream)[pos : pos + step])
        pos += step
    assert as_tuples(out) == expected


@pytest.mark.parametrize("read_size", [1, 5, 4096, READ_BUFFER_SIZE])
def test_reads_through_one_reused_buffer_as_the_server_does(impl: ModuleType, read_size: int) -> None:
    # The server writes each read into the same bytearray and feeds a slice of its memoryview;
    # every payload must survive the buffer being overwritten by the next read. Type 3
    # continuation headers (one byte, five with the extended timestamp of chunk stream 5) land on
    # every offset of a read, which walks both the fast path and the split-header path.
    messages = message_mix(128, seed=read_size)
    writer = impl.ChunkWriter()
    stream = b"".join(writer.write(*message) for message in messages)
    buffer = bytearray(read_size)
    view = memoryview(buffer)
    decoder = impl.ChunkDecoder(max_chunk_streams=len({*CSIDS, 5}))
    out: list[Any] = []
    for start in range(0, len(stream), read_size):
        piece = stream[start : start + read_size]
        view[: len(piece)] = piece
        out += decoder.feed(view[: len(piece)])
    buffer[:] = bytes(read_size)
    assert as_tuples(out) == messages
    assert all(type(message.payload) is bytes for message in out)


def test_trailing_partial_data_waits_for_the_rest(impl: ModuleType) -> None:
    writer = impl.ChunkWriter()
    first = writer.write(3, 20, 0, 0, b"connect" * 30)
    second = writer.write(4, 8, 1, 10, b"\xaf\x01" + b"a" * 200)
    decoder = impl.ChunkDecoder()
    for cut in (1, 5, 12, len(second) - 1):
        decoder = impl.ChunkDecoder()
        assert as_tuples(decoder.feed(first + second[:cut])) == [(3, 20, 0, 0, b"connect" * 30)]
        assert as_tuples(decoder.feed(second[cut:])) == [(4, 8, 1, 10, b"\xaf\x01" + b"a" * 200)]
        assert decoder.feed(b"") == []


def test_writer_splits_by_its_chunk_size_and_header_forms(impl: ModuleType) -> None:
    writer = impl.ChunkWriter(chunk_size=4)
    assert writer.write(3, 20, 0, 5, b"abcdefghij") == (
        b"\x03\x00\x00\x05\x00\x00\x0a\x14\x00\x00\x00\x00" + b"abcd" + b"\xc3efgh" + b"\xc3ij"
    )
    assert writer.write(64, 9, 1, 0, b"")[:2] == b"\x00\x00"
    assert writer.write(319, 9, 1, 0, b"")[:2] == b"\x00\xff"
    assert writer.write(320, 9, 1, 0, b"xy")[:3] == b"\x01\x00\x01"
    assert writer.write(65599, 9, 1, 0, b"")[:3] == b"\x01\xff\xff"
    # Type 1, then type 2 (same length and type), then type 3 (same delta after a delta header).
    assert writer.write(3, 8, 0, 10, b"ab") == b"\x43\x00\x00\x05\x00\x00\x02\x08ab"
    assert writer.write(3, 8, 0, 17, b"cd") == b"\x83\x00\x00\x07cd"
    assert writer.write(3, 8, 0, 24, b"ef") == b"\xc3ef"
    # The timestamp goes backward: back to type 0.
    assert writer.write(3, 8, 0, 1, b"gh")[0] >> 6 == 0


def test_writer_repeats_the_extended_timestamp_on_type_3_chunks(impl: ModuleType) -> None:
    writer = impl.ChunkWriter(chunk_size=2)
    assert writer.write(5, 9, 1, 0x01020304, b"abc") == (
        b"\x05\xff\xff\xff\x00\x00\x03\x09\x01\x00\x00\x00\x01\x02\x03\x04ab" + b"\xc5\x01\x02\x03\x04c"
    )


def test_writer_accepts_any_buffer(impl: ModuleType) -> None:
    writer = impl.ChunkWriter()
    expected = impl.ChunkWriter().write(3, 9, 1, 0, b"payload")
    assert writer.write(3, 9, 1, 0, memoryview(bytearray(b"payload"))) == expected


def test_ffmpeg_connect_capture_decodes_and_rewrites_byte_for_byte(impl: ModuleType) -> None:
    # ffmpeg 5.1 publishing: `connect` on chunk stream 3, 140 bytes split at 128 (tests/data/rtmp/README.md).
    capture = (CAPTURES / "ffmpeg_connect.bin").read_bytes()
    (message,) = impl.ChunkDecoder().feed(capture)
    assert (message.csid, message.type_id, message.stream_id, message.timestamp) == (3, 20, 0, 0)
    assert message.payload.startswith(b"\x02\x00\x07connect") and len(message.payload) == 140
    assert feed_bytewise(impl, capture) == as_tuples([message])
    assert impl.ChunkWriter().write(3, 20, 0, 0, message.payload) == capture


# --- hand-built chunks (Adobe RTMP 1.0, section 5.3.2) ------------------------------------------


def test_spec_example_1_audio_with_type_2_and_type_3(impl: ModuleType) -> None:
    # "Example 1 ... a simple stream of audio messages": stream id 12345, type 8, length 32,
    # timestamps 1000, 1020, 1040, 1060 sent as type 0, type 2 (delta 20), type 3, type 3.
    audio = [bytes([i]) * 32 for i in range(4)]
    data = (
        b"\x03\x00\x03\xe8\x00\x00\x20\x08\x39\x30\x00\x00"
        + audio[0]
        + b"\x83\x00\x00\x14"
        + audio[1]
        + b"\xc3"
        + audio[2]
        + b"\xc3"
        + audio[3]
    )
    expected = [(3, 8, 12345, 1000 + 20 * i, audio[i]) for i in range(4)]
    assert feed_whole(impl, data) == expected
    assert feed_bytewise(impl, data) == expected


def test_spec_example_2_message_split_into_three_chunks(impl: ModuleType) -> None:
    # "Example 2 ... a message that is too long to fit in a 128 chunk": 307 bytes of video,
    # stream id 12346, timestamp 1000: a type 0 chunk and two type 3 chunks (128, 128, 51 bytes).
    video = bytes(range(256)) + bytes(51)
    data = (
        b"\x04\x00\x03\xe8\x00\x01\x33\x09\x3a\x30\x00\x00"
        + video[:128]
        + b"\xc4"
        + video[128:256]
        + b"\xc4"
        + video[256:]
    )
    assert feed_whole(impl, data) == [(4, 9, 12346, 1000, video)]
    assert feed_bytewise(impl, data) == [(4, 9, 12346, 1000, video)]


def test_type_1_changes_length_and_type_and_keeps_the_stream_id(impl: ModuleType) -> None:
    data = type0(6, 100, 2, 9, 7) + b"ab" + b"\x46\x00\x00\x21\x00\x00\x03\x08" + b"xyz"
    assert feed_whole(impl, data) == [(6, 9, 7, 100, b"ab"), (6, 8, 7, 133, b"xyz")]


def test_type_3_after_type_0_repeats_the_type_0_timestamp_as_delta(impl: ModuleType) -> None:
    # "If a Type 3 chunk follows a Type 0 chunk, then the timestamp delta for this Type 3 chunk
    # is the same as the timestamp of the Type 0 chunk."
    data = type0(4, 1000, 1, 8, 1) + b"a" + b"\xc4" + b"b" + b"\xc4" + b"c"
    assert feed_whole(impl, data) == [(4, 8, 1, 1000, b"a"), (4, 8, 1, 2000, b"b"), (4, 8, 1, 3000, b"c")]


def test_extended_timestamp_on_type_0_and_its_type_3_chunks(impl: ModuleType) -> None:
    payload = bytes(range(200))
    data = (
        b"\x04\xff\xff\xff\x00\x00\xc8\x09\x01\x00\x00\x00\x01\x00\x00\x00"
        + payload[:128]
        + b"\xc4\x01\x00\x00\x00"  # the type 3 continuation repeats the extended timestamp
        + payload[128:]
        + b"\xc4\x00\x00\x00\x28"  # a type 3 message start: the extended field holds the delta
        + payload[:128]
        + b"\xc4\x00\x00\x00\x28"
        + payload[128:]
    )
    expected = [(4, 9, 1, 0x01000000, payload), (4, 9, 1, 0x01000028, payload)]
    assert feed_whole(impl, data) == expected
    assert feed_bytewise(impl, data) == expected


def test_extended_delta_on_type_1_and_2_and_timestamp_wraps(impl: ModuleType) -> None:
    data = (
        b"\x05\xff\xff\xff\x00\x00\x01\x08\x00\x00\x00\x00\xff\xff\xff\xf0"
        + b"a"
        + b"\x45\x00\x00\x20\x00\x00\x01\x08"
        + b"b"
        + b"\x85\xff\xff\xff\x02\x00\x00\x00"
        + b"c"
        + b"\xc5\x00\x00\x00\x05"
        + b"d"
    )
    assert feed_whole(impl, data) == [
        (5, 8, 0, 0xFFFFFFF0, b"a"),
        (5, 8, 0, 0x10, b"b"),
        (5, 8, 0, 0x02000010, b"c"),
        (5, 8, 0, 0x02000015, b"d"),
    ]


def test_two_and_three_byte_basic_headers(impl: ModuleType) -> None:
    data = b"".join(
        [
            b"\x00\x00" + type0(0, 1, 1, 9, 1)[1:] + b"a",  # csid 64
            b"\x00\xff" + type0(0, 2, 1, 9, 1)[1:] + b"b",  # csid 319
            b"\x01\xff\xff" + type0(0, 3, 1, 9, 1)[1:] + b"c",  # csid 65599
            b"\x01\x24\x00" + type0(0, 4, 1, 9, 1)[1:] + b"d",  # csid 100 in the 3-byte form
            b"\xc0\x24" + b"e",  # type 3 on csid 100 in the 2-byte form
        ]
    )
    assert feed_whole(impl, data) == [
        (64, 9, 1, 1, b"a"),
        (319, 9, 1, 2, b"b"),
        (65599, 9, 1, 3, b"c"),
        (100, 9, 1, 4, b"d"),
        (100, 9, 1, 8, b"e"),
    ]


def test_empty_payload(impl: ModuleType) -> None:
    data = type0(3, 7, 0, 4, 0) + b"\xc3" + type0(3, 9, 1, 4, 0) + b"z"
    assert feed_whole(impl, data) == [(3, 4, 0, 7, b""), (3, 4, 0, 14, b""), (3, 4, 0, 9, b"z")]


def test_librtmp_type_1_header_opens_chunk_stream_2(impl: ModuleType) -> None:
    # librtmp sends acknowledgements and pings with a type 1 header on chunk stream 2.
    data = b"\x42\x00\x00\x00\x00\x00\x04\x03" + b"\x00\x00\x10\x00"
    assert feed_whole(impl, data) == [(2, 3, 0, 0, b"\x00\x00\x10\x00")]


def test_header_in_mid_message_continues_it(impl: ModuleType) -> None:
    payload = bytes(range(200))
    data = (
        type0(4, 50, 200, 9, 1)
        + payload[:128]
        + b"\x44\x00\x00\x99\x00\x00\xc8\x08"  # type 1, same length: other fields are ignored
        + payload[128:]
    )
    assert feed_whole(impl, data) == [(4, 9, 1, 50, payload)]


# --- protocol control messages applied inside feed() ---------------------------------------------


def test_set_chunk_size_applies_to_the_next_chunk_in_the_same_feed(impl: ModuleType) -> None:
    payload = bytes(300)
    data = set_chunk_size(4096) + type0(3, 0, 300, 20, 0) + payload
    decoder = impl.ChunkDecoder()
    assert as_tuples(decoder.feed(data)) == [(2, 1, 0, 0, b"\x00\x00\x10\x00"), (3, 20, 0, 0, payload)]
    assert decoder.chunk_size == 4096
    assert impl.ChunkDecoder().chunk_size == 128


def test_set_chunk_size_between_chunks_of_another_message(impl: ModuleType) -> None:
    payload = bytes(range(256)) * 2
    data = type0(4, 0, 512, 9, 1) + payload[:128] + set_chunk_size(256) + b"\xc4" + payload[128:384]
    data += b"\xc4" + payload[384:]
    assert feed_whole(impl, data)[-1] == (4, 9, 1, 0, payload)


def test_abort_message_drops_the_partial_message(impl: ModuleType) -> None:
    data = (
        type0(4, 0, 300, 9, 1)
        + bytes(128)
        + type0(2, 0, 4, 2, 0)
        + b"\x00\x00\x00\x04"
        + type0(4, 40, 3, 9, 1)
        + b"new"
    )
    assert feed_whole(impl, data) == [(2, 2, 0, 0, b"\x00\x00\x00\x04"), (4, 9, 1, 40, b"new")]
    # An Abort for a chunk stream that holds nothing changes nothing.
    assert feed_whole(impl, type0(2, 0, 4, 2, 0) + b"\x00\x00\x01\x00") == [(2, 2, 0, 0, b"\x00\x00\x01\x00")]


def test_abort_method_in_the_middle_of_a_chunk_skips_the_rest_of_it(impl: ModuleType) -> None:
    decoder = impl.ChunkDecoder(max_buffered=300)
    decoder.feed(type0(4, 0, 300, 9, 1) + bytes(50))
    decoder.abort(4)
    decoder.abort(9)  # unknown chunk streams are ignored
    assert decoder.feed(bytes(78)) == []
    # The aborted message no longer counts against the budget.
    assert as_tuples(decoder.feed(type0(4, 1, 300, 9, 1) + bytes(128))) == []
    assert as_tuples(decoder.feed(b"\xc4" + bytes(128) + b"\xc4" + bytes(44))) == [(4, 9, 1, 1, bytes(300))]


# --- input handling ------------------------------------------------------------------------------


def test_feed_keeps_no_reference_to_the_input(impl: ModuleType) -> None:
    buffer = bytearray(type0(3, 0, 5, 9, 1) + b"hello" + type0(4, 0, 300, 9, 1) + b"x" * 10)
    decoder = impl.ChunkDecoder()
    messages = decoder.feed(buffer)
    buffer[:] = b"\x00" * len(buffer)
    buffer.extend(b"resizable")  # a kept buffer export would make this raise BufferError
    assert isinstance(messages[0].payload, bytes)
    assert as_tuples(messages) == [(3, 9, 1, 0, b"hello")]
    assert as_tuples(decoder.feed(memoryview(b"y" * 118 + b"\xc4" + b"z" * 128 + b"\xc4" + b"w" * 44))) == [
        (4, 9, 1, 0, b"x" * 10 + b"y" * 118 + b"z" * 128 + b"w" * 44)
    ]


def test_bytes_received_counts_every_byte(impl: ModuleType) -> None:
    decoder = impl.ChunkDecoder()
    decoder.feed(b"\x03\x00")
    decoder.feed(bytearray(b"\x00"))
    decoder.feed(b"")
    assert decoder.bytes_received == 3


def test_message_is_a_plain_value(impl: ModuleType) -> None:
    message = impl.Message(3, 20, 0, 1, b"x")
    assert message == impl.Message(3, 20, 0, 1, b"x")
    assert message != impl.Message(3, 20, 0, 2, b"x")
    assert repr(message) == "Message(csid=3, type_id=20, stream_id=0, timestamp=1, payload=b'x')"
    with pytest.raises(TypeError):
        hash(message)


# --- bad input: exact errors ---------------------------------------------------------------------


def test_message_longer_than_the_limit(impl: ModuleType) -> None:
    expect_error(
        impl,
        type0(3, 0, 9000000, 9, 1),
        "RTMP chunk: message length 9000000 exceeds the limit of 8388608 bytes",
    )
    expect_error(
        impl,
        type0(3, 0, 4, 9, 1) + b"abcd" + b"\x43\x00\x00\x00\x00\x10\x01\x09",
        "RTMP chunk: message length 4097 exceeds the limit of 4096 bytes",
        max_message_size=4096,
    )


def test_too_many_chunk_streams(impl: ModuleType) -> None:
    data = b"".join(b"\x00" + bytes((i,)) + type0(0, 0, 0, 9, 1)[1:] for i in range(65))
    expect_error(impl, data, "RTMP chunk: more than 64 chunk streams in use")
    assert len(feed_whole(impl, data[: 64 * 13])) == 64


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "RTMP chunk: set chunk size 0 is out of range (1..16777215)"),
        (0x01000000, "RTMP chunk: set chunk size 16777216 is out of range (1..16777215)"),
        (0x80000080, "RTMP chunk: set chunk size 2147483776 is out of range (1..16777215)"),
    ],
)
def test_set_chunk_size_out_of_range(impl: ModuleType, value: int, message: str) -> None:
    expect_error(impl, set_chunk_size(value), message)


def test_set_chunk_size_largest_value_is_accepted(impl: ModuleType) -> None:
    decoder = impl.ChunkDecoder()
    decoder.feed(set_chunk_size(0xFFFFFF))
    assert decoder.chunk_size == 0xFFFFFF


def test_control_messages_with_the_wrong_length(impl: ModuleType) -> None:
    expect_error(
        impl,
        type0(2, 0, 3, 1, 0) + b"\x00\x10\x00",
        "RTMP chunk: set chunk size message has 3 bytes, expected 4",
    )
    expect_error(impl, type0(2, 0, 0, 1, 0), "RTMP chunk: set chunk size message has 0 bytes, expected 4")
    expect_error(impl, type0(2, 0, 5, 2, 0) + bytes(5), "RTMP chunk: abort message has 5 bytes, expected 4")


@pytest.mark.parametrize("fmt", [1, 2, 3])
def test_chunk_stream_must_start_with_type_0(impl: ModuleType, fmt: int) -> None:
    data = bytes(((fmt << 6) | 5,)) + bytes(11)
    expect_error(
        impl,
        data,
        f"RTMP chunk: chunk stream 5 starts with a format {fmt} header but has no previous message",
    )


def test_incomplete_messages_over_the_budget(impl: ModuleType) -> None:
    data = type0(4, 0, 600, 9, 1) + bytes(128) + type0(6, 0, 500, 8, 1)
    expect_error(
        impl,
        data,
        "RTMP chunk: incomplete messages would buffer 1100 bytes, above the limit of 1000 bytes",
        max_buffered=1000,
    )
    assert feed_whole(impl, data, max_buffered=1100) == []


def test_length_changing_mid_message(impl: ModuleType) -> None:
    data = type0(4, 0, 300, 9, 1) + bytes(128) + b"\x44\x00\x00\x00\x00\x00\xc8\x09"
    expect_error(
        impl,
        data,
        "RTMP chunk: chunk stream 4 changes message length from 300 to 200 in the middle of a message",
    )


def test_decoder_is_dead_after_an_error(impl: ModuleType) -> None:
    decoder = impl.ChunkDecoder()
    message = "RTMP chunk: chunk stream 5 starts with a format 2 header but has no previous message"
    with pytest.raises(ProtocolError, match="format 2"):
        decoder.feed(b"\x85\x00\x00\x00")
    for call in (lambda: decoder.feed(type0(3, 0, 0, 9, 1)), lambda: decoder.abort(3)):
        with pytest.raises(ProtocolError) as caught:
            call()
        assert str(caught.value) == message


def test_constructor_and_writer_argument_errors(impl: ModuleType) -> None:
    cases: list[tuple[Any, str]] = [
        (lambda: impl.ChunkDecoder(max_message_size=0), "max_message_size 0 is out of range (1..16777215)"),
        (lambda: impl.ChunkDecoder(max_chunk_streams=0), "max_chunk_streams 0 is out of range (1..65598)"),
        (lambda: impl.ChunkDecoder(max_buffered=0), "max_buffered 0 is out of range (1..1099511627776)"),
        (lambda: impl.ChunkWriter(chunk_size=0), "chunk size 0 is out of range (1..16777215)"),
        (lambda: impl.ChunkWriter().write(1, 9, 1, 0, b""), "chunk stream id 1 is out of range (2..65599)"),
        (
            lambda: impl.ChunkWriter().write(65600, 9, 1, 0, b""),
            "chunk stream id 65600 is out of range (2..65599)",
        ),
        (lambda: impl.ChunkWriter().write(3, 256, 1, 0, b""), "message type id 256 is out of range (0..255)"),
        (
            lambda: impl.ChunkWriter().write(3, 9, -1, 0, b""),
            "message stream id -1 is out of range (0..4294967295)",
        ),
        (
            lambda: impl.ChunkWriter().write(3, 9, 1, 2**32, b""),
            "timestamp 4294967296 is out of range (0..4294967295)",
        ),
        (
            lambda: impl.ChunkWriter().write(3, 9, 1, 0, bytes(0x1000000)),
            "payload length 16777216 is out of range (0..16777215)",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as caught:
            call()
        assert str(caught.value) == "RTMP chunk: " + message
    writer = impl.ChunkWriter()
    with pytest.raises(ValueError, match=r"^RTMP chunk: chunk size 16777216 is out of range \(1\.\.16777215\)$"):
        writer.chunk_size = 0x1000000
    assert writer.chunk_size == 128


# --- garbage and memory ----------------------------------------------------------------------------


def test_garbage_never_crashes_or_hangs(impl: ModuleType) -> None:
    rng = random.Random(1935)
    for _ in range(300):
        decoder = impl.ChunkDecoder(max_message_size=65536, max_buffered=131072)
        data = rng.randbytes(rng.randrange(1, 3000))
        try:
            for start in range(0, len(data), 97):
                decoder.feed(data[start : start + 97])
        except ProtocolError as error:
            assert str(error).startswith("RTMP chunk: ")


def test_memory_stays_within_the_budget(impl: ModuleType) -> None:
    # Sixty chunk streams each announce the largest message the limit allows, then trickle.
    announce = b"".join(type0(csid, 0, 1_000_000, 9, 1) + bytes(128) for csid in range(3, 63))
    decoder = impl.ChunkDecoder(max_message_size=1_000_000, max_buffered=4_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError, match="above the limit of 4000000 bytes"):
            decoder.feed(announce)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_500_000

    # A message that trickles in a byte at a time holds its declared length, nothing more.
    decoder = impl.ChunkDecoder()
    decoder.feed(set_chunk_size(100_000) + type0(3, 0, 100_000, 9, 1))
    tracemalloc.start()
    try:
        for _ in range(5000):
            assert decoder.feed(b"\x03") == []
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size < 20_000


def test_messages_completed_before_an_error_ride_on_the_exception(impl: ModuleType) -> None:
    writer = impl.ChunkWriter(128)
    good = writer.write(6, 9, 1, 0, b"frame-1") + writer.write(6, 9, 1, 33, b"frame-2")
    bad_set_chunk_size = writer.write(2, 1, 0, 0, (0).to_bytes(4, "big"))
    decoder = impl.ChunkDecoder()
    with pytest.raises(ProtocolError) as info:
        decoder.feed(good + bad_set_chunk_size)
    assert [m.payload for m in info.value.partial] == [b"frame-1", b"frame-2"]
    with pytest.raises(ProtocolError) as again:
        decoder.feed(b"")
    assert again.value.partial == ()
