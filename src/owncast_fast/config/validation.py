"""One validator per admin-editable setting: raw JSON `value` in, the value to store out.

Owncast 0.2 type-asserts the posted value (`configValue.Value.(string)`) and saves it, so a wrong
type panics its handler and an out-of-range number is stored as is. Here every setter's value is
checked before anything is saved: types, ranges, URLs, image data. A validator either returns the
normalised value (what the store keeps and the API reads back) or raises `ValidationError`, whose
text names the field, as the admin API reports it, and the problem: `webServerPort: port number
must be between 1 and 65535, got 70000`.

Validators are pure: no store, no clock, no network. `ffmpeg_path` alone looks at the file
system, because what it checks is a file.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import stat
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from owncast_fast.config.runtime import MAX_LATENCY_LEVEL
from owncast_fast.hls.s3 import S3Config

# Text bounds. Owncast has none; these keep a stored setting, and every /api/config answer that
# carries it, to a sane size while leaving room for anything a person would type.
MAX_LINE = 2_000  # single-line text: names, titles, one URL, one tag
MAX_DOCUMENT = 512 * 1024  # page content, custom CSS, custom JavaScript (the request cap is 1 MiB)
MAX_URL = 2_048  # the longest URL every browser accepts
MAX_LIST = 1_000  # items of a list of short strings (tags, user names)
MAX_LINKS = 50  # social handles, external actions: each is a button on the page
MAX_STREAM_KEYS = 100
MAX_STREAM_KEY = 256
MAX_APPEARANCE_VARIABLES = 200
MAX_APPEARANCE_VALUE = 200

# Output variants: each transcoded variant is a full encoder, so ten is already far more than a
# machine running one stream can feed; the ranges bound what an encoder can be asked for.
MAX_VARIANTS = 10
MAX_VIDEO_BITRATE = 100_000  # kbit/s
MAX_AUDIO_BITRATE = 1_024  # kbit/s
MAX_DIMENSION = 8_192  # pixels, either side (8K is 7680x4320)
MAX_FRAMERATE = 120
MAX_CPU_USAGE_LEVEL = 5  # Owncast's admin slider goes 1-5; 0 is its "invalid level" fallback

MAX_LOGO_BYTES = 2 * 1024 * 1024  # decoded; a logo is shown at most a few hundred pixels wide

# Encoders this build can run. Owncast lists what its ffmpeg reports; hardware encoders arrive
# with the transcoder, which probes for them.


class ValidationError(ValueError):
    """A value that cannot be saved. `str()` is `<field>: <problem>`."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def describe(value: object) -> str:
    """What a JSON value is, as an error message says it: 'a string', 'null', 'an array'..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- building blocks -------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # control characters but tab, LF, CR
_LINE_BREAK_OR_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _string(field: str, value: object, *, max_length: int = MAX_LINE, multiline: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"expected a string, got {describe(value)}")
    if len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters, got {len(value)}")
    forbidden = _CONTROL if multiline else _LINE_BREAK_OR_CONTROL
    if forbidden.search(value):
        what = "control characters" if multiline else "line breaks or control characters"
        raise ValidationError(field, f"must not contain {what}")
    return value


def _non_empty(field: str, value: object, *, max_length: int = MAX_LINE) -> str:
    text = _string(field, value, max_length=max_length).strip()
    if not text:
        raise ValidationError(field, "must not be empty")
    return text


def _boolean(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, f"expected true or false, got {describe(value)}")
    return value


def _integer(field: str, value: object, low: int, high: int, unit: str = "") -> int:
    """A JSON integer in [low, high]. 8080.0 is accepted (JavaScript has only doubles), 80.5 is not."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"expected an integer, got {describe(value)}")
    if not low <= value <= high:
        raise ValidationError(field, f"must be an integer from {low} to {high}{unit}, got {value}")
    return value


