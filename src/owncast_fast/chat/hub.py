"""The chat hub's bookkeeping, without sockets or clocks (times are passed in).

Theory of operation. Each websocket that passed the checks is a `ChatClient` with a per-process
sequential id (Owncast's `clientId`, from 0). The hub knows which clients each user has, keeps
Owncast's part timers (a user's last client leaving starts a 10-second timer; coming back before it
fires is the same session: no part and no join), and queues outbound events in one sequence, so
everybody sees them in the order they happened. A flush cuts the sequence into frames: consecutive
lines for the same target (one client, or everybody) go out as ONE text frame joined by newlines, as
Owncast's writer does. A client with 256 private lines waiting is a slow consumer and is dropped.
Broadcast lines are queued once for everybody (the adapter hands them to Robyn's Rust fan-out).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from owncast_fast.chat.ratelimit import RateLimiter
from owncast_fast.store.base import ChatUser

PART_DELAY_S = 10.0  # a reconnect within this is the same session
MAX_QUEUED_LINES = 256  # Owncast's per-client outbound queue; beyond it the client is dropped


@dataclass(slots=True, eq=False)
class ChatClient:
    id: int
    connection: str  # the transport's id for the socket
    user: ChatUser
    connected_at: datetime
    ip: str
    user_agent: str
    limiter: RateLimiter
    message_count: int = 0
    queued: int = 0  # private lines waiting for the next flush


@dataclass(slots=True)
class Outbound:
    """What one flush sends, in order: (connection, frame) for one client, (None, frame) for everybody."""

    frames: list[tuple[str | None, str]]
    slow: list[ChatClient]


class ChatHub:
    def __init__(self) -> None:
        self.clients: dict[int, ChatClient] = {}
        self._by_connection: dict[str, ChatClient] = {}
        self._by_user: dict[str, list[ChatClient]] = {}
        self._part_deadlines: dict[str, tuple[float, ChatClient]] = {}
        self._next_id = 0
        self._queue: list[tuple[ChatClient | None, str]] = []  # None: everybody
        self._slow: list[ChatClient] = []

    def __len__(self) -> int:
        return len(self.clients)

    def add(
        self, connection: str, user: ChatUser, *, now: float, at: datetime, ip: str, user_agent: str
    ) -> tuple[ChatClient, bool]:
        """Register a client; the flag says whether this starts a new session for its user
        (no other client connected and no part timer pending), which is when Owncast announces a join."""
        client = ChatClient(self._next_id, connection, user, at, ip, user_agent, RateLimiter(now))
        self._next_id += 1
        others = self._by_user.setdefault(user.id, [])
        new_session = not others and self._part_deadlines.pop(user.id, None) is None
        others.append(client)
        self.clients[client.id] = client
        self._by_connection[connection] = client
        return client, new_session

    def by_connection(self, connection: str) -> ChatClient | None:
        return self._by_connection.get(connection)

    def remove(self, connection: str, *, now: float) -> ChatClient | None:
        """Forget the client; the user's last client leaving starts the part timer."""
        client = self._by_connection.pop(connection, None)
        if client is None:
            return None
        del self.clients[client.id]
        others = self._by_user.get(client.user.id, [])
        if client in others:
            others.remove(client)
        if not others:
            self._by_user.pop(client.user.id, None)
            self._part_deadlines[client.user.id] = (now + PART_DELAY_S, client)
        return client

    def due_parts(self, now: float) -> list[ChatClient]:
        """The last clients of users whose part timer has expired (each returned once)."""
        due = [user_id for user_id, (deadline, _) in self._part_deadlines.items() if deadline <= now]
        return [self._part_deadlines.pop(user_id)[1] for user_id in due]

    def next_part_deadline(self) -> float | None:
        return min((deadline for deadline, _ in self._part_deadlines.values()), default=None)

    def clients_of(self, user_id: str) -> list[ChatClient]:
        return list(self._by_user.get(user_id, ()))

    def is_connected(self, user_id: str) -> bool:
        return bool(self._by_user.get(user_id))

    def update_user(self, user: ChatUser) -> None:
        for client in self._by_user.get(user.id, ()):
            client.user = user

    def send(self, client: ChatClient, line: str) -> None:
        if client.connection not in self._by_connection:
            return
        if client.queued >= MAX_QUEUED_LINES:
            if client not in self._slow:
                self._slow.append(client)
            return
        client.queued += 1
        self._queue.append((client, line))

    def broadcast(self, line: str) -> None:
        self._queue.append((None, line))

    @property
    def has_outbound(self) -> bool:
        return bool(self._queue or self._slow)

    def drain(self) -> Outbound:
        runs: list[tuple[ChatClient | None, list[str]]] = []
        for target, line in self._queue:
            if target is not None:
                target.queued = 0
                if self._by_connection.get(target.connection) is not target:
                    continue  # gone since the line was queued
            if runs and runs[-1][0] is target:
                runs[-1][1].append(line)
            else:
                runs.append((target, [line]))
        frames = [(None if target is None else target.connection, "\n".join(lines)) for target, lines in runs]
        outbound = Outbound(frames, self._slow)
        self._queue = []
        self._slow = []
        return outbound
