"""The media hub: one publisher, many consumers, and nobody can slow the publisher down.

A consumer whose work happens elsewhere (the transcoder's threads, a recorder) attaches with its
own bounded queue, read by a task. The publisher's `push` never waits: when a consumer's queue is
full the hub drops that consumer's units from there up to the next keyframe -- whole GOPs, so
what the consumer does get always decodes -- and counts what it dropped (shown in stream health).
Track configurations and stream boundaries are never dropped: they are tiny and consumers
cannot make sense of later units without them.

A *tap* is for work that runs on the event loop anyway and takes microseconds per unit (a
passthrough variant's muxing, the stills window): the hub calls it in `push`, with no queue and
no task. On one loop a queue protects nothing -- the consumer's CPU is the loop's either way --
and costs a task wake-up, an event and a deque round trip per unit: 15 % of the server's CPU on
a passthrough stream. A tap attached mid-stream starts like a consumer: the stream start and the
current configs, then units from the next keyframe.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from owncast_fast.media.units import AccessUnit, Track

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrackConfig:
    """Decoder configuration of one track, sent before its first unit and whenever it changes."""

    track: Track
    codec: str  # sample entry FourCC: avc1, hvc1, av01, vp09, mp4a, ...
    codecs: str  # RFC 6381 CODECS value, e.g. avc1.64001f, mp4a.40.2
    config: bytes  # avcC / hvcC / av1C / vpcC record, or AAC AudioSpecificConfig
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    channels: int = 0


@dataclass(frozen=True, slots=True)
class StreamStart:
    """A publisher started; units before the next TrackConfigs belong to no stream."""


@dataclass(frozen=True, slots=True)
class StreamEnd:
    reason: str


HubItem = AccessUnit | TrackConfig | StreamStart | StreamEnd

# Default bounds: 8 s of a 6 Mbit/s stream in bytes, and a unit count that covers 8 s of
# 60 fps video plus 48 kHz AAC. A consumer that falls further behind than that is not
# keeping up and losing GOPs beats growing memory and latency without bound.
DEFAULT_MAX_BYTES = 6_000_000
DEFAULT_MAX_UNITS = 900


def resumes_at(unit: AccessUnit, has_video: bool) -> bool:
    """Where a consumer or tap that skipped units picks up again: a video keyframe (any unit of an
    audio-only stream), so everything it gets decodes."""
    return unit.keyframe and (unit.track is Track.VIDEO or not has_video)


class Consumer:
    """One consumer's queue. Read with `await get()`; the hub fills it with `offer()`."""

    def __init__(self, name: str, max_units: int, max_bytes: int) -> None:
        self.name = name
        self.max_units = max_units
        self.max_bytes = max_bytes
        self.dropped_units = 0
        self.dropped_gops = 0
        self._queue: collections.deque[HubItem] = collections.deque()
        self._bytes = 0
        self._dropping = False
        self._has_video = False
        self._ready = asyncio.Event()
        self.closed = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def offer(self, item: HubItem) -> None:
        if isinstance(item, AccessUnit):
            if self._dropping:
                if not resumes_at(item, self._has_video) or self._full(item):
                    self.dropped_units += 1
                    return
                self._dropping = False
            elif self._full(item):
                self._dropping = True
                self.dropped_gops += 1
                self.dropped_units += 1
                log.warning("consumer %s is not keeping up: dropping until the next keyframe", self.name)
                return
            self._bytes += len(item.data)
        elif isinstance(item, StreamStart):
            self._has_video = False
            self._dropping = False
        elif isinstance(item, TrackConfig) and item.track is Track.VIDEO:
            self._has_video = True
        self._queue.append(item)
        self._ready.set()

    def skip_to_next_keyframe(self) -> None:
        self._dropping = True

    def _full(self, unit: AccessUnit) -> bool:
        return len(self._queue) >= self.max_units or self._bytes + len(unit.data) > self.max_bytes

    def get_nowait(self) -> HubItem | None:
        if not self._queue:
            return None
        item = self._queue.popleft()
        if isinstance(item, AccessUnit):
            self._bytes -= len(item.data)
        return item

    async def get(self) -> HubItem:
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            self._ready.clear()
            await self._ready.wait()


class Tap:
    """A synchronous hub observer (see the module doc); `callback` must not block or raise."""

    __slots__ = ("_has_video", "_waiting", "callback", "name")

    def __init__(self, name: str, callback: Callable[[HubItem], None]) -> None:
        self.name = name
        self.callback = callback
        self._waiting = False  # attached mid-stream: units wait for a keyframe
        self._has_video = False

    def __call__(self, item: HubItem) -> None:
        if type(item) is AccessUnit:  # the hot path: units, dozens a second
            if self._waiting:
                if not resumes_at(item, self._has_video):
                    return
                self._waiting = False
        elif isinstance(item, StreamStart):
            self._has_video = self._waiting = False
        elif isinstance(item, TrackConfig) and item.track is Track.VIDEO:
            self._has_video = True
        self.callback(item)


class MediaHub:
    def __init__(self) -> None:
        self._consumers: list[Consumer] = []
        self._taps: list[Tap] = []
        self._configs: dict[Track, TrackConfig] = {}
        self._start: StreamStart | None = None

    @property
    def consumers(self) -> tuple[Consumer, ...]:
        return tuple(self._consumers)

    @property
    def taps(self) -> tuple[Tap, ...]:
        return tuple(self._taps)

    def attach(self, name: str, *, max_units: int = DEFAULT_MAX_UNITS, max_bytes: int = DEFAULT_MAX_BYTES) -> Consumer:
        """Attach a consumer. Mid-stream, it first gets the stream start and the current configs."""
        consumer = Consumer(name, max_units, max_bytes)
        if self._start is not None:
            consumer.offer(self._start)
            for config in self._configs.values():
                consumer.offer(config)
            # Everything up to the next keyframe would be undecodable: start in dropping mode.
            consumer.skip_to_next_keyframe()
        self._consumers.append(consumer)
        return consumer

    def detach(self, consumer: Consumer) -> None:
        consumer.closed = True
        if consumer in self._consumers:
            self._consumers.remove(consumer)

    def tap(self, name: str, callback: Callable[[HubItem], None]) -> Tap:
        """Call `callback` with every item from now on (mid-stream: the start and configs first)."""
        tap = Tap(name, callback)
        if self._start is not None:
            tap(self._start)
            for config in self._configs.values():
                tap(config)
            tap._waiting = True
        self._taps.append(tap)
        return tap

    def untap(self, tap: Tap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)

    def _fan_out(self, item: HubItem) -> None:
        for consumer in self._consumers:
            consumer.offer(item)
        for tap in self._taps:
            tap(item)

    def start(self) -> None:
        self._configs.clear()
        self._start = StreamStart()
        self._fan_out(self._start)

    def set_config(self, config: TrackConfig) -> None:
        if self._configs.get(config.track) == config:
            return
        self._configs[config.track] = config
        self._fan_out(config)

    def push(self, unit: AccessUnit) -> None:
        self._fan_out(unit)

    def end(self, reason: str) -> None:
        if self._start is None:
            return
        self._start = None
        self._configs.clear()
        self._fan_out(StreamEnd(reason))


async def stop_reading(hub: MediaHub, consumer: Consumer | None, task: asyncio.Task[None] | None) -> None:
    """Detach a consumer and cancel the task that reads it (every consumer's shutdown)."""
    if consumer is not None:
        hub.detach(consumer)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
