# MPEG-TS muxer for HLS segments (ISO/IEC 13818-1), for players that predate fMP4 HLS.
# Included by ext/segmenter.pyx next to the fMP4 muxer; every module-level private name here
# starts with `_ts_` / `_TS_` so the two halves cannot clash.
#
# Theory of operation. One program with at most two elementary streams on fixed PIDs: PMT 0x1000,
# video 0x100 (stream type 0x1B H.264 or 0x24 HEVC), audio 0x101 (0x0F, AAC in ADTS). The
# PCR travels on the video PID, or on the audio PID when there is no video.
#
# * `start_segment()` returns PAT + PMT (built with their CRCs once, in `__init__`; only the
#   continuity counters change), so that every segment is decodable on its own.
# * `write_video()` is one call per access unit and returns whole TS packets for one PES. The
#   AVCC unit is walked twice in C: the first pass validates every length prefix against the unit
#   and measures the Annex B size (and notes whether the unit starts with an AUD and carries its
#   own SPS); the second copies start codes and NAL units straight into the TS packets of the
#   output bytes, whose size is known exactly after the first pass. There is no intermediate PES
#   buffer: the payload bytes are copied once.
# * `write_audio()` is one call per AAC frame: one PES holding one ADTS frame. Batching frames
#   (as ffmpeg does) would save the PES header and the part-filled last packet of each frame,
#   about 100 bytes or 35 kb/s at 44.1 kHz (around 1% of a 3-6 Mb/s rendition), but it would
#   hold audio back until a batch is full, need a flush before each PAT/PMT, and leave the
#   player to derive every frame's time but the first from frame durations, losing the jitter
#   and gaps of the source's own timestamps. A PES per frame keeps each frame's PTS and returns
#   its bytes in the call that brought it.
# * Every PES on the PCR PID carries a PCR in its first packet (8 bytes of adaptation field, so
#   the 100 ms bound holds whenever frames are less than 100 ms apart), equal to its DTS: the
#   muxer has no transport-rate model, and HLS players pace from PTS. When frames are further
#   apart, adaptation-field-only packets carrying PCRs 100 ms apart are sent before the PES.
#
# Nothing is buffered between calls: each call's output is proportional to its input, plus at most
# 49 PCR-only packets. The pure-Python twin `owncast_fast._pure.mpegts` takes the same steps and
# builds the same bytes.

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from owncast_fast.errors import ProtocolError

cdef enum:
    _TS_PACKET_SIZE = 188
    _TS_PAYLOAD_SIZE = 184
    _TS_PAT_PID = 0x0000
    _TS_PMT_PID = 0x1000
    _TS_VIDEO_PID = 0x0100
    _TS_AUDIO_PID = 0x0101
    _TS_STREAM_TYPE_AVC = 0x1B
    _TS_STREAM_TYPE_HEVC = 0x24
    _TS_STREAM_TYPE_AAC_ADTS = 0x0F
    _TS_STREAM_ID_VIDEO = 0xE0
    _TS_STREAM_ID_AUDIO = 0xC0
    _TS_PCR_INTERVAL = 9000          # 100 ms of the 90 kHz clock
    # A longer silence on the PCR PID is an interruption, not a slow frame rate: it is not papered
    # over with PCR-only packets, which bounds the filler a call can add to 49 packets.
    _TS_PCR_FILL_LIMIT = 5 * 90000
    _TS_ADTS_HEADER_SIZE = 7
    _TS_ADTS_MAX_FRAME = 8191        # aac_frame_length is 13 bits and counts the header
    _TS_PCR_AF_SIZE = 8              # adaptation_field_length, flags, 6-byte PCR
    _TS_AF_PCR_FLAG = 0x10
    _TS_AF_RANDOM_ACCESS = 0x40
    _TS_NOGIL_BYTES = 64 * 1024      # units at least this large are copied without the GIL

cdef enum _TsCodec:
    _TS_CODEC_NONE = 0
    _TS_CODEC_AVC = 1
    _TS_CODEC_HEVC = 2

cdef uint64_t _TS_CLOCK_MASK = (1 << 33) - 1    # PTS, DTS and the PCR base are 33-bit counters
cdef const char* _TS_START_CODE = b"\x00\x00\x00\x01"
# Access unit delimiters, start code included. H.264 7.3.2.4: nal_unit_type 9, then
# primary_pic_type 7 ("I, SI, P, SP, B": any slice) and the RBSP stop bit. H.265 7.3.2.5:
# nal_unit_type 35 in a two-byte header (layer 0, temporal id plus 1 = 1), pic_type 2 (I, P, B).
cdef bytes _TS_AUD_AVC = b"\x00\x00\x00\x01\x09\xf0"
cdef bytes _TS_AUD_HEVC = b"\x00\x00\x00\x01\x46\x01\x50"


