"""MPEG-TS muxer: the Cython half of `owncast_fast._native.segmenter` and its pure-Python twin, run
through the same tests.

The TS reader below is written for the tests from ISO/IEC 13818-1 and shares no code with the
muxer; the round trips at the end demux our output with PyAV and check it with ffprobe.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import av.logging
import pytest

from owncast_fast._native import segmenter as native_segmenter
from owncast_fast._pure import mpegts as pure_mpegts
from owncast_fast.errors import ProtocolError
from owncast_fast.media.units import AccessUnit, Track

PMT_PID, VIDEO_PID, AUDIO_PID = 0x1000, 0x100, 0x101
CLOCK = 1 << 33
START = b"\x00\x00\x00\x01"
AUD_AVC = START + b"\x09\xf0"
AUD_HEVC = START + b"\x46\x01\x50"
SPS = b"\x67\x64\x00\x1f\xac\xd9"
PPS = b"\x68\xeb\xe3\xcb"
AAC_LC_44100_STEREO = bytes((0x12, 0x10))


@pytest.fixture(scope="module", params=[native_segmenter, pure_mpegts], ids=["cython", "pure"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


# --- an independent TS reader ---------------------------------------------------------------------


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2, bit by bit (the muxer uses a table)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def test_crc_reference() -> None:
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7  # the catalogue check value of CRC-32/MPEG-2


@dataclass
class Packet:
    pid: int
    unit_start: bool
    counter: int
    control: int
    flags: int = 0
    pcr: int | None = None
    adaptation_size: int = 0  # bytes of adaptation field, its length byte included
    payload: bytes = b""


def read_packets(data: bytes) -> list[Packet]:
    """Parse TS packets, checking every fixed field and the adaptation field's stuffing."""
    assert len(data) % 188 == 0, f"{len(data)} bytes is not a whole number of packets"
    packets = []
    for offset in range(0, len(data), 188):
        raw = data[offset : offset + 188]
        assert raw[0] == 0x47
        assert raw[1] & 0xA0 == 0  # transport_error_indicator, transport_priority
        assert raw[3] >> 6 == 0  # not scrambled
        packet = Packet(
            pid=((raw[1] & 0x1F) << 8) | raw[2],
            unit_start=bool(raw[1] & 0x40),
            counter=raw[3] & 0x0F,
            control=(raw[3] >> 4) & 3,
        )
        assert packet.control in (1, 2, 3)
        pos = 4
        if packet.control & 2:
            length = raw[4]
            assert length == 183 if packet.control == 2 else length <= 182
            field_bytes = raw[5 : 5 + length]
            packet.adaptation_size = 1 + length
            pos = 5 + length
            if length:
                packet.flags = field_bytes[0]
                assert packet.flags & ~0x50 == 0, f"unexpected adaptation flags {packet.flags:#x}"
                rest = field_bytes[1:]
                if packet.flags & 0x10:
                    b = rest[:6]
                    assert b[4] & 0x7E == 0x7E and b[4] & 1 == 0 and b[5] == 0  # reserved, extension 0
                    packet.pcr = (b[0] << 25) | (b[1] << 17) | (b[2] << 9) | (b[3] << 1) | (b[4] >> 7)
                    rest = rest[6:]
                assert set(rest) <= {0xFF}, "adaptation field stuffing must be 0xFF"
        if packet.control & 1:
            packet.payload = raw[pos:]
            assert packet.payload
        packets.append(packet)
    return packets


def check_counters(packets: list[Packet], start: dict[int, int] | None = None) -> dict[int, int]:
    """Continuity counters go up by one per packet with payload and stay put on the others."""
    last = dict(start or {})
    for packet in packets:
        if packet.pid in last:
            step = 1 if packet.control & 1 else 0
            assert packet.counter == (last[packet.pid] + step) % 16, f"PID {packet.pid:#x} counter jumps"
        last[packet.pid] = packet.counter
    return last


@dataclass
class Pes:
    stream_id: int
    pts: int
    dts: int | None
    payload: bytes
    first: Packet
    packets: list[Packet] = field(default_factory=list)


def read_timestamp(b: bytes, prefix: int) -> int:
    assert b[0] >> 4 == prefix
    assert b[0] & 1 and b[2] & 1 and b[4] & 1, "marker bits"
    return (((b[0] >> 1) & 7) << 30) | (b[1] << 22) | ((b[2] >> 1) << 15) | (b[3] << 7) | (b[4] >> 1)


def parse_pes(first: Packet, packets: list[Packet]) -> Pes:
    data = b"".join(p.payload for p in packets)
    assert data[:3] == b"\x00\x00\x01"
    length = int.from_bytes(data[4:6], "big")
    if length:
        assert length == len(data) - 6
    assert data[6] == 0x84  # '10', data_alignment_indicator
    header_length = data[8]
    if data[7] == 0xC0:
        assert header_length == 10
        pts, dts = read_timestamp(data[9:14], 3), read_timestamp(data[14:19], 1)
    else:
        assert data[7] == 0x80 and header_length == 5
        pts, dts = read_timestamp(data[9:14], 2), None
    return Pes(data[3], pts, dts, data[9 + header_length :], first, packets)


def read_pes(packets: list[Packet], pid: int) -> list[Pes]:
    out: list[Pes] = []
    current: list[Packet] = []
    for packet in packets:
        if packet.pid != pid or not packet.control & 1:
            continue
        if packet.unit_start and current:
            out.append(parse_pes(current[0], current))
            current = []
        assert current or packet.unit_start, "PES data before a payload_unit_start_indicator"
        current.append(packet)
    if current:
        out.append(parse_pes(current[0], current))
    return out


