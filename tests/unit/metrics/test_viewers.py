"""The viewer tracker: Owncast's identity, 15 s expiry, online-only marking and peaks (behavior §5)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from owncast_fast.metrics.viewers import (
    MAX_USER_AGENT_CHARS,
    ViewerTracker,
    client_id,
    client_ip,
)

T0 = datetime(2025, 1, 11, 12, 0, tzinfo=UTC)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:134.0) Gecko/20100101 Firefox/134.0"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def live_tracker(**options: int | float) -> ViewerTracker:
    tracker = ViewerTracker(**options)  # type: ignore[arg-type]
    tracker.stream_started()
    return tracker


def test_identity_is_md5_hex_of_ip_then_user_agent() -> None:
    assert client_id("203.0.113.7", FIREFOX) == hashlib.md5(f"203.0.113.7{FIREFOX}".encode()).hexdigest()
    assert client_id("127.0.0.1", "") == "f528764d624db129b32c21fbca0cb8d6"  # md5("127.0.0.1")
    assert client_id("10.0.0.1", "a") != client_id("10.0.0.1", "b")


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.7", None, "203.0.113.7"),
        ("203.0.113.7:51234", None, "203.0.113.7"),
        ("[2001:db8::1]:443", None, "2001:db8::1"),
        ("2001:db8::1", None, "2001:db8::1"),
        ("10.0.0.2", "198.51.100.4", "198.51.100.4"),
        ("10.0.0.2", "198.51.100.4, 10.0.0.9, 10.0.0.2", "198.51.100.4"),
        ("10.0.0.2", " 198.51.100.4 ,10.0.0.9", "198.51.100.4"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", " , 10.0.0.9", "10.0.0.2"),
        (None, None, ""),
    ],
)
def test_client_ip_is_the_first_forwarded_entry_else_the_peer(
    peer: str | None, forwarded: str | None, expected: str
) -> None:
    assert client_ip(peer, forwarded) == expected


def test_nothing_is_counted_while_offline() -> None:
    tracker = ViewerTracker()
    assert not tracker.mark_active("203.0.113.7", FIREFOX, at(0))
    assert tracker.count == 0
    assert tracker.viewers() == []
    assert tracker.session_peak == tracker.overall_peak == 0


def test_one_identity_counts_once_however_often_it_is_seen() -> None:
    tracker = live_tracker()
    for second in range(10):
        assert tracker.mark_active("203.0.113.7", FIREFOX, at(second))
    assert tracker.count == 1
    [viewer] = tracker.viewers()
    assert viewer.first_seen == at(0)
    assert viewer.last_seen == at(9)


def test_same_ip_other_browser_and_same_browser_other_ip_are_other_viewers() -> None:
    tracker = live_tracker()
    tracker.mark_active("203.0.113.7", FIREFOX, at(0))
    tracker.mark_active("203.0.113.7", "curl/8.5.0", at(0))
    tracker.mark_active("203.0.113.8", FIREFOX, at(0))
    assert tracker.count == 3


def test_a_viewer_expires_fifteen_seconds_after_it_was_last_seen() -> None:
    tracker = live_tracker()
    tracker.mark_active("203.0.113.7", FIREFOX, at(0))
    tracker.mark_active("203.0.113.8", FIREFOX, at(0))
    tracker.mark_active("203.0.113.8", FIREFOX, at(4))  # the web player pings every 4 s
    assert tracker.prune(at(14.999)) == 0
    assert tracker.prune(at(15)) == 1  # Owncast keeps only those seen less than 15 s ago
    assert [v.ip_address for v in tracker.viewers()] == ["203.0.113.8"]
    assert tracker.prune(at(19)) == 1
    assert tracker.count == 0


def test_expiry_is_a_constructor_argument() -> None:
    tracker = live_tracker(expiry=1.0)
    tracker.mark_active("203.0.113.7", FIREFOX, at(0))
    assert tracker.prune(at(0.5)) == 0
    assert tracker.prune(at(1)) == 1


def test_count_is_zero_once_the_stream_stops_and_viewers_then_expire() -> None:
    tracker = live_tracker()
    tracker.mark_active("203.0.113.7", FIREFOX, at(0))
    tracker.stream_stopped()
    assert tracker.count == 0
    assert not tracker.mark_active("203.0.113.9", FIREFOX, at(1))
    assert len(tracker.viewers()) == 1  # still listed until it expires, as in Owncast
    tracker.prune(at(15))
    assert tracker.viewers() == []


def test_peaks_follow_the_most_viewers_at_once() -> None:
    tracker = live_tracker()
    for host in range(3):
        tracker.mark_active(f"203.0.113.{host}", FIREFOX, at(0))
    tracker.prune(at(20))
    tracker.mark_active("203.0.113.50", FIREFOX, at(21))
    assert tracker.count == 1
    assert (tracker.session_peak, tracker.overall_peak) == (3, 3)


def test_a_new_stream_resets_the_session_peak_only() -> None:
    tracker = live_tracker()
    for host in range(4):
        tracker.mark_active(f"203.0.113.{host}", FIREFOX, at(0))
    tracker.stream_stopped()
    tracker.prune(at(20))
    tracker.stream_started()
    tracker.mark_active("203.0.113.1", FIREFOX, at(30))
    assert (tracker.session_peak, tracker.overall_peak) == (1, 4)


def test_stored_peaks_carry_on() -> None:
    tracker = ViewerTracker(session_peak=2, overall_peak=10)
    tracker.online = True
    tracker.mark_active("203.0.113.1", FIREFOX, at(0))
    assert (tracker.session_peak, tracker.overall_peak) == (2, 10)


@pytest.mark.parametrize(
    ("ended", "session_peak"),
    [(timedelta(minutes=4, seconds=59), 7), (timedelta(minutes=5), 7), (timedelta(minutes=5, seconds=1), 0), (None, 0)],
)
def test_the_session_peak_survives_a_restart_only_within_five_minutes_of_the_last_stream(
    ended: timedelta | None, session_peak: int
) -> None:
    last_disconnect = None if ended is None else at(0) - ended
    tracker = ViewerTracker.restored(session_peak=7, overall_peak=9, last_disconnect=last_disconnect, now=at(0))
    assert (tracker.session_peak, tracker.overall_peak) == (session_peak, 9)


def test_the_viewer_table_is_bounded_and_refusals_are_counted() -> None:
    tracker = live_tracker(max_viewers=2)
    assert tracker.mark_active("203.0.113.1", FIREFOX, at(0))
    assert tracker.mark_active("203.0.113.2", FIREFOX, at(0))
    assert not tracker.mark_active("203.0.113.3", FIREFOX, at(0))
    assert tracker.mark_active("203.0.113.1", FIREFOX, at(1))  # known viewers still refresh
    assert (tracker.count, tracker.refused) == (2, 1)


def test_a_long_user_agent_is_kept_short_but_identifies_in_full() -> None:
    tracker = live_tracker()
    long_agent = "x" * 10_000
    tracker.mark_active("203.0.113.1", long_agent, at(0))
    [viewer] = tracker.viewers()
    assert viewer.user_agent == "x" * MAX_USER_AGENT_CHARS
    assert viewer.client_id == client_id("203.0.113.1", long_agent)


def test_viewer_json_is_owncasts_shape_without_geo() -> None:
    tracker = live_tracker()
    tracker.mark_active("203.0.113.7", FIREFOX, datetime(2025, 1, 11, 12, 0, 1, 250_000, tzinfo=UTC))
    [viewer] = tracker.viewers()
    assert viewer.to_json() == {
        "firstSeen": "2025-01-11T12:00:01.250000Z",
        "geo": None,
        "userAgent": FIREFOX,
        "ipAddress": "203.0.113.7",
        "clientID": client_id("203.0.113.7", FIREFOX),
    }
