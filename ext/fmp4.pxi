# fMP4 / CMAF muxer for HLS: init segments (ftyp + moov) and fragments (moof + mdat).
#
# Theory of operation. `init_segment(tracks)` writes the header every fragment refers to; it runs
# once per rendition, so it is plain Python compiled by Cython. A `FragmentWriter` takes one
# `add()` per access unit: the unit's times, flags and size go into a C array per track and its
# bytes object into a list that keeps it alive (the sample keeps a pointer to its buffer, so the
# data is never copied on the way in). `flush()` validates its arguments, sizes the fragment,
# allocates the output bytes object once and fills it in one pass: moof (mfhd, then per track
# with samples a traf of tfhd + tfdt + trun) followed by one mdat with the samples, tracks in the
# order given, each sample copied exactly once. An LL-HLS part, or a whole segment, is one flush.
#
# Sample durations. ISO BMFF stores durations, not times: a sample lasts until the next one's
# dts. The last sample of a flush has no successor yet, so its duration is, in order of
# preference: next_dts[track_id] - dts when the caller knows the next unit's time (a segmenter
# cutting at a keyframe does), else the duration of the sample before it (in this flush, or the
# last one written for the track), else one AAC frame (1024 samples) for audio or one frame at
# 30 fps (3000 at 90 kHz) for video. A guess never shifts later fragments: each traf's tfdt
# carries the real dts of its first sample.
#
# Everything here is also written in `owncast_fast._pure.fmp4`, the twin, with the same bytes
# and error messages; keep the two in step.
#
# Names at module level carry a fmp4/Fmp4 prefix: this file shares one module with mpegts.pxi.

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy

from _bytes cimport write_be32

import struct

from owncast_fast.errors import ProtocolError

cdef enum:
    # The codec configuration (avcC, hvcC, av1C, vpcC record, or AAC AudioSpecificConfig) is held
    # for the stream's life and copied into every init segment; real ones are under 1 KiB, and
    # 1 MiB stays far inside the 28-bit length of an MPEG-4 descriptor (esds).
    FMP4_MAX_CONFIG = 1 << 20
    # Per track and per fragment. 65536 samples are 9 minutes of 120 fps video or 23 minutes of
    # 48 kHz AAC, far beyond any HLS segment; a caller that stops flushing hits this, not the OOM.
    FMP4_MAX_PENDING_SAMPLES = 1 << 16
    # All tracks together, per fragment: 10 s at 200 Mbit/s is 250 MB. Keeping the fragment below
    # 2^31 also keeps every trun data_offset (signed 32 bits) and the mdat size (32 bits) exact.
    FMP4_MAX_PENDING_BYTES = 1 << 28

# ISO/IEC 14496-12 8.8.3.1 sample flags: "bit(4) reserved=0; unsigned int(2) is_leading;
# unsigned int(2) sample_depends_on; unsigned int(2) sample_is_depended_on; unsigned int(2)
# sample_has_redundancy; bit(3) sample_padding_value; bit(1) sample_is_non_sync_sample;
# unsigned int(16) sample_degradation_priority". sample_depends_on "2: this sample does not depend
# on others (I picture); 1: this sample does depend on others (not an I picture)".
cdef enum:
    FMP4_SYNC_FLAGS = 0x02000000
    FMP4_NON_SYNC_FLAGS = 0x01010000

# 8.8.8.1 trun flags: "0x000001 data-offset-present, 0x000100 sample-duration-present, 0x000200
# sample-size-present, 0x000400 sample-flags-present, 0x000800
# sample-composition-time-offsets-present". 8.8.7.1 tfhd: "0x020000 default-base-is-moof".
cdef enum:
    FMP4_TRUN_FLAGS = 0x000701
    FMP4_TRUN_OFFSETS_FLAG = 0x000800
    FMP4_BASE_IS_MOOF = 0x020000
    FMP4_VERSION_1 = 0x01000000

# Box types of the fragment, as big-endian 32-bit integers.
cdef enum:
    FMP4_MOOF = 0x6D6F6F66
    FMP4_MFHD = 0x6D666864
    FMP4_TRAF = 0x74726166
    FMP4_TFHD = 0x74666864
    FMP4_TFDT = 0x74666474
    FMP4_TRUN = 0x7472756E
    FMP4_MDAT = 0x6D646174

