# cython: language_level=3
"""FLV audio/video tag payloads, as carried in RTMP audio (type 8) and video (type 9) messages.

Theory of operation: one call per RTMP message. `parse_video_tag` reads the FLV video header
(legacy or Enhanced RTMP), and for AVC/HEVC frames walks the length-prefixed NAL units once in C,
validating every length against the tag and collecting the NAL unit types. Nothing is copied: a
tag's `data` is a read-only `PayloadView` of the payload after the FLV headers, sharing the
`bytes` the chunk decoder made for the message (and keeping it alive, which costs nothing: the
view is all of it but the 1 to 8 header bytes). It is a buffer like a memoryview slice, at half
the cost of one (one object from a free list instead of two GC-tracked ones). A payload in any
other buffer is copied into `bytes` once first, so that a tag never changes when the caller
reuses a writable buffer. Decoder
configuration records (avcC, hvcC, AAC AudioSpecificConfig) arrive once per stream and are parsed
by the `parse_*_config` functions. `avcc_to_annexb` rewrites a frame's length prefixes as start
codes for the MPEG-TS muxer.

The pure-Python twin `owncast_fast._pure.flv` has the same API, results and error messages.
"""

cimport cython
from cpython.buffer cimport (
    PyBUF_FORMAT,
    PyBUF_ND,
    PyBUF_SIMPLE,
    PyBUF_STRIDES,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_FromLong
from cpython.memoryview cimport PyMemoryView_FromObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport int32_t, uint8_t, uint32_t
from libc.string cimport memcpy

from owncast_fast.errors import ProtocolError

PACKET_CONFIG = 0
PACKET_FRAME = 1
PACKET_END = 2
PACKET_METADATA = 3

cdef enum:
    _CONFIG = 0
    _FRAME = 1
    _END = 2
    _METADATA = 3

# FourCCs of Enhanced RTMP, read as big-endian UI32.
cdef enum:
    FOURCC_AVC1 = 0x61766331
    FOURCC_HVC1 = 0x68766331
    FOURCC_AV01 = 0x61763031
    FOURCC_VP09 = 0x76703039

# How a codec's frames are walked: not at all, or as AVC / HEVC NAL units.
cdef enum:
    NAL_NONE = 0
    NAL_AVC = 1
    NAL_HEVC = 2

cdef str _AVC1 = "avc1"
cdef str _HVC1 = "hvc1"
cdef str _AV01 = "av01"
cdef str _VP09 = "vp09"
cdef tuple _NO_NALS = ()
# Most frames hold one NAL unit; its 6-bit type indexes a shared one-element tuple (tuples are
# immutable, so every tag may hold the same one).
cdef tuple _ONE_NAL = tuple((nal_type,) for nal_type in range(64))

_AUDIO_CODECS = {
    0: "pcm",
    2: "mp3",
    3: "pcm",
    4: "nellymoser",
    5: "nellymoser",
    6: "nellymoser",
    7: "g711a",
    8: "g711u",
    10: "mp4a",
    11: "speex",
    14: "mp3",
}
cdef tuple _AUDIO_CODEC_NAMES = tuple(_AUDIO_CODECS.get(i, f"flv-audio-{i}") for i in range(16))


cdef inline uint32_t _be16(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 8) | p[1]


cdef inline uint32_t _be24(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 16) | (<uint32_t>p[1] << 8) | p[2]


cdef inline uint32_t _be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline int32_t _si24(const uint8_t* p) noexcept nogil:
    cdef int32_t v = <int32_t>_be24(p)
    if v & 0x800000:
        v -= 0x1000000
    return v


cdef inline uint32_t _read_length(const uint8_t* p, int size) noexcept nogil:
    if size == 4:
        return _be32(p)
    if size == 2:
        return _be16(p)
    return p[0]


cdef const char* _FORMAT_B = "B"
cdef Py_ssize_t _UNIT_STRIDE = 1  # every PayloadView is one contiguous run of bytes

# A frame's `data` is a window on the message payload. A memoryview slice costs two GC-tracked
# objects per frame (the managed buffer and the view); this read-only window is one small object
# from a free list, exports the same bytes through the buffer protocol (so `bytes()`, `len()`,
# `memoryview()`, `bytes.join`, PyAV and the muxers take it as they take a memoryview) and keeps
# the payload alive while anything holds it or a buffer of it.
@cython.final
@cython.no_gc
@cython.freelist(32)
cdef class PayloadView:
    """A read-only view of part of a `bytes` payload (an FLV tag's `data`); see the module docstring."""

    cdef bytes _base
    cdef Py_ssize_t _start
    cdef Py_ssize_t _len

    def __getbuffer__(self, Py_buffer* buffer, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("PayloadView is read-only")
        buffer.buf = PyBytes_AS_STRING(self._base) + self._start
        buffer.obj = self
        buffer.len = self._len
        buffer.readonly = 1
        buffer.itemsize = 1
        buffer.format = <char*>_FORMAT_B if flags & PyBUF_FORMAT else NULL
        buffer.ndim = 1
        buffer.shape = &self._len if flags & PyBUF_ND else NULL
        buffer.strides = &_UNIT_STRIDE if flags & PyBUF_STRIDES == PyBUF_STRIDES else NULL
        buffer.suboffsets = NULL
        buffer.internal = NULL

    def __len__(self):
        return self._len

    @property
    def obj(self):
        """The payload `bytes` this views (as `memoryview.obj`)."""
        return self._base

    @property
    def readonly(self):
        return True

    def __getitem__(self, key):
        return PyMemoryView_FromObject(self)[key]

    def __bytes__(self):
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(self._base) + self._start, self._len)

    def tobytes(self):
        """The viewed bytes, copied (as `memoryview.tobytes`)."""
        return self.__bytes__()

    def __eq__(self, other):
        try:
            return PyMemoryView_FromObject(self) == PyMemoryView_FromObject(other)
        except TypeError:
            return NotImplemented

    def __hash__(self):
        return hash(self.__bytes__())

    def __repr__(self):
        return f"<PayloadView of {self._len} bytes>"


cdef inline PayloadView _view(bytes tag, Py_ssize_t start):
    """A read-only view of `tag` from `start` to its end, without copying."""
    cdef PayloadView view = PayloadView.__new__(PayloadView)
    view._base = tag
    view._start = start
    view._len = PyBytes_GET_SIZE(tag) - start
    return view


cdef bytes _own(payload):
    """The payload as bytes: itself, or, from any other buffer, one copy (see the module docstring)."""
    cdef Py_buffer view
    if type(payload) is bytes:
        return <bytes>payload
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        return PyBytes_FromStringAndSize(<char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)


cdef int _check_length_size(int nal_length_size) except -1:
    if nal_length_size != 1 and nal_length_size != 2 and nal_length_size != 4:
        raise ValueError(f"nal_length_size must be 1, 2 or 4, not {nal_length_size}")
    return 0


cdef Py_ssize_t _count_nals(const uint8_t* p, Py_ssize_t n, int size, str context, str whole) except -1:
    """Validates a run of length-prefixed NAL units and returns how many there are."""
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t length
    while pos < n:
        if n - pos < size:
            raise ProtocolError(
                f"{context}: NAL length prefix of {size} bytes overruns the {whole} ({n - pos} bytes left)"
            )
        length = _read_length(p + pos, size)
        pos += size
        if length == 0:
            raise ProtocolError(f"{context}: empty NAL unit at offset {pos - size}")
        if length > n - pos:
            raise ProtocolError(
                f"{context}: NAL unit length {length} overruns the {whole} ({n - pos} bytes left)"
            )
        pos += length
        count += 1
    return count


# Tags are made per frame and hold a str, ints, a tuple of ints and the payload view: nothing that
# can lead back to a tag, so they stay out of the cycle collector (no tracking per frame).
@cython.final
@cython.no_gc
@cython.freelist(16)
cdef class VideoTag:
    """One FLV video tag (legacy or Enhanced RTMP header), parsed by `parse_video_tag`.

    `keyframe` is True when the header's FrameType is 1 (key frame) and, for AVC/HEVC coded
    frames, also when the frame holds an IDR (AVC type 5) or IRAP (HEVC types 16-23) NAL unit:
    some encoders mark recovery points as inter frames.
    `codec` is "" only for an Enhanced RTMP command frame, which names no FourCC.
    `data` is a read-only `PayloadView` of the parsed payload (see the module docstring); a tag made
    by its constructor keeps whatever it was given.
    """

    def __init__(
        self,
        str codec,
        int packet_type,
        int frame_type,
        bint keyframe,
        int composition_time,
        data,
        tuple nal_types,
    ):
        self.codec = codec
        self.packet_type = packet_type
        self.frame_type = frame_type
        self.keyframe = keyframe
        self.composition_time = composition_time
        self.data = data
        self.nal_types = nal_types

    cdef tuple _fields(self):
        return (
            self.codec,
            self.packet_type,
            self.frame_type,
            self.keyframe,
            self.composition_time,
            self.data,
            self.nal_types,
        )

    def __eq__(self, other):
        if type(other) is not VideoTag:
            return NotImplemented
        return self._fields() == (<VideoTag>other)._fields()

    def __repr__(self):
        return (
            f"VideoTag(codec={self.codec!r}, packet_type={self.packet_type!r}, "
            f"frame_type={self.frame_type!r}, keyframe={self.keyframe!r}, "
            f"composition_time={self.composition_time!r}, data={self.data!r}, "
            f"nal_types={self.nal_types!r})"
        )


@cython.final
@cython.no_gc
@cython.freelist(16)
cdef class AudioTag:
    """One FLV audio tag, parsed by `parse_audio_tag`; `data` as in VideoTag."""

    def __init__(self, str codec, int sound_format, int packet_type, data):
        self.codec = codec
        self.sound_format = sound_format
        self.packet_type = packet_type
        self.data = data

    cdef tuple _fields(self):
        return (self.codec, self.sound_format, self.packet_type, self.data)

    def __eq__(self, other):
        if type(other) is not AudioTag:
            return NotImplemented
        return self._fields() == (<AudioTag>other)._fields()

    def __repr__(self):
        return (
            f"AudioTag(codec={self.codec!r}, sound_format={self.sound_format!r}, "
            f"packet_type={self.packet_type!r}, data={self.data!r})"
        )


cdef VideoTag _new_video_tag(
    str codec,
    int packet_type,
    int frame_type,
    bint keyframe,
    int composition_time,
    object data,
    tuple nal_types,
):
    cdef VideoTag tag = VideoTag.__new__(VideoTag)
    tag.codec = codec
    tag.packet_type = packet_type
    tag.frame_type = frame_type
    tag.keyframe = keyframe
    tag.composition_time = composition_time
    tag.data = data
    tag.nal_types = nal_types
    return tag


cdef VideoTag _coded_frame(
    str codec,
    int nal_kind,
    int frame_type,
    int composition_time,
    bytes tag,
    Py_ssize_t start,
    int size,
):
    """Builds a FRAME tag of tag[start:]; for AVC/HEVC walks the NAL units (validate, count, then
    collect types)."""
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(tag) + start
    cdef Py_ssize_t n = PyBytes_GET_SIZE(tag) - start
    cdef bint keyframe = frame_type == 1
    cdef Py_ssize_t count, i, pos, length
    cdef int nal_type
    cdef tuple types
    if nal_kind == NAL_NONE or n == 0:
        return _new_video_tag(codec, _FRAME, frame_type, keyframe, composition_time, _view(tag, start), _NO_NALS)
    count = _count_nals(p, n, size, "FLV video", "tag")
    types = _NO_NALS if count == 1 else PyTuple_New(count)
    pos = 0
    for i in range(count):
        length = _read_length(p + pos, size)
        pos += size
        if nal_kind == NAL_AVC:
            nal_type = p[pos] & 0x1F
            if nal_type == 5:
                keyframe = True
        else:
            nal_type = (p[pos] >> 1) & 0x3F
            if 16 <= nal_type <= 23:
                keyframe = True
        pos += length
        if count == 1:
            types = <tuple>_ONE_NAL[nal_type]
        else:
            # PyTuple_SET_ITEM steals a reference while `item` keeps Cython's own: give the tuple one.
            item = PyLong_FromLong(nal_type)
            Py_INCREF(item)
            PyTuple_SET_ITEM(types, i, item)
    return _new_video_tag(codec, _FRAME, frame_type, keyframe, composition_time, _view(tag, start), types)


cdef VideoTag _parse_video(bytes tag, int size):
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(tag)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(tag)
    cdef int first, frame_type, codec_id, packet_type, nal_kind
    cdef str codec
    if n == 0:
        raise ProtocolError("FLV video: empty tag")
    first = p[0]
    if first & 0x80:
        return _parse_enhanced_video(tag, p, n, size)

    # FLV v10.1 E.4.3.1 VIDEODATA: "FrameType UB[4] ... 1 = key frame (for AVC, a seekable frame)
    # 2 = inter frame (for AVC, a non-seekable frame) 3 = disposable inter frame (H.263 only)
    # 4 = generated key frame (reserved for server use only) 5 = video info/command frame";
    # "CodecID UB[4] ... 7 = AVC". Id 12 is HEVC as sent by encoders that predate Enhanced RTMP.
    frame_type = first >> 4
    codec_id = first & 0x0F
    if codec_id == 7:
        codec = _AVC1
        nal_kind = NAL_AVC
    elif codec_id == 12:
        codec = _HVC1
        nal_kind = NAL_HEVC
    else:
        raise ProtocolError(f"FLV video: unknown codec id {codec_id}")
    if frame_type < 1 or frame_type > 5:
        raise ProtocolError(f"FLV video: unknown frame type {frame_type}")
    if frame_type == 5:
        # "If FrameType = 5, instead of a video payload, the message stream contains a UI8 with the
        # following meaning: 0 = Start of client-side seeking video frame sequence 1 = End of
        # client-side seeking video frame sequence". `data` keeps everything after byte 0.
        if n < 2:
            raise ProtocolError(f"FLV video: tag of {n} bytes is shorter than its 2-byte command header")
        return _new_video_tag(codec, _METADATA, 5, False, 0, _view(tag, 1), _NO_NALS)
    # "AVCPacketType IF CodecID == 7 UI8: 0 = AVC sequence header 1 = AVC NALU 2 = AVC end of
    # sequence"; "CompositionTime IF CodecID == 7 SI24: IF AVCPacketType == 1 Composition time
    # offset ELSE 0".
    if n < 5:
        raise ProtocolError(
            f"FLV video: tag of {n} bytes is shorter than its 5-byte {'AVC' if codec_id == 7 else 'HEVC'} header"
        )
    packet_type = p[1]
    if packet_type == 1:
        return _coded_frame(codec, nal_kind, frame_type, _si24(p + 2), tag, 5, size)
    if packet_type == 0:
        return _new_video_tag(codec, _CONFIG, frame_type, frame_type == 1, 0, _view(tag, 5), _NO_NALS)
    if packet_type == 2:
        return _new_video_tag(codec, _END, frame_type, frame_type == 1, 0, _view(tag, 5), _NO_NALS)
    raise ProtocolError(
        f"FLV video: unknown {'AVC' if codec_id == 7 else 'HEVC'} packet type {packet_type}"
    )


cdef VideoTag _parse_enhanced_video(bytes tag, const uint8_t* p, Py_ssize_t n, int size):
    # Enhanced RTMP (veovera): "IsExHeader UB[1] ... FrameType UB[3] ... PacketType UB[4]": when
    # IsExHeader is set "the UB[4] bits are interpreted as VideoPacketType instead of VideoCodecId",
    # then "videoFourCc = FOURCC as VideoFourCc".
    cdef int frame_type = (p[0] >> 4) & 0x07
    cdef int packet_type = p[0] & 0x0F
    cdef uint32_t fourcc
    cdef str codec
    cdef int nal_kind
    if packet_type != 4 and frame_type == 5:
        # "if (videoPacketType != VideoPacketType.Metadata && videoFrameType ==
        # VideoFrameType.Command) { videoCommand = UI8 as VideoCommand // ExVideoTagBody has no
        # payload if we got here." No FourCC follows, so the tag names no codec.
        if n < 2:
            raise ProtocolError(f"FLV video: tag of {n} bytes is shorter than its 2-byte command header")
        return _new_video_tag("", _METADATA, 5, False, 0, _view(tag, 1), _NO_NALS)
    if n < 5:
        raise ProtocolError(f"FLV video: tag of {n} bytes is shorter than its 5-byte enhanced header")
    fourcc = _be32(p + 1)
    if fourcc == FOURCC_HVC1:
        codec = _HVC1
        nal_kind = NAL_HEVC
    elif fourcc == FOURCC_AV01:
        codec = _AV01
        nal_kind = NAL_NONE
    elif fourcc == FOURCC_VP09:
        codec = _VP09
        nal_kind = NAL_NONE
    elif fourcc == FOURCC_AVC1:
        codec = _AVC1
        nal_kind = NAL_AVC
    else:
        raise ProtocolError(
            f"FLV video: unknown enhanced FourCC {ascii(PyBytes_FromStringAndSize(<char*>p + 1, 4).decode('latin-1'))}"
        )
    if packet_type == 4:
        # "ExVideoTagBody does not contain video data. Instead, it contains an AMF-encoded
        # metadata"; "If VideoPacketType.Metadata is present, the FrameType flags at the top of
        # this table should be ignored."
        return _new_video_tag(codec, _METADATA, frame_type, False, 0, _view(tag, 5), _NO_NALS)
    if frame_type < 1 or frame_type > 4:
        raise ProtocolError(f"FLV video: unknown frame type {frame_type}")
    if packet_type == 1:
        # CodedFrames: "if (videoFourCc == VideoFourCc.Avc || videoFourCc == VideoFourCc.Hevc ...)
        # { compositionTimeOffset = SI24 }"; AV1 and VP9 frames carry none.
        if nal_kind == NAL_NONE:
            return _coded_frame(codec, NAL_NONE, frame_type, 0, tag, 5, size)
        if n < 8:
            raise ProtocolError(
                f"FLV video: tag of {n} bytes is shorter than its 8-byte enhanced CodedFrames header"
            )
        return _coded_frame(codec, nal_kind, frame_type, _si24(p + 5), tag, 8, size)
    if packet_type == 3:
        # "CodedFramesX ... CompositionTime Offset is implicitly set to zero. This optimization
        # avoids transmitting an SI24 composition time value of zero over the wire."
        return _coded_frame(codec, nal_kind, frame_type, 0, tag, 5, size)
    if packet_type == 0 or packet_type == 5:
        # SequenceStart carries the decoder configuration record; "PacketTypeSequenceStart and
        # PacketTypeMPEG2TSSequenceStart are mutually exclusive", so both are the config.
        return _new_video_tag(codec, _CONFIG, frame_type, frame_type == 1, 0, _view(tag, 5), _NO_NALS)
    if packet_type == 2:
        return _new_video_tag(codec, _END, frame_type, frame_type == 1, 0, _view(tag, 5), _NO_NALS)
    raise ProtocolError(f"FLV video: unsupported enhanced packet type {packet_type}")


def parse_video_tag(payload, int nal_length_size=4):
    """Parses the payload of an RTMP video message (an FLV VIDEODATA tag body)."""
    _check_length_size(nal_length_size)
    return _parse_video(_own(payload), nal_length_size)


cdef AudioTag _parse_audio(bytes payload):
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(payload)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
    cdef AudioTag tag
    cdef int sound_format
    if n == 0:
        raise ProtocolError("FLV audio: empty tag")
    # FLV v10.1 E.4.2.1 AUDIODATA: "SoundFormat UB[4] ... 2 = MP3 ... 10 = AAC 11 = Speex
    # 14 = MP3 8 kHz", then "SoundRate UB[2]", "SoundSize UB[1]", "SoundType UB[1]";
    # "AACPacketType IF SoundFormat == 10 UI8: 0 = AAC sequence header 1 = AAC raw".
    sound_format = p[0] >> 4
    tag = AudioTag.__new__(AudioTag)
    tag.codec = <str>_AUDIO_CODEC_NAMES[sound_format]
    tag.sound_format = sound_format
    if sound_format != 10:
        tag.packet_type = _FRAME
        tag.data = _view(payload, 1)
        return tag
    if n < 2:
        raise ProtocolError(f"FLV audio: tag of {n} bytes is shorter than its 2-byte AAC header")
    if p[1] == 0:
        tag.packet_type = _CONFIG
    elif p[1] == 1:
        tag.packet_type = _FRAME
    else:
        raise ProtocolError(f"FLV audio: unknown AAC packet type {p[1]}")
    tag.data = _view(payload, 2)
    return tag


def parse_audio_tag(payload):
    """Parses the payload of an RTMP audio message (an FLV AUDIODATA tag body)."""
    return _parse_audio(_own(payload))


cdef bytes _to_annexb(const uint8_t* p, Py_ssize_t n, int size):
    cdef Py_ssize_t count = _count_nals(p, n, size, "AVCC", "frame")
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n + count * (4 - size))
    cdef uint8_t* o = <uint8_t*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t length
    with nogil:
        while pos < n:
            length = _read_length(p + pos, size)
            pos += size
            o[0] = 0
            o[1] = 0
            o[2] = 0
            o[3] = 1
            memcpy(o + 4, p + pos, length)
            o += 4 + length
            pos += length
    return out


