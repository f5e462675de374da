"""Chat through a real server and real websocket clients (reference §1 and §2)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from chat_client import ChatSocket, register
from tests.conftest import ADMIN_PASSWORD, ServerFactory, ServerProcess

pytestmark = pytest.mark.integration

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_post(server: ServerProcess, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    status, _, raw = server.request(
        path,
        method="POST",
        body=json.dumps(body).encode(),
        admin=ADMIN_PASSWORD,
        headers={"Content-Type": "application/json"},
    )
    return status, json.loads(raw)


def post(server: ServerProcess, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    status, _, raw = server.request(path, method="POST", body=json.dumps(body).encode())
    return status, raw


def test_register_connect_chat_rename_recolor(server: ServerProcess) -> None:
    alice = register(server.base_url, "alice")
    assert len(alice["accessToken"]) == 44 and alice["displayName"] == "alice"
    bob = register(server.base_url, "", headers={"X-Forwarded-User": "<b>bob</b>"})
    assert bob["displayName"] == "bob"
    generated = register(server.base_url)
    assert "-" in generated["displayName"]

    async def scenario() -> None:
        a = await ChatSocket.open(server.web_port, alice["accessToken"])
        b = await ChatSocket.open(server.web_port, bob["accessToken"])
        info = await a.next()
        assert info["type"] == "CONNECTED_USER_INFO" and info["user"]["id"] == alice["id"]
        assert (await b.next())["type"] == "CONNECTED_USER_INFO"
        await a.send({"type": "CHAT", "body": "hello <script>alert(1)</script>**there**"})
        for socket in (a, b):
            message = await socket.next_of("CHAT")
            assert message["body"] == "<p>hello <strong>there</strong></p>"
            assert message["user"]["displayName"] == "alice"
        await b.send({"type": "NAME_CHANGE", "newName": "robert"})
        renamed = await a.next_of("NAME_CHANGE")
        assert (renamed["oldName"], renamed["user"]["displayName"]) == ("bob", "robert")
        assert (await b.next_of("CONNECTED_USER_INFO"))["user"]["displayName"] == "robert"
        await asyncio.sleep(0.7)  # the rate limit allows one message per 2/3 s
        await b.send({"type": "NAME_CHANGE", "newName": "operator"})
        action = await b.next_of("CHAT_ACTION")
        assert action["body"].startswith("<p>You cannot change your name to <strong>operator</strong>")
        assert (await b.next())["type"] == "CONNECTED_USER_INFO"  # the refusal resyncs the client
        await asyncio.sleep(0.7)
        await b.send({"type": "COLOR_CHANGE", "newColor": 6})
        assert (await b.next_of("CONNECTED_USER_INFO"))["user"]["displayColor"] == 6
        await a.close()
        await b.close()

    asyncio.run(scenario())
    history = server.get(f"/api/chat?accessToken={bob['accessToken']}")
    assert [(item["type"], item["user"]["id"]) for item in history] == [("CHAT", alice["id"])]  # type: ignore[union-attr]
    assert "visible" not in history[0]  # type: ignore[index]


def test_wrong_methods_answer_as_owncast(server: ServerProcess) -> None:
    status, _, body = server.request("/api/chat/register")
    assert status == 400 and json.loads(body)["success"] is False
    status, _, body = server.request("/api/chat", method="POST", body=b"{}")
    assert (status, json.loads(body)) == (501, {"error": "method not implemented (PRs are accepted)"})
    status, _, _ = server.request("/api/chat/register", method="OPTIONS")
    assert status == 204
    status, _, body = server.request("/api/chat?accessToken=nope")
    assert (status, body) == (401, b"unauthorized")


def test_refusals_and_bad_frames(server: ServerProcess) -> None:
    user = register(server.base_url, "carol")

    async def scenario() -> None:
        unknown = await ChatSocket.open(server.web_port, "x" * 44)
        events = await unknown.closed()
        assert events[0] == {"type": "ERROR_NEEDS_REGISTRATION"}
        missing = await ChatSocket.open(server.web_port, None)
        assert all("type" not in event for event in await missing.closed())
        socket = await ChatSocket.open(server.web_port, user["accessToken"])
        await socket.next()
        for frame in ("not json", "[]", '{"type":"WHAT"}'):
            await socket.socket.send(frame)
            await asyncio.sleep(0.7)
        await socket.socket.send(b'{"type":"CHAT","body":"sent as binary"}')
        assert (await socket.next_of("CHAT"))["body"] == "<p>sent as binary</p>"
        await asyncio.sleep(0.7)
        await socket.send({"type": "CHAT", "body": "y" * 2100})
        assert "maximum size" in (await socket.next_of("CHAT_ACTION"))["body"]
        await socket.socket.send("z" * 5000)
        await socket.closed()

    asyncio.run(scenario())
    clients = server.get("/api/admin/chat/clients", admin=ADMIN_PASSWORD)
    assert clients == []


def test_rate_limit_over_a_live_socket(server: ServerProcess) -> None:
    user = register(server.base_url, "dora")

    async def scenario() -> None:
        socket = await ChatSocket.open(server.web_port, user["accessToken"])
        await socket.next()
        for index in range(5):
            await socket.send({"type": "CHAT", "body": f"flood {index}"})
        first = await socket.next()
        assert first["type"] == "CHAT" and first["body"] == "<p>flood 0</p>"
        notice = await socket.next()
        assert notice["type"] == "CHAT_ACTION" and "perceived flooding" in notice["body"]
        assert await socket.nothing_for(1.0)
        await socket.close()

    asyncio.run(scenario())


def test_moderation_on_live_sockets(server: ServerProcess) -> None:
    mod = register(server.base_url, "mod")
    troll = register(server.base_url, "troll")

    async def scenario() -> None:
        m = await ChatSocket.open(server.web_port, mod["accessToken"])
        t = await ChatSocket.open(server.web_port, troll["accessToken"])
        await m.next()
        await t.next()
        assert (
            admin_post(server, "/api/admin/chat/users/setmoderator", {"userId": mod["id"], "isModerator": True})[0]
            == 200
        )
        assert (await m.next_of("CONNECTED_USER_INFO"))["user"]["scopes"] == ["MODERATOR"]
        await t.send({"type": "CHAT", "body": "bad words"})
        message = await m.next_of("CHAT")
        token = mod["accessToken"]
        status, _ = post(
            server, f"/api/chat/messagevisibility?accessToken={token}", {"idArray": [message["id"]], "visible": False}
        )
        assert status == 200
        update = await t.next_of("VISIBILITY-UPDATE")
        assert (update["ids"], update["visible"]) == ([message["id"]], False)
        assert server.get(f"/api/chat?accessToken={token}") == []
        assert (
            post(
                server,
                f"/api/chat/messagevisibility?accessToken={troll['accessToken']}",
                {"idArray": [], "visible": True},
            )[0]
            == 401
        )
        details = server.get(f"/api/moderation/chat/user/{troll['id']}?accessToken={token}")
        assert details["user"]["id"] == troll["id"] and len(details["connectedClients"]) == 1  # type: ignore[index]
        assert (
            post(server, f"/api/chat/users/setenabled?accessToken={token}", {"userId": troll["id"], "enabled": False})[
                0
            ]
            == 200
        )
        events = await t.closed()
        assert any(event.get("type") == "ERROR_USER_DISABLED" for event in events)
        assert "has been removed from chat" in (await m.next_of("CHAT_ACTION"))["body"]
        again = await ChatSocket.open(server.web_port, troll["accessToken"])
        assert (await again.closed())[0] == {"type": "ERROR_USER_DISABLED"}
        await m.close()

    asyncio.run(scenario())
    disabled = server.get("/api/admin/chat/users/disabled", admin=ADMIN_PASSWORD)
    assert [user["id"] for user in disabled] == [troll["id"]]  # type: ignore[union-attr]
    assert [user["id"] for user in server.get("/api/admin/chat/users/moderators", admin=ADMIN_PASSWORD)] == [mod["id"]]  # type: ignore[union-attr]
    messages = server.get("/api/admin/chat/messages", admin=ADMIN_PASSWORD)
    assert [m["user"]["id"] for m in messages] == [troll["id"]] and "hiddenAt" in messages[0]  # type: ignore[index,union-attr]


def test_ip_bans_through_a_trusted_proxy(server_factory: ServerFactory) -> None:
    server = server_factory("--trusted-proxies", "127.0.0.1")
    banned_ip = "198.51.100.7"
    user = register(server.base_url, "erin", headers={"X-Forwarded-For": f"203.0.113.1, {banned_ip}"})
    assert admin_post(server, "/api/admin/chat/users/ipbans/create", {"value": banned_ip}) == (
        200,
        {"message": f"{banned_ip} has been banned", "success": True},
    )
    bans = server.get("/api/admin/chat/users/ipbans", admin=ADMIN_PASSWORD)
    assert [ban["ipAddress"] for ban in bans] == [banned_ip]  # type: ignore[union-attr]
    status, _, body = server.request(
        f"/api/chat?accessToken={user['accessToken']}", headers={"X-Forwarded-For": banned_ip}
    )
    assert (status, body) == (401, b"unauthorized")
    status, _, _ = server.request(
        "/api/chat/register", method="POST", body=b"{}", headers={"X-Forwarded-For": banned_ip}
    )
    assert status == 400

    async def refused() -> list[dict[str, Any]]:
        socket = await ChatSocket.open(server.web_port, user["accessToken"])
        return await socket.closed()

    assert all("type" not in event for event in asyncio.run(refused()))
    assert admin_post(server, "/api/admin/chat/users/ipbans/remove", {"value": banned_ip})[0] == 200
    assert admin_post(server, "/api/admin/chat/users/ipbans/create", {"value": "not-an-ip"})[0] == 400


def test_disabled_chat_refuses_new_sockets(server: ServerProcess) -> None:
    user = register(server.base_url, "fay")
    assert admin_post(server, "/api/admin/config/chat/disable", {"value": True})[0] == 200

    async def refused() -> list[dict[str, Any]]:
        socket = await ChatSocket.open(server.web_port, user["accessToken"])
        return await socket.closed()

    assert asyncio.run(refused())[0] == {"text": "CHAT_DISABLED"}


def test_emoji_upload_list_serve_and_use(server: ServerProcess) -> None:
    import base64

    gif = (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
        b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )
    data = "data:image/gif;base64," + base64.b64encode(gif).decode()
    assert admin_post(server, "/api/admin/emoji/upload", {"name": "party.gif", "data": data})[0] == 200
    assert admin_post(server, "/api/admin/emoji/upload", {"name": "evil.svg", "data": data})[0] == 400
    assert admin_post(server, "/api/admin/emoji/upload", {"name": "fake.png", "data": data})[0] == 400
    assert admin_post(server, "/api/admin/emoji/upload", {"name": "../x.gif", "data": data})[0] == 400
    assert server.get("/api/emoji") == [{"name": "party", "url": "/img/emoji/party.gif"}]
    status, headers, body = server.request("/img/emoji/party.gif")
    content_type = {key.lower(): value for key, value in headers.items()}["content-type"]
    assert (status, content_type, body) == (200, "image/gif", gif)
    user = register(server.base_url, "gus")

    async def scenario() -> str:
        socket = await ChatSocket.open(server.web_port, user["accessToken"])
        await socket.next()
        await socket.send({"type": "CHAT", "body": "yay :Party:"})
        body: str = (await socket.next_of("CHAT"))["body"]
        await socket.close()
        return body

    assert '<img src="/img/emoji/party.gif" class="emoji" alt=":Party:" title=":Party:">' in asyncio.run(scenario())
    assert admin_post(server, "/api/admin/emoji/delete", {"name": "party.gif"})[0] == 200
    assert server.get("/api/emoji") == []
    assert server.request("/img/emoji/party.gif")[0] == 404


def talker_listener_sloth(server: ServerProcess) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Three users for the slow-consumer tests; the talker is a moderator: not rate-limited, so
    one client can push the volume a crowd would."""
    talker, listener, sloth = (register(server.base_url, name) for name in ("talker", "listener", "sloth"))
    assert (
        admin_post(server, "/api/admin/chat/users/setmoderator", {"userId": talker["id"], "isModerator": True})[0]
        == 200
    )
    return talker, listener, sloth