# Fixed box sizes in a fragment: moof header + mfhd; traf header + tfhd + tfdt (v1) + trun header.
cdef enum:
    FMP4_MOOF_FIXED = 8 + 16
    FMP4_TRAF_FIXED = 8 + 16 + 20 + 20

cdef int64_t FMP4_U32_MAX = 0xFFFFFFFF
cdef int64_t FMP4_I32_MIN = -0x80000000
cdef int64_t FMP4_I32_MAX = 0x7FFFFFFF
cdef object FMP4_I64_MAX = 0x7FFFFFFFFFFFFFFF

cdef dict FMP4_CODEC_KINDS = {"avc1": "video", "hvc1": "video", "av01": "video", "vp09": "video", "mp4a": "audio"}
cdef dict FMP4_CONFIG_BOXES = {"avc1": b"avcC", "hvc1": b"hvcC", "av01": b"av1C"}
cdef bytes FMP4_UNITY_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
# mdhd "language: declares the language code for this media", ISO 639-2/T packed as three 5-bit
# letters minus 0x60: 'und' (undetermined).
cdef int FMP4_LANGUAGE_UND = 0x55C4


cdef inline void fmp4_write_be64(uint8_t* p, uint64_t v) noexcept nogil:
    write_be32(p, <uint32_t>(v >> 32))
    write_be32(p + 4, <uint32_t>v)


cdef fmp4_check_range(str name, object value, object low, object high):
    if not low <= value <= high:
        raise ValueError(f"fMP4: {name} {value} is out of range ({low}..{high})")


@cython.final
cdef class Fmp4Track:
    """One track of an fMP4 rendition: what the init segment describes and fragments refer to."""

    cdef readonly uint32_t track_id
    cdef readonly str kind
    cdef readonly str codec
    cdef readonly bytes config
    cdef readonly uint32_t timescale
    cdef readonly uint32_t width
    cdef readonly uint32_t height
    cdef readonly uint32_t sample_rate
    cdef readonly uint32_t channels

    def __init__(self, track_id, kind, codec, config, timescale, *, width=0, height=0, sample_rate=0,
                 channels=0):
        fmp4_check_range("track id", track_id, 1, FMP4_U32_MAX)
        if kind not in ("video", "audio"):
            raise ValueError(f"fMP4: unknown track kind {kind!r}")
        if codec not in FMP4_CODEC_KINDS:
            raise ValueError(f"fMP4: unknown codec {codec!r}")
        if FMP4_CODEC_KINDS[codec] != kind:
            raise ValueError(f"fMP4: codec {codec!r} is not a {kind} codec")
        fmp4_check_range("timescale", timescale, 1, FMP4_U32_MAX)
        fmp4_check_range("width", width, 0, 0xFFFF)
        fmp4_check_range("height", height, 0, 0xFFFF)
        fmp4_check_range("sample rate", sample_rate, 0, FMP4_U32_MAX)
        fmp4_check_range("channels", channels, 0, 0xFFFF)
        if kind == "audio" and sample_rate == 0:
            raise ValueError(f"fMP4: audio track {track_id} needs a sample rate")
        config = bytes(memoryview(config))
        if len(config) > FMP4_MAX_CONFIG:
            raise ValueError(
                f"fMP4: codec configuration of {len(config)} bytes is above the limit of {FMP4_MAX_CONFIG} bytes"
            )
        self.track_id = track_id
        self.kind = kind
        self.codec = codec
        self.config = config
        self.timescale = timescale
        self.width = width
        self.height = height
        self.sample_rate = sample_rate
        self.channels = channels

    cdef tuple _fields(self):
        return (self.track_id, self.kind, self.codec, self.config, self.timescale, self.width, self.height,
                self.sample_rate, self.channels)

    def __repr__(self):
        return (
            f"Fmp4Track(track_id={self.track_id!r}, kind={self.kind!r}, codec={self.codec!r}, "
            f"config={self.config!r}, timescale={self.timescale!r}, width={self.width!r}, "
            f"height={self.height!r}, sample_rate={self.sample_rate!r}, channels={self.channels!r})"
        )

    def __eq__(self, other):
        if type(other) is not Fmp4Track:
            return NotImplemented
        return self._fields() == (<Fmp4Track>other)._fields()

    def __hash__(self):
        return hash(self._fields())


