"""Per-variant pipelines: hub consumer -> segmenter -> live HLS state.

A passthrough variant takes the source's access units as they are. Each variant is one asyncio
task reading its own bounded hub queue, so a variant that falls behind loses whole GOPs (counted
by the hub) and never slows the publisher or the other variants. Muxing is Cython and costs
microseconds per unit, so it runs on the event loop; decoding/encoding (transcoded variants)
runs in the transcoder's worker threads, which hand the encoded units back here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from owncast_fast.hls.live import LiveVariant
from owncast_fast.media.hub import Consumer, HubItem, MediaHub, StreamEnd, TrackConfig, stop_reading
from owncast_fast.media.segmenter import Segmenter
from owncast_fast.media.slate import Slate, mux_slate

log = logging.getLogger(__name__)


class VariantPipeline:
    """One variant: its segmenter and live playlist state, fed on the event loop.

    A passthrough variant reads its own hub consumer (`hub` given); a transcoded variant is fed
    by the transcoder's encoder thread through `feed`, via `call_soon_threadsafe`.
    """

    def __init__(
        self,
        hub: MediaHub | None,
        segmenter: Segmenter,
        live: LiveVariant,
        *,
        clock: Callable[[], float] = time.time,
        slate: Callable[[], Slate | None] = lambda: None,
    ) -> None:
        self.hub = hub
        self._slate = slate
        self.segmenter = segmenter
        self.live = live
        self.consumer: Consumer | None = hub.attach(f"variant-{live.index}") if hub is not None else None
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.consumer is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"variant-{self.live.index}")

    async def _run(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        while True:
            self.feed(await consumer.get())

    def feed(self, item: HubItem) -> None:
        try:
            if isinstance(item, TrackConfig):
                self.live.set_track(item)
            now = self._clock()
            self.live.apply(self.segmenter.push(item, now))
            if isinstance(item, StreamEnd):
                # Owncast's offline behaviour: the playlist goes on into a short offline clip
                # (after a discontinuity) and ends; a returning publisher resumes after another.
                slate = self._slate()
                if slate is not None:
                    self.live.apply(mux_slate(self.segmenter, slate, now))
                self.live.end_stream()
        except Exception:
            # A unit the muxer cannot take costs that unit, never the pipeline.
            log.exception("variant %d: dropping a unit the segmenter could not take", self.live.index)

    async def close(self) -> None:
        if self.hub is not None:
            await stop_reading(self.hub, self.consumer, self._task)
        self._task = None