def read_section(packet: Packet) -> bytes:
    assert packet.unit_start and packet.payload[0] == 0  # pointer_field
    section_length = ((packet.payload[2] & 0x0F) << 8) | packet.payload[3]
    section = packet.payload[1 : 4 + section_length]
    assert set(packet.payload[4 + section_length :]) <= {0xFF}
    assert crc32_mpeg2(section) == 0, "CRC_32 does not check"
    return section


def program_streams(pmt: bytes) -> tuple[int, list[tuple[int, int]]]:
    """PCR PID and (stream_type, PID) of each stream of a PMT section."""
    assert pmt[0] == 0x02 and pmt[3:5] == b"\x00\x01" and pmt[5] == 0xC1
    pcr_pid = ((pmt[8] & 0x1F) << 8) | pmt[9]
    info_length = ((pmt[10] & 0x0F) << 8) | pmt[11]
    pos, end = 12 + info_length, len(pmt) - 4
    streams = []
    while pos < end:
        streams.append((pmt[pos], ((pmt[pos + 1] & 0x1F) << 8) | pmt[pos + 2]))
        pos += 5 + (((pmt[pos + 3] & 0x0F) << 8) | pmt[pos + 4])
    return pcr_pid, streams


def avcc(sps: list[bytes], pps: list[bytes], length_size: int = 4, trailer: bytes = b"") -> bytes:
    out = bytes((1, 0x64, 0, 0x1F, 0xFC | (length_size - 1), 0xE0 | len(sps)))
    for nal in sps:
        out += len(nal).to_bytes(2, "big") + nal
    out += bytes((len(pps),))
    for nal in pps:
        out += len(nal).to_bytes(2, "big") + nal
    return out + trailer


def hvcc(arrays: list[tuple[int, list[bytes]]], length_size: int = 4) -> bytes:
    out = bytes((1, 1)) + b"\x60\x00\x00\x00" + bytes(6) + bytes((93, 0xF0, 0, 0xFC, 0xFD, 0xF8, 0xF8, 0, 0))
    out += bytes((0x0C | (length_size - 1), len(arrays)))
    for nal_type, nals in arrays:
        out += bytes((0x80 | nal_type,)) + len(nals).to_bytes(2, "big")
        for nal in nals:
            out += len(nal).to_bytes(2, "big") + nal
    return out


def avcc_unit(*nals: bytes, length_size: int = 4) -> bytes:
    return b"".join(len(nal).to_bytes(length_size, "big") + nal for nal in nals)


def avc_muxer(impl: ModuleType, **kwargs: Any) -> Any:
    return impl.TsMuxer(video_codec="avc1", video_config=avcc([SPS], [PPS]), **kwargs)


# --- PSI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "pcr_pid", "streams"),
    [
        ({"video_codec": "avc1", "video_config": avcc([SPS], [PPS]), "audio_config": AAC_LC_44100_STEREO},
         VIDEO_PID, [(0x1B, VIDEO_PID), (0x0F, AUDIO_PID)]),
        ({"video_codec": "hvc1", "video_config": hvcc([])}, VIDEO_PID, [(0x24, VIDEO_PID)]),
        ({"video_codec": None, "audio_config": AAC_LC_44100_STEREO}, AUDIO_PID, [(0x0F, AUDIO_PID)]),
    ],
    ids=["avc+aac", "hevc", "aac"],
)  # fmt: skip
def test_pat_and_pmt(impl: ModuleType, kwargs: dict[str, Any], pcr_pid: int, streams: list[tuple[int, int]]) -> None:
    muxer = impl.TsMuxer(**kwargs)
    assert (muxer.PMT_PID, muxer.VIDEO_PID, muxer.AUDIO_PID, muxer.PACKET_SIZE) == (PMT_PID, VIDEO_PID, AUDIO_PID, 188)
    psi = muxer.start_segment()
    pat, pmt = read_packets(psi)
    assert (pat.pid, pmt.pid) == (0, PMT_PID)
    # table_id 0, section_length 13, transport_stream_id 1, version 0 current, program 1 -> PID 0x1000.
    assert read_section(pat) == bytes.fromhex("00b00d0001c100000001f000") + crc32_mpeg2(
        bytes.fromhex("00b00d0001c100000001f000")
    ).to_bytes(4, "big")
    assert program_streams(read_section(pmt)) == (pcr_pid, streams)
    # Each segment repeats them, with the counters moving on.
    counters = check_counters(read_packets(psi))
    for _ in range(20):
        counters = check_counters(read_packets(muxer.start_segment()), counters)


# --- video PES ----------------------------------------------------------------------------------


def test_video_pes_fields(impl: ModuleType) -> None:
    muxer = avc_muxer(impl)
    idr = b"\x65" + bytes(range(256)) * 8
    packets = read_packets(muxer.write_video(9000, 12000, True, avcc_unit(idr)))
    (pes,) = read_pes(packets, VIDEO_PID)
    assert (pes.stream_id, pes.pts, pes.dts) == (0xE0, 12000, 9000)
    assert pes.payload == AUD_AVC + START + SPS + START + PPS + START + idr
    assert packets[0].unit_start and not any(p.unit_start for p in packets[1:])
    assert packets[0].flags == 0x50 and packets[0].pcr == 9000  # PCR + random_access_indicator
    assert all(p.adaptation_size == 0 for p in packets[1:-1])