def test_a_client_that_never_reads_does_not_hold_up_the_others(server: ServerProcess) -> None:
    """A socket whose reader is stopped while 4 MB of chat flows: the others still get every message."""
    talker, listener, sloth = talker_listener_sloth(server)
    count = 2000

    async def scenario() -> None:
        slow = await ChatSocket.open(server.web_port, sloth["accessToken"])
        slow.socket.transport.pause_reading()  # never reads again: the server's writes back up
        t = await ChatSocket.open(server.web_port, talker["accessToken"])
        listen = await ChatSocket.open(server.web_port, listener["accessToken"])
        await t.next()
        await listen.next()
        body = "p" * 1900
        started = time.monotonic()

        async def talk() -> None:
            for index in range(count):
                await t.send({"type": "CHAT", "body": f"{index} {body}"})
                if index % 100 == 0:
                    await asyncio.sleep(0.01)

        talking = asyncio.create_task(talk())
        for index in range(count):
            got = await listen.next_of("CHAT", wait=10)
            assert got["body"].startswith(f"<p>{index} ")
        await talking
        assert time.monotonic() - started < 30
        for socket in (t, listen, slow):
            await socket.close()

    asyncio.run(scenario())


def test_a_client_that_never_reads_is_dropped_after_the_web_timeout(server_factory: ServerFactory) -> None:
    """Owncast drops a chat socket it cannot write to. Robyn has no write deadline, so the web
    listener's connections carry a kernel one (`--web-timeout`, TCP_USER_TIMEOUT): once the stalled
    peer's window has been shut that long, the connection is aborted and the hub forgets the client,
    so what is buffered for it stops growing. The reading client loses nothing meanwhile."""
    server = server_factory("--web-timeout", "2")
    talker, listener, sloth = talker_listener_sloth(server)

    def connected_names() -> list[str]:
        clients = server.get("/api/admin/chat/clients", admin=ADMIN_PASSWORD)
        return sorted(client["user"]["displayName"] for client in clients)

    async def scenario() -> tuple[float, int]:
        slow = await ChatSocket.open(server.web_port, sloth["accessToken"])
        slow.socket.transport.pause_reading()  # never reads again: its window closes
        t = await ChatSocket.open(server.web_port, talker["accessToken"])
        listen = await ChatSocket.open(server.web_port, listener["accessToken"])
        await t.next()
        await listen.next()
        assert await asyncio.to_thread(connected_names) == ["listener", "sloth", "talker"]
        body = "p" * 1900
        started = time.monotonic()
        sent = received = 0
        dropped_after = 0.0
        while time.monotonic() - started < 90:
            for _ in range(200):
                await t.send({"type": "CHAT", "body": f"{sent} {body}"})
                sent += 1
            while received < sent:
                got = await listen.next_of("CHAT", wait=10)
                assert got["body"].startswith(f"<p>{received} ")
                # The talker reads its own echo too: a talker that stopped reading would be a
                # stalled client as well, and dropped as well.
                await t.next_of("CHAT", wait=10)
                received += 1
            if "sloth" not in await asyncio.to_thread(connected_names):
                dropped_after = time.monotonic() - started
                break
        assert dropped_after, f"the stalled client was still connected after {sent} messages"
        # The others carry on, in order, after the drop.
        await t.send({"type": "CHAT", "body": "after"})
        assert (await listen.next_of("CHAT", wait=10))["body"] == "<p>after</p>"
        assert (await t.next_of("CHAT", wait=10))["body"] == "<p>after</p>"
        # The stalled peer finds its connection gone once it reads again.
        slow.socket.transport.resume_reading()
        with pytest.raises(Exception):  # noqa: B017 - reset or closed, as the kernel reports it
            while True:
                await slow.next(wait=10)
        for socket in (t, listen):
            await socket.close()
        return dropped_after, sent

    dropped_after, sent = asyncio.run(scenario())
    # ~3 s here: the buffers on both sides fill, then 2 s of a shut window. Without the deadline
    # Robyn keeps buffering; something drops the socket only after ~45 s on this kernel.
    assert dropped_after < 20, (dropped_after, sent)
    assert sorted(connected_names()) == []


