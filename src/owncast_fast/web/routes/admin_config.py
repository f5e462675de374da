"""Admin configuration: GET /api/admin/serverconfig and every POST /api/admin/config/* setter.

Each setter takes Owncast's body `{"value": ...}`, validates the value completely
(`config/validation.py`), saves it with one `SettingsService.update` (one store transaction, then
a `SettingChanged` event on the bus), and answers Owncast's BaseAPIResponse with Owncast's
success message. A refused value answers 400 `{"message": "<field>: <problem>", "success": false}`
and nothing is saved. Authentication is Owncast's: admin Basic auth, and OPTIONS answered 204
before it is checked.

When a change takes effect:

- at once: everything /api/config, /api/status, /api/yp, /robots.txt, /customjavascript and the
  logo read (they read the live settings), the chat switches (read per message), the admin
  password (the old one stops working with the response), and every `SettingChanged` subscriber;
- at the next publish: stream keys (checked when a publisher connects; one already live stays);
- at the next start of the server: web and RTMP ports, the web listen address, S3 storage and the
  video serving endpoint (the HLS output is built at start-up), the latency level, the output
  variants and the codec (the pipelines are built at start-up; Owncast applies these when the next
  stream starts, which is where they belong once pipelines are rebuilt per stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from robyn import Request, Response, SubRouter

from owncast_fast.config import validation
from owncast_fast.lifecycle import Services, ServicesHolder
from owncast_fast.media.encoders import supported_video_codecs
from owncast_fast.media.ladder import variant_audio_passthrough, variant_framerate, variant_name
from owncast_fast.security import hash_password
from owncast_fast.web.auth import admin_only
from owncast_fast.web.responses import api_response, json_response, preflight, read_json
from owncast_fast.web.routes.config import NO_CACHE

# Robyn reads a request body whole before the handler runs; a setter parses at most this much.
# Every value a validator accepts fits; a 2 MiB logo is about 2.7 MiB of base64.
MAX_BODY = 1024 * 1024
MAX_LOGO_BODY = 3 * 1024 * 1024


class Refused(Exception):
    """The request body cannot be used; `response` is the BaseAPIResponse to answer with."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


def posted_value(request: Request, field: str, limit: int = MAX_BODY) -> object:
    """The `value` of Owncast's `{"value": ...}` body (size, JSON and object checks: `read_json`)."""
    body = read_json(request, limit)
    if isinstance(body, Response):
        raise Refused(body)
    if "value" not in body:
        raise Refused(api_response(f'{field}: expected a JSON object like {{"value": ...}}', False))
    return body["value"]


@dataclass(frozen=True, slots=True)
class Setter:
    """POST /api/admin/config/<path>: `validate` the posted value, store it as `setting`."""

    path: str
    field: str  # how messages name the value
    setting: str  # the Settings field
    validate: Callable[[object], Any]
    message: str  # Owncast's success message