@pytest.mark.parametrize(
    ("dts", "pts", "wire_dts", "wire_pts"),
    [
        (0, 0, None, 0),
        (5, 5, None, 5),
        (CLOCK - 1, CLOCK - 1, None, CLOCK - 1),
        (CLOCK - 3000, CLOCK + 3000, CLOCK - 3000, 3000),  # the 33-bit wrap between DTS and PTS
        (-6000, 0, CLOCK - 6000, 0),  # negative DTS of the first B-frame GOP, as MP4 sources give
        (7 * CLOCK + 1, 7 * CLOCK + 2, 1, 2),
        (0x1_5555_5555, 0x0_AAAA_AAAA, 0x1_5555_5555, 0x0_AAAA_AAAA),  # alternating bits across markers
    ],
)
def test_timestamps_mod_2_33(impl: ModuleType, dts: int, pts: int, wire_dts: int | None, wire_pts: int) -> None:
    (pes,) = read_pes(read_packets(avc_muxer(impl).write_video(dts, pts, False, avcc_unit(b"\x41\x9a"))), VIDEO_PID)
    assert (pes.pts, pes.dts) == (wire_pts, wire_dts)
    assert pes.first.pcr == (wire_pts if wire_dts is None else wire_dts)


@pytest.mark.parametrize("nal_size", [*range(140, 200), 183 * 2 - 30, 184 * 3 - 40, 184 * 3 - 39, 65000, 70000])
def test_packet_boundaries_and_stuffing(impl: ModuleType, nal_size: int) -> None:
    """Every PES size near a packet boundary: stuffing makes 188-byte packets and nothing is lost."""
    muxer = avc_muxer(impl, audio_config=AAC_LC_44100_STEREO)
    nal = b"\x41" + bytes((i * 7) & 0xFF for i in range(nal_size - 1))
    out = muxer.write_video(0, 0, False, avcc_unit(nal)) + muxer.write_video(3000, 3000, False, avcc_unit(nal))
    packets = read_packets(out)
    check_counters(packets)
    for pes in read_pes(packets, VIDEO_PID):
        assert pes.payload == AUD_AVC + START + nal
        # Only the first packet (PCR) and the last (stuffing) have an adaptation field.
        assert all(p.adaptation_size == 0 for p in pes.packets[1:-1])
    audio = read_packets(muxer.write_audio(0, nal[: min(nal_size, 8184)]))
    (pes,) = read_pes(audio, AUDIO_PID)
    assert pes.payload[7:] == nal[: min(nal_size, 8184)]
    assert all(p.adaptation_size == 0 for p in audio[:-1])  # no PCR on audio next to video


def test_single_stuffing_byte(impl: ModuleType) -> None:
    """A packet one byte short of full gets an adaptation field of length 0 (13818-1 2.4.3.5)."""
    muxer = avc_muxer(impl, audio_config=AAC_LC_44100_STEREO)
    # PES header 14 + ADTS 7 + 162 = 183 bytes: one packet with one stuffing byte.
    (packet,) = read_packets(muxer.write_audio(0, bytes(162)))
    assert (packet.control, packet.adaptation_size, packet.flags, len(packet.payload)) == (3, 1, 0, 183)


def test_counters_continue_across_calls_and_segments(impl: ModuleType) -> None:
    muxer = avc_muxer(impl, audio_config=AAC_LC_44100_STEREO)
    counters: dict[int, int] = {}
    for i in range(40):
        out = muxer.start_segment() if i % 7 == 0 else b""
        out += muxer.write_video(i * 3000, i * 3000 + 6000, i % 7 == 0, avcc_unit(b"\x41" + bytes(i * 97)))
        out += muxer.write_audio(i * 2089, bytes(200 + i))
        counters = check_counters(read_packets(out), counters)
    assert set(counters) == {0, PMT_PID, VIDEO_PID, AUDIO_PID}


def test_annexb_conversion(impl: ModuleType) -> None:
    muxer = avc_muxer(impl)
    sei, slice_ = b"\x06\x05\x01\x00\x80", b"\x41\x9a\x00"

    def payload(keyframe: bool, unit: bytes) -> bytes:
        (pes,) = read_pes(read_packets(muxer.write_video(0, 0, keyframe, unit)), VIDEO_PID)
        return pes.payload

    # AUD first; the record's SPS and PPS before keyframes only; zero-length NAL units dropped.
    assert payload(False, avcc_unit(sei, b"", slice_)) == AUD_AVC + START + sei + START + slice_
    assert payload(True, avcc_unit(sei, b"\x65")) == AUD_AVC + START + SPS + START + PPS + START + sei + START + b"\x65"
    # A unit that starts with its own AUD keeps it and gets no second one.
    assert payload(False, avcc_unit(b"\x09\x10", slice_)) == START + b"\x09\x10" + START + slice_
    # A keyframe carrying its own SPS (encoders set to repeat headers) gets no copy from the record.
    in_band = avcc_unit(b"\x67\x01", b"\x68\x02", b"\x65")
    assert payload(True, in_band) == AUD_AVC + START + b"\x67\x01" + START + b"\x68\x02" + START + b"\x65"
    assert payload(False, b"") == AUD_AVC


def test_buffer_inputs(impl: ModuleType) -> None:
    unit, frame = avcc_unit(b"\x65" + bytes(300)), bytes(range(200))
    outputs = []
    for wrap in (bytes, bytearray, memoryview):
        muxer = avc_muxer(impl, audio_config=wrap(AAC_LC_44100_STEREO))
        muxer.set_video_config(wrap(avcc([SPS], [PPS])))
        outputs.append(muxer.write_video(0, 0, True, wrap(unit)) + muxer.write_audio(0, wrap(frame)))
    assert outputs[0] == outputs[1] == outputs[2]


