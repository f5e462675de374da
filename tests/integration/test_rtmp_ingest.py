"""RtmpIngest in-process, fed over real loopback sockets by ffmpeg, GStreamer and a bare RTMP client.

Each test drives its own uvloop loop (as `owncast-fast serve` does) with the ingest and one hub
consumer that records every item with its arrival time, so a test sees exactly what a segmenter
would: StreamStart, TrackConfigs, AccessUnits in 90 kHz ticks, StreamEnd.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import rtmp_client
import uvloop
from media import FlvTag, ProbedPacket, read_flv_tags, require_tool
from rtmp_client import HANDSHAKE_SIZE, RawClient, ServerClosed, c0c1

from owncast_fast.errors import ProtocolError
from owncast_fast.events import Event, EventBus, StreamStarted, StreamStopped
from owncast_fast.ingest.rtmp import amf0
from owncast_fast.ingest.rtmp.messages import MessageType, u32
from owncast_fast.ingest.rtmp.server import IDLE_TIMEOUT, PUBLISH_RCVLOWAT, RtmpIngest
from owncast_fast.media.hub import HubItem, MediaHub, StreamEnd, StreamStart, TrackConfig
from owncast_fast.media.units import MS_TO_TICKS, AccessUnit, Track
from owncast_fast.status import Broadcaster, StreamStatus

pytestmark = pytest.mark.integration

KEY = "abc123"
SERVER_LOGGER = "owncast_fast.ingest.rtmp.server"
MAX_MESSAGE_SIZE = 8 * 1024 * 1024

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a scenario on a fresh uvloop loop, the loop the server itself runs on."""
    return uvloop.run(coro)


@dataclass(frozen=True, slots=True)
class Received:
    at: float  # loop time of arrival at the consumer
    item: HubItem


