"""S3 mode: a copy of the live HLS files in an S3-compatible bucket, for a CDN to serve.

Owncast's S3 mode (reference/owncast-behavior.md §4.7): "each segment is uploaded when it is
written, followed by its variant playlist, so the playlist never references a segment that is not
there yet"; keys are `[pathPrefix/]hls/<N>/<file>`; segments are cached for a year, playlists not at
all; failed uploads are retried 4 more times; the bucket keeps the newest `SegmentCount + 20`
segments; a warning says when uploads take longer than 90 % of a segment.

Theory of operation. `S3Mirror.put` runs on the event loop and never waits: it appends to a queue
and returns. A few upload tasks drain the queue; segments and init segments go in the order they
were put, several at a time. A playlist put carries a barrier, the number of the last upload put
before it; it is uploaded once every upload of its variant up to the barrier is finished (stored,
given up after its retries, or dropped), and never while another playlist of that variant is in
flight, so a playlist never lands before what it lists nor after a newer playlist. Of several
playlists of a variant that are ready at once only the newest is uploaded. Playlists go first
when they are ready (players poll them), then segments, then the deletes of segments that fell
out of the bucket's window.

The bucket is plain HLS. Parts are not uploaded: a CDN caches whole segments, and an object store
cannot hold a blocking playlist reload open. So the copy of a playlist that goes to the bucket
loses the low-latency tags (`plain_playlist`), and a playlist that differs from the last one sent
only in those tags (a new part) is not sent again: one playlist upload per segment.

A mirror that falls behind drops the oldest queued *segments* first (the ones players at the live
edge need least; an init segment is needed by every later segment) and counts them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:  # aiobotocore costs ~0.35 s and ~25 MB to import: only S3 mode loads it
    from aiobotocore.session import AioSession


from owncast_fast.hls.storage import FileKind, content_type

log = logging.getLogger(__name__)

# The canned ACLs of the S3 API (x-amz-acl); anything else is a typo the bucket would refuse.
CANNED_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
DEFAULT_ACL = "public-read"
# Region used to sign requests when none is configured: S3-compatible stores accept any.
DEFAULT_REGION = "us-east-1"

MEDIA_CACHE_CONTROL = "max-age=31557600"
PLAYLIST_CACHE_CONTROL = "no-cache, no-store, must-revalidate"
PLAYLIST_CONTENT_TYPE = "application/x-mpegURL"

CLIENT_TIMEOUT = 10.0  # seconds, connect and read, as Owncast's HTTP client
# Owncast retries a failed upload 4 more times; the short pauses let a restarting endpoint return.
RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)
# Owncast keeps the newest SegmentCount + 20 segments in the bucket: a CDN or a slow player may
# still ask for a segment well after it left the playlist.
KEEP_BEYOND_WINDOW = 20
# Segment and init uploads waiting for an upload task: 256 is over 40 s of a five-variant ladder
# at one-second segments; the byte bound keeps a high-bitrate ladder from holding more than
# 128 MiB of copies the serving store has already let go.
QUEUE_LIMIT = 256
QUEUE_BYTES_LIMIT = 128 * 1024 * 1024
# Deletes are small and generated one per stored segment; past this many the bucket is not
# keeping up anyway, and a leftover object only costs storage.
DELETE_QUEUE_LIMIT = 1024
UPLOAD_TASKS = 4
FLUSH_TIMEOUT = 10.0  # seconds `aclose` waits for queued uploads
# Owncast warns when the average upload exceeds 90 % of the segment length; averaged here over
# the last 20 segment uploads and repeated at most once a minute.
SLOW_UPLOAD_RATIO = 0.9
SLOW_UPLOAD_SAMPLES = 20
SLOW_WARNING_INTERVAL = 60.0

# RFC 8216bis tags that only a low-latency server can honour: EXT-X-PART and EXT-X-PRELOAD-HINT
# name parts the bucket does not hold, EXT-X-PART-INF announces them, EXT-X-SERVER-CONTROL offers
# blocking reloads and delta updates (6.2.5) that an object store cannot answer, and
# EXT-X-RENDITION-REPORT exists for those blocking reloads (4.4.5.4).
LOW_LATENCY_TAGS = (
    b"#EXT-X-PART:",
    b"#EXT-X-PART-INF:",
    b"#EXT-X-PRELOAD-HINT:",
    b"#EXT-X-SERVER-CONTROL:",
    b"#EXT-X-RENDITION-REPORT:",
    b"#EXT-X-SKIP:",
)


def plain_playlist(body: bytes) -> bytes:
    """A media playlist without its low-latency tags: what the bucket serves."""
    return b"".join(line for line in body.splitlines(keepends=True) if not line.startswith(LOW_LATENCY_TAGS))


def _text(setting: Mapping[str, Any], key: str) -> str:
    value = setting.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"s3.{key}: expected a string, got {value!r}")
    return value.strip()


def _flag(setting: Mapping[str, Any], key: str) -> bool:
    value = setting.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValueError(f"s3.{key}: expected true or false, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class S3Config:
    """Owncast's `s3_storage_config`, checked. Build it with `from_setting`."""

    endpoint: str  # "https://s3.example.com", no trailing slash
    access_key: str
    secret: str = field(repr=False)
    bucket: str
    region: str = DEFAULT_REGION
    acl: str = DEFAULT_ACL  # "" sends no ACL: the bucket's policy decides
    path_prefix: str = ""  # without leading or trailing slashes
    force_path_style: bool = False

    @property
    def addressing_style(self) -> Literal["path", "auto"]:
        """botocore's `addressing_style`: like Owncast's SDK, virtual-hosted unless forced (or not possible)."""
        return "path" if self.force_path_style else "auto"

    def key(self, path: str) -> str:
        """The object key of an HLS file: `[pathPrefix/]hls/<path>`."""
        return f"{self.path_prefix}/hls/{path}" if self.path_prefix else f"hls/{path}"

    @classmethod
    def from_setting(cls, value: Mapping[str, Any]) -> S3Config | None:
        """None when S3 is disabled; ValueError naming the field when the setting is unusable."""
        if not isinstance(value, Mapping):
            raise ValueError(f"s3: expected an object, got {value!r}")
        if not _flag(value, "enabled"):
            return None
        endpoint = _text(value, "endpoint").rstrip("/")
        if not endpoint:
            raise ValueError("s3.endpoint: required when S3 is enabled")
        parts = urlsplit(endpoint)
        try:
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is not a number, or out of range
            usable = False
        if not usable:
            raise ValueError(f"s3.endpoint: {value['endpoint']!r} is not an http(s) URL")
        for key in ("accessKey", "secret", "bucket"):
            if not _text(value, key):
                raise ValueError(f"s3.{key}: required when S3 is enabled")
        bucket = _text(value, "bucket")
        if "/" in bucket or any(c.isspace() for c in bucket):
            raise ValueError(f"s3.bucket: {bucket!r} is not a bucket name")
        acl = value.get("acl")
        acl = DEFAULT_ACL if acl is None else _text(value, "acl")
        if acl and acl not in CANNED_ACLS:
            raise ValueError(f"s3.acl: {acl!r} is not a canned ACL ({', '.join(CANNED_ACLS)})")
        return cls(
            endpoint=endpoint,
            access_key=_text(value, "accessKey"),
            secret=_text(value, "secret"),
            bucket=bucket,
            region=_text(value, "region") or DEFAULT_REGION,
            acl=acl,
            path_prefix=_text(value, "pathPrefix").strip("/"),
            force_path_style=_flag(value, "forcePathStyle"),
        )


