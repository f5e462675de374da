# Declarations of ext/flv.pyx for other Cython modules (the segmenter reads tag fields at C speed).

cdef class VideoTag:
    cdef readonly str codec
    cdef readonly int packet_type
    cdef readonly int frame_type
    cdef readonly bint keyframe
    cdef readonly int composition_time
    cdef readonly object data  # read-only memoryview of the payload (or what the constructor got)
    cdef readonly tuple nal_types

    cdef tuple _fields(self)


cdef class AudioTag:
    cdef readonly str codec
    cdef readonly int sound_format
    cdef readonly int packet_type
    cdef readonly object data  # read-only memoryview of the payload (or what the constructor got)

    cdef tuple _fields(self)
