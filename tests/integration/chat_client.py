"""A chat client for tests and benches: register over HTTP, talk on /ws with the `websockets` library.

Frames are split on newlines (Owncast joins queued events in one frame); each line is one event.
Robyn 0.88 sends the text `Connection closed` before it drops a socket it closes; that line is kept
as `{"text": "Connection closed"}` so tests can see it.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


def register(base_url: str, name: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
    body = json.dumps({"displayName": name}).encode()
    request = urllib.request.Request(base_url + "/api/chat/register", data=body, method="POST", headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


class ChatSocket:
    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.pending: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, port: int, token: str | None) -> ChatSocket:
        query = "" if token is None else f"?accessToken={token}"
        return cls(await connect(f"ws://127.0.0.1:{port}/ws{query}", max_size=None, open_timeout=10))

    async def send(self, event: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(event))

    async def next(self, wait: float = 5.0) -> dict[str, Any]:
        while not self.pending:
            frame = await asyncio.wait_for(self.socket.recv(), wait)
            text = frame.decode() if isinstance(frame, bytes) else frame
            for line in text.split("\n"):
                self.pending.append(json.loads(line) if line.startswith("{") else {"text": line})
        return self.pending.pop(0)

    async def next_of(self, kind: str, wait: float = 5.0) -> dict[str, Any]:
        """The next event of type `kind`, skipping others."""
        while True:
            event = await self.next(wait)
            if event.get("type") == kind:
                return event

    async def closed(self, wait: float = 5.0) -> list[dict[str, Any]]:
        """Everything received until the server closes the socket."""
        seen = []
        try:
            while True:
                seen.append(await self.next(wait))
        except ConnectionClosed:
            seen.extend(self.pending)
            return seen

    async def nothing_for(self, seconds: float) -> bool:
        try:
            event = await self.next(seconds)
        except TimeoutError:
            return True
        self.pending.insert(0, event)
        return False

    async def close(self) -> None:
        await self.socket.close()
