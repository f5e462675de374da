"""Owncast's chat flood protection (reference §1.4), with the clock passed in.

A token bucket of burst 1 refilled at 3 tokens per 2 seconds; the first message that finds it empty
starts a 10-second timeout during which every inbound frame is dropped. The caller tells the
client once, when `check` returns `Verdict.BLOCKED_NOW`.
"""

from __future__ import annotations

import enum

RATE_PER_SECOND = 3 / 2
BURST = 1.0
TIMEOUT_S = 10.0


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    BLOCKED_NOW = "blocked now"  # this frame started a timeout: tell the client
    BLOCKED = "blocked"  # still in a timeout: drop silently


class RateLimiter:
    __slots__ = ("_blocked_until", "_tokens", "_updated")

    def __init__(self, now: float) -> None:
        self._tokens = BURST
        self._updated = now
        self._blocked_until = 0.0

    def in_timeout(self, now: float) -> bool:
        return now < self._blocked_until

    def check(self, now: float) -> Verdict:
        if self.in_timeout(now):
            return Verdict.BLOCKED
        self._tokens = min(BURST, self._tokens + (now - self._updated) * RATE_PER_SECOND)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return Verdict.ALLOWED
        self._blocked_until = now + TIMEOUT_S
        return Verdict.BLOCKED_NOW
