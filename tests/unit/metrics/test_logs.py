"""The admin log ring: Owncast's AdminLog shape, logrus level names, two bounded rings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from owncast_fast.metrics.logs import MAX_MESSAGE_CHARS, LogRing, level_name


@pytest.fixture
def ring() -> Iterator[LogRing]:
    ring = LogRing(max_entries=5)
    ring.install()
    logger = logging.getLogger("owncast_fast.test_logs")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    yield ring
    logger.setLevel(previous)
    ring.uninstall()


log = logging.getLogger("owncast_fast.test_logs")


@pytest.mark.parametrize(
    ("level", "name"),
    [
        (logging.CRITICAL, "fatal"),
        (logging.ERROR, "error"),
        (logging.WARNING, "warning"),
        (logging.INFO, "info"),
        (logging.DEBUG, "debug"),
        (5, "trace"),
    ],
)
def test_level_names_are_logrus_names(level: int, name: str) -> None:
    assert level_name(level) == name


def test_records_become_admin_log_entries(ring: LogRing) -> None:
    before = datetime.now(UTC)
    log.info("stream %s started", "abc")
    [entry] = ring.entries()
    assert (entry.message, entry.level) == ("stream abc started", "info")
    assert before <= entry.time <= datetime.now(UTC)
    assert set(entry.to_json()) == {"time", "message", "level"}
    assert entry.to_json()["time"].endswith("Z")
    assert ring.warnings() == []


def test_warnings_have_their_own_ring(ring: LogRing) -> None:
    log.warning("disk almost full")
    for number in range(10):
        log.info("line %d", number)
    log.error("upload failed")
    assert [e.message for e in ring.entries()] == ["line 6", "line 7", "line 8", "line 9", "upload failed"]
    assert [(e.message, e.level) for e in ring.warnings()] == [
        ("disk almost full", "warning"),
        ("upload failed", "error"),
    ]


def test_an_exception_is_named_in_the_message(ring: LogRing) -> None:
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        log.exception("RTMP read failed")
    assert ring.warnings()[0].message == "RTMP read failed: ConnectionResetError: peer went away"


def test_a_huge_message_is_cut(ring: LogRing) -> None:
    log.info("%s", "x" * 100_000)
    assert len(ring.entries()[0].message) == MAX_MESSAGE_CHARS


def test_records_below_the_logger_level_are_not_kept(ring: LogRing) -> None:
    logging.getLogger("owncast_fast.test_logs.quiet").setLevel(logging.WARNING)
    logging.getLogger("owncast_fast.test_logs.quiet").info("not shown")
    assert ring.entries() == []


def test_uninstall_stops_recording() -> None:
    ring = LogRing()
    ring.install()
    ring.uninstall()
    logging.getLogger("owncast_fast.test_logs").warning("after")
    assert ring.entries() == []
