"""`owncast-fast serve`: preflight, then Robyn with our services on its event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from owncast_fast import __version__
from owncast_fast.config.options import Options
from owncast_fast.lifecycle import (
    Plan,
    ServicesHolder,
    StartupError,
    preflight,
    start_services,
    stop_services,
)

log = logging.getLogger("owncast_fast")

SHUTDOWN_GRACE = 4.0  # seconds; SIGTERM must end the process within 5 s


def _display_host(ip: str) -> str:
    if ip in ("0.0.0.0", "::"):
        return "localhost"
    return f"[{ip}]" if ":" in ip else ip


def banner(plan: Plan) -> str:
    options = plan.options
    web = f"http://{_display_host(options.web_ip)}:{plan.web_port}"
    rtmp_host = _display_host(options.rtmp_ip)
    rtmp = f"rtmp://{rtmp_host}:{plan.rtmp_port}/live"
    lines = [
        f"owncast-fast {__version__} is running",
        # The web UI is not built yet: viewers open the HLS playlist in any HLS player.
        f"  Watch:      {web}/hls/stream.m3u8  (HLS: Safari, VLC, hls.js; low latency on fMP4)",
        f"  Admin API:  {web}/api/admin/status  (user admin)",
        f"  OBS server: {rtmp}",
        f"  Stream key: {plan.stream_key_hint or '(none set: add one in the admin settings)'}",
    ]
    if options.rtmps_port:
        lines.append(f"  RTMPS:      rtmps://{rtmp_host}:{options.rtmps_port}/live")
    if options.web_ip in ("0.0.0.0", "::"):
        lines.append("  (listening on all interfaces: other devices use this machine's address)")
    return "\n".join(lines)


def run(options: Options) -> int:
    try:
        plan = asyncio.run(preflight(options))
    except StartupError as exc:
        print(f"owncast-fast: {exc}", file=sys.stderr)
        return 2

    from owncast_fast.web.app import create_app
    from owncast_fast.web.deadlines import apply_deadlines

    holder = ServicesHolder()
    app = create_app(holder)
    stopping = False
    shutdown_tasks: list[asyncio.Task[None]] = []

    async def shutdown(signame: str) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        log.info("%s received: shutting down", signame)
        try:
            await asyncio.wait_for(stop_services(holder.current), SHUTDOWN_GRACE)
            code = 0
        except Exception:
            log.exception("shutdown did not complete cleanly")
            code = 1
        logging.shutdown()
        sys.stdout.flush()
        # Robyn's Rust runtime has no graceful stop from Python; everything we own is closed.
        os._exit(code)

    async def startup() -> None:
        try:
            services = await start_services(plan)
        except StartupError as exc:
            print(f"owncast-fast: {exc}", file=sys.stderr, flush=True)
            os._exit(2)
        holder.set(services)
        apply_deadlines(plan.web_port, options.web_timeout)
        loop = asyncio.get_running_loop()

        def on_signal(name: str) -> None:
            # Keep a reference: the loop holds tasks weakly.
            shutdown_tasks.append(loop.create_task(shutdown(name)))

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig.name)
        print(banner(plan), flush=True)

    app.startup_handler(startup)
    app.start(host=options.web_ip, port=plan.web_port, _check_port=False)
    return 0
