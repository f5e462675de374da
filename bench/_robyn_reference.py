"""The reference server for the side-by-side HTTP benches: bare Robyn answering a constant JSON body.

It runs as our app does (one process; the bench passes our `robyn_config().workers` Rust worker
threads) with a sync handler, like our `/api/status`, but on Robyn's fastest path: a handler without parameters
returning a prebuilt body. (Robyn 0.88 builds every request component, query, headers, form
data, files, for any handler that takes the request, whether it reads them or not.) The ratio
ours/reference is thus what our endpoint costs over the best Robyn can do on this machine, now.
It imports nothing of ours, so its start time is bare Robyn's: the floor for our cold start.

    python bench/_robyn_reference.py PORT WORKERS [--files ROOT]

With `--files ROOT` it also serves `ROOT/hls/...` (our server's `--hls-disk-copy` mirror) at
`/hls/...`: the floor for HLS serving on Robyn. Sync handlers (no hop to an event loop) answer
each file from memory, re-read only when its size or mtime changes (one `stat` per request), with
the headers our server sends. What it still pays is what any Robyn app pays per response: the
request object, and a copy of the body from Python `bytes` into Rust under the GIL before the
kernel copies it again into the socket (Robyn 0.88 has no `sendfile`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

# Same size and shape as a real /api/status answer, but built once.
STATUS_BODY = (
    b'{"serverTime":"2026-01-01T00:00:00.000000Z","lastConnectTime":null,"lastDisconnectTime":null,'
    b'"versionNumber":"0.2.0","streamTitle":"","online":false,"viewerCount":0}'
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("workers", type=int, help="Robyn worker threads")
    parser.add_argument("--files", type=Path, help="serve ROOT/hls/... at /hls/... from memory")
    args = parser.parse_args()
    # Robyn parses sys.argv when it is imported; our arguments are not its arguments.
    sys.argv = sys.argv[:1]

    from robyn import Request, Response, Robyn
    from robyn.argument_parser import Config

    config = Config()  # Robyn's defaults (sys.argv is empty now), then what our app sets
    config.processes = 1
    config.workers = args.workers
    config.disable_openapi = True
    config.log_level = "WARN"
    app = Robyn(__file__, config=config)

    @app.get("/api/status")
    def status() -> Response:
        return Response(200, {"Content-Type": "application/json"}, STATUS_BODY)

    async def ready() -> None:
        # Robyn's Rust runtime ignores SIGTERM here; nothing to clean up, so leave at once.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, os._exit, 0)
        print("reference ready", flush=True)

    if args.files is not None:
        serve_files(app, args.files / "hls", Request, Response)

    app.startup_handler(ready)
    app.start(host="127.0.0.1", port=args.port, _check_port=False)


def serve_files(app: Any, root: Path, request_type: Any, response_type: Any) -> None:
    """Sync `/hls/...` handlers answering from an in-memory copy of `root`, refreshed on change."""
    cache: dict[str, tuple[int, int, bytes]] = {}
    playlist = {
        "Content-Type": "application/vnd.apple.mpegurl",
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Access-Control-Allow-Origin": "*",
    }
    media = {"Cache-Control": "public, max-age=31557600, immutable", "Access-Control-Allow-Origin": "*"}
    types = {"mp4": "video/mp4", "m4s": "video/iso.segment", "ts": "video/mp2t"}

    def load(relative: str) -> bytes | None:
        path = root / relative
        try:
            stat = os.stat(path)
        except OSError:
            return None
        held = cache.get(relative)
        if held is not None and held[0] == stat.st_mtime_ns and held[1] == stat.st_size:
            return held[2]
        try:
            body = path.read_bytes()
        except OSError:
            return None
        if held is None:
            # A new file: forget the ones the mirror has deleted since (segments leave it a few
            # seconds after they leave the playlist), so memory stays at the window's size.
            for gone in [name for name in cache if not (root / name).exists()]:
                del cache[gone]
        cache[relative] = (stat.st_mtime_ns, stat.st_size, body)
        return body

    def answer(relative: str, headers: dict[str, str]) -> Any:
        body = load(relative)
        if body is None:
            cache.pop(relative, None)  # gone from the mirror: forget it, as the store does
            return response_type(404, {"Content-Type": "text/plain"}, b"Not Found")
        return response_type(200, headers, body)

    @app.get("/hls/stream.m3u8")
    def multivariant() -> Any:
        return answer("stream.m3u8", playlist)

    @app.get("/hls/:variant/stream.m3u8")
    def media_playlist(request: request_type) -> Any:
        return answer(f"{request.path_params['variant']}/stream.m3u8", playlist)

    @app.get("/hls/:variant/:name")
    def media_file(request: request_type) -> Any:
        name = request.path_params["name"]
        kind = types.get(name.rpartition(".")[2], "application/octet-stream")
        return answer(f"{request.path_params['variant']}/{name}", {"Content-Type": kind, **media})


if __name__ == "__main__":
    main()
