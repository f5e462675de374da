"""Per-variant pipelines: hub consumer -> segmenter -> live HLS state.

A passthrough variant takes the source's access units as they are, as a hub tap: muxing is
Cython and costs microseconds per unit, so it runs on the event loop inside the hub's `push`,
with no queue or task of its own (on one loop a queue would protect nothing and cost a task
wake-up per unit). Decoding/encoding (transcoded variants) runs in the transcoder's worker
threads, behind the transcoder's own bounded hub queue, which hand the encoded units back here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from owncast_fast.hls.live import LiveVariant
from owncast_fast.media.hub import HubItem, MediaHub, StreamEnd, Tap, TrackConfig
from owncast_fast.media.segmenter import Segmenter
from owncast_fast.media.slate import Slate, mux_slate
from owncast_fast.media.units import AccessUnit

log = logging.getLogger(__name__)


class VariantPipeline:
    """One variant: its segmenter and live playlist state, fed on the event loop.

    A passthrough variant taps the hub (`hub` given) from `start()`; a transcoded variant is fed
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
        self._clock = clock
        self._tap: Tap | None = None

    def start(self) -> None:
        if self.hub is not None:
            self._tap = self.hub.tap(f"variant-{self.live.index}", self.feed)

    def feed(self, item: HubItem) -> None:
        try:
            if type(item) is AccessUnit:  # the hot path: every frame
                events = self.segmenter.push(item, self._clock())
                if events:
                    self.live.apply(events)
                return
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
        if self.hub is not None and self._tap is not None:
            self.hub.untap(self._tap)
        self._tap = None