SETTERS: tuple[Setter, ...] = (
    Setter("/streamkeys", "streamKeys", "stream_keys", validation.stream_keys, "changed"),
    Setter("/pagecontent", "extraPageContent", "extra_page_content", validation.page_content, "changed"),
    Setter("/streamtitle", "streamTitle", "stream_title", validation.stream_title, "changed"),
    Setter("/name", "name", "server_name", validation.server_name, "changed"),
    Setter("/serversummary", "summary", "server_summary", validation.server_summary, "changed"),
    Setter("/offlinemessage", "offlineMessage", "custom_offline_message", validation.offline_message, "changed"),
    Setter("/welcomemessage", "welcomeMessage", "server_welcome_message", validation.welcome_message, "changed"),
    Setter(
        "/chat/disable",
        "chatDisabled",
        "chat_disabled",
        validation.switch("chatDisabled"),
        "chat disabled status updated",
    ),
    Setter(
        "/chat/joinmessagesenabled",
        "chatJoinMessagesEnabled",
        "chat_join_messages_enabled",
        validation.switch("chatJoinMessagesEnabled"),
        "chat join message status updated",
    ),
    Setter(
        "/chat/establishedusermode",
        "chatEstablishedUserMode",
        "chat_established_users_only_mode",
        validation.switch("chatEstablishedUserMode"),
        "chat established users only mode updated",
    ),
    Setter(
        "/chat/forbiddenusernames",
        "forbiddenUsernames",
        "blocked_usernames",
        validation.forbidden_usernames,
        "forbidden username list updated",
    ),
    Setter(
        "/chat/suggestedusernames",
        "suggestedUsernames",
        "suggested_usernames",
        validation.suggested_usernames,
        "suggested username list updated",
    ),
    Setter(
        "/chat/spamprotectionenabled",
        "chatSpamProtectionEnabled",
        "chat_spam_protection_enabled",
        validation.switch("chatSpamProtectionEnabled"),
        "chat spam protection changed",
    ),
    Setter(
        "/chat/slurfilterenabled",
        "chatSlurFilterEnabled",
        "chat_slur_filter_enabled",
        validation.switch("chatSlurFilterEnabled"),
        "chat message slur filter changed",
    ),
    Setter(
        "/appearance",
        "appearanceVariables",
        "custom_color_variable_values",
        validation.appearance_variables,
        "custom appearance variables updated",
    ),
    Setter("/tags", "tags", "server_metadata_tags", validation.tags, "changed"),
    Setter("/ffmpegpath", "ffmpegPath", "ffmpeg_path", validation.ffmpeg_path, "changed"),
    Setter("/webserverport", "webServerPort", "http_port_number", validation.port("webServerPort"), "HTTP port set"),
    Setter("/webserverip", "webServerIP", "http_listen_address", validation.listen_address, "HTTP listen address set"),
    Setter("/rtmpserverport", "rtmpServerPort", "rtmp_port_number", validation.port("rtmpServerPort"), "rtmp port set"),
    Setter(
        "/sockethostoverride",
        "socketHostOverride",
        "websocket_host_override",
        validation.socket_host_override,
        "websocket host override set",
    ),
    Setter("/nsfw", "nsfw", "nsfw", validation.switch("nsfw"), "changed"),
    Setter(
        "/directoryenabled",
        "directoryEnabled",
        "directory_enabled",
        validation.switch("directoryEnabled"),
        "directory state changed",
    ),
    Setter("/socialhandles", "socialHandles", "social_handles", validation.social_handles, "social handles updated"),
    Setter("/s3", "s3", "s3_storage_config", validation.s3, "storage configuration changed"),
    Setter("/serverurl", "serverURL", "server_url", validation.server_url, "server url set"),
    Setter(
        "/externalactions",
        "externalActions",
        "external_actions",
        validation.external_actions,
        "external actions update",
    ),
    Setter("/customstyles", "customStyles", "custom_styles", validation.custom_styles, "custom styles updated"),
    # Owncast answers "custom styles updated" for the JavaScript too (a copy-paste upstream).
    Setter(
        "/customjavascript",
        "customJavascript",
        "custom_javascript",
        validation.custom_javascript,
        "custom styles updated",
    ),
    Setter(
        "/hideviewercount",
        "hideViewerCount",
        "hide_viewer_count",
        validation.switch("hideViewerCount"),
        "hide viewer count setting updated",
    ),
    Setter(
        "/disablesearchindexing",
        "disableSearchIndexing",
        "disable_search_indexing",
        validation.switch("disableSearchIndexing"),
        "search indexing support updated",
    ),
    Setter("/video/codec", "videoCodec", "video_codec", validation.video_codec, "video codec updated"),
    Setter(
        "/video/streamlatencylevel",
        "streamLatencyLevel",
        "video_latency_level",
        validation.latency_level,
        "set stream latency",
    ),
    Setter(
        "/video/streamoutputvariants",
        "streamOutputVariants",
        "video_stream_output_variants",
        validation.stream_output_variants,
        "stream output variants updated",
    ),
    Setter(
        "/videoservingendpoint",
        "videoServingEndpoint",
        "video_serving_endpoint",
        validation.video_serving_endpoint,
        "custom video serving endpoint updated",
    ),
)
# Setters with more to do than store a value: below, in `router`.
SPECIAL_PATHS = ("/adminpass", "/logo")
CONFIG_PATHS = tuple(s.path for s in SETTERS) + SPECIAL_PATHS


