"""Active viewers, as Owncast counts them (reference/owncast-behavior.md §5).

Theory of operation: a viewer is whoever fetched a media playlist or called `GET /api/ping`
within the last 15 s; the web player pings every 4 s. Identity is `md5_hex(ip + user agent)`,
so two browsers behind one NAT count twice and one browser counts once however many tabs it has.
Marking happens only while a stream is connected; a task prunes expired viewers every 5 s. The
count is Owncast's `viewerCount` (0 while offline); the session peak is the running maximum of
the stream (reset at each connect) and the overall peak the all-time maximum.

Client IP is Owncast's rule: the first entry of `X-Forwarded-For` when the header is present,
else the peer address. The header is believed from anyone, as Owncast believes it: it only
decides viewer identity, which a client can vary at will through its user agent anyway, so
trusting it costs nothing that was protected before, and behind a reverse proxy it is the only
way to tell viewers apart. It must never be used for anything that needs a real address (bans).

The tracker is a sans-I/O core: callers pass `now`. It is called from Robyn's worker threads
(`/api/ping`) and the event loop (playlists, the prune task), hence the lock.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from owncast_fast.timefmt import rfc3339

# Owncast's constants (§5).
VIEWER_EXPIRY_SECONDS = 15.0
PRUNE_INTERVAL_SECONDS = 5.0
# Owncast forgets the session peak at start-up when the last stream ended longer ago than this.
SESSION_PEAK_MEMORY = timedelta(minutes=5)

# Every identity costs one entry (under 700 bytes) until it expires, and a client can mint
# identities at will by varying its user agent: 100,000 entries (under 70 MB) is far above any
# audience one node serves, and a flood beyond it stops adding viewers instead of growing memory.
MAX_VIEWERS = 100_000
# Kept for display in the admin viewer list only (real browsers send under 200); the identity
# hash uses the whole header.
MAX_USER_AGENT_CHARS = 256


def client_id(ip_address: str, user_agent: str) -> str:
    """Owncast's viewer identity (`utils.GenerateClientIDFromRequest`)."""
    return hashlib.md5((ip_address + user_agent).encode(), usedforsecurity=False).hexdigest()


def client_ip(peer: str | None, forwarded_for: str | None) -> str:
    """The first `X-Forwarded-For` entry if there is one, else the peer address without its port."""
    if forwarded_for:
        first = forwarded_for.split(",", 1)[0].strip()
        if first:
            return first
    return _strip_port(peer or "")


def _strip_port(address: str) -> str:
    if address.startswith("["):  # [v6]:port
        return address[1:].split("]", 1)[0]
    if address.count(":") == 1:  # v4:port
        return address.split(":", 1)[0]
    return address  # bare v4 or bare v6


@dataclass(slots=True)
class Viewer:
    client_id: str
    ip_address: str
    user_agent: str
    first_seen: datetime
    last_seen: datetime

    def to_json(self) -> dict[str, Any]:
        """Owncast's `Viewer`; `geo` is null because no GeoIP database is configured."""
        return {
            "firstSeen": rfc3339(self.first_seen),
            "geo": None,
            "userAgent": self.user_agent,
            "ipAddress": self.ip_address,
            "clientID": self.client_id,
        }


class ViewerTracker:
    def __init__(
        self,
        *,
        expiry: float = VIEWER_EXPIRY_SECONDS,
        max_viewers: int = MAX_VIEWERS,
        session_peak: int = 0,
        overall_peak: int = 0,
    ) -> None:
        self._expiry = timedelta(seconds=expiry)
        self._max_viewers = max_viewers
        self._viewers: dict[str, Viewer] = {}
        self._lock = threading.Lock()
        self.online = False
        self.session_peak = session_peak
        self.overall_peak = max(overall_peak, session_peak)
        self.refused = 0  # identities not added because MAX_VIEWERS were active

    @classmethod
    def restored(
        cls, *, session_peak: int, overall_peak: int, last_disconnect: datetime | None, now: datetime, **options: Any
    ) -> ViewerTracker:
        """A tracker continuing the stored peaks; the session peak only if the stream ended < 5 min ago."""
        recent = last_disconnect is not None and now - last_disconnect <= SESSION_PEAK_MEMORY
        return cls(session_peak=session_peak if recent else 0, overall_peak=overall_peak, **options)

    @property
    def count(self) -> int:
        """Owncast's `viewerCount`: the active viewers while online, else 0."""
        return len(self._viewers) if self.online else 0

    def stream_started(self) -> None:
        with self._lock:
            self.online = True
            self.session_peak = 0

    def stream_stopped(self) -> None:
        # Viewers seen during the stream expire on their own, as in Owncast; the count is 0 from now.
        with self._lock:
            self.online = False

    def mark_active(self, ip_address: str, user_agent: str, now: datetime) -> bool:
        """Note a ping or playlist fetch; False when offline or when the table is full."""
        if not self.online:
            return False
        key = client_id(ip_address, user_agent)
        with self._lock:
            if not self.online:
                return False
            viewer = self._viewers.get(key)
            if viewer is not None:
                viewer.last_seen = now
                return True
            if len(self._viewers) >= self._max_viewers:
                self.refused += 1
                return False
            self._viewers[key] = Viewer(key, ip_address, user_agent[:MAX_USER_AGENT_CHARS], now, now)
            self.session_peak = max(self.session_peak, len(self._viewers))
            self.overall_peak = max(self.overall_peak, self.session_peak)
            return True

    def prune(self, now: datetime) -> int:
        """Forget viewers not seen for the expiry time (Owncast keeps those seen less long ago)."""
        with self._lock:
            expired = [key for key, viewer in self._viewers.items() if now - viewer.last_seen >= self._expiry]
            for key in expired:
                del self._viewers[key]
        return len(expired)

    def viewers(self) -> list[Viewer]:
        with self._lock:
            return list(self._viewers.values())
