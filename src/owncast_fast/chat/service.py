"""The chat service: ties the hub, the store, the settings, the stream status and the event bus.

Everything runs on the server's event loop. The websocket adapter (`web/routes/chat.py`) calls
`connect`, `receive` and `disconnect`, and gives the service a `ChatTransport` that writes frames;
HTTP routes call the registration, history and moderation methods. Users, tokens and IP bans are
cached in memory (a single node is the default; see docs/design.md for several nodes), so a
websocket connect costs a dict lookup once the token's user is known. Messages are broadcast
first and written to the store in the background, as Owncast does; `stop` waits for the writes.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson

from owncast_fast.chat import wire
from owncast_fast.chat.emoji import EmojiStore
from owncast_fast.chat.filter import is_profane
from owncast_fast.chat.hub import ChatClient, ChatHub
from owncast_fast.chat.ratelimit import Verdict
from owncast_fast.chat.render import render_chat_body, render_markdown
from owncast_fast.chat.users import (
    ESTABLISHED_USER_S,
    MAX_USER_COLOR,
    MODERATOR_SCOPE,
    clean_display_name,
    generated_name,
    is_forbidden,
    new_access_token,
    new_color,
    new_id,
)
from owncast_fast.config.runtime import SettingsService
from owncast_fast.events import (
    ChatActionSent,
    ChatMessageSent,
    Event,
    EventBus,
    IpBanChanged,
    ModeratorChanged,
    NameChanged,
    SettingChanged,
    StreamStarted,
    StreamStopped,
    UserEnabledChanged,
    UserJoined,
    UserParted,
    VisibilityUpdated,
)
from owncast_fast.status import StreamStatus
from owncast_fast.store.base import ChatMessageRow, ChatRelay, ChatRepository, ChatUser, IpBan
from owncast_fast.timefmt import rfc3339, utcnow

log = logging.getLogger(__name__)

MAX_PAYLOAD = 2048  # Owncast's MaxSocketPayloadSize: larger frames get a notice and are dropped
MAX_FRAME = 2 * MAX_PAYLOAD  # Owncast's read limit: larger frames close the socket
HISTORY_LENGTH = 50  # GET /api/chat
ADMIN_HISTORY_LENGTH = 5000  # GET /api/admin/chat/messages (bounded here; Owncast returns every row)
USER_DETAILS_MESSAGES = 50
RETENTION = timedelta(hours=2)  # messages older than this are pruned
PRUNE_PERIOD_S = 5 * 60
WELCOME_DELAY_S = 7.0  # Owncast's artificial delay before a connecting client's welcome message
DISABLE_CLOSE_DELAY_S = 2.0  # a disabled user's sockets close this long after ERROR_USER_DISABLED
OFFLINE_CHAT_GRACE = timedelta(minutes=5)  # chat still works this long after a stream ends
MAX_KNOWN_PEERS = 100_000  # tokens whose latest HTTP address we remember (oldest forgotten first)
MAX_CACHED_USERS = 100_000
MAX_RELAY_PAYLOAD = 7_900  # PostgreSQL's NOTIFY payload limit is 8,000 bytes
UNBANNABLE = frozenset({"127.0.0.1", "::1", ""})

SIZE_NOTICE = "Sorry, that message exceeded the maximum size and can't be delivered."
FLOOD_NOTICE = "You are temporarily blocked from sending chat messages due to perceived flooding."
SLUR_NOTICE = "Sorry, that message contained language that is not allowed in this chat."
ESTABLISHED_NOTICE = (
    "You have not been an established chat participant long enough to take part in chat. "
    "Please enjoy the stream and try again later."
)


def max_connections() -> int:
    """Owncast's limit: 70 % of the process's hard open-file limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    return int(hard * 0.7)


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft open-file limit to `wanted` (at most the hard limit), as Owncast does, so a
    default soft limit of 1,024 does not cap chat at a thousand sockets; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning(
                "cannot raise the open-file limit to %d (%s): chat sockets are capped near %d", target, exc, soft
            )
    return soft