def avcc_to_annexb(data, int nal_length_size=4):
    """Rewrites length-prefixed NAL units (AVCC/HVCC layout) as Annex B: 00 00 00 01 before each."""
    cdef Py_buffer view
    _check_length_size(nal_length_size)
    if type(data) is bytes:
        return _to_annexb(<const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), nal_length_size)
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return _to_annexb(<const uint8_t*>view.buf, view.len, nal_length_size)
    finally:
        PyBuffer_Release(&view)


# Decoder configuration records: once per stream, so plain readable code over C speed.


cdef bytes _as_bytes(data):
    return data if type(data) is bytes else bytes(memoryview(data))


cdef tuple _read_units(
    const uint8_t* p, Py_ssize_t n, Py_ssize_t* pos, Py_ssize_t count, str context, str what
):
    """Reads `count` units, each behind a 16-bit length, as in avcC and hvcC."""
    cdef list units = []
    cdef Py_ssize_t i, length
    for i in range(count):
        if n - pos[0] < 2:
            raise ProtocolError(
                f"{context}: {what} {i} length field overruns the record ({n - pos[0]} bytes left)"
            )
        length = _be16(p + pos[0])
        pos[0] += 2
        if length > n - pos[0]:
            raise ProtocolError(
                f"{context}: {what} {i} of {length} bytes overruns the record ({n - pos[0]} bytes left)"
            )
        units.append(PyBytes_FromStringAndSize(<char*>p + pos[0], length))
        pos[0] += length
    return tuple(units)