cdef list fmp4_checked_tracks(object tracks):
    tracks = list(tracks)
    if not tracks:
        raise ValueError("fMP4: no tracks")
    cdef set seen = set()
    for track in tracks:
        if type(track) is not Fmp4Track:
            raise TypeError(f"fMP4: expected Fmp4Track, got {type(track).__name__}")
        if (<Fmp4Track>track).track_id in seen:
            raise ValueError(f"fMP4: duplicate track id {(<Fmp4Track>track).track_id}")
        seen.add((<Fmp4Track>track).track_id)
    return tracks


# --- init segment -------------------------------------------------------------------------------

cdef bytes fmp4_box(bytes kind, list payload):
    # 4.2 "aligned(8) class Box (unsigned int(32) boxtype) { unsigned int(32) size; unsigned
    # int(32) type = boxtype; }" -- size counts the header; a moov never needs the 64-bit form.
    cdef bytes body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


cdef bytes fmp4_full_box(bytes kind, int version, int flags, list payload):
    # "aligned(8) class FullBox(...) extends Box(boxtype) { unsigned int(8) version = v; bit(24) flags = f; }"
    return fmp4_box(kind, [struct.pack(">I", version << 24 | flags)] + payload)


cdef bytes fmp4_descriptor(int tag, bytes body):
    # ISO/IEC 14496-1 8.3.3 expandable size: 7 bits per byte, high bit set on all but the last.
    cdef Py_ssize_t size = len(body)
    cdef bytearray length = bytearray((size & 0x7F,))
    size >>= 7
    while size:
        length.insert(0, 0x80 | (size & 0x7F))
        size >>= 7
    return bytes((tag,)) + bytes(length) + body


cdef bytes fmp4_esds(bytes audio_specific_config):
    # ISO/IEC 14496-14 5.6: esds holds an ES_Descriptor (tag 3): "ES_ID ... set to 0 as stored",
    # no dependence/URL/OCR flags; a DecoderConfigDescriptor (tag 4): objectTypeIndication 0x40
    # (Audio ISO/IEC 14496-3), streamType 5 (audio) << 2 | upStream 0 | reserved 1 = 0x15, then
    # bufferSizeDB (24 bits), maxBitrate and avgBitrate (0: not known ahead of a live stream), and
    # the DecoderSpecificInfo (tag 5) = AudioSpecificConfig; an SLConfigDescriptor (tag 6) with
    # "predefined = 2: Reserved for use in MP4 files".
    cdef bytes decoder_config = fmp4_descriptor(
        0x04, b"\x40\x15" + bytes(11) + fmp4_descriptor(0x05, audio_specific_config)
    )
    cdef bytes es = fmp4_descriptor(0x03, b"\x00\x00\x00" + decoder_config + fmp4_descriptor(0x06, b"\x02"))
    return fmp4_full_box(b"esds", 0, 0, [es])


cdef bytes fmp4_sample_entry(Fmp4Track track):
    # 8.5.2.2 SampleEntry: "const unsigned int(8)[6] reserved = 0; unsigned int(16)
    # data_reference_index;" -- 1, the dref entry that says the data is in this file.
    cdef bytes head = bytes(6) + struct.pack(">H", 1)
    cdef bytes config
    cdef uint32_t rate
    if track.kind == "audio":
        # 12.2.3 AudioSampleEntry: reserved[2], channelcount, "samplesize = 16", pre_defined,
        # reserved, "samplerate = { default samplerate of media }<<16". The 16.16 field cannot
        # hold rates above 65535 Hz; they are written as 0 and the mdhd timescale (and the
        # AudioSpecificConfig) carry the rate, as ffmpeg does.
        rate = track.sample_rate if track.sample_rate <= 0xFFFF else 0
        return fmp4_box(b"mp4a", [
            head,
            bytes(8),
            struct.pack(">HHHHI", track.channels, 16, 0, 0, rate << 16),
            fmp4_esds(track.config),
        ])
    if track.codec == "vp09":
        # VP Codec ISO Media File Format Binding: "class VPCodecConfigurationBox extends
        # FullBox('vpcC', version = 1, 0) { VPCodecConfigurationRecord() vpcConfig; }"; `config`
        # holds the record only.
        config = fmp4_full_box(b"vpcC", 1, 0, [track.config])
    else:
        # ISO/IEC 14496-15 5.4.2.1 / 8.4.1.1: avcC and hvcC carry the decoder configuration record
        # as their whole payload; so does av1C (AV1 Codec ISO Media File Format Binding 2.3).
        config = fmp4_box(FMP4_CONFIG_BOXES[track.codec], [track.config])
    # 12.1.3 VisualSampleEntry: pre_defined, reserved, pre_defined[3] (16 bytes of 0); width,
    # height; "horizresolution = 0x00480000; vertresolution = 0x00480000" (72 dpi); reserved;
    # "frame_count = 1"; compressorname[32] (empty); "depth = 0x0018"; "pre_defined = -1".
    return fmp4_box(track.codec.encode(), [
        head,
        bytes(16),
        struct.pack(">HHIIIH", track.width, track.height, 0x00480000, 0x00480000, 0, 1),
        bytes(32),
        struct.pack(">Hh", 0x0018, -1),
        config,
    ])


