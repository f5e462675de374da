"""Pure parts of the public configuration routes: variant names, markdown, the PerSettings cache,
the generated PNG logo."""

from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import Any

import pytest

from owncast_fast.config.runtime import Settings
from owncast_fast.media import ladder
from owncast_fast.web.routes import config as routes


@pytest.mark.parametrize(
    ("variant", "name"),
    [
        ({"name": "Phone", "videoPassthrough": True}, "Phone"),
        ({"videoPassthrough": True, "scaledHeight": 720}, "Source"),
        ({"videoBitrate": 1200, "scaledWidth": 1080, "scaledHeight": 720}, "720p @1.2Mbps"),
        ({"videoBitrate": 1200, "scaledWidth": 1280, "scaledHeight": 720}, "720h"),
        ({"videoBitrate": 4500, "scaledWidth": 1920, "scaledHeight": 1080}, "1080p @4.5Mbps"),
        ({"videoBitrate": 0, "scaledWidth": 1920, "scaledHeight": 1080}, "1080p @"),
        ({"videoBitrate": 900, "scaledWidth": 854}, "854w"),
        ({"videoBitrate": 3000, "framerate": 60}, "3Mbps@60fps"),
        ({"videoBitrate": 999, "framerate": 24}, "999Kbps@24fps"),
        ({"videoBitrate": 1250}, "1.2Mbps@0fps"),  # float32 1.25 rounds half to even, as Go's %.1f
        ({"videoBitrate": 1350}, "1.4Mbps@0fps"),
        ({"videoBitrate": 1150}, "1.1Mbps@0fps"),  # float32(1.15) is 1.1499999...
    ],
)
def test_variant_name(variant: dict[str, Any], name: str) -> None:
    assert ladder.variant_name(variant) == name


def test_variant_defaults_read_as_owncast() -> None:
    assert ladder.variant_framerate({"framerate": 0}) == 24
    assert ladder.variant_framerate({"framerate": 30, "videoPassthrough": True}) == 0
    assert ladder.variant_audio_passthrough({"audioBitrate": 0}) is True
    assert ladder.variant_audio_passthrough({"audioBitrate": 128}) is False
    assert ladder.variant_audio_passthrough({"audioBitrate": 128, "audioPassthrough": True}) is True


def test_variants_sorted_passthrough_first_then_bitrate() -> None:
    variants = [{"videoBitrate": 1000}, {"videoBitrate": 3000}, {"videoBitrate": 2000}, {"videoPassthrough": True}]
    assert [v["index"] for v in routes.variants_body(variants)] == [3, 1, 2, 0]


def test_markdown_as_owncast_renders_it() -> None:
    assert routes.render_page_content("  # Hi\n\nsee https://owncast.online  ") == (
        '<h1>Hi</h1>\n<p>see <a href="https://owncast.online">https://owncast.online</a></p>'
    )
    assert routes.render_page_content("| a |\n|---|\n| 1 |").startswith("<table>")
    assert routes.render_page_content("~~gone~~ <b>kept</b>") == "<p><del>gone</del> <b>kept</b></p>"
    assert routes.render_simple_markdown(" *soon* ") == "<p><em>soon</em></p>\n"
    assert routes.render_simple_markdown("") == ""


def test_per_settings_cache_follows_the_settings_object() -> None:
    builds: list[str] = []

    def build(settings: Settings) -> str:
        builds.append(settings.server_name)
        return settings.server_name.upper()

    cache = routes.PerSettings(build)
    first = Settings()
    assert cache.get(first) == cache.get(first) == "NEW OWNCAST SERVER"
    second = dataclasses.replace(first, server_name="lab")
    assert cache.get(second) == "LAB"
    assert builds == ["New Owncast Server", "lab"]


def test_web_config_hides_empty_optional_fields() -> None:
    body = routes.web_config_body(Settings())
    assert "streamTitle" not in body and "socketHostOverride" not in body
    federated = routes.web_config_body(
        Settings(federation_enabled=True, server_url="https://live.example.com", stream_title="On air")
    )
    assert federated["federation"] == {"account": "streamer@live.example.com", "enabled": True}
    assert federated["authentication"] == {"indieAuthEnabled": True}
    assert federated["streamTitle"] == "On air"


def test_generated_png_logo_is_a_valid_png() -> None:
    data = routes.default_png_logo()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    chunks = {}
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, payload = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        chunks[kind] = payload
        position += 12 + length
    assert struct.unpack(">IIBB", chunks[b"IHDR"][:10]) == (256, 256, 8, 6)
    pixels = zlib.decompress(chunks[b"IDAT"])
    assert len(pixels) == 256 * (1 + 256 * 4)
    row = 128 * (1 + 256 * 4) + 1
    assert pixels[row : row + 4] == b"\x00\x00\x00\x00"  # outside the rounded square: transparent
    assert pixels[row + 120 * 4 : row + 121 * 4] == b"\xff\xff\xff\xff"  # inside the play triangle
