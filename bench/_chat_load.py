"""Chat load from a separate process (stdlib + websockets), for bench/test_bench_chat.py.

Each command prints `ready` once set up, then reads one line from stdin (a `time.monotonic()` value:
when to stop; `time.monotonic()` is one clock for every process on Linux) and ends with one JSON
document on stdout.

    python _chat_load.py listen PORT TOKEN COUNT
        COUNT sockets as one user; records, for every CHAT line received, its delay since the time
        written in its body by the talker. Output: {"received": [...per socket counts], "latencies_ms": [...]}
        (latencies of every 10th socket, to keep the output small)
    python _chat_load.py listen-raw PORT TOKEN COUNT
        the same with a minimal client (asyncio.Protocol, no frame decoding: the server's frames are
        unmasked text, so message stamps are found in the raw bytes and deduplicated by sequence
        number), cheap enough that 5,000 sockets in a few processes do not fall behind on 2 cores.
        Output adds "gaps": messages missing between two received ones.
    python _chat_load.py listen-lazy PORT TOKEN COUNT
        listen-raw where only the sampled sockets (every 10th) read while messages flow; the others
        stop reading after their first frame and read everything at the stop time (the kernel holds
        it meanwhile), so the clients' CPU does not compete with the server's on a small machine.
        Completeness is still counted on every socket.
    python _chat_load.py talk PORT TOKEN RATE
        one moderator socket (not rate-limited) posting RATE messages a second until GRACE_S before
        the stop time, each body "<seq> <monotonic send time>". Output: {"sent": N}
    python _chat_load.py idle PORT TOKEN COUNT
        COUNT sockets that only stay open. Output: {"open": N}
    python _chat_load.py cycles PORT TOKEN COUNT
        COUNT connect / CONNECTED_USER_INFO / close cycles, 8 at a time. Output: {"cycles": N, "seconds": S}
    python _chat_load.py roundtrip PORT COUNT
        COUNT times, one after the other: register over HTTP, connect, wait for CONNECTED_USER_INFO,
        post a message and wait for it to come back. Output: {"roundtrip_ms": [...]}
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import sys
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

HOST = "127.0.0.1"
STAMP = re.compile(r'"body":"<p>(\d+) ([0-9.]+)</p>"')
CONNECT_CONCURRENCY = 100  # opens at once; the server's accept backlog is the real limit
GRACE_S = 2.0  # the talker stops this long before the listeners, so the last messages can arrive


def register(port: int, name: str) -> dict[str, Any]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request(
            "POST", "/api/chat/register", json.dumps({"displayName": name}), {"Content-Type": "application/json"}
        )
        result: dict[str, Any] = json.loads(connection.getresponse().read())
        return result
    finally:
        connection.close()


async def open_many(port: int, token: str, count: int) -> list[ClientConnection]:
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one() -> ClientConnection:
        async with limit:
            socket = await connect(f"ws://{HOST}:{port}/ws?accessToken={token}", open_timeout=60, ping_interval=None)
            await socket.recv()  # CONNECTED_USER_INFO
            return socket

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def stop_time() -> float:
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return float(line)


async def listen(port: int, token: str, count: int) -> dict[str, Any]:
    sockets = await open_many(port, token, count)
    received = [0] * count
    latencies: list[float] = []

    async def read(index: int, socket: ClientConnection, deadline: float) -> None:
        keep = index % 10 == 0
        try:
            while True:
                frame = await asyncio.wait_for(socket.recv(), max(0.01, deadline - time.monotonic()))
                now = time.monotonic()
                text = frame if isinstance(frame, str) else frame.decode()
                for match in STAMP.finditer(text):
                    received[index] += 1
                    if keep:
                        latencies.append((now - float(match.group(2))) * 1000)
        except (TimeoutError, ConnectionClosed):
            pass

    deadline = await stop_time()
    await asyncio.gather(*(read(index, socket, deadline) for index, socket in enumerate(sockets)))
    for socket in sockets:
        socket.transport.abort()
    return {"received": received, "latencies_ms": latencies}


RAW_STAMP = re.compile(rb"<p>(\d+) ([0-9.]+)</p>")
TAIL = 64  # bytes kept from the previous read: a stamp split between two reads is found whole


class RawListener(asyncio.Protocol):
    def __init__(self, request: bytes, keep: bool, latencies: list[float], lazy: bool = False) -> None:
        self.request = request
        self.keep = keep
        self.lazy = lazy and not keep
        self.last_data = 0.0
        self.latencies = latencies
        self.head = b""
        self.tail = b""
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.last = -1
        self.received = 0
        self.gaps = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.upgraded:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.upgraded = True
            data = self.head.split(b"\r\n\r\n", 1)[1]
            if not data:
                return
        self.last_data = now
        if not self.ready.done():
            self.ready.set_result(None)  # the first frame: CONNECTED_USER_INFO
            if self.lazy and self.transport is not None:
                self.transport.pause_reading()
        text = self.tail + data
        for match in RAW_STAMP.finditer(text):
            sequence = int(match.group(1))
            if sequence > self.last:
                self.gaps += sequence - self.last - 1
                self.last = sequence
                self.received += 1
                if self.keep:
                    self.latencies.append((now - float(match.group(2))) * 1000)
        self.tail = text[-TAIL:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the first frame"))


async def listen_raw(port: int, token: str, count: int, lazy: bool = False) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    request = (
        f"GET /ws?accessToken={token} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(index: int) -> RawListener:
        async with limit:
            _, listener = await loop.create_connection(
                lambda: RawListener(request, index % 10 == 0, latencies, lazy), HOST, port
            )
            await asyncio.wait_for(listener.ready, 60)
            return listener

    listeners = list(await asyncio.gather(*(one(index) for index in range(count))))
    deadline = await stop_time()
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    if lazy:
        for listener in listeners:
            if listener.transport is not None:
                listener.transport.resume_reading()
        resumed = time.monotonic()
        for _ in range(600):  # read until a second passes without data (at most 2 minutes)
            await asyncio.sleep(0.2)
            if time.monotonic() - max(resumed, *(listener.last_data for listener in listeners)) >= 1.0:
                break
    for listener in listeners:
        if listener.transport is not None:
            listener.transport.abort()
    return {
        "received": [listener.received for listener in listeners],
        "gaps": sum(listener.gaps for listener in listeners),
        "latencies_ms": latencies,
    }


async def talk(port: int, token: str, rate: float) -> dict[str, Any]:
    socket = await connect(f"ws://{HOST}:{port}/ws?accessToken={token}", ping_interval=None)
    await socket.recv()

    async def drain() -> None:
        try:
            async for _ in socket:
                pass
        except ConnectionClosed:
            pass

    draining = asyncio.create_task(drain())
    deadline = await stop_time()
    started = time.monotonic()
    sent = 0
    while True:
        due = started + sent / rate
        if due >= deadline - GRACE_S:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await socket.send(json.dumps({"type": "CHAT", "body": f"{sent} {time.monotonic():.6f}"}))
        sent += 1
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    draining.cancel()
    socket.transport.abort()
    return {"sent": sent}


async def idle(port: int, token: str, count: int) -> dict[str, Any]:
    sockets = await open_many(port, token, count)
    deadline = await stop_time()
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    still_open = sum(1 for socket in sockets if socket.close_code is None)
    for socket in sockets:
        socket.transport.abort()
    return {"open": still_open}


async def cycles(port: int, token: str, count: int) -> dict[str, Any]:
    await stop_time()
    started = time.monotonic()
    remaining = iter(range(count))
    done = 0

    async def worker() -> None:
        nonlocal done
        for _ in remaining:
            socket = await connect(f"ws://{HOST}:{port}/ws?accessToken={token}", ping_interval=None)
            await socket.recv()
            await socket.close()
            done += 1

    await asyncio.gather(*(worker() for _ in range(8)))
    return {"cycles": done, "seconds": time.monotonic() - started}


async def roundtrip(port: int, count: int) -> dict[str, Any]:
    await stop_time()
    times = []
    for index in range(count):
        started = time.perf_counter()
        user = await asyncio.to_thread(register, port, f"rt{index}")
        socket = await connect(f"ws://{HOST}:{port}/ws?accessToken={user['accessToken']}", ping_interval=None)
        await socket.recv()
        body = f"hello {index}"
        await socket.send(json.dumps({"type": "CHAT", "body": body}))
        while body not in await socket.recv():
            pass
        times.append((time.perf_counter() - started) * 1000)
        socket.transport.abort()
    return {"roundtrip_ms": times}


def main(argv: list[str]) -> None:
    command, port = argv[0], int(argv[1])
    if command == "listen":
        result = listen(port, argv[2], int(argv[3]))
    elif command in ("listen-raw", "listen-lazy"):
        result = listen_raw(port, argv[2], int(argv[3]), lazy=command == "listen-lazy")
    elif command == "talk":
        result = talk(port, argv[2], float(argv[3]))
    elif command == "idle":
        result = idle(port, argv[2], int(argv[3]))
    elif command == "cycles":
        result = cycles(port, argv[2], int(argv[3]))
    elif command == "roundtrip":
        result = roundtrip(port, int(argv[2]))
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(asyncio.run(result)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
