"""fMP4/CMAF muxer: the Cython module and its pure-Python twin, run through the same tests.

Structure is checked with a small ISO BMFF box walker written here (independent of the muxer);
real media is checked end to end: clips made by ffmpeg are demuxed by PyAV, muxed by us, and our
output demuxed by PyAV must give back the exact access units we muxed, decode without errors and
leave `ffprobe -v error` silent.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import pytest

from owncast_fast._native import flv as native_flv
from owncast_fast._native import segmenter as native_segmenter
from owncast_fast._pure import fmp4 as pure_fmp4
from owncast_fast.errors import ProtocolError

SYNC = 0x02000000
NON_SYNC = 0x01010000
AVCC = bytes.fromhex("0164001fffe100196764001facd9405005bb011000000300100000030320f183196001000568ebecb22c")
ASC = bytes.fromhex("1210")


@pytest.fixture(scope="module", params=[native_segmenter, pure_fmp4], ids=["cython", "pure"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


# --- a tiny ISO BMFF reader ---------------------------------------------------------------------

CONTAINERS = {"moov", "trak", "mdia", "minf", "dinf", "stbl", "mvex", "moof", "traf"}
VISUAL_ENTRY_HEADER = 78  # SampleEntry (8) + VisualSampleEntry fields (70)
AUDIO_ENTRY_HEADER = 28  # SampleEntry (8) + AudioSampleEntry fields (20)


@dataclass
class Box:
    kind: str
    start: int  # offset of the box header in the parsed buffer
    size: int
    payload: bytes
    children: list[Box] = field(default_factory=list)

    @property
    def version(self) -> int:
        return self.payload[0]

    @property
    def flags(self) -> int:
        return int.from_bytes(self.payload[1:4], "big")

    def find(self, path: str) -> list[Box]:
        return find(self.children, path)


def parse_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[Box]:
    end = len(data) if end is None else end
    boxes = []
    pos = start
    while pos < end:
        assert end - pos >= 8, f"{end - pos} stray bytes at {pos}"
        size, kind = struct.unpack_from(">I4s", data, pos)
        assert 8 <= size <= end - pos, f"box {kind!r} at {pos} has size {size}, {end - pos} bytes left"
        name = kind.decode("ascii")
        box = Box(name, pos, size, data[pos + 8 : pos + size])
        if name in CONTAINERS:
            box.children = parse_boxes(data, pos + 8, pos + size)
        boxes.append(box)
        pos += size
    return boxes


def find(boxes: list[Box], path: str) -> list[Box]:
    head, _, rest = path.partition("/")
    found = [box for box in boxes if box.kind == head]
    return found if not rest else [inner for box in found for inner in box.find(rest)]


def one(boxes: list[Box], path: str) -> Box:
    found = find(boxes, path)
    assert len(found) == 1, f"{len(found)} boxes at {path}"
    return found[0]


def paths(boxes: list[Box], prefix: str = "") -> list[str]:
    out = []
    for box in boxes:
        out.append(prefix + box.kind)
        out += paths(box.children, prefix + box.kind + "/")
    return out


def sample_entry(stsd: Box) -> tuple[Box, list[Box]]:
    """The single sample entry of an stsd, and the boxes after its fixed fields."""
    assert (stsd.version, stsd.flags) == (0, 0)
    assert struct.unpack_from(">I", stsd.payload, 4) == (1,)
    (entry,) = parse_boxes(stsd.payload, 8)
    header = AUDIO_ENTRY_HEADER if entry.kind == "mp4a" else VISUAL_ENTRY_HEADER
    return entry, parse_boxes(entry.payload, header)


def read_descriptor(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, body, position after it) of an MPEG-4 descriptor (ISO/IEC 14496-1 expandable size)."""
    tag = data[pos]
    pos += 1
    size = 0
    while True:
        byte = data[pos]
        pos += 1
        size = size << 7 | byte & 0x7F
        if not byte & 0x80:
            break
    return tag, data[pos : pos + size], pos + size


@dataclass(frozen=True)
class Trun:
    version: int
    flags: int
    data_offset: int
    entries: list[tuple[int, ...]]


def parse_trun(box: Box) -> Trun:
    assert box.kind == "trun"
    payload = box.payload
    (count,) = struct.unpack_from(">I", payload, 4)
    assert box.flags & 0x000001, "data offset missing"
    assert not box.flags & 0x000004, "first-sample-flags not expected"
    (data_offset,) = struct.unpack_from(">i", payload, 8)
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if box.flags & bit]
    signed = box.version == 1
    fmt = ">" + "".join("i" if bit == 0x800 and signed else "I" for bit in fields)
    entry_size = 4 * len(fields)
    assert len(payload) == 12 + count * entry_size
    entries = [struct.unpack_from(fmt, payload, 12 + i * entry_size) for i in range(count)]
    return Trun(box.version, box.flags, data_offset, entries)


# --- init segment -------------------------------------------------------------------------------


def video_track(impl: ModuleType, track_id: int = 1, codec: str = "avc1", config: bytes = AVCC) -> Any:
    return impl.Fmp4Track(track_id, "video", codec, config, 90000, width=1280, height=720)


