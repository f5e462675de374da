"""The RTMP listener: the only module of ingest that touches sockets.

One `RtmpConnection` (an asyncio BufferedProtocol, fine under uvloop) per TCP connection feeds
its bytes to a sans-I/O `RtmpServerSession` and acts on the events: it checks the application
and stream key, lets one publisher at a time go live, and hands the media to the demuxer and
the hub. Every failure of a peer -- a protocol error, a wrong key, silence -- closes that one
connection with one logged line; nothing a peer sends can stop the server or the publisher.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import cast

from owncast_fast.errors import ProtocolError
from owncast_fast.events import EventBus, StreamStarted, StreamStopped
from owncast_fast.ingest.rtmp.demux import FlvDemuxer
from owncast_fast.ingest.rtmp.session import (
    AudioReceived,
    ConnectRequested,
    MetadataReceived,
    PublishEnded,
    PublishRequested,
    RtmpServerSession,
    SessionEvent,
    VideoReceived,
)
from owncast_fast.media.hub import MediaHub
from owncast_fast.status import Broadcaster, StreamStatus
from owncast_fast.timefmt import utcnow

log = logging.getLogger(__name__)

APPLICATION = "live"  # Owncast accepts exactly rtmp://host/live/<stream key>
IDLE_TIMEOUT = 10.0  # Owncast's read timeout: 10 s without data ends the stream
# One read buffer per connection, reused for every read. uvloop keeps an export of it while
# buffer_updated runs, so it is never resized; 64 KiB matches a socket read's usual yield.
READ_BUFFER_SIZE = 64 * 1024
# Once a publisher is live, the kernel wakes us only when more than a chunk header is waiting
# (SO_RCVLOWAT). ffmpeg writes each message's header (8 bytes; 12 for a type 0 header or with an
# extended timestamp) apart from its payload, so without this a video frame costs two wake-ups,
# the first for the header alone; with it, one. Measured: server CPU for a 6 Mbit/s passthrough
# stream 1.1-1.3 -> 0.74-0.86 % of a core. What stays below the threshold waits for the next
# bytes, which a live encoder sends within a frame; the end of the connection always wakes the
# reader; and a publisher quiet for half the idle timeout gets the threshold lifted until its
# next bytes, so keep-alives smaller than a header are never missed.
PUBLISH_RCVLOWAT = 13


class RtmpIngest:
    """The RTMP listeners and the single live publisher."""

    def __init__(
        self,
        *,
        hub: MediaHub,
        bus: EventBus,
        status: StreamStatus,
        key_is_valid: Callable[[str], bool],
        stream_title: Callable[[], str],
        max_message_size: int = 8 * 1024 * 1024,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.hub = hub
        self.bus = bus
        self.status = status
        self.key_is_valid = key_is_valid
        self.stream_title = stream_title
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self.publisher: RtmpConnection | None = None
        self.connections: set[RtmpConnection] = set()
        self._servers: list[asyncio.AbstractServer] = []

    async def listen(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        """Start a listener; returns the bound port (useful with port 0 in tests)."""
        loop = asyncio.get_running_loop()
        # A TLS client must finish its handshake within the idle timeout too: the connection's
        # own idle timer only starts once TLS is up.
        handshake_timeout = self.idle_timeout if ssl_context is not None else None
        server = await loop.create_server(
            lambda: RtmpConnection(self),
            host,
            port,
            ssl=ssl_context,
            ssl_handshake_timeout=handshake_timeout,
            reuse_address=True,
        )
        self._servers.append(server)
        bound: int = server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for connection in tuple(self.connections):
            connection.close("server shutting down", abort=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def disconnect_publisher(self) -> bool:
        publisher = self.publisher
        if publisher is None:
            return False
        publisher.close("disconnected by the admin", abort=True)
        return True

    def broadcaster(self) -> Broadcaster | None:
        """The broadcaster with up-to-date measured rates (call on the event-loop thread)."""
        publisher = self.publisher
        current = self.status.broadcaster
        if publisher is None or current is None:
            return None
        return Broadcaster(current.remote_addr, current.time, publisher.demuxer.details())

    # -- publisher lifecycle (called by connections) ---------------------------------------------

    def begin_publish(self, connection: RtmpConnection) -> None:
        now = utcnow()
        self.publisher = connection
        self.status.broadcaster = Broadcaster(connection.remote_addr, now)
        self.status.last_connect_time = now
        self.status.last_disconnect_time = None
        self.hub.start()
        log.info("RTMP %s: stream started", connection.peer)
        self.bus.publish(StreamStarted(now, connection.remote_addr, self.stream_title()))

    def end_publish(self, connection: RtmpConnection, reason: str) -> None:
        if self.publisher is not connection:
            return
        now = utcnow()
        self.publisher = None
        self.status.broadcaster = None
        self.status.last_disconnect_time = now
        self.hub.end(reason)
        log.info("RTMP %s: stream stopped (%s)", connection.peer, reason)
        self.bus.publish(StreamStopped(now, reason, self.stream_title()))


class RtmpConnection(asyncio.BufferedProtocol):
    def __init__(self, ingest: RtmpIngest) -> None:
        self.ingest = ingest
        self.session = RtmpServerSession(max_message_size=ingest.max_message_size)
        self.demuxer = FlvDemuxer(ingest.hub)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.remote_addr = ""
        self.closed = False
        self._buffer = bytearray(READ_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._loop = asyncio.get_running_loop()
        self._last_data = self._loop.time()
        self._idle_timer: asyncio.TimerHandle | None = None
        # The SO_RCVLOWAT we set: None (reads are not coalesced), PUBLISH_RCVLOWAT, or 1 while a
        # live publisher is quiet (see PUBLISH_RCVLOWAT).
        self._rcvlowat: int | None = None

    # -- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        if peername:
            self.remote_addr = str(peername[0])
            self.peer = f"{peername[0]}:{peername[1]}"
        self.ingest.connections.add(self)
        self._arm_idle_timer()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self.closed:
            return
        self._last_data = self._loop.time()
        if self._rcvlowat == 1:
            # The quiet publisher spoke again: raise the threshold (and the half-timeout check) again.
            self._set_rcvlowat(PUBLISH_RCVLOWAT)
        try:
            events = self.session.receive_data(self._view[:nbytes])
        except ProtocolError as exc:
            # Deliver what arrived intact before the bad bytes, then close.
            self._handle_events(exc.partial)  # type: ignore[arg-type]
            self.close(str(exc))
            return
        if self._handle_events(events):
            self._flush()

    def _handle_events(self, events: Sequence[SessionEvent]) -> bool:
        """Act on session events in order; False once the connection has been closed."""
        try:
            for event in events:
                self._on_event(event)
                if self.closed:
                    return False
        except ProtocolError as exc:
            self.close(str(exc))
            return False
        except Exception as exc:  # a bug must cost one connection, never the server
            log.exception("RTMP %s: internal error", self.peer)
            self.close(f"internal error: {exc!r}")
            return False
        return True

    def eof_received(self) -> bool | None:
        self._end_publish("publisher closed the connection")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.ingest.connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._end_publish("connection lost" if exc else "publisher closed the connection")
        self.closed = True

    # -- session events ------------------------------------------------------------------------

    def _on_event(self, event: SessionEvent) -> None:
        if isinstance(event, VideoReceived):
            self.demuxer.video(event.timestamp, event.payload)
        elif isinstance(event, AudioReceived):
            self.demuxer.audio(event.timestamp, event.payload)
        elif isinstance(event, ConnectRequested):
            if event.app != APPLICATION:
                self._refuse(f"unknown application {event.app!r} (publish to /{APPLICATION}/<stream key>)")
            else:
                self.session.accept_connect()
        elif isinstance(event, PublishRequested):
            ingest = self.ingest
            if not ingest.key_is_valid(event.stream_key):
                self._refuse("invalid stream key")
            elif ingest.publisher is not None:
                self._refuse("stream already running")
            else:
                self.session.accept_publish()
                ingest.begin_publish(self)
                self._set_rcvlowat(PUBLISH_RCVLOWAT)
                self._arm_idle_timer()
        elif isinstance(event, MetadataReceived):
            self.demuxer.metadata(event.metadata)
        elif isinstance(event, PublishEnded):
            self._end_publish(event.reason)

    def _set_rcvlowat(self, nbytes: int) -> None:
        """Set the socket's wake-up threshold; where it cannot be set, reads are not coalesced."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        self._rcvlowat = None
        if sock is None:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, nbytes)
        except OSError as exc:  # only costs the saving
            log.debug("RTMP %s: SO_RCVLOWAT not set: %s", self.peer, exc)
            return
        self._rcvlowat = nbytes

    def _refuse(self, reason: str) -> None:
        self.session.reject(reason)
        self._flush()
        self.close(reason)

    def _end_publish(self, reason: str) -> None:
        self.ingest.end_publish(self, reason)

    # -- closing -------------------------------------------------------------------------------

    def _check_idle(self) -> None:
        timeout = self.ingest.idle_timeout
        idle = self._loop.time() - self._last_data
        if idle >= timeout:
            self.close(f"no data for {timeout:g} s", abort=True)
            return
        if self._rcvlowat == PUBLISH_RCVLOWAT and idle >= timeout / 2:
            # Quiet for half the timeout: whatever is waiting below the threshold (a keep-alive
            # smaller than a chunk header) must wake us before the timeout would end the stream.
            self._set_rcvlowat(1)
        self._arm_idle_timer()

    def _arm_idle_timer(self) -> None:
        """Check again when the peer will have been quiet for the timeout, or for half of it while
        reads are coalesced (see PUBLISH_RCVLOWAT)."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        timeout = self.ingest.idle_timeout
        due = timeout / 2 if self._rcvlowat == PUBLISH_RCVLOWAT else timeout
        delay = max(due - (self._loop.time() - self._last_data), 0.0)
        self._idle_timer = self._loop.call_later(delay, self._check_idle)

    def close(self, reason: str, *, abort: bool = False) -> None:
        """Close with one logged reason; `abort` drops unsent bytes (the peer is not listening)."""
        if self.closed:
            return
        self.closed = True
        log.warning("RTMP %s: closing connection: %s", self.peer, reason)
        self._end_publish(reason)
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def _flush(self) -> None:
        out = self.session.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)