@pytest.mark.parametrize("length_size", [1, 2, 4])
def test_nal_length_sizes(impl: ModuleType, length_size: int) -> None:
    muxer = impl.TsMuxer(video_codec="avc1", video_config=avcc([SPS], [PPS], length_size))
    nals = [b"\x06" + bytes(10), b"\x41" + bytes(200)]
    (pes,) = read_pes(
        read_packets(muxer.write_video(0, 0, False, avcc_unit(*nals, length_size=length_size))), VIDEO_PID
    )
    assert pes.payload == AUD_AVC + START + nals[0] + START + nals[1]


def test_hevc(impl: ModuleType) -> None:
    vps, sps, pps, sei = b"\x40\x01\x0c", b"\x42\x01\x01", b"\x44\x01\xc1", b"\x4e\x01\x05"
    record = hvcc([(32, [vps]), (33, [sps]), (34, [pps]), (39, [sei])], length_size=2)
    muxer = impl.TsMuxer(video_codec="hvc1", video_config=record)
    (pmt_stream,) = program_streams(read_section(read_packets(muxer.start_segment())[1]))[1]
    assert pmt_stream == (0x24, VIDEO_PID)
    idr, trail = b"\x26\x01\xaf", b"\x02\x01\xd0"

    def payload(keyframe: bool, unit: bytes) -> bytes:
        (pes,) = read_pes(read_packets(muxer.write_video(0, 0, keyframe, unit)), VIDEO_PID)
        return pes.payload

    record_sets = START + vps + START + sps + START + pps + START + sei
    assert payload(True, avcc_unit(idr, length_size=2)) == AUD_HEVC + record_sets + START + idr
    assert payload(False, avcc_unit(trail, length_size=2)) == AUD_HEVC + START + trail
    in_band = avcc_unit(vps, sps, pps, idr, length_size=2)
    assert payload(True, in_band) == AUD_HEVC + START + vps + START + sps + START + pps + START + idr
    own_aud = b"\x46\x01\x10"
    assert payload(False, avcc_unit(own_aud, trail, length_size=2)) == START + own_aud + START + trail


def test_set_video_config(impl: ModuleType) -> None:
    muxer = avc_muxer(impl)
    new_sps, new_pps = b"\x67\x4d\x00\x28", b"\x68\xee\x3c\x80"
    muxer.set_video_config(avcc([new_sps], [new_pps], length_size=2))

    def payload(keyframe: bool, unit: bytes) -> bytes:
        (pes,) = read_pes(read_packets(muxer.write_video(0, 0, keyframe, unit)), VIDEO_PID)
        return pes.payload

    assert payload(False, avcc_unit(b"\x41", length_size=2)) == AUD_AVC + START + b"\x41"
    assert (
        payload(True, avcc_unit(b"\x65", length_size=2))
        == AUD_AVC + START + new_sps + START + new_pps + START + b"\x65"
    )
    # A broken record is refused and the one in use stays.
    with pytest.raises(ProtocolError):
        muxer.set_video_config(b"\x01")
    assert (
        payload(True, avcc_unit(b"\x65", length_size=2))
        == AUD_AVC + START + new_sps + START + new_pps + START + b"\x65"
    )


def test_avcc_trailing_fields_ignored(impl: ModuleType) -> None:
    # High profiles append chroma_format, bit depths and SPS extensions after the PPS list.
    muxer = impl.TsMuxer(video_codec="avc1", video_config=avcc([SPS], [PPS], trailer=b"\xfd\xf8\xf8\x00"))
    (pes,) = read_pes(read_packets(muxer.write_video(0, 0, True, avcc_unit(b"\x65"))), VIDEO_PID)
    assert pes.payload == AUD_AVC + START + SPS + START + PPS + START + b"\x65"


# --- PCR ----------------------------------------------------------------------------------------


def pcrs(packets: list[Packet]) -> list[int]:
    return [p.pcr for p in packets if p.pcr is not None]


def test_pcr_on_every_video_pes_and_keyframes_flagged(impl: ModuleType) -> None:
    muxer = avc_muxer(impl, audio_config=AAC_LC_44100_STEREO)
    out = b""
    for i in range(60):
        out += muxer.write_video(i * 3003, i * 3003 + 6006, i % 30 == 0, avcc_unit(b"\x41" + bytes(3000)))
        out += muxer.write_audio(i * 2089, bytes(300))
    packets = read_packets(out)
    video = read_pes(packets, VIDEO_PID)
    assert [p.first.pcr for p in video] == [i * 3003 for i in range(60)]
    assert [bool(p.first.flags & 0x40) for p in video] == [i % 30 == 0 for i in range(60)]
    assert all(p.pcr is None and p.flags == 0 for p in packets if p.pid == AUDIO_PID)


@pytest.mark.parametrize(
    ("gap", "fillers"),
    [(9000, 0), (9001, 1), (18000, 1), (18001, 2), (35000, 3), (450000, 49), (450001, 0)],
)
def test_pcr_fillers_keep_100_ms(impl: ModuleType, gap: int, fillers: int) -> None:
    """A slow frame rate still gets a PCR every 100 ms; a gap over 5 s is an interruption."""
    muxer = avc_muxer(impl)
    first = muxer.write_video(CLOCK - 100, CLOCK - 100, True, avcc_unit(b"\x65"))
    packets = read_packets(first + muxer.write_video(CLOCK - 100 + gap, CLOCK - 100 + gap, False, avcc_unit(b"\x41")))
    check_counters(packets)
    assert sum(1 for p in packets if p.control == 2) == fillers
    values = pcrs(packets)
    assert len(values) == fillers + 2
    steps = [(b - a) % CLOCK for a, b in itertools.pairwise(values)]
    assert sum(steps) == gap
    if gap <= 450000:
        assert max(steps) <= 9000


