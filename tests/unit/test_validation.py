"""Setting validators: what each accepts, how it normalises, and every refusal's exact message."""

from __future__ import annotations

import base64
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from owncast_fast.config import validation as v
from owncast_fast.config.validation import ValidationError
from owncast_fast.media.encoders import supported_video_codecs


def refused(validate: Any, value: object) -> str:
    with pytest.raises(ValidationError) as caught:
        validate(value)
    return str(caught.value)


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00"))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- error messages name the field -----------------------------------------------------------------


def test_error_carries_field_and_problem() -> None:
    error = ValidationError("webServerPort", "port number must be between 1 and 65535, got 0")
    assert (error.field, error.problem) == ("webServerPort", "port number must be between 1 and 65535, got 0")
    assert str(error) == "webServerPort: port number must be between 1 and 65535, got 0"


@pytest.mark.parametrize(
    ("value", "described"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (3, "the number 3"),
        (2.5, "the number 2.5"),
        ("x", "a string"),
        ([], "an array"),
        ({}, "an object"),
    ],
)
def test_describe(value: object, described: str) -> None:
    assert v.describe(value) == described


# -- text ------------------------------------------------------------------------------------------


def test_text_settings() -> None:
    assert v.server_name("  Lab TV ") == "Lab TV"
    assert v.stream_title(" Live ") == "Live"
    assert v.stream_title("") == ""
    assert v.welcome_message("  hi\n") == "hi"
    assert v.offline_message("\tback soon ") == "back soon"
    assert v.page_content("# Title\n\ntext\n") == "# Title\n\ntext\n"
    assert v.custom_styles("a {\n\tcolor: red;\n}") == "a {\n\tcolor: red;\n}"
    assert v.custom_javascript("") == ""
    assert v.server_summary("two\nlines") == "two\nlines"


@pytest.mark.parametrize(
    ("validate", "value", "message"),
    [
        (v.server_name, "   ", "name: must not be empty"),
        (v.server_name, None, "name: expected a string, got null"),
        (v.server_name, "a\tb", "name: must not contain line breaks or control characters"),
        (v.stream_title, ["x"], "streamTitle: expected a string, got an array"),
        (v.stream_title, "x" * 2001, "streamTitle: must be at most 2000 characters, got 2001"),
        (v.page_content, "a\x00b", "extraPageContent: must not contain control characters"),
        (
            v.custom_javascript,
            "x" * (512 * 1024 + 1),
            "customJavascript: must be at most 524288 characters, got 524289",
        ),
    ],
)
def test_text_refusals(validate: Any, value: object, message: str) -> None:
    assert refused(validate, value) == message


def test_tags_lose_their_hash() -> None:
    assert v.tags(["#music", " live ", "##two"]) == ["music", "live", "two"]
    assert v.tags([]) == []
    assert refused(v.tags, ["ok", "#"]) == "tags[1]: must not be empty"
    assert refused(v.tags, [1]) == "tags[0]: expected a string, got the number 1"
    assert refused(v.tags, ["t"] * 1001) == "tags: must have at most 1000 items, got 1001"


def test_username_lists() -> None:
    assert v.forbidden_usernames([" root "]) == ["root"]
    assert v.suggested_usernames([]) == []
    assert refused(v.suggested_usernames, [""]) == "suggestedUsernames[0]: must not be empty"
    assert refused(v.forbidden_usernames, "admin") == "forbiddenUsernames: expected an array, got a string"


# -- switches and numbers --------------------------------------------------------------------------


def test_switch() -> None:
    nsfw = v.switch("nsfw")
    assert nsfw(True) is True and nsfw(False) is False
    assert refused(nsfw, 1) == "nsfw: expected true or false, got the number 1"
    assert refused(nsfw, "true") == "nsfw: expected true or false, got a string"


