"""The chat service with a real SQLite store and a recording transport (no sockets)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from owncast_fast.chat.service import ChatService, Peer
from owncast_fast.config.runtime import SettingsService
from owncast_fast.events import (
    ChatMessageSent,
    Event,
    EventBus,
    NameChanged,
    UserEnabledChanged,
    UserJoined,
    VisibilityUpdated,
)
from owncast_fast.status import Broadcaster, StreamStatus
from owncast_fast.store import Store, open_store


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.broadcasts: list[dict[str, Any]] = []
        self.frames: list[str] = []
        self.closed: list[str] = []

    def send(self, connection: str, text: str) -> None:
        self.frames.append(text)
        for line in text.split("\n"):
            self.sent.append((connection, json.loads(line) if line.startswith("{") else {"text": line}))

    def broadcast(self, text: str) -> None:
        self.frames.append(text)
        self.broadcasts.extend(json.loads(line) for line in text.split("\n"))

    def close(self, connection: str) -> None:
        self.closed.append(connection)

    def types_to(self, connection: str) -> list[str]:
        return [event.get("type", event.get("text", "")) for to, event in self.sent if to == connection]


class Harness:
    def __init__(self, runner: asyncio.Runner, store: Store, tmp_path: Path) -> None:
        self.runner = runner
        self.store = store
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        self.settings = SettingsService(store.config, self.bus)
        runner.run(self.settings.load())
        self.status = StreamStatus()
        self.now = 1000.0
        self.service = ChatService(
            store.chat, self.settings, self.bus, self.status, tmp_path / "emoji", clock=lambda: self.now
        )
        self.transport = Recorder()
        self.service.transport = self.transport
        runner.run(self.service.start())

    def run(self, coro: Any) -> Any:
        async def and_flush() -> Any:
            result = await coro
            await asyncio.sleep(0)  # the flush is scheduled with call_soon
            return result

        return self.runner.run(and_flush())

    def register(self, name: str = "", ip: str = "192.0.2.1") -> tuple[str, str]:
        user, token = self.run(self.service.register(name, "", Peer(ip, "test-agent")))
        return user.id, token

    def connect(self, connection: str, token: str) -> Any:
        return self.run(self.service.connect(connection, token))

    def frame(self, connection: str, event: dict[str, Any] | str | bytes, *, advance: float = 1.0) -> None:
        """One inbound frame, `advance` seconds after the previous one (1 s stays under the rate limit)."""
        self.now += advance
        data = json.dumps(event) if isinstance(event, dict) else event
        self.run(self.service.receive(connection, data))


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[Harness]:
    with asyncio.Runner() as runner:
        store = runner.run(open_store(str(tmp_path / "db.sqlite")))
        harness = Harness(runner, store, tmp_path)
        yield harness
        runner.run(harness.service.stop())
        runner.run(store.close())


def test_connect_sends_user_info_and_a_chat_reaches_everyone(chat: Harness) -> None:
    _, alice = chat.register("alice")
    _, bob = chat.register("bob")
    assert chat.connect("a", alice) is not None
    assert chat.connect("b", bob) is not None
    assert chat.transport.types_to("a") == ["CONNECTED_USER_INFO"]
    chat.frame("a", {"type": "CHAT", "body": "hi *there*", "id": "forged", "user": {"displayName": "x"}})
    [message] = chat.transport.broadcasts
    assert message["body"] == "<p>hi <em>there</em></p>"
    assert message["user"]["displayName"] == "alice" and message["id"] != "forged"
    assert message["visible"] is True
    sent = [e for e in chat.events if isinstance(e, ChatMessageSent)]
    assert sent[0].raw_body == "hi *there*" and sent[0].client_id == 0
    chat.runner.run(chat.service.stop())  # waits for the background write
    assert [item["id"] for item in chat.runner.run(chat.service.history())] == [message["id"]]


def test_refusals(chat: Harness) -> None:
    chat.connect("none", "")
    chat.connect("unknown", "x" * 44)
    assert chat.transport.closed == ["none", "unknown"]
    assert chat.transport.types_to("unknown") == ["ERROR_NEEDS_REGISTRATION"]
    user_id, token = chat.register("carol")
    chat.run(chat.service.set_enabled(user_id, False))
    chat.connect("disabled", token)
    assert chat.transport.types_to("disabled") == ["ERROR_USER_DISABLED"]
    chat.run(chat.settings.update(chat_disabled=True))
    _, other = chat.register("dave")
    chat.connect("off", other)
    assert chat.transport.types_to("off") == ["CHAT_DISABLED"]


def test_banned_address_is_refused_and_max_connections(chat: Harness) -> None:
    _, token = chat.register("eve", ip="198.51.100.9")
    chat.run(chat.service.ban_ip("198.51.100.9"))
    assert chat.connect("e", token) is None
    assert chat.transport.sent == [] and chat.transport.closed == ["e"]
    chat.service.connection_limit = 1
    _, one = chat.register("one")
    _, two = chat.register("two")
    assert chat.connect("1", one) is not None
    assert chat.connect("2", two) is None
    assert chat.transport.types_to("2") == ["ERROR_MAX_CONNECTIONS_EXCEEDED"]


def test_join_is_announced_only_while_online(chat: Harness) -> None:
    _, token = chat.register("frank")
    chat.connect("f1", token)
    assert chat.transport.broadcasts == []
    chat.status.broadcaster = Broadcaster("127.0.0.1", datetime.now(UTC))
    _, other = chat.register("gina")
    chat.connect("g1", other)
    assert [e["type"] for e in chat.transport.broadcasts] == ["USER_JOINED"]
    assert [type(e) for e in chat.events if isinstance(e, UserJoined)] == [UserJoined]
    chat.connect("g2", other)  # a second tab: no second join
    assert len(chat.transport.broadcasts) == 1


def test_rate_limit_and_moderators_are_exempt(chat: Harness) -> None:
    user_id, token = chat.register("hal")
    chat.connect("h", token)
    for _ in range(3):
        chat.frame("h", {"type": "CHAT", "body": "spam"}, advance=0.1)
    assert len(chat.transport.broadcasts) == 1
    assert chat.transport.types_to("h").count("CHAT_ACTION") == 1
    chat.frame("h", {"type": "CHAT", "body": "still blocked"}, advance=5)
    assert len(chat.transport.broadcasts) == 1
    chat.frame("h", {"type": "CHAT", "body": "free again"}, advance=6)
    assert len(chat.transport.broadcasts) == 2
    chat.run(chat.service.set_moderator(user_id, True))
    for _ in range(5):
        chat.frame("h", {"type": "CHAT", "body": "mod"}, advance=0)
    assert len(chat.transport.broadcasts) == 7


def test_spam_protection_off_lets_everything_through(chat: Harness) -> None:
    chat.run(chat.settings.update(chat_spam_protection_enabled=False))
    _, token = chat.register("ian")
    chat.connect("i", token)
    for _ in range(10):
        chat.frame("i", {"type": "CHAT", "body": "fast"}, advance=0)
    assert len(chat.transport.broadcasts) == 10


def test_bad_frames_are_ignored_or_closed(chat: Harness) -> None:
    _, token = chat.register("jan")
    chat.connect("j", token)
    chat.run(chat.settings.update(chat_spam_protection_enabled=False))
    for frame in (
        "not json",
        "[1,2]",
        '{"type":"UNKNOWN"}',
        '{"type":"CHAT","body":5}',
        b"\xff\xfe",
        '{"type":"PONG"}',
    ):
        chat.frame("j", frame)
    assert chat.transport.broadcasts == []
    chat.frame("j", json.dumps({"type": "CHAT", "body": "x" * 2100}))
    assert chat.transport.types_to("j")[-1] == "CHAT_ACTION"
    assert "maximum size" in chat.transport.sent[-1][1]["body"]
    chat.frame("j", b'{"type":"CHAT","body":"binary json"}')
    assert len(chat.transport.broadcasts) == 1
    chat.frame("j", "x" * 5000)
    assert chat.transport.closed == ["j"]
    assert chat.service.hub.by_connection("j") is None


def test_name_change_rules(chat: Harness) -> None:
    _, token = chat.register("kim")
    chat.connect("k", token)
    chat.frame("k", {"type": "NAME_CHANGE", "newName": "adm"})
    assert "You cannot change your name to" in chat.transport.sent[-2][1]["body"]
    assert chat.transport.types_to("k")[-1] == "CONNECTED_USER_INFO"
    chat.frame("k", {"type": "NAME_CHANGE", "newName": "<i>Admin</i>"})
    [renamed] = chat.transport.broadcasts
    assert renamed["type"] == "NAME_CHANGE" and renamed["oldName"] == "kim"
    assert renamed["user"]["displayName"] == "Admin" and renamed["user"]["previousNames"] == ["kim", "Admin"]
    assert [e.new_name for e in chat.events if isinstance(e, NameChanged)] == ["Admin"]
    chat.frame("k", {"type": "NAME_CHANGE", "newName": "Admin"})  # same name: only the user info again
    assert len(chat.transport.broadcasts) == 1


def test_registered_names_are_taken_but_anonymous_ones_shared(chat: Harness) -> None:
    _, token = chat.register("lee")
    chat.connect("l", token)
    chat.frame("l", {"type": "NAME_CHANGE", "newName": "mia"})
    assert chat.transport.broadcasts[-1]["user"]["displayName"] == "mia"
    chat.runner.run(_make_registered(chat.store, "botname"))
    chat.now += 1
    chat.frame("l", {"type": "NAME_CHANGE", "newName": "botname"})
    assert "has been already registered" in chat.transport.sent[-2][1]["body"]


async def _make_registered(store: Store, name: str) -> None:
    from owncast_fast.store.base import ChatUser

    await store.chat.create_user(ChatUser("bot1", name, 1, datetime.now(UTC), type="API"), "b" * 44)


def test_color_change_is_private_and_bounded(chat: Harness) -> None:
    _, token = chat.register("ned")
    chat.connect("n", token)
    chat.frame("n", {"type": "COLOR_CHANGE", "newColor": 9})
    assert chat.transport.types_to("n") == ["CONNECTED_USER_INFO"]
    chat.now += 1
    chat.frame("n", {"type": "COLOR_CHANGE", "newColor": 5})
    assert chat.transport.sent[-1][1]["user"]["displayColor"] == 5
    assert chat.transport.broadcasts == []


def test_established_user_mode(chat: Harness) -> None:
    chat.run(chat.settings.update(chat_established_users_only_mode=True))
    _, token = chat.register("oli")
    chat.connect("o", token)
    chat.frame("o", {"type": "CHAT", "body": "too new"})
    assert chat.transport.broadcasts == []
    assert "established chat participant" in chat.transport.sent[-1][1]["body"]


def test_offline_more_than_5_minutes_drops_messages(chat: Harness) -> None:
    chat.status.last_disconnect_time = datetime.now(UTC) - timedelta(minutes=6)
    _, token = chat.register("pat")
    chat.connect("p", token)
    chat.frame("p", {"type": "CHAT", "body": "anyone?"})
    assert chat.transport.broadcasts == []


def test_disabling_a_user_hides_messages_notifies_bans_and_closes(chat: Harness) -> None:
    chat.run(chat.settings.update(chat_spam_protection_enabled=False))
    user_id, token = chat.register("quin", ip="203.0.113.5")
    chat.connect("q", token)
    chat.frame("q", {"type": "CHAT", "body": "one"})
    chat.frame("q", {"type": "CHAT", "body": "two"})
    chat.runner.run(asyncio.sleep(0.05))  # background writes
    ids = [event["id"] for event in chat.transport.broadcasts]

    async def disable_and_wait() -> None:
        await chat.service.set_enabled(user_id, False)
        await asyncio.sleep(2.1)

    chat.runner.run(disable_and_wait())
    visibility = [e for e in chat.transport.broadcasts if e["type"] == "VISIBILITY-UPDATE"]
    assert visibility[0]["ids"] == ids and visibility[0]["visible"] is False
    assert "ERROR_USER_DISABLED" in chat.transport.types_to("q")
    assert chat.transport.closed == ["q"]
    assert "has been removed from chat" in chat.transport.broadcasts[-1]["body"]
    assert [b["ipAddress"] for b in chat.runner.run(chat.service.ip_bans())] == ["203.0.113.5"]
    assert chat.runner.run(chat.service.history()) == []
    changed = [e for e in chat.events if isinstance(e, UserEnabledChanged)]
    assert changed[0].banned_ips == ("203.0.113.5",)
    assert any(isinstance(e, VisibilityUpdated) for e in chat.events)


def test_moderator_grant_resends_user_info(chat: Harness) -> None:
    user_id, token = chat.register("ray")
    chat.connect("r", token)
    chat.run(chat.service.set_moderator(user_id, True))
    assert chat.transport.sent[-1][1]["user"]["scopes"] == ["MODERATOR"]
    assert [m["id"] for m in chat.runner.run(chat.service.moderators())] == [user_id]


def test_slur_filter_is_off_by_default_and_applies_live(chat: Harness) -> None:
    user_id, token = chat.register("sam")
    chat.connect("s", token)
    chat.run(chat.service.set_moderator(user_id, True))
    chat.frame("s", {"type": "CHAT", "body": "oh sh1t"})
    assert len(chat.transport.broadcasts) == 1
    chat.run(chat.settings.update(chat_slur_filter_enabled=True))
    chat.frame("s", {"type": "CHAT", "body": "oh sh1t"})
    assert len(chat.transport.broadcasts) == 1
    assert "not allowed in this chat" in chat.transport.sent[-1][1]["body"]
    chat.frame("s", {"type": "CHAT", "body": "bass fish"})
    assert len(chat.transport.broadcasts) == 2


def test_part_is_announced_after_the_last_client_leaves(chat: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("owncast_fast.chat.hub.PART_DELAY_S", 0.05)
    chat.status.broadcaster = Broadcaster("127.0.0.1", datetime.now(UTC))
    _, token = chat.register("uma")
    chat.connect("u1", token)
    chat.connect("u2", token)

    async def leave_and_wait() -> None:
        chat.service.disconnect("u1")
        chat.service.disconnect("u2")
        chat.now += 1
        await asyncio.sleep(0.2)

    chat.runner.run(leave_and_wait())
    assert [e["type"] for e in chat.transport.broadcasts] == ["USER_JOINED", "USER_PARTED"]
    assert [type(e).__name__ for e in chat.events if type(e).__name__ in {"UserJoined", "UserParted"}] == [
        "UserJoined",
        "UserParted",
    ]


def test_welcome_message_goes_to_the_new_client_only_while_online(
    chat: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("owncast_fast.chat.service.WELCOME_DELAY_S", 0.05)
    chat.run(chat.settings.update(server_welcome_message="Welcome, **friend**!"))
    _, token = chat.register("vic")
    chat.connect("offline", token)
    chat.status.broadcaster = Broadcaster("127.0.0.1", datetime.now(UTC))
    chat.connect("online", token)
    chat.runner.run(asyncio.sleep(0.2))
    assert "SYSTEM" not in chat.transport.types_to("offline")
    [welcome] = [event for to, event in chat.transport.sent if to == "online" and event.get("type") == "SYSTEM"]
    assert welcome["body"] == "<p>Welcome, <strong>friend</strong>!</p>\n"
    assert welcome["user"] == {"displayName": chat.settings.current.server_name}


def test_stream_start_stop_and_title_notices(chat: Harness) -> None:
    from owncast_fast.events import SettingChanged, StreamStarted, StreamStopped

    now = datetime.now(UTC)

    async def publish() -> None:  # the bus runs on the server's loop
        chat.bus.publish(StreamStarted(now, "127.0.0.1", "title"))
        chat.bus.publish(StreamStopped(now, "publisher left", "title"))
        chat.bus.publish(SettingChanged("stream_title", "Cooking"))
        await asyncio.sleep(0)

    chat.runner.run(publish())
    bodies = [event["body"] for event in chat.transport.broadcasts]
    assert bodies == [
        "<p>Stay tuned, the stream is <strong>starting</strong>!</p>\n",
        "<p>The stream is ending.</p>\n",
        "<p>Stream title changed to <strong>Cooking</strong></p>\n",
    ]


def test_history_after_moderation_and_admin_lists(chat: Harness) -> None:
    chat.run(chat.settings.update(chat_spam_protection_enabled=False))
    user_id, token = chat.register("xia")
    chat.connect("x", token)
    chat.frame("x", {"type": "CHAT", "body": "keep"})
    chat.frame("x", {"type": "CHAT", "body": "hide"})
    chat.runner.run(asyncio.sleep(0.05))
    hidden = chat.transport.broadcasts[1]["id"]
    chat.run(chat.service.set_visibility([hidden], False))
    assert [item["body"] for item in chat.runner.run(chat.service.history())] == ["<p>keep</p>"]
    admin = chat.runner.run(chat.service.admin_history())
    assert [item["body"] for item in admin] == ["<p>hide</p>", "<p>keep</p>"]
    assert "hiddenAt" in admin[0]
    [client] = chat.service.clients_json()
    assert (client["messageCount"], client["userAgent"], client["user"]["id"]) == (2, "test-agent", user_id)
    details = chat.runner.run(chat.service.user_details(user_id))
    assert [m["body"] for m in details["messages"]] == ["<p>hide</p>", "<p>keep</p>"]
    assert chat.runner.run(chat.service.user_details("nobody")) is None


def test_open_file_limit_is_raised_toward_the_connection_limit() -> None:
    import resource

    from owncast_fast.chat.service import raise_open_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        lowered = min(soft, 512)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
        wanted = lowered + 100 if hard == resource.RLIM_INFINITY else min(lowered + 100, hard)
        assert raise_open_file_limit(lowered + 100) == wanted
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == wanted
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
