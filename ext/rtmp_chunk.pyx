# cython: language_level=3, autotestdict=False
"""RTMP chunk stream codec (Adobe RTMP 1.0, section 5.3): chunks in, messages out, and back.

Theory of operation. The decoder is a two-state machine driven by one `feed()` per network read:

* HEADER: the next bytes are a chunk header (basic header, message header, optional extended
  timestamp; 1 to 18 bytes). Its size is known from its first bytes (and, for type 3, from the
  chunk stream's state). A header split across reads waits in an 18-byte stash. A parsed header
  either starts a message (the payload buffer is allocated at its declared length, within the
  budget) or continues the message in progress on that chunk stream.
* PAYLOAD: the next `chunk_left` bytes belong to the current chunk stream's message and are
  copied straight into its bytes object. When a message is complete it is returned; Set Chunk
  Size and Abort take effect right there, before the next chunk header is read.

Per-chunk-stream state lives in a C array; csid 2..63 (every real publisher) are found through a
64-entry table, larger ones by a short scan. The input is read through the buffer protocol and
never kept; each payload is copied exactly once. The pure-Python twin
(`owncast_fast._pure.rtmp_chunk`) takes the same steps in the same order.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memset

from _bytes cimport read_be24, read_be32, read_le32, write_be24, write_be32, write_le32

from owncast_fast.errors import ProtocolError

cdef enum:
    EXTENDED_MARK = 0xFFFFFF
    MAX_HEADER = 18           # 3-byte basic header + 11-byte type 0 header + 4-byte extended timestamp
    MAX_WIRE_LENGTH = 0xFFFFFF  # the message length field is 24 bits
    MAX_CSID = 65599
    SET_CHUNK_SIZE = 1
    ABORT = 2
    PROTOCOL_CONTROL_CSID = 2

cdef Py_ssize_t[4] MESSAGE_HEADER_SIZE = [11, 7, 3, 0]
cdef bytes EMPTY = b""


cdef inline uint32_t basic_csid(const uint8_t* h) noexcept:
    # "Chunk stream IDs 64-319 can be encoded in the 2-byte form of the header. ID is computed as
    # (the second byte + 64)." / "Chunk stream IDs 64-65599 can be encoded in the 3-byte version
    # of this field. ID is computed as ((the third byte)*256 + (the second byte) + 64)."
    cdef uint32_t low = h[0] & 0x3F
    if low == 0:
        return <uint32_t>h[1] + 64
    if low == 1:
        return <uint32_t>h[1] + (<uint32_t>h[2] << 8) + 64
    return low


cdef inline Py_ssize_t basic_size(uint8_t first) noexcept:
    cdef uint8_t low = first & 0x3F
    return 2 if low == 0 else 3 if low == 1 else 1


cdef object check_range(str name, object value, object low, object high):
    if not low <= value <= high:
        raise ValueError(f"RTMP chunk: {name} {value} is out of range ({low}..{high})")
    return value


@cython.final
@cython.freelist(64)
cdef class Message:
    """One complete RTMP message, as reassembled from its chunks."""

    def __init__(self, unsigned int csid, unsigned int type_id, unsigned int stream_id,
                 unsigned int timestamp, bytes payload):
        self.csid = csid
        self.type_id = type_id
        self.stream_id = stream_id
        self.timestamp = timestamp
        self.payload = payload

    def __repr__(self):
        return (
            f"Message(csid={self.csid!r}, type_id={self.type_id!r}, stream_id={self.stream_id!r}, "
            f"timestamp={self.timestamp!r}, payload={self.payload!r})"
        )

    def __eq__(self, other):
        if type(other) is not Message:
            return NotImplemented
        cdef Message that = <Message>other
        return (
            self.csid == that.csid and self.type_id == that.type_id and self.stream_id == that.stream_id
            and self.timestamp == that.timestamp and self.payload == that.payload
        )

    __hash__ = None


@cython.final
cdef class ChunkDecoder:
    """Reassembles RTMP messages from chunks; applies Set Chunk Size and Abort as it goes."""

    def __cinit__(self):
        self._streams = NULL
        self._n_streams = 0
        self._capacity = 0
        self._chunk_size = 128
        self._current = -1
        self._stash_len = 0
        memset(self._small, 0xFF, sizeof(self._small))

    def __init__(self, max_message_size=8 * 1024 * 1024, max_chunk_streams=64,
                 max_buffered=16 * 1024 * 1024):
        # Every limit below bounds memory a peer can make us hold; see the error raised for each.
        self._max_message_size = check_range("max_message_size", max_message_size, 1, MAX_WIRE_LENGTH)
        self._max_streams = check_range("max_chunk_streams", max_chunk_streams, 1, MAX_CSID - 1)
        self._max_buffered = check_range("max_buffered", max_buffered, 1, 1 << 40)

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._streams != NULL:
            for i in range(self._n_streams):
                Py_XDECREF(self._streams[i].payload)
            free(self._streams)

    @property
    def chunk_size(self):
        """The incoming chunk size, as last set by the peer's Set Chunk Size (128 until then)."""
        return self._chunk_size

    @property
    def bytes_received(self):
        """Every byte ever fed, for the session's Acknowledgement bookkeeping."""
        return self._bytes_received

    def feed(self, data):
        """Consume one network read; return the messages it completed, in wire order."""
        cdef Py_buffer view
        cdef list out = []
        if self._error is not None:
            raise ProtocolError(self._error)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            self._bytes_received += <uint64_t>view.len
            self._run(<const uint8_t*>view.buf, view.len, out)
        except ProtocolError as exc:
            exc.partial = out  # the messages completed before the bad bytes
            raise
        finally:
            PyBuffer_Release(&view)
        return out

    def abort(self, csid):
        """Drop the partial message of chunk stream `csid` (what an Abort message asks for)."""
        if self._error is not None:
            raise ProtocolError(self._error)
        if 0 <= csid <= MAX_CSID:
            self._drop(csid)

    cdef int _fail(self, str message) except -1:
        # After a protocol error the connection is beyond repair: remember why, for every later call.
        self._error = message
        raise ProtocolError(message)

    cdef Py_ssize_t _find(self, uint32_t csid) noexcept:
        cdef Py_ssize_t i
        if csid < 64:
            return self._small[csid]
        for i in range(self._n_streams):
            if self._streams[i].csid == csid:
                return i
        return -1

    cdef int _drop(self, uint32_t csid) noexcept:
        cdef Py_ssize_t i = self._find(csid)
        cdef ChunkStream* st
        if i < 0:
            return 0
        st = &self._streams[i]
        if st.in_progress:
            # The rest of a chunk already under way is still skipped (the payload state sees
            # in_progress false): it is on the wire whatever the sender meant.
            self._buffered -= st.length
            Py_XDECREF(st.payload)
            st.payload = NULL
            st.data = NULL
            st.in_progress = False
        return 0

    cdef Py_ssize_t _header_size(self, const uint8_t* p, Py_ssize_t n) noexcept:
        # Size of the chunk header at p, or -1 when n bytes are not enough to hold it.
        cdef Py_ssize_t basic, size, slot
        if n < 1:
            return -1
        basic = basic_size(p[0])
        if n < basic:
            return -1
        if p[0] < 0xC0:
            if n < basic + 3:
                return -1
            size = basic + MESSAGE_HEADER_SIZE[p[0] >> 6]
            if read_be24(p + basic) == EXTENDED_MARK:
                size += 4
        else:
            size = basic
            slot = self._find(basic_csid(p))
            if slot >= 0 and self._streams[slot].extended:
                size += 4
        return size if n >= size else -1

    cdef int _run(self, const uint8_t* p, Py_ssize_t n, list out) except -1:
        cdef Py_ssize_t pos = 0, take, size, total, slot
        cdef ChunkStream* st
        cdef uint8_t first
        while pos < n:
            if self._current >= 0:
                st = &self._streams[self._current]
                take = self._chunk_left
                if take > n - pos:
                    take = n - pos
                if st.in_progress:
                    memcpy(st.data + st.received, p + pos, take)
                    st.received += <uint32_t>take
                pos += take
                self._chunk_left -= <uint32_t>take
                if self._chunk_left == 0:
                    self._current = -1
                    if st.in_progress and st.received == st.length:
                        self._complete(st, out)
            elif self._stash_len == 0:
                # Fast path: every chunk after the first of a message is a type 3 header that
                # continues the message in progress on its chunk stream; publishers use csid
                # 2..63, so the header is one byte (five with a repeated extended timestamp).
                # This is the in-progress branch of _parse_header for that case, which can fail
                # nothing and changes no header state.
                first = p[pos]
                if first >= 0xC0 and (first & 0x3F) >= 2:
                    slot = self._small[first & 0x3F]
                    if slot >= 0:
                        st = &self._streams[slot]
                        if st.in_progress:
                            size = 5 if st.extended else 1
                            if n - pos >= size:
                                pos += size
                                self._current = slot
                                self._chunk_left = min(self._chunk_size, st.length - st.received)
                                continue
                size = self._header_size(p + pos, n - pos)
                if size < 0:
                    memcpy(self._stash, p + pos, n - pos)
                    self._stash_len = n - pos
                    return 0
                self._parse_header(p + pos, out)
                pos += size
            else:
                take = MAX_HEADER - self._stash_len
                if take > n - pos:
                    take = n - pos
                memcpy(self._stash + self._stash_len, p + pos, take)
                total = self._stash_len + take
                size = self._header_size(self._stash, total)
                if size < 0:
                    self._stash_len = total
                    return 0
                pos += size - self._stash_len
                self._stash_len = 0
                self._parse_header(self._stash, out)
        return 0

    cdef Py_ssize_t _new_stream(self, uint32_t csid, int fmt) except -1:
        cdef Py_ssize_t capacity
        cdef ChunkStream* grown
        # "Type 0 ... This type MUST be used at the start of a chunk stream": a stream that opens
        # with a delta header has nothing to take the missing fields from. librtmp is the one
        # exception we accept: it sends its pings and acknowledgements with a type 1 header on
        # chunk stream 2 without a type 0 before; type 1 carries all but the stream id, which is 0
        # for protocol control messages anyway.
        if fmt != 0 and not (fmt == 1 and csid == PROTOCOL_CONTROL_CSID):
            self._fail(
                f"RTMP chunk: chunk stream {csid} starts with a format {fmt} header "
                "but has no previous message"
            )
        # Each chunk stream holds header state and possibly a message in progress; publishers use
        # three to five, so the cap only stops a peer from spreading data over thousands.
        if self._n_streams >= self._max_streams:
            self._fail(f"RTMP chunk: more than {self._max_streams} chunk streams in use")
        if self._n_streams == self._capacity:
            capacity = 8 if self._capacity == 0 else self._capacity * 2
            grown = <ChunkStream*>realloc(self._streams, capacity * sizeof(ChunkStream))
            if grown == NULL:
                raise MemoryError()
            self._streams = grown
            self._capacity = capacity
        memset(&self._streams[self._n_streams], 0, sizeof(ChunkStream))
        self._streams[self._n_streams].csid = csid
        if csid < 64:
            self._small[csid] = <int32_t>self._n_streams
        self._n_streams += 1
        return self._n_streams - 1

    cdef int _parse_header(self, const uint8_t* h, list out) except -1:
        cdef int fmt = h[0] >> 6
        cdef uint32_t csid = basic_csid(h)
        cdef Py_ssize_t i = basic_size(h[0])
        cdef Py_ssize_t slot = self._find(csid)
        cdef uint32_t field = 0, length = 0, stream_id = 0
        cdef uint8_t type_id = 0
        cdef bint extended
        cdef ChunkStream* st
        cdef object payload
        if slot < 0:
            slot = self._new_stream(csid, fmt)
        st = &self._streams[slot]
        extended = st.extended
        if fmt < 3:
            field = read_be24(h + i)
            i += 3
            if fmt < 2:
                length = read_be24(h + i)
                type_id = h[i + 3]
                i += 4
                if fmt == 0:
                    # The message stream id is the one little-endian field of the chunk header.
                    stream_id = read_le32(h + i)
                    i += 4
            # "This field [Extended Timestamp] is present in Type 0, 1, or 2 chunks when the
            # timestamp or timestamp delta field is 0xFFFFFF". librtmp, ffmpeg and OBS also repeat
            # it on the type 3 chunks that follow such a header, so `extended` is remembered.
            extended = field == EXTENDED_MARK
        if extended:
            field = read_be32(h + i)

        if st.in_progress:
            # A header in the middle of a message only continues it: the message keeps the
            # header of its first chunk, and its length cannot change under the buffer.
            if fmt < 2 and length != st.length:
                self._fail(
                    f"RTMP chunk: chunk stream {csid} changes message length from {st.length} "
                    f"to {length} in the middle of a message"
                )
            st.extended = extended
            self._current = slot
            self._chunk_left = min(self._chunk_size, st.length - st.received)
            return 0

        if fmt < 2:
            # The whole message is buffered before it is handed on, so its declared length is
            # what a peer can make us allocate per chunk stream.
            if length > self._max_message_size:
                self._fail(
                    f"RTMP chunk: message length {length} exceeds the limit of "
                    f"{self._max_message_size} bytes"
                )
            st.length = length
            st.type_id = type_id
        if fmt == 0:
            # "If a Type 3 chunk follows a Type 0 chunk, then the timestamp delta for this Type 3
            # chunk is the same as the timestamp of the Type 0 chunk." We follow the spec here, as
            # ffmpeg and SRS do (nginx-rtmp instead repeats the type 0 timestamp unchanged).
            st.timestamp = field
            st.delta = field
            st.stream_id = stream_id
        elif fmt < 3 or extended:
            # A type 3 message start with an extended timestamp carries its delta in that field.
            st.delta = field
            st.timestamp += field
        else:
            # "A stream consisting of messages of exactly the same size, stream ID and spacing in
            # time SHOULD use this type for all chunks after a chunk of Type 2."
            st.timestamp += st.delta
        st.extended = extended

        if st.length == 0:
            self._emit(st, EMPTY, out)
            return 0
        # Declared lengths of all messages in progress are allocated up front, so their sum is
        # the memory a peer controls; real publishers interleave one video and one audio message.
        if self._buffered + st.length > self._max_buffered:
            self._fail(
                f"RTMP chunk: incomplete messages would buffer {self._buffered + st.length} bytes, "
                f"above the limit of {self._max_buffered} bytes"
            )
        payload = PyBytes_FromStringAndSize(NULL, st.length)
        Py_INCREF(payload)
        st.payload = <PyObject*>payload
        st.data = PyBytes_AS_STRING(payload)
        st.received = 0
        st.in_progress = True
        self._buffered += st.length
        self._current = slot
        self._chunk_left = min(self._chunk_size, st.length)
        return 0

    cdef int _complete(self, ChunkStream* st, list out) except -1:
        # The bytes object was written in place while nobody else could see it; hand it over.
        cdef bytes payload = <bytes>st.payload
        Py_XDECREF(st.payload)
        st.payload = NULL
        st.data = NULL
        st.in_progress = False
        self._buffered -= st.length
        return self._emit(st, payload, out)

    cdef int _emit(self, ChunkStream* st, bytes payload, list out) except -1:
        cdef Message message = Message.__new__(Message)
        cdef uint32_t value
        message.csid = st.csid
        message.type_id = st.type_id
        message.stream_id = st.stream_id
        message.timestamp = st.timestamp
        message.payload = payload
        # Control messages are applied before they are listed: one that fails is not "completed".
        if st.type_id == SET_CHUNK_SIZE:
            # "The maximum chunk size defaults to 128 bytes ... [and] will be used for all of the
            # sender's subsequent chunks until further notice." A chunk never exceeds its message
            # (24-bit length), so a size above 0xFFFFFF, or with the must-be-zero top bit set,
            # only comes from a broken peer.
            if len(payload) != 4:
                self._fail(f"RTMP chunk: set chunk size message has {len(payload)} bytes, expected 4")
            value = read_be32(<const uint8_t*>PyBytes_AS_STRING(payload))
            if value == 0 or value > MAX_WIRE_LENGTH:
                self._fail(f"RTMP chunk: set chunk size {value} is out of range (1..16777215)")
            self._chunk_size = value
        elif st.type_id == ABORT:
            # "Abort Message, is used to notify the peer if it is waiting for chunks to complete a
            # message, then to discard the partially received message over a chunk stream."
            if len(payload) != 4:
                self._fail(f"RTMP chunk: abort message has {len(payload)} bytes, expected 4")
            self._drop(read_be32(<const uint8_t*>PyBytes_AS_STRING(payload)))
        out.append(message)
        return 0


