"""The real server process: start-up banner, refusals at start-up, graceful stop, persistence."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from tests.conftest import ServerFactory, ServerProcess, free_port

pytestmark = pytest.mark.integration

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "owncast_fast", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_banner_names_the_urls_and_the_stream_key(server: ServerProcess) -> None:
    log = server.log()
    assert f"Watch:      http://127.0.0.1:{server.web_port}/hls/stream.m3u8" in log
    assert f"Admin API:  http://127.0.0.1:{server.web_port}/api/admin/status" in log
    assert f"OBS server: rtmp://127.0.0.1:{server.rtmp_port}/live" in log
    assert "Stream key: abc123" in log


def test_status_offline_at_first(server: ServerProcess) -> None:
    status = server.get("/api/status")
    assert status == {
        "serverTime": status["serverTime"],  # type: ignore[index]
        "lastConnectTime": None,
        "lastDisconnectTime": None,
        "versionNumber": "0.2.0",
        "streamTitle": "",
        "online": False,
        "viewerCount": 0,
    }
    assert str(status["serverTime"]).endswith("Z")  # type: ignore[index]


def test_admin_auth(server: ServerProcess) -> None:
    code, headers, body = server.request("/api/admin/status")
    assert code == 401 and body == b"Unauthorized"
    assert headers["www-authenticate"] == 'Basic realm="Owncast Authenticated Request"'
    assert server.request("/api/admin/status", admin="wrong")[0] == 401
    code, _, body = server.request("/api/admin/status", admin="abc123")
    assert code == 200 and json.loads(body)["online"] is False
    code, headers, body = server.request("/api/admin/status", method="OPTIONS")
    assert code == 204 and headers["access-control-allow-origin"] == "*" and body == b""
    code, _, body = server.request("/api/admin/disconnect", method="POST", admin="abc123")
    assert code == 400
    assert json.loads(body) == {"message": "no inbound stream connected", "success": False}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_within_5_s_and_the_database_reopens(server_factory: ServerFactory, sig: int) -> None:
    server = server_factory()
    started = time.monotonic()
    code = server.stop(sig)
    assert code == 0
    assert time.monotonic() - started < 5
    assert "received: shutting down" in server.log()
    with sqlite3.connect(server.data_dir / "owncast-fast.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (name,) = db.execute("SELECT value FROM datastore WHERE key = 'server_name'").fetchone()
        assert json.loads(name) == "New Owncast Server"
    restarted = server_factory(data_dir=server.data_dir)
    assert restarted.get("/api/status")["online"] is False  # type: ignore[index]


def test_admin_password_flag_sets_the_password(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory("--admin-password", "s3cret-pass")
    assert server.request("/api/admin/status", admin="abc123")[0] == 401
    assert server.request("/api/admin/status", admin="s3cret-pass")[0] == 200
    server.stop()
    # Without the flag the stored (hashed) password stays.
    again = server_factory(data_dir=server.data_dir)
    assert again.request("/api/admin/status", admin="s3cret-pass")[0] == 200
    with sqlite3.connect(server.data_dir / "owncast-fast.db") as db:
        (stored,) = db.execute("SELECT value FROM datastore WHERE key = 'admin_password_key'").fetchone()
    assert json.loads(stored).startswith("$2b$10$")


def test_unknown_config_key_stops_start_up(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("web-port = 8089\nrtmpport = 1\n")
    result = run_cli("--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"owncast-fast: config file {config}: unknown key 'rtmpport'")
    assert not (tmp_path / "d").exists()


def test_port_in_use_stops_start_up(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(
            "--web-ip", "127.0.0.1", "--web-port", str(port), "--rtmp-port", str(free_port()),
            "--data-dir", str(tmp_path / "d"),
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f"owncast-fast: web port 127.0.0.1:{port}: already in use"


def test_bad_port_value(tmp_path: Path) -> None:
    result = run_cli("--rtmp-port", "99999", "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert result.stderr.strip() == "owncast-fast: --rtmp-port: 99999 is not a port number (1-65535)"


def test_corrupt_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    db = data / "owncast-fast.db"
    garbage = bytes(range(256)) * 64
    db.write_bytes(garbage)
    result = run_cli("--data-dir", str(data), "--web-port", str(free_port()), "--rtmp-port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr.strip() == f"owncast-fast: cannot open SQLite database {db}: file is not a database"
    assert db.read_bytes() == garbage
    assert sorted(p.name for p in data.iterdir()) == ["owncast-fast.db"]


def test_unreadable_database_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d" / "owncast-fast.db").mkdir(parents=True)
    result = run_cli("--data-dir", str(tmp_path / "d"), "--web-port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr.strip().endswith("owncast-fast.db: it is a directory")


def test_unreachable_postgres_masks_the_password(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_cli("--database", "postgresql://owner:hunter2@127.0.0.1:1/owncast", "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "owncast-fast: cannot connect to PostgreSQL postgresql://owner:***@127.0.0.1:1/owncast: connection refused"
    )
    assert "hunter2" not in result.stderr + result.stdout
    assert time.monotonic() - started < 15


@pytest.fixture
def postgres_database() -> Iterator[str]:
    name = f"owncast_fast_srv_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.postgres
def test_server_on_postgres_keeps_settings_across_restarts(
    server_factory: ServerFactory, postgres_database: str
) -> None:
    server = server_factory("--database", postgres_database, "--admin-password", "pg-admin")
    assert server.get("/api/status")["online"] is False  # type: ignore[index]
    assert server.stop() == 0
    again = server_factory("--database", postgres_database, data_dir=server.data_dir)
    assert again.request("/api/admin/status", admin="pg-admin")[0] == 200
    assert not (server.data_dir / "owncast-fast.db").exists()


def test_debug_log_level_logs_every_request(server_factory: ServerFactory) -> None:
    server = server_factory("--log-level", "debug")
    server.get("/api/status")
    assert server.request("/api/admin/status")[0] == 401
    server.stop()
    log = server.log()
    assert " GET /api/status 200 " in log
    assert " GET /api/admin/status 401 " in log


def test_requests_are_not_logged_at_info(server: ServerProcess) -> None:
    server.get("/api/status")
    server.stop()
    assert "GET /api/status" not in server.log()