cdef uint32_t[256] _ts_crc_table


cdef void _ts_init_crc_table() noexcept:
    # CRC-32/MPEG-2 (13818-1 Annex A): polynomial 0x04C11DB7, MSB first, register preset to all
    # ones, no final inversion; "gives a zero output of the registers in the decoder after
    # processing the entire section".
    cdef uint32_t i, j, c
    for i in range(256):
        c = i << 24
        for j in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else (c << 1)
        _ts_crc_table[i] = c


_ts_init_crc_table()


cdef uint32_t _ts_crc32(bytes data) noexcept:
    cdef uint32_t crc = 0xFFFFFFFF
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t i
    for i in range(len(data)):
        crc = (crc << 8) ^ _ts_crc_table[((crc >> 24) ^ p[i]) & 0xFF]
    return crc


cdef bytes _ts_psi_packet(int pid, bytes section):
    # 2.4.4: a section starting in a packet is preceded by pointer_field (0: it starts right
    # away); "stuffing bytes of value 0xFF may occur after the last byte of a section", up to the
    # end of the packet.
    cdef bytes body = section + _ts_crc32(section).to_bytes(4, "big")
    cdef bytes head = bytes((0x47, 0x40 | (pid >> 8), pid & 0xFF, 0x10, 0x00))
    return head + body + b"\xff" * (_TS_PACKET_SIZE - len(head) - len(body))


cdef bytes _ts_psi_section(int table_id, int id_extension, bytes body):
    # section_syntax_indicator 1, '0', reserved '11', section_length (counts everything after
    # it, CRC included); table id extension; reserved '11', version_number 0,
    # current_next_indicator 1; section_number 0; last_section_number 0.
    cdef int length = 5 + len(body) + 4
    return (
        bytes((table_id, 0xB0 | (length >> 8), length & 0xFF, id_extension >> 8, id_extension & 0xFF, 0xC1, 0, 0))
        + body
    )


cdef bytes _ts_pat():
    # 2.4.4.3: transport_stream_id 1; one program, number 1, whose PMT is on PID 0x1000.
    return _ts_psi_packet(
        _TS_PAT_PID, _ts_psi_section(0x00, 1, bytes((0, 1, 0xE0 | (_TS_PMT_PID >> 8), _TS_PMT_PID & 0xFF)))
    )


cdef bytes _ts_pmt(int video_type, bint has_audio):
    # 2.4.4.8: PCR_PID, program_info_length 0, then per stream: stream_type, elementary_PID,
    # ES_info_length 0 (reserved bits set).
    cdef int pcr_pid = _TS_VIDEO_PID if video_type else _TS_AUDIO_PID
    cdef bytes body = bytes((0xE0 | (pcr_pid >> 8), pcr_pid & 0xFF, 0xF0, 0x00))
    if video_type:
        body += bytes((video_type, 0xE0 | (_TS_VIDEO_PID >> 8), _TS_VIDEO_PID & 0xFF, 0xF0, 0x00))
    if has_audio:
        body += bytes((_TS_STREAM_TYPE_AAC_ADTS, 0xE0 | (_TS_AUDIO_PID >> 8), _TS_AUDIO_PID & 0xFF, 0xF0, 0x00))
    return _ts_psi_packet(_TS_PMT_PID, _ts_psi_section(0x02, 1, body))


cdef Py_ssize_t _ts_parameter_sets(bytes record, Py_ssize_t pos, Py_ssize_t count, str name, list out) except -1:
    # Each parameter set is a 16-bit length and a NAL unit; returns the position after the list.
    cdef Py_ssize_t n = len(record), length
    cdef Py_ssize_t i
    for i in range(count):
        if pos + 2 > n:
            raise ProtocolError(f"MPEG-TS: {name} record is truncated at byte {pos}")
        length = (record[pos] << 8) | record[pos + 1]
        pos += 2
        if pos + length > n:
            raise ProtocolError(f"MPEG-TS: {name} record is truncated at byte {pos}")
        if length:
            out.append(b"\x00\x00\x00\x01" + record[pos : pos + length])
        pos += length
    return pos


