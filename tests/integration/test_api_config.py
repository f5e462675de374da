"""The configuration API through a real server: public config endpoints, every admin setter
(round trip, refusals verbatim, auth, preflight), the admin password, stream keys and the logo."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from media import require_tool
from tests.conftest import ADMIN_PASSWORD, ServerFactory, ServerProcess, free_port

from owncast_fast.media.encoders import supported_video_codecs

pytestmark = pytest.mark.integration

USABLE = ", ".join(supported_video_codecs())

REALM = 'Basic realm="Owncast Authenticated Request"'
CONFIG = "/api/admin/config"

# Every setter of the spec's "Admin config setters" and "Video" groups that this server routes
# (POST /api/integrations/streamtitle needs the external API tokens, which come later).
SETTER_PATHS = (
    "/adminpass",
    "/streamkeys",
    "/pagecontent",
    "/streamtitle",
    "/name",
    "/serversummary",
    "/offlinemessage",
    "/welcomemessage",
    "/chat/disable",
    "/chat/joinmessagesenabled",
    "/chat/establishedusermode",
    "/chat/forbiddenusernames",
    "/chat/suggestedusernames",
    "/chat/spamprotectionenabled",
    "/chat/slurfilterenabled",
    "/appearance",
    "/logo",
    "/tags",
    "/ffmpegpath",
    "/webserverport",
    "/webserverip",
    "/rtmpserverport",
    "/sockethostoverride",
    "/nsfw",
    "/directoryenabled",
    "/socialhandles",
    "/s3",
    "/serverurl",
    "/externalactions",
    "/customstyles",
    "/customjavascript",
    "/hideviewercount",
    "/disablesearchindexing",
    "/video/codec",
    "/video/streamlatencylevel",
    "/video/streamoutputvariants",
    "/videoservingendpoint",
)
ADMIN_ROUTES = [("GET", "/api/admin/serverconfig")] + [("POST", CONFIG + p) for p in SETTER_PATHS]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that only set and read settings; each sets what it checks."""
    server = ServerProcess(tmp_path_factory.mktemp("config") / "data", free_port(), free_port(), variants=None)
    server.start()
    yield server
    server.stop()


def post(server: ServerProcess, path: str, value: Any, password: str = ADMIN_PASSWORD) -> tuple[int, dict[str, Any]]:
    status, _, body = server.request(
        CONFIG + path, method="POST", body=json.dumps({"value": value}).encode(), admin=password
    )
    return status, json.loads(body)