def test_port() -> None:
    port = v.port("rtmpServerPort")
    assert port(1) == 1 and port(65535) == 65535
    assert port(1935.0) == 1935  # a JavaScript number
    assert refused(port, 65536) == "rtmpServerPort: port number must be between 1 and 65535, got 65536"
    assert refused(port, 0) == "rtmpServerPort: port number must be between 1 and 65535, got 0"
    assert refused(port, True) == "rtmpServerPort: port must be a number, got true"
    assert refused(port, 80.5) == "rtmpServerPort: port must be a number, got the number 80.5"


def test_latency_level() -> None:
    assert [v.latency_level(level) for level in range(5)] == [0, 1, 2, 3, 4]
    assert v.latency_level(3.0) == 3
    assert refused(v.latency_level, 5) == "streamLatencyLevel: must be an integer from 0 to 4, got 5"
    assert refused(v.latency_level, "2") == "streamLatencyLevel: expected an integer, got a string"


def test_video_codec() -> None:
    assert v.video_codec("libx264") == "libx264"
    usable = ", ".join(supported_video_codecs())
    assert "libx264" in supported_video_codecs()
    # h264_omx is not in PyAV's FFmpeg build; others (NVENC, QSV, ...) depend on the host's hardware.
    assert refused(v.video_codec, "h264_omx") == f"videoCodec: 'h264_omx' is not usable on this host (usable: {usable})"


# -- network ---------------------------------------------------------------------------------------


def test_listen_address_is_canonical() -> None:
    assert v.listen_address("0.0.0.0") == "0.0.0.0"
    assert v.listen_address(" 0:0:0:0:0:0:0:1 ") == "::1"
    assert refused(v.listen_address, "localhost") == "webServerIP: 'localhost' is not an IP address"
    assert refused(v.listen_address, "1.2.3.256") == "webServerIP: '1.2.3.256' is not an IP address"


def test_server_url() -> None:
    assert v.server_url("https://live.example.com/") == "https://live.example.com"
    assert v.server_url("") == ""
    assert v.server_url("  ") == ""
    # Go's IsPrivate is RFC 1918 and RFC 4193 only: loopback and public addresses pass.
    assert v.server_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert v.server_url("http://8.8.8.8") == "http://8.8.8.8"
    for private in ("http://10.1.2.3", "https://172.16.0.1:8443/", "http://192.168.0.10", "http://[fd00::1]"):
        assert refused(v.server_url, private) == "serverURL: server URL cannot be private"
    assert refused(v.server_url, "live.example.com") == (
        "serverURL: 'live.example.com' is not an absolute http or https URL"
    )
    assert refused(v.server_url, "https://a b.com") == "serverURL: 'https://a b.com' is not a URL: it contains spaces"
    assert refused(v.server_url, "https://x.com:99999") == (
        "serverURL: 'https://x.com:99999' is not an absolute http or https URL"
    )


def test_endpoints_and_socket_override() -> None:
    assert v.video_serving_endpoint("https://cdn.example.com/live/") == "https://cdn.example.com/live"
    assert v.video_serving_endpoint("") == ""
    assert v.socket_host_override("wss://chat.example.com") == "wss://chat.example.com"
    assert v.socket_host_override("https://chat.example.com/") == "https://chat.example.com"
    assert refused(v.socket_host_override, "ftp://chat.example.com") == (
        "socketHostOverride: 'ftp://chat.example.com' is not an absolute http or https or ws or wss URL"
    )


# -- credentials -----------------------------------------------------------------------------------


def test_admin_password() -> None:
    assert v.admin_password(" spaces are kept ") == " spaces are kept "
    assert v.admin_password("x" * 200) == "x" * 200
    assert refused(v.admin_password, "") == "adminPassword: must not be empty"
    assert refused(v.admin_password, "x" * 1025) == "adminPassword: must be at most 1024 characters, got 1025"


