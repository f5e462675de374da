"""Public configuration: /api/config, /api/yp, /api/socialplatforms, /api/video/variants,
/robots.txt, /customjavascript, /logo and /logo/external.

Everything here is read from the live settings (`SettingsService.current`), so an admin change
shows on the next request. `SettingsService` replaces its `Settings` object on every change, which
makes the object itself the cache key: /api/config is rendered (markdown included) once per change
and served as prebuilt bytes from Robyn's worker threads in between.
"""

from __future__ import annotations

import math
import struct
import threading
import zlib
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import orjson
from markdown_it import MarkdownIt
from robyn import Response, SubRouter

from owncast_fast import OWNCAST_API_VERSION, __version__
from owncast_fast.config.runtime import Settings
from owncast_fast.config.validation import IMAGE_TYPES
from owncast_fast.lifecycle import Services, ServicesHolder
from owncast_fast.media.ladder import variant_name
from owncast_fast.timefmt import rfc3339
from owncast_fast.web.responses import CORS_ANY, JSON

# Owncast's GetReleaseString: "Owncast v<version>-<platform> (<commit>)"; the web UI shows it.
RELEASE_STRING = f"Owncast v{OWNCAST_API_VERSION}-owncast-fast ({__version__})"
MAX_SOCKET_PAYLOAD_SIZE = 2048  # Owncast's config.MaxSocketPayloadSize, the chat message cap
# Owncast's middleware.DisableCache.
NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", "Expires": "Thu, 1 Jan 1970 00:00:00 GMT"}

# Owncast's models.GetAllSocialHandles: key -> {platform, icon}. Go encodes a map with sorted keys.
SOCIAL_PLATFORMS: dict[str, dict[str, str]] = {
    key: {"platform": name, "icon": f"/img/platformlogos/{icon}"}
    for key, name, icon in sorted(
        (
            ("bandcamp", "Bandcamp", "bandcamp.svg"),
            ("discord", "Discord", "discord.svg"),
            ("facebook", "Facebook", "facebook.svg"),
            ("github", "GitHub", "github.svg"),
            ("gitlab", "GitLab", "gitlab.svg"),
            ("instagram", "Instagram", "instagram.svg"),
            ("keyoxide", "Keyoxide", "keyoxide.png"),
            ("kofi", "Ko-Fi", "ko-fi.svg"),
            ("linkedin", "LinkedIn", "linkedin.svg"),
            ("mastodon", "Mastodon", "mastodon.svg"),
            ("patreon", "Patreon", "patreon.svg"),
            ("paypal", "Paypal", "paypal.svg"),
            ("snapchat", "Snapchat", "snapchat.svg"),
            ("soundcloud", "Soundcloud", "soundcloud.svg"),
            ("spotify", "Spotify", "spotify.svg"),
            ("tiktok", "TikTok", "tiktok.svg"),
            ("twitch", "Twitch", "twitch.svg"),
            ("twitter", "Twitter", "twitter.svg"),
            ("youtube", "YouTube", "youtube.svg"),
            ("odysee", "Odysee", "odysee.svg"),
            ("lbry", "LBRY", "lbry.svg"),
            ("liberapay", "LiberaPay", "liberapay.svg"),
            ("donate", "Donations", "donate.svg"),
            ("follow", "Follow", "follow.svg"),
        )
    )
}
_SOCIAL_PLATFORMS_BODY = orjson.dumps(SOCIAL_PLATFORMS)


# --- markdown --------------------------------------------------------------------------------

# Owncast renders with goldmark, raw HTML allowed (the admin writes it), http(s) links linkified;
# the page content also gets GitHub's extensions (tables, strikethrough).
_simple_markdown = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable("linkify")
_page_markdown = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(["linkify", "table", "strikethrough"])
# goldmark's strikethrough is <del>; markdown-it's is <s>.
_page_markdown.add_render_rule("s_open", lambda *_: "<del>")
_page_markdown.add_render_rule("s_close", lambda *_: "</del>")


