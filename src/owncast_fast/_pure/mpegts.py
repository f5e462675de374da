"""Pure-Python twin of the MPEG-TS muxer in `owncast_fast._native.segmenter` (`ext/mpegts.pxi`).

Same API, same bytes, same error messages; used only by the differential tests and the
benchmarks. The theory of operation and the quotations from ISO/IEC 13818-1, 14496-15 and
14496-3 are written once, above the Cython code; this module takes the same steps in the same
order. It assembles each PES as one bytes object and then cuts it into TS packets, where the
Cython code copies the NAL units straight into the packets.
"""

from __future__ import annotations

from owncast_fast.errors import ProtocolError

_BytesLike = bytes | bytearray | memoryview

_PACKET_SIZE = 188
_PAYLOAD_SIZE = 184
_PAT_PID = 0x0000
_PMT_PID = 0x1000
_VIDEO_PID = 0x0100
_AUDIO_PID = 0x0101
_STREAM_TYPE_AVC = 0x1B
_STREAM_TYPE_HEVC = 0x24
_STREAM_TYPE_AAC_ADTS = 0x0F
_STREAM_ID_VIDEO = 0xE0
_STREAM_ID_AUDIO = 0xC0
_PCR_INTERVAL = 9000  # 100 ms of the 90 kHz clock
_PCR_FILL_LIMIT = 5 * 90000  # a longer gap is an interruption; bounds the filler to 49 packets
_ADTS_HEADER_SIZE = 7
_ADTS_MAX_FRAME = 8191  # aac_frame_length is 13 bits and counts the header
_PCR_AF_SIZE = 8  # adaptation_field_length, flags, 6-byte PCR
_AF_PCR_FLAG = 0x10
_AF_RANDOM_ACCESS = 0x40
_CLOCK_MASK = (1 << 33) - 1
_START_CODE = b"\x00\x00\x00\x01"
_AUD_AVC = b"\x00\x00\x00\x01\x09\xf0"
_AUD_HEVC = b"\x00\x00\x00\x01\x46\x01\x50"


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else (c << 1)
            c &= 0xFFFFFFFF
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc_table()


def _crc32(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ byte) & 0xFF]
    return crc


def _psi_packet(pid: int, section: bytes) -> bytes:
    body = section + _crc32(section).to_bytes(4, "big")
    head = bytes((0x47, 0x40 | (pid >> 8), pid & 0xFF, 0x10, 0x00))
    return head + body + b"\xff" * (_PACKET_SIZE - len(head) - len(body))


def _psi_section(table_id: int, id_extension: int, body: bytes) -> bytes:
    length = 5 + len(body) + 4
    return (
        bytes((table_id, 0xB0 | (length >> 8), length & 0xFF, id_extension >> 8, id_extension & 0xFF, 0xC1, 0, 0))
        + body
    )


def _pat() -> bytes:
    return _psi_packet(_PAT_PID, _psi_section(0x00, 1, bytes((0, 1, 0xE0 | (_PMT_PID >> 8), _PMT_PID & 0xFF))))


def _pmt(video_type: int, has_audio: bool) -> bytes:
    pcr_pid = _VIDEO_PID if video_type else _AUDIO_PID
    body = bytes((0xE0 | (pcr_pid >> 8), pcr_pid & 0xFF, 0xF0, 0x00))
    if video_type:
        body += bytes((video_type, 0xE0 | (_VIDEO_PID >> 8), _VIDEO_PID & 0xFF, 0xF0, 0x00))
    if has_audio:
        body += bytes((_STREAM_TYPE_AAC_ADTS, 0xE0 | (_AUDIO_PID >> 8), _AUDIO_PID & 0xFF, 0xF0, 0x00))
    return _psi_packet(_PMT_PID, _psi_section(0x02, 1, body))


def _parameter_sets(record: bytes, pos: int, count: int, name: str, out: list[bytes]) -> int:
    n = len(record)
    for _ in range(count):
        if pos + 2 > n:
            raise ProtocolError(f"MPEG-TS: {name} record is truncated at byte {pos}")
        length = (record[pos] << 8) | record[pos + 1]
        pos += 2
        if pos + length > n:
            raise ProtocolError(f"MPEG-TS: {name} record is truncated at byte {pos}")
        if length:
            out.append(_START_CODE + record[pos : pos + length])
        pos += length
    return pos


def _length_size(minus_one: int, name: str) -> int:
    if minus_one == 2:
        raise ProtocolError(f"MPEG-TS: {name} NAL unit length size 3 is not 1, 2 or 4")
    return minus_one + 1