cdef bytes _write_units(tuple units):
    return b"".join([len(unit).to_bytes(2, "big") + unit for unit in units])


@cython.dataclasses.dataclass(frozen=True)
cdef class AvcConfig:
    """AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1), the avcC box body.

    `extension` keeps the bytes after the PPS list verbatim (the chroma_format / bit depth /
    SPS extension block of High profiles), so `bytes(config)` re-serialises the record exactly.
    """

    cdef readonly int profile_idc
    cdef readonly int profile_compat
    cdef readonly int level_idc
    cdef readonly int nal_length_size
    cdef readonly tuple sps
    cdef readonly tuple pps
    cdef readonly bytes extension

    @property
    def codecs(self):
        """RFC 6381 CODECS value: avc1.PPCCLL (profile_idc, constraint flags, level_idc)."""
        return f"avc1.{self.profile_idc:02x}{self.profile_compat:02x}{self.level_idc:02x}"

    def __bytes__(self):
        if len(self.sps) > 31:
            raise ValueError(f"an avcC record holds at most 31 SPS, not {len(self.sps)}")
        head = bytes(
            [
                1,
                self.profile_idc,
                self.profile_compat,
                self.level_idc,
                0xFC | (self.nal_length_size - 1),
                0xE0 | len(self.sps),
            ]
        )
        return (
            head + _write_units(self.sps) + bytes([len(self.pps)]) + _write_units(self.pps) + self.extension
        )