cdef int _ts_length_size(int minus_one, str name) except -1:
    # "lengthSizeMinusOne ... The value of this field shall be one of 0, 1, or 3" (14496-15).
    if minus_one == 2:
        raise ProtocolError(f"MPEG-TS: {name} NAL unit length size 3 is not 1, 2 or 4")
    return minus_one + 1


cdef tuple _ts_parse_video_config(int codec, config):
    # Returns (NAL unit length size, the record's parameter sets in Annex B, in record order).
    cdef bytes record = bytes(config)
    cdef Py_ssize_t n = len(record), pos, arrays
    cdef list sets = []
    cdef int size
    if codec == _TS_CODEC_AVC:
        # AVCDecoderConfigurationRecord (14496-15 5.3.3.1): configurationVersion,
        # AVCProfileIndication, profile_compatibility, AVCLevelIndication, '111111'
        # lengthSizeMinusOne, '111' numOfSequenceParameterSets, SPS..., numOfPictureParameterSets,
        # PPS..., then (high profiles) chroma and bit depth fields we do not need.
        if n < 7:
            raise ProtocolError(f"MPEG-TS: avcC record of {n} bytes is too short (at least 7)")
        if record[0] != 1:
            raise ProtocolError(f"MPEG-TS: avcC configurationVersion {record[0]}, expected 1")
        size = _ts_length_size(record[4] & 3, "avcC")
        pos = _ts_parameter_sets(record, 6, record[5] & 0x1F, "avcC", sets)
        if pos >= n:
            raise ProtocolError(f"MPEG-TS: avcC record is truncated at byte {pos}")
        _ts_parameter_sets(record, pos + 1, record[pos], "avcC", sets)
        return size, b"".join(sets)
    # HEVCDecoderConfigurationRecord (14496-15 8.3.3.1): 22 bytes of profile, tier, level and
    # format fields, lengthSizeMinusOne in the low bits of byte 21, numOfArrays at byte 22; each
    # array is one byte (array_completeness, reserved, NAL_unit_type), numNalus (16 bits) and
    # that many length-prefixed NAL units (VPS, SPS, PPS, declarative SEI).
    if n < 23:
        raise ProtocolError(f"MPEG-TS: hvcC record of {n} bytes is too short (at least 23)")
    if record[0] != 1:
        raise ProtocolError(f"MPEG-TS: hvcC configurationVersion {record[0]}, expected 1")
    size = _ts_length_size(record[21] & 3, "hvcC")
    pos = 23
    for arrays in range(record[22]):
        if pos + 3 > n:
            raise ProtocolError(f"MPEG-TS: hvcC record is truncated at byte {pos}")
        pos = _ts_parameter_sets(record, pos + 3, (record[pos + 1] << 8) | record[pos + 2], "hvcC", sets)
    return size, b"".join(sets)


cdef int _ts_asc_bits(object bits, Py_ssize_t total, Py_ssize_t pos, int count) except -1:
    # `count` bits of the AudioSpecificConfig (held as one big integer) from bit `pos` on.
    if pos + count > total:
        raise ProtocolError("MPEG-TS: AudioSpecificConfig is truncated")
    return (bits >> (total - pos - count)) & ((1 << count) - 1)


cdef tuple _ts_asc_object_type(object bits, Py_ssize_t total, Py_ssize_t pos):
    # GetAudioObjectType(): 5 bits, where 31 escapes to 32 + the next 6 bits.
    cdef int value = _ts_asc_bits(bits, total, pos, 5)
    if value == 31:
        return 32 + _ts_asc_bits(bits, total, pos + 5, 6), pos + 11
    return value, pos + 5