# --- GET /api/admin/serverconfig -------------------------------------------------------------


@cache
def ffmpeg_on_path() -> str:
    """Owncast reports the ffmpeg it would use when none is configured: the one on the PATH."""
    return shutil.which("ffmpeg") or ""


def _variant_json(variant: dict[str, Any]) -> dict[str, Any]:
    """Owncast's StreamOutputVariant as its MarshalJSON writes it: framerate first (GetFramerate),
    the generated name, audio passthrough implied by a 0 bitrate, scaled sizes omitted when 0."""
    body: dict[str, Any] = {
        "framerate": variant_framerate(variant),
        "name": variant_name(variant),
        "videoPassthrough": bool(variant.get("videoPassthrough")),
        "audioPassthrough": variant_audio_passthrough(variant),
        "videoBitrate": int(variant.get("videoBitrate") or 0),
        "audioBitrate": int(variant.get("audioBitrate") or 0),
    }
    for key in ("scaledWidth", "scaledHeight"):
        if variant.get(key):
            body[key] = int(variant[key])
    body["cpuUsageLevel"] = int(variant.get("cpuUsageLevel") or 0)
    return body


def _s3_json(config: dict[str, Any]) -> dict[str, Any]:
    """Owncast's models.S3: string fields omitted when empty, the two flags always present."""
    body: dict[str, Any] = {
        key: config[key]
        for key in ("endpoint", "accessKey", "secret", "bucket", "region", "acl", "pathPrefix")
        if isinstance(config.get(key), str) and config[key]
    }
    body["enabled"] = bool(config.get("enabled"))
    body["forcePathStyle"] = bool(config.get("forcePathStyle"))
    return body


def server_config_body(services: Services) -> dict[str, Any]:
    """Owncast's AdminServerConfig, in its Go struct's field order.

    Ports and the listen address are the stored settings, what the next start uses unless a
    command-line flag overrides it (Owncast shows the running web port instead, which hides a
    change until the restart).
    """
    s = services.settings.current
    discord = s.discord_configuration
    browser = s.browser_push_configuration
    body: dict[str, Any] = {
        "instanceDetails": {
            "appearanceVariables": s.custom_color_variable_values,
            "version": "",  # Owncast leaves it unset here; /api/config carries the version
            "welcomeMessage": s.server_welcome_message,
            "offlineMessage": s.custom_offline_message,
            "logo": s.logo_path,
            "name": s.server_name,
            "extraPageContent": s.extra_page_content,
            "streamTitle": s.stream_title,
            "customStyles": s.custom_styles,
            "customJavascript": s.custom_javascript,
            "summary": s.server_summary,
            "tags": s.server_metadata_tags,
            "socialHandles": s.social_handles,
            "nsfw": s.nsfw,
        },
        "notifications": {
            "browser": {
                "enabled": bool(browser.get("enabled")),
                "goLiveMessage": str(browser.get("goLiveMessage") or ""),
            },
            "discord": {
                "webhook": str(discord.get("webhook") or ""),
                "goLiveMessage": str(discord.get("goLiveMessage") or ""),
                "enabled": bool(discord.get("enabled")),
            },
        },
        "yp": {"instanceUrl": s.server_url, "enabled": s.directory_enabled},
        "ffmpegPath": s.ffmpeg_path or ffmpeg_on_path(),
        # Owncast 0.2 returns what it stores: the bcrypt hash, never the password.
        "adminPassword": s.admin_password_hash,
    }
    if s.websocket_host_override:
        body["socketHostOverride"] = s.websocket_host_override
    body.update(
        {
            "webServerIP": s.http_listen_address,
            "videoCodec": s.video_codec,
            "videoServingEndpoint": s.video_serving_endpoint,
            "s3": _s3_json(s.s3_storage_config),
            "federation": {
                "username": s.federation_username,
                "goLiveMessage": s.federation_go_live_message,
                "blockedDomains": s.federation_blocked_domains,
                "enabled": s.federation_enabled,
                "isPrivate": s.federation_private,
                "showEngagement": s.federation_show_engagement,
            },
            # Owncast lists the encoders its ffmpeg offers; hardware encoders are probed by the
            # transcoder when it lands, so for now only the software H.264 encoder is offered.
            "supportedCodecs": list(supported_video_codecs()),
            "externalActions": s.external_actions,
            "forbiddenUsernames": s.blocked_usernames,
            "suggestedUsernames": s.suggested_usernames,
            "streamKeys": s.stream_keys,
            "videoSettings": {
                "videoQualityVariants": [_variant_json(v) for v in s.video_stream_output_variants],
                "latencyLevel": s.video_latency_level,
            },
            "rtmpServerPort": s.rtmp_port_number,
            "webServerPort": s.http_port_number,
            "chatDisabled": s.chat_disabled,
            "chatJoinMessagesEnabled": s.chat_join_messages_enabled,
            "chatEstablishedUserMode": s.chat_established_users_only_mode,
            "chatSpamProtectionEnabled": s.chat_spam_protection_enabled,
            "chatSlurFilterEnabled": s.chat_slur_filter_enabled,
            "disableSearchIndexing": s.disable_search_indexing,
            # --stream-key sets a temporary key: while it is set, the stored keys are ignored.
            "streamKeyOverridden": bool(services.options.stream_key),
            "hideViewerCount": s.hide_viewer_count,
        }
    )
    return body