def test_connect_disconnect_cycles_leave_nothing_behind(server: ServerProcess) -> None:
    user = register(server.base_url, "cycler")

    async def cycles(count: int) -> None:
        for _ in range(count):
            socket = await ChatSocket.open(server.web_port, user["accessToken"])
            await socket.next()
            await socket.close()

    asyncio.run(cycles(1000))
    deadline = time.monotonic() + 5
    while server.get("/api/admin/chat/clients", admin=ADMIN_PASSWORD) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.get("/api/admin/chat/clients", admin=ADMIN_PASSWORD) == []


@pytest.fixture
def postgres_database() -> Iterator[str]:
    name = f"owncast_fast_chat_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _history_survives_restart(server_factory: ServerFactory, *args: str) -> None:
    server = server_factory(*args)
    user = register(server.base_url, "hana")

    async def say() -> None:
        socket = await ChatSocket.open(server.web_port, user["accessToken"])
        await socket.next()
        await socket.send({"type": "CHAT", "body": "remember me"})
        await socket.next_of("CHAT")
        await socket.close()

    asyncio.run(say())
    assert server.stop() == 0
    again = server_factory(*args, data_dir=server.data_dir)
    history = again.get(f"/api/chat?accessToken={user['accessToken']}")
    assert [item["body"] for item in history] == ["<p>remember me</p>"]  # type: ignore[union-attr]


