"""The Robyn application factory: one router per API area, JSON via orjson."""

from __future__ import annotations

import logging

from robyn import Robyn
from robyn.argument_parser import Config

from owncast_fast.lifecycle import ServicesHolder
from owncast_fast.web.routes import admin, status

ROUTERS = (status, admin)


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


def create_app(holder: ServicesHolder) -> Robyn:
    for noisy in ("robyn", "actix_server", "actix_web"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app = Robyn(__file__, config=robyn_config())
    for module in ROUTERS:
        app.include_router(module.router(holder))
    return app