def render_page_content(markdown: str) -> str:
    """Owncast's RenderPageContentMarkdown: trimmed in, trimmed out."""
    return _page_markdown.render(markdown.strip()).strip()


def render_simple_markdown(markdown: str) -> str:
    """Owncast's RenderSimpleMarkdown (the offline message): trimmed in, HTML out untrimmed."""
    return _simple_markdown.render(markdown.strip())


# --- variants (reference/owncast-behavior.md §4.4; names and fallbacks in media/ladder.py) ---


def variants_body(variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{name, index}] sorted passthrough first, then by video bitrate, highest first.

    `index` is the variant's position in the configured list (its HLS folder). Owncast's Go sort
    compares the unsorted list's entries at the sorted slice's positions, which misorders some
    lists of three or more; this is the order it intends (§4.4), stable for ties.
    """
    indexed = list(enumerate(variants))
    indexed.sort(key=lambda pair: (not pair[1].get("videoPassthrough"), -int(pair[1].get("videoBitrate") or 0)))
    return [{"name": variant_name(variant), "index": index} for index, variant in indexed]


# --- /api/config, /api/yp --------------------------------------------------------------------


def social_handles_with_icons(handles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A known platform's icon replaces the handle's own, as Owncast's GetWebConfig does."""
    result = []
    for handle in handles:
        shown = {k: v for k, v in handle.items() if k in ("platform", "url", "icon") and v}
        platform = SOCIAL_PLATFORMS.get(str(handle.get("platform", "")))
        if platform is not None:
            shown["icon"] = platform["icon"]
        result.append(shown)
    return result


def web_config_body(settings: Settings) -> dict[str, Any]:
    """Owncast's WebConfig, field for field; empty `streamTitle`/`socketHostOverride` are left out
    (Go's omitempty), as are the federation account and follower count while federation is off."""
    body: dict[str, Any] = {
        "appearanceVariables": settings.custom_color_variable_values,
        "name": settings.server_name,
        "customStyles": settings.custom_styles,
    }
    if settings.stream_title:
        body["streamTitle"] = settings.stream_title
    body["offlineMessage"] = render_simple_markdown(settings.custom_offline_message)
    body["logo"] = "/logo"
    body["version"] = RELEASE_STRING
    if settings.websocket_host_override:
        body["socketHostOverride"] = settings.websocket_host_override
    federation: dict[str, Any] = {"enabled": False}
    if settings.federation_enabled:
        host = urlsplit(settings.server_url).netloc
        # followerCount is omitted while it is 0 (omitempty); followers arrive with federation.
        federation = {"account": f"{settings.federation_username}@{host}", "enabled": True}
    body.update(
        {
            "extraPageContent": render_page_content(settings.extra_page_content),
            "summary": settings.server_summary,
            "tags": settings.server_metadata_tags,
            "socialHandles": social_handles_with_icons(settings.social_handles),
            "externalActions": settings.external_actions,
            # Owncast turns browser push off when it has no VAPID public key; the keys are made by
            # the notifications feature, so until it lands there is no key and push is off.
            "notifications": {"browser": {"enabled": False}},
            "federation": federation,
            "maxSocketPayloadSize": MAX_SOCKET_PAYLOAD_SIZE,
            "hideViewerCount": settings.hide_viewer_count,
            "chatDisabled": settings.chat_disabled,
            "nsfw": settings.nsfw,
            # IndieAuth needs a public URL to be redirected back to.
            "authentication": {"indieAuthEnabled": settings.server_url != ""},
        }
    )
    return body


def yp_body(services: Services) -> dict[str, Any]:
    """Owncast's ypDetailsResponse, in its field order."""
    settings = services.settings.current
    status = services.status
    body: dict[str, Any] = {
        "lastConnectTime": rfc3339(status.last_connect_time),
        "name": settings.server_name,
        "description": settings.server_summary,
    }
    if settings.stream_title:
        body["streamTitle"] = settings.stream_title
    body.update(
        {
            "logo": "/logo",
            "tags": settings.server_metadata_tags,
            "social": settings.social_handles,
            "viewerCount": status.viewer_count,
            "overallMaxViewerCount": settings.peak_viewers_overall,
            "sessionMaxViewerCount": settings.peak_viewers_session,
            "nsfw": settings.nsfw,
            "online": status.online,
        }
    )
    return body