def multivariant_base(config: S3Config, video_serving_endpoint: str) -> str:
    """Where the variant playlists are fetched from in S3 mode, without a trailing slash.

    Owncast's rule: `<video_serving_endpoint, else endpoint + "/" + bucket>[/<pathPrefix>]/hls`; a
    variant URI is then `<base>/<N>/stream.m3u8`. The bucket URL is path-style whatever
    `forcePathStyle` says, as in Owncast.
    """
    base = video_serving_endpoint.strip().rstrip("/") or f"{config.endpoint}/{config.bucket}"
    if config.path_prefix:
        base = f"{base}/{config.path_prefix}"
    return f"{base}/hls"


@dataclass(slots=True, eq=False)
class _Upload:
    path: str
    data: bytes
    kind: FileKind
    # An upload's number; for a playlist, the number of the last upload put before it.
    seq: int


@dataclass(slots=True)
class _Variant:
    # Numbers of this variant's segment and init uploads that are queued or in flight.
    outstanding: set[int] = field(default_factory=set)
    playlists: list[_Upload] = field(default_factory=list)  # waiting, oldest barrier first
    playlist_in_flight: bool = False
    last_playlist: bytes | None = None  # the newest plain playlist accepted
    stored_segments: collections.deque[str] = field(default_factory=collections.deque)