cdef bytes _ts_parse_audio_config(config):
    # AudioSpecificConfig (14496-3 1.6.2.1): audioObjectType (5 bits, 31 escapes to 32 + 6 bits),
    # samplingFrequencyIndex (4 bits, 15 means a 24-bit frequency follows), channelConfiguration
    # (4 bits); for explicit SBR/PS (types 5 and 29) an extension sampling frequency index and
    # the underlying object type follow. ADTS (1.A.2.2) has a 2-bit profile (object type minus 1)
    # and a 3-bit channel configuration, and carries HE-AAC as its AAC-LC core at the core rate
    # (the decoder finds the SBR data implicitly). Returns the 4 fixed ADTS header bytes after
    # the sync word and flags, with aac_frame_length still zero.
    cdef bytes asc = bytes(config)
    cdef Py_ssize_t n = len(asc)
    if n < 2:
        raise ProtocolError(f"MPEG-TS: AudioSpecificConfig of {n} bytes is too short (at least 2)")
    cdef object bits = int.from_bytes(asc, "big")
    cdef Py_ssize_t total = n * 8, pos = 0
    cdef int object_type, frequency_index, channels
    object_type, pos = _ts_asc_object_type(bits, total, pos)
    frequency_index = _ts_asc_bits(bits, total, pos, 4)
    pos += 4
    if frequency_index > 12:
        raise ProtocolError(
            f"MPEG-TS: AAC sampling frequency index {frequency_index} cannot be carried in ADTS (0 to 12)"
        )
    channels = _ts_asc_bits(bits, total, pos, 4)
    pos += 4
    if not 1 <= channels <= 7:
        raise ProtocolError(f"MPEG-TS: AAC channel configuration {channels} cannot be carried in ADTS (1 to 7)")
    if object_type == 5 or object_type == 29:
        pos += 4 if _ts_asc_bits(bits, total, pos, 4) != 15 else 28
        object_type, pos = _ts_asc_object_type(bits, total, pos)
    if not 1 <= object_type <= 4:
        raise ProtocolError(f"MPEG-TS: AAC audio object type {object_type} cannot be carried in ADTS (1 to 4)")
    # syncword 0xFFF, ID 0 (MPEG-4), layer 0, protection_absent 1; profile_ObjectType,
    # sampling_frequency_index, private_bit 0, channel_configuration, original_copy 0, home 0,
    # copyright bits 0; adts_buffer_fullness 0x7FF (variable rate), one raw data block.
    return bytes((
        0xFF,
        0xF1,
        ((object_type - 1) << 6) | (frequency_index << 2) | (channels >> 2),
        (channels & 3) << 6,
    ))


cdef inline uint64_t _ts_clock(object value) except? 0xFFFFFFFFFFFFFFFF:
    # "mod 2**33" the way Python means it, for negative and oversized values alike.
    return <uint64_t>(value & 0x1FFFFFFFF)


cdef inline void _ts_write_timestamp(uint8_t* p, int prefix, uint64_t t) noexcept nogil:
    # 2.4.3.7: a 4-bit prefix, then the 33 bits as 3 + 15 + 15, each group ended by marker_bit 1.
    p[0] = <uint8_t>((prefix << 4) | ((t >> 29) & 0x0E) | 1)
    p[1] = <uint8_t>(t >> 22)
    p[2] = <uint8_t>(((t >> 14) & 0xFE) | 1)
    p[3] = <uint8_t>(t >> 7)
    p[4] = <uint8_t>(((t << 1) & 0xFE) | 1)


cdef inline void _ts_write_pcr(uint8_t* p, uint64_t base) noexcept nogil:
    # 2.4.3.5: program_clock_reference_base (33 bits), 6 reserved bits, extension (9 bits, 0).
    p[0] = <uint8_t>(base >> 25)
    p[1] = <uint8_t>(base >> 17)
    p[2] = <uint8_t>(base >> 9)
    p[3] = <uint8_t>(base >> 1)
    p[4] = <uint8_t>(((base & 1) << 7) | 0x7E)
    p[5] = 0


cdef inline uint32_t _ts_read_length(const uint8_t* p, Py_ssize_t size) noexcept nogil:
    cdef uint32_t value = 0
    cdef Py_ssize_t i
    for i in range(size):
        value = (value << 8) | p[i]
    return value


cdef struct _TsCursor:
    # Where the PES being packetised has got to in the output.
    uint8_t* out           # next output byte
    Py_ssize_t room        # payload bytes left in the current TS packet
    Py_ssize_t left        # PES bytes not yet written
    uint32_t pid
    uint8_t* counter       # the PID's continuity counter: the value the next packet uses


cdef inline Py_ssize_t _ts_packet_count(Py_ssize_t pes_size, Py_ssize_t first_af) noexcept nogil:
    # The first packet holds 184 - first_af payload bytes, every later one 184.
    cdef Py_ssize_t rest = pes_size - (_TS_PAYLOAD_SIZE - first_af)
    if rest <= 0:
        return 1
    return 1 + (rest + _TS_PAYLOAD_SIZE - 1) // _TS_PAYLOAD_SIZE