K = TypeVar("K")


class PerSettings(Generic[K]):
    """A value derived from one `Settings` object, rebuilt when the settings object changes.

    Reads take no lock: the entry is one tuple, replaced whole, so a reader on any thread sees a
    matching pair. Builds are serialised, because the markdown renderer's linkifier keeps state
    between calls and Robyn runs these handlers on several threads.
    """

    def __init__(self, build: Callable[[Settings], K]) -> None:
        self._build = build
        self._entry: tuple[Settings, K] | None = None
        self._building = threading.Lock()

    def get(self, settings: Settings) -> K:
        entry = self._entry
        if entry is not None and entry[0] is settings:
            return entry[1]
        with self._building:
            entry = self._entry
            if entry is None or entry[0] is not settings:
                entry = (settings, self._build(settings))
                self._entry = entry
        return entry[1]


# --- logos -----------------------------------------------------------------------------------

DEFAULT_LOGO = files("owncast_fast.web.assets").joinpath("logo.svg").read_bytes()
# Owncast's GetCacheDurationSecondsForPath: a week for .jpg/.png/.gif/.svg, two hours otherwise
# (its JPEG logos are named logo.jpeg, so they get the two hours).
_WEEK = 60 * 60 * 24 * 7
_LOGO_CACHE_SECONDS = {".jpg": _WEEK, ".png": _WEEK, ".gif": _WEEK, ".svg": _WEEK}
_DEFAULT_CACHE_SECONDS = 60 * 60 * 2