cdef bytes fmp4_trak(Fmp4Track track):
    cdef bint video = track.kind == "video"
    # 8.3.2 tkhd version 0: creation_time, modification_time, track_ID, reserved, duration (0:
    # a fragmented movie's duration lives in its fragments); reserved[2], layer, alternate_group,
    # "volume = if track_is_audio 0x0100 else 0", reserved, matrix, width and height in 16.16.
    # Flags "Track_enabled: 0x000001; Track_in_movie: 0x000002".
    cdef bytes tkhd = fmp4_full_box(b"tkhd", 0, 0x000003, [
        struct.pack(">IIIII", 0, 0, track.track_id, 0, 0),
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0 if video else 0x0100, 0),
        FMP4_UNITY_MATRIX,
        struct.pack(">II", track.width << 16, track.height << 16),
    ])
    # 8.4.2 mdhd version 0: creation_time, modification_time, timescale, duration, pad + language, pre_defined.
    cdef bytes mdhd = fmp4_full_box(
        b"mdhd", 0, 0, [struct.pack(">IIIIHH", 0, 0, track.timescale, 0, FMP4_LANGUAGE_UND, 0)]
    )
    # 8.4.3 hdlr: pre_defined, handler_type ('vide' / 'soun'), reserved[3], name (null-terminated UTF-8).
    cdef bytes hdlr = fmp4_full_box(b"hdlr", 0, 0, [
        struct.pack(">I4s", 0, b"vide" if video else b"soun"),
        bytes(12),
        b"VideoHandler\0" if video else b"SoundHandler\0",
    ])
    # 12.1.2 vmhd: "FullBox('vmhd', version = 0, 1)", graphicsmode = 0, opcolor[3] = 0.
    # 12.2.2 smhd: balance = 0, reserved.
    cdef bytes media_header = (
        fmp4_full_box(b"vmhd", 0, 1, [bytes(8)]) if video else fmp4_full_box(b"smhd", 0, 0, [bytes(4)])
    )
    # 8.7.2 dref with one 'url ' entry whose flag 1 means "the media data is in the same file".
    cdef bytes dinf = fmp4_box(b"dinf", [
        fmp4_full_box(b"dref", 0, 0, [struct.pack(">I", 1), fmp4_full_box(b"url ", 0, 1, [])])
    ])
    # The sample tables are empty (entry_count 0, and stsz sample_size 0, sample_count 0): every
    # sample of a fragmented movie is described by a trun (8.8.1).
    cdef bytes stbl = fmp4_box(b"stbl", [
        fmp4_full_box(b"stsd", 0, 0, [struct.pack(">I", 1), fmp4_sample_entry(track)]),
        fmp4_full_box(b"stts", 0, 0, [bytes(4)]),
        fmp4_full_box(b"stsc", 0, 0, [bytes(4)]),
        fmp4_full_box(b"stsz", 0, 0, [bytes(8)]),
        fmp4_full_box(b"stco", 0, 0, [bytes(4)]),
    ])
    return fmp4_box(b"trak", [
        tkhd, fmp4_box(b"mdia", [mdhd, hdlr, fmp4_box(b"minf", [media_header, dinf, stbl])])
    ])


