"""Fixtures shared by every test package: free ports and a real server process."""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import pytest

ADMIN_PASSWORD = "abc123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SOURCE_VARIANT: dict[str, object] = {"name": "Source", "videoPassthrough": True, "audioPassthrough": True}


@dataclass
class ServerProcess:
    """A real `owncast-fast serve` process on loopback, with its own data directory."""

    data_dir: Path
    web_port: int
    rtmp_port: int
    extra_args: list[str] = field(default_factory=list)
    # Most media tests check what the ingest hands the segmenter, unit for unit: they publish to
    # a server whose only variant is the source. None keeps Owncast's default (a transcoded
    # 1200 kbit/s variant).
    variants: list[dict[str, object]] | None = field(default_factory=lambda: [SOURCE_VARIANT])
    admin_password: str = ADMIN_PASSWORD
    proc: subprocess.Popen[str] | None = None
    log_path: Path | None = None
    _log_file: IO[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def rtmp_url(self, key: str = "abc123", app: str = "live") -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/{app}/{key}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "owncast_fast",
            "serve",
            "--web-ip",
            "127.0.0.1",
            "--web-port",
            str(self.web_port),
            "--rtmp-ip",
            "127.0.0.1",
            "--rtmp-port",
            str(self.rtmp_port),
            "--data-dir",
            str(self.data_dir),
            *self.extra_args,
        ]

    def start(self, timeout: float = 20.0) -> None:
        self.log_path = self.data_dir.parent / f"server-{self.web_port}.log"
        self._log_file = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(self.command(), stdout=self._log_file, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.get("/api/status")
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
                continue
            if self.variants is not None:
                self.set_variants(self.variants)
            return
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        body: bytes | None = None,
        admin: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers or {})
        if admin is not None:
            token = base64.b64encode(f"admin:{admin}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers.items()), err.read()

    def set_variants(self, variants: list[dict[str, object]]) -> None:
        """Configure the output variants (they apply from the next stream)."""
        body = json.dumps({"value": variants}).encode()
        path = "/api/admin/config/video/streamoutputvariants"
        status, _, answer = self.request(path, method="POST", body=body, admin=self.admin_password)
        if status != 200:
            raise AssertionError(f"POST {path} -> {status}: {answer!r}")

    def get(self, path: str, *, admin: str | None = None) -> object:
        status, _, body = self.request(path, admin=admin)
        if status != 200:
            raise AssertionError(f"GET {path} -> {status}: {body!r}")
        return json.loads(body)


class ServerFactory(Protocol):
    def __call__(
        self, *args: str, data_dir: Path | None = None, start: bool = True, transcode: bool = False
    ) -> ServerProcess: ...


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start real servers (stopped at teardown); each gets fresh ports."""
    started: list[ServerProcess] = []

    def make(*args: str, data_dir: Path | None = None, start: bool = True, transcode: bool = False) -> ServerProcess:
        """`transcode=True` keeps the configured variants (Owncast's default: one transcoded)."""
        server = ServerProcess(data_dir or tmp_path / "data", free_port(), free_port(), list(args))
        if transcode or data_dir is not None:
            server.variants = None  # kept as configured (a restart keeps the first start's)
        if "--admin-password" in args:
            server.admin_password = args[args.index("--admin-password") + 1]
        started.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


@pytest.fixture
def server(server_factory: ServerFactory) -> ServerProcess:
    return server_factory()
