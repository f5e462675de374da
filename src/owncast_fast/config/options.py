"""Start-up options of `owncast-fast serve`.

Load order, later wins: documented defaults < TOML file (`--config`) < environment
(`OWNCAST_FAST_<NAME>`) < command-line flags. These are process-level choices (where to listen,
where data lives); the settings an admin edits at run time live in `runtime.py` and the store.

Every option is declared once in `OPTIONS` with its type, default and help text: the CLI
parser, the environment reader, the TOML reader and the docs table are all generated from it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "OWNCAST_FAST_"
LOG_LEVELS = ("debug", "info", "warning", "error")


class OptionsError(ValueError):
    """A start-up option is invalid; the message is the one line shown to the operator."""


def _port(value: str | int, name: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise OptionsError(f"{name}: {value!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise OptionsError(f"{name}: {port} is not a port number (1-65535)")
    return port


def _optional_port(value: str | int, name: str) -> int:
    return 0 if str(value) in ("", "0") else _port(value, name)


def _ip(value: str | int, name: str) -> str:
    text = str(value)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise OptionsError(f"{name}: {text!r} is not an IP address") from None
    return text


def _text(value: str | int, name: str) -> str:
    if not isinstance(value, str):
        raise OptionsError(f"{name}: expected text, got {value!r}")
    return value


def _log_level(value: str | int, name: str) -> str:
    text = str(value).lower()
    if text not in LOG_LEVELS:
        raise OptionsError(f"{name}: {value!r} is not one of {', '.join(LOG_LEVELS)}")
    return text


HLS_CONTAINERS = ("fmp4", "ts")


def _hls_container(value: str | int, name: str) -> str:
    text = str(value).lower()
    if text not in HLS_CONTAINERS:
        raise OptionsError(f"{name}: {value!r} is not one of {', '.join(HLS_CONTAINERS)}")
    return text


def _flag(value: str | int | bool, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise OptionsError(f"{name}: {value!r} is not true or false")


def _seconds(low: float, high: float) -> Callable[[str | int | float, str], float]:
    """A parser for a number of seconds within [low, high]."""

    def parse(value: str | int | float, name: str) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise OptionsError(f"{name}: {value!r} is not a number of seconds") from None
        if not low <= seconds <= high:
            raise OptionsError(f"{name}: {seconds:g} is outside {low:g}..{high:g} seconds")
        return seconds

    return parse


_part_target = _seconds(0.1, 2.0)
_web_timeout = _seconds(1.0, 3600.0)


def _size(value: str | int, name: str) -> int:
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise OptionsError(f"{name}: {value!r} is not a whole number of bytes") from None
    if not 4096 <= size <= 16 * 1024 * 1024:
        raise OptionsError(f"{name}: {size} is outside 4096..16777216 bytes")
    return size


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # dashed, as on the command line
    parse: Callable[[Any, str], Any]
    help: str
    secret: bool = False

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.attr.upper()

    @property
    def default(self) -> Any:
        return getattr(DEFAULTS, self.attr)


OPTIONS: tuple[Option, ...] = (
    Option("web-ip", _ip, "address the web server (API, HLS, chat, UI) listens on"),
    Option("web-port", _port, "web server port (Owncast's default)"),
    Option(
        "web-timeout",
        _web_timeout,
        "seconds a web client may leave our data unacknowledged (or stay silent on an idle chat socket) "
        "before its connection is dropped, as Owncast's chat does after 60 s",
    ),
    Option("rtmp-ip", _ip, "address the RTMP ingest listens on"),
    Option("rtmp-port", _port, "RTMP ingest port"),
    Option("data-dir", _text, "directory for the database, HLS files, logs and uploads"),
    Option(
        "database",
        _text,
        "SQLite file path, or a postgresql:// URL; empty means <data-dir>/owncast-fast.db",
        secret=True,
    ),
    Option(
        "admin-password",
        _text,
        "set the admin password (stored as a bcrypt hash); on first start the default is abc123",
        secret=True,
    ),
    Option(
        "stream-key",
        _text,
        "temporary stream key: while set, only this key may publish (stored keys are ignored)",
        secret=True,
    ),
    Option("config", _text, "optional TOML file with any of these options (dashes or underscores)"),
    Option("log-level", _log_level, "one of debug, info, warning, error"),
    Option(
        "rtmps-port",
        _optional_port,
        "RTMPS (RTMP over TLS) port; 0 disables it (needs --tls-cert and --tls-key)",
    ),
    Option("tls-cert", _text, "PEM certificate chain for the RTMPS listener"),
    Option("tls-key", _text, "PEM private key for the RTMPS listener", secret=True),
    Option(
        "rtmp-max-message-size",
        _size,
        "largest RTMP message accepted from a publisher, in bytes (bounds memory per connection)",
    ),
    Option("hls-container", _hls_container, "HLS segment format: fmp4 (CMAF, LL-HLS capable) or ts (legacy players)"),
    Option(
        "ll-hls",
        _flag,
        "serve Low-Latency HLS: parts and blocking reload on fMP4 variants, "
        "blocking reload for whole segments on MPEG-TS",
    ),
    Option(
        "hls-part-target",
        _part_target,
        "LL-HLS part length in seconds; the player stays about three parts behind live",
    ),
    Option("hls-disk-copy", _flag, "also write the live HLS files under <data-dir>/hls (they are served from memory)"),
    Option(
        "trusted-proxies",
        _text,
        "comma-separated addresses of reverse proxies whose X-Forwarded-For names the client (chat IP bans)",
    ),
)


@dataclass(frozen=True, slots=True)
class Options:
    web_ip: str = "0.0.0.0"
    web_port: int = 8080
    web_timeout: float = 60.0
    rtmp_ip: str = "0.0.0.0"
    rtmp_port: int = 1935
    data_dir: str = "./data"
    database: str = ""
    admin_password: str = ""
    stream_key: str = ""
    config: str = ""
    log_level: str = "info"
    rtmps_port: int = 0
    tls_cert: str = ""
    tls_key: str = ""
    rtmp_max_message_size: int = 8 * 1024 * 1024
    hls_container: str = "fmp4"
    ll_hls: bool = True
    # A third of a second: ten frames at 30 fps, so parts hold whole frames at common rates and
    # PART-HOLD-BACK (three parts) is one second.
    hls_part_target: float = 1 / 3
    hls_disk_copy: bool = False
    trusted_proxies: str = ""
    # Which options were set explicitly (file, environment or flag) rather than defaulted.
    explicit: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def database_target(self) -> str:
        """The SQLite path or PostgreSQL URL the store opens."""
        return self.database or str(self.data_path / "owncast-fast.db")


DEFAULTS = Options()
OPTIONS_BY_ATTR: dict[str, Option] = {opt.attr: opt for opt in OPTIONS}
assert set(OPTIONS_BY_ATTR) == {f.name for f in dataclasses.fields(Options)} - {"explicit"}


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise OptionsError(f"config file {path}: not found") from None
    except OSError as exc:
        raise OptionsError(f"config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise OptionsError(f"config file {path}: invalid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        attr = key.replace("-", "_")
        if attr not in OPTIONS_BY_ATTR or attr == "config":
            known = ", ".join(opt.name for opt in OPTIONS if opt.attr != "config")
            raise OptionsError(f"config file {path}: unknown key {key!r} (known keys: {known})")
        values[attr] = value
    return values


def load_options(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Options:
    """Merge defaults < file < environment < flags. `flags` holds only flags the user gave."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    env_values = {opt.attr: env[opt.env] for opt in OPTIONS if opt.env in env}

    config_path = flags.get("config") or env_values.get("config") or ""
    if config_path:
        for attr, value in _read_file(config_path).items():
            raw[attr] = value
            sources[attr] = f"config file {config_path}"
    for attr, value in env_values.items():
        raw[attr] = value
        sources[attr] = OPTIONS_BY_ATTR[attr].env
    for attr, value in flags.items():
        if value is not None:
            raw[attr] = value
            sources[attr] = "--" + OPTIONS_BY_ATTR[attr].name

    parsed: dict[str, Any] = {}
    for attr, value in raw.items():
        opt = OPTIONS_BY_ATTR[attr]
        parsed[attr] = opt.parse(value, sources[attr])
    options = dataclasses.replace(Options(), **parsed, explicit=frozenset(parsed))
    if options.rtmps_port and not (options.tls_cert and options.tls_key):
        raise OptionsError("--rtmps-port needs both --tls-cert and --tls-key")
    return options


def markdown_table() -> str:
    """The options table of README.md (a test keeps the README equal to this)."""
    rows = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for opt in OPTIONS:
        shown = f"{round(opt.default, 3):g}" if isinstance(opt.default, float) else str(opt.default)
        default = f"`{shown}`" if opt.default != "" else "(empty)"
        meaning = opt.help.replace("<", "&lt;").replace(">", "&gt;")
        rows.append(f"| `--{opt.name}` | `{opt.env}` | {default} | {meaning} |")
    return "\n".join(rows)
