"""The sans-I/O RTMP session, driven by hand-built client bytes (no sockets)."""

from __future__ import annotations

import struct

import pytest

from owncast_fast._native.rtmp_chunk import ChunkDecoder, ChunkWriter
from owncast_fast.errors import ProtocolError
from owncast_fast.ingest.rtmp import amf0
from owncast_fast.ingest.rtmp.session import (
    AudioReceived,
    ConnectRequested,
    MetadataReceived,
    PublishEnded,
    PublishRequested,
    RtmpServerSession,
    State,
    VideoReceived,
)

C0C1 = b"\x03" + bytes(1536)
C2 = bytes(1536)
AVC_KEYFRAME = b"\x17\x01\x00\x00\x00" + b"\x00\x00\x00\x02\x65\x88"
AAC_FRAME = b"\xaf\x01\x21\x10"


class Client:
    """The publisher side: builds messages with the real chunk writer, reads replies."""

    def __init__(self) -> None:
        self.writer = ChunkWriter()
        self.reader = ChunkDecoder()
        self.session = RtmpServerSession(random_bytes=bytes)

    def command(self, *values: object, stream_id: int = 0) -> bytes:
        return self.writer.write(3, 20, stream_id, 0, amf0.encode_all(*values))

    def send(self, data: bytes) -> list[object]:
        return list(self.session.receive_data(data))

    def replies(self) -> list[tuple[int, list[object] | bytes]]:
        out = self.session.data_to_send()
        messages = []
        for message in self.reader.feed(out):
            body: list[object] | bytes = message.payload
            if message.type_id == 20:
                body = amf0.decode_all(message.payload)
            messages.append((message.type_id, body))
        return messages

    def handshake(self) -> None:
        assert self.send(C0C1) == []
        s0s1s2 = self.session.data_to_send()
        assert len(s0s1s2) == 1 + 1536 + 1536 and s0s1s2[0] == 3
        assert self.send(C2) == []
        assert self.session.state is State.AWAIT_CONNECT

    def connect(self, app: str = "live") -> ConnectRequested:
        self.handshake()
        (event,) = self.send(self.command("connect", 1.0, {"app": app, "tcUrl": f"rtmp://h/{app}"}))
        assert isinstance(event, ConnectRequested)
        return event

    def publish(self, key: str = "abc123") -> PublishRequested:
        self.connect()
        self.session.accept_connect()
        self.replies()
        assert self.send(self.command("releaseStream", 2.0, None, key)) == []
        assert self.send(self.command("FCPublish", 3.0, None, key)) == []
        assert self.send(self.command("createStream", 4.0, None)) == []
        (event,) = self.send(self.command("publish", 5.0, None, key, "live", stream_id=1))
        assert isinstance(event, PublishRequested)
        return event

    def media(self, type_id: int, timestamp: int, payload: bytes) -> list[object]:
        return self.send(self.writer.write(6 if type_id == 9 else 4, type_id, 1, timestamp, payload))


def test_connect_is_answered_with_window_bandwidth_chunk_size_and_result() -> None:
    client = Client()
    event = client.connect()
    assert event == ConnectRequested("live", "rtmp://h/live", "")
    client.session.accept_connect()
    replies = client.replies()
    assert [type_id for type_id, _ in replies] == [5, 6, 1, 20]
    assert replies[0][1] == struct.pack(">I", 2_500_000)
    assert replies[2][1] == struct.pack(">I", 4096)
    name, txid, props, info = replies[3][1]  # type: ignore[misc]
    assert (name, txid) == ("_result", 1.0)
    assert props["capabilities"] == 31.0  # type: ignore[index]
    assert info["code"] == "NetConnection.Connect.Success"  # type: ignore[index]


def test_publish_flow_gives_key_and_answers_every_command() -> None:
    client = Client()
    event = client.publish("abc123?obs=1")
    assert event == PublishRequested("live", "abc123", "live")
    replies = client.replies()
    names = [body[0] for type_id, body in replies if type_id == 20]  # type: ignore[index]
    assert names == ["_result", "onFCPublish", "_result", "_result"]
    assert replies[-1][1][3] == 1.0  # createStream's stream id  # type: ignore[index]
    client.session.accept_publish()
    replies = client.replies()
    assert replies[0] == (4, struct.pack(">HI", 0, 1))  # StreamBegin on stream 1
    status = replies[1][1]
    assert status[0] == "onStatus" and status[3]["code"] == "NetStream.Publish.Start"  # type: ignore[index]
    assert client.session.state is State.PUBLISHING


def test_media_metadata_and_unpublish_events() -> None:
    client = Client()
    client.publish()
    client.session.accept_publish()
    data = client.writer.write(4, 18, 1, 0, amf0.encode_all("@setDataFrame", "onMetaData", amf0.EcmaArray(width=320.0)))
    assert client.send(data) == [MetadataReceived({"width": 320.0})]
    assert client.media(9, 0, AVC_KEYFRAME) == [VideoReceived(0, AVC_KEYFRAME)]
    assert client.media(8, 23, AAC_FRAME) == [AudioReceived(23, AAC_FRAME)]
    assert client.media(9, 33, b"") == []  # empty media messages are keep-alives
    assert client.send(client.command("FCUnpublish", 6.0, None, "abc123")) == [
        PublishEnded("publisher sent FCUnpublish")
    ]
    assert client.session.state is State.ENDED


