from __future__ import annotations

from owncast_fast.chat.ratelimit import RateLimiter, Verdict


def test_three_messages_per_two_seconds_then_a_ten_second_timeout() -> None:
    limiter = RateLimiter(now=0.0)
    assert [limiter.check(t) for t in (0.0, 0.7, 1.4)] == [Verdict.ALLOWED] * 3
    assert limiter.check(1.5) is Verdict.BLOCKED_NOW
    assert limiter.check(2.5) is Verdict.BLOCKED
    assert limiter.in_timeout(11.4)
    assert not limiter.in_timeout(11.5)
    assert limiter.check(11.5) is Verdict.ALLOWED


def test_burst_is_one() -> None:
    limiter = RateLimiter(now=0.0)
    assert limiter.check(100.0) is Verdict.ALLOWED
    assert limiter.check(100.1) is Verdict.BLOCKED_NOW