class ChatTransport(Protocol):
    """Writes to websockets; implemented by the Robyn adapter (and by fakes in unit tests)."""

    def send(self, connection: str, text: str) -> None: ...

    def broadcast(self, text: str) -> None: ...

    def close(self, connection: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a token's latest HTTP request came from (the websocket upgrade does not tell us)."""

    ip: str
    user_agent: str


class ChatService:
    def __init__(
        self,
        repo: ChatRepository,
        settings: SettingsService,
        bus: EventBus,
        status: StreamStatus,
        emoji_dir: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
        connection_limit: int | None = None,
        relay: ChatRelay | None = None,
    ) -> None:
        self._repo = repo
        self._settings = settings
        self._bus = bus
        self._status = status
        self._clock = clock
        self._wall = wall
        self.hub = ChatHub()
        self.emoji = EmojiStore(emoji_dir)
        self.transport: ChatTransport | None = None
        self.connection_limit = max_connections() if connection_limit is None else connection_limit
        self._tokens: OrderedDict[str, str] = OrderedDict()  # token → user id
        self._users: OrderedDict[str, ChatUser] = OrderedDict()
        self._peers: OrderedDict[str, Peer] = OrderedDict()
        self._bans: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._flush_scheduled = False
        self._part_timer: asyncio.TimerHandle | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self._relay = relay if relay is not None and relay.shared else None
        self._node = new_id()  # tells this node's relayed payloads from the others'
        self._relay_out: list[str] = []
        self.user_count = 0  # stored users and messages, for the Prometheus gauges
        self.message_count = 0

    @property
    def client_count(self) -> int:
        return len(self.hub)

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        raise_open_file_limit(self.connection_limit + 1024)  # room for HTTP, files and the store
        self._bans = {ban.ip_address for ban in await self._repo.ip_bans()}
        self.user_count, self.message_count = await self._repo.counts()
        await asyncio.to_thread(self.emoji.scan)
        self._unsubscribe = self._bus.subscribe(self._on_event)
        self._prune_task = asyncio.create_task(self._prune_forever())
        if self._relay is not None:
            await self._relay.start(self._relayed)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._prune_task is not None:
            self._prune_task.cancel()
        if self._part_timer is not None:
            self._part_timer.cancel()
        if self._tasks:
            await asyncio.wait(tuple(self._tasks), timeout=2.0)
        if self._relay is not None:
            relay, self._relay = self._relay, None
            await relay.stop()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("chat background write failed", exc_info=task.exception())

    async def _prune_forever(self) -> None:
        while True:
            try:
                removed = await self._repo.delete_messages_before(self._wall() - RETENTION)
                if removed:
                    log.debug("pruned %d chat messages older than 2 hours", removed)
                self.user_count, self.message_count = await self._repo.counts()
            except Exception:
                log.exception("pruning chat messages failed")
            await asyncio.sleep(PRUNE_PERIOD_S)

    # --- users and tokens ---------------------------------------------------------------------

    def _remember(self, user: ChatUser) -> ChatUser:
        self._users[user.id] = user
        self._users.move_to_end(user.id)
        if len(self._users) > MAX_CACHED_USERS:
            self._users.popitem(last=False)
        self.hub.update_user(user)
        return user

    async def user_by_id(self, user_id: str) -> ChatUser | None:
        user = self._users.get(user_id)
        if user is None:
            user = await self._repo.user_by_id(user_id)
            if user is not None:
                self._remember(user)
        return user

    async def user_for_token(self, token: str) -> ChatUser | None:
        if not token:
            return None
        user_id = self._tokens.get(token)
        if user_id is not None:
            user = await self.user_by_id(user_id)
            if user is not None:
                return user
        user = await self._repo.user_by_token(token)
        if user is None:
            return None
        self._tokens[token] = user.id
        if len(self._tokens) > MAX_CACHED_USERS:
            self._tokens.popitem(last=False)
        return self._remember(user)

    def note_peer(self, token: str, peer: Peer) -> None:
        """Attribute an address and user agent to `token` (its latest HTTP request)."""
        self._peers[token] = peer
        self._peers.move_to_end(token)
        if len(self._peers) > MAX_KNOWN_PEERS:
            self._peers.popitem(last=False)

    def is_banned(self, ip: str) -> bool:
        return ip in self._bans

    async def _name_available(self, name: str) -> bool:
        return bool(name) and not await self._repo.name_is_registered(name)

    async def register(self, display_name: str, forwarded_user: str, peer: Peer) -> tuple[ChatUser, str]:
        """A new anonymous user and its access token (reference §2.1; the header wins, as in 0.2)."""
        settings = self._settings.current
        name = clean_display_name(forwarded_user or display_name)
        if not await self._name_available(name):
            name = generated_name(settings.suggested_usernames)
        now = self._wall()
        user = ChatUser(new_id(), name, new_color(), now, previous_names=(name,))
        token = new_access_token()
        await self._repo.create_user(user, token)
        self.user_count += 1
        self._tokens[token] = user.id
        self._remember(user)
        self.note_peer(token, peer)
        return user, token

    # --- websocket life -----------------------------------------------------------------------

    def _send(self, client: ChatClient, event: dict[str, Any]) -> None:
        self.hub.send(client, wire.encode(event))
        self._schedule_flush()

    def _broadcast(self, event: dict[str, Any]) -> None:
        line = wire.encode(event)
        self.hub.broadcast(line)
        if self._relay is not None:
            self._relay_out.append(line)
        self._schedule_flush()

    # --- relay between nodes (PostgreSQL) -------------------------------------------------------
    #
    # Every line for everybody is relayed to the other nodes, which send it to their own clients;
    # changes to users and bans are relayed as operations, so each node's caches and live sockets
    # follow. Bus events are published only on the node where they happened (webhooks fire once).

    def _relay_payload(self, payload: dict[str, Any]) -> None:
        if self._relay is None:
            return
        text = orjson.dumps({"n": self._node, **payload}).decode()
        if len(text.encode()) > MAX_RELAY_PAYLOAD:
            log.warning("a chat event of %d bytes is too large to relay to the other nodes", len(text.encode()))
            return
        self._spawn(self._relay.publish(text))

    def _relayed(self, payload: str) -> None:
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("ignored a relayed chat payload that is not JSON")
            return
        if not isinstance(message, dict) or message.get("n") == self._node:
            return
        if isinstance(line := message.get("b"), str):
            self.hub.broadcast(line)
            self._schedule_flush()
        elif message.get("op") == "ban" and isinstance(ip := message.get("ip"), str):
            self._bans.add(ip)
        elif message.get("op") == "unban" and isinstance(ip := message.get("ip"), str):
            self._bans.discard(ip)
        elif message.get("op") == "user" and isinstance(user_id := message.get("user"), str):
            self._spawn(self._refresh_user(user_id, resend_info=bool(message.get("info"))))

    async def _refresh_user(self, user_id: str, *, resend_info: bool) -> None:
        """Another node changed this user: reload it, and apply the change to our live sockets."""
        user = await self._repo.user_by_id(user_id)
        if user is None:
            return
        self._remember(user)
        now = self._wall()
        clients = self.hub.clients_of(user_id)
        if user.disabled_at is not None:
            for client in clients:
                self._send(client, wire.error_event(wire.ERROR_USER_DISABLED, new_id(), now))
            if clients:
                asyncio.get_running_loop().call_later(DISABLE_CLOSE_DELAY_S, self._close_clients, clients)
        elif resend_info:
            for client in clients:
                self._send(client, wire.user_event(wire.CONNECTED_USER_INFO, new_id(), now, user))

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbound = self.hub.drain()
        if self._relay_out:
            for line in self._relay_out:
                self._relay_payload({"b": line})
            self._relay_out = []
        transport = self.transport
        if transport is None:
            return
        for connection, text in outbound.frames:
            if connection is None:
                transport.broadcast(text)
            else:
                transport.send(connection, text)
        for client in outbound.slow:
            log.info("chat client %d is not reading (256 events queued): disconnecting it", client.id)
            transport.close(client.connection)
            self.disconnect(client.connection)

    def _refuse(self, connection: str, text: str | None) -> None:
        transport = self.transport
        if transport is None:
            return
        if text is not None:
            transport.send(connection, text)
        transport.close(connection)

    async def connect(self, connection: str, token: str | None) -> ChatClient | None:
        """Owncast's checks in order (reference §1.1); a refused socket gets its notice and is closed."""
        settings = self._settings.current
        if settings.chat_disabled:
            self._refuse(connection, wire.CHAT_DISABLED)
            return None
        peer = self._peers.get(token or "") or Peer("", "")
        if peer.ip in self._bans:
            self._refuse(connection, None)
            return None
        if len(self.hub) >= self.connection_limit:
            self._refuse(connection, wire.ERROR_MAX_CONNECTIONS_EXCEEDED)
            return None
        if not token:
            self._refuse(connection, None)
            return None
        user = await self.user_for_token(token)
        if user is None:
            self._refuse(connection, wire.encode({"type": wire.ERROR_NEEDS_REGISTRATION}))
            return None
        if user.disabled_at is not None:
            self._refuse(connection, wire.encode({"type": wire.ERROR_USER_DISABLED}))
            return None
        now = self._wall()
        client, new_session = self.hub.add(
            connection, user, now=self._clock(), at=now, ip=peer.ip, user_agent=peer.user_agent
        )
        self._send(client, wire.user_event(wire.CONNECTED_USER_INFO, new_id(), now, user))
        if self._status.online:
            if new_session and settings.chat_join_messages_enabled:
                self._broadcast(wire.user_event(wire.USER_JOINED, new_id(), now, user))
                self._bus.publish(UserJoined(new_id(), now, user, client.id))
            if settings.server_welcome_message.strip():
                asyncio.get_running_loop().call_later(WELCOME_DELAY_S, self._welcome, client)
        return client

    def _welcome(self, client: ChatClient) -> None:
        settings = self._settings.current
        if self.hub.by_connection(client.connection) is not client or not settings.server_welcome_message.strip():
            return
        body = render_markdown(settings.server_welcome_message)
        self._send(client, wire.system_event(new_id(), self._wall(), body, settings.server_name))

    def disconnect(self, connection: str) -> None:
        client = self.hub.remove(connection, now=self._clock())
        if client is None:
            return
        self._arm_part_timer()

    def _arm_part_timer(self) -> None:
        deadline = self.hub.next_part_deadline()
        if deadline is None:
            return
        if self._part_timer is not None:
            self._part_timer.cancel()
        delay = max(0.0, deadline - self._clock())
        self._part_timer = asyncio.get_running_loop().call_later(delay, self._expire_parts)

    def _expire_parts(self) -> None:
        self._part_timer = None
        now = self._wall()
        for client in self.hub.due_parts(self._clock()):
            user = self._users.get(client.user.id, client.user)
            if self._settings.current.chat_join_messages_enabled:
                self._broadcast(wire.user_event(wire.USER_PARTED, new_id(), now, user))
            self._bus.publish(UserParted(new_id(), now, user, client.id))
        self._arm_part_timer()

    # --- inbound frames -----------------------------------------------------------------------

    def _action_to(self, client: ChatClient, text: str) -> None:
        self._send(client, wire.action_event(new_id(), self._wall(), render_markdown(text)))

    async def receive(self, connection: str, frame: str | bytes) -> None:
        """One inbound frame, through Owncast's checks in order (reference §1.1 "Inbound processing")."""
        client = self.hub.by_connection(connection)
        if client is None:
            return
        size = len(frame) if isinstance(frame, bytes) else len(frame.encode())
        if size > MAX_FRAME:
            if self.transport is not None:
                self.transport.close(connection)
            self.disconnect(connection)
            return
        if size > MAX_PAYLOAD:
            self._action_to(client, SIZE_NOTICE)
            return
        now = self._clock()
        is_moderator = MODERATOR_SCOPE in client.user.scopes
        if client.limiter.in_timeout(now):
            return
        if self._settings.current.chat_spam_protection_enabled and not is_moderator:
            verdict = client.limiter.check(now)
            if verdict is Verdict.BLOCKED_NOW:
                self._action_to(client, FLOOD_NOTICE)
            if verdict is not Verdict.ALLOWED:
                return
        if isinstance(frame, bytes):
            try:
                frame = frame.decode()
            except UnicodeDecodeError:
                log.debug("chat client %d sent a frame that is not UTF-8: ignored", client.id)
                return
        if self._settings.current.chat_slur_filter_enabled and is_profane(frame):
            self._action_to(client, SLUR_NOTICE)  # moderators included, as Owncast
            return
        try:
            event = orjson.loads(frame.replace("\n", " ").strip())
        except orjson.JSONDecodeError:
            log.debug("chat client %d sent a frame that is not JSON: ignored", client.id)
            return
        if not isinstance(event, dict):
            return
        if self._settings.current.chat_established_users_only_mode and not is_moderator and self._is_new(client.user):
            self._action_to(client, ESTABLISHED_NOTICE)
            return
        kind = event.get("type")
        if kind == wire.CHAT:
            await self._chat(client, event.get("body"))
        elif kind == wire.NAME_CHANGE:
            await self._rename(client, event.get("newName"))
        elif kind == wire.COLOR_CHANGE:
            await self._recolor(client, event.get("newColor"))
        elif kind != wire.PONG:
            log.debug("chat client %d sent an unknown event type %r: ignored", client.id, kind)

    def _is_new(self, user: ChatUser) -> bool:
        return (self._wall() - user.created_at).total_seconds() < ESTABLISHED_USER_S

    def _chat_is_open(self) -> bool:
        """Owncast drops user messages while offline, from 5 minutes after the last stream ended."""
        if self._status.online:
            return True
        last = self._status.last_disconnect_time
        return last is None or self._wall() - last <= OFFLINE_CHAT_GRACE

    async def _chat(self, client: ChatClient, body: Any) -> None:
        if not isinstance(body, str) or not self._chat_is_open():
            return
        html = render_chat_body(body, self.emoji.urls)
        if not html:
            return
        now = self._wall()
        message = ChatMessageRow(new_id(), client.user.id, html, wire.CHAT, now)
        self._broadcast(wire.chat_event(message, client.user))
        self._bus.publish(ChatMessageSent(message.id, now, client.user, client.id, html, body))
        client.message_count += 1
        self.message_count += 1
        self._spawn(self._repo.add_message(message))

    async def _rename(self, client: ChatClient, proposed: Any) -> None:
        user = client.user
        name = clean_display_name(proposed) if isinstance(proposed, str) else ""
        settings = self._settings.current
        if is_forbidden(name, settings.blocked_usernames):
            self._action_to(client, f"You cannot change your name to **{name}**.")
        elif name != user.display_name and await self._repo.name_is_registered(name):
            self._action_to(
                client, f"The name **{name}** has been already registered. If this is your name, please authenticate."
            )
        elif name != user.display_name:
            now = self._wall()
            await self._repo.rename_user(user.id, name, now)
            renamed = self._remember(
                replace(user, display_name=name, previous_names=(*user.previous_names, name), name_changed_at=now)
            )
            self._relay_payload({"op": "user", "user": user.id})
            self._broadcast(wire.name_change_event(new_id(), now, renamed, user.display_name))
            self._bus.publish(NameChanged("", now, renamed, client.id, user.display_name, name))
        self._send(client, wire.user_event(wire.CONNECTED_USER_INFO, new_id(), self._wall(), client.user))

    async def _recolor(self, client: ChatClient, color: Any) -> None:
        # Owncast ignores colours above 7 silently and does not check negative ones; we refuse both.
        if isinstance(color, bool) or not isinstance(color, int) or not 0 <= color <= MAX_USER_COLOR:
            return
        await self._repo.set_user_color(client.user.id, color)
        self._remember(replace(client.user, display_color=color))
        self._relay_payload({"op": "user", "user": client.user.id})
        self._send(client, wire.user_event(wire.CONNECTED_USER_INFO, new_id(), self._wall(), client.user))

    # --- notices ------------------------------------------------------------------------------

    def broadcast_action(self, markdown: str) -> None:
        """An ephemeral CHAT_ACTION to everyone (not stored, so not in history)."""
        now = self._wall()
        body = render_markdown(markdown)
        event_id = new_id()
        self._broadcast(wire.action_event(event_id, now, body))
        self._bus.publish(ChatActionSent(event_id, now, body))

    def broadcast_system(self, markdown: str) -> None:
        settings = self._settings.current
        self._broadcast(wire.system_event(new_id(), self._wall(), render_markdown(markdown), settings.server_name))

    def _on_event(self, event: Event) -> None:
        if isinstance(event, StreamStarted):
            self.broadcast_action("Stay tuned, the stream is **starting**!")
            if self._settings.current.server_welcome_message.strip():
                self.broadcast_system(self._settings.current.server_welcome_message)
        elif isinstance(event, StreamStopped):
            self.broadcast_action("The stream is ending.")
        elif isinstance(event, SettingChanged) and event.name == "stream_title" and event.value:
            self.broadcast_action(f"Stream title changed to **{event.value}**")

    # --- history ------------------------------------------------------------------------------

    async def history(self) -> list[dict[str, Any]]:
        rows = await self._repo.visible_history(HISTORY_LENGTH)
        return [wire.history_item(message, user) for message, user in rows]

    async def admin_history(self) -> list[dict[str, Any]]:
        rows = await self._repo.all_history(ADMIN_HISTORY_LENGTH)
        return [wire.history_item(message, user) for message, user in rows]

    # --- moderation ---------------------------------------------------------------------------

    async def set_visibility(self, ids: list[str], visible: bool) -> None:
        now = self._wall()
        await self._repo.set_messages_hidden(ids, None if visible else now)
        event_id = new_id()
        self._broadcast(wire.visibility_event(event_id, now, ids, visible))
        self._bus.publish(VisibilityUpdated(event_id, now, tuple(ids), visible))

    async def set_enabled(self, user_id: str, enabled: bool) -> bool:
        """Disable (ban) or re-enable a user, with Owncast's effects (reference §1.9); False if unknown."""
        user = await self.user_by_id(user_id)
        if user is None:
            return False
        now = self._wall()
        if enabled:
            await self._repo.set_user_disabled(user_id, None)
            user = self._remember(replace(user, disabled_at=None))
            self._relay_payload({"op": "user", "user": user_id})
            self._bus.publish(UserEnabledChanged(now, user, True))
            return True
        await self._repo.set_user_disabled(user_id, now)
        user = self._remember(replace(user, disabled_at=now))
        self._relay_payload({"op": "user", "user": user_id})
        hidden = await self._repo.hide_messages_of_user(user_id, now)
        if hidden:
            event_id = new_id()
            self._broadcast(wire.visibility_event(event_id, now, hidden, False))
            self._bus.publish(VisibilityUpdated(event_id, now, tuple(hidden), False))
        clients = self.hub.clients_of(user_id)
        for client in clients:
            self._send(client, wire.error_event(wire.ERROR_USER_DISABLED, new_id(), now))
        if clients:
            asyncio.get_running_loop().call_later(DISABLE_CLOSE_DELAY_S, self._close_clients, clients)
        self.broadcast_action(f"**{user.display_name}** has been removed from chat.")
        banned = []
        for ip in {client.ip for client in clients} - UNBANNABLE:
            if await self.ban_ip(ip, f"Banning of {user.display_name}"):
                banned.append(ip)
        self._bus.publish(UserEnabledChanged(now, user, False, tuple(sorted(banned))))
        return True

    def _close_clients(self, clients: Iterable[ChatClient]) -> None:
        for client in clients:
            if self.hub.by_connection(client.connection) is client:
                if self.transport is not None:
                    self.transport.close(client.connection)
                self.disconnect(client.connection)

    async def set_moderator(self, user_id: str, is_moderator: bool) -> bool:
        user = await self.user_by_id(user_id)
        if user is None:
            return False
        scopes = tuple(scope for scope in user.scopes if scope != MODERATOR_SCOPE)
        if is_moderator:
            scopes = (*scopes, MODERATOR_SCOPE)
        await self._repo.set_user_scopes(user_id, scopes)
        user = self._remember(replace(user, scopes=scopes))
        self._relay_payload({"op": "user", "user": user_id, "info": True})
        now = self._wall()
        for client in self.hub.clients_of(user_id):
            self._send(client, wire.user_event(wire.CONNECTED_USER_INFO, new_id(), now, user))
        self._bus.publish(ModeratorChanged(now, user, is_moderator))
        return True

    async def ban_ip(self, ip: str, notes: str = "") -> bool:
        """Ban an address for new connections and token-checked requests; False if already banned."""
        now = self._wall()
        added = await self._repo.add_ip_ban(IpBan(ip, notes, now))
        self._bans.add(ip)
        self._relay_payload({"op": "ban", "ip": ip})
        if added:
            self._bus.publish(IpBanChanged(now, ip, True, notes))
        return added

    async def unban_ip(self, ip: str) -> bool:
        removed = await self._repo.remove_ip_ban(ip)
        self._bans.discard(ip)
        self._relay_payload({"op": "unban", "ip": ip})
        if removed:
            self._bus.publish(IpBanChanged(self._wall(), ip, False))
        return removed

    async def ip_bans(self) -> list[dict[str, Any]]:
        return [
            {"ipAddress": ban.ip_address, "notes": ban.notes, "createdAt": rfc3339(ban.created_at)}
            for ban in await self._repo.ip_bans()
        ]

    async def disabled_users(self) -> list[dict[str, Any]]:
        return [wire.user_json(user) for user in await self._repo.disabled_users()]

    async def moderators(self) -> list[dict[str, Any]]:
        return [wire.user_json(user) for user in await self._repo.users_with_scope(MODERATOR_SCOPE)]

    def clients_json(self) -> list[dict[str, Any]]:
        # `geo` is left out: no GeoIP database (Owncast sends null, which the spec's object type refuses).
        return [
            {
                "id": client.id,
                "clientId": client.id,
                "connectedAt": rfc3339(client.connected_at),
                "messageCount": client.message_count,
                "userAgent": client.user_agent,
                "ipAddress": client.ip,
                "user": wire.user_json(client.user),
            }
            for client in self.hub.clients.values()
        ]

    async def user_details(self, user_id: str) -> dict[str, Any] | None:
        user = await self.user_by_id(user_id)
        if user is None:
            return None
        messages = await self._repo.messages_of_user(user_id, USER_DETAILS_MESSAGES)
        return {
            "user": wire.user_json(user),
            "connectedClients": [
                {
                    "id": client.id,
                    "connectedAt": rfc3339(client.connected_at),
                    "messageCount": client.message_count,
                    "userAgent": client.user_agent,
                }
                for client in self.hub.clients_of(user_id)
            ],
            "messages": [wire.history_item(message, user) for message in messages],
        }
