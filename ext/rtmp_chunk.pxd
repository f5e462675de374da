# C-level declarations of the RTMP chunk stream codec (see rtmp_chunk.pyx for the theory of operation).
from cpython.ref cimport PyObject
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t


cdef struct ChunkStream:
    # What the decoder remembers about one chunk stream between chunks.
    uint32_t csid
    uint32_t timestamp      # absolute timestamp of the last message started on this stream
    uint32_t delta          # the timestamp delta a type 3 message start reuses
    uint32_t length         # message length from the last type 0/1 header
    uint32_t stream_id
    uint32_t received       # payload bytes of the message in progress copied so far
    uint8_t type_id
    bint extended           # the last type 0/1/2 header carried an extended timestamp
    bint in_progress
    PyObject* payload       # owned bytes object being filled while in_progress, else NULL
    char* data              # that object's buffer


cdef struct WriterStream:
    # What the writer remembers to mirror the peer decoder's state for one chunk stream.
    uint32_t timestamp
    uint32_t delta
    uint32_t length
    uint32_t stream_id
    uint8_t type_id
    bint extended
    bint started_with_type0


cdef class Message:
    cdef public unsigned int csid
    cdef public unsigned int type_id
    cdef public unsigned int stream_id
    cdef public unsigned int timestamp
    cdef public bytes payload


cdef class ChunkDecoder:
    cdef ChunkStream* _streams
    cdef Py_ssize_t _n_streams
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t _max_streams
    cdef int32_t _small[64]            # slot of csid 2..63, -1 when unused (1-byte basic headers)
    cdef uint32_t _chunk_size
    cdef uint32_t _max_message_size
    cdef uint64_t _max_buffered
    cdef uint64_t _buffered            # declared lengths of all messages in progress
    cdef uint64_t _bytes_received
    cdef uint8_t _stash[18]            # a chunk header split across feed() calls
    cdef Py_ssize_t _stash_len
    cdef Py_ssize_t _current           # slot whose chunk payload is being read, -1 between chunks
    cdef uint32_t _chunk_left
    cdef str _error

    cdef Py_ssize_t _find(self, uint32_t csid) noexcept
    cdef Py_ssize_t _header_size(self, const uint8_t* p, Py_ssize_t n) noexcept
    cdef int _run(self, const uint8_t* p, Py_ssize_t n, list out) except -1
    cdef int _parse_header(self, const uint8_t* h, list out) except -1
    cdef Py_ssize_t _new_stream(self, uint32_t csid, int fmt) except -1
    cdef int _complete(self, ChunkStream* st, list out) except -1
    cdef int _emit(self, ChunkStream* st, bytes payload, list out) except -1
    cdef int _drop(self, uint32_t csid) noexcept
    cdef int _fail(self, str message) except -1


cdef class ChunkWriter:
    cdef uint32_t _chunk_size
    cdef dict _slots                   # csid -> index into _streams
    cdef WriterStream* _streams
    cdef Py_ssize_t _n_streams
    cdef Py_ssize_t _capacity

    cdef bytes _write(self, uint32_t csid, uint8_t type_id, uint32_t stream_id, uint32_t timestamp,
                      const uint8_t* body, uint32_t length)
