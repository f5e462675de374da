from __future__ import annotations

from owncast_fast.web.routes.chat import peer_address

PROXIES = frozenset({"10.0.0.1", "10.0.0.2"})


def test_without_a_trusted_proxy_the_header_is_ignored() -> None:
    assert peer_address("198.51.100.1", "203.0.113.9", frozenset()) == "198.51.100.1"
    assert peer_address("198.51.100.1", "203.0.113.9", PROXIES) == "198.51.100.1"


def test_behind_trusted_proxies_the_nearest_untrusted_entry_wins() -> None:
    assert peer_address("10.0.0.1", "203.0.113.9", PROXIES) == "203.0.113.9"
    # A client that writes its own X-Forwarded-For cannot choose its address: the entry the proxy
    # appended (the last one) is what counts.
    assert peer_address("10.0.0.1", "192.0.2.66, 203.0.113.9", PROXIES) == "203.0.113.9"
    assert peer_address("10.0.0.2", "203.0.113.9, 10.0.0.1", PROXIES) == "203.0.113.9"


def test_a_trusted_proxy_without_the_header_is_the_address() -> None:
    assert peer_address("10.0.0.1", "", PROXIES) == "10.0.0.1"
    assert peer_address("10.0.0.1", " , ", PROXIES) == "10.0.0.1"
