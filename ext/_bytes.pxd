# Big- and little-endian integer reads and writes on raw byte pointers, shared by the ext/ modules.
# Inline so the C compiler folds them into the caller's loop; the caller guarantees the bounds.
from libc.stdint cimport uint8_t, uint32_t


cdef inline uint32_t read_be24(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 16) | (<uint32_t>p[1] << 8) | <uint32_t>p[2]


cdef inline uint32_t read_be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]


cdef inline uint32_t read_le32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | <uint32_t>p[0]


cdef inline void write_be24(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 16)
    p[1] = <uint8_t>(v >> 8)
    p[2] = <uint8_t>v


cdef inline void write_be32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 24)
    p[1] = <uint8_t>(v >> 16)
    p[2] = <uint8_t>(v >> 8)
    p[3] = <uint8_t>v


cdef inline void write_le32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>v
    p[1] = <uint8_t>(v >> 8)
    p[2] = <uint8_t>(v >> 16)
    p[3] = <uint8_t>(v >> 24)