def _parse_video_config(codec: str, config: _BytesLike) -> tuple[int, bytes]:
    record = bytes(config)
    n = len(record)
    sets: list[bytes] = []
    if codec == "avc1":
        if n < 7:
            raise ProtocolError(f"MPEG-TS: avcC record of {n} bytes is too short (at least 7)")
        if record[0] != 1:
            raise ProtocolError(f"MPEG-TS: avcC configurationVersion {record[0]}, expected 1")
        size = _length_size(record[4] & 3, "avcC")
        pos = _parameter_sets(record, 6, record[5] & 0x1F, "avcC", sets)
        if pos >= n:
            raise ProtocolError(f"MPEG-TS: avcC record is truncated at byte {pos}")
        _parameter_sets(record, pos + 1, record[pos], "avcC", sets)
        return size, b"".join(sets)
    if n < 23:
        raise ProtocolError(f"MPEG-TS: hvcC record of {n} bytes is too short (at least 23)")
    if record[0] != 1:
        raise ProtocolError(f"MPEG-TS: hvcC configurationVersion {record[0]}, expected 1")
    size = _length_size(record[21] & 3, "hvcC")
    pos = 23
    for _ in range(record[22]):
        if pos + 3 > n:
            raise ProtocolError(f"MPEG-TS: hvcC record is truncated at byte {pos}")
        pos = _parameter_sets(record, pos + 3, (record[pos + 1] << 8) | record[pos + 2], "hvcC", sets)
    return size, b"".join(sets)


def _asc_bits(bits: int, total: int, pos: int, count: int) -> int:
    if pos + count > total:
        raise ProtocolError("MPEG-TS: AudioSpecificConfig is truncated")
    return (bits >> (total - pos - count)) & ((1 << count) - 1)


def _asc_object_type(bits: int, total: int, pos: int) -> tuple[int, int]:
    value = _asc_bits(bits, total, pos, 5)
    if value == 31:
        return 32 + _asc_bits(bits, total, pos + 5, 6), pos + 11
    return value, pos + 5


def _parse_audio_config(config: _BytesLike) -> bytes:
    asc = bytes(config)
    n = len(asc)
    if n < 2:
        raise ProtocolError(f"MPEG-TS: AudioSpecificConfig of {n} bytes is too short (at least 2)")
    bits = int.from_bytes(asc, "big")
    total = n * 8
    object_type, pos = _asc_object_type(bits, total, 0)
    frequency_index = _asc_bits(bits, total, pos, 4)
    pos += 4
    if frequency_index > 12:
        raise ProtocolError(
            f"MPEG-TS: AAC sampling frequency index {frequency_index} cannot be carried in ADTS (0 to 12)"
        )
    channels = _asc_bits(bits, total, pos, 4)
    pos += 4
    if not 1 <= channels <= 7:
        raise ProtocolError(f"MPEG-TS: AAC channel configuration {channels} cannot be carried in ADTS (1 to 7)")
    if object_type in (5, 29):
        pos += 4 if _asc_bits(bits, total, pos, 4) != 15 else 28
        object_type, pos = _asc_object_type(bits, total, pos)
    if not 1 <= object_type <= 4:
        raise ProtocolError(f"MPEG-TS: AAC audio object type {object_type} cannot be carried in ADTS (1 to 4)")
    return bytes((0xFF, 0xF1, ((object_type - 1) << 6) | (frequency_index << 2) | (channels >> 2), (channels & 3) << 6))


def _timestamp(prefix: int, t: int) -> bytes:
    return bytes(
        (
            (prefix << 4) | ((t >> 29) & 0x0E) | 1,
            (t >> 22) & 0xFF,
            ((t >> 14) & 0xFE) | 1,
            (t >> 7) & 0xFF,
            ((t << 1) & 0xFE) | 1,
        )
    )


def _pcr(base: int) -> bytes:
    return (base >> 1).to_bytes(4, "big") + bytes((((base & 1) << 7) | 0x7E, 0))


def _adaptation_field(total: int, flags: int, pcr: int) -> bytes:
    if total == 1:
        return b"\x00"
    field = bytes((total - 1, flags))
    if flags & _AF_PCR_FLAG:
        field += _pcr(pcr)
    return field + b"\xff" * (total - len(field))


