"""A bare RTMP client over asyncio streams, for tests that need a publisher to stop or misbehave mid-way.

Built from the project's own wire pieces (the chunk writer and decoder, AMF0) plus a plain handshake
(RTMP 1.0 §5.2.3: time, four zero bytes, random), so each step -- handshake, connect, createStream,
publish, media -- can be skipped, truncated or replaced by garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from typing import Any

from owncast_fast._native.rtmp_chunk import ChunkDecoder, ChunkWriter
from owncast_fast.ingest.rtmp import amf0
from owncast_fast.ingest.rtmp.messages import MessageType

HANDSHAKE_SIZE = 1536
CSID_CONTROL = 2
CSID_COMMAND = 3
CSID_MEDIA = 6
PUBLISH_STREAM_ID = 1


def c0c1() -> bytes:
    return b"\x03" + bytes(8) + os.urandom(HANDSHAKE_SIZE - 8)


class ServerClosed(Exception):
    """The server closed the connection while the client waited for an answer."""


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.chunks = ChunkWriter()
        self._decoder = ChunkDecoder()
        self._txid = 0.0
        self._held: bytearray | None = None
        self.local_port: int = writer.get_extra_info("sockname")[1]

    @classmethod
    async def open(cls, port: int, *, ssl_context: ssl.SSLContext | None = None) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_context)
        return cls(reader, writer)

    @property
    def peer_name(self) -> str:
        """How the server names this connection in its log lines."""
        return f"127.0.0.1:{self.local_port}"

    # -- sending -------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        if self._held is not None:
            self._held += data
        else:
            self.writer.write(data)

    def hold_writes(self) -> None:
        """Collect what is sent from now on, to go out in one write at `release_writes()`."""
        self._held = bytearray()

    def release_writes(self) -> None:
        held, self._held = self._held, None
        if held:
            self.writer.write(bytes(held))

    def send_message(
        self,
        type_id: int,
        payload: bytes,
        *,
        csid: int = CSID_COMMAND,
        stream_id: int = 0,
        timestamp: int = 0,
    ) -> None:
        self.send_raw(self.chunks.write(csid, type_id, stream_id, timestamp, payload))

    def send_command(self, name: str, *args: Any, stream_id: int = 0) -> None:
        self._txid += 1
        payload = amf0.encode_all(name, self._txid, *args)
        self.send_message(MessageType.COMMAND_AMF0, payload, stream_id=stream_id)

    # -- the publishing sequence -----------------------------------------------------------------

    async def handshake(self, *, c2_length: int = HANDSHAKE_SIZE) -> None:
        """C0+C1, wait for S0+S1+S2, then the first `c2_length` bytes of C2 (all of it by default)."""
        self.send_raw(c0c1())
        s0s1s2 = await self._read_exactly(1 + 2 * HANDSHAKE_SIZE)
        # C2 echoes S1 (§5.2.4); the server reads it without checking.
        self.send_raw(s0s1s2[1 : 1 + c2_length])

    async def connect(self, app: str = "live") -> tuple[str, dict[str, Any]]:
        """Send connect; return the answer's name (_result or _error) and its information object."""
        tc_url = f"rtmp://127.0.0.1/{app}"
        self.send_command("connect", {"app": app, "type": "nonprivate", "flashVer": "FMLE/3.0", "tcUrl": tc_url})
        values = await self.read_command("_result", "_error")
        info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
        return values[0], info

    async def publish(self, key: str) -> str:
        """createStream then publish; return the code of the server's onStatus answer."""
        self.send_command("createStream", None)
        await self.read_command("_result")
        self.send_command("publish", None, key, "live", stream_id=PUBLISH_STREAM_ID)
        values = await self.read_command("onStatus")
        return str(values[3]["code"])

    async def start_publishing(self, key: str = "abc123") -> None:
        """Handshake, connect to /live and publish `key`; asserts every step was accepted."""
        await self.handshake()
        answer, info = await self.connect()
        assert answer == "_result", info
        code = await self.publish(key)
        assert code == "NetStream.Publish.Start", code

    def send_media(self, type_id: int, timestamp: int, payload: bytes) -> None:
        self.send_message(type_id, payload, csid=CSID_MEDIA, stream_id=PUBLISH_STREAM_ID, timestamp=timestamp)

    # -- receiving -----------------------------------------------------------------------------

    async def read_command(self, *names: str, within: float = 5.0) -> list[Any]:
        """Read messages until a command named one of `names` arrives; return its values."""
        async with asyncio.timeout(within):
            while True:
                data = await self.reader.read(65536)
                if not data:
                    raise ServerClosed(f"server closed the connection while we waited for {names}")
                for message in self._decoder.feed(data):
                    if message.type_id == MessageType.COMMAND_AMF0:
                        values = amf0.decode_all(message.payload)
                        if values and values[0] in names:
                            return values

    async def wait_closed_by_server(self, within: float) -> bool:
        """Read and discard until EOF or reset; False if the server kept the connection open."""
        try:
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()

    async def _read_exactly(self, size: int) -> bytes:
        try:
            async with asyncio.timeout(5.0):
                return await self.reader.readexactly(size)
        except asyncio.IncompleteReadError:
            raise ServerClosed(f"server closed the connection before sending {size} bytes") from None
