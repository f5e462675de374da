"""The chat repository's contract; each test runs against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from owncast_fast.store import ChatMessageRow, ChatUser, IpBan, Store, open_store

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def user(user_id: str, name: str, **changes: object) -> ChatUser:
    fields: dict[str, object] = {
        "id": user_id,
        "display_name": name,
        "display_color": 3,
        "created_at": at(0),
        "previous_names": (name,),
    }
    fields.update(changes)
    return ChatUser(**fields)  # type: ignore[arg-type]


def message(message_id: str, user_id: str | None, seconds: float, body: str = "<p>hi</p>") -> ChatMessageRow:
    return ChatMessageRow(message_id, user_id, body, "CHAT", at(seconds))


def test_user_round_trips_and_is_found_by_token(store: Store, runner: asyncio.Runner) -> None:
    alice = user("u1", "alice", scopes=("MODERATOR",))
    runner.run(store.chat.create_user(alice, "t" * 44))
    assert runner.run(store.chat.user_by_token("t" * 44)) == alice
    assert runner.run(store.chat.user_by_id("u1")) == alice
    assert runner.run(store.chat.user_by_token("x" * 44)) is None
    assert runner.run(store.chat.user_by_id("nobody")) is None


def test_rename_appends_to_previous_names(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.chat.create_user(user("u1", "alice"), "t1"))
    runner.run(store.chat.rename_user("u1", "alicia", at(5)))
    runner.run(store.chat.set_user_color("u1", 7))
    found = runner.run(store.chat.user_by_id("u1"))
    assert found is not None
    assert (found.display_name, found.previous_names, found.name_changed_at, found.display_color) == (
        "alicia",
        ("alice", "alicia"),
        at(5),
        7,
    )


def test_disable_scopes_and_lists(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.chat.create_user(user("u1", "alice"), "t1"))
    runner.run(store.chat.create_user(user("u2", "bob"), "t2"))
    runner.run(store.chat.set_user_disabled("u1", at(9)))
    runner.run(store.chat.set_user_scopes("u2", ("MODERATOR",)))
    assert [u.id for u in runner.run(store.chat.disabled_users())] == ["u1"]
    assert [u.id for u in runner.run(store.chat.users_with_scope("MODERATOR"))] == ["u2"]
    assert runner.run(store.chat.users_with_scope("MODERAT")) == []
    runner.run(store.chat.set_user_disabled("u1", None))
    assert runner.run(store.chat.disabled_users()) == []


def test_only_enabled_registered_names_are_taken(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.chat.create_user(user("u1", "anon"), "t1"))
    runner.run(store.chat.create_user(user("u2", "bot", type="API"), "t2"))
    runner.run(store.chat.create_user(user("u3", "known", authenticated_at=at(1)), "t3"))
    runner.run(store.chat.create_user(user("u4", "gone", authenticated_at=at(1), disabled_at=at(2)), "t4"))
    taken = {
        name: runner.run(store.chat.name_is_registered(name)) for name in ("anon", "bot", "known", "gone", "Known")
    }
    assert taken == {"anon": False, "bot": True, "known": True, "gone": False, "Known": False}


def test_visible_history_is_newest_n_oldest_first_without_hidden_or_disabled(
    store: Store, runner: asyncio.Runner
) -> None:
    runner.run(store.chat.create_user(user("u1", "alice"), "t1"))
    runner.run(store.chat.create_user(user("u2", "bob"), "t2"))
    for index in range(6):
        runner.run(store.chat.add_message(message(f"m{index}", "u1" if index % 2 == 0 else "u2", index)))
    runner.run(store.chat.add_message(ChatMessageRow("sys", None, "<p>system</p>", "SYSTEM", at(10))))
    assert runner.run(store.chat.set_messages_hidden(["m4", "missing"], at(20))) == ["m4"]
    runner.run(store.chat.set_user_disabled("u2", at(20)))
    history = runner.run(store.chat.visible_history(2))
    assert [(row.id, author.id) for row, author in history] == [("m0", "u1"), ("m2", "u1")]
    everything = runner.run(store.chat.all_history(50))
    assert [row.id for row, _ in everything] == ["m5", "m4", "m3", "m2", "m1", "m0"]
    assert everything[1][0].hidden_at == at(20)
    runner.run(store.chat.set_messages_hidden(["m4"], None))
    assert runner.run(store.chat.visible_history(1))[0][0].id == "m4"


def test_same_timestamp_keeps_insertion_order(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.chat.create_user(user("u1", "alice"), "t1"))
    for name in ("c", "a", "b"):
        runner.run(store.chat.add_message(message(name, "u1", 1)))
    assert [row.id for row, _ in runner.run(store.chat.visible_history(50))] == ["c", "a", "b"]


def test_hiding_a_users_messages_returns_their_ids(store: Store, runner: asyncio.Runner) -> None:
    runner.run(store.chat.create_user(user("u1", "alice"), "t1"))
    runner.run(store.chat.create_user(user("u2", "bob"), "t2"))
    for index, author in enumerate(["u1", "u2", "u1", "u1"]):
        runner.run(store.chat.add_message(message(f"m{index}", author, index)))
    runner.run(store.chat.set_messages_hidden(["m2"], at(5)))
    assert runner.run(store.chat.hide_messages_of_user("u1", at(9))) == ["m0", "m3"]
    assert [row.id for row in runner.run(store.chat.messages_of_user("u1", 2))] == ["m3", "m2"]


def test_prune_deletes_up_to_the_cutoff(store: Store, runner: asyncio.Runner) -> None:
    assert runner.run(store.chat.counts()) == (0, 0)
    runner.run(store.chat.create_user(user("u1", "alice"), "t1"))
    for index in range(4):
        runner.run(store.chat.add_message(message(f"m{index}", "u1", index * 60)))
    assert runner.run(store.chat.counts()) == (1, 4)
    assert runner.run(store.chat.delete_messages_before(at(60))) == 2
    assert runner.run(store.chat.counts()) == (1, 2)
    assert [row.id for row, _ in runner.run(store.chat.visible_history(50))] == ["m2", "m3"]


def test_ip_bans(store: Store, runner: asyncio.Runner) -> None:
    first = IpBan("192.0.2.7", "Banning of alice", at(1))
    assert runner.run(store.chat.add_ip_ban(first)) is True
    assert runner.run(store.chat.add_ip_ban(IpBan("192.0.2.7", "again", at(2)))) is False
    assert runner.run(store.chat.add_ip_ban(IpBan("2001:db8::1", "", at(3)))) is True
    assert runner.run(store.chat.ip_bans()) == [first, IpBan("2001:db8::1", "", at(3))]
    assert runner.run(store.chat.remove_ip_ban("192.0.2.7")) is True
    assert runner.run(store.chat.remove_ip_ban("192.0.2.7")) is False
    assert [ban.ip_address for ban in runner.run(store.chat.ip_bans())] == ["2001:db8::1"]


def test_naive_times_are_refused(store: Store, runner: asyncio.Runner) -> None:
    with pytest.raises(ValueError, match="has no timezone"):
        runner.run(store.chat.create_user(user("u1", "alice", created_at=datetime(2026, 1, 1)), "t1"))


def test_relay_reaches_every_node_sharing_the_store(database: str, runner: asyncio.Runner) -> None:
    async def scenario() -> tuple[bool, list[str], list[str]]:
        first, second = await open_store(database), await open_store(database)
        got_first: list[str] = []
        got_second: list[str] = []
        try:
            await first.chat_relay.start(got_first.append)
            await second.chat_relay.start(got_second.append)
            await first.chat_relay.publish('{"n":"a","b":"one"}')
            await first.chat_relay.publish('{"n":"a","b":"two"}')
            for _ in range(50):
                if len(got_second) == 2 or not first.chat_relay.shared:
                    break
                await asyncio.sleep(0.02)
        finally:
            await first.chat_relay.stop()
            await second.chat_relay.stop()
            await first.close()
            await second.close()
        return first.chat_relay.shared, got_first, got_second

    shared, got_first, got_second = runner.run(scenario())
    if shared:  # PostgreSQL: every listening node, the sender included, in order
        assert got_second == ['{"n":"a","b":"one"}', '{"n":"a","b":"two"}']
        assert got_first == got_second
    else:  # SQLite: one node, nothing to relay
        assert got_first == got_second == []
