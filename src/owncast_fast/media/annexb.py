"""H.264 between Annex B (what libx264 emits) and the AVCC layout the hub carries.

ITU-T H.264 Annex B frames NAL units with start codes (00 00 01, or 00 00 00 01 before the
first NAL unit of an access unit); ISO/IEC 14496-15 5.3.3.1 stores the parameter sets in an
AVCDecoderConfigurationRecord (avcC) and prefixes every NAL unit in a sample with its length.
Our access units use 4-byte lengths, as RTMP publishers send them.
"""

from __future__ import annotations

NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
# Profiles whose avcC carries chroma and bit-depth fields after the PPS list (14496-15 5.3.3.1.1).
HIGH_PROFILES = frozenset({100, 110, 122, 144})


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream, without start codes or trailing zero bytes."""
    nals = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        start += 3
        end = data.find(b"\x00\x00\x01", start)
        nal = data[start:] if end < 0 else data[start:end]
        nal = nal.rstrip(b"\x00")  # trailing_zero_8bits and the zero of a 4-byte start code
        if nal:
            nals.append(nal)
        start = end
    return nals


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def to_avcc(nals: list[bytes]) -> bytes:
    """NAL units with 4-byte big-endian length prefixes."""
    return b"".join(len(nal).to_bytes(4, "big") + nal for nal in nals)


def avc_decoder_configuration(sps: bytes, pps: bytes) -> bytes:
    """An avcC record (4-byte NAL lengths) for one SPS and one PPS of a Baseline/Main/Extended stream.

    "aligned(8) class AVCDecoderConfigurationRecord { unsigned int(8) configurationVersion = 1;
    unsigned int(8) AVCProfileIndication; unsigned int(8) profile_compatibility; unsigned int(8)
    AVCLevelIndication; bit(6) reserved = '111111'b; unsigned int(2) lengthSizeMinusOne; bit(3)
    reserved = '111'b; unsigned int(5) numOfSequenceParameterSets; ..."
    """
    if nal_type(sps) != NAL_SPS or nal_type(pps) != NAL_PPS:
        raise ValueError("avcC: expected an SPS (type 7) and a PPS (type 8)")
    if sps[1] in HIGH_PROFILES:
        raise ValueError(f"avcC: profile_idc {sps[1]} needs the High profile fields, which this writer omits")
    return (
        bytes([1, sps[1], sps[2], sps[3], 0xFC | 3, 0xE0 | 1])
        + len(sps).to_bytes(2, "big")
        + sps
        + b"\x01"
        + len(pps).to_bytes(2, "big")
        + pps
    )