def test_audio_only_pcr_and_random_access(impl: ModuleType) -> None:
    muxer = impl.TsMuxer(video_codec=None, audio_config=AAC_LC_44100_STEREO)
    out = muxer.start_segment()
    for i in range(30):
        out += muxer.write_audio(i * 2089 + (20000 if i == 20 else 0), bytes(100 + 10 * i))
    packets = read_packets(out)
    check_counters(packets)
    frames = read_pes(packets, AUDIO_PID)
    assert all(p.first.flags == 0x50 and p.first.pcr == p.pts for p in frames)
    values = pcrs(packets)
    assert max((b - a) for a, b in itertools.pairwise(values)) <= 9000


# --- ADTS ---------------------------------------------------------------------------------------


def adts_fields(header: bytes) -> dict[str, int]:
    bits = int.from_bytes(header, "big")

    def take(start: int, count: int) -> int:
        return (bits >> (56 - start - count)) & ((1 << count) - 1)

    return {
        "syncword": take(0, 12),
        "id": take(12, 1),
        "layer": take(13, 2),
        "protection_absent": take(15, 1),
        "profile": take(16, 2),
        "sampling_frequency_index": take(18, 4),
        "private": take(22, 1),
        "channel_configuration": take(23, 3),
        "original_home_copyright": take(26, 4),
        "frame_length": take(30, 13),
        "buffer_fullness": take(43, 11),
        "raw_data_blocks": take(54, 2),
    }


def asc(object_type: int, frequency_index: int, channels: int, extension: int | None = None, inner: int = 2) -> bytes:
    """An AudioSpecificConfig, packed bit by bit (14496-3 1.6.2.1); `extension` makes it explicit SBR."""

    def audio_object_type(value: int) -> list[tuple[int, int]]:
        return [(5, value)] if value < 31 else [(5, 31), (6, value - 32)]

    def frequency(index: int) -> list[tuple[int, int]]:
        return [(4, index)] + ([(24, 44100)] if index == 15 else [])

    fields = [*audio_object_type(object_type), *frequency(frequency_index), (4, channels)]
    if extension is not None:
        fields += [*frequency(extension), *audio_object_type(inner)]
    bits = "".join(format(value, f"0{width}b") for width, value in fields)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


@pytest.mark.parametrize(
    ("config", "profile", "frequency_index", "channels"),
    [
        (AAC_LC_44100_STEREO, 1, 4, 2),
        (bytes.fromhex("120856e500"), 1, 4, 1),  # ffmpeg's LC with the backward-compatible SBR sync extension
        (asc(2, 3, 2), 1, 3, 2),
        (asc(2, 7, 7), 1, 7, 7),
        (asc(1, 4, 2), 0, 4, 2),  # AAC Main
        (asc(4, 12, 1), 3, 12, 1),  # AAC LTP, 7.35 kHz
        (asc(5, 7, 2, extension=4), 1, 7, 2),  # explicit HE-AAC: the LC core at 22.05 kHz
        (asc(29, 6, 1, extension=3), 1, 6, 1),  # explicit HE-AAC v2 (PS), mono core
        (asc(5, 4, 2, extension=15), 1, 4, 2),  # extension rate written out in 24 bits
    ],
    ids=["lc", "lc-sync-ext", "lc-48k", "lc-7.1", "main", "ltp", "he-aac", "he-aac-v2", "he-aac-explicit-rate"],
)
def test_adts_header(impl: ModuleType, config: bytes, profile: int, frequency_index: int, channels: int) -> None:
    muxer = impl.TsMuxer(video_codec=None, audio_config=config)
    for size in (1, 300, 2040, 8184):
        frame = bytes(range(256)) * (size // 256) + bytes(size % 256)
        (pes,) = read_pes(read_packets(muxer.write_audio(1234, frame)), AUDIO_PID)
        assert (pes.stream_id, pes.pts, pes.dts) == (0xC0, 1234, None)
        assert pes.payload[7:] == frame
        assert adts_fields(pes.payload[:7]) == {
            "syncword": 0xFFF,
            "id": 0,
            "layer": 0,
            "protection_absent": 1,
            "profile": profile,
            "sampling_frequency_index": frequency_index,
            "private": 0,
            "channel_configuration": channels,
            "original_home_copyright": 0,
            "frame_length": size + 7,
            "buffer_fullness": 0x7FF,
            "raw_data_blocks": 0,
        }


def test_empty_audio_frame_writes_nothing(impl: ModuleType) -> None:
    muxer = impl.TsMuxer(video_codec=None, audio_config=AAC_LC_44100_STEREO)
    assert muxer.write_audio(0, b"") == b""
    check_counters(read_packets(muxer.write_audio(0, b"\x01")), {AUDIO_PID: 15})


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "message"),
    [
        (b"\x00\x00\x00\x05\x41\x00", "MPEG-TS: NAL unit length 5 overruns the access unit (2 bytes left)"),
        (avcc_unit(b"\x41\x00") + b"\x00\x00\x01\x00",
         "MPEG-TS: NAL unit length 256 overruns the access unit (0 bytes left)"),
        (b"\xff\xff\xff\xff" + bytes(10),
         "MPEG-TS: NAL unit length 4294967295 overruns the access unit (10 bytes left)"),
        (avcc_unit(b"\x41\x00") + b"\x00\x00", "MPEG-TS: NAL unit length prefix cut short (2 of 4 bytes left)"),
    ],
)  # fmt: skip
def test_bad_access_unit(impl: ModuleType, unit: bytes, message: str) -> None:
    muxer = avc_muxer(impl)
    with pytest.raises(ProtocolError) as caught:
        muxer.write_video(0, 0, True, unit)
    assert str(caught.value) == message
    # Nothing was sent for the refused unit: the counters carry on from where they were.
    check_counters(read_packets(muxer.write_video(0, 0, False, avcc_unit(b"\x41"))), {VIDEO_PID: 15})


