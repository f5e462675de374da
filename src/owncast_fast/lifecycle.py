"""Wiring: build the services from the options, start them, stop them.

Start-up runs in two phases because Robyn owns the event loop the server runs on:

1. `preflight(options)` runs before Robyn, on a short-lived loop: it creates the data
   directory, opens and migrates the store, loads the settings, applies `--admin-password`,
   decides the ports (a flag wins over the stored setting), and checks that both ports can be
   bound. Every problem surfaces here as one `StartupError` line, before anything listens.
2. `start_services(plan)` runs in Robyn's start-up handler, on the server's loop: it reopens
   the store there and starts the RTMP listeners. `stop_services` undoes it on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from owncast_fast.chat.metrics import ChatCollector
from owncast_fast.chat.service import ChatService
from owncast_fast.config.options import Options
from owncast_fast.config.runtime import LATENCY_LEVELS, MAX_LATENCY_LEVEL, Settings, SettingsService
from owncast_fast.events import Event, EventBus, StreamStarted, StreamStopped
from owncast_fast.hls.live import HlsOutput, LiveVariant
from owncast_fast.hls.s3 import S3Config, S3Mirror, multivariant_base
from owncast_fast.hls.storage import DiskMirror, HlsStore, StorageMirror
from owncast_fast.ingest.rtmp.server import RtmpIngest
from owncast_fast.media import encoders
from owncast_fast.media.hub import MediaHub
from owncast_fast.media.ladder import ladder
from owncast_fast.media.pipeline import VariantPipeline
from owncast_fast.media.segmenter import Container, Segmenter
from owncast_fast.media.slate import Slate, make_offline_slate
from owncast_fast.media.stills import StillMaker, stills_directory
from owncast_fast.media.transcode import Transcoder
from owncast_fast.metrics.service import MetricsService
from owncast_fast.security import AdminCredentials, check_password, hash_password
from owncast_fast.status import StreamStatus
from owncast_fast.store import Store, StoreError, open_store
from owncast_fast.timefmt import parse_rfc3339, rfc3339, utcnow

log = logging.getLogger(__name__)

DEFAULT_ADMIN_PASSWORD = "abc123"  # Owncast's default


class StartupError(Exception):
    """Start-up cannot go on; the message is the one line shown to the operator."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What preflight decided: the validated options plus values read from the store."""

    options: Options
    web_port: int
    rtmp_port: int
    stream_key_hint: str  # the key to paste into OBS


@dataclass(slots=True)
class Services:
    options: Options
    store: Store
    settings: SettingsService
    bus: EventBus
    status: StreamStatus
    hub: MediaHub
    ingest: RtmpIngest
    admin: AdminCredentials
    hls: HlsOutput
    metrics: MetricsService
    chat: ChatService
    pipelines: list[VariantPipeline] = field(default_factory=list)
    transcoder: Transcoder | None = None
    stills: StillMaker | None = None
    slate: Slate | None = None  # made at stream start, muxed after the stream's last segment
    pipeline_plan: tuple[object, ...] = ()
    started_at: datetime = field(default_factory=utcnow)
    rtmp_ports: list[int] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a background job whose completion `stop_services` waits for."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def stream_key_check(options: Options, settings: SettingsService) -> Callable[[str], bool]:
    """Constant-time check against the temporary key, or else every stored key (read live)."""

    def key_is_valid(key: str) -> bool:
        if options.stream_key:
            candidates = [options.stream_key]
        else:
            candidates = [str(k.get("key", "")) for k in settings.current.stream_keys]
        matched = False
        for candidate in candidates:
            matched |= bool(candidate) and hmac.compare_digest(key.encode(), candidate.encode())
        return matched

    return key_is_valid


class ServicesHolder:
    """Lets the web routes, built before Robyn starts, reach the services made in its loop."""

    def __init__(self) -> None:
        self._services: Services | None = None

    @property
    def current(self) -> Services:
        if self._services is None:
            raise RuntimeError("services are not started")
        return self._services

    def set(self, services: Services | None) -> None:
        self._services = services


async def _open(options: Options) -> Store:
    target = options.database_target
    try:
        options.data_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"data directory {options.data_dir}: {exc.strerror}") from None
    try:
        return await open_store(target)
    except StoreError as exc:
        raise StartupError(str(exc)) from None


def _ssl_context(options: Options) -> ssl.SSLContext | None:
    if not options.rtmps_port:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(options.tls_cert, options.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"RTMPS certificate {options.tls_cert} / key {options.tls_key}: {exc}") from None
    return context


