"""A bare asyncio HTTP/1.1 client for LL-HLS tests and benches: parked requests, exact timing, no pooling.

Every request is its own connection (`Connection: close`), so a test can hold a thousand requests
open at once, close some of them before the server answers, and time each answer to the moment
its last byte was read (`time.monotonic()`, which is one clock for every process on Linux, so
client processes and the test compare times directly).

Also a script (stdlib only), for benches whose load must come from other processes. Each command
prints `ready` once it is set up, then reads one line from stdin that starts the measured part, and
ends with one JSON document on stdout:

    python http_client.py waiters PORT COUNT
        opens COUNT connections; the stdin line is the path to GET on all of them at once
    python http_client.py viewers PORT PLAYLIST COUNT [--no-parts] [--record]
        COUNT simulated LL-HLS viewers; the stdin line is when to stop (a time.monotonic() value)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

HOST = "127.0.0.1"
# Playlists and parts are small; a larger answer means something else went wrong.
MAX_BODY = 64 * 1024 * 1024


class HttpError(Exception):
    """The server's answer was not HTTP/1.1 as this client reads it."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes
    sent_at: float  # time.monotonic() once the request was written
    received_at: float  # time.monotonic() once the last byte of the answer was read

    @property
    def held(self) -> float:
        """Seconds between sending the request and having the whole answer."""
        return self.received_at - self.sent_at

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass(slots=True)
class PendingRequest:
    """A request written to its own connection, its answer not read yet."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sent_at: float

    async def response(self) -> HttpResponse:
        try:
            return await _read_response(self.reader, self.sent_at)
        finally:
            await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, port)


async def send(
    port: int, path: str, *, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
) -> PendingRequest:
    """Write `GET path` (on `connection` if given, else on a new one); read the answer later."""
    reader, writer = connection if connection is not None else await connect(port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    return PendingRequest(reader, writer, time.monotonic())


async def get(port: int, path: str, *, limit: float = 15.0) -> HttpResponse:
    """One GET on a new connection; its answer, or TimeoutError after `limit` seconds."""
    pending = await send(port, path)
    async with asyncio.timeout(limit):
        return await pending.response()


async def _read_response(reader: asyncio.StreamReader, sent_at: float) -> HttpResponse:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise HttpError(f"connection closed before an answer ({len(exc.partial)} bytes)") from None
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise HttpError(f"not an HTTP/1.x status line: {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        raise HttpError("chunked answers are not expected from the HLS routes")
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY:
            raise HttpError(f"a {length}-byte answer")
        body = await reader.readexactly(length)
    else:
        body = await reader.read(MAX_BODY)
    return HttpResponse(int(rest[:3]), headers, body, sent_at, time.monotonic())


# -- LL-HLS playlists, as a client reads them --------------------------------------------------------

_PART_LINE = re.compile(r'^#EXT-X-PART:.*URI="([^"]+)"', re.MULTILINE)
_HINT = re.compile(r'^#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', re.MULTILINE)


@dataclass(frozen=True, slots=True)
class LiveEdge:
    """What a client takes from a low-latency playlist to ask for the next update."""

    next_msn: int  # the segment of the next part
    next_part: int  # its index in that segment
    newest_part_uri: str | None  # the last EXT-X-PART listed
    hint_uri: str | None
    ended: bool


def live_edge(playlist: str) -> LiveEdge:
    """The next part a client asks for: RFC 8216bis 6.2.5.2, counted from the playlist lines.

    The next Media Sequence Number is EXT-X-MEDIA-SEQUENCE plus every segment (skipped ones
    included); the next part index is the number of EXT-X-PART lines after the last segment.
    """
    media_sequence = 0
    segments = 0
    trailing_parts = 0
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            media_sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-SKIP:"):
            segments += int(line.rpartition("=")[2])
        elif line.startswith("#EXTINF:"):
            segments += 1
            trailing_parts = 0
        elif line.startswith("#EXT-X-PART:"):
            trailing_parts += 1
    parts = part_uris(playlist)
    hint = _HINT.search(playlist)
    return LiveEdge(
        media_sequence + segments,
        trailing_parts,
        parts[-1] if parts else None,
        hint[1] if hint else None,
        "#EXT-X-ENDLIST" in playlist,
    )


def part_uris(playlist: str) -> list[str]:
    """Every EXT-X-PART URI, in playlist order."""
    return _PART_LINE.findall(playlist)


def blocking_path(playlist_path: str, msn: int, part: int | None = None, *, skip: bool = False) -> str:
    query = f"_HLS_msn={msn}" + (f"&_HLS_part={part}" if part is not None else "")
    return f"{playlist_path}?{query}{'&_HLS_skip=YES' if skip else ''}"


def sibling(playlist_path: str, name: str) -> str:
    """The path of a file named in a media playlist (URIs are relative to the playlist)."""
    return f"{playlist_path.rsplit('/', 1)[0]}/{name}"


# -- load from other processes ------------------------------------------------------------------------


async def _stdin_line() -> str:
    return (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip()


class _ParkedRequest(asyncio.Protocol):
    """One connection whose answer is only timed and kept: callbacks, no coroutine per request.

    A thousand answers arriving together cost the client a few microseconds each, so their
    arrival times say when the server wrote them, not when this process got round to them.
    """

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.sent_at = 0.0
        self.received_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.transport.write(request)
        self.sent_at = time.monotonic()

    def data_received(self, data: bytes) -> None:
        self.received_at = time.monotonic()
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def result(self) -> dict[str, object]:
        head, _, body = bytes(self.data).partition(b"\r\n\r\n")
        status = int(head[9:12]) if head.startswith(b"HTTP/1.") else 0
        outcome: dict[str, object] = {"status": status, "sent_at": self.sent_at, "received_at": self.received_at}
        if status != 200:
            outcome["body"] = body.decode(errors="replace")
        return outcome


async def parked_waiters(port: int, count: int) -> list[dict[str, object]]:
    """`count` connections opened first; then the same GET on all of them, sent before any is read.

    The server closes each connection after its answer (`Connection: close`), which ends it here.
    """
    loop = asyncio.get_running_loop()
    requests: list[_ParkedRequest] = []
    for start in range(0, count, 100):  # a hundred at a time: the listen backlog is finite
        batch = [_ParkedRequest(loop.create_future()) for _ in range(min(100, count - start))]
        await asyncio.gather(*(loop.create_connection(lambda r=r: r, HOST, port) for r in batch))
        requests += batch
    print("ready", flush=True)
    path = await _stdin_line()
    message = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
    for request in requests:
        request.send(message)
    await asyncio.gather(*(request.done for request in requests))
    return [request.result() for request in requests]


@dataclass(slots=True)
class ViewerRecord:
    playlists: int = 0
    parts: int = 0
    errors: int = 0
    first_error: str | None = None
    last_part: str | None = None  # the newest part this viewer fetched (or saw, when not fetching)
    # With `record`: (msn, part, sent_at, received_at) of every blocking reload answered.
    answers: list[tuple[int, int, float, float]] = field(default_factory=list)


@dataclass(slots=True)
class Deadline:
    at: float = float("inf")  # time.monotonic()


async def llhls_viewer(
    port: int, playlist_path: str, deadline: Deadline, ready: asyncio.Event, *, fetch_parts: bool, record: bool
) -> ViewerRecord:
    """One LL-HLS client: a blocking delta reload for the next part, then that part, until the deadline.

    Like hls.js in low-latency mode it asks for the part after the last one listed and loads the
    newest part; a viewer that fell behind jumps to the newest, so how far behind it was shows.
    """
    viewer = ViewerRecord()
    edge = live_edge((await get(port, playlist_path)).text)
    ready.set()
    while time.monotonic() < deadline.at and not edge.ended:
        try:
            wanted = (edge.next_msn, edge.next_part)
            answer = await get(port, blocking_path(playlist_path, *wanted, skip=True))
            if answer.status != 200:
                raise HttpError(f"blocking reload answered {answer.status}: {answer.text}")
            viewer.playlists += 1
            if record:
                viewer.answers.append((*wanted, answer.sent_at, answer.received_at))
            edge = live_edge(answer.text)
            newest = edge.newest_part_uri
            if fetch_parts and newest is not None and newest != viewer.last_part:
                part = await get(port, sibling(playlist_path, newest))
                if part.status != 200:
                    raise HttpError(f"part {newest} answered {part.status}")
                viewer.parts += 1
            viewer.last_part = newest
        except (OSError, HttpError, TimeoutError) as exc:
            viewer.errors += 1
            viewer.first_error = viewer.first_error or repr(exc)
            await asyncio.sleep(0.1)
            edge = live_edge((await get(port, playlist_path)).text)
    return viewer


async def viewers(port: int, playlist_path: str, count: int, *, fetch_parts: bool, record: bool) -> dict[str, object]:
    """`count` viewers; they play from the start and stop at the deadline read from stdin."""
    deadline = Deadline()
    readies = [asyncio.Event() for _ in range(count)]
    tasks = [
        asyncio.create_task(llhls_viewer(port, playlist_path, deadline, ready, fetch_parts=fetch_parts, record=record))
        for ready in readies
    ]
    async with asyncio.timeout(60):
        await asyncio.gather(*(ready.wait() for ready in readies))
    print("ready", flush=True)
    deadline.at = float(await _stdin_line())
    async with asyncio.timeout(max(0.0, deadline.at - time.monotonic()) + 30):
        records = await asyncio.gather(*tasks)
    return {
        "stopped_at": time.monotonic(),
        "viewers": [
            {
                "playlists": r.playlists,
                "parts": r.parts,
                "errors": r.errors,
                "first_error": r.first_error,
                "last_part": r.last_part,
                "answers": r.answers,
            }
            for r in records
        ],
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    waiters_command = commands.add_parser("waiters")
    waiters_command.add_argument("port", type=int)
    waiters_command.add_argument("count", type=int)
    viewers_command = commands.add_parser("viewers")
    viewers_command.add_argument("port", type=int)
    viewers_command.add_argument("playlist")
    viewers_command.add_argument("count", type=int)
    viewers_command.add_argument("--no-parts", action="store_true")
    viewers_command.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "waiters":
        result: object = asyncio.run(parked_waiters(args.port, args.count))
    else:
        result = asyncio.run(
            viewers(args.port, args.playlist, args.count, fetch_parts=not args.no_parts, record=args.record)
        )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