def test_history_survives_a_restart_on_sqlite(server_factory: ServerFactory) -> None:
    _history_survives_restart(server_factory)


@pytest.mark.postgres
def test_history_survives_a_restart_on_postgres(server_factory: ServerFactory, postgres_database: str) -> None:
    _history_survives_restart(server_factory, "--database", postgres_database)


def test_prometheus_has_owncasts_chat_gauges(server: ServerProcess) -> None:
    user = register(server.base_url, "gauge")

    async def scenario() -> None:
        socket = await ChatSocket.open(server.web_port, user["accessToken"])
        await socket.next()
        await socket.send({"type": "CHAT", "body": "counted"})
        await socket.next_of("CHAT")
        status, _, body = server.request("/api/admin/prometheus", admin=ADMIN_PASSWORD)
        text = body.decode()
        assert status == 200
        for line in (
            'owncast_instance_active_chat_client_count{host="unknown",version="0.2.0"} 1.0',
            'owncast_instance_total_chat_users{host="unknown",version="0.2.0"} 1.0',
            'owncast_instance_current_chat_message_count{host="unknown",version="0.2.0"} 1.0',
        ):
            assert line in text, text
        await socket.close()

    asyncio.run(scenario())


def test_a_flood_from_many_sockets_of_one_address_is_contained(server: ServerProcess) -> None:
    """50 sockets from one address each send 20 messages at once: each gets one message through
    and one flood notice, a bystander gets exactly those 50 messages, and the server stays up."""
    flooder = register(server.base_url, "flooder")
    bystander = register(server.base_url, "bystander")

    async def scenario() -> None:
        watcher = await ChatSocket.open(server.web_port, bystander["accessToken"])
        await watcher.next()
        sockets = [await ChatSocket.open(server.web_port, flooder["accessToken"]) for _ in range(50)]
        for socket in sockets:
            await socket.next()
        await asyncio.gather(
            *(
                socket.socket.send(json.dumps({"type": "CHAT", "body": f"spam {i}"}))
                for socket in sockets
                for i in range(20)
            )
        )
        seen = 0
        while not await watcher.nothing_for(1.5):
            if (await watcher.next()).get("type") == "CHAT":
                seen += 1
        assert seen == 50
        for socket in sockets:
            notices = [event for event in socket.pending if event.get("type") == "CHAT_ACTION"]
            while not await socket.nothing_for(0.05):
                event = await socket.next()
                if event.get("type") == "CHAT_ACTION":
                    notices.append(event)
            assert len(notices) == 1 and "perceived flooding" in notices[0]["body"]
            await socket.close()
        await watcher.close()

    asyncio.run(scenario())
    assert server.get("/api/status")["online"] is False  # type: ignore[index]