def test_aac_frame_too_long(impl: ModuleType) -> None:
    muxer = impl.TsMuxer(video_codec=None, audio_config=AAC_LC_44100_STEREO)
    with pytest.raises(ProtocolError) as caught:
        muxer.write_audio(0, bytes(8185))
    assert str(caught.value) == "MPEG-TS: AAC frame of 8185 bytes is too long for ADTS (at most 8184 bytes)"


@pytest.mark.parametrize(
    ("codec", "record", "message"),
    [
        ("avc1", b"\x01\x64\x00", "MPEG-TS: avcC record of 3 bytes is too short (at least 7)"),
        ("avc1", b"\x00" + avcc([SPS], [PPS])[1:], "MPEG-TS: avcC configurationVersion 0, expected 1"),
        ("avc1", avcc([SPS], [PPS], length_size=3), "MPEG-TS: avcC NAL unit length size 3 is not 1, 2 or 4"),
        ("avc1", avcc([SPS], [PPS])[:8], "MPEG-TS: avcC record is truncated at byte 8"),
        ("avc1", avcc([SPS], [PPS])[:7], "MPEG-TS: avcC record is truncated at byte 6"),
        ("avc1", avcc([SPS], [])[:-1], "MPEG-TS: avcC record is truncated at byte 14"),
        ("avc1", avcc([SPS], [PPS])[:-1], "MPEG-TS: avcC record is truncated at byte 17"),
        ("hvc1", hvcc([])[:22], "MPEG-TS: hvcC record of 22 bytes is too short (at least 23)"),
        ("hvc1", b"\x02" + hvcc([])[1:], "MPEG-TS: hvcC configurationVersion 2, expected 1"),
        ("hvc1", hvcc([], length_size=3), "MPEG-TS: hvcC NAL unit length size 3 is not 1, 2 or 4"),
        ("hvc1", hvcc([(32, [b"\x40\x01"])])[:25], "MPEG-TS: hvcC record is truncated at byte 23"),
        ("hvc1", hvcc([(32, [b"\x40\x01"])])[:27], "MPEG-TS: hvcC record is truncated at byte 26"),
        ("hvc1", hvcc([(32, [b"\x40\x01"])])[:-1], "MPEG-TS: hvcC record is truncated at byte 28"),
    ],
)
def test_bad_video_config(impl: ModuleType, codec: str, record: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        impl.TsMuxer(video_codec=codec, video_config=record)
    assert str(caught.value) == message
    muxer = impl.TsMuxer(video_codec=codec, video_config=avcc([SPS], [PPS]) if codec == "avc1" else hvcc([]))
    with pytest.raises(ProtocolError) as caught:
        muxer.set_video_config(record)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (b"\x12", "MPEG-TS: AudioSpecificConfig of 1 bytes is too short (at least 2)"),
        (asc(2, 15, 2), "MPEG-TS: AAC sampling frequency index 15 cannot be carried in ADTS (0 to 12)"),
        (asc(2, 13, 2), "MPEG-TS: AAC sampling frequency index 13 cannot be carried in ADTS (0 to 12)"),
        (asc(2, 4, 0), "MPEG-TS: AAC channel configuration 0 cannot be carried in ADTS (1 to 7)"),
        (asc(2, 4, 8), "MPEG-TS: AAC channel configuration 8 cannot be carried in ADTS (1 to 7)"),
        (asc(0, 4, 2), "MPEG-TS: AAC audio object type 0 cannot be carried in ADTS (1 to 4)"),
        (asc(36, 4, 2), "MPEG-TS: AAC audio object type 36 cannot be carried in ADTS (1 to 4)"),
        (asc(36, 4, 2)[:2], "MPEG-TS: AudioSpecificConfig is truncated"),
        (asc(5, 4, 2), "MPEG-TS: AudioSpecificConfig is truncated"),
        (asc(5, 4, 2, extension=15)[:4], "MPEG-TS: AudioSpecificConfig is truncated"),
        (asc(5, 4, 2, extension=4, inner=5), "MPEG-TS: AAC audio object type 5 cannot be carried in ADTS (1 to 4)"),
        (asc(29, 4, 2, extension=4, inner=42), "MPEG-TS: AAC audio object type 42 cannot be carried in ADTS (1 to 4)"),
    ],
)
def test_bad_audio_config(impl: ModuleType, config: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        impl.TsMuxer(video_codec=None, audio_config=config)
    assert str(caught.value) == message


def test_misuse(impl: ModuleType) -> None:
    with pytest.raises(
        ValueError, match=r"^MPEG-TS: unsupported video codec 'av01' \(expected 'avc1', 'hvc1' or None\)$"
    ):
        impl.TsMuxer(video_codec="av01", video_config=b"\x81")
    with pytest.raises(ValueError, match=r"^MPEG-TS: a muxer needs a video codec or an audio config$"):
        impl.TsMuxer(video_codec=None)
    audio_only = impl.TsMuxer(video_codec=None, audio_config=AAC_LC_44100_STEREO)
    with pytest.raises(ValueError, match=r"^MPEG-TS: write_video\(\) on a muxer without a video track$"):
        audio_only.write_video(0, 0, True, avcc_unit(b"\x65"))
    with pytest.raises(ValueError, match=r"^MPEG-TS: set_video_config\(\) on a muxer without a video track$"):
        audio_only.set_video_config(avcc([SPS], [PPS]))
    with pytest.raises(ValueError, match=r"^MPEG-TS: write_audio\(\) on a muxer without an audio track$"):
        avc_muxer(impl).write_audio(0, b"\x01")


# --- round trips with real media ----------------------------------------------------------------


@dataclass
class Clip:
    video_codec: str | None
    video_config: bytes
    audio_config: bytes
    units: list[AccessUnit]


def read_clip(path: Path) -> Clip:
    """Access units of a file, times converted exactly to 90 kHz, configs from the demuxer."""
    units = []
    video_codec, video_config, audio_config = None, b"", b""
    with av.open(str(path)) as container:
        for stream in container.streams:
            if stream.type == "video":
                video_codec = {"h264": "avc1", "hevc": "hvc1"}[stream.codec_context.name]
                video_config = bytes(stream.codec_context.extradata or b"")
            elif stream.type == "audio":
                audio_config = bytes(stream.codec_context.extradata or b"")
        for packet in container.demux():
            if packet.size == 0 or packet.dts is None or packet.pts is None:
                continue
            assert packet.time_base is not None
            scale = 90000 * packet.time_base
            assert scale.denominator == 1 or (packet.pts * scale).denominator == 1
            track = Track.VIDEO if packet.stream.type == "video" else Track.AUDIO
            dts, pts = int(packet.dts * scale), int(packet.pts * scale)
            units.append(AccessUnit(track, dts, pts, packet.is_keyframe, bytes(packet)))
    return Clip(video_codec, video_config, audio_config, units)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("ffmpeg/ffprobe are not installed (make system-deps)")
    return tmp_path_factory.mktemp("mpegts_media")


@pytest.fixture(scope="session")
def h264_clip(media_dir: Path) -> Clip:
    path = media_dir / "h264.flv"
    # fmt: off
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", "7", "-c:v", "libx264", "-bf", "2", "-g", "30", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-f", "flv", str(path),
    )
    # fmt: on
    return read_clip(path)