cdef inline void _ts_header(uint8_t* o, uint32_t pid, bint unit_start, int control, uint8_t counter) noexcept nogil:
    # 2.4.3.2: sync_byte 0x47; transport_error_indicator 0, payload_unit_start_indicator,
    # transport_priority 0, PID (13 bits); scrambling 00, adaptation_field_control (01 payload,
    # 10 adaptation field only, 11 both), continuity_counter.
    o[0] = 0x47
    o[1] = <uint8_t>((0x40 if unit_start else 0) | (pid >> 8))
    o[2] = <uint8_t>pid
    o[3] = <uint8_t>((control << 4) | counter)


cdef inline void _ts_adaptation_field(uint8_t* o, Py_ssize_t total, int flags, uint64_t pcr) noexcept nogil:
    # An adaptation field of `total` bytes at o (length byte included), stuffed with 0xFF.
    # "The value 0 is for inserting a single stuffing byte in a Transport Stream packet."
    cdef uint8_t* q = o + 2
    o[0] = <uint8_t>(total - 1)
    if total == 1:
        return
    o[1] = <uint8_t>flags
    if flags & _TS_AF_PCR_FLAG:
        _ts_write_pcr(q, pcr)
        q += 6
    memset(q, 0xFF, total - (q - o))


cdef inline void _ts_first_packet(_TsCursor* c, int flags, uint64_t pcr) noexcept nogil:
    # The packet that starts a PES (payload_unit_start_indicator 1), with the PCR and
    # random_access_indicator in its adaptation field when `flags` asks for them.
    cdef Py_ssize_t af = _TS_PCR_AF_SIZE if flags & _TS_AF_PCR_FLAG else (2 if flags else 0)
    if c.left < _TS_PAYLOAD_SIZE - af:
        af = _TS_PAYLOAD_SIZE - c.left
    _ts_header(c.out, c.pid, True, 3 if af else 1, c.counter[0])
    c.counter[0] = (c.counter[0] + 1) & 15
    if af:
        _ts_adaptation_field(c.out + 4, af, flags, pcr)
    c.out += 4 + af
    c.room = _TS_PAYLOAD_SIZE - af


cdef inline void _ts_next_packet(_TsCursor* c) noexcept nogil:
    # A continuation packet; the last one of the PES is filled up with adaptation field stuffing
    # ("stuffing ... by means of the adaptation field" is the only way for PES data, 2.4.3.5).
    cdef Py_ssize_t af = 0
    if c.left < _TS_PAYLOAD_SIZE:
        af = _TS_PAYLOAD_SIZE - c.left
    _ts_header(c.out, c.pid, False, 3 if af else 1, c.counter[0])
    c.counter[0] = (c.counter[0] + 1) & 15
    if af:
        _ts_adaptation_field(c.out + 4, af, 0, 0)
    c.out += 4 + af
    c.room = _TS_PAYLOAD_SIZE - af