def _array(field: str, value: object, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationError(field, f"expected an array, got {describe(value)}")
    if len(value) > max_items:
        raise ValidationError(field, f"must have at most {max_items} items, got {len(value)}")
    return value


def _object(field: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(field, f"expected an object, got {describe(value)}")
    return value


def _optional(item: Mapping[str, Any], key: str, default: object) -> object:
    """A field of a posted object; absent and null read as Go's zero value, as Owncast decodes them."""
    value = item.get(key)
    return default if value is None else value


def _url(field: str, value: object, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """An absolute URL with one of `schemes` and a host; surrounding blanks are dropped."""
    text = _string(field, value, max_length=MAX_URL).strip()
    allowed = " or ".join(schemes)
    if any(c.isspace() for c in text):
        raise ValidationError(field, f"{text!r} is not a URL: it contains spaces")
    try:
        parts = urlsplit(text)
        usable = parts.scheme.lower() in schemes and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number or out of range, a malformed IPv6 host
        usable = False
    if not usable:
        raise ValidationError(field, f"{text!r} is not an absolute {allowed} URL")
    return text


def _optional_url(field: str, value: object, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """A URL, or "" to clear the setting."""
    if isinstance(value, str) and not value.strip():
        return ""
    return _url(field, value, schemes)


def _strings(field: str, value: object, *, max_length: int = MAX_LINE) -> list[str]:
    items = _array(field, value, MAX_LIST)
    return [_non_empty(f"{field}[{i}]", item, max_length=max_length) for i, item in enumerate(items)]


# --- text settings ---------------------------------------------------------------------------


def server_name(value: object) -> str:
    return _non_empty("name", value)


def server_summary(value: object) -> str:
    return _string("summary", value, max_length=MAX_DOCUMENT, multiline=True)


def stream_title(value: object) -> str:
    return _string("streamTitle", value).strip()


def welcome_message(value: object) -> str:
    # Owncast trims the welcome and offline messages (strings.TrimSpace) before saving them.
    return _string("welcomeMessage", value, max_length=MAX_DOCUMENT, multiline=True).strip()


def offline_message(value: object) -> str:
    return _string("offlineMessage", value, max_length=MAX_DOCUMENT, multiline=True).strip()


def page_content(value: object) -> str:
    return _string("extraPageContent", value, max_length=MAX_DOCUMENT, multiline=True)


def custom_styles(value: object) -> str:
    return _string("customStyles", value, max_length=MAX_DOCUMENT, multiline=True)


def custom_javascript(value: object) -> str:
    return _string("customJavascript", value, max_length=MAX_DOCUMENT, multiline=True)


def tags(value: object) -> list[str]:
    """Owncast strips a leading '#' from each tag."""
    items = _array("tags", value, MAX_LIST)
    result = []
    for i, item in enumerate(items):
        tag = _string(f"tags[{i}]", item).strip().lstrip("#").strip()
        if not tag:
            raise ValidationError(f"tags[{i}]", "must not be empty")
        result.append(tag)
    return result


def forbidden_usernames(value: object) -> list[str]:
    return _strings("forbiddenUsernames", value)


def suggested_usernames(value: object) -> list[str]:
    return _strings("suggestedUsernames", value)


# --- switches --------------------------------------------------------------------------------


def switch(field: str) -> Callable[[object], bool]:
    """The validator of an on/off setting reported as `field`."""

    def validate(value: object) -> bool:
        return _boolean(field, value)

    validate.__name__ = f"switch_{field}"
    return validate


# --- credentials -----------------------------------------------------------------------------


def admin_password(value: object) -> str:
    """Any non-empty password; bcrypt's 72-byte limit is handled by `security.hash_password`."""
    password = _string("adminPassword", value, max_length=1_024)
    if not password:
        raise ValidationError("adminPassword", "must not be empty")
    return password


def stream_keys(value: object) -> list[dict[str, str]]:
    """[{key, comment}]: at least one key, each non-empty, without spaces, and no key twice.

    A key is the last segment of the publish URL (`rtmp://host/live/<key>`), so a blank or a
    slash in it could never be typed into OBS's key field and matched.
    """
    items = _array("streamKeys", value, MAX_STREAM_KEYS)
    if not items:
        raise ValidationError("streamKeys", "must provide at least one valid stream key")
    keys: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(items):
        item = _object(f"streamKeys[{i}]", raw)
        field = f"streamKeys[{i}].key"
        key = _string(field, _optional(item, "key", ""), max_length=MAX_STREAM_KEY)
        if not key:
            raise ValidationError(field, "stream key cannot be empty")
        if any(c.isspace() for c in key) or "/" in key:
            raise ValidationError(field, "must not contain spaces or '/'")
        if key in seen:
            raise ValidationError(field, f"duplicate of streamKeys[{seen[key]}].key")
        seen[key] = i
        comment = _string(f"streamKeys[{i}].comment", _optional(item, "comment", ""))
        keys.append({"key": key, "comment": comment})
    return keys


# --- network ---------------------------------------------------------------------------------


def port(field: str) -> Callable[[object], int]:
    def validate(value: object) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(field, f"port must be a number, got {describe(value)}")
        if not 1 <= value <= 65535:
            raise ValidationError(field, f"port number must be between 1 and 65535, got {value}")
        return value

    validate.__name__ = f"port_{field}"
    return validate


def listen_address(value: object) -> str:
    """An IPv4 or IPv6 address, stored in its canonical form (as Go's `net.ParseIP(...).String()`)."""
    text = _string("webServerIP", value).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValidationError("webServerIP", f"{text!r} is not an IP address") from None


# Go's net.IP.IsPrivate: RFC 1918 and RFC 4193 only (loopback and link-local are not "private").
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def server_url(value: object) -> str:
    """The public URL of this server, without a trailing slash; "" clears it.

    Owncast refuses a URL whose host is a private address: the directory and the fediverse
    would link to a place nobody outside can reach.
    """
    url = _optional_url("serverURL", value).rstrip("/")
    host = urlsplit(url).hostname if url else None
    if host:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and any(address in network for network in _PRIVATE_NETWORKS):
            raise ValidationError("serverURL", "server URL cannot be private")
    return url


def socket_host_override(value: object) -> str:
    return _optional_url("socketHostOverride", value, ("http", "https", "ws", "wss")).rstrip("/")


def video_serving_endpoint(value: object) -> str:
    return _optional_url("videoServingEndpoint", value).rstrip("/")


# --- video -----------------------------------------------------------------------------------


def video_codec(value: object) -> str:
    """Only an encoder that passed its probe encode on this host (see media/encoders.py)."""
    from owncast_fast.media.encoders import supported_video_codecs

    codec = _string("videoCodec", value).strip()
    supported = supported_video_codecs()
    if codec not in supported:
        raise ValidationError("videoCodec", f"{codec!r} is not usable on this host (usable: {', '.join(supported)})")
    return codec


def latency_level(value: object) -> int:
    return _integer("streamLatencyLevel", value, 0, MAX_LATENCY_LEVEL)


# (key, kind, default, low, high, unit): Owncast's StreamOutputVariant fields, in its JSON order.
_VARIANT_FIELDS: tuple[tuple[str, type, object, int, int, str], ...] = (
    ("name", str, "", 0, 0, ""),
    ("videoPassthrough", bool, False, 0, 0, ""),
    ("audioPassthrough", bool, False, 0, 0, ""),
    ("videoBitrate", int, 0, 0, MAX_VIDEO_BITRATE, " kbit/s"),
    ("audioBitrate", int, 0, 0, MAX_AUDIO_BITRATE, " kbit/s"),
    ("scaledWidth", int, 0, 0, MAX_DIMENSION, " pixels"),
    ("scaledHeight", int, 0, 0, MAX_DIMENSION, " pixels"),
    ("framerate", int, 0, 0, MAX_FRAMERATE, " fps"),
    ("cpuUsageLevel", int, 0, 0, MAX_CPU_USAGE_LEVEL, ""),
)


def stream_output_variants(value: object) -> list[dict[str, Any]]:
    """Owncast's StreamOutputVariant list. Missing fields read as Go's zero values (Owncast then
    falls back to 24 fps and 1200 kbit/s when it builds the encoder); unknown fields are dropped,
    as Go's decoder ignores them."""
    items = _array("streamOutputVariants", value, MAX_VARIANTS)
    if not items:
        raise ValidationError("streamOutputVariants", "must have at least one variant")
    variants = []
    for i, raw in enumerate(items):
        item = _object(f"streamOutputVariants[{i}]", raw)
        variant: dict[str, Any] = {}
        for key, kind, default, low, high, unit in _VARIANT_FIELDS:
            field = f"streamOutputVariants[{i}].{key}"
            given = _optional(item, key, default)
            if kind is str:
                variant[key] = _string(field, given).strip()
            elif kind is bool:
                variant[key] = _boolean(field, given)
            else:
                variant[key] = _integer(field, given, low, high, unit)
        variants.append(variant)
    return variants


def ffmpeg_path(value: object) -> str:
    """An executable file, checked as Owncast's VerifyFFMpegPath, or empty: find ffmpeg on the PATH."""
    path = _string("ffmpegPath", value).strip()
    if not path:
        return ""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ValidationError("ffmpegPath", "ffmpeg path does not exist") from None
    except OSError as exc:
        raise ValidationError("ffmpegPath", f"error while verifying the ffmpeg path: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ValidationError("ffmpegPath", "ffmpeg path can not be a folder")
    if not info.st_mode & 0o111:
        raise ValidationError("ffmpegPath", "ffmpeg path is not executable")
    return path


# S3Info's fields; strings and flags.
_S3_STRINGS = ("endpoint", "accessKey", "secret", "bucket", "region", "acl", "pathPrefix")
_S3_FLAGS = ("enabled", "forcePathStyle")


def s3(value: object) -> dict[str, Any]:
    """S3Info: every field typed; when enabled, the same checks the HLS uploader applies."""
    item = _object("s3", value)
    config: dict[str, Any] = {}
    for key in _S3_STRINGS:
        config[key] = _string(f"s3.{key}", _optional(item, key, ""), max_length=MAX_URL).strip()
    for key in _S3_FLAGS:
        config[key] = _boolean(f"s3.{key}", _optional(item, key, False))
    try:
        S3Config.from_setting(config)
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        raise ValidationError(field, problem) from None
    return config


# --- links and appearance --------------------------------------------------------------------


def social_handles(value: object) -> list[dict[str, str]]:
    """[{platform, url, icon?}]: platform is a key of /api/socialplatforms or any name."""
    items = _array("socialHandles", value, MAX_LINKS)
    handles = []
    for i, raw in enumerate(items):
        item = _object(f"socialHandles[{i}]", raw)
        handle = {
            "platform": _non_empty(f"socialHandles[{i}].platform", _optional(item, "platform", "")),
            "url": _url(f"socialHandles[{i}].url", _optional(item, "url", "")),
        }
        icon = _string(f"socialHandles[{i}].icon", _optional(item, "icon", ""), max_length=MAX_URL).strip()
        if icon:
            handle["icon"] = icon
        handles.append(handle)
    return handles


def external_actions(value: object) -> list[dict[str, Any]]:
    """[ExternalAction]: a title, and a URL to open or HTML to show in the modal."""
    items = _array("externalActions", value, MAX_LINKS)
    actions = []
    for i, raw in enumerate(items):
        item = _object(f"externalActions[{i}]", raw)
        name = f"externalActions[{i}]"
        html = _string(f"{name}.html", _optional(item, "html", ""), max_length=MAX_DOCUMENT, multiline=True)
        url_given = _optional(item, "url", "")
        if not html.strip() and isinstance(url_given, str) and not url_given.strip():
            raise ValidationError(f"{name}.url", "an action needs a URL or HTML content")
        action: dict[str, Any] = {
            "url": _optional_url(f"{name}.url", url_given),
            "title": _non_empty(f"{name}.title", _optional(item, "title", "")),
            "description": _string(f"{name}.description", _optional(item, "description", "")).strip(),
            "icon": _string(f"{name}.icon", _optional(item, "icon", ""), max_length=MAX_URL).strip(),
            "color": _string(f"{name}.color", _optional(item, "color", ""), max_length=64).strip(),
            "openExternally": _boolean(f"{name}.openExternally", _optional(item, "openExternally", False)),
        }
        if html.strip():
            action["html"] = html
        actions.append(action)
    return actions


# A CSS custom property name, with or without its leading dashes (Owncast's UI sends them bare).
_CSS_VARIABLE = re.compile(r"^(--)?[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
# Characters that would end a CSS declaration or the <style> element the value is written into.
_CSS_BREAKOUT = re.compile(r"[;{}<>\\\x00-\x1f\x7f]")


def appearance_variables(value: object) -> dict[str, str]:
    """Name -> CSS value map. A value cannot close its declaration or the style element."""
    items = _object("appearanceVariables", value)
    if len(items) > MAX_APPEARANCE_VARIABLES:
        raise ValidationError(
            "appearanceVariables", f"must have at most {MAX_APPEARANCE_VARIABLES} entries, got {len(items)}"
        )
    result = {}
    for name, raw in items.items():
        field = f"appearanceVariables.{name}"
        if not _CSS_VARIABLE.match(name):
            raise ValidationError(field, "is not a CSS variable name (letters, digits, '-' and '_')")
        css = _string(field, raw, max_length=MAX_APPEARANCE_VALUE).strip()
        if _CSS_BREAKOUT.search(css):
            raise ValidationError(field, "must not contain ; { } < > or \\")
        result[name] = css
    return result


# --- images ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Image:
    data: bytes
    extension: str  # with the dot, as Owncast names the file: logo.png, logo.jpeg...
    content_type: str


IMAGE_TYPES = {
    ".png": "image/png",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}
_CONTENT_TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/svg": "image/svg+xml"}


def _sniff(data: bytes) -> str | None:
    """The image format by its magic bytes (PNG, JPEG, GIF, WebP), or SVG by its root element."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<svg", b"<!--")) and b"<svg" in head:
        return ".svg"
    return None


# What an SVG shown as a page (someone opens /logo in a tab) could run or embed: scripts, event
# handler attributes, javascript: URLs, HTML islands. A logo needs none of them.
_SCRIPT_URL = re.compile(r"^\s*(javascript|vbscript|data\s*:\s*text/html)", re.IGNORECASE)
_FORBIDDEN_SVG_ELEMENTS = {"script", "foreignobject", "iframe", "embed", "object", "handler", "listener"}


def _local_name(name: str) -> str:
    return name.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def check_svg(field: str, data: bytes) -> None:
    """Refuse an SVG that could run script. Entity declarations are refused before parsing, so the
    parser never expands one (no billion laughs, no external entities)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(field, "SVG image is not UTF-8 text") from None
    if "<!doctype" in text.lower() or "<!entity" in text.lower():
        raise ValidationError(field, "SVG images with a DOCTYPE or entity declarations are not allowed")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise ValidationError(field, f"SVG image is not well-formed XML ({exc})") from None
    if _local_name(root.tag) != "svg":
        raise ValidationError(field, "SVG image's root element is not <svg>")
    for element in root.iter():
        tag = _local_name(element.tag)
        if tag in _FORBIDDEN_SVG_ELEMENTS:
            raise ValidationError(field, f"SVG images with scripts are not allowed (found <{tag}>)")
        for attribute, attribute_value in element.attrib.items():
            name = _local_name(attribute)
            if name.startswith("on"):
                raise ValidationError(field, f"SVG images with scripts are not allowed (found {name}=)")
            if _SCRIPT_URL.match(_LINE_BREAK_OR_CONTROL.sub("", attribute_value)):
                raise ValidationError(field, f"SVG images with scripts are not allowed (found a script URL in {name}=)")
        if tag == "style" and element.text and re.search(r"javascript:|expression\s*\(", element.text, re.I):
            raise ValidationError(field, "SVG images with scripts are not allowed (found a script in <style>)")


def image(field: str, value: object, max_bytes: int = MAX_LOGO_BYTES) -> Image:
    """A base64 image: a data URL (`data:image/png;base64,...`, what Owncast's admin sends) or bare
    base64. The format comes from the bytes, never from the declared type alone; PNG, JPEG, GIF,
    WebP and script-free SVG are accepted."""
    if not isinstance(value, str):
        raise ValidationError(field, f"expected base64 image data, got {describe(value)}")
    encoded = value.strip()
    declared = ""
    if encoded[:5].lower() == "data:":
        header, comma, encoded = encoded.partition(",")
        parameters = header[5:].split(";")
        if not comma or "base64" not in (p.strip().lower() for p in parameters[1:]):
            raise ValidationError(field, "a data URL must be base64 encoded (data:image/png;base64,...)")
        declared = parameters[0].strip().lower()
        declared = _CONTENT_TYPE_ALIASES.get(declared, declared)
    if not encoded:
        raise ValidationError(field, "unable to find image data")
    # Four base64 characters carry three bytes: refuse before decoding anything too large.
    if len(encoded) // 4 * 3 > max_bytes + 2:
        raise ValidationError(field, f"image is larger than {max_bytes // 1024} KiB")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(field, "invalid base64 image data") from None
    if len(data) > max_bytes:
        raise ValidationError(field, f"image is larger than {max_bytes // 1024} KiB")
    extension = _sniff(data)
    if extension is None:
        raise ValidationError(field, "not a PNG, JPEG, GIF, WebP or SVG image")
    content_type = IMAGE_TYPES[extension]
    if declared and declared != content_type:
        raise ValidationError(field, f"the data is {content_type}, not {declared}")
    if extension == ".svg":
        check_svg(field, data)
    return Image(data, extension, content_type)


def logo(value: object) -> Image:
    return image("logo", value)