def init_segment(tracks):
    """ftyp + moov describing `tracks`, in order; the EXT-X-MAP of every fragment that follows."""
    cdef list checked = fmp4_checked_tracks(tracks)
    cdef Fmp4Track track
    # ftyp brands. 'iso6' (major and compatible): the file uses tfdt version 1, trun version 1
    # (signed composition offsets) and segment boxes (styp), which the iso6 brand covers (14496-12
    # annex E). 'cmfc' (CMAF, ISO/IEC 23000-19) only when the header has one track: a CMAF header
    # describes exactly one CMAF track, so a muxed audio+video header must not claim it (HLS plays
    # either). 'mp41' for the MP4 file format (14496-14) of the mp4a/esds sample entry, which older
    # parsers still look for.
    cdef list brands = [b"iso6", b"cmfc", b"mp41"] if len(checked) == 1 else [b"iso6", b"mp41"]
    cdef bytes ftyp = fmp4_box(b"ftyp", [b"iso6", struct.pack(">I", 0)] + brands)
    next_track_id = min(max([(<Fmp4Track>t).track_id for t in checked]) + 1, FMP4_U32_MAX)
    # 8.2.2 mvhd version 0: creation_time, modification_time, timescale (1000: only durations in
    # edit lists, which we do not write, would use it), duration 0, "rate = 0x00010000",
    # "volume = 0x0100", reserved (2 + 8 bytes), matrix, pre_defined[6], next_track_ID.
    cdef bytes mvhd = fmp4_full_box(b"mvhd", 0, 0, [
        struct.pack(">IIIIIhH", 0, 0, 1000, 0, 0x00010000, 0x0100, 0),
        bytes(8),
        FMP4_UNITY_MATRIX,
        bytes(24),
        struct.pack(">I", next_track_id),
    ])
    # 8.8.3 trex: track_ID, default_sample_description_index 1, default duration and size 0
    # (every trun says them), default_sample_flags: non-sync for video, sync for audio (every
    # trun says those too; the defaults are what a reader of an empty-flag trun would assume).
    cdef list trexes = []
    for track in checked:
        trexes.append(fmp4_full_box(b"trex", 0, 0, [struct.pack(
            ">IIIII", track.track_id, 1, 0, 0,
            FMP4_NON_SYNC_FLAGS if track.kind == "video" else FMP4_SYNC_FLAGS,
        )]))
    cdef list moov = [mvhd]
    for track in checked:
        moov.append(fmp4_trak(track))
    moov.append(fmp4_box(b"mvex", trexes))
    return ftyp + fmp4_box(b"moov", moov)


# --- fragments ----------------------------------------------------------------------------------

cdef struct Fmp4Sample:
    const char* data          # into a bytes object or held buffer the writer's lists keep until the flush
    int64_t dts
    int32_t offset            # pts - dts
    uint32_t size
    uint32_t flags

cdef struct Fmp4TrackState:
    uint32_t track_id
    uint32_t default_duration
    bint has_last_dts
    bint has_last_duration
    int64_t last_dts          # of the last sample added, flushed or not
    uint32_t last_duration    # of the last sample flushed
    int64_t end               # next_dts of the flush in progress; -1 when not given
    Py_ssize_t count
    Py_ssize_t capacity
    Py_ssize_t nbytes
    Py_ssize_t nonzero_offsets
    Fmp4Sample* samples


cdef fmp4_check_times(uint32_t track_id, object dts, object pts):
    # The Python-int form of the range checks `fmp4_times_fit` makes in C: it runs only when those
    # failed, and raises the twin's message.
    if not 0 <= dts <= FMP4_I64_MAX:
        raise ProtocolError(f"fMP4: track {track_id} dts {dts} is out of range (0..{FMP4_I64_MAX})")
    offset = pts - dts
    if not FMP4_I32_MIN <= offset <= FMP4_I32_MAX:
        raise ProtocolError(
            f"fMP4: track {track_id} composition offset {offset} is out of range ({FMP4_I32_MIN}..{FMP4_I32_MAX})"
        )