def test_everything_in_one_read_gives_the_same_events() -> None:
    client = Client()
    wire = C0C1 + C2 + client.command("connect", 1.0, {"app": "live"})
    events = client.send(wire)
    assert [type(e) for e in events] == [ConnectRequested]


def test_media_before_publish_is_a_protocol_error() -> None:
    client = Client()
    client.connect()
    client.session.accept_connect()
    with pytest.raises(ProtocolError, match=r"^RTMP: video message before publish$"):
        client.media(9, 0, AVC_KEYFRAME)
    with pytest.raises(ProtocolError, match=r"^RTMP: video message before publish$"):
        client.send(b"\x00")  # a closed session keeps failing with its reason


def test_play_is_refused() -> None:
    client = Client()
    client.connect()
    client.session.accept_connect()
    with pytest.raises(ProtocolError, match=r"^RTMP: play is not supported"):
        client.send(client.command("play", 2.0, None, "abc123"))


def test_unknown_message_type_is_a_protocol_error() -> None:
    client = Client()
    client.handshake()
    with pytest.raises(ProtocolError, match=r"^RTMP: unknown message type 42$"):
        client.send(client.writer.write(3, 42, 0, 0, b"x"))


def test_command_without_name_is_a_protocol_error() -> None:
    client = Client()
    client.handshake()
    with pytest.raises(ProtocolError, match=r"^RTMP: command message without a command name$"):
        client.send(client.writer.write(3, 20, 0, 0, amf0.encode_all(1.0)))


def test_amf_garbage_is_a_protocol_error() -> None:
    client = Client()
    client.handshake()
    with pytest.raises(ProtocolError, match=r"^AMF0: "):
        client.send(client.writer.write(3, 20, 0, 0, b"\x02\x00\x10con"))


def test_timestamps_going_backwards_close_the_session() -> None:
    client = Client()
    client.publish()
    client.session.accept_publish()
    client.media(9, 5000, AVC_KEYFRAME)
    client.media(8, 100, AAC_FRAME)  # audio runs on its own timeline
    with pytest.raises(ProtocolError, match=r"^RTMP: video timestamp went backwards from 5000 ms to 4000 ms$"):
        client.media(9, 4000, AVC_KEYFRAME)


def test_timestamps_unwrap_across_the_32_bit_boundary() -> None:
    client = Client()
    client.publish()
    client.session.accept_publish()
    near_end = (1 << 32) - 20
    assert client.media(9, near_end, AVC_KEYFRAME) == [VideoReceived(near_end, AVC_KEYFRAME)]
    assert client.media(9, 13, AVC_KEYFRAME) == [VideoReceived((1 << 32) + 13, AVC_KEYFRAME)]


def test_aggregate_message_is_split_into_media_events() -> None:
    client = Client()
    client.publish()
    client.session.accept_publish()

    def tag(type_id: int, ts: int, body: bytes) -> bytes:
        header = bytes([type_id]) + len(body).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big")
        return header + bytes([ts >> 24]) + b"\x00\x00\x00" + body + (11 + len(body)).to_bytes(4, "big")

    aggregate = tag(9, 1000, AVC_KEYFRAME) + tag(8, 1010, AAC_FRAME)
    events = client.send(client.writer.write(6, 22, 1, 2000, aggregate))
    assert events == [VideoReceived(2000, AVC_KEYFRAME), AudioReceived(2010, AAC_FRAME)]
    with pytest.raises(ProtocolError, match=r"^RTMP: aggregate sub-message overruns the aggregate$"):
        client.send(client.writer.write(6, 22, 1, 3000, aggregate[:-6]))


def test_ping_request_is_answered() -> None:
    client = Client()
    client.handshake()
    client.send(client.writer.write(2, 4, 0, 0, struct.pack(">HI", 6, 1234)))
    assert client.replies() == [(4, struct.pack(">HI", 7, 1234))]


def test_acknowledgement_after_the_peer_window() -> None:
    client = Client()
    client.publish()
    client.session.accept_publish()
    client.replies()
    client.send(client.writer.write(2, 5, 0, 0, struct.pack(">I", 5000)))
    for ts in range(0, 400, 40):
        client.media(9, ts, AVC_KEYFRAME + bytes(1000))
    acks = [body for type_id, body in client.replies() if type_id == 3]
    assert acks, "expected at least one Acknowledgement"
    assert all(int.from_bytes(ack, "big") >= 5000 for ack in acks)  # type: ignore[arg-type]


def test_reject_publish_sends_bad_name_and_closes() -> None:
    client = Client()
    client.publish()
    client.replies()
    client.session.reject("invalid stream key")
    (status,) = [body for type_id, body in client.replies() if type_id == 20]
    assert status[3] == {  # type: ignore[index]
        "level": "error",
        "code": "NetStream.Publish.BadName",
        "description": "invalid stream key",
    }
    assert client.session.state is State.CLOSED
    with pytest.raises(ProtocolError, match=r"^invalid stream key$"):
        client.send(b"\x00")


def test_bad_handshake_version() -> None:
    client = Client()
    with pytest.raises(ProtocolError, match=r"^RTMP handshake: unsupported version 6"):
        client.send(b"\x06" + bytes(1536))


def test_decisions_out_of_order_are_bugs_not_protocol_errors() -> None:
    client = Client()
    client.handshake()
    with pytest.raises(RuntimeError, match="accept_publish in state AWAIT_CONNECT"):
        client.session.accept_publish()