# --- the logo file ---------------------------------------------------------------------------


def _write_temporary(directory: Path, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".logo-{secrets.token_hex(8)}.tmp"
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return temporary


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# --- routes ----------------------------------------------------------------------------------


def router(holder: ServicesHolder) -> SubRouter:
    api = SubRouter(prefix="/api/admin")
    admin = admin_only(lambda: holder.current.admin)

    @api.get("/serverconfig")
    @admin
    async def get_server_config(request: Request) -> Response:
        return json_response(server_config_body(holder.current), headers=NO_CACHE)

    def setter_handler(setter: Setter) -> Callable[[Request], Any]:
        async def set_value(request: Request) -> Response:
            try:
                value = setter.validate(posted_value(request, setter.field))
            except Refused as refused:
                return refused.response
            except validation.ValidationError as exc:
                return api_response(str(exc), False)
            await holder.current.settings.update(**{setter.setting: value})
            return api_response(setter.message, True)

        set_value.__name__ = f"set_{setter.setting}"
        return set_value

    for setter in SETTERS:
        api.post(f"/config{setter.path}")(admin(setter_handler(setter)))

    @api.post("/config/adminpass")
    @admin
    async def set_admin_password(request: Request) -> Response:
        try:
            password = validation.admin_password(posted_value(request, "adminPassword"))
        except Refused as refused:
            return refused.response
        except validation.ValidationError as exc:
            return api_response(str(exc), False)
        hashed = await asyncio.to_thread(hash_password, password)  # bcrypt: ~50 ms of CPU
        services = holder.current
        await services.settings.update(admin_password_hash=hashed)
        services.admin.set_hash(hashed)  # the old password stops working now
        return api_response("changed", True)

    @api.post("/config/logo")
    @admin
    async def set_logo(request: Request) -> Response:
        """Owncast writes data/logo<ext> and stores that name. Here the file is written aside
        first and renamed into place only once the setting is saved: nothing is half-changed."""
        try:
            value = posted_value(request, "logo", MAX_LOGO_BODY)
            image = await asyncio.to_thread(validation.logo, value)  # decoding 2 MiB takes a while
        except Refused as refused:
            return refused.response
        except validation.ValidationError as exc:
            return api_response(str(exc), False)
        services = holder.current
        directory = services.options.data_path
        name = "logo" + image.extension
        temporary = await asyncio.to_thread(_write_temporary, directory, image.data)
        try:
            await services.settings.update(logo_path=name)
            await asyncio.to_thread(os.replace, temporary, directory / name)
        finally:
            await asyncio.to_thread(_discard, temporary)
        return api_response("changed", True)

    def answer_preflight(request: Request) -> Response:
        return preflight()

    for path in ("/serverconfig", *(f"/config{p}" for p in CONFIG_PATHS)):
        api.options(path)(answer_preflight)

    return api
