"""The reference server for the side-by-side HTTP benches: bare Robyn answering a constant JSON body.

It runs as our app does (one process; the bench passes our `robyn_config().workers` Rust worker
threads) with a sync handler, like our `/api/status`, but on Robyn's fastest path: a handler without parameters
returning a prebuilt body. (Robyn 0.88 builds every request component, query, headers, form
data, files, for any handler that takes the request, whether it reads them or not.) The ratio
ours/reference is thus what our endpoint costs over the best Robyn can do on this machine, now.
It imports nothing of ours, so its start time is bare Robyn's: the floor for our cold start.

    python bench/_robyn_reference.py PORT WORKERS
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

# Same size and shape as a real /api/status answer, but built once.
STATUS_BODY = (
    b'{"serverTime":"2026-01-01T00:00:00.000000Z","lastConnectTime":null,"lastDisconnectTime":null,'
    b'"versionNumber":"0.2.0","streamTitle":"","online":false,"viewerCount":0}'
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("workers", type=int, help="Robyn worker threads")
    args = parser.parse_args()
    # Robyn parses sys.argv when it is imported; our arguments are not its arguments.
    sys.argv = sys.argv[:1]

    from robyn import Response, Robyn
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

    app.startup_handler(ready)
    app.start(host="127.0.0.1", port=args.port, _check_port=False)


if __name__ == "__main__":
    main()