@cython.final
cdef class ChunkWriter:
    """Splits outgoing messages into chunks, compressing headers the way the decoder reads them."""

    def __cinit__(self):
        self._streams = NULL
        self._n_streams = 0
        self._capacity = 0
        self._slots = {}

    def __init__(self, chunk_size=128):
        self._chunk_size = check_range("chunk size", chunk_size, 1, MAX_WIRE_LENGTH)

    def __dealloc__(self):
        free(self._streams)

    @property
    def chunk_size(self):
        """The outgoing chunk size; set it right after sending Set Chunk Size."""
        return self._chunk_size

    @chunk_size.setter
    def chunk_size(self, value):
        self._chunk_size = check_range("chunk size", value, 1, MAX_WIRE_LENGTH)

    def write(self, csid, type_id, stream_id, timestamp, payload):
        """Return the chunks that carry one message on chunk stream `csid`."""
        cdef uint32_t c_csid = check_range("chunk stream id", csid, 2, MAX_CSID)
        cdef uint32_t c_type = check_range("message type id", type_id, 0, 0xFF)
        cdef uint32_t c_stream = check_range("message stream id", stream_id, 0, 0xFFFFFFFF)
        cdef uint32_t c_time = check_range("timestamp", timestamp, 0, 0xFFFFFFFF)
        cdef Py_buffer view
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        try:
            check_range("payload length", view.len, 0, MAX_WIRE_LENGTH)
            return self._write(c_csid, <uint8_t>c_type, c_stream, c_time,
                               <const uint8_t*>view.buf, <uint32_t>view.len)
        finally:
            PyBuffer_Release(&view)

    cdef bytes _write(self, uint32_t csid, uint8_t type_id, uint32_t stream_id, uint32_t timestamp,
                      const uint8_t* body, uint32_t length):
        cdef Py_ssize_t slot
        cdef WriterStream* st
        cdef WriterStream* grown
        cdef int fmt
        cdef uint32_t field, size = self._chunk_size, start, take
        cdef uint8_t basic[3]
        cdef Py_ssize_t basic_len, header_len, continuation_len, chunks, total
        cdef bytes out
        cdef uint8_t* w

        slot_obj = self._slots.get(csid)
        if slot_obj is None:
            if self._n_streams == self._capacity:
                self._capacity = 4 if self._capacity == 0 else self._capacity * 2
                grown = <WriterStream*>realloc(self._streams, self._capacity * sizeof(WriterStream))
                if grown == NULL:
                    raise MemoryError()
                self._streams = grown
            slot = self._n_streams
            self._n_streams += 1
            self._slots[csid] = slot
            memset(&self._streams[slot], 0, sizeof(WriterStream))
            fmt = 0
        else:
            slot = slot_obj
            st = &self._streams[slot]
            # Delta headers only when the peer can add a non-negative delta to what it holds;
            # "[Type 0] MUST be used ... whenever the stream timestamp goes backward".
            if stream_id == st.stream_id and timestamp >= st.timestamp:
                fmt = 1
                if type_id == st.type_id and length == st.length:
                    fmt = 2
                    # Type 3 starts only after a type 1/2 start, where every decoder agrees on
                    # the delta it repeats (after type 0 they do not; see the decoder).
                    if timestamp - st.timestamp == st.delta and not st.started_with_type0:
                        fmt = 3
            else:
                fmt = 0
        st = &self._streams[slot]
        field = timestamp if fmt == 0 else timestamp - st.timestamp
        if fmt < 3:
            st.extended = field >= EXTENDED_MARK

        if csid < 64:
            basic[0] = <uint8_t>csid
            basic_len = 1
        elif csid < 320:
            basic[0] = 0
            basic[1] = <uint8_t>(csid - 64)
            basic_len = 2
        else:
            basic[0] = 1
            basic[1] = <uint8_t>((csid - 64) & 0xFF)
            basic[2] = <uint8_t>((csid - 64) >> 8)
            basic_len = 3
        header_len = basic_len + MESSAGE_HEADER_SIZE[fmt] + (4 if st.extended else 0)
        continuation_len = basic_len + (4 if st.extended else 0)
        chunks = (length + size - 1) // size if length else 1
        total = header_len + length + (chunks - 1) * continuation_len

        out = PyBytes_FromStringAndSize(NULL, total)
        w = <uint8_t*>PyBytes_AS_STRING(out)
        memcpy(w, basic, basic_len)
        w[0] |= <uint8_t>(fmt << 6)
        w += basic_len
        if fmt < 3:
            write_be24(w, field if field < EXTENDED_MARK else EXTENDED_MARK)
            w += 3
            if fmt < 2:
                write_be24(w, length)
                w[3] = type_id
                w += 4
                if fmt == 0:
                    write_le32(w, stream_id)
                    w += 4
        if st.extended:
            write_be32(w, field)
            w += 4
        start = 0
        while True:
            take = length - start if length - start < size else size
            memcpy(w, body + start, take)
            w += take
            start += take
            if start >= length:
                break
            memcpy(w, basic, basic_len)
            w[0] |= 0xC0
            w += basic_len
            if st.extended:
                write_be32(w, field)
                w += 4

        st.timestamp = timestamp
        st.delta = field
        st.length = length
        st.type_id = type_id
        st.stream_id = stream_id
        st.started_with_type0 = fmt == 0
        return out