def test_stream_keys() -> None:
    assert v.stream_keys([{"key": "a"}, {"key": "b", "comment": "backup", "extra": 1}]) == [
        {"key": "a", "comment": ""},
        {"key": "b", "comment": "backup"},
    ]
    assert refused(v.stream_keys, []) == "streamKeys: must provide at least one valid stream key"
    assert refused(v.stream_keys, [{"comment": "no key"}]) == "streamKeys[0].key: stream key cannot be empty"
    assert refused(v.stream_keys, [{"key": "a/b"}]) == "streamKeys[0].key: must not contain spaces or '/'"
    assert refused(v.stream_keys, [{"key": "x"}, {"key": "y"}, {"key": "x"}]) == (
        "streamKeys[2].key: duplicate of streamKeys[0].key"
    )
    assert refused(v.stream_keys, ["abc"]) == "streamKeys[0]: expected an object, got a string"
    assert refused(v.stream_keys, [{"key": 5}]) == "streamKeys[0].key: expected a string, got the number 5"
    assert refused(v.stream_keys, [{"key": "k" * 257}]) == "streamKeys[0].key: must be at most 256 characters, got 257"
    assert refused(v.stream_keys, [{"key": str(i)} for i in range(101)]) == (
        "streamKeys: must have at most 100 items, got 101"
    )


# -- video -----------------------------------------------------------------------------------------


def test_variants_are_completed_with_zero_values_and_unknown_fields_dropped() -> None:
    assert v.stream_output_variants([{"videoBitrate": 2000, "encoderPreset": "veryfast", "name": " HD "}]) == [
        {
            "name": "HD",
            "videoPassthrough": False,
            "audioPassthrough": False,
            "videoBitrate": 2000,
            "audioBitrate": 0,
            "scaledWidth": 0,
            "scaledHeight": 0,
            "framerate": 0,
            "cpuUsageLevel": 0,
        }
    ]
    assert v.stream_output_variants([{"videoPassthrough": True, "framerate": None}])[0]["framerate"] == 0


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        (
            {"audioBitrate": 2000},
            "streamOutputVariants[0].audioBitrate: must be an integer from 0 to 1024 kbit/s, got 2000",
        ),
        (
            {"scaledHeight": -2},
            "streamOutputVariants[0].scaledHeight: must be an integer from 0 to 8192 pixels, got -2",
        ),
        ({"framerate": 240}, "streamOutputVariants[0].framerate: must be an integer from 0 to 120 fps, got 240"),
        ({"cpuUsageLevel": 6}, "streamOutputVariants[0].cpuUsageLevel: must be an integer from 0 to 5, got 6"),
        ({"videoBitrate": 1200.5}, "streamOutputVariants[0].videoBitrate: expected an integer, got the number 1200.5"),
        ({"audioPassthrough": "yes"}, "streamOutputVariants[0].audioPassthrough: expected true or false, got a string"),
        ({"name": 3}, "streamOutputVariants[0].name: expected a string, got the number 3"),
    ],
)
def test_variant_refusals(variant: dict[str, Any], message: str) -> None:
    assert refused(v.stream_output_variants, [variant]) == message


def test_ffmpeg_path(tmp_path: Path) -> None:
    assert v.ffmpeg_path("") == ""
    tool = tmp_path / "ffmpeg"
    tool.write_text("#!/bin/sh\n")
    assert refused(v.ffmpeg_path, str(tool)) == "ffmpegPath: ffmpeg path is not executable"
    os.chmod(tool, 0o755)
    assert v.ffmpeg_path(f" {tool} ") == str(tool)
    assert refused(v.ffmpeg_path, str(tmp_path)) == "ffmpegPath: ffmpeg path can not be a folder"
    assert refused(v.ffmpeg_path, str(tmp_path / "missing")) == "ffmpegPath: ffmpeg path does not exist"


