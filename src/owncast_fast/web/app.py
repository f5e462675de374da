"""The Robyn application factory: one router per API area, JSON via orjson."""

from __future__ import annotations

import logging
import time

from robyn import Request, Response, Robyn
from robyn.argument_parser import Config

from owncast_fast.lifecycle import ServicesHolder
from owncast_fast.web.routes import admin, admin_config, chat, config, fallback, hls, images, metrics, status

# `fallback` last: its catch-all answers only what no other router serves under /api.
ROUTERS = (status, config, admin, admin_config, hls, metrics, images, chat, fallback)


def robyn_config() -> Config:
    """Robyn's settings, independent of our command line (Robyn would parse sys.argv)."""
    config = Config.__new__(Config)
    config.processes = 1  # the live stream's state lives in this one process
    config.workers = 2  # Rust worker threads for HTTP; Python work shares the GIL anyway
    config.dev = False
    config.fast = False
    config.create = False
    config.docs = False
    config.open_browser = False
    config.version = False
    config.compile_rust_path = None
    config.create_rust_file = None
    config.file_path = None
    config.disable_openapi = True  # we serve Owncast's API, documented by its own spec
    config.log_level = "WARN"
    return config


access_log = logging.getLogger("owncast_fast.web.access")
_START_HEADER = "x-owncast-fast-start"


def _add_access_log(app: Robyn) -> None:
    """One line per request: method, path, status, milliseconds, client address.

    Registered only when the access logger is enabled (`--log-level debug`): two Python
    middleware calls per request would otherwise cost the hot endpoints for nothing.
    """

    @app.before_request()
    def stamp(request: Request) -> Request:
        request.headers.set(_START_HEADER, str(time.perf_counter()))
        return request

    @app.after_request()
    def log_request(request: Request, response: Response) -> Response:
        started = float(request.headers.get(_START_HEADER) or time.perf_counter())
        elapsed_ms = (time.perf_counter() - started) * 1000
        access_log.debug(
            "%s %s %d %.1f ms %s",
            request.method,
            request.url.path,
            response.status_code,
            elapsed_ms,
            request.ip_addr or "-",
        )
        return response


def create_app(holder: ServicesHolder) -> Robyn:
    for noisy in ("robyn", "actix_server", "actix_web"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app = Robyn(__file__, config=robyn_config())
    for module in ROUTERS:
        app.include_router(module.router(holder))
    if access_log.isEnabledFor(logging.DEBUG):
        _add_access_log(app)
    return app
