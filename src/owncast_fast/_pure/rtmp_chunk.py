"""Pure-Python twin of `owncast_fast._native.rtmp_chunk`: the RTMP chunk stream codec.

Same API, same results, same error messages as the Cython module; used only by the
differential tests and the benchmarks. The theory of operation is written once, in
`ext/rtmp_chunk.pyx`; this file follows the same steps in the same order so that both
raise the same error at the same byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from owncast_fast.errors import ProtocolError

_EXTENDED_MARK = 0xFFFFFF
_MAX_HEADER = 18  # 3-byte basic header + 11-byte type 0 header + 4-byte extended timestamp
_MESSAGE_HEADER_SIZE = (11, 7, 3, 0)
_MAX_WIRE_LENGTH = 0xFFFFFF  # the message length field is 24 bits
_MAX_CSID = 65599
_SET_CHUNK_SIZE = 1
_ABORT = 2
_PROTOCOL_CONTROL_CSID = 2


@dataclass(slots=True)
class Message:
    """One complete RTMP message, as reassembled from its chunks."""

    csid: int
    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes


class _ChunkStream:
    """What the chunk layer remembers about one chunk stream between chunks."""

    __slots__ = ("csid", "delta", "extended", "length", "payload", "stream_id", "timestamp", "type_id")

    def __init__(self, csid: int) -> None:
        self.csid = csid
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.stream_id = 0
        self.type_id = 0
        self.extended = False
        self.payload: bytearray | None = None  # the message in progress, if any


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"RTMP chunk: {name} {value} is out of range ({low}..{high})")


class ChunkDecoder:
    """Reassembles RTMP messages from chunks; applies Set Chunk Size and Abort as it goes."""

    def __init__(
        self,
        max_message_size: int = 8 * 1024 * 1024,
        max_chunk_streams: int = 64,
        max_buffered: int = 16 * 1024 * 1024,
    ) -> None:
        _check_range("max_message_size", max_message_size, 1, _MAX_WIRE_LENGTH)
        _check_range("max_chunk_streams", max_chunk_streams, 1, _MAX_CSID - 1)
        _check_range("max_buffered", max_buffered, 1, 1 << 40)
        self._max_message_size = max_message_size
        self._max_chunk_streams = max_chunk_streams
        self._max_buffered = max_buffered
        self._buffered = 0
        self._streams: dict[int, _ChunkStream] = {}
        self._chunk_size = 128
        self._bytes_received = 0
        self._stash = b""
        self._current: _ChunkStream | None = None  # set while inside a chunk's payload
        self._chunk_left = 0
        self._error: str | None = None

    @property
    def chunk_size(self) -> int:
        """The incoming chunk size, as last set by the peer's Set Chunk Size (128 until then)."""
        return self._chunk_size

    @property
    def bytes_received(self) -> int:
        """Every byte ever fed, for the session's Acknowledgement bookkeeping."""
        return self._bytes_received

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Consume one network read; return the messages it completed, in wire order."""
        if self._error is not None:
            raise ProtocolError(self._error)
        view = memoryview(data)
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        n = len(view)
        self._bytes_received += n
        out: list[Message] = []
        try:
            self._feed(view, n, out)
        except ProtocolError as exc:
            exc.partial = out  # the messages completed before the bad bytes
            raise
        return out

    def _feed(self, view: memoryview, n: int, out: list[Message]) -> None:
        pos = 0
        while pos < n:
            current = self._current
            if current is not None:
                take = min(self._chunk_left, n - pos)
                payload = current.payload
                if payload is not None:
                    payload += view[pos : pos + take]
                pos += take
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._current = None
                    if payload is not None and len(payload) == current.length:
                        self._complete(current, payload, out)
            elif not self._stash:
                first = view[pos]
                if first >= 0xC0 and first & 0x3F >= 2:
                    stream = self._streams.get(first & 0x3F)
                    if stream is not None and stream.payload is not None:
                        size = 5 if stream.extended else 1
                        if n - pos >= size:
                            pos += size
                            self._start_chunk(stream, len(stream.payload))
                            continue
                size = self._header_size(view[pos:])
                if size < 0:
                    self._stash = bytes(view[pos:])
                    break
                self._parse_header(view[pos : pos + size], out)
                pos += size
            else:
                stashed = len(self._stash)
                joined = self._stash + bytes(view[pos : pos + _MAX_HEADER - stashed])
                size = self._header_size(joined)
                if size < 0:
                    self._stash = joined
                    break
                self._stash = b""
                pos += size - stashed
                self._parse_header(joined[:size], out)

    def abort(self, csid: int) -> None:
        """Drop the partial message of chunk stream `csid` (what an Abort message asks for)."""
        if self._error is not None:
            raise ProtocolError(self._error)
        stream = self._streams.get(csid)
        if stream is not None and stream.payload is not None:
            self._buffered -= stream.length
            stream.payload = None

    def _fail(self, message: str) -> ProtocolError:
        self._error = message
        return ProtocolError(message)

    def _header_size(self, head: bytes | memoryview) -> int:
        n = len(head)
        if n < 1:
            return -1
        fmt = head[0] >> 6
        low = head[0] & 0x3F
        basic = 2 if low == 0 else 3 if low == 1 else 1
        if n < basic:
            return -1
        if fmt < 3:
            if n < basic + 3:
                return -1
            size = basic + _MESSAGE_HEADER_SIZE[fmt]
            if int.from_bytes(head[basic : basic + 3], "big") == _EXTENDED_MARK:
                size += 4
        else:
            size = basic
            stream = self._streams.get(_basic_csid(head, low))
            if stream is not None and stream.extended:
                size += 4
        return size if n >= size else -1

    def _parse_header(self, head: bytes | memoryview, out: list[Message]) -> None:
        fmt = head[0] >> 6
        low = head[0] & 0x3F
        csid = _basic_csid(head, low)
        i = 2 if low == 0 else 3 if low == 1 else 1
        stream = self._streams.get(csid)
        if stream is None:
            if fmt != 0 and not (fmt == 1 and csid == _PROTOCOL_CONTROL_CSID):
                raise self._fail(
                    f"RTMP chunk: chunk stream {csid} starts with a format {fmt} header but has no previous message"
                )
            if len(self._streams) >= self._max_chunk_streams:
                raise self._fail(f"RTMP chunk: more than {self._max_chunk_streams} chunk streams in use")
            stream = self._streams[csid] = _ChunkStream(csid)
        field = length = type_id = stream_id = 0
        extended = stream.extended
        if fmt < 3:
            field = int.from_bytes(head[i : i + 3], "big")
            i += 3
            if fmt < 2:
                length = int.from_bytes(head[i : i + 3], "big")
                type_id = head[i + 3]
                i += 4
                if fmt == 0:
                    stream_id = int.from_bytes(head[i : i + 4], "little")
                    i += 4
            extended = field == _EXTENDED_MARK
        if extended:
            field = int.from_bytes(head[i : i + 4], "big")

        if stream.payload is not None:
            if fmt < 2 and length != stream.length:
                raise self._fail(
                    f"RTMP chunk: chunk stream {csid} changes message length from {stream.length} "
                    f"to {length} in the middle of a message"
                )
            stream.extended = extended
            self._start_chunk(stream, len(stream.payload))
            return

        if fmt < 2:
            if length > self._max_message_size:
                raise self._fail(
                    f"RTMP chunk: message length {length} exceeds the limit of {self._max_message_size} bytes"
                )
            stream.length = length
            stream.type_id = type_id
        if fmt == 0:
            stream.timestamp = field
            stream.delta = field
            stream.stream_id = stream_id
        elif fmt < 3 or extended:
            stream.delta = field
            stream.timestamp = (stream.timestamp + field) & 0xFFFFFFFF
        else:
            stream.timestamp = (stream.timestamp + stream.delta) & 0xFFFFFFFF
        stream.extended = extended

        if stream.length == 0:
            self._emit(stream, b"", out)
            return
        if self._buffered + stream.length > self._max_buffered:
            raise self._fail(
                f"RTMP chunk: incomplete messages would buffer {self._buffered + stream.length} bytes, "
                f"above the limit of {self._max_buffered} bytes"
            )
        self._buffered += stream.length
        stream.payload = bytearray()
        self._start_chunk(stream, 0)

    def _start_chunk(self, stream: _ChunkStream, received: int) -> None:
        self._current = stream
        self._chunk_left = min(self._chunk_size, stream.length - received)

    def _complete(self, stream: _ChunkStream, payload: bytearray, out: list[Message]) -> None:
        stream.payload = None
        self._buffered -= stream.length
        self._emit(stream, bytes(payload), out)

    def _emit(self, stream: _ChunkStream, payload: bytes, out: list[Message]) -> None:
        # Control messages are applied before they are listed: one that fails is not "completed".
        if stream.type_id == _SET_CHUNK_SIZE:
            if len(payload) != 4:
                raise self._fail(f"RTMP chunk: set chunk size message has {len(payload)} bytes, expected 4")
            size = int.from_bytes(payload, "big")
            if not 1 <= size <= _MAX_WIRE_LENGTH:
                raise self._fail(f"RTMP chunk: set chunk size {size} is out of range (1..16777215)")
            self._chunk_size = size
        elif stream.type_id == _ABORT:
            if len(payload) != 4:
                raise self._fail(f"RTMP chunk: abort message has {len(payload)} bytes, expected 4")
            self.abort(int.from_bytes(payload, "big"))
        out.append(Message(stream.csid, stream.type_id, stream.stream_id, stream.timestamp, payload))


def _basic_csid(head: bytes | memoryview, low: int) -> int:
    if low == 0:
        return head[1] + 64
    if low == 1:
        return head[1] + (head[2] << 8) + 64
    return low


class _WriterStream:
    __slots__ = ("delta", "extended", "length", "started_with_type0", "stream_id", "timestamp", "type_id")

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.stream_id = 0
        self.type_id = 0
        self.extended = False
        self.started_with_type0 = True


class ChunkWriter:
    """Splits outgoing messages into chunks, compressing headers the way the decoder reads them."""

    def __init__(self, chunk_size: int = 128) -> None:
        _check_range("chunk size", chunk_size, 1, _MAX_WIRE_LENGTH)
        self._chunk_size = chunk_size
        self._streams: dict[int, _WriterStream] = {}

    @property
    def chunk_size(self) -> int:
        """The outgoing chunk size; set it right after sending Set Chunk Size."""
        return self._chunk_size

    @chunk_size.setter
    def chunk_size(self, value: int) -> None:
        _check_range("chunk size", value, 1, _MAX_WIRE_LENGTH)
        self._chunk_size = value

    def write(
        self,
        csid: int,
        type_id: int,
        stream_id: int,
        timestamp: int,
        payload: bytes | bytearray | memoryview,
    ) -> bytes:
        """Return the chunks that carry one message on chunk stream `csid`."""
        _check_range("chunk stream id", csid, 2, _MAX_CSID)
        _check_range("message type id", type_id, 0, 0xFF)
        _check_range("message stream id", stream_id, 0, 0xFFFFFFFF)
        _check_range("timestamp", timestamp, 0, 0xFFFFFFFF)
        body = memoryview(payload)
        if body.ndim != 1 or body.format != "B":
            body = body.cast("B")
        length = len(body)
        _check_range("payload length", length, 0, _MAX_WIRE_LENGTH)

        stream = self._streams.get(csid)
        if stream is None:
            stream = self._streams[csid] = _WriterStream()
            fmt = 0
        elif stream_id == stream.stream_id and timestamp >= stream.timestamp:
            fmt = 1
            if type_id == stream.type_id and length == stream.length:
                fmt = 2
                if timestamp - stream.timestamp == stream.delta and not stream.started_with_type0:
                    fmt = 3
        else:
            fmt = 0
        field = timestamp if fmt == 0 else timestamp - stream.timestamp
        if fmt < 3:
            stream.extended = field >= _EXTENDED_MARK
        extended = stream.extended

        if csid < 64:
            basic = bytes((csid,))
        elif csid < 320:
            basic = bytes((0, csid - 64))
        else:
            basic = bytes((1, (csid - 64) & 0xFF, (csid - 64) >> 8))
        ext = field.to_bytes(4, "big") if extended else b""
        out = bytearray(basic)
        out[0] |= fmt << 6
        if fmt < 3:
            out += min(field, _EXTENDED_MARK).to_bytes(3, "big")
            if fmt < 2:
                out += length.to_bytes(3, "big")
                out.append(type_id)
                if fmt == 0:
                    out += stream_id.to_bytes(4, "little")
        out += ext
        continuation = bytes((basic[0] | 0xC0,)) + basic[1:] + ext
        size = self._chunk_size
        out += body[:size]
        for start in range(size, length, size):
            out += continuation
            out += body[start : start + size]

        stream.timestamp = timestamp
        stream.delta = field
        stream.length = length
        stream.type_id = type_id
        stream.stream_id = stream_id
        stream.started_with_type0 = fmt == 0
        return bytes(out)