def parse_avc_config(data):
    """Parses an AVCDecoderConfigurationRecord (the AVC sequence header of an FLV tag)."""
    cdef bytes record = _as_bytes(data)
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(record)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(record)
    cdef Py_ssize_t pos = 6
    cdef int nal_length_size
    cdef tuple sps, pps
    # "configurationVersion = 1; AVCProfileIndication; profile_compatibility;
    # AVCLevelIndication; bit(6) reserved = '111111'b; unsigned int(2) lengthSizeMinusOne;
    # bit(3) reserved = '111'b; unsigned int(5) numOfSequenceParameterSets; ..."
    if n < 6:
        raise ProtocolError(f"AVC config: record of {n} bytes is shorter than its 6-byte header")
    if p[0] != 1:
        raise ProtocolError(f"AVC config: configurationVersion {p[0]} is not 1")
    nal_length_size = (p[4] & 0x03) + 1
    if nal_length_size == 3:
        raise ProtocolError("AVC config: NAL length size 3 is not 1, 2 or 4")
    sps = _read_units(p, n, &pos, p[5] & 0x1F, "AVC config", "SPS")
    if pos >= n:
        raise ProtocolError("AVC config: record ends before numOfPictureParameterSets")
    pos += 1
    pps = _read_units(p, n, &pos, p[pos - 1], "AVC config", "PPS")
    return AvcConfig(
        profile_idc=p[1],
        profile_compat=p[2],
        level_idc=p[3],
        nal_length_size=nal_length_size,
        sps=sps,
        pps=pps,
        extension=PyBytes_FromStringAndSize(<char*>p + pos, n - pos),
    )