def test_s3() -> None:
    assert v.s3({"enabled": False}) == {
        "endpoint": "",
        "accessKey": "",
        "secret": "",
        "bucket": "",
        "region": "",
        "acl": "",
        "pathPrefix": "",
        "enabled": False,
        "forcePathStyle": False,
    }
    enabled = {"enabled": True, "endpoint": "https://s3.example.com", "accessKey": "k", "secret": "s", "bucket": "b"}
    assert v.s3(enabled)["endpoint"] == "https://s3.example.com"
    assert refused(v.s3, {**enabled, "secret": ""}) == "s3.secret: required when S3 is enabled"
    assert refused(v.s3, {**enabled, "bucket": "a/b"}) == "s3.bucket: 'a/b' is not a bucket name"
    assert refused(v.s3, {"region": 1}) == "s3.region: expected a string, got the number 1"
    assert refused(v.s3, []) == "s3: expected an object, got an array"


# -- links and appearance --------------------------------------------------------------------------


def test_social_handles() -> None:
    assert v.social_handles([{"platform": "github", "url": " https://github.com/x ", "icon": "/i.svg"}]) == [
        {"platform": "github", "url": "https://github.com/x", "icon": "/i.svg"}
    ]
    assert v.social_handles([{"platform": "blog", "url": "http://blog.example.com"}]) == [
        {"platform": "blog", "url": "http://blog.example.com"}
    ]
    assert refused(v.social_handles, [{"platform": "x", "url": "mailto:me@example.com"}]) == (
        "socialHandles[0].url: 'mailto:me@example.com' is not an absolute http or https URL"
    )
    assert refused(v.social_handles, [{"platform": "x", "url": "https://e.com"}] * 51) == (
        "socialHandles: must have at most 50 items, got 51"
    )


def test_external_actions() -> None:
    assert v.external_actions([{"title": "Chat", "html": "<b>hi</b>"}]) == [
        {
            "url": "",
            "title": "Chat",
            "description": "",
            "icon": "",
            "color": "",
            "openExternally": False,
            "html": "<b>hi</b>",
        }
    ]
    assert refused(v.external_actions, [{"title": "x", "url": "javascript:alert(1)"}]) == (
        "externalActions[0].url: 'javascript:alert(1)' is not an absolute http or https URL"
    )
    assert refused(v.external_actions, [{"title": "x", "url": "https://e.com", "openExternally": "no"}]) == (
        "externalActions[0].openExternally: expected true or false, got a string"
    )


def test_appearance_variables() -> None:
    assert v.appearance_variables({"--theme-color-1": " #fff ", "font": "'Inter', sans-serif"}) == {
        "--theme-color-1": "#fff",
        "font": "'Inter', sans-serif",
    }
    assert (
        refused(v.appearance_variables, {"x": "red</style>"})
        == "appearanceVariables.x: must not contain ; { } < > or \\"
    )
    assert refused(v.appearance_variables, {"x": 1}) == "appearanceVariables.x: expected a string, got the number 1"
    assert refused(v.appearance_variables, {"-x": "red"}) == (
        "appearanceVariables.-x: is not a CSS variable name (letters, digits, '-' and '_')"
    )
    assert refused(v.appearance_variables, {f"v{i}": "1" for i in range(201)}) == (
        "appearanceVariables: must have at most 200 entries, got 201"
    )


# -- images ----------------------------------------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(16)
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L" + bytes(14)
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><circle r="1"/></svg>'


@pytest.mark.parametrize(
    ("data", "extension", "content_type"),
    [
        (png(), ".png", "image/png"),
        (JPEG, ".jpeg", "image/jpeg"),
        (GIF, ".gif", "image/gif"),
        (WEBP, ".webp", "image/webp"),
        (SVG, ".svg", "image/svg+xml"),
        (b"\xef\xbb\xbf<svg xmlns='http://www.w3.org/2000/svg'/>", ".svg", "image/svg+xml"),
    ],
)
def test_image_formats_from_their_bytes(data: bytes, extension: str, content_type: str) -> None:
    for value in (b64(data), f"data:{content_type};base64,{b64(data)}"):
        image = v.logo(value)
        assert (image.data, image.extension, image.content_type) == (data, extension, content_type)