@pytest.mark.postgres
def test_two_nodes_on_one_postgres_share_live_chat_and_moderation(
    server_factory: ServerFactory, postgres_database: str, tmp_path: Any
) -> None:
    args = ("--database", postgres_database, "--trusted-proxies", "127.0.0.1")
    first = server_factory(*args, data_dir=tmp_path / "node1")
    second = server_factory(*args, data_dir=tmp_path / "node2")
    alice = register(first.base_url, "alice")
    bob = register(second.base_url, "bob")

    async def scenario() -> None:
        a = await ChatSocket.open(first.web_port, alice["accessToken"])
        b = await ChatSocket.open(second.web_port, bob["accessToken"])
        await a.next()
        await b.next()
        await a.send({"type": "CHAT", "body": "across nodes"})
        assert (await b.next_of("CHAT"))["body"] == "<p>across nodes</p>"
        status, _ = admin_post(first, "/api/admin/chat/users/setmoderator", {"userId": bob["id"], "isModerator": True})
        assert status == 200
        assert (await b.next_of("CONNECTED_USER_INFO"))["user"]["scopes"] == ["MODERATOR"]
        assert admin_post(first, "/api/admin/chat/users/setenabled", {"userId": bob["id"], "enabled": False})[0] == 200
        events = await b.closed()
        assert any(event.get("type") == "ERROR_USER_DISABLED" for event in events)
        assert "has been removed from chat" in (await a.next_of("CHAT_ACTION"))["body"]
        await a.close()

    asyncio.run(scenario())
    assert admin_post(first, "/api/admin/chat/users/ipbans/create", {"value": "198.51.100.9"})[0] == 200
    time.sleep(0.3)
    status, _, _ = second.request(
        "/api/chat/register", method="POST", body=b"{}", headers={"X-Forwarded-For": "198.51.100.9"}
    )
    assert status == 400