cdef str _reverse_bits32_hex(uint32_t value):
    cdef uint32_t reversed_value = 0
    cdef int i
    for i in range(32):
        reversed_value = (reversed_value << 1) | ((value >> i) & 1)
    return f"{reversed_value:X}"


@cython.dataclasses.dataclass(frozen=True)
cdef class HevcConfig:
    """HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1), the hvcC box body.

    `arrays` holds (NAL unit type, units) per parameter-set array and `array_completeness` each
    array's completeness bit. Reserved bits are written as ones; records whose reserved bits are
    ones and that end after the last array round-trip through `bytes(config)`.
    """

    cdef readonly int general_profile_space
    cdef readonly int general_tier_flag
    cdef readonly int general_profile_idc
    cdef readonly uint32_t general_profile_compatibility_flags
    cdef readonly bytes general_constraint_indicator_flags
    cdef readonly int general_level_idc
    cdef readonly int min_spatial_segmentation_idc
    cdef readonly int parallelism_type
    cdef readonly int chroma_format_idc
    cdef readonly int bit_depth_luma_minus8
    cdef readonly int bit_depth_chroma_minus8
    cdef readonly int avg_frame_rate
    cdef readonly int constant_frame_rate
    cdef readonly int num_temporal_layers
    cdef readonly int temporal_id_nested
    cdef readonly int nal_length_size
    cdef readonly tuple arrays
    cdef readonly tuple array_completeness

    @property
    def codecs(self):
        """RFC 6381 CODECS value per ISO/IEC 14496-15 Annex E, e.g. "hvc1.1.6.L93.B0".

        "the general_profile_space encoded as no character (general_profile_space == 0), or 'A',
        'B', 'C' for general_profile_space 1, 2, 3, followed by the general_profile_idc encoded as
        a decimal number; the 32 bits of the general_profile_compatibility_flags, but in reverse
        bit order ... encoded in hexadecimal (leading zeroes may be omitted); the
        general_tier_flag, encoded as 'L' (general_tier_flag==0) or 'H' (general_tier_flag==1),
        followed by the general_level_idc, encoded as a decimal number; each of the 6 bytes of the
        constraint flags ... each encoded as a hexadecimal number ... trailing bytes that are zero
        may be omitted."
        """
        constraints = bytes(self.general_constraint_indicator_flags).rstrip(b"\x00")
        parts = [
            "hvc1",
            f"{('', 'A', 'B', 'C')[self.general_profile_space]}{self.general_profile_idc}",
            _reverse_bits32_hex(self.general_profile_compatibility_flags),
            f"{'LH'[self.general_tier_flag]}{self.general_level_idc}",
        ]
        parts += [f"{byte:X}" for byte in constraints]
        return ".".join(parts)

    def __bytes__(self):
        out = bytearray(
            [
                1,
                (self.general_profile_space << 6) | (self.general_tier_flag << 5) | self.general_profile_idc,
            ]
        )
        out += (<object>self.general_profile_compatibility_flags).to_bytes(4, "big")
        out += self.general_constraint_indicator_flags
        out.append(self.general_level_idc)
        out += (<object>(0xF000 | self.min_spatial_segmentation_idc)).to_bytes(2, "big")
        out.append(0xFC | self.parallelism_type)
        out.append(0xFC | self.chroma_format_idc)
        out.append(0xF8 | self.bit_depth_luma_minus8)
        out.append(0xF8 | self.bit_depth_chroma_minus8)
        out += (<object>self.avg_frame_rate).to_bytes(2, "big")
        out.append(
            (self.constant_frame_rate << 6)
            | (self.num_temporal_layers << 3)
            | (self.temporal_id_nested << 2)
            | (self.nal_length_size - 1)
        )
        out.append(len(self.arrays))
        for (nal_type, units), complete in zip(self.arrays, self.array_completeness, strict=True):
            out.append((complete << 7) | nal_type)
            out += len(units).to_bytes(2, "big")
            out += _write_units(units)
        return bytes(out)


