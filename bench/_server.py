"""Helpers for the end-to-end benches: real server processes on loopback, wrk, RSS, percentiles.

Independent of tests/conftest.py on purpose: a bench measures from just before `Popen` to the first
200, so it polls tighter than the test fixture and owns its timing.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REFERENCE_APP = BENCH_DIR / "_robyn_reference.py"
STATUS_PATH = "/api/status"

POLL_INTERVAL = 0.005  # seconds between readiness probes: fine enough for a ~1 s start, cheap on 2 cores
START_TIMEOUT = 30.0  # seconds; a start that slow is a failure, not a measurement
STOP_TIMEOUT = 10.0  # seconds; our server promises to exit within 5 s of SIGTERM
# A fresh data directory's stream key and admin password (Owncast's defaults).
DEFAULT_STREAM_KEY = "abc123"
DEFAULT_ADMIN_PASSWORD = "abc123"


def is_quick() -> bool:
    """True in the CI subset (`bench/run.py --quick`): fewer rounds, shorter load runs."""
    return os.environ.get("OWNCAST_FAST_BENCH_QUICK") == "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least `fraction` of samples at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def http_get_status(port: int, path: str = STATUS_PATH, timeout: float = 2.0) -> int:
    """One GET on a fresh connection; the HTTP status code (raises OSError when nothing listens)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@dataclass
class BenchProcess:
    """One server process on loopback: started, timed to its first 200, stopped by SIGTERM."""

    name: str
    command: list[str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    startup_seconds: float = math.nan
    # Output variants set through the admin API once the server answers (after the start-up time
    # is taken). Benches of ingest and HLS serving measure the source variant alone; None keeps
    # the configured ones (Owncast's default: one transcoded variant).
    variants: list[dict[str, object]] | None = None

    def start(self) -> float:
        """Start the process and wait for a 200 from /api/status; the seconds that took."""
        with open(self.log_path, "wb") as log:
            began = time.perf_counter()
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline = began + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if http_get_status(self.port) == 200:
                    self.startup_seconds = time.perf_counter() - began
                    if self.variants is not None:
                        set_variants(self.port, self.variants)
                    return self.startup_seconds
            except OSError:
                pass
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(f"no 200 from {self.name} within {START_TIMEOUT} s:\n{self.log()}")
            time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def rss_bytes(self) -> int:
        """Resident memory of the process and all its descendants."""
        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process and its descendants have used so far."""
        assert self.proc is not None
        return tree_cpu_seconds(self.proc.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def rtmp_port(self) -> int:
        """The RTMP port of an owncast-fast process (from its command line)."""
        return int(self.command[self.command.index("--rtmp-port") + 1])

    def rtmp_url(self, key: str = DEFAULT_STREAM_KEY) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"


SOURCE_VARIANT: dict[str, object] = {"name": "Source", "videoPassthrough": True, "audioPassthrough": True}


def set_variants(port: int, variants: list[dict[str, object]], password: str = DEFAULT_ADMIN_PASSWORD) -> None:
    """POST the output variants (they apply from the next stream)."""
    body = json.dumps({"value": variants}).encode()
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(
            "POST",
            "/api/admin/config/video/streamoutputvariants",
            body=body,
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"setting the variants failed: {response.status} {answer!r}")


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tree_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its descendants so far."""
    root = psutil.Process(pid)
    times = [p.cpu_times() for p in [root, *root.children(recursive=True)]]
    return sum(t.user + t.system for t in times)


@dataclass
class ProcessLauncher:
    """Makes server processes under one work directory and stops every one it made."""

    work_dir: Path
    started: list[BenchProcess] = field(default_factory=list)
    _count: int = 0

    def fresh_data_dir(self) -> Path:
        self._count += 1
        return self.work_dir / f"data-{self._count}"

    def owncast(self, data_dir: Path, variants: list[dict[str, object]] | None = None) -> BenchProcess:
        """A server; `variants` None means the source alone (see `BenchProcess.variants`)."""
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "owncast_fast",
            "serve",
            "--web-ip",
            "127.0.0.1",
            "--web-port",
            str(port),
            "--rtmp-ip",
            "127.0.0.1",
            "--rtmp-port",
            str(free_port()),
            "--data-dir",
            str(data_dir),
        ]
        process = self._make(command, port, "owncast")
        process.variants = variants if variants is not None else [SOURCE_VARIANT]
        return process

    def reference(self, files: Path | None = None) -> BenchProcess:
        """Bare Robyn with our worker-thread count (bench/_robyn_reference.py); with `files` (a
        data directory with an HLS disk copy) it also serves that copy's `hls/` at /hls/."""
        from owncast_fast.web.app import robyn_config

        port = free_port()
        command = [sys.executable, str(REFERENCE_APP), str(port), str(robyn_config().workers)]
        if files is not None:
            command += ["--files", str(files)]
        return self._make(command, port, "reference")

    def _make(self, command: list[str], port: int, name: str) -> BenchProcess:
        self._count += 1
        process = BenchProcess(name, command, port, self.work_dir / f"{name}-{self._count}.log")
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: int
    non_2xx: int


_DURATION_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_LATENCY_LINE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_REQUESTS_PER_SEC = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_REQUESTS_TOTAL = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def parse_wrk(output: str) -> WrkResult:
    """Read requests/s and the latency distribution from `wrk --latency` output."""
    latencies = {int(p): float(v) * _DURATION_UNITS[unit] for p, v, unit in _LATENCY_LINE.findall(output)}
    rate = _REQUESTS_PER_SEC.search(output)
    total = _REQUESTS_TOTAL.search(output)
    if rate is None or total is None or 99 not in latencies:
        raise ValueError(f"unrecognised wrk output:\n{output}")
    errors = _SOCKET_ERRORS.search(output)
    non_2xx = _NON_2XX.search(output)
    return WrkResult(
        requests_per_second=float(rate.group(1)),
        p50_ms=latencies[50],
        p99_ms=latencies[99],
        requests=int(total.group(1)),
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_wrk(port: int, *, threads: int, connections: int, seconds: int) -> WrkResult:
    wrk = wrk_path()
    assert wrk is not None, "wrk is not installed (make system-deps)"
    url = f"http://127.0.0.1:{port}{STATUS_PATH}"
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True)
    return parse_wrk(done.stdout)
