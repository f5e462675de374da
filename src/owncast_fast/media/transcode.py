"""The transcoder: decode the source once, scale and encode each variant, all off the event loop.

    hub consumer (loop) --inbox--> decode thread --per-variant queue--> encoder thread --> loop
                                     (PyAV decode,                      (scale, PyAV encode,
                                      keyframe plan,                     Annex B -> AVCC)
                                      frame-rate pick,
                                      AAC re-encode)

Threads and bounds:

- The loop task only moves hub items into the decode thread's inbox (microseconds). When the
  inbox holds more than `INBOX_SECONDS` of video the decoder is not keeping up: video is
  dropped up to the next keyframe (so what is decoded stays decodable) and counted.
- Every variant has its own encoder thread and one `CodecContext` (FFmpeg's codec calls release
  the GIL, so encoders really run in parallel and the loop stays responsive). Its frame queue
  holds at most `QUEUE_FRAMES` frames; a frame that finds it full is dropped and counted, so an
  encoder that cannot keep up with real time loses frames -- visible in stream health -- and
  never grows memory or latency.
- Encoded units go back to the loop with `call_soon_threadsafe`, to the variant's segmenter.

Keyframes are decided once, in the decode thread, and applied to every variant: a keyframe at
the source's keyframe once a segment's length has passed (so transcoded variants cut exactly
where the passthrough variant cuts), or every segment length when the source's GOP is longer
than two segments. Decoded frames otherwise carry no picture type, so the encoders add none.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, cast

from owncast_fast.media.annexb import annexb_to_avcc, avcc_record_from_extradata
from owncast_fast.media.codecs import codecs_string
from owncast_fast.media.hub import (
    Consumer,
    HubItem,
    MediaHub,
    StreamEnd,
    StreamStart,
    TrackConfig,
    stop_reading,
)
from owncast_fast.media.ladder import VariantSpec, hardware_options, x264_options
from owncast_fast.media.units import TIMESCALE, AccessUnit, Track

log = logging.getLogger(__name__)

QUEUE_FRAMES = 8  # per encoder: ~1/4 s at 30 fps before frames are dropped
QUEUE_AUDIO = 400  # audio units waiting behind frames (never dropped before this)
INBOX_SECONDS = 2.0  # source video waiting for the decoder before GOPs are dropped
WINDOW_SECONDS = 60.0  # stream health looks at the last minute
SPEED_SAMPLES = 120

_PICTURE_NONE, _PICTURE_I = 0, 1  # AVPictureType: let the encoder choose / an I (IDR) frame
_DECODERS = {"avc1": "h264", "hvc1": "hevc", "av01": "av1", "vp09": "vp9"}
TIME_BASE = Fraction(1, TIMESCALE)

Deliver = Callable[[list[HubItem]], None]


# --- statistics ------------------------------------------------------------------------------


@dataclass(slots=True)
class EncoderStats:
    """What stream health shows for one variant. Written by its threads, read on the loop."""

    index: int
    name: str
    framerate: int
    encoded_frames: int = 0
    dropped_frames: int = 0
    cpu_seconds: float = 0.0
    bytes_out: int = 0
    errors: int = 0
    _busy: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=SPEED_SAMPLES))
    _latency: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=SPEED_SAMPLES))
    _drops: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=10_000))

    def dropped(self, now: float) -> None:
        self.dropped_frames += 1
        self._drops.append(now)

    def encoded(self, busy: float, cpu: float, latency: float) -> None:
        self.encoded_frames += 1
        self.cpu_seconds += cpu
        self._busy.append(busy)
        self._latency.append(latency)

    def dropped_recently(self, now: float, window: float = WINDOW_SECONDS) -> int:
        return sum(1 for t in tuple(self._drops) if now - t <= window)

    @property
    def speed(self) -> float | None:
        """Media seconds encoded per second spent encoding (x real time), recent frames."""
        busy = tuple(self._busy)
        total = sum(busy)
        if not busy or total <= 0:
            return None
        return (len(busy) / self.framerate) / total

    def latency_ms(self, quantile: float) -> float | None:
        samples = sorted(self._latency)
        if not samples:
            return None
        return samples[min(len(samples) - 1, int(len(samples) * quantile))] * 1000.0

    def to_json(self, now: float) -> dict[str, Any]:
        speed = self.speed
        p50 = self.latency_ms(0.5)
        p99 = self.latency_ms(0.99)
        return {
            "index": self.index,
            "name": self.name,
            "passthrough": False,
            "speed": round(speed, 2) if speed is not None else None,
            "encodedFrames": self.encoded_frames,
            "droppedFrames": self.dropped_frames,
            "droppedFramesLastMinute": self.dropped_recently(now),
            "cpuSeconds": round(self.cpu_seconds, 3),
            "latencyMsP50": round(p50, 1) if p50 is not None else None,
            "latencyMsP99": round(p99, 1) if p99 is not None else None,
            "errors": self.errors,
        }


# --- one variant's encoder -------------------------------------------------------------------

_FRAME, _UNIT, _START, _END, _STOP = range(5)


class VariantEncoder:
    """Scales and encodes one variant's frames in its own thread."""

    def __init__(
        self,
        spec: VariantSpec,
        *,
        codec: str,
        segment_seconds: float,
        deliver: Deliver,
        queue_frames: int = QUEUE_FRAMES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.codec = codec
        self.segment_seconds = segment_seconds
        self.stats = EncoderStats(spec.index, spec.name, spec.framerate)
        self.queue_frames = queue_frames
        self._deliver = deliver
        self._clock = clock
        self._queue: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        # Queue depths as pairs of single-writer counters (the offering thread counts what went
        # in, the encoder thread what came out): `+=` from two threads on one attribute can lose
        # updates, and a depth that drifts up would drop every frame from then on.
        self._frames_in = self._frames_out = 0
        self._audio_in = self._audio_out = 0
        self._force_next = True
        self._context: Any = None
        self._size: tuple[int, int] | None = None
        self._scaler: Any = None
        self._thread = threading.Thread(target=self._run, name=f"encode-{spec.index}", daemon=True)
        # Frame-rate selection (decode thread only).
        self.step = TIMESCALE / spec.framerate
        self.next_due: float | None = None

    @property
    def frames_queued(self) -> int:
        return self._frames_in - self._frames_out

    # -- decode-thread side ------------------------------------------------------------------

    def start(self) -> None:
        from av.video.reformatter import VideoReformatter

        self._scaler = VideoReformatter()
        self._thread.start()

    def wants(self, pts: int, force: bool) -> bool:
        """Frame-rate conversion by picking frames: keep a frame when its slot is due."""
        due = self.next_due
        if force or due is None or pts + self.step * 0.25 >= due:
            if due is None or force or pts - due >= self.step:
                self.next_due = pts + self.step
            else:
                self.next_due = due + self.step
            return True
        return False

    def offer_frame(self, frame: Any, force: bool, arrived: float) -> None:
        """Never blocks: a full queue drops the frame (and the next frame becomes a keyframe
        if this one had to be)."""
        if self.frames_queued >= self.queue_frames:
            self.stats.dropped(self._clock())
            if force:
                self._force_next = True
            return
        self._frames_in += 1
        self._queue.put((_FRAME, (frame, force, arrived)))

    def offer_unit(self, item: AccessUnit | TrackConfig) -> None:
        if isinstance(item, AccessUnit):
            if self._audio_in - self._audio_out >= QUEUE_AUDIO:
                return
            self._audio_in += 1
        self._queue.put((_UNIT, item))

    def stream_start(self) -> None:
        self._queue.put((_START, None))

    def stream_end(self, reason: str) -> None:
        self._queue.put((_END, reason))

    def stop(self) -> None:
        self._queue.put((_STOP, None))

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # -- encoder thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            kind, payload = self._queue.get()
            out: list[HubItem] = []
            try:
                if kind == _FRAME:
                    self._frames_out += 1
                    frame, force, arrived = payload
                    self._encode(frame, force, arrived, out)
                elif kind == _UNIT:
                    if isinstance(payload, AccessUnit):
                        self._audio_out += 1
                    out.append(payload)
                elif kind == _START:
                    self._close_encoder(out)
                    self._force_next = True
                    out.append(StreamStart())
                elif kind == _END:
                    self._close_encoder(out)
                    self._force_next = True
                    out.append(StreamEnd(payload))
                else:
                    self._close_encoder(out)
                    if out:
                        self._deliver(out)
                    return
            except Exception:
                self.stats.errors += 1
                log.exception("variant %d: encoder error; reopening the encoder", self.spec.index)
                self._context = None
                self._size = None
                self._force_next = True
            if out:
                self._deliver(out)

    def _open(self, width: int, height: int, out: list[HubItem]) -> None:
        import av

        from owncast_fast.media.encoders import pixel_format

        spec = self.spec
        context = av.CodecContext.create(self.codec, "w")
        assert isinstance(context, av.VideoCodecContext)
        context.width, context.height = width, height
        context.pix_fmt = pixel_format(self.codec)
        context.time_base = TIME_BASE
        context.framerate = Fraction(spec.framerate)
        context.bit_rate = spec.encoder_kbps * 1000
        context.gop_size = spec.gop_frames(self.segment_seconds) * 2
        context.max_b_frames = 0
        context.flags |= av.codec.context.Flags.global_header
        if self.codec == "libx264":
            context.options = x264_options(spec, self.segment_seconds)
        else:
            context.options = hardware_options(self.codec, spec)
        context.open()
        config = avcc_record_from_extradata(bytes(context.extradata or b""))
        self._context = context
        self._size = (width, height)
        out.append(TrackConfig(Track.VIDEO, "avc1", codecs_string("avc1", config), config, width=width, height=height))

    def _close_encoder(self, out: list[HubItem]) -> None:
        context = self._context
        if context is None:
            return
        self._context = None
        self._size = None
        with contextlib.suppress(Exception):
            self._packets(context.encode(None), out)

    def _encode(self, frame: Any, force: bool, arrived: float, out: list[HubItem]) -> None:
        started = time.perf_counter()
        cpu_started = time.thread_time()
        spec = self.spec
        size = spec.output_size(frame.width, frame.height)
        if self._context is None or size != self._size:
            self._close_encoder(out)
            self._open(size[0], size[1], out)
            force = True
        image = frame
        fmt = self._context.pix_fmt
        if (frame.width, frame.height) != size or frame.format.name != fmt:
            # Our own scaler: a frame's built-in one is shared by every thread that holds the
            # frame, and two threads in one SwsContext crash.
            image = self._scaler.reformat(frame, size[0], size[1], fmt, interpolation="BILINEAR")
        if force or self._force_next:
            self._force_next = False
            image.pict_type = _PICTURE_I
        image.pts = frame.pts
        image.time_base = TIME_BASE
        self._packets(self._context.encode(image), out)
        self.stats.encoded(time.perf_counter() - started, time.thread_time() - cpu_started, started - arrived)

    def _packets(self, packets: Sequence[Any], out: list[HubItem]) -> None:
        for packet in packets:
            data = annexb_to_avcc(bytes(packet))
            self.stats.bytes_out += len(data)
            dts = packet.dts if packet.dts is not None else packet.pts
            out.append(AccessUnit(Track.VIDEO, int(dts), int(packet.pts), bool(packet.is_keyframe), data))


# --- audio re-encoding -----------------------------------------------------------------------


class AudioEncoder:
    """AAC at one bitrate from the decoded source audio (shared by variants asking for it)."""

    def __init__(self, kbps: int, sample_rate: int, layout: str) -> None:
        import av

        context = av.CodecContext.create("aac", "w")
        assert isinstance(context, av.AudioCodecContext)
        context.sample_rate = sample_rate
        context.layout = layout
        context.format = "fltp"
        context.bit_rate = kbps * 1000
        context.time_base = Fraction(1, sample_rate)
        context.flags |= av.codec.context.Flags.global_header
        context.open()
        self.context = context
        self.sample_rate = sample_rate
        self.layout = layout
        self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
        self.fifo = av.AudioFifo()
        config = bytes(context.extradata or b"")
        self.config = TrackConfig(
            Track.AUDIO,
            "mp4a",
            "mp4a.40.2",
            config,
            sample_rate=sample_rate,
            channels=context.layout.nb_channels,
        )
        self._next_pts: int | None = None

    def encode(self, frame: Any) -> list[AccessUnit]:
        units: list[AccessUnit] = []
        for resampled in self.resampler.resample(frame):
            if self._next_pts is None and resampled.pts is not None:
                self._next_pts = resampled.pts
            resampled.pts = None
            self.fifo.write(resampled)
        size = self.context.frame_size or 1024
        while self.fifo.samples >= size:
            chunk = self.fifo.read(size)
            if chunk is None:
                break
            chunk.pts = self._next_pts or 0
            chunk.time_base = Fraction(1, self.sample_rate)
            self._next_pts = (self._next_pts or 0) + size
            for packet in self.context.encode(chunk):
                pts = int(packet.pts or 0) * TIMESCALE // self.sample_rate
                if pts < 0:
                    continue  # the encoder's priming packet before a stream that starts at 0
                units.append(AccessUnit(Track.AUDIO, pts, pts, True, bytes(packet)))
        return units


# --- the decode stage and the whole ladder ---------------------------------------------------


@dataclass(slots=True)
class TranscoderStats:
    decoded_frames: int = 0
    dropped_source_frames: int = 0
    decode_errors: int = 0


class Transcoder:
    """Decodes the hub's source once and feeds one `VariantEncoder` per transcoded variant.

    `sinks[index]` runs on the event loop with the variant's units, track configurations and
    stream boundaries, in order.
    """

    def __init__(
        self,
        hub: MediaHub,
        specs: Sequence[VariantSpec],
        sinks: Mapping[int, Callable[[HubItem], None]],
        *,
        codec: str = "libx264",
        segment_seconds: float = 3.0,
        queue_frames: int = QUEUE_FRAMES,
    ) -> None:
        self.hub = hub
        self.specs = list(specs)
        self.segment_ticks = round(segment_seconds * TIMESCALE)
        self.stats = TranscoderStats()
        self._sinks = sinks
        self._loop = asyncio.get_running_loop()
        self.encoders = [
            VariantEncoder(
                spec,
                codec=codec,
                segment_seconds=segment_seconds,
                deliver=self._deliver_for(spec.index),
                queue_frames=queue_frames,
            )
            for spec in self.specs
        ]
        self.consumer: Consumer = hub.attach("transcoder")
        self._inbox: queue.SimpleQueue[tuple[HubItem | None, float]] = queue.SimpleQueue()
        self._inbox_in = 0  # video units queued by the loop thread ...
        self._inbox_out = 0  # ... and taken by the decode thread (single writer each)
        # Source video units the decoder may fall behind by: INBOX_SECONDS at up to 60 fps.
        self._inbox_limit = int(INBOX_SECONDS * max([60, *(spec.framerate for spec in self.specs)]))
        self._dropping = False
        self._decoder: Any = None
        self._audio_decoder: Any = None
        self._audio_config: TrackConfig | None = None
        self._audio_encoders: dict[int, AudioEncoder] = {}
        self._last_forced: int | None = None
        self._last_source_key: int | None = None
        self._source_gop: int | None = None
        self._thread = threading.Thread(target=self._decode_loop, name="decode", daemon=True)
        self._task: asyncio.Task[None] | None = None

    def _deliver_for(self, index: int) -> Deliver:
        sink = self._sinks[index]
        loop = self._loop

        def on_loop(items: list[HubItem]) -> None:
            for item in items:
                sink(item)

        def deliver(items: list[HubItem]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed while shutting down
                loop.call_soon_threadsafe(on_loop, items)

        return deliver

    def start(self) -> None:
        for encoder in self.encoders:
            encoder.start()
        self._thread.start()
        self._task = self._loop.create_task(self._pump(), name="transcoder-pump")

    async def close(self) -> None:
        await stop_reading(self.hub, self.consumer, self._task)
        self._inbox.put((None, 0.0))
        await asyncio.to_thread(self._join)

    def _join(self) -> None:
        self._thread.join(5.0)
        for encoder in self.encoders:
            encoder.stop()
        for encoder in self.encoders:
            encoder.join(5.0)

    def health_json(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [encoder.stats.to_json(now) for encoder in self.encoders]

    def lagging(self) -> list[EncoderStats]:
        """Variants that dropped frames in the last minute (they cannot keep up)."""
        now = time.monotonic()
        return [e.stats for e in self.encoders if e.stats.dropped_recently(now) > 0]

    # -- loop side ---------------------------------------------------------------------------

    async def _pump(self) -> None:
        consumer = self.consumer
        while True:
            item = await consumer.get()
            now = time.perf_counter()
            if isinstance(item, AccessUnit) and item.track is Track.VIDEO:
                if self._dropping and not item.keyframe:
                    self.stats.dropped_source_frames += 1
                    continue
                if self._inbox_in - self._inbox_out >= self._inbox_limit:
                    self._dropping = True
                    self.stats.dropped_source_frames += 1
                    continue
                self._dropping = False
                self._inbox_in += 1
            self._inbox.put((item, now))

    # -- decode thread -----------------------------------------------------------------------

    def _decode_loop(self) -> None:
        while True:
            item, arrived = self._inbox.get()
            if item is None:
                return
            try:
                self._handle(item, arrived)
            except Exception:
                self.stats.decode_errors += 1
                log.exception("transcoder: could not process a %s", type(item).__name__)

    def _handle(self, item: HubItem, arrived: float) -> None:
        if isinstance(item, AccessUnit):
            if item.track is Track.VIDEO:
                self._inbox_out += 1
                self._video(item, arrived)
            else:
                self._audio(item)
        elif isinstance(item, TrackConfig):
            if item.track is Track.VIDEO:
                self._open_decoder(item)
            else:
                self._audio_track(item)
        elif isinstance(item, StreamStart):
            self._last_forced = self._last_source_key = self._source_gop = None
            for encoder in self.encoders:
                encoder.next_due = None
                encoder.stream_start()
        elif isinstance(item, StreamEnd):
            self._flush_decoder()
            for encoder in self.encoders:
                encoder.stream_end(item.reason)

    def _open_decoder(self, config: TrackConfig) -> None:
        import av

        name = _DECODERS.get(config.codec)
        if name is None:
            log.error("transcoder: cannot decode %s video", config.codec)
            self._decoder = None
            return
        decoder = av.CodecContext.create(name, "r")
        decoder.extradata = config.config
        decoder.thread_type = "SLICE"  # frame threads would hold frames back (latency)
        decoder.open()
        self._decoder = decoder

    def _flush_decoder(self) -> None:
        decoder = self._decoder
        if decoder is None:
            return
        with contextlib.suppress(Exception):
            for frame in decoder.decode(None):
                self._frame(frame, time.perf_counter())
        self._decoder = None

    def _video(self, unit: AccessUnit, arrived: float) -> None:
        import av

        decoder = self._decoder
        if decoder is None:
            return
        packet = av.Packet(cast(bytes, unit.data))  # any buffer; PyAV's type hints say bytes
        packet.pts = unit.pts
        packet.dts = unit.dts
        packet.time_base = TIME_BASE
        if unit.keyframe:
            self._source_keyframe(unit.pts)
        try:
            frames = decoder.decode(packet)
        except av.error.FFmpegError as exc:
            self.stats.decode_errors += 1
            log.debug("transcoder: undecodable video unit at %d: %s", unit.pts, exc)
            return
        for frame in frames:
            self._frame(frame, arrived)

    def _source_keyframe(self, pts: int) -> None:
        if self._last_source_key is not None and pts > self._last_source_key:
            self._source_gop = pts - self._last_source_key
        self._last_source_key = pts

    def _force_keyframe(self, pts: int, source_key: bool) -> bool:
        last = self._last_forced
        if last is None or pts < last:
            return True
        elapsed = pts - last
        follow_source = self._source_gop is not None and self._source_gop <= 2 * self.segment_ticks
        if follow_source:
            # Cut where the passthrough variant cuts: its segmenter ends a segment at the first
            # source keyframe a segment's length after the last cut. Three segments without one
            # means the source changed its mind; force one then.
            return (source_key and elapsed >= self.segment_ticks) or elapsed >= 3 * self.segment_ticks
        return elapsed >= self.segment_ticks

    def _frame(self, frame: Any, arrived: float) -> None:
        self.stats.decoded_frames += 1
        pts = frame.pts
        if pts is None:
            return
        force = self._force_keyframe(pts, bool(frame.key_frame))
        if force:
            self._last_forced = pts
            frame.pict_type = _PICTURE_I
        else:
            frame.pict_type = _PICTURE_NONE  # never carry the source's picture types into the encoders
        for encoder in self.encoders:
            if encoder.wants(pts, force):
                encoder.offer_frame(frame, force, arrived)

    def _audio_track(self, config: TrackConfig) -> None:
        self._audio_config = config
        self._audio_decoder = None
        self._audio_encoders.clear()
        needs_encode = any(not spec.audio_passthrough for spec in self.specs)
        if needs_encode and config.codec == "mp4a":
            import av

            decoder = av.CodecContext.create("aac", "r")
            decoder.extradata = config.config
            decoder.open()
            self._audio_decoder = decoder
            # Open the AAC encoders now, so their configurations reach the segmenters before
            # the first video unit (a configuration arriving later would cut a discontinuity).
            layout = "mono" if config.channels == 1 else "stereo"
            for kbps in {spec.audio_kbps for spec in self.specs if not spec.audio_passthrough}:
                self._open_audio_encoder(kbps, config.sample_rate or 48000, layout)
        for encoder in self.encoders:
            if encoder.spec.audio_passthrough or self._audio_decoder is None:
                encoder.offer_unit(config)

    def _audio(self, unit: AccessUnit) -> None:
        passthrough = [e for e in self.encoders if e.spec.audio_passthrough or self._audio_decoder is None]
        for encoder in passthrough:
            encoder.offer_unit(unit)
        decoder = self._audio_decoder
        if decoder is None or len(passthrough) == len(self.encoders):
            return
        import av

        rate = self._audio_config.sample_rate if self._audio_config is not None else 0
        packet = av.Packet(cast(bytes, unit.data))  # any buffer; PyAV's type hints say bytes
        packet.pts = packet.dts = unit.pts * (rate or 48000) // TIMESCALE
        try:
            frames = decoder.decode(packet)
        except av.error.FFmpegError as exc:
            self.stats.decode_errors += 1
            log.debug("transcoder: undecodable audio unit: %s", exc)
            return
        encoded = [e for e in self.encoders if e not in passthrough]
        for frame in frames:
            # One AAC encoder per distinct bitrate, its units shared by the variants asking for it.
            units: dict[int, list[AccessUnit]] = {}
            for kbps in {e.spec.audio_kbps for e in encoded}:
                audio = self._audio_encoder(kbps, frame)
                units[kbps] = audio.encode(frame) if audio is not None else []
            for encoder in encoded:
                for out in units[encoder.spec.audio_kbps]:
                    encoder.offer_unit(out)

    def _audio_encoder(self, kbps: int, frame: Any) -> AudioEncoder | None:
        audio = self._audio_encoders.get(kbps)
        if audio is None or audio.sample_rate != frame.sample_rate or audio.layout != frame.layout.name:
            audio = self._open_audio_encoder(kbps, frame.sample_rate, frame.layout.name)
        return audio

    def _open_audio_encoder(self, kbps: int, sample_rate: int, layout: str) -> AudioEncoder | None:
        try:
            audio = AudioEncoder(kbps, sample_rate, layout)
        except Exception:
            log.exception("transcoder: cannot open the AAC encoder")
            return None
        self._audio_encoders[kbps] = audio
        for encoder in self.encoders:
            if not encoder.spec.audio_passthrough and encoder.spec.audio_kbps == kbps:
                encoder.offer_unit(audio.config)
        return audio