def _pes_header(stream_id: int, payload: int, pts: int, dts: int) -> bytes:
    size = 14 if pts == dts else 19
    length = size - 6 + payload
    if length > 0xFFFF:
        length = 0
    head = bytes((0, 0, 1, stream_id, length >> 8, length & 0xFF, 0x84))
    if size == 14:
        return head + b"\x80\x05" + _timestamp(2, pts)
    return head + b"\xc0\x0a" + _timestamp(3, pts) + _timestamp(1, dts)


class TsMuxer:
    """MPEG-TS muxer for one HLS rendition: PAT/PMT per segment, one PES per access unit.

    PIDs: PMT 0x1000, video 0x100, audio 0x101; the PCR is on the video PID (audio when there is
    no video). Timestamps are 90 kHz ticks, taken mod 2**33.
    """

    PACKET_SIZE = _PACKET_SIZE
    PMT_PID = _PMT_PID
    VIDEO_PID = _VIDEO_PID
    AUDIO_PID = _AUDIO_PID

    def __init__(
        self, *, video_codec: str | None = None, video_config: _BytesLike = b"", audio_config: _BytesLike = b""
    ) -> None:
        if video_codec is None:
            self._aud, self._aud_type, self._sps_type = b"", -1, -1
        elif video_codec == "avc1":
            self._aud, self._aud_type, self._sps_type = _AUD_AVC, 9, 7
        elif video_codec == "hvc1":
            self._aud, self._aud_type, self._sps_type = _AUD_HEVC, 35, 33
        else:
            raise ValueError(f"MPEG-TS: unsupported video codec {video_codec!r} (expected 'avc1', 'hvc1' or None)")
        self._codec = video_codec
        self._has_audio = len(audio_config) > 0
        if video_codec is None and not self._has_audio:
            raise ValueError("MPEG-TS: a muxer needs a video codec or an audio config")
        self._length_size, self._parameter_sets = (
            _parse_video_config(video_codec, video_config) if video_codec is not None else (0, b"")
        )
        self._adts = _parse_audio_config(audio_config) if self._has_audio else b""
        self._pcr_pid = _VIDEO_PID if video_codec is not None else _AUDIO_PID
        self._pat = _pat()
        video_type = {None: 0, "avc1": _STREAM_TYPE_AVC, "hvc1": _STREAM_TYPE_HEVC}[video_codec]
        self._pmt = _pmt(video_type, self._has_audio)
        self._counters = {_PAT_PID: 0, _PMT_PID: 0, _VIDEO_PID: 0, _AUDIO_PID: 0}
        self._last_pcr = -1

    def set_video_config(self, video_config: _BytesLike) -> None:
        """Replace the avcC/hvcC record: its length size applies from the next unit, its parameter
        sets from the next keyframe (they are only ever inserted before keyframes)."""
        if self._codec is None:
            raise ValueError("MPEG-TS: set_video_config() on a muxer without a video track")
        self._length_size, self._parameter_sets = _parse_video_config(self._codec, video_config)

    def start_segment(self) -> bytes:
        """PAT and PMT, to begin a segment (two TS packets)."""
        out = bytearray(self._pat + self._pmt)
        out[3] = 0x10 | self._counters[_PAT_PID]
        out[_PACKET_SIZE + 3] = 0x10 | self._counters[_PMT_PID]
        self._counters[_PAT_PID] = (self._counters[_PAT_PID] + 1) & 15
        self._counters[_PMT_PID] = (self._counters[_PMT_PID] + 1) & 15
        return bytes(out)

    def write_video(self, dts: int, pts: int, keyframe: bool, data: _BytesLike) -> bytes:
        """One video access unit (AVCC) as TS packets: one PES of Annex B with an AUD first."""
        if self._codec is None:
            raise ValueError("MPEG-TS: write_video() on a muxer without a video track")
        dts &= _CLOCK_MASK
        pts &= _CLOCK_MASK
        key = bool(keyframe)
        unit = memoryview(data).cast("B")
        n = len(unit)
        size = self._length_size
        hevc = self._codec == "hvc1"
        nals: list[memoryview] = []
        first_type = -1
        own_sps = False
        pos = 0
        while pos < n:
            left = n - pos
            if left < size:
                raise ProtocolError(f"MPEG-TS: NAL unit length prefix cut short ({left} of {size} bytes left)")
            length = int.from_bytes(unit[pos : pos + size], "big")
            pos += size
            if length > n - pos:
                raise ProtocolError(
                    f"MPEG-TS: NAL unit length {length} overruns the access unit ({n - pos} bytes left)"
                )
            if length:
                nal_type = ((unit[pos] >> 1) & 0x3F) if hevc else (unit[pos] & 0x1F)
                if first_type < 0:
                    first_type = nal_type
                if nal_type == self._sps_type:
                    own_sps = True
                nals.append(unit[pos : pos + length])
            pos += length
        parts: list[bytes | memoryview] = []
        if first_type != self._aud_type:
            parts.append(self._aud)
        if key and not own_sps:
            parts.append(self._parameter_sets)
        for nal in nals:
            parts.append(_START_CODE)
            parts.append(nal)
        elementary = b"".join(parts)
        pes = _pes_header(_STREAM_ID_VIDEO, len(elementary), pts, dts) + elementary
        out = bytearray()
        self._write_fillers(out, dts, _VIDEO_PID)
        self._packetize(out, pes, _VIDEO_PID, _AF_PCR_FLAG | (_AF_RANDOM_ACCESS if key else 0), dts)
        self._last_pcr = dts
        return bytes(out)

    def write_audio(self, pts: int, data: _BytesLike) -> bytes:
        """One raw AAC frame as TS packets: one PES holding one ADTS frame (b"" for an empty frame)."""
        if not self._has_audio:
            raise ValueError("MPEG-TS: write_audio() on a muxer without an audio track")
        pts &= _CLOCK_MASK
        n = len(memoryview(data).cast("B"))
        if n == 0:
            return b""
        frame = n + _ADTS_HEADER_SIZE
        if frame > _ADTS_MAX_FRAME:
            raise ProtocolError(
                f"MPEG-TS: AAC frame of {n} bytes is too long for ADTS "
                f"(at most {_ADTS_MAX_FRAME - _ADTS_HEADER_SIZE} bytes)"
            )
        adts = self._adts[:3] + bytes(
            (self._adts[3] | (frame >> 11), (frame >> 3) & 0xFF, ((frame & 7) << 5) | 0x1F, 0xFC)
        )
        pes = _pes_header(_STREAM_ID_AUDIO, frame, pts, pts) + adts + bytes(data)
        out = bytearray()
        carries_pcr = self._pcr_pid == _AUDIO_PID
        if carries_pcr:
            self._write_fillers(out, pts, _AUDIO_PID)
        self._packetize(out, pes, _AUDIO_PID, (_AF_PCR_FLAG | _AF_RANDOM_ACCESS) if carries_pcr else 0, pts)
        if carries_pcr:
            self._last_pcr = pts
        return bytes(out)

    def _write_fillers(self, out: bytearray, pcr: int, pid: int) -> None:
        if self._last_pcr < 0:
            return
        gap = (pcr - self._last_pcr) & _CLOCK_MASK
        if gap <= _PCR_INTERVAL or gap > _PCR_FILL_LIMIT:
            return
        base = self._last_pcr
        counter = (self._counters[pid] - 1) & 15
        for _ in range((gap - 1) // _PCR_INTERVAL):
            base = (base + _PCR_INTERVAL) & _CLOCK_MASK
            out += bytes((0x47, pid >> 8, pid & 0xFF, 0x20 | counter))
            out += _adaptation_field(_PAYLOAD_SIZE, _AF_PCR_FLAG, base)

    def _packetize(self, out: bytearray, pes: bytes, pid: int, flags: int, pcr: int) -> None:
        counter = self._counters[pid]
        left = len(pes)
        view = memoryview(pes)
        first_af = _PCR_AF_SIZE if flags & _AF_PCR_FLAG else (2 if flags else 0)
        af = _PAYLOAD_SIZE - left if left < _PAYLOAD_SIZE - first_af else first_af
        out += bytes((0x47, 0x40 | (pid >> 8), pid & 0xFF, (0x30 if af else 0x10) | counter))
        if af:
            out += _adaptation_field(af, flags, pcr)
        pos = _PAYLOAD_SIZE - af
        out += view[:pos]
        counter = (counter + 1) & 15
        plain_header = bytes((0x47, pid >> 8, pid & 0xFF))
        while pos < left:
            remaining = left - pos
            if remaining >= _PAYLOAD_SIZE:
                out += plain_header
                out.append(0x10 | counter)
                out += view[pos : pos + _PAYLOAD_SIZE]
                pos += _PAYLOAD_SIZE
            else:
                out += plain_header
                out.append(0x30 | counter)
                out += _adaptation_field(_PAYLOAD_SIZE - remaining, 0, 0)
                out += view[pos:]
                pos = left
            counter = (counter + 1) & 15
        self._counters[pid] = counter