def post_raw(server: ServerProcess, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    status, _, answer = server.request(CONFIG + path, method="POST", body=body, admin=ADMIN_PASSWORD)
    return status, json.loads(answer)


def server_config(server: ServerProcess) -> dict[str, Any]:
    body = server.get("/api/admin/serverconfig", admin=ADMIN_PASSWORD)
    assert isinstance(body, dict)
    return body


def web_config(server: ServerProcess) -> dict[str, Any]:
    body = server.get("/api/config")
    assert isinstance(body, dict)
    return body


def dig(document: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def data_url(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


# -- every setter round-trips ----------------------------------------------------------------------

S3_ON = {
    "enabled": True,
    "endpoint": "https://s3.example.com",
    "accessKey": "AKIA1",
    "secret": "s3cret",
    "bucket": "live",
    "region": "eu-west-1",
    "acl": "public-read",
    "pathPrefix": "stream",
    "forcePathStyle": True,
}

# (setter, posted value, Owncast's message, where serverconfig shows it, what it shows,
#  where /api/config shows it or None, what it shows there)
ROUND_TRIPS: list[tuple[str, Any, str, tuple[str, ...], Any, tuple[str, ...] | None, Any]] = [
    ("/streamtitle", "Live from the lab", "changed", ("instanceDetails", "streamTitle"), "Live from the lab",
     ("streamTitle",), "Live from the lab"),
    ("/name", "Lab TV", "changed", ("instanceDetails", "name"), "Lab TV", ("name",), "Lab TV"),
    ("/serversummary", "All about labs", "changed", ("instanceDetails", "summary"), "All about labs",
     ("summary",), "All about labs"),
    ("/offlinemessage", "  Back *soon*  ", "changed", ("instanceDetails", "offlineMessage"), "Back *soon*",
     ("offlineMessage",), "<p>Back <em>soon</em></p>\n"),
    ("/welcomemessage", " Hi chat ", "changed", ("instanceDetails", "welcomeMessage"), "Hi chat", None, None),
    ("/pagecontent", "# About\n\nWe **stream** ~~daily~~.", "changed", ("instanceDetails", "extraPageContent"),
     "# About\n\nWe **stream** ~~daily~~.", ("extraPageContent",),
     "<h1>About</h1>\n<p>We <strong>stream</strong> <del>daily</del>.</p>"),
    ("/tags", ["#music", " live "], "changed", ("instanceDetails", "tags"), ["music", "live"], ("tags",),
     ["music", "live"]),
    ("/nsfw", True, "changed", ("instanceDetails", "nsfw"), True, ("nsfw",), True),
    ("/customstyles", "body { color: red; }", "custom styles updated", ("instanceDetails", "customStyles"),
     "body { color: red; }", ("customStyles",), "body { color: red; }"),
    ("/customjavascript", "console.log('hi')", "custom styles updated", ("instanceDetails", "customJavascript"),
     "console.log('hi')", None, None),
    ("/appearance", {"theme-color-background-main": "#101010"}, "custom appearance variables updated",
     ("instanceDetails", "appearanceVariables"), {"theme-color-background-main": "#101010"},
     ("appearanceVariables",), {"theme-color-background-main": "#101010"}),
    ("/socialhandles", [{"platform": "mastodon", "url": "https://fosstodon.org/@lab"}, {"platform": "blog",
     "url": "https://lab.example.com"}], "social handles updated", ("instanceDetails", "socialHandles"),
     [{"platform": "mastodon", "url": "https://fosstodon.org/@lab"}, {"platform": "blog",
      "url": "https://lab.example.com"}], ("socialHandles",),
     [{"platform": "mastodon", "url": "https://fosstodon.org/@lab", "icon": "/img/platformlogos/mastodon.svg"},
      {"platform": "blog", "url": "https://lab.example.com"}]),
    ("/chat/disable", True, "chat disabled status updated", ("chatDisabled",), True, ("chatDisabled",), True),
    ("/chat/joinmessagesenabled", False, "chat join message status updated", ("chatJoinMessagesEnabled",), False,
     None, None),
    ("/chat/establishedusermode", True, "chat established users only mode updated", ("chatEstablishedUserMode",),
     True, None, None),
    ("/chat/forbiddenusernames", ["root", "mod"], "forbidden username list updated", ("forbiddenUsernames",),
     ["root", "mod"], None, None),
    ("/chat/suggestedusernames", ["Ada", "Grace"], "suggested username list updated", ("suggestedUsernames",),
     ["Ada", "Grace"], None, None),
    ("/chat/spamprotectionenabled", False, "chat spam protection changed", ("chatSpamProtectionEnabled",), False,
     None, None),
    ("/chat/slurfilterenabled", True, "chat message slur filter changed", ("chatSlurFilterEnabled",), True,
     None, None),
    ("/ffmpegpath", sys.executable, "changed", ("ffmpegPath",), sys.executable, None, None),
    ("/webserverport", 8181, "HTTP port set", ("webServerPort",), 8181, None, None),
    ("/webserverip", "0:0:0:0:0:0:0:1", "HTTP listen address set", ("webServerIP",), "::1", None, None),
    ("/rtmpserverport", 19350.0, "rtmp port set", ("rtmpServerPort",), 19350, None, None),
    ("/sockethostoverride", "wss://chat.example.com/", "websocket host override set", ("socketHostOverride",),
     "wss://chat.example.com", ("socketHostOverride",), "wss://chat.example.com"),
    ("/directoryenabled", True, "directory state changed", ("yp", "enabled"), True, None, None),
    ("/serverurl", "https://live.example.com/", "server url set", ("yp", "instanceUrl"), "https://live.example.com",
     ("authentication", "indieAuthEnabled"), True),
    ("/s3", S3_ON, "storage configuration changed", ("s3",), S3_ON, None, None),
    ("/externalactions", [{"title": "Donate", "url": "https://example.com/donate", "openExternally": True}],
     "external actions update", ("externalActions",),
     [{"url": "https://example.com/donate", "title": "Donate", "description": "", "icon": "", "color": "",
       "openExternally": True}], ("externalActions",),
     [{"url": "https://example.com/donate", "title": "Donate", "description": "", "icon": "", "color": "",
       "openExternally": True}]),
    ("/hideviewercount", True, "hide viewer count setting updated", ("hideViewerCount",), True,
     ("hideViewerCount",), True),
    ("/disablesearchindexing", True, "search indexing support updated", ("disableSearchIndexing",), True,
     None, None),
    ("/video/codec", "libx264", "video codec updated", ("videoCodec",), "libx264", None, None),
    ("/video/streamlatencylevel", 4, "set stream latency", ("videoSettings", "latencyLevel"), 4, None, None),
    ("/video/streamoutputvariants", [{"videoBitrate": 3000, "scaledHeight": 720, "framerate": 30,
     "cpuUsageLevel": 3, "encoderPreset": "ignored"}], "stream output variants updated",
     ("videoSettings", "videoQualityVariants"),
     [{"framerate": 30, "name": "720h", "videoPassthrough": False, "audioPassthrough": True, "videoBitrate": 3000,
       "audioBitrate": 0, "scaledHeight": 720, "cpuUsageLevel": 3}], None, None),
    ("/videoservingendpoint", "https://cdn.example.com/", "custom video serving endpoint updated",
     ("videoServingEndpoint",), "https://cdn.example.com", None, None),
    ("/streamkeys", [{"key": "k1", "comment": "main"}, {"key": "k2"}], "changed", ("streamKeys",),
     [{"key": "k1", "comment": "main"}, {"key": "k2", "comment": ""}], None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "value", "message", "admin_path", "admin_value", "public_path", "public_value"),
    ROUND_TRIPS,
    ids=[case[0] for case in ROUND_TRIPS],
)
def test_setter_round_trip(
    shared: ServerProcess,
    path: str,
    value: Any,
    message: str,
    admin_path: tuple[str, ...],
    admin_value: Any,
    public_path: tuple[str, ...] | None,
    public_value: Any,
) -> None:
    assert post(shared, path, value) == (200, {"message": message, "success": True})
    assert dig(server_config(shared), admin_path) == admin_value
    if public_path is not None:
        assert dig(web_config(shared), public_path) == public_value


def test_every_setter_is_in_the_round_trip_table() -> None:
    """adminpass and logo have tests of their own below."""
    assert {case[0] for case in ROUND_TRIPS} | {"/adminpass", "/logo"} == set(SETTER_PATHS)


# -- refusals, verbatim ----------------------------------------------------------------------------

BIG = 100_001
REFUSALS: list[tuple[str, Any, str]] = [
    ("/webserverport", 70000, "webServerPort: port number must be between 1 and 65535, got 70000"),
    ("/webserverport", "8080", "webServerPort: port must be a number, got a string"),
    ("/rtmpserverport", 0, "rtmpServerPort: port number must be between 1 and 65535, got 0"),
    ("/rtmpserverport", 1935.5, "rtmpServerPort: port must be a number, got the number 1935.5"),
    ("/webserverip", "not-an-ip", "webServerIP: 'not-an-ip' is not an IP address"),
    ("/video/streamlatencylevel", 5, "streamLatencyLevel: must be an integer from 0 to 4, got 5"),
    ("/video/streamlatencylevel", -1, "streamLatencyLevel: must be an integer from 0 to 4, got -1"),
    ("/video/streamlatencylevel", 2.5, "streamLatencyLevel: expected an integer, got the number 2.5"),
    ("/video/streamlatencylevel", True, "streamLatencyLevel: expected an integer, got true"),
    # Not in PyAV's FFmpeg build, so never usable; the usable list is what passed its probe here.
    ("/video/codec", "h264_omx", f"videoCodec: 'h264_omx' is not usable on this host (usable: {USABLE})"),
    ("/video/codec", "x265", f"videoCodec: 'x265' is not usable on this host (usable: {USABLE})"),
    ("/video/streamoutputvariants", [], "streamOutputVariants: must have at least one variant"),
    ("/video/streamoutputvariants", [{"videoBitrate": 1000}] * 11,
     "streamOutputVariants: must have at most 10 items, got 11"),
    ("/video/streamoutputvariants", [{"videoBitrate": 1000}, {"videoBitrate": -1}],
     "streamOutputVariants[1].videoBitrate: must be an integer from 0 to 100000 kbit/s, got -1"),
    ("/video/streamoutputvariants", [{"videoBitrate": BIG}],
     "streamOutputVariants[0].videoBitrate: must be an integer from 0 to 100000 kbit/s, got 100001"),
    ("/video/streamoutputvariants", [{"framerate": "30"}],
     "streamOutputVariants[0].framerate: expected an integer, got a string"),
    ("/video/streamoutputvariants", [{"videoPassthrough": 1}],
     "streamOutputVariants[0].videoPassthrough: expected true or false, got the number 1"),
    ("/video/streamoutputvariants", [{"scaledWidth": 9000}],
     "streamOutputVariants[0].scaledWidth: must be an integer from 0 to 8192 pixels, got 9000"),
    ("/video/streamoutputvariants", ["720p"], "streamOutputVariants[0]: expected an object, got a string"),
    ("/video/streamoutputvariants", {"videoBitrate": 1}, "streamOutputVariants: expected an array, got an object"),
    ("/nsfw", "yes", "nsfw: expected true or false, got a string"),
    ("/chat/disable", None, "chatDisabled: expected true or false, got null"),
    ("/name", "", "name: must not be empty"),
    ("/name", "Two\nlines", "name: must not contain line breaks or control characters"),
    ("/streamtitle", 5, "streamTitle: expected a string, got the number 5"),
    ("/streamtitle", "x" * 2001, "streamTitle: must be at most 2000 characters, got 2001"),
    ("/streamkeys", [], "streamKeys: must provide at least one valid stream key"),
    ("/streamkeys", [{"key": "", "comment": "blank"}], "streamKeys[0].key: stream key cannot be empty"),
    ("/streamkeys", [{"key": "a"}, {"key": "a"}], "streamKeys[1].key: duplicate of streamKeys[0].key"),
    ("/streamkeys", [{"key": "a b"}], "streamKeys[0].key: must not contain spaces or '/'"),
    ("/streamkeys", "abc123", "streamKeys: expected an array, got a string"),
    ("/serverurl", "ftp://example.com", "serverURL: 'ftp://example.com' is not an absolute http or https URL"),
    ("/serverurl", "https://192.168.1.2", "serverURL: server URL cannot be private"),
    ("/videoservingendpoint", "cdn.example.com",
     "videoServingEndpoint: 'cdn.example.com' is not an absolute http or https URL"),
    ("/sockethostoverride", "chat.example.com",
     "socketHostOverride: 'chat.example.com' is not an absolute http or https or ws or wss URL"),
    ("/socialhandles", [{"platform": "github", "url": "javascript:alert(1)"}],
     "socialHandles[0].url: 'javascript:alert(1)' is not an absolute http or https URL"),
    ("/socialhandles", [{"url": "https://example.com"}], "socialHandles[0].platform: must not be empty"),
    ("/externalactions", [{"title": "Donate"}], "externalActions[0].url: an action needs a URL or HTML content"),
    ("/externalactions", [{"url": "https://example.com"}], "externalActions[0].title: must not be empty"),
    ("/appearance", {"--x": "red; } body {"}, "appearanceVariables.--x: must not contain ; { } < > or \\"),
    ("/appearance", {"bad name": "red"},
     "appearanceVariables.bad name: is not a CSS variable name (letters, digits, '-' and '_')"),
    ("/appearance", ["red"], "appearanceVariables: expected an object, got an array"),
    ("/tags", ["ok", " # "], "tags[1]: must not be empty"),
    ("/tags", "music", "tags: expected an array, got a string"),
    ("/chat/forbiddenusernames", [3], "forbiddenUsernames[0]: expected a string, got the number 3"),
    ("/s3", {"enabled": True}, "s3.endpoint: required when S3 is enabled"),
    ("/s3", {**S3_ON, "endpoint": "s3.example.com"}, "s3.endpoint: 's3.example.com' is not an http(s) URL"),
    ("/s3", {**S3_ON, "acl": "everyone"}, "s3.acl: 'everyone' is not a canned ACL (private, public-read, "
     "public-read-write, authenticated-read, aws-exec-read, bucket-owner-read, bucket-owner-full-control)"),
    ("/s3", {"enabled": "yes"}, "s3.enabled: expected true or false, got a string"),
    ("/ffmpegpath", "/nonexistent/ffmpeg", "ffmpegPath: ffmpeg path does not exist"),
    ("/ffmpegpath", "/", "ffmpegPath: ffmpeg path can not be a folder"),
    ("/adminpass", "", "adminPassword: must not be empty"),
    ("/adminpass", 123456, "adminPassword: expected a string, got the number 123456"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "message"), REFUSALS, ids=[f"{c[0]}-{i}" for i, c in enumerate(REFUSALS)])
def test_refused_value_is_named_and_nothing_is_saved(
    shared: ServerProcess, path: str, value: Any, message: str
) -> None:
    before = server_config(shared)
    assert post(shared, path, value) == (400, {"message": message, "success": False})
    assert server_config(shared) == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"value":', "request body is not valid JSON: unexpected end of data: line 1 column 10 (char 9)"),
        (b"", "request body is empty: expected a JSON object"),
        (b'["x"]', "request body must be a JSON object, not an array"),
        (
            b"\xff\xfe",
            "request body is not valid JSON: str is not valid UTF-8: surrogates not allowed: line 1 column 1 (char 0)",
        ),
        (b'{"val": "x"}', 'name: expected a JSON object like {"value": ...}'),
    ],
    ids=["truncated", "empty", "array", "not-utf8", "no-value"],
)
def test_malformed_body(shared: ServerProcess, body: bytes, message: str) -> None:
    assert post_raw(shared, "/name", body) == (400, {"message": message, "success": False})


def test_oversized_body_is_refused_with_json(shared: ServerProcess) -> None:
    body = json.dumps({"value": "x" * (1024 * 1024)}).encode()
    assert post_raw(shared, "/pagecontent", body) == (
        400,
        {"message": "request body is larger than the limit of 1048576 bytes", "success": False},
    )


# -- auth and preflight ----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES, ids=[p for _, p in ADMIN_ROUTES])
def test_admin_routes_answer_401_without_the_admin_password(shared: ServerProcess, method: str, path: str) -> None:
    body = b'{"value": true}' if method == "POST" else None
    for password in (None, "not-the-password"):
        status, headers, answer = shared.request(path, method=method, body=body, admin=password)
        assert (status, answer) == (401, b"Unauthorized")
        assert headers["www-authenticate"] == REALM


@pytest.mark.parametrize("path", [p for _, p in ADMIN_ROUTES])
def test_preflight_answers_204_before_auth(shared: ServerProcess, path: str) -> None:
    status, headers, body = shared.request(path, method="OPTIONS")
    assert (status, body) == (204, b"")
    assert headers["access-control-allow-origin"] == "*"


# -- applied live ----------------------------------------------------------------------------------


def test_title_reaches_status_at_once(shared: ServerProcess) -> None:
    for title in ("First title", "Second title"):
        assert post(shared, "/streamtitle", title)[0] == 200
        status = shared.get("/api/status")
        assert isinstance(status, dict) and status["streamTitle"] == title
    assert post(shared, "/streamtitle", "")[0] == 200
    assert "streamTitle" not in web_config(shared)  # Go's omitempty


def test_robots_txt_follows_the_search_indexing_switch(shared: ServerProcess) -> None:
    assert post(shared, "/disablesearchindexing", False)[0] == 200
    status, headers, body = shared.request("/robots.txt")
    assert (status, headers["content-type"]) == (200, "text/plain")
    assert body == b"User-agent: *\nDisallow: /admin\nDisallow: /api"
    assert post(shared, "/disablesearchindexing", True)[0] == 200
    assert shared.request("/robots.txt")[2] == b"User-agent: *\nDisallow: /admin\nDisallow: /api\nDisallow: /"


def test_custom_javascript_is_served(shared: ServerProcess) -> None:
    assert post(shared, "/customjavascript", "window.lab = 1;")[0] == 200
    status, headers, body = shared.request("/customjavascript")
    assert (status, headers["content-type"], body) == (200, "text/javascript; charset=utf-8", b"window.lab = 1;")


def test_yp_is_404_while_the_directory_is_off(shared: ServerProcess) -> None:
    assert post(shared, "/directoryenabled", False)[0] == 200
    assert shared.request("/api/yp")[::2] == (404, b"")
    assert post(shared, "/directoryenabled", True)[0] == 200
    assert post(shared, "/name", "Directory TV")[0] == 200
    assert post(shared, "/streamtitle", "Listed")[0] == 200
    yp = shared.get("/api/yp")
    assert isinstance(yp, dict)
    assert list(yp) == [
        "lastConnectTime", "name", "description", "streamTitle", "logo", "tags", "social", "viewerCount",
        "overallMaxViewerCount", "sessionMaxViewerCount", "nsfw", "online",
    ]  # fmt: skip
    assert (yp["name"], yp["streamTitle"], yp["logo"], yp["online"]) == ("Directory TV", "Listed", "/logo", False)


def test_web_config_shape(shared: ServerProcess) -> None:
    status, headers, body = shared.request("/api/config")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["access-control-allow-origin"] == "*"
    assert headers["cache-control"] == "no-cache, no-store, must-revalidate"
    config = json.loads(body)
    assert set(config) >= {
        "appearanceVariables", "name", "customStyles", "offlineMessage", "logo", "version", "extraPageContent",
        "summary", "tags", "socialHandles", "externalActions", "notifications", "federation",
        "maxSocketPayloadSize", "hideViewerCount", "chatDisabled", "nsfw", "authentication",
    }  # fmt: skip
    assert config["logo"] == "/logo"
    assert config["version"].startswith("Owncast v0.2.0-")
    assert config["maxSocketPayloadSize"] == 2048
    assert config["federation"] == {"enabled": False}
    assert config["notifications"] == {"browser": {"enabled": False}}


def test_social_platforms(shared: ServerProcess) -> None:
    platforms = shared.get("/api/socialplatforms")
    assert isinstance(platforms, dict)
    assert list(platforms) == sorted(platforms)
    assert platforms["github"] == {"platform": "GitHub", "icon": "/img/platformlogos/github.svg"}
    assert platforms["kofi"] == {"platform": "Ko-Fi", "icon": "/img/platformlogos/ko-fi.svg"}


def test_variant_names_and_order(shared: ServerProcess) -> None:
    """reference/owncast-behavior.md §4.4, with Owncast's 720p-at-width-1080 quirk."""
    variants = [
        {"videoBitrate": 800, "framerate": 30},
        {"videoBitrate": 1200, "scaledWidth": 1080, "scaledHeight": 720},
        {"videoBitrate": 3000, "scaledWidth": 1280, "scaledHeight": 720},
        {"videoPassthrough": True},
        {"videoBitrate": 6000, "scaledWidth": 1920, "scaledHeight": 1080},
        {"videoBitrate": 2500, "scaledWidth": 640},
        {"videoBitrate": 1500, "name": "Mobile"},
        {"videoBitrate": 1250},
    ]
    assert post(shared, "/video/streamoutputvariants", variants)[0] == 200
    assert shared.get("/api/video/variants") == [
        {"name": "Source", "index": 3},
        {"name": "1080p @6Mbps", "index": 4},
        {"name": "720h", "index": 2},
        {"name": "640w", "index": 5},
        {"name": "Mobile", "index": 6},
        {"name": "1.2Mbps@0fps", "index": 7},
        {"name": "720p @1.2Mbps", "index": 1},
        {"name": "800Kbps@30fps", "index": 0},
    ]


# -- the logo --------------------------------------------------------------------------------------

SCRIPTED_SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
CLEAN_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>'


def test_default_logo(server_factory: ServerFactory) -> None:
    server = server_factory()
    status, headers, body = server.request("/logo")
    assert (status, headers["content-type"]) == (200, "image/svg+xml")
    assert body.startswith(b"<svg")
    status, headers, body = server.request("/logo/external")
    assert (status, headers["content-type"]) == (200, "image/png")
    assert body.startswith(b"\x89PNG\r\n\x1a\n")


def test_logo_upload(shared: ServerProcess) -> None:
    image = png()
    assert post(shared, "/logo", data_url(image, "image/png")) == (200, {"message": "changed", "success": True})
    assert server_config(shared)["instanceDetails"]["logo"] == "logo.png"
    for path in ("/logo", "/logo/external"):
        status, headers, body = shared.request(path)
        assert (status, headers["content-type"], body) == (200, "image/png", image)
    assert (shared.data_dir / "logo.png").read_bytes() == image
    assert not list(shared.data_dir.glob(".logo-*"))

    assert post(shared, "/logo", data_url(CLEAN_SVG, "image/svg+xml"))[0] == 200
    status, headers, body = shared.request("/logo")
    assert (status, headers["content-type"], body) == (200, "image/svg+xml", CLEAN_SVG)
    # Sites that cannot show SVG get the last PNG logo instead.
    assert shared.request("/logo/external")[2] == image


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("data:image/png;base64,!!!not base64!!!", "logo: invalid base64 image data"),
        (base64.b64encode(b"hello, not an image").decode(), "logo: not a PNG, JPEG, GIF, WebP or SVG image"),
        (data_url(b"\x89PNG\r\n\x1a\n" + bytes(2 * 1024 * 1024), "image/png"), "logo: image is larger than 2048 KiB"),
        (data_url(SCRIPTED_SVG, "image/svg+xml"), "logo: SVG images with scripts are not allowed (found <script>)"),
        (data_url(png(), "image/jpeg"), "logo: the data is image/png, not image/jpeg"),
        ("data:image/png,plain", "logo: a data URL must be base64 encoded (data:image/png;base64,...)"),
        (7, "logo: expected base64 image data, got the number 7"),
    ],
    ids=["bad-base64", "not-an-image", "too-large", "svg-script", "wrong-type", "not-base64-url", "number"],
)
def test_logo_refused(shared: ServerProcess, value: Any, message: str) -> None:
    before = shared.request("/logo")[2]
    assert post(shared, "/logo", value) == (400, {"message": message, "success": False})
    assert shared.request("/logo")[2] == before


