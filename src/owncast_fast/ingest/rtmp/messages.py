"""RTMP message types and the protocol-control / user-control message bodies (RTMP 1.0 §5.4, §6.2, §7).

Small value helpers only: the session decides when to send them.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from owncast_fast.errors import ProtocolError


class MessageType(IntEnum):
    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


class UserControl(IntEnum):
    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


# Chunk stream ids we send on. "Chunk stream ID 2 is reserved for low-level protocol control
# messages and commands" (§5.3.1.1); commands and NetStream status go on 3 and 5 by convention.
CSID_CONTROL = 2
CSID_COMMAND = 3
CSID_STREAM = 5

PEER_BANDWIDTH_DYNAMIC = 2


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


def user_control(event: UserControl, value: int) -> bytes:
    return struct.pack(">HI", event, value)


def set_peer_bandwidth(size: int, limit_type: int = PEER_BANDWIDTH_DYNAMIC) -> bytes:
    return struct.pack(">IB", size, limit_type)


def parse_u32(payload: bytes, what: str) -> int:
    if len(payload) < 4:
        raise ProtocolError(f"RTMP: {what} message of {len(payload)} bytes is shorter than 4")
    return int.from_bytes(payload[:4], "big")


def parse_user_control(payload: bytes) -> tuple[int, bytes]:
    if len(payload) < 2:
        raise ProtocolError(f"RTMP: user control message of {len(payload)} bytes is shorter than 2")
    return int.from_bytes(payload[:2], "big"), payload[2:]
