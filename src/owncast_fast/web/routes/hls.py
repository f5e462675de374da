"""HLS serving: /hls/stream.m3u8, /hls/{variant}/stream.m3u8 and the files they list.

The multivariant playlist is a sync handler: Robyn runs it on its worker threads and it reads
bytes the pipelines replace whole. Media playlists and media files are async because LL-HLS
clients ask for what does not exist yet: a blocking playlist reload (`_HLS_msn`/`_HLS_part`)
or the hinted next part parks on the variant's change event, on the event loop, until the
segmenter delivers; no polling and no thread per waiting client.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from robyn import Request, Response, SubRouter

from owncast_fast.hls.live import LiveVariant, PlaylistRequestError
from owncast_fast.hls.storage import content_type
from owncast_fast.lifecycle import ServicesHolder
from owncast_fast.metrics.prometheus import HLS_ACTIVITY

# Owncast's playlist headers (reference/owncast-behavior.md §4.6).
PLAYLIST_HEADERS = {
    "Content-Type": "application/vnd.apple.mpegurl",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Access-Control-Allow-Origin": "*",
}
# Segment, part and init names carry the stream session id and never change meaning, so they
# may be cached for as long as Owncast caches its segments.
MEDIA_CACHE = "public, max-age=31557600, immutable"
PART_NAME = re.compile(r"^(?P<session>[0-9a-f]+)-(?P<msn>\d+)\.(?P<part>\d+)\.m4s$")
# 6.2.5.2: "If the request cannot be satisfied within three times the Target Duration ... the
# server SHOULD respond with 503"; a hinted part gets the same bound.
BLOCK_TARGETS = 3


def _text(status: int, message: str) -> Response:
    return Response(status, {"Content-Type": "text/plain", "Access-Control-Allow-Origin": "*"}, message.encode())


def _playlist(body: bytes | None) -> Response:
    if body is None:
        return _text(404, "Not Found")
    return Response(200, PLAYLIST_HEADERS, body)


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name, None)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise PlaylistRequestError(f"{name}={raw!r} is not a non-negative integer")
    return int(raw)


async def _wait(live: LiveVariant, ready: Callable[[], bool], seconds: float) -> bool:
    """Park until `ready()` holds after an update, or `seconds` pass."""
    if ready():
        return True
    HLS_ACTIVITY.parked += 1
    try:
        # One timeout scope for the whole wait, and no task per waiter (asyncio.wait_for would
        # wrap each await in one): thousands of waiters wake with one step each.
        async with asyncio.timeout(seconds):
            while not ready() and not live.ended:
                await live.wait_for_change()
    except TimeoutError:
        pass
    finally:
        HLS_ACTIVITY.parked -= 1
    return ready()


async def media_playlist_response(live: LiveVariant, request: Request) -> Response:
    try:
        msn = _int_param(request, "_HLS_msn")
        part = _int_param(request, "_HLS_part")
        skip = request.query_params.get("_HLS_skip", None)
        # 6.2.5.2: "_HLS_part ... MUST NOT be present unless _HLS_msn is also present".
        if part is not None and msn is None:
            raise PlaylistRequestError("_HLS_part requires _HLS_msn")
        if skip is not None and skip not in ("YES", "v2"):
            raise PlaylistRequestError(f"_HLS_skip={skip!r} is not YES or v2")
        if msn is not None and not live.can_block_reload:
            raise PlaylistRequestError("this playlist does not support blocking reload")
        if part is not None and not live.low_latency:
            raise PlaylistRequestError("this playlist has no partial segments")
        if live.ended:
            # 6.2.5.2: once the Playlist contains EXT-X-ENDLIST the server ignores the delivery
            # directives: the client gets the final playlist at once.
            msn = part = None
        elif msn is not None:
            live.check_request(msn, part)
    except PlaylistRequestError as exc:
        return _text(400, str(exc))
    limit = BLOCK_TARGETS * live.target_duration
    # A stream that ends while a client waits answers with the final playlist (EXT-X-ENDLIST):
    # that is what tells the client to stop asking.
    if msn is not None and not await _wait(live, lambda: live.has(msn, part), limit) and not live.ended:
        return _text(503, f"segment {msn} part {part} did not become available in time")
    body = live.delta_playlist() if skip is not None and live.low_latency else live.playlist
    return _playlist(body)


def router(holder: ServicesHolder) -> SubRouter:
    hls = SubRouter(prefix="/hls")

    # No `request` parameter: Robyn then skips building the request object for this hot path.
    @hls.get("/stream.m3u8")
    def multivariant() -> Response:
        return _playlist(holder.current.hls.multivariant())

    @hls.get("/:variant/stream.m3u8")
    async def media_playlist(request: Request) -> Response:
        output = holder.current.hls
        live = output.variant(request.path_params["variant"])
        if live is None or not output.serve_media:  # S3 mode: players read these from the bucket
            return _text(404, "Not Found")
        # Owncast marks the requester an active viewer at every playlist fetch (§4.6).
        holder.current.metrics.viewer_seen(
            request.ip_addr, request.headers.get("x-forwarded-for"), request.headers.get("user-agent") or ""
        )
        HLS_ACTIVITY.playlists_served += 1
        return await media_playlist_response(live, request)

    @hls.get("/:variant/:name")
    async def media_file(request: Request) -> Response:
        output = holder.current.hls
        variant = request.path_params["variant"]
        name = request.path_params["name"]
        path = f"{variant}/{name}"
        if not output.serve_media:  # S3 mode: only the multivariant playlist is served here
            return _text(404, "Not Found")
        body = output.store.get(path)
        if body is None:
            live = output.variant(variant)
            # 6.2.6: a client may request the hinted part before it exists; answer it as soon
            # as the part is complete instead of with a 404 it would have to retry.
            if live is not None and live.part_target is not None and _is_upcoming_part(live, name):
                await _wait(live, lambda: output.store.get(path) is not None, BLOCK_TARGETS * live.part_target)
                body = output.store.get(path)
        if body is None:
            return _text(404, "Not Found")
        headers = {"Content-Type": content_type(name), "Cache-Control": MEDIA_CACHE, "Access-Control-Allow-Origin": "*"}
        HLS_ACTIVITY.media_served += 1
        return Response(200, headers, body)

    return hls


def _is_upcoming_part(live: LiveVariant, name: str) -> bool:
    """The hinted part, or one a little after it (a client may run ahead by a part or two)."""
    match = PART_NAME.match(name)
    expected = live.expected_part()
    if match is None or expected is None or match["session"] != live.session:
        return False
    hinted = PART_NAME.match(expected)
    assert hinted is not None
    wanted = (int(match["msn"]), int(match["part"]))
    next_part = (int(hinted["msn"]), int(hinted["part"]))
    return next_part <= wanted and wanted[0] <= next_part[0] + 1