class IngestUnderTest:
    """An RtmpIngest listening on a free loopback port, with a consumer that records everything."""

    def __init__(self, *, idle_timeout: float = IDLE_TIMEOUT, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.hub = MediaHub()
        self.bus = EventBus()
        self.status = StreamStatus()
        self.events: list[Event] = []
        self.online_at_events: list[bool] = []
        self.bus.subscribe(self._on_event)
        self.ingest = RtmpIngest(
            hub=self.hub,
            bus=self.bus,
            status=self.status,
            key_is_valid=lambda key: key == KEY,
            stream_title=lambda: "integration",
            max_message_size=MAX_MESSAGE_SIZE,
            idle_timeout=idle_timeout,
        )
        # The test reads everything it is given, so bounds this wide must never drop a unit.
        self.consumer = self.hub.attach("test", max_units=1_000_000, max_bytes=1 << 34)
        self.received: list[Received] = []
        self.port = 0
        self._collector: asyncio.Task[None] | None = None

    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        self.online_at_events.append(self.status.online)

    async def __aenter__(self) -> IngestUnderTest:
        self.port = await self.ingest.listen("127.0.0.1", 0, self.ssl_context)
        self._collector = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.ingest.close()
        assert self._collector is not None
        self._collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._collector

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self.consumer.get()
            self.received.append(Received(loop.time(), item))

    def url(self, key: str = KEY, app: str = "live") -> str:
        return f"rtmp://127.0.0.1:{self.port}/{app}/{key}"

    def items(self) -> list[HubItem]:
        return [r.item for r in self.received]

    def units(self, track: Track | None = None) -> list[AccessUnit]:
        return [
            r.item for r in self.received if isinstance(r.item, AccessUnit) and (track is None or r.item.track is track)
        ]

    def ended(self) -> bool:
        return any(isinstance(r.item, StreamEnd) for r in self.received)

    async def wait_for(self, condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {within} s waiting for {what}")
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def process(*command: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child process whose stderr is collected; killed and reaped when the block ends."""
    proc = await asyncio.create_subprocess_exec(
        *command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()


def ffmpeg_publish(source: Path, url: str, *, readrate: float | None = None) -> list[str]:
    rate = ("-readrate", str(readrate)) if readrate else ()
    ffmpeg = require_tool("ffmpeg")
    return [ffmpeg, "-hide_banner", "-loglevel", "error", *rate, "-i", str(source), "-c", "copy", "-f", "flv", url]


def peer_lines(caplog: pytest.LogCaptureFixture, peer: str) -> list[str]:
    """The server's log lines about one connection."""
    return [
        r.getMessage() for r in caplog.records if r.name == SERVER_LOGGER and r.getMessage().startswith(f"RTMP {peer}:")
    ]


# -- ffmpeg: every access unit, exactly ----------------------------------------------------------


def test_ffmpeg_publish_delivers_every_access_unit_exactly(clip_4s: Path, clip_4s_packets: list[ProbedPacket]) -> None:
    async def scenario() -> tuple[IngestUnderTest, int | None, bytes, list[bool], Broadcaster | None]:
        async with IngestUnderTest() as server:
            online_while_publishing: list[bool] = []
            async with process(*ffmpeg_publish(clip_4s, server.url(), readrate=4)) as ffmpeg:
                await server.wait_for(lambda: server.status.online, "the publisher to go live")
                await server.wait_for(lambda: len(server.units(Track.VIDEO)) > 30, "a second of video")
                online_while_publishing.append(server.status.online)
                details = server.ingest.broadcaster()
                _, stderr = await ffmpeg.communicate()
                await server.wait_for(server.ended, "the end of the stream")
            online_while_publishing.append(server.status.online)
            return server, ffmpeg.returncode, stderr, online_while_publishing, details

    server, returncode, stderr, online, broadcaster = run(scenario())
    assert returncode == 0, stderr.decode()
    items = server.items()

    assert isinstance(items[0], StreamStart)
    assert items[-1] == StreamEnd("publisher sent FCUnpublish")
    assert sum(isinstance(item, StreamStart | StreamEnd) for item in items) == 2

    configs = [item for item in items if isinstance(item, TrackConfig)]
    assert sorted(c.track for c in configs) == [Track.VIDEO, Track.AUDIO], "one config per track"
    video_config = next(c for c in configs if c.track is Track.VIDEO)
    audio_config = next(c for c in configs if c.track is Track.AUDIO)
    assert video_config.codec == "avc1"
    assert re.fullmatch(r"avc1\.64[0-9a-f]{4}", video_config.codecs), video_config.codecs  # High profile
    assert (video_config.width, video_config.height) == (320, 240)
    assert (audio_config.codec, audio_config.codecs) == ("mp4a", "mp4a.40.2")
    assert (audio_config.sample_rate, audio_config.channels) == (44100, 1)
    for config in configs:
        first_unit = next(i for i, x in enumerate(items) if isinstance(x, AccessUnit) and x.track is config.track)
        assert items.index(config) < first_unit, f"{config.track.name} config must come before its units"

    for track in (Track.VIDEO, Track.AUDIO):
        expected = [(p.dts, p.pts, p.keyframe, p.size) for p in clip_4s_packets if p.track is track]
        got = [(u.dts, u.pts, u.keyframe, len(u.data)) for u in server.units(track)]
        assert got == expected, f"{track.name}: units differ from ffprobe's packets"
    video = server.units(Track.VIDEO)
    assert any(u.pts != u.dts for u in video), "the clip has B-frames: some pts must differ from dts"
    assert all(u.dts % MS_TO_TICKS == 0 for u in video)

    started, stopped = server.events
    assert isinstance(started, StreamStarted) and isinstance(stopped, StreamStopped)
    assert (started.remote_addr, started.stream_title) == ("127.0.0.1", "integration")
    assert (stopped.reason, stopped.stream_title) == ("publisher sent FCUnpublish", "integration")
    assert server.online_at_events == [True, False]
    assert online == [True, False]
    assert server.status.last_connect_time == started.time
    assert server.status.last_disconnect_time == stopped.time
    assert started.time <= stopped.time

    assert broadcaster is not None
    assert broadcaster.remote_addr == "127.0.0.1"
    assert (broadcaster.details.video_codec, broadcaster.details.audio_codec) == ("H.264", "AAC")
    assert (broadcaster.details.width, broadcaster.details.height) == (320, 240)
    assert broadcaster.details.encoder.startswith("Lavf")
    assert broadcaster.details.measured_framerate == pytest.approx(30, abs=1.5)
    assert server.consumer.dropped_units == 0


# -- GStreamer ------------------------------------------------------------------------------------


def gstreamer_aac_encoder() -> str:
    gst_inspect = require_tool("gst-inspect-1.0")
    for element in ("avenc_aac", "voaacenc", "fdkaacenc"):
        if subprocess.run([gst_inspect, element], capture_output=True, timeout=30).returncode == 0:
            return element
    pytest.fail("no GStreamer AAC encoder (avenc_aac, voaacenc, fdkaacenc): run `make system-deps`")


VIDEO_FRAMES = 90
AUDIO_BUFFERS = 130  # of 1024 samples at 44.1 kHz: the 3 s of the 90 video frames


def test_gstreamer_publish(tmp_path: Path) -> None:
    encoder = gstreamer_aac_encoder()

    async def scenario() -> tuple[IngestUnderTest, int | None, bytes]:
        async with IngestUnderTest() as server:
            pipeline = (
                f"videotestsrc num-buffers={VIDEO_FRAMES} is-live=true"
                " ! video/x-raw,width=320,height=240,framerate=30/1"
                " ! x264enc tune=zerolatency key-int-max=30 ! h264parse"
                f" ! flvmux name=m streamable=true ! rtmp2sink location={server.url()}"
                f" audiotestsrc num-buffers={AUDIO_BUFFERS} samplesperbuffer=1024 is-live=true"
                f" ! audio/x-raw,rate=44100 ! audioconvert ! {encoder} ! aacparse ! m."
            )
            async with process(require_tool("gst-launch-1.0"), "-q", *pipeline.split()) as gst:
                _, stderr = await asyncio.wait_for(gst.communicate(), 30)
                await server.wait_for(server.ended, "the end of the stream")
            return server, gst.returncode, stderr

    server, returncode, stderr = run(scenario())
    assert returncode == 0, stderr.decode()
    items = server.items()
    assert isinstance(items[0], StreamStart)
    assert items[-1] == StreamEnd("publisher sent FCUnpublish")
    configs = {item.track: item for item in items if isinstance(item, TrackConfig)}
    assert configs[Track.VIDEO].codecs.startswith("avc1.")
    assert (configs[Track.VIDEO].width, configs[Track.VIDEO].height) == (320, 240)
    assert configs[Track.AUDIO].codecs == "mp4a.40.2"

    video, audio = server.units(Track.VIDEO), server.units(Track.AUDIO)
    assert len(video) == VIDEO_FRAMES
    # An AAC encoder may add one or two frames when it flushes its priming delay at the end.
    assert AUDIO_BUFFERS <= len(audio) <= AUDIO_BUFFERS + 2, len(audio)
    assert video[0].keyframe
    # flvmux stamps live buffers with the pipeline clock: under load two frames can share a millisecond
    # timestamp, which the server passes on as sent. It must never go back.
    assert all(a.dts <= b.dts for a, b in itertools.pairwise(video)), "video dts went back"
    assert all(a.dts <= b.dts for a, b in itertools.pairwise(audio)), "audio dts went back"
    assert all(u.pts >= u.dts for u in video)
    # 90 frames at 30 fps span 89 frame intervals, 2.967 s, give or take that clock's jitter.
    assert video[-1].dts - video[0].dts == pytest.approx(89 * 3000, abs=0.25 * 90_000)
    assert server.consumer.dropped_units == 0


# -- a publisher that goes silent, a client that never speaks ------------------------------------


def test_silent_publisher_ends_the_stream_after_the_idle_timeout(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)

    async def scenario() -> tuple[IngestUnderTest, float, bool, str]:
        async with IngestUnderTest(idle_timeout=1.0) as server:
            client = await RawClient.open(server.port)
            try:
                await client.start_publishing(KEY)
                live_at = time.monotonic()
                assert server.status.online
                await server.wait_for(server.ended, "the idle timeout to end the stream", within=5)
                ended_after = time.monotonic() - live_at
                closed = await client.wait_closed_by_server(2.0)
            finally:
                await client.close()
            return server, ended_after, closed, client.peer_name

    server, ended_after, closed, peer = run(scenario())
    assert 0.9 <= ended_after <= 2.5, ended_after
    assert closed
    assert server.items() == [StreamStart(), StreamEnd("no data for 1 s")]
    assert [type(e) for e in server.events] == [StreamStarted, StreamStopped]
    stopped = server.events[1]
    assert isinstance(stopped, StreamStopped) and stopped.reason == "no data for 1 s"
    assert not server.status.online
    assert server.status.last_disconnect_time is not None
    assert peer_lines(caplog, peer) == [
        f"RTMP {peer}: stream started",
        f"RTMP {peer}: closing connection: no data for 1 s",
        f"RTMP {peer}: stream stopped (no data for 1 s)",
    ]


def test_a_client_that_sends_nothing_is_closed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)

    async def scenario() -> tuple[IngestUnderTest, float, bool, str]:
        async with IngestUnderTest(idle_timeout=1.0) as server:
            client = await RawClient.open(server.port)
            started = time.monotonic()
            try:
                closed = await client.wait_closed_by_server(5.0)
            finally:
                await client.close()
            return server, time.monotonic() - started, closed, client.peer_name

    server, closed_after, closed, peer = run(scenario())
    assert closed
    assert 0.9 <= closed_after <= 2.5, closed_after
    assert peer_lines(caplog, peer) == [f"RTMP {peer}: closing connection: no data for 1 s"]
    assert server.items() == [] and server.events == []
    assert server.status.last_connect_time is None


# -- a publisher whose timestamps go backwards ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepBack:
    server: IngestUnderTest
    closed: bool
    peer: str
    frames: list[FlvTag]  # the coded frames sent before the step back
    reason: str


def publish_then_step_back(clip: Path, *, wait_for_frames: bool) -> StepBack:
    """Publish the clip's first 40 tags, then a video tag from the past; `wait_for_frames` waits for
    the frames to reach the hub first, else everything goes out in one write (so one server read)."""
    tags = read_flv_tags(clip)
    media = [t for t in tags if t.type_id in (MessageType.AUDIO, MessageType.VIDEO)][:40]
    metadata = next(t for t in tags if t.type_id == MessageType.DATA_AMF0)
    last_video = max(t.timestamp for t in media if t.type_id == MessageType.VIDEO)
    step_back = next(t for t in media if t.type_id == MessageType.VIDEO and 0 < t.timestamp < last_video)
    # Byte 1 of an AVC or AAC tag is its packet type: 1 for a coded frame (0 is the sequence header).
    frames = [t for t in media if t.payload[1] == 1]

    async def scenario() -> StepBack:
        async with IngestUnderTest() as server:
            client = await RawClient.open(server.port)
            try:
                await client.start_publishing(KEY)
                client.hold_writes()
                client.send_media(MessageType.DATA_AMF0, 0, metadata.payload)
                for tag in media:
                    client.send_media(tag.type_id, tag.timestamp, tag.payload)
                if wait_for_frames:
                    client.release_writes()
                    await server.wait_for(lambda: len(server.units()) == len(frames), "the frames")
                client.send_media(MessageType.VIDEO, step_back.timestamp, step_back.payload)
                client.release_writes()
                closed = await client.wait_closed_by_server(5.0)
                await server.wait_for(server.ended, "the end of the stream")
            finally:
                await client.close()
        reason = f"RTMP: video timestamp went backwards from {last_video} ms to {step_back.timestamp} ms"
        return StepBack(server, closed, client.peer_name, frames, reason)

    return run(scenario())


def assert_frames_delivered(server: IngestUnderTest, frames: list[FlvTag]) -> None:
    units = server.units()
    assert len(units) == len(frames), f"{len(units)} of the {len(frames)} frames sent reached the hub"
    for unit, tag in zip(units, frames, strict=True):
        # The FLV headers before the frame: 5 bytes for AVC (with the composition time), 2 for AAC.
        header = 5 if unit.track is Track.VIDEO else 2
        assert (unit.dts, unit.data) == (tag.timestamp * MS_TO_TICKS, tag.payload[header:])


def test_publisher_timestamps_going_backwards_end_the_stream(clip_4s: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    result = publish_then_step_back(clip_4s, wait_for_frames=True)
    server = result.server
    assert result.closed
    assert server.items()[-1] == StreamEnd(result.reason)
    assert_frames_delivered(server, result.frames)
    assert peer_lines(caplog, result.peer) == [
        f"RTMP {result.peer}: stream started",
        f"RTMP {result.peer}: closing connection: {result.reason}",
        f"RTMP {result.peer}: stream stopped ({result.reason})",
    ]
    stopped = server.events[-1]
    assert isinstance(stopped, StreamStopped) and stopped.reason == result.reason
    assert not server.status.online


def test_frames_in_the_same_read_as_a_protocol_error_are_delivered(clip_4s: Path) -> None:
    result = publish_then_step_back(clip_4s, wait_for_frames=False)
    assert result.closed
    assert result.server.items()[-1] == StreamEnd(result.reason)
    assert_frames_delivered(result.server, result.frames)


# -- read coalescing -----------------------------------------------------------------------------

AAC_CONFIG = b"\xaf\x00\x12\x10"  # AAC sequence header: AAC-LC, 44.1 kHz, stereo


def test_a_live_publisher_lone_chunk_header_waits_for_its_payload() -> None:
    """Once live, the server is woken for a message, not for its header alone (ffmpeg and OBS write
    them apart), and a message smaller than a header still arrives when the publisher leaves."""

    async def scenario() -> tuple[int, list[int], list[int], IngestUnderTest]:
        async with IngestUnderTest() as server:
            client = await RawClient.open(server.port)
            try:
                await client.start_publishing(KEY)
                connection = server.ingest.publisher
                assert connection is not None and connection.transport is not None
                sock = connection.transport.get_extra_info("socket")
                lowat = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)
                client.send_media(MessageType.AUDIO, 0, AAC_CONFIG)
                await server.wait_for(lambda: any(isinstance(i, TrackConfig) for i in server.items()), "the config")

                reads: list[int] = []
                receive = connection.session.receive_data

                def counted(data: bytes | bytearray | memoryview) -> list[Any]:
                    reads.append(len(data))
                    return receive(data)

                connection.session.receive_data = counted  # type: ignore[method-assign]
                frame = b"\xaf\x01" + bytes(range(100))
                message = client.chunks.write(rtmp_client.CSID_MEDIA, MessageType.AUDIO, 1, 23, frame)
                header = message[: len(message) - len(frame)]
                client.send_raw(header)
                await client.writer.drain()
                await asyncio.sleep(0.2)
                after_header = list(reads)
                client.send_raw(message[len(header) :])
                await server.wait_for(lambda: len(server.units()) == 1, "the frame")
                after_frame = list(reads)
                # A whole message under the threshold, then the publisher leaves.
                client.send_media(MessageType.AUDIO, 46, b"\xaf\x01\x21")
                await client.writer.drain()
            finally:
                await client.close()
            await server.wait_for(server.ended, "the end of the stream")
            return lowat, after_header, after_frame, server

    lowat, after_header, after_frame, server = run(scenario())
    assert lowat == PUBLISH_RCVLOWAT
    assert after_header == []  # no wake-up for the header alone
    assert len(after_frame) == 1  # one wake-up for header and payload
    units = server.units()
    assert [bytes(u.data) for u in units] == [bytes(range(100)), b"\x21"]
    assert isinstance(server.items()[-1], StreamEnd)


def test_keep_alives_smaller_than_a_chunk_header_keep_a_quiet_publisher_live() -> None:
    """Bytes below the wake-up threshold are read once the publisher has been quiet for half the
    idle timeout, so a publisher sending only tiny keep-alives is not cut off."""

    async def scenario() -> tuple[bool, int, IngestUnderTest]:
        async with IngestUnderTest(idle_timeout=1.0) as server:
            client = await RawClient.open(server.port)
            try:
                await client.start_publishing(KEY)
                connection = server.ingest.publisher
                assert connection is not None
                for timestamp in range(0, 3000, 700):  # every 0.7 s, each a few bytes
                    client.send_media(MessageType.AUDIO, timestamp, b"")
                    await client.writer.drain()
                    await asyncio.sleep(0.7)
                ended = server.ended()
                sock = connection.transport.get_extra_info("socket")  # type: ignore[union-attr]
                lowat = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)
            finally:
                await client.close()
            await server.wait_for(server.ended, "the end of the stream")
            return ended, lowat, server

    ended, lowat, server = run(scenario())
    assert not ended
    assert lowat in (1, PUBLISH_RCVLOWAT)
    assert server.items()[-1] == StreamEnd("publisher closed the connection")


# -- RTMPS in-process --------------------------------------------------------------------------


def tls_contexts(cert: Path, key: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts; the client verifies the self-signed certificate for 127.0.0.1."""
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    return server_side, ssl.create_default_context(cafile=str(cert))


def test_rtmps_publisher_in_process(clip_4s: Path, tls_cert: tuple[Path, Path]) -> None:
    server_tls, client_tls = tls_contexts(*tls_cert)
    tags = read_flv_tags(clip_4s)
    media = [t for t in tags if t.type_id in (MessageType.AUDIO, MessageType.VIDEO)][:60]
    frames = [t for t in media if t.payload[1] == 1]

    async def scenario() -> tuple[IngestUnderTest, str, bool]:
        async with IngestUnderTest(idle_timeout=1.0, ssl_context=server_tls) as server:
            client = await RawClient.open(server.port, ssl_context=client_tls)
            try:
                tls_version = client.writer.get_extra_info("ssl_object").version()
                await client.start_publishing(KEY)
                for tag in media:
                    client.send_media(tag.type_id, tag.timestamp, tag.payload)
                await server.wait_for(lambda: len(server.units()) == len(frames), "the frames over TLS")
                assert server.status.online
                await server.wait_for(server.ended, "the idle timeout to end the stream", within=5)
                closed = await client.wait_closed_by_server(2.0)
            finally:
                await client.close()
            return server, tls_version, closed

    server, tls_version, closed = run(scenario())
    assert tls_version in ("TLSv1.2", "TLSv1.3")
    assert_frames_delivered(server, frames)
    assert server.items()[-1] == StreamEnd("no data for 1 s")
    assert closed


def test_a_client_that_never_starts_tls_is_closed_after_the_idle_timeout(tls_cert: tuple[Path, Path]) -> None:
    server_tls, _ = tls_contexts(*tls_cert)

    async def scenario() -> bool:
        async with IngestUnderTest(idle_timeout=1.0, ssl_context=server_tls) as server:
            client = await RawClient.open(server.port)
            try:
                return await client.wait_closed_by_server(3.0)
            finally:
                await client.close()

    assert run(scenario()), "the RTMPS listener kept a silent client open past the idle timeout"


# -- fifty kinds of bad clients beside a live publisher ------------------------------------------

NO_DATA = "no data for 1 s"


def amf0_error(payload: bytes) -> str:
    try:
        amf0.decode_all(payload)
    except ProtocolError as exc:
        return str(exc)
    raise AssertionError("the payload was meant to be malformed AMF0")


def chunk_header(csid: int, type_id: int, length: int, stream_id: int = 0, timestamp: int = 0) -> bytes:
    """A type 0 chunk header (RTMP 1.0 §5.3.1), built by hand to declare lengths we never send."""
    return (
        bytes((csid,))
        + timestamp.to_bytes(3, "big")
        + length.to_bytes(3, "big")
        + bytes((type_id,))
        + stream_id.to_bytes(4, "little")
    )


# Each bad client does its thing on an open connection and returns the reason the server must log
# when it closes the connection (None: any reason, for random bytes).
BadClient = Callable[[RawClient, random.Random], Awaitable[str | None]]


async def garbage(client: RawClient, rng: random.Random) -> str | None:
    version = rng.choice([v for v in range(256) if v != 3])
    client.send_raw(bytes((version,)) + rng.randbytes(rng.randrange(0, 4000)))
    return f"RTMP handshake: unsupported version {version} (expected 3)"


async def rtmpe_handshake(client: RawClient, rng: random.Random) -> str | None:
    client.send_raw(b"\x06" + c0c1()[1:])
    return "RTMP handshake: unsupported version 6 (expected 3)"


async def truncated_c1(client: RawClient, rng: random.Random) -> str | None:
    client.send_raw(c0c1()[: rng.randrange(1, HANDSHAKE_SIZE)])
    return NO_DATA


async def truncated_c2(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake(c2_length=rng.randrange(0, HANDSHAKE_SIZE))
    return NO_DATA


async def garbage_after_handshake(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    client.send_raw(rng.randbytes(rng.randrange(1, 3000)))
    return None


async def delta_header_first(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    client.send_raw(bytes((0x40 | 7,)) + bytes(7))
    return "RTMP chunk: chunk stream 7 starts with a format 1 header but has no previous message"


async def chunk_size_zero(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    client.send_message(MessageType.SET_CHUNK_SIZE, u32(0), csid=2)
    return "RTMP chunk: set chunk size 0 is out of range (1..16777215)"


async def chunk_size_above_16_mib(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    client.send_message(MessageType.SET_CHUNK_SIZE, u32(16 * 1024 * 1024), csid=2)
    return "RTMP chunk: set chunk size 16777216 is out of range (1..16777215)"


async def message_above_the_limit(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    client.send_raw(chunk_header(3, MessageType.COMMAND_AMF0, MAX_MESSAGE_SIZE + 1) + bytes(128))
    return f"RTMP chunk: message length {MAX_MESSAGE_SIZE + 1} exceeds the limit of {MAX_MESSAGE_SIZE} bytes"


async def too_many_chunk_streams(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    for csid in range(3, 3 + 65):
        client.send_message(MessageType.ACKNOWLEDGEMENT, u32(0), csid=csid)
    return "RTMP chunk: more than 64 chunk streams in use"


async def unknown_message_type(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    client.send_message(42, b"what is this")
    return "RTMP: unknown message type 42"


async def amf_garbage_in_connect(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    payload = amf0.encode_all("connect", 1.0) + rng.choice(
        [b"\x03\x00\x03app\x02\x00\x40li", b"\x42", b"\x03\x00\x03app\x09", b"\x00\x3f\xf0"]
    )
    client.send_message(MessageType.COMMAND_AMF0, payload)
    return amf0_error(payload)


async def media_before_publish(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    await client.connect()
    client.send_media(MessageType.VIDEO, 0, b"\x17\x01\x00\x00\x00")
    return "RTMP: video message before publish"


async def play(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    await client.connect()
    client.send_command("play", None, KEY)
    return "RTMP: play is not supported (this server only accepts publishers)"


async def wrong_application(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    answer, info = await client.connect("other")
    assert (answer, info.get("code")) == ("_error", "NetConnection.Connect.Rejected")
    return "unknown application 'other' (publish to /live/<stream key>)"


async def wrong_key(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    await client.connect()
    assert await client.publish("not-the-key") == "NetStream.Publish.BadName"
    return "invalid stream key"


async def second_publisher(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    await client.connect()
    assert await client.publish(KEY) == "NetStream.Publish.BadName"
    return "stream already running"


async def silent_after_connect(client: RawClient, rng: random.Random) -> str | None:
    await client.handshake()
    await client.connect()
    return NO_DATA


async def silent(client: RawClient, rng: random.Random) -> str | None:
    return NO_DATA


BAD_CLIENTS: list[BadClient] = [
    garbage,
    rtmpe_handshake,
    truncated_c1,
    truncated_c2,
    garbage_after_handshake,
    delta_header_first,
    chunk_size_zero,
    chunk_size_above_16_mib,
    message_above_the_limit,
    too_many_chunk_streams,
    unknown_message_type,
    amf_garbage_in_connect,
    media_before_publish,
    play,
    wrong_application,
    wrong_key,
    second_publisher,
    silent_after_connect,
    silent,
]


@dataclass(frozen=True, slots=True)
class BadOutcome:
    kind: str
    peer: str
    expected_reason: str | None
    closed: bool


async def bad_connection(port: int, bad: BadClient, rng: random.Random) -> BadOutcome:
    client = await RawClient.open(port)
    try:
        try:
            expected = await bad(client, rng)
        except ServerClosed as exc:
            raise AssertionError(f"{bad.__name__}: {exc}") from None
        closed = await client.wait_closed_by_server(5.0)
    finally:
        await client.close()
    return BadOutcome(bad.__name__, client.peer_name, expected, closed)


WAVES = 4
PER_WAVE = 50


def test_bad_connections_beside_a_live_publisher(clip_15s: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    rng = random.Random(20240601)
    this_process = psutil.Process()

    async def scenario() -> tuple[IngestUnderTest, list[BadOutcome], list[bool], int, int, float, float]:
        outcomes: list[BadOutcome] = []
        online: list[bool] = []
        server = IngestUnderTest(idle_timeout=1.0)
        async with server, process(*ffmpeg_publish(clip_15s, server.url(), readrate=1)) as ffmpeg:
            await server.wait_for(lambda: len(server.units(Track.VIDEO)) >= 15, "half a second of video")
            broadcaster = server.status.broadcaster
            rss_before = this_process.memory_info().rss
            loop = asyncio.get_running_loop()
            started = loop.time()
            for wave in range(WAVES):
                kinds = [BAD_CLIENTS[(wave * PER_WAVE + i) % len(BAD_CLIENTS)] for i in range(PER_WAVE)]
                async with asyncio.TaskGroup() as group:
                    tasks = [
                        group.create_task(bad_connection(server.port, kind, random.Random(rng.random())))
                        for kind in kinds
                    ]
                outcomes += [task.result() for task in tasks]
                online.append(server.status.online and server.status.broadcaster is broadcaster)
            finished = loop.time()
            rss_after = this_process.memory_info().rss
            assert ffmpeg.returncode is None, "the live publisher must still be publishing"
            ffmpeg.send_signal(signal.SIGTERM)
            await server.wait_for(server.ended, "the live publisher to stop")
        return server, outcomes, online, rss_before, rss_after, started, finished

    server, outcomes, online, rss_before, rss_after, started, finished = run(scenario())

    assert len(outcomes) == WAVES * PER_WAVE
    not_closed = [o.kind for o in outcomes if not o.closed]
    assert not not_closed, f"the server left these connections open: {not_closed}"
    for outcome in outcomes:
        lines = peer_lines(caplog, outcome.peer)
        assert len(lines) == 1, f"{outcome.kind}: expected one log line, got {lines}"
        prefix = f"RTMP {outcome.peer}: closing connection: "
        assert lines[0].startswith(prefix), f"{outcome.kind}: {lines[0]}"
        if outcome.expected_reason is not None:
            assert lines[0] == prefix + outcome.expected_reason, outcome.kind

    # The live publisher went on as if nothing happened: online throughout, one stream, no unit lost.
    assert online == [True] * WAVES
    items = server.items()
    assert sum(isinstance(item, StreamStart) for item in items) == 1
    assert [item for item in items if isinstance(item, StreamEnd)] == [items[-1]]
    assert server.consumer.dropped_units == 0
    video = server.units(Track.VIDEO)
    steps = {b.dts - a.dts for a, b in itertools.pairwise(video)}
    assert steps <= {33 * MS_TO_TICKS, 34 * MS_TO_TICKS}, f"video frames missing: dts steps {sorted(steps)}"
    during = [r.at for r in server.received if isinstance(r.item, AccessUnit) and started <= r.at <= finished]
    gaps = [b - a for a, b in zip([started, *during], [*during, finished], strict=False)]
    assert max(gaps) < 1.0, f"the live publisher's units stalled for {max(gaps):.2f} s"

    grown = (rss_after - rss_before) / 1e6
    assert grown < 50, f"RSS grew by {grown:.1f} MB over {WAVES * PER_WAVE} bad connections"
