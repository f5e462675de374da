"""Kernel deadlines on the web listener: found by port, inherited by accepted connections."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest

from owncast_fast.web.deadlines import KEEPALIVE_INTERVAL_S, KEEPALIVE_PROBES, apply_deadlines, find_listener


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    with sock:
        yield sock


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def test_the_listener_is_found_by_port_as_a_duplicate(listener: socket.socket) -> None:
    found = find_listener(port_of(listener))
    assert found is not None
    with found:
        assert found.fileno() != listener.fileno()
        assert port_of(found) == port_of(listener)
    # Closing the duplicate leaves the server's listener working.
    with socket.create_connection(("127.0.0.1", port_of(listener)), timeout=2):
        accepted, _ = listener.accept()
        accepted.close()


def test_no_listener_on_a_port_is_reported(listener: socket.socket, caplog: pytest.LogCaptureFixture) -> None:
    # A connected socket on some port is not a listener; a port nobody listens on is not found.
    with socket.create_connection(("127.0.0.1", port_of(listener)), timeout=2) as client:
        accepted, _ = listener.accept()
        with accepted:
            client_port = port_of(client)
            assert find_listener(client_port) is None
    with caplog.at_level(logging.WARNING, logger="owncast_fast.web.deadlines"):
        assert apply_deadlines(client_port, 60) is False
    assert "not found" in caplog.text
    assert find_listener(port_of(listener), fd_dir="/nonexistent") is None


def test_accepted_connections_inherit_the_deadlines(listener: socket.socket) -> None:
    assert apply_deadlines(port_of(listener), 60)
    with socket.create_connection(("127.0.0.1", port_of(listener)), timeout=2):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 60_000
            assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 54  # Owncast's ping period
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == KEEPALIVE_INTERVAL_S
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPALIVE_PROBES
    apply_deadlines(port_of(listener), 3)
    with socket.create_connection(("127.0.0.1", port_of(listener)), timeout=2):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 1  # never below a second


def test_a_peer_that_stops_reading_is_cut_off_after_the_timeout(listener: socket.socket) -> None:
    apply_deadlines(port_of(listener), 1)
    with socket.create_connection(("127.0.0.1", port_of(listener)), timeout=2):  # never reads
        accepted, _ = listener.accept()
        with accepted:
            accepted.setblocking(False)
            started = time.monotonic()
            with pytest.raises(TimeoutError):  # ETIMEDOUT once the shut window outlasts 1 s
                while time.monotonic() - started < 20:
                    try:
                        accepted.send(b"x" * 65536)
                    except BlockingIOError:
                        time.sleep(0.02)
            assert time.monotonic() - started < 15