@pytest.fixture(scope="session")
def hevc_clip(media_dir: Path) -> Clip:
    if "libx265" not in subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout:
        pytest.skip("ffmpeg has no libx265")
    path = media_dir / "hevc.mp4"
    # MP4 with a 90 kHz video timescale and 48 kHz audio: both convert to 90 kHz exactly (and the
    # first B-frame GOP starts at a negative DTS, which exercises the 33-bit wrap). Closed GOPs,
    # as HLS needs, so that every segment decodes on its own.
    # fmt: off
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", "5", "-c:v", "libx265", "-x265-params", "bframes=2:keyint=30:min-keyint=30:no-open-gop=1:log-level=error",
        "-pix_fmt", "yuv420p", "-tag:v", "hvc1", "-video_track_timescale", "90000", "-c:a", "aac", str(path),
    )
    # fmt: on
    return read_clip(path)


def expected_annexb(unit: AccessUnit, codec: str, config: bytes) -> bytes:
    """Our muxer's Annex B for a unit, derived independently from the record."""
    hevc = codec == "hvc1"
    length_size = (config[21 if hevc else 4] & 3) + 1
    sets: list[bytes] = []
    if hevc:
        pos = 23
        for _ in range(config[22]):
            count, pos = int.from_bytes(config[pos + 1 : pos + 3], "big"), pos + 3
            for _ in range(count):
                size = int.from_bytes(config[pos : pos + 2], "big")
                sets.append(config[pos + 2 : pos + 2 + size])
                pos += 2 + size
    else:
        pos = 6
        for count in (config[5] & 0x1F, None):
            if count is None:
                count, pos = config[pos], pos + 1
            for _ in range(count):
                size = int.from_bytes(config[pos : pos + 2], "big")
                sets.append(config[pos + 2 : pos + 2 + size])
                pos += 2 + size
    nals, pos = [], 0
    while pos < len(unit.data):
        size = int.from_bytes(unit.data[pos : pos + length_size], "big")
        nals.append(unit.data[pos + length_size : pos + length_size + size])
        pos += length_size + size
    types = [((n[0] >> 1) & 0x3F) if hevc else n[0] & 0x1F for n in nals]
    out = b"" if types[0] == (35 if hevc else 9) else AUD_HEVC if hevc else AUD_AVC
    if unit.keyframe and (33 if hevc else 7) not in types:
        out += b"".join(START + s for s in sets)
    return out + b"".join(START + n for n in nals)