def _check_bindable(host: str, port: int, what: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise StartupError(f"{what} port {host}:{port}: {reason}") from None


async def preflight(options: Options) -> Plan:
    store = await _open(options)
    try:
        settings = SettingsService(store.config, EventBus())
        await settings.load()
        await _apply_admin_password(settings, options)
        current = settings.current
    finally:
        await store.close()
    web_port = options.web_port if "web_port" in options.explicit else current.http_port_number
    rtmp_port = options.rtmp_port if "rtmp_port" in options.explicit else current.rtmp_port_number
    _ssl_context(options)
    _check_bindable(options.web_ip, web_port, "web")
    _check_bindable(options.rtmp_ip, rtmp_port, "RTMP")
    if options.rtmps_port:
        _check_bindable(options.rtmp_ip, options.rtmps_port, "RTMPS")
    keys = [str(k.get("key", "")) for k in current.stream_keys if k.get("key")]
    hint = options.stream_key or (keys[0] if keys else "")
    return Plan(options, web_port, rtmp_port, hint)


async def _apply_admin_password(settings: SettingsService, options: Options) -> None:
    """`--admin-password` sets the password (as Owncast's flag does); first start stores abc123."""
    stored = settings.current.admin_password_hash
    wanted = options.admin_password
    if wanted:
        if not stored or not check_password(wanted, stored):
            await settings.update(admin_password_hash=await asyncio.to_thread(hash_password, wanted))
    elif not stored:
        hashed = await asyncio.to_thread(hash_password, DEFAULT_ADMIN_PASSWORD)
        await settings.update(admin_password_hash=hashed)


async def start_services(plan: Plan) -> Services:
    options = plan.options
    store = await _open(options)
    bus = EventBus()
    settings = SettingsService(store.config, bus)
    await settings.load()
    status = StreamStatus(last_disconnect_time=parse_rfc3339(settings.current.last_disconnect_time))
    hub = MediaHub()
    ingest = RtmpIngest(
        hub=hub,
        bus=bus,
        status=status,
        key_is_valid=stream_key_check(options, settings),
        stream_title=lambda: settings.current.stream_title,
        max_message_size=options.rtmp_max_message_size,
    )
    services = Services(
        options=options,
        store=store,
        settings=settings,
        bus=bus,
        status=status,
        hub=hub,
        ingest=ingest,
        admin=AdminCredentials(settings.current.admin_password_hash),
        hls=await _hls_output(options, settings.current),
        metrics=MetricsService(
            settings=settings,
            bus=bus,
            status=status,
            time_series=store.time_series,
            data_dir=options.data_path,
            ingest=ingest,
            hub=hub,
        ),
        chat=ChatService(store.chat, settings, bus, status, options.data_path / "emoji", relay=store.chat_relay),
    )
    services.metrics.start()  # first: its log ring should see the start-up warnings
    await services.chat.start()
    services.metrics.prometheus.registry.register(ChatCollector(services.chat, settings))
    await asyncio.to_thread(encoders.supported_video_codecs)  # probe encode once, off the loop
    _start_pipelines(services)
    services.stills = StillMaker(hub, stills_directory(options.data_path))
    services.stills.start()
    services.spawn(_prepare_slate(services))  # ready before the first stream can end
    bus.subscribe(lambda event: _on_event(services, event))
    try:
        services.rtmp_ports.append(await ingest.listen(options.rtmp_ip, plan.rtmp_port))
        context = _ssl_context(options)
        if context is not None:
            services.rtmp_ports.append(await ingest.listen(options.rtmp_ip, options.rtmps_port, context))
    except OSError as exc:
        await ingest.close()
        await services.metrics.stop()
        await services.chat.stop()
        await store.close()
        raise StartupError(f"RTMP listener on {options.rtmp_ip}: {exc.strerror}") from None
    return services


def _on_event(services: Services, event: Event) -> None:
    if isinstance(event, StreamStarted):
        services.spawn(_prepare_slate(services))  # the message or logo may have changed (cached if not)
        settings = services.settings.current
        services.status.output_settings = [dict(v) for v in settings.video_stream_output_variants]
        services.status.latency_level = settings.video_latency_level
        if _pipeline_plan(services) != services.pipeline_plan:
            # Latency level or variants changed since the last stream: they apply from this one.
            services.spawn(_close_pipelines(services.pipelines, services.transcoder))
            services.hls.discard_variants()
            _start_pipelines(services)
    elif isinstance(event, StreamStopped):
        # Owncast keeps the last disconnect time across restarts.
        services.spawn(services.settings.update(last_disconnect_time=rfc3339(event.time) or ""))


async def _prepare_slate(services: Services) -> None:
    """Make (or take from the cache) the offline slate while the stream runs, so that it is ready
    the moment the stream ends: the offline message over the logo, as Owncast's offline clip."""
    from owncast_fast.web.routes.config import default_png_logo, logo_file

    message = services.settings.current.custom_offline_message
    logo_path = logo_file(services)

    def make() -> Slate:
        # Owncast's default logo is an SVG, which the slate cannot draw: its PNG twin then.
        logo: Path | bytes = default_png_logo()
        if logo_path is not None and logo_path.is_file() and logo_path.suffix.lower() != ".svg":
            logo = logo_path
        return make_offline_slate(message, logo)

    try:
        services.slate = await asyncio.to_thread(make)
    except Exception:
        log.exception("could not make the offline slate: playlists will end without it")
        services.slate = None


async def _hls_output(options: Options, settings: Settings) -> HlsOutput:
    mirrors: list[StorageMirror] = []
    if options.hls_disk_copy:
        mirrors.append(DiskMirror(options.data_path / "hls"))
    base_url = ""
    try:
        s3 = S3Config.from_setting(settings.s3_storage_config)
    except ValueError as exc:
        log.error("S3 storage is enabled but its settings are invalid (%s): serving HLS from this server", exc)
        s3 = None
    if s3 is not None:
        segment_seconds, window = LATENCY_LEVELS[min(settings.video_latency_level, MAX_LATENCY_LEVEL)]
        mirror = S3Mirror(s3, segment_duration=float(segment_seconds), window=window)
        await mirror.start()
        mirrors.append(mirror)
        base_url = multivariant_base(s3, settings.video_serving_endpoint)
        log.info("S3 storage: uploading HLS to bucket %s; players fetch it from %s", s3.bucket, base_url)
    elif settings.video_serving_endpoint:
        base_url = settings.video_serving_endpoint.rstrip("/") + "/hls"
    return HlsOutput(HlsStore(mirrors), [], base_url=base_url, serve_media=s3 is None)


def _pipeline_plan(services: Services) -> tuple[object, ...]:
    """The settings the pipelines are built from; a change rebuilds them at the next stream start."""
    settings = services.settings.current
    variants = tuple(
        tuple(sorted((k, str(v)) for k, v in variant.items())) for variant in settings.video_stream_output_variants
    )
    return (min(settings.video_latency_level, MAX_LATENCY_LEVEL), variants, settings.video_codec)


def _start_pipelines(services: Services) -> None:
    """One pipeline per output variant, in the configured order (the index is the HLS folder):
    passthrough variants read the hub, the others are fed by one transcoder."""
    settings = services.settings.current
    services.pipeline_plan = _pipeline_plan(services)
    container = Container(services.options.hls_container)
    segment_seconds, window = LATENCY_LEVELS[min(settings.video_latency_level, MAX_LATENCY_LEVEL)]
    variants = settings.video_stream_output_variants or [{"videoPassthrough": True}]
    specs = ladder(variants)
    pipelines = []
    sinks = {}
    for spec in specs:
        live = LiveVariant(
            spec.index,
            services.hls.store,
            container=container,
            window=window,
            target_duration=float(segment_seconds),
            part_target=services.options.hls_part_target if services.options.ll_hls else None,
            name=spec.name,
        )
        services.hls.add(live)
        segmenter = Segmenter(
            container, target_duration=float(segment_seconds), part_target=services.options.hls_part_target
        )
        pipeline = VariantPipeline(
            services.hub if spec.video_passthrough else None, segmenter, live, slate=lambda: services.slate
        )
        pipeline.start()
        pipelines.append(pipeline)
        if not spec.video_passthrough:
            sinks[spec.index] = pipeline.feed
    transcoded = [spec for spec in specs if not spec.video_passthrough]
    services.transcoder = None
    if transcoded:
        transcoder = Transcoder(
            services.hub,
            transcoded,
            sinks,
            codec=encoders.usable_codec(settings.video_codec),
            segment_seconds=float(segment_seconds),
        )
        transcoder.start()
        services.transcoder = transcoder
    services.pipelines = pipelines


async def _close_pipelines(pipelines: list[VariantPipeline], transcoder: Transcoder | None) -> None:
    if transcoder is not None:
        await transcoder.close()
    for pipeline in pipelines:
        await pipeline.close()


async def stop_services(services: Services) -> None:
    """Close the publisher and listeners, let pending writes finish, close the store."""
    await services.ingest.close()
    if services.stills is not None:
        await services.stills.close()
    await _close_pipelines(services.pipelines, services.transcoder)
    for mirror in services.hls.store.mirrors:
        if isinstance(mirror, S3Mirror):
            await mirror.aclose()
        else:
            mirror.close()
    await services.metrics.stop()  # after ingest: it saves the peaks of a stream that just ended
    await services.chat.stop()  # waits for pending message writes
    if services._tasks:
        await asyncio.wait(tuple(services._tasks), timeout=2.0)
    await services.store.close()