def _png(width: int, height: int, rgba_rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA, no interlace
    raw = b"".join(b"\x00" + row for row in rgba_rows)  # filter type 0 on every row
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


@cache
def default_png_logo() -> bytes:
    """The default logo drawn as a 256x256 PNG, for sites that do not take SVG (/logo/external).

    Same picture as assets/logo.svg without its broadcast arcs: a rounded purple square with a
    white play triangle. Drawn here rather than committed as a binary; built once, on first use,
    a row at a time from the shapes' spans.
    """
    size, inset, radius = 256, 8, 56
    start, end = (0x7A, 0x5C, 0xF5), (0x2F, 0x1A, 0x8F)
    # The diagonal gradient's colour depends on x + y only: one RGBA pixel per value of x + y.
    gradient = b"".join(
        bytes(round(a + (b - a) * t / (2 * size)) for a, b in zip(start, end, strict=True)) + b"\xff"
        for t in range(2 * size)
    )
    low, high = inset + radius, size - inset - radius
    rows = []
    for y in range(size):
        cy = y + 0.5
        row = bytearray(size * 4)  # transparent
        dy = max(low - cy, cy - high, 0.0)
        if dy <= radius and inset <= cy <= size - inset:
            half = math.sqrt(radius**2 - dy**2)
            left, right = round(low - half), round(high + half)
            row[left * 4 : right * 4] = gradient[(left + y) * 4 : (right + y) * 4]
        # The triangle: a vertical edge at x=100 from y=78 to 178, its apex at (184, 128).
        if 78 <= cy <= 178:
            tip = round(100 + 84 * (1 - abs(cy - 128) / 50))
            row[100 * 4 : tip * 4] = b"\xff" * ((tip - 100) * 4)
        rows.append(bytes(row))
    return _png(size, size, rows)


class LogoFiles:
    """Uploaded logos read from the data directory, cached until the file changes."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[int, int, bytes]] = {}

    def read(self, path: Path) -> bytes | None:
        try:
            info = path.stat()
        except OSError:
            return None
        cached = self._cache.get(path)
        if cached is not None and cached[:2] == (info.st_mtime_ns, info.st_size):
            return cached[2]
        try:
            data = path.read_bytes()
        except OSError:
            return None
        # Keyed by path: the data directory holds at most one logo per image type, plus logo.png.
        self._cache[path] = (info.st_mtime_ns, info.st_size, data)
        return data


def logo_file(services: Services) -> Path | None:
    """Where the configured logo lives: a bare file name in the data directory, as Owncast stores it."""
    name = services.settings.current.logo_path
    if not name or Path(name).name != name or name.startswith("."):
        return None
    return services.options.data_path / name


def image_response(data: bytes, content_type: str, cache_seconds: int) -> Response:
    headers = {"Content-Type": content_type, "Cache-Control": f"public, max-age={cache_seconds}"}
    if content_type == "image/svg+xml":
        # Uploaded SVGs are checked for scripts; this also stops any that slipped through.
        headers["Content-Security-Policy"] = "script-src 'none'"
    return Response(200, headers, data)


def router(holder: ServicesHolder) -> SubRouter:
    web = SubRouter(prefix="")
    web_config = PerSettings(lambda settings: orjson.dumps(web_config_body(settings)))
    variants = PerSettings(lambda settings: orjson.dumps(variants_body(settings.video_stream_output_variants)))
    logos = LogoFiles()
    config_headers = {"Content-Type": JSON, **CORS_ANY, **NO_CACHE}
    json_headers = {"Content-Type": JSON}

    # Sync handlers without a request parameter: Robyn runs them on its worker threads and skips
    # building the request object; each reads one immutable Settings object.
    @web.get("/api/config")
    def get_web_config() -> Response:
        return Response(200, config_headers, web_config.get(holder.current.settings.current))

    @web.get("/api/yp")
    def get_yp() -> Response:
        services = holder.current
        if not services.settings.current.directory_enabled:
            return Response(404, {}, b"")  # Owncast answers an empty 404 while the directory is off
        return Response(200, json_headers, orjson.dumps(yp_body(services)))

    @web.get("/api/socialplatforms")
    def get_social_platforms() -> Response:
        return Response(200, {"Content-Type": JSON, **CORS_ANY}, _SOCIAL_PLATFORMS_BODY)

    @web.get("/api/video/variants")
    def get_variants() -> Response:
        return Response(200, json_headers, variants.get(holder.current.settings.current))

    @web.get("/robots.txt")
    def get_robots() -> Response:
        lines = ["User-agent: *", "Disallow: /admin", "Disallow: /api"]
        if holder.current.settings.current.disable_search_indexing:
            lines.append("Disallow: /")
        return Response(200, {"Content-Type": "text/plain"}, "\n".join(lines).encode())

    @web.get("/customjavascript")
    def get_custom_javascript() -> Response:
        script = holder.current.settings.current.custom_javascript
        return Response(200, {"Content-Type": "text/javascript; charset=utf-8"}, script.encode())

    def configured_logo(services: Services) -> Response | None:
        path = logo_file(services)
        data = logos.read(path) if path is not None else None
        if path is None or data is None:
            return None
        extension = path.suffix.lower()
        # Owncast serves anything it does not recognise as JPEG.
        content_type = IMAGE_TYPES.get(extension, "image/jpeg")
        return image_response(data, content_type, _LOGO_CACHE_SECONDS.get(extension, _DEFAULT_CACHE_SECONDS))

    @web.get("/logo")
    def get_logo() -> Response:
        return configured_logo(holder.current) or image_response(DEFAULT_LOGO, "image/svg+xml", _WEEK)

    @web.get("/logo/external")
    def get_external_logo() -> Response:
        """The logo for sites that cannot show SVG (og:image): an SVG logo is swapped for
        data/logo.png if there is one, else for the default logo drawn as PNG."""
        services = holder.current
        path = logo_file(services)
        if path is not None and path.suffix.lower() != ".svg":
            found = configured_logo(services)
            if found is not None:
                return found
        fallback = logos.read(services.options.data_path / "logo.png")
        return image_response(fallback or default_png_logo(), "image/png", _WEEK)

    return web
