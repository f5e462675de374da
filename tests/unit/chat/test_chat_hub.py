from __future__ import annotations

from datetime import UTC, datetime

from owncast_fast.chat.hub import MAX_QUEUED_LINES, PART_DELAY_S, ChatHub
from owncast_fast.store.base import ChatUser

T = datetime(2026, 1, 1, tzinfo=UTC)


def user(user_id: str) -> ChatUser:
    return ChatUser(user_id, user_id, 0, T)


def add(hub: ChatHub, connection: str, user_id: str, now: float = 0.0) -> bool:
    _, new_session = hub.add(connection, user(user_id), now=now, at=T, ip="", user_agent="")
    return new_session


def test_client_ids_are_sequential_from_zero() -> None:
    hub = ChatHub()
    add(hub, "a", "u1")
    add(hub, "b", "u2")
    assert sorted(hub.clients) == [0, 1]


def test_join_only_for_a_users_first_client_and_reconnects_within_10_s_are_one_session() -> None:
    hub = ChatHub()
    assert add(hub, "a", "u1") is True
    assert add(hub, "b", "u1") is False  # a second tab
    hub.remove("a", now=1.0)
    assert hub.next_part_deadline() is None  # the user still has a client
    hub.remove("b", now=2.0)
    assert hub.next_part_deadline() == 2.0 + PART_DELAY_S
    assert hub.due_parts(11.9) == []
    assert add(hub, "c", "u1", now=11.0) is False  # back in time: no join, and no part
    assert hub.due_parts(100.0) == []
    hub.remove("c", now=20.0)
    parted = hub.due_parts(30.0)
    assert [client.user.id for client in parted] == ["u1"]
    assert hub.due_parts(31.0) == []
    assert add(hub, "d", "u1", now=40.0) is True


def test_queued_lines_keep_their_order_and_runs_share_a_frame() -> None:
    hub = ChatHub()
    add(hub, "a", "u1")
    add(hub, "b", "u2")
    a, b = hub.by_connection("a"), hub.by_connection("b")
    assert a is not None and b is not None
    hub.send(a, '{"n":1}')
    hub.send(a, '{"n":2}')
    hub.broadcast('{"b":1}')
    hub.broadcast('{"b":2}')
    hub.send(b, '{"n":3}')
    hub.send(a, '{"n":4}')
    out = hub.drain()
    assert out.frames == [
        ("a", '{"n":1}\n{"n":2}'),
        (None, '{"b":1}\n{"b":2}'),
        ("b", '{"n":3}'),
        ("a", '{"n":4}'),
    ]
    assert not hub.has_outbound


def test_lines_for_a_client_that_left_are_dropped() -> None:
    hub = ChatHub()
    add(hub, "a", "u1")
    client = hub.by_connection("a")
    assert client is not None
    hub.send(client, "x")
    hub.remove("a", now=0.0)
    assert hub.drain().frames == []


def test_a_client_whose_queue_is_full_is_reported_slow() -> None:
    hub = ChatHub()
    add(hub, "a", "u1")
    client = hub.by_connection("a")
    assert client is not None
    for index in range(MAX_QUEUED_LINES + 5):
        hub.send(client, str(index))
    out = hub.drain()
    assert out.slow == [client]
    assert out.frames[0][1].count("\n") == MAX_QUEUED_LINES - 1