# -- credentials -----------------------------------------------------------------------------------


def test_admin_password_change_applies_at_once_and_survives_a_restart(server_factory: ServerFactory) -> None:
    server = server_factory()
    assert post(server, "/adminpass", "n3w-passw0rd") == (200, {"message": "changed", "success": True})
    assert server.request("/api/admin/serverconfig", admin=ADMIN_PASSWORD)[0] == 401
    assert server.request("/api/admin/serverconfig", admin="n3w-passw0rd")[0] == 200
    assert post(server, "/streamtitle", "kept", password="n3w-passw0rd")[0] == 200
    server.stop()

    again = server_factory(data_dir=server.data_dir)
    assert again.request("/api/admin/serverconfig", admin=ADMIN_PASSWORD)[0] == 401
    status, _, body = again.request("/api/admin/serverconfig", admin="n3w-passw0rd")
    assert status == 200
    assert json.loads(body)["instanceDetails"]["streamTitle"] == "kept"


def test_new_stream_keys_apply_to_the_next_publish(server_factory: ServerFactory, clip_4s: Path) -> None:
    server = server_factory()
    assert post(server, "/streamkeys", [{"key": "fresh-key-1", "comment": "new"}])[0] == 200

    def publish(key: str) -> subprocess.CompletedProcess[str]:
        command = [require_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-i", str(clip_4s)]
        command += ["-c", "copy", "-f", "flv", server.rtmp_url(key)]
        return subprocess.run(command, capture_output=True, text=True, timeout=30)

    refused = publish(ADMIN_PASSWORD)  # the default key is abc123 too
    assert refused.returncode != 0
    assert "invalid stream key" in refused.stderr
    accepted = publish("fresh-key-1")
    assert accepted.returncode == 0, accepted.stderr


def test_temporary_stream_key_is_reported_as_overriding(server_factory: ServerFactory) -> None:
    assert server_config(server_factory())["streamKeyOverridden"] is False
    assert server_config(server_factory("--stream-key", "temporary-key-7"))["streamKeyOverridden"] is True