def test_image_content_type_aliases_and_blanks() -> None:
    assert v.logo(f"data:image/jpg;base64,{b64(JPEG)}").extension == ".jpeg"
    assert v.logo(f"  DATA:image/png;charset=x;base64,{b64(png())}\n").extension == ".png"


def test_image_size_cap() -> None:
    at_cap = b"\x89PNG\r\n\x1a\n" + bytes(v.MAX_LOGO_BYTES - 8)
    assert len(v.logo(b64(at_cap)).data) == v.MAX_LOGO_BYTES
    assert refused(v.logo, b64(at_cap + b"\x00")) == "logo: image is larger than 2048 KiB"
    assert refused(v.logo, "A" * (4 * 1024 * 1024)) == "logo: image is larger than 2048 KiB"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "logo: unable to find image data"),
        ("data:image/png;base64,", "logo: unable to find image data"),
        ("data:image/png;base64", "logo: a data URL must be base64 encoded (data:image/png;base64,...)"),
        ("abc", "logo: invalid base64 image data"),
        ("ab c=", "logo: invalid base64 image data"),
        (b64(b"GIF8"), "logo: not a PNG, JPEG, GIF, WebP or SVG image"),
        (f"data:image/gif;base64,{b64(png())}", "logo: the data is image/png, not image/gif"),
        (f"data:text/html;base64,{b64(png())}", "logo: the data is image/png, not text/html"),
        (None, "logo: expected base64 image data, got null"),
    ],
)
def test_image_refusals(value: object, message: str) -> None:
    assert refused(v.logo, value) == message


@pytest.mark.parametrize(
    ("svg", "problem"),
    [
        (b"<svg><script>alert(1)</script></svg>", "SVG images with scripts are not allowed (found <script>)"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:x="http://www.w3.org/2000/svg"><x:script/></svg>',
            "SVG images with scripts are not allowed (found <script>)",
        ),
        (b'<svg onload="alert(1)"/>', "SVG images with scripts are not allowed (found onload=)"),
        (b'<svg><rect ONCLICK="x()"/></svg>', "SVG images with scripts are not allowed (found onclick=)"),
        (
            b'<svg xmlns:xlink="http://www.w3.org/1999/xlink"><a xlink:href=" java&#10;scr&#9;ipt:alert(1)"/></svg>',
            "SVG images with scripts are not allowed (found a script URL in href=)",
        ),
        (
            b'<svg><set attributeName="href" to="javascript:alert(1)"/></svg>',
            "SVG images with scripts are not allowed (found a script URL in to=)",
        ),
        (
            b"<svg><foreignObject><iframe/></foreignObject></svg>",
            "SVG images with scripts are not allowed (found <foreignobject>)",
        ),
        (
            b"<svg><style>a{b:url(javascript:x)}</style></svg>",
            "SVG images with scripts are not allowed (found a script in <style>)",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>',
            "SVG images with a DOCTYPE or entity declarations are not allowed",
        ),
        (b"<svg><rect></svg>", "SVG image is not well-formed XML (mismatched tag: line 1, column 13)"),
        (b"<!-- <svg> --><html/>", "SVG image's root element is not <svg>"),
        (b"<svg>\xff</svg>", "SVG image is not UTF-8 text"),
    ],
)
def test_svg_that_could_run_script_is_refused(svg: bytes, problem: str) -> None:
    assert refused(v.logo, b64(svg)) == f"logo: {problem}"


def test_svg_without_script_is_accepted() -> None:
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        b'<style>rect { fill: red; }</style><a xlink:href="https://example.com"><rect width="1" height="1"/></a></svg>'
    )
    assert v.logo(b64(svg)).content_type == "image/svg+xml"