def parse_hevc_config(data):
    """Parses an HEVCDecoderConfigurationRecord (the HEVC sequence start of an FLV tag)."""
    cdef bytes record = _as_bytes(data)
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(record)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(record)
    cdef Py_ssize_t pos = 23
    cdef Py_ssize_t i, count
    cdef int nal_length_size, nal_type
    cdef list arrays = []
    cdef list completeness = []
    # "unsigned int(8) configurationVersion = 1; unsigned int(2) general_profile_space;
    # unsigned int(1) general_tier_flag; unsigned int(5) general_profile_idc; unsigned int(32)
    # general_profile_compatibility_flags; unsigned int(48) general_constraint_indicator_flags;
    # unsigned int(8) general_level_idc; bit(4) reserved = '1111'b; unsigned int(12)
    # min_spatial_segmentation_idc; bit(6) reserved = '111111'b; unsigned int(2) parallelismType;
    # bit(6) reserved = '111111'b; unsigned int(2) chromaFormat; bit(5) reserved = '11111'b;
    # unsigned int(3) bitDepthLumaMinus8; bit(5) reserved = '11111'b; unsigned int(3)
    # bitDepthChromaMinus8; bit(16) avgFrameRate; bit(2) constantFrameRate; bit(3)
    # numTemporalLayers; bit(1) temporalIdNested; unsigned int(2) lengthSizeMinusOne; unsigned
    # int(8) numOfArrays; for (j=0; j < numOfArrays; j++) { bit(1) array_completeness; unsigned
    # int(1) reserved = 0; unsigned int(6) NAL_unit_type; unsigned int(16) numNalus; ..."
    if n < 23:
        raise ProtocolError(f"HEVC config: record of {n} bytes is shorter than its 23-byte header")
    if p[0] != 1:
        raise ProtocolError(f"HEVC config: configurationVersion {p[0]} is not 1")
    nal_length_size = (p[21] & 0x03) + 1
    if nal_length_size == 3:
        raise ProtocolError("HEVC config: NAL length size 3 is not 1, 2 or 4")
    for i in range(p[22]):
        if n - pos < 3:
            raise ProtocolError(f"HEVC config: array {i} header overruns the record ({n - pos} bytes left)")
        completeness.append(bool(p[pos] & 0x80))
        nal_type = p[pos] & 0x3F
        count = _be16(p + pos + 1)
        pos += 3
        arrays.append((nal_type, _read_units(p, n, &pos, count, "HEVC config", f"array {i} unit")))
    return HevcConfig(
        general_profile_space=p[1] >> 6,
        general_tier_flag=(p[1] >> 5) & 1,
        general_profile_idc=p[1] & 0x1F,
        general_profile_compatibility_flags=_be32(p + 2),
        general_constraint_indicator_flags=PyBytes_FromStringAndSize(<char*>p + 6, 6),
        general_level_idc=p[12],
        min_spatial_segmentation_idc=_be16(p + 13) & 0x0FFF,
        parallelism_type=p[15] & 0x03,
        chroma_format_idc=p[16] & 0x03,
        bit_depth_luma_minus8=p[17] & 0x07,
        bit_depth_chroma_minus8=p[18] & 0x07,
        avg_frame_rate=_be16(p + 19),
        constant_frame_rate=p[21] >> 6,
        num_temporal_layers=(p[21] >> 3) & 0x07,
        temporal_id_nested=(p[21] >> 2) & 1,
        nal_length_size=nal_length_size,
        arrays=tuple(arrays),
        array_completeness=tuple(completeness),
    )