cdef inline void _ts_put(_TsCursor* c, const uint8_t* src, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t take
    cdef uint8_t* o
    while n > 0:
        if c.room == 0:
            if n >= _TS_PAYLOAD_SIZE:
                # The common case inside a large NAL unit: a whole packet of payload, no
                # adaptation field. A fixed-size copy compiles to a few vector moves, where the
                # general path below calls memcpy with a variable size for every packet.
                o = c.out
                _ts_header(o, c.pid, False, 1, c.counter[0])
                c.counter[0] = (c.counter[0] + 1) & 15
                memcpy(o + 4, src, _TS_PAYLOAD_SIZE)
                c.out = o + _TS_PACKET_SIZE
                src += _TS_PAYLOAD_SIZE
                n -= _TS_PAYLOAD_SIZE
                c.left -= _TS_PAYLOAD_SIZE
                continue
            _ts_next_packet(c)
        take = c.room if c.room < n else n
        memcpy(c.out, src, take)
        c.out += take
        src += take
        n -= take
        c.room -= take
        c.left -= take


cdef void _ts_put_annexb(_TsCursor* c, const uint8_t* data, Py_ssize_t n, Py_ssize_t size) noexcept nogil:
    # The NAL units of an AVCC unit already checked by the first pass, each after a start code.
    cdef Py_ssize_t pos = 0
    cdef uint32_t length
    while pos < n:
        length = _ts_read_length(data + pos, size)
        pos += size
        if length:
            _ts_put(c, <const uint8_t*>_TS_START_CODE, 4)
            _ts_put(c, data + pos, length)
        pos += length


cdef inline Py_ssize_t _ts_pes_header(
    uint8_t* h, int stream_id, Py_ssize_t payload, uint64_t pts, uint64_t dts
) noexcept nogil:
    # 2.4.3.6/2.4.3.7: start code prefix, stream_id, PES_packet_length; '10', not scrambled,
    # data_alignment_indicator 1 (the payload starts with an AUD or an ADTS sync word);
    # PTS_DTS_flags '11', or '10' (PTS only) when the DTS would repeat the PTS;
    # PES_header_data_length. Returns the header size.
    cdef Py_ssize_t size = 14 if pts == dts else 19
    cdef Py_ssize_t length = size - 6 + payload
    # "A value of 0 indicates that the PES packet length is neither specified nor bounded and is
    # allowed only in PES packets whose payload consists of bytes from a video elementary stream".
    if length > 0xFFFF:
        length = 0
    h[0] = 0
    h[1] = 0
    h[2] = 1
    h[3] = <uint8_t>stream_id
    h[4] = <uint8_t>(length >> 8)
    h[5] = <uint8_t>length
    h[6] = 0x84
    if size == 14:
        h[7] = 0x80
        h[8] = 5
        _ts_write_timestamp(h + 9, 2, pts)
    else:
        h[7] = 0xC0
        h[8] = 10
        _ts_write_timestamp(h + 9, 3, pts)
        _ts_write_timestamp(h + 14, 1, dts)
    return size


@cython.final
cdef class TsMuxer:
    """MPEG-TS muxer for one HLS rendition: PAT/PMT per segment, one PES per access unit.

    PIDs: PMT 0x1000, video 0x100, audio 0x101; the PCR is on the video PID (audio when there is
    no video). Timestamps are 90 kHz ticks, taken mod 2**33.
    """

    PACKET_SIZE = _TS_PACKET_SIZE
    PMT_PID = _TS_PMT_PID
    VIDEO_PID = _TS_VIDEO_PID
    AUDIO_PID = _TS_AUDIO_PID

    cdef _TsCodec _codec
    cdef Py_ssize_t _length_size
    cdef bytes _parameter_sets
    cdef bytes _aud
    cdef int _aud_type
    cdef int _sps_type
    cdef bint _has_audio
    cdef uint8_t _adts[4]          # the ADTS header bytes that do not depend on the frame length
    cdef bytes _pat
    cdef bytes _pmt
    cdef uint8_t _counters[4]      # continuity counters: PAT, PMT, video, audio
    cdef uint32_t _pcr_pid
    cdef int64_t _last_pcr         # PCR base of the last PCR sent, -1 before the first

    def __init__(self, *, video_codec=None, video_config=b"", audio_config=b""):
        cdef bytes adts
        if video_codec is None:
            self._codec = _TS_CODEC_NONE
        elif video_codec == "avc1":
            self._codec = _TS_CODEC_AVC
            self._aud, self._aud_type, self._sps_type = _TS_AUD_AVC, 9, 7
        elif video_codec == "hvc1":
            self._codec = _TS_CODEC_HEVC
            self._aud, self._aud_type, self._sps_type = _TS_AUD_HEVC, 35, 33
        else:
            raise ValueError(f"MPEG-TS: unsupported video codec {video_codec!r} (expected 'avc1', 'hvc1' or None)")
        self._has_audio = len(audio_config) > 0
        if self._codec == _TS_CODEC_NONE and not self._has_audio:
            raise ValueError("MPEG-TS: a muxer needs a video codec or an audio config")
        if self._codec != _TS_CODEC_NONE:
            self._length_size, self._parameter_sets = _ts_parse_video_config(self._codec, video_config)
        if self._has_audio:
            adts = _ts_parse_audio_config(audio_config)
            memcpy(self._adts, PyBytes_AS_STRING(adts), 4)
        self._pcr_pid = _TS_VIDEO_PID if self._codec != _TS_CODEC_NONE else _TS_AUDIO_PID
        self._pat = _ts_pat()
        self._pmt = _ts_pmt(
            0 if self._codec == _TS_CODEC_NONE
            else _TS_STREAM_TYPE_AVC if self._codec == _TS_CODEC_AVC else _TS_STREAM_TYPE_HEVC,
            self._has_audio,
        )
        memset(self._counters, 0, sizeof(self._counters))
        self._last_pcr = -1

    def set_video_config(self, video_config):
        """Replace the avcC/hvcC record: its length size applies from the next unit, its parameter
        sets from the next keyframe (they are only ever inserted before keyframes)."""
        if self._codec == _TS_CODEC_NONE:
            raise ValueError("MPEG-TS: set_video_config() on a muxer without a video track")
        self._length_size, self._parameter_sets = _ts_parse_video_config(self._codec, video_config)

    def start_segment(self):
        """PAT and PMT, to begin a segment (two TS packets)."""
        cdef bytes out = PyBytes_FromStringAndSize(NULL, 2 * _TS_PACKET_SIZE)
        cdef uint8_t* o = <uint8_t*>PyBytes_AS_STRING(out)
        memcpy(o, PyBytes_AS_STRING(self._pat), _TS_PACKET_SIZE)
        memcpy(o + _TS_PACKET_SIZE, PyBytes_AS_STRING(self._pmt), _TS_PACKET_SIZE)
        o[3] = 0x10 | self._counters[0]
        o[_TS_PACKET_SIZE + 3] = 0x10 | self._counters[1]
        self._counters[0] = (self._counters[0] + 1) & 15
        self._counters[1] = (self._counters[1] + 1) & 15
        return out

    def write_video(self, dts, pts, keyframe, data):
        """One video access unit (AVCC) as TS packets: one PES of Annex B with an AUD first."""
        cdef uint64_t d, p
        cdef bint key
        cdef Py_buffer view
        if self._codec == _TS_CODEC_NONE:
            raise ValueError("MPEG-TS: write_video() on a muxer without a video track")
        d = _ts_clock(dts)
        p = _ts_clock(pts)
        key = keyframe
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self._video(d, p, key, <const uint8_t*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def write_audio(self, pts, data):
        """One raw AAC frame as TS packets: one PES holding one ADTS frame (b"" for an empty frame)."""
        cdef uint64_t p
        cdef Py_buffer view
        if not self._has_audio:
            raise ValueError("MPEG-TS: write_audio() on a muxer without an audio track")
        p = _ts_clock(pts)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self._audio(p, <const uint8_t*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef Py_ssize_t _pcr_fillers(self, uint64_t pcr) noexcept:
        # How many PCR-only packets go before a PES whose PCR is `pcr`, so that PCRs are at most
        # 100 ms apart: 2.7.2 requires a PCR at least every 0.1 s on the PCR PID.
        cdef uint64_t gap
        if self._last_pcr < 0:
            return 0
        gap = (pcr - <uint64_t>self._last_pcr) & _TS_CLOCK_MASK
        if gap <= _TS_PCR_INTERVAL or gap > _TS_PCR_FILL_LIMIT:
            return 0
        return (gap - 1) // _TS_PCR_INTERVAL

    cdef uint8_t* _write_fillers(self, uint8_t* o, Py_ssize_t count, uint8_t* counter) noexcept:
        # Adaptation field only (control '10'): "The continuity_counter shall not be incremented
        # when the adaptation_field_control of the packet equals '00' or '10'", so these repeat
        # the counter of the PID's last packet with payload.
        cdef Py_ssize_t i
        cdef uint64_t base = <uint64_t>self._last_pcr
        for i in range(count):
            base = (base + _TS_PCR_INTERVAL) & _TS_CLOCK_MASK
            _ts_header(o, self._pcr_pid, False, 2, (counter[0] - 1) & 15)
            _ts_adaptation_field(o + 4, _TS_PAYLOAD_SIZE, _TS_AF_PCR_FLAG, base)
            o += _TS_PACKET_SIZE
        return o

    cdef bytes _video(self, uint64_t dts, uint64_t pts, bint key, const uint8_t* data, Py_ssize_t n):
        cdef Py_ssize_t size = self._length_size, pos = 0, left, es_size = 0, pes_size, fillers, count
        cdef uint32_t length
        cdef int nal_type, first_type = -1
        cdef bint hevc = self._codec == _TS_CODEC_HEVC, own_sps = False, with_aud, with_sets
        cdef uint8_t header[19]
        cdef Py_ssize_t header_size
        cdef bytes out
        cdef _TsCursor c
        # Pass 1: check every length prefix against the unit and measure the Annex B size.
        while pos < n:
            left = n - pos
            if left < size:
                raise ProtocolError(f"MPEG-TS: NAL unit length prefix cut short ({left} of {size} bytes left)")
            length = _ts_read_length(data + pos, size)
            pos += size
            if length > <uint64_t>(n - pos):
                raise ProtocolError(
                    f"MPEG-TS: NAL unit length {length} overruns the access unit ({n - pos} bytes left)"
                )
            if length:
                nal_type = ((data[pos] >> 1) & 0x3F) if hevc else (data[pos] & 0x1F)
                if first_type < 0:
                    first_type = nal_type
                if nal_type == self._sps_type:
                    own_sps = True
                es_size += 4 + length
            pos += length
        # H.264 7.4.1.2.3 / H.265 7.4.2.4.4: the AUD, when present, is the first NAL unit of the
        # access unit, and parameter sets come before its first slice; one that carries its own
        # SPS (encoders set to repeat headers) gets no copy from the record.
        with_aud = first_type != self._aud_type
        with_sets = key and not own_sps
        if with_aud:
            es_size += len(self._aud)
        if with_sets:
            es_size += len(self._parameter_sets)

        header_size = _ts_pes_header(header, _TS_STREAM_ID_VIDEO, es_size, pts, dts)
        pes_size = header_size + es_size
        fillers = self._pcr_fillers(dts)
        count = _ts_packet_count(pes_size, _TS_PCR_AF_SIZE)
        out = PyBytes_FromStringAndSize(NULL, (fillers + count) * _TS_PACKET_SIZE)
        c.out = self._write_fillers(<uint8_t*>PyBytes_AS_STRING(out), fillers, &self._counters[2])
        c.left = pes_size
        c.pid = _TS_VIDEO_PID
        c.counter = &self._counters[2]
        _ts_first_packet(&c, _TS_AF_PCR_FLAG | (_TS_AF_RANDOM_ACCESS if key else 0), dts)
        self._last_pcr = <int64_t>dts
        # Pass 2: copy. Nobody else can see `out` yet, and the input is held by the caller's
        # buffer, so a large unit (a 1080p keyframe takes tens of microseconds) is copied
        # without the GIL; for small ones the hand-over would cost more than it frees.
        _ts_put(&c, header, header_size)
        if with_aud:
            _ts_put(&c, <const uint8_t*>PyBytes_AS_STRING(self._aud), len(self._aud))
        if with_sets:
            _ts_put(&c, <const uint8_t*>PyBytes_AS_STRING(self._parameter_sets), len(self._parameter_sets))
        if n >= _TS_NOGIL_BYTES:
            with nogil:
                _ts_put_annexb(&c, data, n, size)
        else:
            _ts_put_annexb(&c, data, n, size)
        return out

    cdef bytes _audio(self, uint64_t pts, const uint8_t* data, Py_ssize_t n):
        cdef Py_ssize_t frame = n + _TS_ADTS_HEADER_SIZE, header_size, pes_size, fillers = 0, count, af = 0
        cdef uint8_t header[14]
        cdef uint8_t adts[7]
        cdef bint carries_pcr = self._pcr_pid == _TS_AUDIO_PID
        cdef bytes out
        cdef _TsCursor c
        if n == 0:
            return b""
        if frame > _TS_ADTS_MAX_FRAME:
            raise ProtocolError(
                f"MPEG-TS: AAC frame of {n} bytes is too long for ADTS "
                f"(at most {_TS_ADTS_MAX_FRAME - _TS_ADTS_HEADER_SIZE} bytes)"
            )
        # aac_frame_length (13 bits, header included), adts_buffer_fullness 0x7FF,
        # number_of_raw_data_blocks_in_frame 0.
        memcpy(adts, self._adts, 4)
        adts[3] |= <uint8_t>(frame >> 11)
        adts[4] = <uint8_t>(frame >> 3)
        adts[5] = <uint8_t>(((frame & 7) << 5) | 0x1F)
        adts[6] = 0xFC
        header_size = _ts_pes_header(header, _TS_STREAM_ID_AUDIO, frame, pts, pts)
        pes_size = header_size + frame
        if carries_pcr:
            fillers = self._pcr_fillers(pts)
            af = _TS_PCR_AF_SIZE
        count = _ts_packet_count(pes_size, af)
        out = PyBytes_FromStringAndSize(NULL, (fillers + count) * _TS_PACKET_SIZE)
        c.out = self._write_fillers(<uint8_t*>PyBytes_AS_STRING(out), fillers, &self._counters[3])
        c.left = pes_size
        c.pid = _TS_AUDIO_PID
        c.counter = &self._counters[3]
        # Every AAC frame is a random access point; without video the adaptation field is there
        # for the PCR anyway, and flagging each frame lets a player start on any of them.
        _ts_first_packet(&c, (_TS_AF_PCR_FLAG | _TS_AF_RANDOM_ACCESS) if carries_pcr else 0, pts)
        if carries_pcr:
            self._last_pcr = <int64_t>pts
        _ts_put(&c, header, header_size)
        _ts_put(&c, adts, _TS_ADTS_HEADER_SIZE)
        _ts_put(&c, data, n)
        return out
