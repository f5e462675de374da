"""Server side of one RTMP connection, sans-I/O.

Theory of operation
-------------------
Bytes go in with `receive_data(data)`, which returns the events they completed; bytes to send
come out of `data_to_send()`. Nothing here reads a clock, touches a socket or sleeps, so the
session is driven the same way by the asyncio adapter (`server.py`), by tests with recorded
bytes, and by fuzzers.

Layers, each translating upward: handshake (`handshake.py`) -> chunk stream
(`owncast_fast._native.rtmp_chunk`) -> messages (this module, using `messages.py` and AMF0) ->
events for the adapter. Decisions go back down as calls: `accept_connect()`,
`accept_publish()`, `reject(reason)`.

The NetConnection/NetStream states and the commands each state accepts are one table,
`COMMANDS`; a command not in the table for the current state is ignored if harmless (clients
send many optional ones) or a protocol error if it would change what the connection is for
(`play` on an ingest-only server).

A publisher's media may arrive in the same read as its `publish` command, before the adapter
has decided; media events are therefore produced in PUBLISH_REQUESTED as well as PUBLISHING.
The adapter handles events in order and decides on `PublishRequested` before it looks at the
media events after it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any, NamedTuple

from owncast_fast._native.rtmp_chunk import ChunkDecoder, ChunkWriter, Message
from owncast_fast.errors import ProtocolError
from owncast_fast.ingest.rtmp import amf0
from owncast_fast.ingest.rtmp.handshake import ServerHandshake
from owncast_fast.ingest.rtmp.messages import (
    CSID_COMMAND,
    CSID_CONTROL,
    CSID_STREAM,
    MessageType,
    UserControl,
    parse_u32,
    parse_user_control,
    set_peer_bandwidth,
    u32,
    user_control,
)

log = logging.getLogger(__name__)

# What we ask of the publisher: acknowledge every 2.5 MB (a common server value; acks are
# bookkeeping only for a publisher) and send chunks as large as we send ours.
WINDOW_ACK_SIZE = 2_500_000
OUR_CHUNK_SIZE = 4096
PUBLISH_STREAM_ID = 1
# 2**32 ms: RTMP timestamps are 32-bit and wrap after ~49.7 days.
TIMESTAMP_WRAP = 1 << 32


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectRequested:
    app: str
    tc_url: str
    flash_ver: str


@dataclass(frozen=True, slots=True)
class PublishRequested:
    app: str
    stream_key: str
    publish_type: str


@dataclass(frozen=True, slots=True)
class MetadataReceived:
    metadata: dict[str, Any]


# The two per-frame events are NamedTuples: immutable like the frozen dataclasses above, and made
# in a third of the time (a frozen dataclass sets each field through object.__setattr__).
class VideoReceived(NamedTuple):
    timestamp: int  # ms, unwrapped (monotonic across the 32-bit wrap)
    payload: bytes


class AudioReceived(NamedTuple):
    timestamp: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class PublishEnded:
    reason: str


SessionEvent = ConnectRequested | PublishRequested | MetadataReceived | VideoReceived | AudioReceived | PublishEnded


# -- state table -------------------------------------------------------------------------------


class State(Enum):
    HANDSHAKE = auto()
    AWAIT_CONNECT = auto()
    CONNECT_REQUESTED = auto()
    CONNECTED = auto()
    PUBLISH_REQUESTED = auto()
    PUBLISHING = auto()
    ENDED = auto()
    CLOSED = auto()


# state -> commands handled in it. Anything else is logged and ignored, except the commands in
# FORBIDDEN, which end the connection.
COMMANDS: dict[State, frozenset[str]] = {
    State.HANDSHAKE: frozenset(),
    State.AWAIT_CONNECT: frozenset({"connect"}),
    State.CONNECT_REQUESTED: frozenset(),
    State.CONNECTED: frozenset({"releaseStream", "FCPublish", "createStream", "publish", "deleteStream"}),
    State.PUBLISH_REQUESTED: frozenset({"FCUnpublish", "deleteStream", "closeStream"}),
    State.PUBLISHING: frozenset({"FCUnpublish", "deleteStream", "closeStream"}),
    State.ENDED: frozenset(),
    State.CLOSED: frozenset(),
}
FORBIDDEN = {"play": "RTMP: play is not supported (this server only accepts publishers)"}
MEDIA_STATES = frozenset({State.PUBLISH_REQUESTED, State.PUBLISHING})
# Per-frame checks compare with these module constants: looking a member up on its Enum class
# costs ~0.1 µs each time, and hashing an Enum member for a set test as much again.
_PUBLISH_REQUESTED, _PUBLISHING = State.PUBLISH_REQUESTED, State.PUBLISHING
_HANDSHAKE, _CLOSED = State.HANDSHAKE, State.CLOSED
_VIDEO, _AUDIO = int(MessageType.VIDEO), int(MessageType.AUDIO)
_MEDIA_TYPES = frozenset({_VIDEO, _AUDIO})


class RtmpServerSession:
    def __init__(
        self,
        *,
        max_message_size: int = 8 * 1024 * 1024,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.state = State.HANDSHAKE
        self.app = ""
        self.stream_key = ""
        self._handshake = ServerHandshake(random_bytes=random_bytes)
        self._decoder = ChunkDecoder(max_message_size=max_message_size)
        self._writer = ChunkWriter()
        self._out = bytearray()
        self._events: list[SessionEvent] = []
        self._peer_window = 0  # bytes between Acknowledgements the peer asked us for; 0 = none
        self._acked = 0
        self._last_ts: dict[int, int] = {}  # message type -> last unwrapped timestamp
        self._connect_txid = 0.0
        self._publish_txid = 0.0
        self.error: str | None = None

    # -- I/O surface ---------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[SessionEvent]:
        """Feed received bytes; return the events they completed.

        Raises ProtocolError; its `partial` holds the events completed before the error, so
        good media that shared a network read with the bad bytes is not lost.
        """
        state = self.state
        if state is _CLOSED:
            raise ProtocolError(self.error or "RTMP: connection is closed")
        try:
            if state is _HANDSHAKE:
                self._out += self._handshake.feed(data)
                if not self._handshake.done:
                    return []
                self.state = State.AWAIT_CONNECT
                data = self._handshake.leftover
                if not data:
                    return []
            try:
                messages = self._decoder.feed(data)
            except ProtocolError as exc:
                for message in exc.partial:
                    self._handle(message)  # type: ignore[arg-type]
                raise
            for message in messages:
                self._handle(message)
            self._maybe_acknowledge()
        except ProtocolError as exc:
            self.state = State.CLOSED
            self.error = str(exc)
            exc.partial, self._events = self._events, []
            raise
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""  # the adapter asks after every read; almost every answer is this
        out = bytes(self._out)
        self._out.clear()
        return out

    # -- decisions from the adapter --------------------------------------------------------------

    def accept_connect(self) -> None:
        if self.state is not State.CONNECT_REQUESTED:
            raise RuntimeError(f"accept_connect in state {self.state.name}")
        self._send(CSID_CONTROL, MessageType.WINDOW_ACK_SIZE, 0, u32(WINDOW_ACK_SIZE))
        self._send(CSID_CONTROL, MessageType.SET_PEER_BANDWIDTH, 0, set_peer_bandwidth(WINDOW_ACK_SIZE))
        self._send(CSID_CONTROL, MessageType.SET_CHUNK_SIZE, 0, u32(OUR_CHUNK_SIZE))
        self._writer.chunk_size = OUR_CHUNK_SIZE
        self._command(
            CSID_COMMAND,
            0,
            "_result",
            self._connect_txid,
            {"fmsVer": "FMS/3,5,7,7009", "capabilities": 31.0, "mode": 1.0},
            {
                "level": "status",
                "code": "NetConnection.Connect.Success",
                "description": "Connection succeeded.",
                "objectEncoding": 0.0,
            },
        )
        self.state = State.CONNECTED

    def accept_publish(self) -> None:
        if self.state is not State.PUBLISH_REQUESTED:
            raise RuntimeError(f"accept_publish in state {self.state.name}")
        self._send(
            CSID_CONTROL,
            MessageType.USER_CONTROL,
            0,
            user_control(UserControl.STREAM_BEGIN, PUBLISH_STREAM_ID),
        )
        self._on_status("status", "NetStream.Publish.Start", f"{self.stream_key} is now published.")
        self.state = State.PUBLISHING

    def reject(self, reason: str) -> None:
        """Refuse the connect or publish; the adapter flushes `data_to_send()` and closes."""
        if self.state is State.PUBLISH_REQUESTED:
            self._on_status("error", "NetStream.Publish.BadName", reason)
        elif self.state is State.CONNECT_REQUESTED:
            self._command(
                CSID_COMMAND,
                0,
                "_error",
                self._connect_txid,
                None,
                {"level": "error", "code": "NetConnection.Connect.Rejected", "description": reason},
            )
        self.state = State.CLOSED
        self.error = reason

    # -- message handling ----------------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        type_id = message.type_id
        if type_id in _MEDIA_TYPES:
            self._media(type_id, message.timestamp, message.payload)
        elif type_id == MessageType.COMMAND_AMF0:
            self._on_command(amf0.decode_all(message.payload), message.stream_id)
        elif type_id == MessageType.COMMAND_AMF3:
            # An AMF3 command message is an AMF0 command behind one format byte (0).
            self._on_command(amf0.decode_all(message.payload[1:]), message.stream_id)
        elif type_id == MessageType.DATA_AMF0:
            self._on_data(amf0.decode_all(message.payload))
        elif type_id == MessageType.DATA_AMF3:
            self._on_data(amf0.decode_all(message.payload[1:]))
        elif type_id == MessageType.AGGREGATE:
            self._aggregate(message)
        elif type_id == MessageType.WINDOW_ACK_SIZE:
            self._peer_window = parse_u32(message.payload, "window acknowledgement size")
        elif type_id == MessageType.USER_CONTROL:
            event, body = parse_user_control(message.payload)
            if event == UserControl.PING_REQUEST:
                pong = user_control(UserControl.PING_RESPONSE, int.from_bytes(body[:4], "big"))
                self._send(CSID_CONTROL, MessageType.USER_CONTROL, 0, pong)
        elif type_id in (
            MessageType.SET_CHUNK_SIZE,  # applied by the chunk decoder itself
            MessageType.ABORT,  # likewise
            MessageType.ACKNOWLEDGEMENT,
            MessageType.SET_PEER_BANDWIDTH,
            MessageType.SHARED_OBJECT_AMF0,
            MessageType.SHARED_OBJECT_AMF3,
        ):
            return
        else:
            raise ProtocolError(f"RTMP: unknown message type {type_id}")

    def _media(self, type_id: int, timestamp: int, payload: bytes) -> None:
        state = self.state
        if state is not _PUBLISHING and state is not _PUBLISH_REQUESTED:
            kind = "video" if type_id == _VIDEO else "audio"
            raise ProtocolError(f"RTMP: {kind} message before publish")
        if not payload:
            return  # empty media messages are keep-alives some encoders send
        ts = self._unwrap(type_id, timestamp)
        if type_id == _VIDEO:
            self._events.append(VideoReceived(ts, payload))
        else:
            self._events.append(AudioReceived(ts, payload))

    def _unwrap(self, type_id: int, timestamp: int) -> int:
        """Extend 32-bit timestamps across the wrap; refuse a track going back in time."""
        last = self._last_ts.get(type_id)
        if last is not None:
            base = last - (last % TIMESTAMP_WRAP)
            candidate = base + timestamp
            # A drop of more than half the range is the wrap, not a step back.
            if candidate < last - TIMESTAMP_WRAP // 2:
                candidate += TIMESTAMP_WRAP
            if candidate < last:
                kind = "video" if type_id == _VIDEO else "audio"
                raise ProtocolError(f"RTMP: {kind} timestamp went backwards from {last} ms to {candidate} ms")
            timestamp = candidate
        self._last_ts[type_id] = timestamp
        return timestamp

    def _aggregate(self, message: Message) -> None:
        """Aggregate message (§7.1.6): FLV-style sub-messages, timestamps relative to the first."""
        body = message.payload
        pos = 0
        first_ts: int | None = None
        while pos < len(body):
            if len(body) - pos < 11:
                raise ProtocolError("RTMP: truncated aggregate sub-message header")
            sub_type = body[pos]
            size = int.from_bytes(body[pos + 1 : pos + 4], "big")
            ts = int.from_bytes(body[pos + 4 : pos + 7], "big") | (body[pos + 7] << 24)
            end = pos + 11 + size
            if end + 4 > len(body):
                raise ProtocolError("RTMP: aggregate sub-message overruns the aggregate")
            if first_ts is None:
                first_ts = ts
            if sub_type in (MessageType.AUDIO, MessageType.VIDEO):
                relative = ts - first_ts
                self._media(sub_type, (message.timestamp + relative) % TIMESTAMP_WRAP, body[pos + 11 : end])
            pos = end + 4  # skip the back pointer

    def _on_command(self, values: list[Any], stream_id: int) -> None:
        if not values or not isinstance(values[0], str):
            raise ProtocolError("RTMP: command message without a command name")
        name = values[0]
        txid = values[1] if len(values) > 1 and isinstance(values[1], float | int) else 0.0
        args = values[2:]
        if name in FORBIDDEN:
            raise ProtocolError(FORBIDDEN[name])
        if name not in COMMANDS[self.state]:
            log.debug("RTMP: ignoring command %r in state %s", name, self.state.name)
            return
        if name == "connect":
            obj = args[0] if args and isinstance(args[0], dict) else {}
            self._connect_txid = float(txid)
            self.app = _text(obj.get("app")).strip("/")
            self.state = State.CONNECT_REQUESTED
            self._events.append(ConnectRequested(self.app, _text(obj.get("tcUrl")), _text(obj.get("flashVer"))))
        elif name in ("releaseStream", "FCPublish"):
            if name == "FCPublish":
                self._command(CSID_COMMAND, 0, "onFCPublish", 0.0, None, {"code": "NetStream.Publish.Start"})
            self._command(CSID_COMMAND, 0, "_result", float(txid), None, None)
        elif name == "createStream":
            self._command(CSID_COMMAND, 0, "_result", float(txid), None, float(PUBLISH_STREAM_ID))
        elif name == "publish":
            raw_key = _text(args[1]) if len(args) > 1 else ""
            publish_type = _text(args[2]) if len(args) > 2 else "live"
            # OBS and ffmpeg send the key as the publishing name; some tools append a query.
            self.stream_key = raw_key.split("?", 1)[0]
            self._publish_txid = float(txid)
            self.state = State.PUBLISH_REQUESTED
            self._events.append(PublishRequested(self.app, self.stream_key, publish_type))
        elif name in ("FCUnpublish", "deleteStream", "closeStream") and self.state in MEDIA_STATES:
            self._events.append(PublishEnded(f"publisher sent {name}"))
            self.state = State.ENDED

    def _on_data(self, values: list[Any]) -> None:
        # "@setDataFrame", "onMetaData", {...}  (ffmpeg, OBS)  or  "onMetaData", {...}
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        is_metadata = len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict)
        if is_metadata and self.state in MEDIA_STATES:
            self._events.append(MetadataReceived(dict(values[1])))

    # -- output --------------------------------------------------------------------------------

    def _maybe_acknowledge(self) -> None:
        received = self._decoder.bytes_received + _HANDSHAKE_BYTES
        if self._peer_window and received - self._acked >= self._peer_window:
            self._acked = received
            self._send(CSID_CONTROL, MessageType.ACKNOWLEDGEMENT, 0, u32(received % TIMESTAMP_WRAP))

    def _send(self, csid: int, type_id: int, stream_id: int, payload: bytes) -> None:
        self._out += self._writer.write(csid, type_id, stream_id, 0, payload)

    def _command(self, csid: int, stream_id: int, *values: Any) -> None:
        self._send(csid, MessageType.COMMAND_AMF0, stream_id, amf0.encode_all(*values))

    def _on_status(self, level: str, code: str, description: str) -> None:
        self._command(
            CSID_STREAM,
            PUBLISH_STREAM_ID,
            "onStatus",
            0.0,
            None,
            {"level": level, "code": code, "description": description},
        )


# Acknowledgement sequence numbers count every byte received, handshake included (§5.4.3).
_HANDSHAKE_BYTES = 1 + 1536 + 1536


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