# ISO/IEC 14496-3 1.6.3.4 samplingFrequencyIndex; 13 and 14 are reserved, 15 means "escape value"
# (the rate follows as a 24-bit samplingFrequency).
cdef tuple _AAC_SAMPLE_RATES = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350
)
# 1.6.3.5 channelConfiguration -> output channels (0: defined in the program_config_element;
# 11-14 from the 2009 amendments; 8-10 and 15 reserved).
cdef tuple _AAC_CHANNELS = (0, 1, 2, 3, 4, 5, 6, 8, -1, -1, -1, 7, 8, 24, 8, -1)
# Audio object types whose AudioSpecificConfig continues with GASpecificConfig (1.6.2.1).
cdef frozenset _AAC_GA_OBJECT_TYPES = frozenset({1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23})


cdef class _BitReader:
    cdef const uint8_t* p
    cdef Py_ssize_t n
    cdef Py_ssize_t bit

    cdef uint32_t read(self, int count, str field) except? 0xFFFFFFFF:
        cdef uint32_t value = 0
        cdef Py_ssize_t end = self.bit + count
        if end > self.n * 8:
            raise ProtocolError(f"AAC config: record of {self.n} bytes ends inside {field}")
        while self.bit < end:
            value = (value << 1) | ((self.p[self.bit >> 3] >> (7 - (self.bit & 7))) & 1)
            self.bit += 1
        return value

    cdef int object_type(self) except -1:
        cdef int value = self.read(5, "audioObjectType")
        if value == 31:
            value = 32 + <int>self.read(6, "audioObjectType")
        return value

    cdef uint32_t sample_rate(self, int index, str field) except? 0xFFFFFFFF:
        if index == 15:
            return self.read(24, field.replace("Index", ""))
        if index > 12:
            raise ProtocolError(f"AAC config: reserved {field} {index}")
        return _AAC_SAMPLE_RATES[index]

    cdef str rest(self):
        """The bits not read yet, as "0"/"1" text."""
        cdef bytes record = PyBytes_FromStringAndSize(<char*>self.p, self.n)
        return f"{int.from_bytes(record, 'big'):0{self.n * 8}b}"[self.bit:]


