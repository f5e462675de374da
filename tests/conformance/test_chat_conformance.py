"""Chat operations answer with the shapes Owncast's spec declares (issue 7: "Chat", "Chat moderation").

One server for the module; a chat user with a live socket and a message makes every list non-empty,
so the item schemas are checked too. The integrations operations come with access tokens (later).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec import Operation, app_routes
from test_response_schemas import call, check_against_spec
from tests.conftest import ServerProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from chat_client import ChatSocket, register

pytestmark = pytest.mark.integration

CHAT_OPERATIONS = [
    ("GET", "/api/emoji"),
    ("GET", "/api/chat?accessToken={token}"),
    ("POST", "/api/chat/register"),
    ("GET", "/api/admin/chat/clients"),
    ("GET", "/api/admin/chat/messages"),
    ("POST", "/api/admin/chat/messagevisibility"),
    ("POST", "/api/admin/chat/users/setenabled"),
    ("GET", "/api/admin/chat/users/disabled"),
    ("POST", "/api/admin/chat/users/ipbans/create"),
    ("GET", "/api/admin/chat/users/ipbans"),
    ("POST", "/api/admin/chat/users/ipbans/remove"),
    ("POST", "/api/admin/chat/users/setmoderator"),
    ("GET", "/api/admin/chat/users/moderators"),
    ("POST", "/api/chat/messagevisibility?accessToken={token}"),
    ("GET", "/api/moderation/chat/user/{user}?accessToken={token}"),
    ("POST", "/api/chat/users/setenabled?accessToken={token}"),
    ("POST", "/api/admin/emoji/upload"),
    ("POST", "/api/admin/emoji/delete"),
]


@pytest.fixture(scope="module")
def chat_world(module_server: ServerProcess) -> dict[str, Any]:
    moderator = register(module_server.base_url, "conformance-mod")
    other = register(module_server.base_url, "conformance-user")
    body = json.dumps({"userId": moderator["id"], "isModerator": True}).encode()
    op = Operation("POST", "/api/admin/chat/users/setmoderator")
    assert call(module_server, op, body)[0] == 200

    async def say() -> tuple[ChatSocket, str]:
        socket = await ChatSocket.open(module_server.web_port, other["accessToken"])
        await socket.next()
        await socket.send({"type": "CHAT", "body": "hello **spec**"})
        return socket, (await socket.next_of("CHAT"))["id"]

    loop = asyncio.new_event_loop()
    socket, message_id = loop.run_until_complete(say())
    world = {"moderator": moderator, "other": other, "message": message_id}
    yield world
    loop.run_until_complete(socket.close())
    loop.close()


def bodies(world: dict[str, Any]) -> dict[str, dict[str, Any]]:
    gif = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="
    return {
        "/api/chat/register": {"displayName": "spec-user"},
        "/api/admin/chat/messagevisibility": {"idArray": [world["message"]], "visible": True},
        "/api/chat/messagevisibility": {"idArray": [world["message"]], "visible": True},
        "/api/admin/chat/users/setenabled": {"userId": world["other"]["id"], "enabled": True},
        "/api/chat/users/setenabled": {"userId": world["other"]["id"], "enabled": True},
        "/api/admin/chat/users/ipbans/create": {"value": "192.0.2.10"},
        "/api/admin/chat/users/ipbans/remove": {"value": "192.0.2.10"},
        "/api/admin/chat/users/setmoderator": {"userId": world["moderator"]["id"], "isModerator": True},
        "/api/admin/emoji/upload": {"name": "spec.gif", "data": gif},
        "/api/admin/emoji/delete": {"name": "spec.gif"},
    }


@pytest.mark.parametrize(("method", "template"), CHAT_OPERATIONS, ids=[f"{m} {p}" for m, p in CHAT_OPERATIONS])
def test_chat_operation_answers_as_the_spec_says(
    module_server: ServerProcess, chat_world: dict[str, Any], method: str, template: str
) -> None:
    target = template.format(token=chat_world["moderator"]["accessToken"], user=chat_world["other"]["id"])
    path = target.partition("?")[0]
    op = Operation(method, template.partition("?")[0].replace("{user}", "{userId}"))
    body = bodies(chat_world).get(path)
    encoded = json.dumps(body).encode() if body is not None else None
    status, headers, raw = module_server.request(
        target,
        method=method,
        body=encoded,
        admin="abc123" if path.startswith("/api/admin/") else None,
        headers={"Content-Type": "application/json"} if encoded is not None else None,
    )
    assert status == 200, (target, status, raw[:300])
    check_against_spec(op, status, {key.lower(): value for key, value in headers.items()}, raw)
    if method == "GET" and "emoji" not in path and "ipbans" not in path and "disabled" not in path:
        assert json.loads(raw), f"{target}: empty, so the item schema was not exercised"


def test_every_chat_operation_is_routed_with_its_preflight() -> None:
    routed = {op.shape for op in app_routes()}
    for method, template in CHAT_OPERATIONS:
        path = template.partition("?")[0].replace("{user}", "{userId}")
        assert Operation(method, path).shape in routed, path
        if path.startswith("/api/admin/"):
            assert Operation("OPTIONS", path).shape in routed, path