cdef int fmp4_times_fit(object dts, object pts, int64_t* c_dts, int64_t* c_pts) except -1:
    # tfdt baseMediaDecodeTime is unsigned (64 bits) and trun v1 "signed int(32)
    # sample_composition_time_offset": 0 <= dts < 2^63 and pts - dts in int32, without overflow.
    try:
        c_dts[0] = dts
        c_pts[0] = pts
    except OverflowError:
        return 0
    if c_dts[0] < 0 or c_pts[0] < c_dts[0] + FMP4_I32_MIN:
        return 0
    if c_pts[0] > c_dts[0] and c_pts[0] - c_dts[0] > FMP4_I32_MAX:
        return 0
    return 1


cdef int fmp4_check_next(Fmp4TrackState* st, int64_t dts) except -1:
    # Decode order is storage order, and a duration is the difference of two dts (unsigned 32 bits).
    if not st.has_last_dts:
        return 0
    if dts < st.last_dts:
        raise ProtocolError(f"fMP4: track {st.track_id} dts went backwards from {st.last_dts} to {dts}")
    if st.count and dts - st.last_dts > FMP4_U32_MAX:
        raise ProtocolError(
            f"fMP4: track {st.track_id} dts jumped from {st.last_dts} to {dts}, too far for a 32-bit sample duration"
        )
    return 0


cdef uint8_t* fmp4_write_traf(Fmp4TrackState* st, uint8_t* p, uint8_t* data, uint32_t data_offset) noexcept:
    # One traf (8.8.6): tfhd, tfdt, trun, with the track's samples copied to `data` (in the mdat).
    cdef Py_ssize_t count = st.count, i
    cdef bint offsets = st.nonzero_offsets != 0
    cdef uint32_t trun_size = <uint32_t>(20 + count * (16 if offsets else 12))
    cdef uint32_t duration = 0
    cdef Fmp4Sample* s = st.samples
    write_be32(p, FMP4_TRAF_FIXED - 20 + trun_size)
    write_be32(p + 4, FMP4_TRAF)
    # 8.8.7 tfhd: default-base-is-moof, so data offsets count from this fragment's moof (CMAF
    # requires it, and it makes a fragment movable: nothing refers to the file position).
    write_be32(p + 8, 16)
    write_be32(p + 12, FMP4_TFHD)
    write_be32(p + 16, FMP4_BASE_IS_MOOF)
    write_be32(p + 20, st.track_id)
    # 8.8.12 tfdt version 1: "baseMediaDecodeTime ... the sum of the decode durations of all
    # earlier samples in the media", i.e. the first sample's dts, in 64 bits.
    write_be32(p + 24, 20)
    write_be32(p + 28, FMP4_TFDT)
    write_be32(p + 32, FMP4_VERSION_1)
    fmp4_write_be64(p + 36, <uint64_t>s[0].dts)
    # 8.8.8 trun version 1: sample_count, data_offset, then per sample duration, size, flags and,
    # when any is non-zero, the signed composition offset.
    write_be32(p + 44, trun_size)
    write_be32(p + 48, FMP4_TRUN)
    write_be32(p + 52, FMP4_VERSION_1 | FMP4_TRUN_FLAGS | (FMP4_TRUN_OFFSETS_FLAG if offsets else 0))
    write_be32(p + 56, <uint32_t>count)
    write_be32(p + 60, data_offset)
    p += 64
    for i in range(count):
        if i + 1 < count:
            duration = <uint32_t>(s[i + 1].dts - s[i].dts)
        elif st.end >= 0:
            duration = <uint32_t>(st.end - s[i].dts)
        elif count > 1:
            duration = <uint32_t>(s[i].dts - s[i - 1].dts)
        elif st.has_last_duration:
            duration = st.last_duration
        else:
            duration = st.default_duration
        write_be32(p, duration)
        write_be32(p + 4, s[i].size)
        write_be32(p + 8, s[i].flags)
        if offsets:
            write_be32(p + 12, <uint32_t>s[i].offset)
            p += 16
        else:
            p += 12
        memcpy(data, s[i].data, s[i].size)
        data += s[i].size
    st.last_duration = duration
    st.has_last_duration = True
    return p


@cython.final
@cython.no_gc
@cython.freelist(64)
cdef class _HeldSample:
    """A pending sample's read-only buffer, exported until the fragment holding it is written.

    Frames from ingest arrive as read-only views of their RTMP message (`PayloadView`); holding the
    export instead of copying into `bytes` leaves one copy per sample, the one into the fragment.
    """

    cdef Py_buffer view

    def __dealloc__(self):
        PyBuffer_Release(&self.view)


