"""Chat users (reference §1.7, §2.1): tokens, ids, colours, display-name rules, generated names."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

from owncast_fast.chat.render import strip_html

MAX_DISPLAY_NAME_LENGTH = 30  # code points (Owncast's MaxChatDisplayNameLength)
MAX_USER_COLOR = 7  # colours 0..7 map to --theme-color-users-0..7
SUGGESTED_NAMES_MINIMUM = 10  # Owncast only draws from the suggested list when it holds at least 10
ESTABLISHED_USER_S = 15 * 60
MODERATOR_SCOPE = "MODERATOR"

# Our own word lists for generated names ("adjective-noun"); Owncast's are different words.
_ADJECTIVES = (
    "amber", "brave", "breezy", "bright", "calm", "clever", "cosmic", "curious", "dapper", "eager",
    "fancy", "gentle", "glad", "golden", "happy", "hazy", "jolly", "keen", "lively", "lucky",
    "mellow", "merry", "misty", "nimble", "peppy", "plucky", "quick", "quiet", "rosy", "sunny",
    "swift", "tidy", "upbeat", "vivid", "witty", "zesty",
)  # fmt: skip
_NOUNS = (
    "badger", "beacon", "canyon", "comet", "cricket", "dune", "falcon", "fern", "harbor", "heron",
    "island", "kettle", "lantern", "maple", "meadow", "nook", "otter", "pebble", "pine", "quill",
    "raven", "reef", "river", "sparrow", "summit", "thistle", "tulip", "valley", "willow", "wren",
)  # fmt: skip


def new_access_token() -> str:
    """32 random bytes as URL-safe base64 with padding: always 44 characters ending in '='."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def new_id() -> str:
    """A short URL-safe id (Owncast uses shortid: about 9 characters of [0-9A-Za-z_-]).

    Every chat event gets one, so one read of the system's random source (7 bytes, 54 bits kept),
    not one per character."""
    return secrets.token_urlsafe(7)[:9]


def new_color() -> int:
    return secrets.randbelow(MAX_USER_COLOR + 1)


def clean_display_name(raw: str) -> str:
    """HTML stripped, carriage returns removed, cut to 30 code points, trimmed (Owncast's order)."""
    return strip_html(raw).replace("\r", "")[:MAX_DISPLAY_NAME_LENGTH].strip()


def is_forbidden(name: str, blocked: Sequence[str]) -> bool:
    """Owncast's check: a name is refused when a blocked entry (lower-cased) *contains* it.

    The proposed name is not lower-cased: with `admin` blocked, `adm` is refused and `Admin`
    allowed, as in Owncast. An empty name is always refused.
    """
    if not name:
        return True
    return any(name in entry.strip().lower() for entry in blocked)


def generated_name(suggested: Sequence[str]) -> str:
    usable = [name for name in suggested if name.strip()]
    if len(usable) >= SUGGESTED_NAMES_MINIMUM:
        return clean_display_name(secrets.choice(usable))
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}"