class S3Client(Protocol):
    """The calls the mirror makes on aiobotocore's S3 client (which has no type hints)."""

    async def put_object(self, **params: Any) -> Any: ...
    async def delete_object(self, **params: Any) -> Any: ...


def _variant_of(path: str) -> str:
    return path.rpartition("/")[0]


class S3Mirror:
    """A `StorageMirror` that copies segments, init segments and playlists to a bucket.

    `put` and `delete` must be called on the event loop's thread (directly or through
    `loop.call_soon_threadsafe`); they return at once. Files put before `start()` wait in the
    queue. `delete` does nothing: the bucket keeps its own, longer window (`window + 20`
    segments), so the serving store's deletes do not apply. Owners await `aclose()` at shutdown;
    the Protocol's `close()` only starts it as a task (`closing`) and returns.
    """

    def __init__(
        self,
        config: S3Config,
        *,
        segment_duration: float,
        window: int,
        tasks: int = UPLOAD_TASKS,
        max_queued: int = QUEUE_LIMIT,
        max_queued_bytes: int = QUEUE_BYTES_LIMIT,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        flush_timeout: float = FLUSH_TIMEOUT,
        session: AioSession | None = None,
    ) -> None:
        self.config = config
        self.segment_duration = segment_duration
        self.keep_segments = window + KEEP_BEYOND_WINDOW
        self.max_queued = max_queued
        self.max_queued_bytes = max_queued_bytes
        self.retry_delays = retry_delays
        self.flush_timeout = flush_timeout
        self._task_count = tasks
        self._session = session
        # counters
        self.uploads = 0
        self.bytes_uploaded = 0
        self.upload_seconds = 0.0
        self.failed_uploads = 0
        self.dropped_uploads = 0
        self.retries = 0
        self.deletes = 0
        self.failed_deletes = 0
        self.dropped_deletes = 0

        self._seq = 0
        self._objects: collections.deque[_Upload] = collections.deque()
        self._queued_bytes = 0
        self._deletes: collections.deque[str] = collections.deque()
        self._variants: dict[str, _Variant] = {}
        self._in_flight = 0
        self._segment_times: collections.deque[float] = collections.deque(maxlen=SLOW_UPLOAD_SAMPLES)
        self._slow_warned_at: float | None = None
        self._work = asyncio.Event()  # set when something may have become ready
        self._progress = asyncio.Event()  # set when a job finishes
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.closing: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Segment and init uploads waiting (at most `max_queued`)."""
        return len(self._objects)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    # -- StorageMirror --------------------------------------------------------------------------

    def put(self, path: str, data: bytes, kind: FileKind) -> None:
        if kind is FileKind.PART:
            return
        if self._closed:
            self.dropped_uploads += 1
            return
        variant = self._variants.setdefault(_variant_of(path), _Variant())
        if kind is FileKind.PLAYLIST:
            body = plain_playlist(data)
            if body == variant.last_playlist:
                return  # only low-latency tags changed
            variant.last_playlist = body
            variant.playlists.append(_Upload(path, body, kind, self._seq))
            # Of the playlists already ready only the newest is worth sending: this keeps at
            # most one waiting playlist per queued or in-flight upload of the variant.
            ready = self._ready(variant)
            if ready > 1:
                del variant.playlists[: ready - 1]
        else:
            self._make_room(len(data))
            self._seq += 1
            upload = _Upload(path, data, kind, self._seq)
            self._objects.append(upload)
            self._queued_bytes += len(data)
            variant.outstanding.add(upload.seq)
        self._work.set()

    def delete(self, path: str) -> None:
        """Nothing to do: segments leave the bucket `window + 20` segments later (see class doc)."""

    def close(self) -> None:
        """Start `aclose()` as the task `closing` and return; await `aclose()` where possible."""
        if self._loop is None:
            self._closed = True  # never started: nothing to flush
            return
        self._shutdown()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the client (botocore reads its S3 model from disk once) and start the upload tasks."""
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        config = AioConfig(
            connect_timeout=CLIENT_TIMEOUT,
            read_timeout=CLIENT_TIMEOUT,
            retries={"total_max_attempts": 1},  # the mirror retries, and counts
            s3={"addressing_style": self.config.addressing_style},
            # botocore >= 1.36 adds CRC checksums that many S3-compatible stores reject; S3 does
            # not require them for PutObject.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=self._task_count,
        )
        session = self._session or get_session()
        self._client = await self._stack.enter_async_context(
            session.create_client(
                "s3",
                region_name=self.config.region,
                endpoint_url=self.config.endpoint,
                aws_access_key_id=self.config.access_key,
                aws_secret_access_key=self.config.secret,
                config=config,
            )
        )
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._run(), name=f"s3-upload-{i}") for i in range(self._task_count)]

    async def aclose(self) -> None:
        """Upload what is queued (within `flush_timeout`), then stop the tasks and close the client."""
        if self._loop is None:
            self._closed = True
            return
        await self._shutdown()

    def _shutdown(self) -> asyncio.Task[None]:
        if self.closing is None:
            assert self._loop is not None
            self.closing = self._loop.create_task(self._flush_and_close())
        return self.closing

    async def _flush_and_close(self) -> None:
        self._closed = True
        try:
            async with asyncio.timeout(self.flush_timeout):
                while self._busy():
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            log.warning(
                "S3: %d uploads and %d deletes not done when closing",
                self.queued + sum(len(v.playlists) for v in self._variants.values()) + self._in_flight,
                len(self._deletes),
            )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stack.aclose()

    def _busy(self) -> bool:
        return bool(
            self._objects or self._deletes or self._in_flight or any(v.playlists for v in self._variants.values())
        )

    # -- queue ---------------------------------------------------------------------------------

    def _make_room(self, size: int) -> None:
        while self._objects and (
            len(self._objects) >= self.max_queued or self._queued_bytes + size > self.max_queued_bytes
        ):
            victim = next((u for u in self._objects if u.kind is FileKind.SEGMENT), self._objects[0])
            self._objects.remove(victim)
            self._queued_bytes -= len(victim.data)
            self._variants[_variant_of(victim.path)].outstanding.discard(victim.seq)
            self.dropped_uploads += 1
            if self.dropped_uploads == 1 or self.dropped_uploads % 100 == 0:
                log.warning("S3 uploads are falling behind: %d files not uploaded", self.dropped_uploads)

    def _ready(self, variant: _Variant) -> int:
        """How many of the variant's waiting playlists (oldest first) list only finished uploads."""
        oldest = min(variant.outstanding, default=self._seq + 1)
        ready = 0
        while ready < len(variant.playlists) and variant.playlists[ready].seq < oldest:
            ready += 1
        return ready

    def _next(self) -> _Upload | str | None:
        """The next job: a ready playlist, else a segment or init upload, else a key to delete."""
        for variant in self._variants.values():
            if variant.playlist_in_flight:
                continue
            ready = self._ready(variant)
            if ready:
                newest = variant.playlists[ready - 1]
                del variant.playlists[:ready]
                variant.playlist_in_flight = True
                return newest
        if self._objects:
            upload = self._objects.popleft()
            self._queued_bytes -= len(upload.data)
            return upload
        if self._deletes:
            return self._deletes.popleft()
        return None

    async def _run(self) -> None:
        while True:
            job = self._next()
            if job is None:
                self._work.clear()
                await self._work.wait()
                continue
            self._in_flight += 1
            try:
                if isinstance(job, str):
                    await self._delete(job)
                else:
                    await self._upload(job)
            finally:
                self._in_flight -= 1
                self._progress.set()
                self._work.set()

    # -- requests ------------------------------------------------------------------------------

    async def _attempts(self, request: Callable[[], Awaitable[object]]) -> None:
        """`request()`, retried after each delay in `retry_delays`; the last failure is raised."""
        for delay in self.retry_delays:
            try:
                await request()
                return
            # Any failure (connection, timeout, an error status, a parse error) is worth a retry.
            except Exception as exc:
                log.debug("S3 request failed, retrying in %.2f s: %s", delay, exc)
                self.retries += 1
            await asyncio.sleep(delay)
        await request()

    async def _upload(self, upload: _Upload) -> None:
        assert self._loop is not None and self._client is not None
        client = self._client
        variant = self._variants[_variant_of(upload.path)]
        key = self.config.key(upload.path)
        if upload.kind is FileKind.PLAYLIST:
            headers = {"CacheControl": PLAYLIST_CACHE_CONTROL, "ContentType": PLAYLIST_CONTENT_TYPE}
        else:
            headers = {"CacheControl": MEDIA_CACHE_CONTROL, "ContentType": content_type(upload.path)}
        if self.config.acl:
            headers["ACL"] = self.config.acl
        started = self._loop.time()
        try:
            await self._attempts(
                lambda: client.put_object(Bucket=self.config.bucket, Key=key, Body=upload.data, **headers)
            )
        except Exception as exc:
            self.failed_uploads += 1
            if self.failed_uploads == 1 or self.failed_uploads % 50 == 0:
                log.warning("S3 upload of %s failed (%d failed so far): %s", key, self.failed_uploads, exc)
            return
        else:
            elapsed = self._loop.time() - started
            self.uploads += 1
            self.bytes_uploaded += len(upload.data)
            self.upload_seconds += elapsed
            if upload.kind is FileKind.SEGMENT:
                self._segment_stored(variant, key, elapsed)
        finally:
            if upload.kind is FileKind.PLAYLIST:
                variant.playlist_in_flight = False
            else:
                variant.outstanding.discard(upload.seq)

    def _segment_stored(self, variant: _Variant, key: str, elapsed: float) -> None:
        assert self._loop is not None
        variant.stored_segments.append(key)
        while len(variant.stored_segments) > self.keep_segments:
            if len(self._deletes) >= DELETE_QUEUE_LIMIT:
                self._deletes.popleft()
                self.dropped_deletes += 1
            self._deletes.append(variant.stored_segments.popleft())
        self._segment_times.append(elapsed)
        average = sum(self._segment_times) / len(self._segment_times)
        now = self._loop.time()
        if average > SLOW_UPLOAD_RATIO * self.segment_duration and (
            self._slow_warned_at is None or now - self._slow_warned_at >= SLOW_WARNING_INTERVAL
        ):
            self._slow_warned_at = now
            log.warning(
                "S3 uploads are slow: a segment takes %.2f s on average to upload, over 90%% of the %.2f s "
                "segment length; viewers will stall",
                average,
                self.segment_duration,
            )

    async def _delete(self, key: str) -> None:
        client = self._client
        assert client is not None
        try:
            await self._attempts(lambda: client.delete_object(Bucket=self.config.bucket, Key=key))
        except Exception as exc:
            self.failed_deletes += 1
            log.warning("S3 delete of %s failed: %s", key, exc)
        else:
            self.deletes += 1
