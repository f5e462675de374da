"""Chat over HTTP and the `/ws` websocket: a thin adapter over `chat/service.py`.

Robyn 0.88's websocket handler sees only the query string: not the client address, not the
headers, and request middleware does not run on the upgrade. So an address and a user agent are
attributed to a token from its latest HTTP request (registration, history, moderation calls), IP
bans are enforced at each of those, and refusals happen after the upgrade (docs/design.md, "Chat").
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import ipaddress
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from robyn import Request, Response, SubRouter, WebSocketConnector
from robyn.robyn import FunctionInfo

from owncast_fast.chat.emoji import EmojiError, content_type
from owncast_fast.chat.service import ChatService, Peer
from owncast_fast.chat.users import MODERATOR_SCOPE
from owncast_fast.lifecycle import ServicesHolder
from owncast_fast.store.base import ChatUser
from owncast_fast.web.auth import admin_only
from owncast_fast.web.responses import CORS_ANY, api_response, json_response, preflight, read_json

log = logging.getLogger(__name__)

REGISTER_BODY_LIMIT = 4096  # {"displayName": ...}: a name is at most 30 code points once cleaned
EMOJI_BODY_LIMIT = 2 * 1024 * 1024  # base64 of the 1 MiB image cap, with room for a data: prefix
NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", **CORS_ANY}


class RobynTransport:
    """`ChatTransport` over Robyn's connectors. Broadcasts use Robyn's fan-out in Rust (one call for
    every socket of the endpoint); the sync calls keep the order in which the loop sends."""

    def __init__(self) -> None:
        self._sockets: dict[str, WebSocketConnector] = {}

    def add(self, connection: str, connector: WebSocketConnector) -> None:
        self._sockets[connection] = connector

    def remove(self, connection: str) -> None:
        self._sockets.pop(connection, None)

    def send(self, connection: str, text: str) -> None:
        connector = self._sockets.get(connection)
        if connector is not None:
            connector.sync_send_to(connection, text)

    def broadcast(self, text: str) -> None:
        for connector in self._sockets.values():
            connector.sync_broadcast(text)
            return

    def close(self, connection: str) -> None:
        connector = self._sockets.get(connection)
        if connector is not None:
            connector.close()


Serve = Callable[[WebSocketConnector, Any], Coroutine[Any, Any, None]]


def add_socket_route(api: SubRouter, endpoint: str, serve: Serve, closed: Callable[[str], None]) -> None:
    """Register a websocket endpoint with Robyn's Rust layer directly.

    Robyn 0.88's `@websocket` decorator does not tell the handler that the peer went away: its
    message channel stays open, and its close handler waits up to 5 s for the handler task before
    cancelling it (measured: every closed socket's handler lingered 5 s, and a burst of connects
    piled up that many tasks). Our close handler reports the closing at once and cancels the reader.
    `serve(connector, channel)` runs as one task per socket; `channel.receive()` gives str for text
    frames, bytes for binary ones, and None when the socket is gone.
    """
    readers: dict[str, asyncio.Task[None]] = {}

    async def connect(ws: WebSocketConnector) -> None:
        connection = ws.id
        reader = asyncio.create_task(serve(ws, ws.message_channel))  # type: ignore[attr-defined]
        readers[connection] = reader
        reader.add_done_callback(lambda _: readers.pop(connection, None) if readers.get(connection) is reader else None)

    async def message(ws: WebSocketConnector, msg: str) -> None:
        """Unused: with a message channel, Rust pushes frames to the channel instead."""

    async def close(ws: WebSocketConnector) -> None:
        closed(ws.id)
        reader = readers.pop(ws.id, None)
        if reader is not None:
            reader.cancel()

    def info(function: Callable[..., Any]) -> FunctionInfo:
        params = dict(inspect.signature(function).parameters)
        return FunctionInfo(function, True, len(params), params, {})

    api.add_web_socket(endpoint, {"connect": info(connect), "message": info(message), "close": info(close)})


def peer_address(address: str, forwarded: str, trusted_proxies: frozenset[str]) -> str:
    """The client's address: the peer, or, behind a trusted proxy, the nearest X-Forwarded-For
    entry that is not itself a trusted proxy (entries a client wrote itself are never trusted)."""
    if address not in trusted_proxies:
        return address
    for entry in reversed([entry.strip() for entry in forwarded.split(",") if entry.strip()]):
        address = entry
        if entry not in trusted_proxies:
            break
    return address


def client_peer(request: Request, trusted_proxies: frozenset[str]) -> Peer:
    headers = request.headers
    address = peer_address(request.ip_addr or "", headers.get("x-forwarded-for") or "", trusted_proxies)
    return Peer(address, headers.get("user-agent") or "")


def _unauthorized() -> Response:
    return Response(401, {"Content-Type": "text/plain; charset=utf-8", **CORS_ANY}, b"unauthorized")


def router(holder: ServicesHolder) -> SubRouter:
    api = SubRouter(prefix="")
    admin = admin_only(lambda: holder.current.admin)
    transport = RobynTransport()

    def chat() -> ChatService:
        service = holder.current.chat
        service.transport = transport
        return service

    def trusted() -> frozenset[str]:
        raw = holder.current.options.trusted_proxies
        return frozenset(part.strip() for part in raw.split(",") if part.strip())

    async def token_user(request: Request, *, moderator: bool) -> ChatUser | Response:
        """The enabled user of `?accessToken=`, from an address that is not banned; else 401."""
        token = request.query_params.get("accessToken", None) or ""
        service = chat()
        peer = client_peer(request, trusted())
        user = await service.user_for_token(token)
        if user is None or user.disabled_at is not None or service.is_banned(peer.ip):
            return _unauthorized()
        if moderator and MODERATOR_SCOPE not in user.scopes:
            return _unauthorized()
        service.note_peer(token, peer)
        return user

    # --- users ---------------------------------------------------------------------------------

    @api.post("/api/chat/register")
    async def register(request: Request) -> Response:
        service = chat()
        peer = client_peer(request, trusted())
        if service.is_banned(peer.ip):
            return api_response("this address is banned from chat", False)
        name = ""
        if request.body:
            body = read_json(request, REGISTER_BODY_LIMIT)
            if isinstance(body, Response):
                return body
            raw = body.get("displayName", "")
            if not isinstance(raw, str):
                return api_response("displayName must be a string", False)
            name = raw
        user, token = await service.register(name, request.headers.get("x-forwarded-user") or "", peer)
        return json_response({"id": user.id, "accessToken": token, "displayName": user.display_name}, headers=NO_CACHE)

    def register_wrong_method(request: Request) -> Response:
        """Owncast answers any method but POST (and the OPTIONS preflight) with a failed BaseAPIResponse."""
        return api_response(f"{request.method} is not supported, register with POST", False)

    def history_wrong_method(request: Request) -> Response:
        """Owncast's answer to any method but GET on the history endpoint."""
        return json_response({"error": "method not implemented (PRs are accepted)"}, 501)

    for method in ("get", "put", "delete", "patch"):
        getattr(api, method)("/api/chat/register")(register_wrong_method)
    for method in ("post", "put", "delete", "patch"):
        getattr(api, method)("/api/chat")(history_wrong_method)

    @api.get("/api/chat")
    async def history(request: Request) -> Response:
        user = await token_user(request, moderator=False)
        if isinstance(user, Response):
            return user
        return json_response(await chat().history(), headers=CORS_ANY)

    # --- emoji ---------------------------------------------------------------------------------

    @api.get("/api/emoji")
    async def emoji_list(request: Request) -> Response:
        return json_response(chat().emoji.listing(), headers=CORS_ANY)

    @api.get("/img/emoji/:name")
    async def emoji_image(request: Request) -> Response:
        path = chat().emoji.path_of(request.path_params["name"])
        if path is None:
            return Response(404, {"Content-Type": "text/plain"}, b"Not Found")
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError:
            return Response(404, {"Content-Type": "text/plain"}, b"Not Found")
        name = request.path_params["name"]
        headers = {"Content-Type": content_type(name), "Cache-Control": "public, max-age=3600"}
        return Response(200, headers, data)

    @api.post("/api/admin/emoji/upload")
    @admin
    async def emoji_upload(request: Request) -> Response:
        body = read_json(request, EMOJI_BODY_LIMIT)
        if isinstance(body, Response):
            return body
        name, data = body.get("name"), body.get("data")
        if not isinstance(name, str) or not isinstance(data, str):
            return api_response("name and data (base64 image) are required strings", False)
        try:
            image = base64.b64decode(data.split(",", 1)[1] if data.startswith("data:") else data, validate=True)
            await asyncio.to_thread(chat().emoji.save, name, image)
        except (binascii.Error, IndexError):
            return api_response("data is not valid base64", False)
        except EmojiError as exc:
            return api_response(str(exc), False)
        return api_response(f"Emoji {name!r} has been uploaded", True)

    @api.post("/api/admin/emoji/delete")
    @admin
    async def emoji_delete(request: Request) -> Response:
        body = read_json(request)
        if isinstance(body, Response):
            return body
        name = body.get("name")
        if not isinstance(name, str):
            return api_response("name is required", False)
        try:
            await asyncio.to_thread(chat().emoji.delete, name)
        except EmojiError as exc:
            return api_response(str(exc), False)
        return api_response(f"Emoji {name!r} has been deleted", True)

    # --- moderation ------------------------------------------------------------------------------

    async def visibility(request: Request) -> Response:
        body = read_json(request)
        if isinstance(body, Response):
            return body
        ids, visible = body.get("idArray"), body.get("visible")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not isinstance(visible, bool):
            return api_response("idArray (array of message ids) and visible (boolean) are required", False)
        await chat().set_visibility(ids, visible)
        return api_response("changed chat message visibility", True)

    async def set_enabled(request: Request) -> Response:
        body = read_json(request)
        if isinstance(body, Response):
            return body
        user_id, enabled = body.get("userId"), body.get("enabled")
        if not isinstance(user_id, str) or not isinstance(enabled, bool):
            return api_response("userId (string) and enabled (boolean) are required", False)
        if not await chat().set_enabled(user_id, enabled):
            return api_response(f"no chat user with id {user_id}", False)
        return api_response("changed user enabled status", True)

    def moderator_only(handler: Any) -> Any:
        async def guarded(request: Request) -> Response:
            user = await token_user(request, moderator=True)
            if isinstance(user, Response):
                return user
            response: Response = await handler(request)
            return response

        return guarded

    api.post("/api/chat/messagevisibility")(moderator_only(visibility))
    api.post("/api/chat/users/setenabled")(moderator_only(set_enabled))
    api.post("/api/admin/chat/messagevisibility")(admin(visibility))
    api.post("/api/admin/chat/users/setenabled")(admin(set_enabled))

    @api.get("/api/moderation/chat/user/:userId")
    async def user_details(request: Request) -> Response:
        user = await token_user(request, moderator=True)
        if isinstance(user, Response):
            return user
        details = await chat().user_details(request.path_params["userId"])
        if details is None:
            return json_response({"error": "user not found"}, 404)
        return json_response(details)

    @api.get("/api/admin/chat/clients")
    @admin
    async def clients(request: Request) -> Response:
        return json_response(chat().clients_json())

    @api.get("/api/admin/chat/messages")
    @admin
    async def admin_messages(request: Request) -> Response:
        return json_response(await chat().admin_history())

    @api.get("/api/admin/chat/users/disabled")
    @admin
    async def disabled(request: Request) -> Response:
        return json_response(await chat().disabled_users())

    @api.get("/api/admin/chat/users/moderators")
    @admin
    async def moderators(request: Request) -> Response:
        return json_response(await chat().moderators())

    @api.post("/api/admin/chat/users/setmoderator")
    @admin
    async def set_moderator(request: Request) -> Response:
        body = read_json(request)
        if isinstance(body, Response):
            return body
        user_id, is_moderator = body.get("userId"), body.get("isModerator")
        if not isinstance(user_id, str) or not isinstance(is_moderator, bool):
            return api_response("userId (string) and isModerator (boolean) are required", False)
        if not await chat().set_moderator(user_id, is_moderator):
            return api_response(f"no chat user with id {user_id}", False)
        return api_response("changed moderator status", True)

    def ip_value(body: dict[str, Any]) -> str | None:
        value = body.get("value")
        if not isinstance(value, str):
            return None
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            return None

    @api.get("/api/admin/chat/users/ipbans")
    @admin
    async def ip_bans(request: Request) -> Response:
        return json_response(await chat().ip_bans())

    @api.post("/api/admin/chat/users/ipbans/create")
    @admin
    async def ban(request: Request) -> Response:
        body = read_json(request)
        if isinstance(body, Response):
            return body
        address = ip_value(body)
        if address is None:
            return api_response("value must be an IP address", False)
        await chat().ban_ip(address, "")
        return api_response(f"{address} has been banned", True)

    @api.post("/api/admin/chat/users/ipbans/remove")
    @admin
    async def unban(request: Request) -> Response:
        body = read_json(request)
        if isinstance(body, Response):
            return body
        address = ip_value(body)
        if address is None:
            return api_response("value must be an IP address", False)
        if not await chat().unban_ip(address):
            return api_response(f"{address} is not banned", False)
        return api_response(f"{address} has been unbanned", True)

    def answer_preflight(request: Request) -> Response:
        return preflight()

    for path in (
        "/api/chat/register",
        "/api/admin/chat/clients",
        "/api/admin/chat/messages",
        "/api/admin/emoji/upload",
        "/api/admin/emoji/delete",
        "/api/admin/chat/messagevisibility",
        "/api/admin/chat/users/setenabled",
        "/api/admin/chat/users/disabled",
        "/api/admin/chat/users/ipbans",
        "/api/admin/chat/users/ipbans/create",
        "/api/admin/chat/users/ipbans/remove",
        "/api/admin/chat/users/setmoderator",
        "/api/admin/chat/users/moderators",
    ):
        api.options(path)(answer_preflight)

    # --- websocket -------------------------------------------------------------------------------

    async def serve(connector: WebSocketConnector, channel: Any) -> None:
        service = chat()
        connection = connector.id
        transport.add(connection, connector)
        try:
            try:
                client = await service.connect(connection, connector.query_params.get("accessToken", None))
            except Exception:
                log.exception("chat connect of connection %s failed: closing it", connection)
                transport.close(connection)
                return
            if client is None:
                return
            while (frame := await channel.receive()) is not None:
                try:
                    await service.receive(connection, frame)
                except Exception:
                    # One frame that fails (a store error on a rename, say) must not leave the
                    # socket open without a reader: log it and go on with the next frame.
                    log.exception("chat frame from connection %s failed", connection)
        finally:
            closed(connection)

    def closed(connection: str) -> None:
        chat().disconnect(connection)
        transport.remove(connection)

    add_socket_route(api, "/ws", serve, closed)
    return api