def audio_track(impl: ModuleType, track_id: int = 2, sample_rate: int = 44100) -> Any:
    return impl.Fmp4Track(track_id, "audio", "mp4a", ASC, sample_rate, sample_rate=sample_rate, channels=2)


def expected_tree(media_headers: list[str]) -> list[str]:
    """Box paths of an init segment whose tracks have these media header boxes, in file order."""
    out = ["ftyp", "moov", "moov/mvhd"]
    for media_header in media_headers:
        minf = "moov/trak/mdia/minf"
        stbl = minf + "/stbl"
        out += ["moov/trak", "moov/trak/tkhd", "moov/trak/mdia", "moov/trak/mdia/mdhd", "moov/trak/mdia/hdlr"]
        out += [minf, f"{minf}/{media_header}", f"{minf}/dinf", f"{minf}/dinf/dref", stbl]
        out += [f"{stbl}/{kind}" for kind in ("stsd", "stts", "stsc", "stsz", "stco")]
    return [*out, "moov/mvex"] + ["moov/mvex/trex"] * len(media_headers)


def test_init_segment_video_and_audio(impl: ModuleType) -> None:
    data = impl.init_segment([video_track(impl), audio_track(impl)])
    boxes = parse_boxes(data)
    assert paths(boxes) == expected_tree(["vmhd", "smhd"])

    ftyp = one(boxes, "ftyp")
    assert ftyp.start == 0
    assert ftyp.payload == b"iso6" + bytes(4) + b"iso6" + b"mp41"

    mvhd = one(boxes, "moov/mvhd")
    assert (mvhd.version, mvhd.flags, len(mvhd.payload)) == (0, 0, 100)
    assert struct.unpack_from(">IIII", mvhd.payload, 4) == (0, 0, 1000, 0)
    assert struct.unpack_from(">I", mvhd.payload, 96) == (3,)  # next_track_ID

    video, audio = find(boxes, "moov/trak")
    for trak, track_id, volume, size in ((video, 1, 0, (1280, 720)), (audio, 2, 0x0100, (0, 0))):
        tkhd = one(trak.children, "tkhd")
        assert (tkhd.version, tkhd.flags, len(tkhd.payload)) == (0, 3, 84)
        assert struct.unpack_from(">III", tkhd.payload, 12) == (track_id, 0, 0)
        assert struct.unpack_from(">H", tkhd.payload, 36) == (volume,)
        assert struct.unpack_from(">9I", tkhd.payload, 40) == (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
        assert struct.unpack_from(">II", tkhd.payload, 76) == (size[0] << 16, size[1] << 16)

    mdhd = one(video.children, "mdia/mdhd")
    assert struct.unpack_from(">IIIIHH", mdhd.payload, 4) == (0, 0, 90000, 0, 0x55C4, 0)
    assert struct.unpack_from(">I", one(audio.children, "mdia/mdhd").payload, 12) == (44100,)
    assert one(video.children, "mdia/hdlr").payload == bytes(8) + b"vide" + bytes(12) + b"VideoHandler\0"
    assert one(audio.children, "mdia/hdlr").payload == bytes(8) + b"soun" + bytes(12) + b"SoundHandler\0"
    vmhd = one(video.children, "mdia/minf/vmhd")
    assert (vmhd.version, vmhd.flags, vmhd.payload[4:]) == (0, 1, bytes(8))
    assert one(audio.children, "mdia/minf/smhd").payload == bytes(8)
    dref = one(video.children, "mdia/minf/dinf/dref")
    assert dref.payload == bytes(4) + struct.pack(">I", 1) + struct.pack(">I4sI", 12, b"url ", 1)
    for trak in (video, audio):
        stbl = one(trak.children, "mdia/minf/stbl")
        assert [box.payload for box in stbl.children[1:]] == [bytes(8), bytes(8), bytes(12), bytes(8)]

    entry, children = sample_entry(one(video.children, "mdia/minf/stbl/stsd"))
    assert entry.kind == "avc1"
    assert entry.payload[:8] == bytes(6) + b"\x00\x01"
    assert struct.unpack_from(">HH", entry.payload, 24) == (1280, 720)
    assert struct.unpack_from(">IIIH", entry.payload, 28) == (0x00480000, 0x00480000, 0, 1)
    assert entry.payload[42:74] == bytes(32)
    assert struct.unpack_from(">Hh", entry.payload, 74) == (0x18, -1)
    assert [(box.kind, box.payload) for box in children] == [("avcC", AVCC)]

    entry, children = sample_entry(one(audio.children, "mdia/minf/stbl/stsd"))
    assert entry.kind == "mp4a"
    assert entry.payload[:16] == bytes(6) + b"\x00\x01" + bytes(8)
    assert struct.unpack_from(">HHHHI", entry.payload, 16) == (2, 16, 0, 0, 44100 << 16)
    (esds,) = children
    assert (esds.kind, esds.version, esds.flags) == ("esds", 0, 0)
    tag, es, end = read_descriptor(esds.payload, 4)
    assert (tag, end) == (3, len(esds.payload))
    assert es[:3] == b"\x00\x00\x00"  # ES_ID 0, no flags
    tag, decoder_config, pos = read_descriptor(es, 3)
    assert tag == 4
    assert decoder_config[:2] == b"\x40\x15"  # AAC, audio stream
    assert read_descriptor(decoder_config, 13) == (5, ASC, len(decoder_config))
    assert read_descriptor(es, pos) == (6, b"\x02", len(es))

    trex = find(boxes, "moov/mvex/trex")
    assert [t.payload for t in trex] == [
        bytes(4) + struct.pack(">IIIII", 1, 1, 0, 0, NON_SYNC),
        bytes(4) + struct.pack(">IIIII", 2, 1, 0, 0, SYNC),
    ]
    assert sum(box.size for box in boxes) == len(data)


def test_single_track_header_claims_cmaf(impl: ModuleType) -> None:
    for track in (video_track(impl, 7), audio_track(impl, 7)):
        boxes = parse_boxes(impl.init_segment([track]))
        assert one(boxes, "ftyp").payload == b"iso6" + bytes(4) + b"iso6cmfcmp41"
        assert struct.unpack_from(">I", one(boxes, "moov/mvhd").payload, 96) == (8,)


@pytest.mark.parametrize(
    ("codec", "config_box", "full_box"),
    [("avc1", "avcC", False), ("hvc1", "hvcC", False), ("av01", "av1C", False), ("vp09", "vpcC", True)],
)
def test_video_sample_entries(impl: ModuleType, codec: str, config_box: str, full_box: bool) -> None:
    config = bytes(range(1, 30))
    boxes = parse_boxes(impl.init_segment([video_track(impl, codec=codec, config=config)]))
    entry, children = sample_entry(one(boxes, "moov/trak/mdia/minf/stbl/stsd"))
    assert entry.kind == codec
    assert [box.kind for box in children] == [config_box]
    # vpcC is "FullBox('vpcC', version = 1, 0)" around the record; the others are the record.
    assert children[0].payload == (b"\x01\x00\x00\x00" + config if full_box else config)


def test_high_sample_rate_and_long_config(impl: ModuleType) -> None:
    config = bytes(range(200))  # a descriptor body above 127 bytes takes two length bytes
    track = impl.Fmp4Track(1, "audio", "mp4a", config, 96000, sample_rate=96000, channels=6)
    boxes = parse_boxes(impl.init_segment([track]))
    entry, (esds,) = sample_entry(one(boxes, "moov/trak/mdia/minf/stbl/stsd"))
    # The 16.16 samplerate field cannot hold 96000: 0, and mdhd carries the rate.
    assert struct.unpack_from(">HHHHI", entry.payload, 16) == (6, 16, 0, 0, 0)
    assert struct.unpack_from(">I", one(boxes, "moov/trak/mdia/mdhd").payload, 12) == (96000,)
    _, es, _ = read_descriptor(esds.payload, 4)
    _, decoder_config, _ = read_descriptor(es, 3)
    assert decoder_config[13:16] == b"\x05\x81\x48"  # 200 = 1 * 128 + 72
    assert read_descriptor(decoder_config, 13)[1] == config


def test_styp(impl: ModuleType) -> None:
    writer = impl.FragmentWriter([video_track(impl)])
    assert writer.styp() == struct.pack(">I4s4sI4s", 20, b"styp", b"msdh", 0, b"msdh")


# --- fragments ----------------------------------------------------------------------------------


def fragment(data: bytes) -> tuple[Box, Box, list[Box]]:
    """(moof, mdat, trafs) of one fragment, after checking the moof/mdat layout."""
    boxes = parse_boxes(data)
    assert [box.kind for box in boxes] == ["moof", "mdat"]
    moof, mdat = boxes
    assert moof.start == 0
    assert [box.kind for box in moof.children[:1]] == ["mfhd"]
    return moof, mdat, moof.find("traf")


def sequence_number(moof: Box) -> int:
    mfhd = moof.children[0]
    assert (mfhd.version, mfhd.flags, len(mfhd.payload)) == (0, 0, 8)
    return int(struct.unpack_from(">I", mfhd.payload, 4)[0])


def traf_fields(traf: Box) -> tuple[int, int, Trun]:
    """(track id, tfdt, trun) of a traf, after checking tfhd and tfdt."""
    assert [box.kind for box in traf.children] == ["tfhd", "tfdt", "trun"]
    tfhd, tfdt, trun = traf.children
    assert (tfhd.version, tfhd.flags, len(tfhd.payload)) == (0, 0x020000, 8)
    assert (tfdt.version, tfdt.flags, len(tfdt.payload)) == (1, 0, 12)
    return struct.unpack_from(">I", tfhd.payload, 4)[0], struct.unpack_from(">Q", tfdt.payload, 4)[0], parse_trun(trun)


def two_track_writer(impl: ModuleType) -> Any:
    return impl.FragmentWriter([video_track(impl), audio_track(impl)])


def test_fragment_structure(impl: ModuleType) -> None:
    writer = two_track_writer(impl)
    video = [(0, 6000, True, b"I" * 700), (3000, 15000, False, b"P" * 300), (6000, 9000, False, b"B" * 90)]
    audio = [(0, b"a" * 20), (1024, b"b" * 21), (2048, b"c" * 22), (3072, b"d" * 23)]
    for (dts, pts, key, data), (adts, adata) in zip(video, audio, strict=False):
        writer.add(1, dts, pts, key, data)
        writer.add(2, adts, adts, True, adata)
    writer.add(2, 3072, 3072, True, audio[3][1])
    assert (writer.pending(1), writer.pending(2)) == (3, 4)

    data = writer.flush(7, {1: 9000})
    assert (writer.pending(1), writer.pending(2)) == (0, 0)
    moof, mdat, (vtraf, atraf) = fragment(data)
    assert sequence_number(moof) == 7
    assert moof.size == 8 + 16 + (64 + 3 * 16) + (64 + 4 * 12)

    track_id, tfdt, trun = traf_fields(vtraf)
    assert (track_id, tfdt, trun.version, trun.flags) == (1, 0, 1, 0x000F01)
    assert trun.entries == [(3000, 700, SYNC, 6000), (3000, 300, NON_SYNC, 12000), (3000, 90, NON_SYNC, 3000)]
    assert trun.data_offset == moof.size + 8
    track_id, tfdt, trun = traf_fields(atraf)
    # No composition offsets in the audio traf: the field is left out (flag 0x800 clear).
    assert (track_id, tfdt, trun.version, trun.flags) == (2, 0, 1, 0x000701)
    assert trun.entries == [(1024, 20, SYNC), (1024, 21, SYNC), (1024, 22, SYNC), (1024, 23, SYNC)]
    assert trun.data_offset == moof.size + 8 + 1090

    video_bytes = b"".join(v[3] for v in video)
    audio_bytes = b"".join(a[1] for a in audio)
    assert mdat.payload == video_bytes + audio_bytes
    assert data[moof.start + trun.data_offset :][: len(audio_bytes)] == audio_bytes


def test_negative_composition_offsets(impl: ModuleType) -> None:
    writer = impl.FragmentWriter([video_track(impl)])
    writer.add(1, 3000, 0, True, b"x")
    writer.add(1, 6000, 6000 + 0x7FFFFFFF, False, b"y")
    writer.add(1, 9000, 9000 - 0x80000000, False, b"z")
    _, _, (traf,) = fragment(writer.flush(1))
    assert traf_fields(traf)[2].entries == [
        (3000, 1, SYNC, -3000),
        (3000, 1, NON_SYNC, 0x7FFFFFFF),
        (3000, 1, NON_SYNC, -0x80000000),
    ]


def test_fragment_of_one_track_and_tfdt_64_bits(impl: ModuleType) -> None:
    writer = two_track_writer(impl)
    writer.add(2, 1 << 40, 1 << 40, True, b"aac")
    moof, mdat, (traf,) = fragment(writer.flush(0xFFFFFFFF))
    assert sequence_number(moof) == 0xFFFFFFFF
    assert traf_fields(traf)[:2] == (2, 1 << 40)
    assert mdat.payload == b"aac"


def flushed_durations(writer: Any, sequence: int, next_dts: dict[int, int] | None = None) -> list[list[int]]:
    _, _, trafs = fragment(writer.flush(sequence, next_dts))
    return [[entry[0] for entry in traf_fields(traf)[2].entries] for traf in trafs]


def test_last_sample_duration(impl: ModuleType) -> None:
    writer = two_track_writer(impl)
    # One sample and nothing known: one frame at 30 fps for video, one AAC frame for audio.
    writer.add(1, 0, 0, True, b"v")
    writer.add(2, 0, 0, True, b"a")
    assert flushed_durations(writer, 1) == [[3000], [1024]]
    # Several samples: the last lasts as long as the one before it.
    for dts in (3000, 6003):
        writer.add(1, dts, dts, False, b"v")
    writer.add(2, 1024, 1024, True, b"a")
    writer.add(2, 2048, 2048, True, b"a")
    writer.add(2, 3000, 3000, True, b"a")
    assert flushed_durations(writer, 2) == [[3003, 3003], [1024, 952, 952]]
    # One sample: the duration of the last one written for the track, if any.
    writer.add(1, 9006, 9006, False, b"v")
    writer.add(2, 3952, 3952, True, b"a")
    assert flushed_durations(writer, 3) == [[3003], [952]]
    # next_dts wins, per track; a track without samples may be named.
    writer.add(1, 12000, 12000, False, b"v")
    writer.add(1, 15000, 15000, False, b"v")
    assert flushed_durations(writer, 4, {1: 16500, 2: 99999}) == [[3000, 1500]]
    # ...and becomes the duration the next lone sample repeats. Equal dts are allowed.
    writer.add(1, 16500, 16500, False, b"v")
    writer.add(1, 16500, 16500, False, b"v")
    assert flushed_durations(writer, 5) == [[0, 0]]
    writer.add(1, 16500, 16500, False, b"v")
    assert flushed_durations(writer, 6, {1: 16500 + 0xFFFFFFFF}) == [[0xFFFFFFFF]]


def test_default_duration_follows_video_timescale(impl: ModuleType) -> None:
    writer = impl.FragmentWriter([impl.Fmp4Track(3, "video", "av01", b"", 1000)])
    writer.add(3, 5, 5, True, b"k")
    assert flushed_durations(writer, 1) == [[33]]


def test_flush_with_nothing_pending(impl: ModuleType) -> None:
    writer = two_track_writer(impl)
    assert writer.flush(1) == b""
    assert writer.flush(1, {1: 5}) == b""
    writer.add(1, 0, 0, True, b"v")
    assert writer.flush(2)
    assert writer.flush(3) == b""


def test_writable_data_is_copied_at_add_read_only_data_is_held(impl: ModuleType) -> None:
    writer = impl.FragmentWriter([video_track(impl)])
    frame = bytearray(b"frame")
    writer.add(1, 0, 0, True, frame)
    writer.add(1, 1, 1, True, memoryview(b"view"))
    writer.add(1, 2, 2, True, memoryview(b"..sliced..")[2:-2])
    writer.add(1, 3, 3, True, memoryview(b"0123456789")[::2])  # not contiguous: copied
    frame[:] = b"XXXXX"
    assert fragment(writer.flush(1))[1].payload == b"frameviewsliced02468"
    frame.extend(b"!")  # nothing of it is exported any more


def test_a_frame_view_from_ingest_is_held_until_the_flush() -> None:
    """The one copy of an ingested frame is the one into the fragment (no snapshot at add)."""
    payload = b"\x17\x01\x00\x00\x00" + b"\x00\x00\x00\x05" + b"\x65IDR!"
    data = native_flv.parse_video_tag(payload).data
    writer = native_segmenter.FragmentWriter([video_track(native_segmenter)])
    before = sys.getrefcount(data)
    writer.add(1, 0, 0, True, data)
    assert sys.getrefcount(data) == before + 1  # exported, not copied
    assert fragment(writer.flush(1))[1].payload == payload[5:]
    assert sys.getrefcount(data) == before


def test_track_value_class(impl: ModuleType) -> None:
    track = impl.Fmp4Track(1, "video", "avc1", bytearray(b"cfg"), 90000, width=2, height=3)
    assert track.config == b"cfg"
    assert type(track.config) is bytes
    same = impl.Fmp4Track(1, "video", "avc1", b"cfg", 90000, width=2, height=3)
    assert track == same
    assert hash(track) == hash(same)
    assert track != impl.Fmp4Track(1, "video", "avc1", b"cfg", 90000, width=2, height=4)
    assert repr(track) == (
        "Fmp4Track(track_id=1, kind='video', codec='avc1', config=b'cfg', timescale=90000, "
        "width=2, height=3, sample_rate=0, channels=0)"
    )
    with pytest.raises(AttributeError):
        track.width = 5


def test_native_and_pure_agree_on_hashes() -> None:
    args = (9, "audio", "mp4a", ASC, 48000)
    native = native_segmenter.Fmp4Track(*args, sample_rate=48000, channels=2)
    pure = pure_fmp4.Fmp4Track(*args, sample_rate=48000, channels=2)
    assert hash(native) == hash(pure)
    assert repr(native) == repr(pure)


# --- errors -------------------------------------------------------------------------------------

TRACK_ERRORS = [
    ((0, "video", "avc1", b"", 90000), {}, "fMP4: track id 0 is out of range (1..4294967295)"),
    ((1 << 32, "video", "avc1", b"", 90000), {}, "fMP4: track id 4294967296 is out of range (1..4294967295)"),
    ((1, "text", "avc1", b"", 90000), {}, "fMP4: unknown track kind 'text'"),
    ((1, "video", "avc3", b"", 90000), {}, "fMP4: unknown codec 'avc3'"),
    ((1, "video", "mp4a", b"", 90000), {}, "fMP4: codec 'mp4a' is not a video codec"),
    ((1, "audio", "hvc1", b"", 90000), {}, "fMP4: codec 'hvc1' is not a audio codec"),
    ((1, "video", "avc1", b"", 0), {}, "fMP4: timescale 0 is out of range (1..4294967295)"),
    ((1, "video", "avc1", b"", 90000), {"width": 65536}, "fMP4: width 65536 is out of range (0..65535)"),
    ((1, "video", "avc1", b"", 90000), {"height": -1}, "fMP4: height -1 is out of range (0..65535)"),
    ((1, "audio", "mp4a", b"", 48000), {"sample_rate": -1}, "fMP4: sample rate -1 is out of range (0..4294967295)"),
    ((1, "audio", "mp4a", b"", 48000), {"channels": 65536}, "fMP4: channels 65536 is out of range (0..65535)"),
    ((4, "audio", "mp4a", b"", 48000), {}, "fMP4: audio track 4 needs a sample rate"),
    (
        (1, "video", "avc1", bytes((1 << 20) + 1), 90000),
        {},
        "fMP4: codec configuration of 1048577 bytes is above the limit of 1048576 bytes",
    ),
]


@pytest.mark.parametrize(("args", "kwargs", "message"), TRACK_ERRORS)
def test_track_errors(impl: ModuleType, args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        impl.Fmp4Track(*args, **kwargs)
    assert str(caught.value) == message


@pytest.mark.parametrize("make", ["init_segment", "FragmentWriter"])
def test_track_list_errors(impl: ModuleType, make: str) -> None:
    function = getattr(impl, make)
    with pytest.raises(ValueError) as caught:
        function([])
    assert str(caught.value) == "fMP4: no tracks"
    with pytest.raises(ValueError) as caught:
        function([video_track(impl, 5), audio_track(impl, 6), audio_track(impl, 5)])
    assert str(caught.value) == "fMP4: duplicate track id 5"
    with pytest.raises(TypeError) as type_error:
        function([video_track(impl), "audio"])
    assert str(type_error.value) == "fMP4: expected Fmp4Track, got str"


I64_MAX = (1 << 63) - 1

ADD_ERRORS: list[tuple[tuple[Any, ...], type[Exception], str]] = [
    ((3, 0, 0, True, b""), ValueError, "fMP4: unknown track id 3"),
    ((-1, 0, 0, True, b""), ValueError, "fMP4: unknown track id -1"),
    ((1 << 40, 0, 0, True, b""), ValueError, "fMP4: unknown track id 1099511627776"),
    ((1, 6000, 6000, True, b""), ProtocolError, "fMP4: track 1 dts went backwards from 9000 to 6000"),
    ((1, -1, 0, True, b""), ProtocolError, f"fMP4: track 1 dts -1 is out of range (0..{I64_MAX})"),
    ((1, 1 << 63, 1 << 63, True, b""), ProtocolError, f"fMP4: track 1 dts {1 << 63} is out of range (0..{I64_MAX})"),
    (
        (1, 9000, 9000 + (1 << 31), True, b""),
        ProtocolError,
        "fMP4: track 1 composition offset 2147483648 is out of range (-2147483648..2147483647)",
    ),
    (
        (1, 9000, 9000 - (1 << 31) - 1, True, b""),
        ProtocolError,
        "fMP4: track 1 composition offset -2147483649 is out of range (-2147483648..2147483647)",
    ),
    (
        (1, I64_MAX, 1 << 64, True, b""),
        ProtocolError,
        f"fMP4: track 1 composition offset {(1 << 64) - I64_MAX} is out of range (-2147483648..2147483647)",
    ),
    (
        (1, I64_MAX, -(1 << 63), True, b""),
        ProtocolError,
        f"fMP4: track 1 composition offset {-(1 << 63) - I64_MAX} is out of range (-2147483648..2147483647)",
    ),
    (
        (1, 9000 + (1 << 32), 9000 + (1 << 32), True, b""),
        ProtocolError,
        "fMP4: track 1 dts jumped from 9000 to 4294976296, too far for a 32-bit sample duration",
    ),
]


@pytest.mark.parametrize(("args", "error", "message"), ADD_ERRORS)
def test_add_errors_change_nothing(impl: ModuleType, args: tuple, error: type[Exception], message: str) -> None:
    def writer_with_one_sample() -> Any:
        writer = two_track_writer(impl)
        writer.add(1, 9000, 12000, True, b"first")
        return writer

    writer = writer_with_one_sample()
    with pytest.raises(error) as caught:
        writer.add(*args)
    assert str(caught.value) == message
    assert writer.pending(1) == 1
    writer.add(1, 12000, 12000, False, b"next")
    reference = writer_with_one_sample()
    reference.add(1, 12000, 12000, False, b"next")
    assert writer.flush(1) == reference.flush(1)


def test_dts_must_not_go_back_across_flushes(impl: ModuleType) -> None:
    writer = two_track_writer(impl)
    writer.add(1, 9000, 9000, True, b"v")
    writer.flush(1)
    with pytest.raises(ProtocolError) as caught:
        writer.add(1, 6000, 6000, True, b"v")
    assert str(caught.value) == "fMP4: track 1 dts went backwards from 9000 to 6000"
    # A jump across a flush is only a new tfdt: no sample duration has to hold it.
    writer.add(1, 9000 + (1 << 40), 9000 + (1 << 40), True, b"v")
    assert traf_fields(fragment(writer.flush(2))[2][0])[1] == 9000 + (1 << 40)


FLUSH_ERRORS: list[tuple[tuple[Any, ...], type[Exception], str]] = [
    ((-1,), ValueError, "fMP4: sequence number -1 is out of range (0..4294967295)"),
    ((1 << 32,), ValueError, "fMP4: sequence number 4294967296 is out of range (0..4294967295)"),
    ((1, {9: 0}), ValueError, "fMP4: unknown track id 9"),
    ((1, {1: 8999}), ProtocolError, "fMP4: track 1 dts went backwards from 9000 to 8999"),
    ((1, {2: 5, 1: -1}), ProtocolError, f"fMP4: track 1 dts -1 is out of range (0..{I64_MAX})"),
    (
        (1, {1: 9000 + (1 << 32)}),
        ProtocolError,
        "fMP4: track 1 dts jumped from 9000 to 4294976296, too far for a 32-bit sample duration",
    ),
]


@pytest.mark.parametrize(("args", "error", "message"), FLUSH_ERRORS)
def test_flush_errors_change_nothing(impl: ModuleType, args: tuple, error: type[Exception], message: str) -> None:
    writer = two_track_writer(impl)
    writer.add(1, 6000, 6000, True, b"v")
    writer.add(1, 9000, 9000, False, b"w")
    with pytest.raises(error) as caught:
        writer.flush(*args)
    assert str(caught.value) == message
    assert writer.pending(1) == 2
    _, _, (traf,) = fragment(writer.flush(5))
    assert traf_fields(traf)[2].entries == [(3000, 1, SYNC), (3000, 1, NON_SYNC)]


def test_pending_errors(impl: ModuleType) -> None:
    writer = two_track_writer(impl)
    with pytest.raises(ValueError) as caught:
        writer.pending(3)
    assert str(caught.value) == "fMP4: unknown track id 3"


def test_bound_on_pending_samples(impl: ModuleType) -> None:
    writer = two_track_writer(impl)
    for dts in range(1 << 16):
        writer.add(2, dts, dts, True, b"")
    with pytest.raises(ProtocolError) as caught:
        writer.add(2, 1 << 16, 1 << 16, True, b"")
    assert str(caught.value) == "fMP4: track 2 already has 65536 samples pending, the limit per fragment"
    writer.add(1, 0, 0, True, b"other tracks still take samples")
    _, _, (_, traf) = fragment(writer.flush(1))
    assert len(traf_fields(traf)[2].entries) == 1 << 16
    writer.add(2, 1 << 16, 1 << 16, True, b"")


def test_bound_on_pending_bytes(impl: ModuleType) -> None:
    writer = two_track_writer(impl)
    chunk = bytes(1 << 24)  # the same object each time: the writer keeps references, not copies
    for dts in range(15):
        writer.add(1, dts, dts, True, chunk)
    writer.add(2, 0, 0, True, chunk[: (1 << 24) - 1])
    with pytest.raises(ProtocolError) as caught:
        writer.add(2, 1, 1, True, b"ab")
    assert str(caught.value) == "fMP4: pending samples would take 268435457 bytes, above the limit of 268435456 bytes"
    writer.add(2, 1, 1, True, b"a")
    assert len(writer.flush(1)) > 1 << 28
    writer.add(2, 2, 2, True, b"ab")


# --- real media round trips ---------------------------------------------------------------------

CODECS = {"h264": "avc1", "hevc": "hvc1", "av1": "av01", "vp9": "vp09", "aac": "mp4a"}
Unit = tuple[int, int, bool, bytes]  # dts, pts, keyframe, data


def require_tool(name: str) -> str:
    """The tool's path; a missing one fails the test (`make system-deps` installs them all)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make system-deps`")
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [require_tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=120,
    )


VIDEO_SOURCE = ("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30")
AUDIO_SOURCE = ("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100")
# MP4 sources keep their raw media times: a 90 kHz video timescale, no edit list applied on demux.
MP4_TIMES = ("-video_track_timescale", "90000", "-use_editlist", "0")
SOURCES: dict[str, tuple[str, ...]] = {
    "h264_aac.flv": (*VIDEO_SOURCE, *AUDIO_SOURCE, "-t", "3", "-c:v", "libx264", "-bf", "2", "-g", "30", "-c:a", "aac"),
    "h264.flv": (*VIDEO_SOURCE, "-t", "2", "-c:v", "libx264", "-bf", "2", "-g", "25"),
    "aac.flv": (*AUDIO_SOURCE, "-t", "2", "-c:a", "aac"),
    "hevc_aac.mp4": (
        *VIDEO_SOURCE,
        *AUDIO_SOURCE,
        "-t",
        "2",
        "-c:v",
        "libx265",
        "-x265-params",
        "log-level=error:bframes=2:keyint=30",
        "-tag:v",
        "hvc1",
        "-c:a",
        "aac",
        *MP4_TIMES,
    ),
    "av1.mp4": (*VIDEO_SOURCE, "-t", "1", "-c:v", "libsvtav1", "-preset", "12", "-g", "15", *MP4_TIMES),
    "vp9.mp4": (
        *VIDEO_SOURCE,
        "-t",
        "1",
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-g",
        "15",
        *MP4_TIMES,
    ),
}


@dataclass
class Stream:
    codec: str
    timescale: int
    config: bytes
    width: int
    height: int
    sample_rate: int
    channels: int
    units: list[Unit]


def vpcc_record(mp4: bytes) -> bytes:
    """The VPCodecConfigurationRecord of an MP4's vp09 sample entry (ffmpeg exposes no extradata)."""
    stsd = one(parse_boxes(mp4), "moov/trak/mdia/minf/stbl/stsd")
    _, children = sample_entry(stsd)
    return one(children, "vpcC").payload[4:]


def demux(path: Path) -> list[Stream]:
    """Each stream of a file with its access units in its track's timescale (90 kHz / sample rate)."""
    with av.open(str(path)) as container:
        streams = []
        for source in container.streams:
            context = source.codec_context
            if source.type == "audio":
                timescale, width, height = source.sample_rate, 0, 0
                sample_rate, channels = source.sample_rate, context.channels
            else:
                timescale, width, height, sample_rate, channels = 90000, context.width, context.height, 0, 0
            config = bytes(context.extradata or b"")
            if source.codec.canonical_name == "vp9":
                config = vpcc_record(path.read_bytes())
            streams.append(
                Stream(CODECS[source.codec.canonical_name], timescale, config, width, height, sample_rate, channels, [])
            )
        for packet in container.demux():
            if packet.size == 0:
                continue
            assert packet.time_base is not None and packet.dts is not None and packet.pts is not None
            stream = streams[packet.stream.index]
            scale = Fraction(packet.time_base) * stream.timescale
            unit = (round(packet.dts * scale), round(packet.pts * scale), packet.is_keyframe, bytes(packet))
            stream.units.append(unit)
    return streams


@pytest.fixture(scope="session")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    folder = tmp_path_factory.mktemp("fmp4_sources")
    made: dict[str, Path] = {}

    def source(name: str) -> Path:
        if name not in made:
            made[name] = folder / name
            ffmpeg(*SOURCES[name], str(made[name]))
        return made[name]

    return source


def mux(impl: ModuleType, streams: list[Stream], cut: str) -> bytes:
    """init + fragments, flushed at each keyframe of the first stream (a segment, opened by styp, and
    told the cutting unit's dts) or every 5 units with nothing told (LL-HLS parts)."""
    tracks = [
        impl.Fmp4Track(
            index + 1,
            "audio" if stream.codec == "mp4a" else "video",
            stream.codec,
            stream.config,
            stream.timescale,
            width=stream.width,
            height=stream.height,
            sample_rate=stream.sample_rate,
            channels=stream.channels,
        )
        for index, stream in enumerate(streams)
    ]
    writer = impl.FragmentWriter(tracks)
    out = [impl.init_segment(tracks)]
    interleaved = sorted(
        (
            (Fraction(unit[0], stream.timescale), index, unit)
            for index, stream in enumerate(streams)
            for unit in stream.units
        ),
        key=lambda item: item[:2],
    )
    sequence = 1
    for added, (_, index, (dts, pts, keyframe, data)) in enumerate(interleaved):
        track_id = index + 1
        segment_start = added % 40 == 0 if streams[0].codec == "mp4a" else keyframe
        if cut == "segments" and index == 0 and segment_start:
            if writer.pending(track_id):
                out.append(writer.flush(sequence, {track_id: dts}))
                sequence += 1
            out.append(writer.styp())
        elif cut == "parts" and added and added % 5 == 0:
            out.append(writer.flush(sequence))
            sequence += 1
        writer.add(track_id, dts, pts, keyframe, data)
    out.append(writer.flush(sequence))
    return b"".join(out)


def check_playable(path: Path, streams: list[Stream]) -> None:
    """ffprobe reads and decodes every frame without a word on stderr; PyAV decodes all video."""
    probe = subprocess.run(
        [
            require_tool("ffprobe"),
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert probe.stderr == ""
    counts = [int(stream["nb_read_frames"]) for stream in json.loads(probe.stdout)["streams"]]
    assert counts == [len(stream.units) for stream in streams]
    if streams[0].codec == "mp4a":
        return
    with av.open(str(path)) as container:
        video = container.streams[0]
        frames = [frame for packet in container.demux(video) for frame in packet.decode()]
    assert len(frames) == len(streams[0].units)
    assert {(frame.width, frame.height) for frame in frames} == {(streams[0].width, streams[0].height)}


ROUND_TRIPS = [
    ("h264_aac.flv", "segments"),
    ("h264_aac.flv", "parts"),
    ("h264.flv", "segments"),
    ("aac.flv", "segments"),
    ("aac.flv", "parts"),
    ("hevc_aac.mp4", "segments"),
    ("av1.mp4", "segments"),
    ("vp9.mp4", "parts"),
]


@pytest.mark.parametrize(("source", "cut"), ROUND_TRIPS)
def test_round_trip_through_pyav(
    impl: ModuleType, sources: Callable[[str], Path], tmp_path: Path, source: str, cut: str
) -> None:
    streams = demux(sources(source))
    assert all(len(stream.units) > 20 for stream in streams)
    if streams[0].codec != "mp4a":
        assert any(pts != dts for dts, pts, _, _ in streams[0].units) or streams[0].codec in ("av01", "vp09")
    out = tmp_path / "out.mp4"
    out.write_bytes(mux(impl, streams, cut))
    got = demux(out)
    for mine, theirs in zip(got, streams, strict=True):
        assert (mine.codec, mine.timescale, mine.config) == (theirs.codec, theirs.timescale, theirs.config)
        assert (mine.width, mine.height, mine.sample_rate, mine.channels) == (
            theirs.width,
            theirs.height,
            theirs.sample_rate,
            theirs.channels,
        )
        assert mine.units == theirs.units
    check_playable(out, streams)