def mux_segments(
    impl: ModuleType, clip: Clip, tracks: set[Track], segment_ticks: int = 180000
) -> list[tuple[bytes, list[AccessUnit]]]:
    """Mux the clip's units of `tracks`; a segment starts at the first keyframe (any audio frame,
    without video) 2 s or more after the start of the previous one."""
    has_video = Track.VIDEO in tracks
    muxer = impl.TsMuxer(
        video_codec=clip.video_codec if has_video else None,
        video_config=clip.video_config if has_video else b"",
        audio_config=clip.audio_config if Track.AUDIO in tracks else b"",
    )
    lead = Track.VIDEO if has_video else Track.AUDIO
    segments: list[tuple[bytearray, list[AccessUnit]]] = []
    start = 0
    for unit in clip.units:
        if unit.track not in tracks:
            continue
        if (
            unit.track == lead
            and (unit.keyframe or not has_video)
            and (not segments or unit.dts - start >= segment_ticks)
        ):
            segments.append((bytearray(muxer.start_segment()), []))
            start = unit.dts
        if not segments:
            continue  # audio before the first keyframe has no segment to go in
        data, units = segments[-1]
        if unit.track == Track.VIDEO:
            data += muxer.write_video(unit.dts, unit.pts, unit.keyframe, unit.data)
        else:
            data += muxer.write_audio(unit.pts, unit.data)
        units.append(unit)
    return [(bytes(data), units) for data, units in segments]


@pytest.fixture
def ffmpeg_log() -> Iterator[list[Any]]:
    """FFmpeg's warnings and errors while PyAV demuxes and decodes, from every thread."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture(local=False) as logs:
            yield logs
    finally:
        av.logging.set_level(level)


def ffprobe_frame_counts(path: Path) -> dict[str, int]:
    """Frames ffprobe decodes per stream type; anything it prints on stderr fails the test."""
    # fmt: off
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=codec_type,nb_read_frames",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=False,
    )
    # fmt: on
    assert (probe.returncode, probe.stderr) == (0, ""), f"ffprobe on {path.name}: {probe.stderr}"
    return {kind: int(count) for kind, count in (line.split(",") for line in probe.stdout.split())}


def check_round_trip(impl: ModuleType, clip: Clip, tracks: set[Track], tmp_path: Path, ffmpeg_log: list[Any]) -> None:
    segments = mux_segments(impl, clip, tracks)
    assert len(segments) >= 2
    video_units = [u for _, units in segments for u in units if u.track == Track.VIDEO]
    audio_units = [u for _, units in segments for u in units if u.track == Track.AUDIO]
    assert (bool(video_units), bool(audio_units)) == (Track.VIDEO in tracks, Track.AUDIO in tracks)
    for index, (data, units) in enumerate(segments):
        packets = read_packets(data)
        check_counters(packets)
        assert [p.pid for p in packets[:2]] == [0, PMT_PID]
        assert max((b - a) % CLOCK for a, b in itertools.pairwise(pcrs(packets))) <= 9000
        path = tmp_path / f"segment{index}.ts"
        path.write_bytes(data)
        expected = {}
        if video_units:
            assert units[0].track == Track.VIDEO and units[0].keyframe
            expected["video"] = sum(1 for u in units if u.track == Track.VIDEO)
        if audio_units:
            expected["audio"] = sum(1 for u in units if u.track == Track.AUDIO)
        assert ffprobe_frame_counts(path) == expected

    whole = tmp_path / "whole.ts"
    whole.write_bytes(b"".join(data for data, _ in segments))
    video, audio = [], []
    with av.open(str(whole), format="mpegts") as container:
        for packet in container.demux():
            if packet.size == 0:
                continue
            # PyAV unwraps the 33-bit clock across a wrap; compare modulo 2**33.
            if packet.stream.type == "video":
                video.append((packet.pts % CLOCK, packet.dts % CLOCK, packet.is_keyframe, bytes(packet)))
            else:
                audio.append((packet.pts % CLOCK, bytes(packet)))
    assert video == [
        (u.pts % CLOCK, u.dts % CLOCK, u.keyframe, expected_annexb(u, clip.video_codec or "", clip.video_config))
        for u in video_units
    ]
    # The demuxer hands AAC over with its ADTS header (ffmpeg needs aac_adtstoasc to put it in MP4).
    assert [(pts, frame[7:]) for pts, frame in audio] == [(u.pts % CLOCK, u.data) for u in audio_units]
    assert all(int.from_bytes(frame[3:6], "big") >> 5 & 0x1FFF == len(frame) for _, frame in audio)

    if video_units:
        with av.open(str(whole), format="mpegts") as container:
            stream = container.streams.video[0]
            decoded = sum(1 for _ in container.decode(stream))
        assert decoded == len(video_units)
    assert [log for log in ffmpeg_log if log[0] <= av.logging.WARNING] == []


def test_round_trip_h264_aac(impl: ModuleType, h264_clip: Clip, tmp_path: Path, ffmpeg_log: list[Any]) -> None:
    check_round_trip(impl, h264_clip, {Track.VIDEO, Track.AUDIO}, tmp_path, ffmpeg_log)


def test_round_trip_h264_only(impl: ModuleType, h264_clip: Clip, tmp_path: Path, ffmpeg_log: list[Any]) -> None:
    check_round_trip(impl, h264_clip, {Track.VIDEO}, tmp_path, ffmpeg_log)


def test_round_trip_aac_only(impl: ModuleType, h264_clip: Clip, tmp_path: Path, ffmpeg_log: list[Any]) -> None:
    check_round_trip(impl, h264_clip, {Track.AUDIO}, tmp_path, ffmpeg_log)


def test_round_trip_hevc_aac(impl: ModuleType, hevc_clip: Clip, tmp_path: Path, ffmpeg_log: list[Any]) -> None:
    assert min(u.dts for u in hevc_clip.units) < 0  # the wrap is exercised
    check_round_trip(impl, hevc_clip, {Track.VIDEO, Track.AUDIO}, tmp_path, ffmpeg_log)
