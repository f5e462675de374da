"""nginx as the bench's reference: nginx-rtmp writing HLS, or plain nginx serving a directory.

Each instance gets its own prefix directory (configuration, pid file, logs, temp paths, HLS output)
rendered from the templates in `bench/nginx/`, runs in the foreground as one process
(`master_process off`) as the user who runs the bench, and is stopped with SIGTERM. Its CPU is the
kernel's accounting of that process and any descendants, read with psutil like our server's.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from _server import POLL_INTERVAL, START_TIMEOUT, free_port, stop_process, tree_cpu_seconds

TEMPLATES = Path(__file__).resolve().parent / "nginx"
# Where Debian's libnginx-mod-rtmp (and most distributions' packages) put the module.
RTMP_MODULE_CANDIDATES = (
    Path("/usr/lib/nginx/modules/ngx_rtmp_module.so"),
    Path("/usr/lib64/nginx/modules/ngx_rtmp_module.so"),
    Path("/usr/share/nginx/modules/ngx_rtmp_module.so"),
)
TEMP_DIRS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> str:
    path = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if path is None:
        pytest.fail("nginx is not installed: run `make system-deps` (Debian package nginx)")
    return path


def rtmp_module() -> Path:
    for path in RTMP_MODULE_CANDIDATES:
        if path.exists():
            return path
    pytest.fail("the nginx RTMP module is not installed: run `make system-deps` (Debian package libnginx-mod-rtmp)")


def render(template: str, target: Path, values: dict[str, str]) -> None:
    text = (TEMPLATES / template).read_text()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    assert "{{" not in text, f"{template}: a placeholder has no value:\n{text}"
    target.write_text(text)


@dataclass
class Nginx:
    """One nginx process under `prefix`; `http_port` answers 204 on /ready once it is up."""

    prefix: Path
    http_port: int
    rtmp_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def rtmp_hls(cls, prefix: Path) -> Nginx:
        """nginx-rtmp taking a publish on `rtmp_port` and writing HLS under `prefix/hls`."""
        made = cls(prefix, free_port(), free_port())
        made._configure("rtmp-hls.conf.in", rtmp_module=str(rtmp_module()), rtmp_port=str(made.rtmp_port))
        (prefix / "hls").mkdir()
        return made

    @classmethod
    def static(cls, prefix: Path, root: Path) -> Nginx:
        """Plain nginx serving `root/hls/...` at /hls/..."""
        made = cls(prefix, free_port())
        made._configure("static.conf.in", root=str(root))
        return made

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def hls_dir(self) -> Path:
        return self.prefix / "hls"

    @property
    def rtmp_url(self) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/abc123"

    def _configure(self, template: str, **values: str) -> None:
        for name in TEMP_DIRS:
            (self.prefix / "tmp" / name).mkdir(parents=True, exist_ok=True)
        values |= {"prefix": str(self.prefix), "http_port": str(self.http_port)}
        render("common.conf.in", self.prefix / "common.conf", values)
        render("http-common.conf.in", self.prefix / "http-common.conf", values)
        render(template, self.conf, values)

    def start(self) -> None:
        command = [nginx_binary(), "-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.prefix / "error.log")]
        with open(self.prefix / "stderr.log", "wb") as log:
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if _status(self.http_port, "/ready") == 204:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not answer within {START_TIMEOUT} s:\n{self.log()}")
            time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def cpu_seconds(self) -> float:
        """User plus system CPU time of nginx and its descendants so far."""
        assert self.proc is not None
        return tree_cpu_seconds(self.proc.pid)

    def log(self) -> str:
        parts = [self.prefix / "stderr.log", self.prefix / "error.log"]
        return "".join(p.read_text(errors="replace") for p in parts if p.exists())


def _status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()