@cython.final
cdef class FragmentWriter:
    """Buffers access units per track and emits them as one moof + mdat per `flush()`."""

    cdef Fmp4TrackState* _states
    cdef Py_ssize_t _n_tracks
    cdef list _data               # per track, the bytes or held buffers its pending samples point into
    cdef Py_ssize_t _pending_bytes

    def __cinit__(self):
        self._states = NULL
        self._n_tracks = 0

    def __init__(self, tracks):
        cdef list checked = fmp4_checked_tracks(tracks)
        cdef Fmp4Track track
        cdef Py_ssize_t i
        cdef Fmp4TrackState* states = <Fmp4TrackState*>calloc(len(checked), sizeof(Fmp4TrackState))
        if states == NULL:
            raise MemoryError()
        self._release()
        self._states = states
        self._n_tracks = len(checked)
        self._data = []
        self._pending_bytes = 0
        for i in range(self._n_tracks):
            track = checked[i]
            states[i].track_id = track.track_id
            states[i].default_duration = 1024 if track.codec == "mp4a" else max(track.timescale // 30, 1)
            self._data.append([])

    def __dealloc__(self):
        self._release()

    cdef void _release(self) noexcept:
        cdef Py_ssize_t i
        if self._states != NULL:
            for i in range(self._n_tracks):
                free(self._states[i].samples)
            free(self._states)
            self._states = NULL
            self._n_tracks = 0

    cdef Py_ssize_t _index(self, object track_id) except -1:
        cdef uint32_t wanted
        cdef Py_ssize_t i
        try:
            wanted = track_id
        except (OverflowError, TypeError):
            wanted = 0  # no track has id 0
        for i in range(self._n_tracks):
            if self._states[i].track_id == wanted:
                return i
        raise ValueError(f"fMP4: unknown track id {track_id}")

    def add(self, track_id, dts, pts, bint keyframe, data):
        """Queue one access unit; times are in the track's timescale."""
        cdef Py_ssize_t index = self._index(track_id)
        cdef Fmp4TrackState* st
        cdef int64_t c_dts = 0, c_pts = 0
        cdef Py_ssize_t size, capacity
        cdef Fmp4Sample* grown
        cdef Fmp4Sample* sample
        cdef _HeldSample held = None
        cdef object keep
        cdef const char* start
        # Every conversion that could run Python code (__index__) happens before the state pointer
        # is taken, and the writer holds the GIL from here to the end: nothing can move the arrays.
        if not fmp4_times_fit(dts, pts, &c_dts, &c_pts):
            fmp4_check_times(self._states[index].track_id, dts, pts)
        st = &self._states[index]
        fmp4_check_next(st, c_dts)
        if st.count == FMP4_MAX_PENDING_SAMPLES:
            raise ProtocolError(
                f"fMP4: track {st.track_id} already has {FMP4_MAX_PENDING_SAMPLES} samples pending, "
                "the limit per fragment"
            )
        keep = data
        if not PyBytes_CheckExact(data):
            held = _HeldSample.__new__(_HeldSample)
            try:
                PyObject_GetBuffer(data, &held.view, PyBUF_SIMPLE)
            except BufferError:  # not contiguous: copied, as any writable buffer
                keep = bytes(memoryview(data))
            else:
                if not held.view.readonly:
                    # A writable buffer may change before the flush: the sample is what it holds now.
                    keep = PyBytes_FromStringAndSize(<char*>held.view.buf, held.view.len)
                else:
                    keep = held
        if keep is held:
            start = <char*>held.view.buf
            size = held.view.len
        else:
            start = PyBytes_AS_STRING(keep)
            size = PyBytes_GET_SIZE(keep)
        if self._pending_bytes + size > FMP4_MAX_PENDING_BYTES:
            raise ProtocolError(
                f"fMP4: pending samples would take {self._pending_bytes + size} bytes, "
                f"above the limit of {FMP4_MAX_PENDING_BYTES} bytes"
            )
        if st.count == st.capacity:
            capacity = 64 if st.capacity == 0 else st.capacity * 2
            grown = <Fmp4Sample*>realloc(st.samples, capacity * sizeof(Fmp4Sample))
            if grown == NULL:
                raise MemoryError()
            st.samples = grown
            st.capacity = capacity
        (<list>self._data[index]).append(keep)
        sample = &st.samples[st.count]
        sample.data = start
        sample.dts = c_dts
        sample.offset = <int32_t>(c_pts - c_dts)
        sample.size = <uint32_t>size
        sample.flags = FMP4_SYNC_FLAGS if keyframe else FMP4_NON_SYNC_FLAGS
        if sample.offset != 0:
            st.nonzero_offsets += 1
        st.count += 1
        st.nbytes += size
        st.last_dts = c_dts
        st.has_last_dts = True
        self._pending_bytes += size

    def pending(self, track_id):
        """How many samples of that track the next flush will write."""
        return self._states[self._index(track_id)].count

    def flush(self, sequence_number, next_dts=None):
        """One moof + mdat holding every pending sample (b"" if none); durations as described above."""
        cdef Py_ssize_t i, index, moof_size = FMP4_MOOF_FIXED, mdat_size = 8
        cdef Fmp4TrackState* st
        cdef uint32_t sequence, data_offset
        cdef uint8_t* p
        cdef uint8_t* data
        cdef int64_t end
        cdef bytes out
        fmp4_check_range("sequence number", sequence_number, 0, FMP4_U32_MAX)
        sequence = sequence_number
        for i in range(self._n_tracks):
            self._states[i].end = -1
        if next_dts is not None:
            for track_id, value in next_dts.items():
                index = self._index(track_id)
                if not 0 <= value <= FMP4_I64_MAX:
                    raise ProtocolError(
                        f"fMP4: track {self._states[index].track_id} dts {value} is out of range (0..{FMP4_I64_MAX})"
                    )
                end = value
                st = &self._states[index]
                fmp4_check_next(st, end)
                st.end = end
        for i in range(self._n_tracks):
            st = &self._states[i]
            if st.count:
                moof_size += FMP4_TRAF_FIXED + st.count * (16 if st.nonzero_offsets else 12)
                mdat_size += st.nbytes
        if moof_size == FMP4_MOOF_FIXED:
            return b""
        out = PyBytes_FromStringAndSize(NULL, moof_size + mdat_size)
        p = <uint8_t*>PyBytes_AS_STRING(out)
        # The copy keeps the GIL: it runs at memory speed (a 2 s segment at 6 Mbit/s in well under
        # a millisecond), and releasing it would let another thread reallocate the sample arrays
        # under the loop.
        # 8.8.4 moof, 8.8.5 mfhd: "sequence_number -- the ordinal number of this fragment, in
        # increasing order"; then the trafs, then the mdat (8.1.1) right after the moof.
        write_be32(p, <uint32_t>moof_size)
        write_be32(p + 4, FMP4_MOOF)
        write_be32(p + 8, 16)
        write_be32(p + 12, FMP4_MFHD)
        write_be32(p + 16, 0)
        write_be32(p + 20, sequence)
        data = p + moof_size
        write_be32(data, <uint32_t>mdat_size)
        write_be32(data + 4, FMP4_MDAT)
        data += 8
        data_offset = <uint32_t>(moof_size + 8)
        p += FMP4_MOOF_FIXED
        for i in range(self._n_tracks):
            st = &self._states[i]
            if st.count:
                p = fmp4_write_traf(st, p, data, data_offset)
                data += st.nbytes
                data_offset += <uint32_t>st.nbytes
        for i in range(self._n_tracks):
            st = &self._states[i]
            if st.count:
                st.count = 0
                st.nbytes = 0
                st.nonzero_offsets = 0
                self._data[i] = []
        self._pending_bytes = 0
        return out

    def styp(self):
        """The 'styp' box that opens a media segment (before its first fragment)."""
        # 8.16.2: "segment type ... box [with] the same format as ftyp". 'msdh' is the brand of a
        # media segment (ISO/IEC 23009-1 6.3.4.2). 'msix' is not claimed: it promises 'sidx' boxes
        # (6.3.4.3), which HLS does not use and we do not write.
        return fmp4_box(b"styp", [b"msdh", struct.pack(">I", 0), b"msdh"])