@cython.dataclasses.dataclass(frozen=True)
cdef class AacConfig:
    """AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), the AAC sequence header of an FLV tag.

    `sample_rate` is the output rate: for explicitly signalled HE-AAC (object type 5 or 29) the
    SBR extension rate, otherwise `core_sample_rate`. `frame_length` is the core coder's samples
    per frame (1024, or 960 when GASpecificConfig's frameLengthFlag is set); SBR doubles it at
    `sample_rate`. `extension_sampling_frequency_index` is -1 without explicit SBR signalling.
    `remaining_bits` keeps, as "0"/"1" text, every bit after the fields above (the rest of
    GASpecificConfig, sync extensions such as the 0x2B7 one ffmpeg appends, padding), so that
    `bytes(config)` re-serialises the record exactly. Backward-compatible (sync extension) SBR
    signalling is not interpreted: `object_type` and `codecs` name the core object type then.
    """

    cdef readonly int object_type
    cdef readonly int sample_rate
    cdef readonly int channels
    cdef readonly int frame_length
    cdef readonly int sampling_frequency_index
    cdef readonly int core_sample_rate
    cdef readonly int channel_configuration
    cdef readonly int extension_sampling_frequency_index
    cdef readonly int core_object_type
    cdef readonly str remaining_bits

    @property
    def codecs(self):
        """RFC 6381 CODECS value: mp4a.40.<audioObjectType>."""
        return f"mp4a.40.{self.object_type}"

    def __bytes__(self):
        fields = []

        def put_object_type(value):
            if value >= 31:
                fields.append((5, 31))
                fields.append((6, value - 32))
            else:
                fields.append((5, value))

        put_object_type(self.object_type)
        fields.append((4, self.sampling_frequency_index))
        if self.sampling_frequency_index == 15:
            fields.append((24, self.core_sample_rate))
        fields.append((4, self.channel_configuration))
        if self.extension_sampling_frequency_index >= 0:
            fields.append((4, self.extension_sampling_frequency_index))
            if self.extension_sampling_frequency_index == 15:
                fields.append((24, self.sample_rate))
            put_object_type(self.core_object_type)
        if self.core_object_type in _AAC_GA_OBJECT_TYPES:
            fields.append((1, self.frame_length == 960))
        if self.remaining_bits:
            fields.append((len(self.remaining_bits), int(self.remaining_bits, 2)))
        value = 0
        width = 0
        for bits, field in fields:
            value = (value << bits) | field
            width += bits
        pad = -width % 8
        return (value << pad).to_bytes((width + pad) // 8, "big")


def parse_aac_config(data):
    """Parses an AAC AudioSpecificConfig (the AAC sequence header of an FLV audio tag)."""
    cdef bytes record = _as_bytes(data)
    cdef _BitReader reader = _BitReader.__new__(_BitReader)
    cdef int object_type, core_object_type, frequency_index, channel_configuration, channels
    cdef int extension_index = -1
    cdef int core_sample_rate, sample_rate
    cdef int frame_length = 1024
    reader.p = <const uint8_t*>PyBytes_AS_STRING(record)
    reader.n = PyBytes_GET_SIZE(record)
    # "audioObjectType = GetAudioObjectType(); samplingFrequencyIndex; 4 bslbf; if
    # (samplingFrequencyIndex == 0xf) { samplingFrequency; 24 uimsbf } channelConfiguration;
    # 4 bslbf ... if (audioObjectType == 5 || audioObjectType == 29) {
    # extensionSamplingFrequencyIndex; 4 uimsbf; if (extensionSamplingFrequencyIndex == 0xf)
    # extensionSamplingFrequency; 24 uimsbf; audioObjectType = GetAudioObjectType();"
    object_type = reader.object_type()
    if object_type == 0:
        raise ProtocolError("AAC config: audioObjectType 0 is the null object")
    frequency_index = reader.read(4, "samplingFrequencyIndex")
    core_sample_rate = reader.sample_rate(frequency_index, "samplingFrequencyIndex")
    sample_rate = core_sample_rate
    channel_configuration = reader.read(4, "channelConfiguration")
    channels = _AAC_CHANNELS[channel_configuration]
    if channels < 0:
        raise ProtocolError(f"AAC config: reserved channelConfiguration {channel_configuration}")
    core_object_type = object_type
    if object_type == 5 or object_type == 29:
        extension_index = reader.read(4, "extensionSamplingFrequencyIndex")
        sample_rate = reader.sample_rate(extension_index, "extensionSamplingFrequencyIndex")
        core_object_type = reader.object_type()
        if core_object_type == 22:
            raise ProtocolError("AAC config: SBR over ER BSAC (object type 22) is not supported")
    if core_object_type in _AAC_GA_OBJECT_TYPES:
        # GASpecificConfig: "frameLengthFlag; 1 bslbf" - "If set to 1, a 960 line IMDCT is used".
        if reader.read(1, "GASpecificConfig"):
            frame_length = 960
    remaining_bits = reader.rest()
    return AacConfig(
        object_type=object_type,
        sample_rate=sample_rate,
        channels=channels,
        frame_length=frame_length,
        sampling_frequency_index=frequency_index,
        core_sample_rate=core_sample_rate,
        channel_configuration=channel_configuration,
        extension_sampling_frequency_index=extension_index,
        core_object_type=core_object_type,
        remaining_bits=remaining_bits,
    )
