"""RTMP chunk stream codec (Cython, built from ext/rtmp_chunk.pyx); twin: owncast_fast._pure.rtmp_chunk."""

from typing import ClassVar, final

@final
class Message:
    """One complete RTMP message, as reassembled from its chunks."""

    csid: int
    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes
    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __init__(self, csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes) -> None: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class ChunkDecoder:
    """Reassembles RTMP messages from chunks; applies Set Chunk Size and Abort as it goes."""

    def __init__(
        self,
        max_message_size: int = 8388608,
        max_chunk_streams: int = 64,
        max_buffered: int = 16777216,
    ) -> None: ...
    @property
    def chunk_size(self) -> int: ...
    @property
    def bytes_received(self) -> int: ...
    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]: ...
    def abort(self, csid: int) -> None: ...

@final
class ChunkWriter:
    """Splits outgoing messages into chunks, compressing headers the way the decoder reads them."""

    def __init__(self, chunk_size: int = 128) -> None: ...
    @property
    def chunk_size(self) -> int: ...
    @chunk_size.setter
    def chunk_size(self, value: int) -> None: ...
    def write(
        self, csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes | bytearray | memoryview
    ) -> bytes: ...
