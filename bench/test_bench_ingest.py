"""Ingest CPU: the whole `owncast-fast serve` process while ffmpeg publishes 1080p30 at 6 Mbit/s.

Bar from the issue: ingest of a 6 Mbit/s 1080p30 H.264 + AAC stream with no consumers costs under 2 %
of one core. CPU time (user + system, from the kernel's accounting of the server's threads and any
children) is asserted directly: unlike wall time it barely moves when the 2-core machine is busy.
The ffmpeg sender (`-c copy -re`: it only reads the file and writes RTMP) is measured side by side as
the reference, and the ratio server / sender is recorded: moving the same bytes costs ffmpeg's C
about this much, so a ratio far above 1 says where to look.

If the bar fails, profile the server under the same publish, e.g.
`py-spy record --pid <server pid> --duration 20 --output ingest.svg` (or run `owncast-fast serve`
under `python -m cProfile -o ingest.prof`) and look at `RtmpConnection.buffer_updated`, the chunk
decoder's `feed`, `FlvDemuxer.video` and the hub's fan-out.
"""

from __future__ import annotations

import base64
import http.client
import json
import resource
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from _integration import load
from _server import BenchProcess, ProcessLauncher, is_quick

pytestmark = [pytest.mark.integration, pytest.mark.quick]

CLIP_SECONDS = 10 if is_quick() else 20
CPU_BAR_PERCENT = 2.0  # of one core: the bar, asserted in the full run
# The short CI run (10 s, its set-up and first segments weigh more, neighbours are busy) guards
# against a regression; ~1.3 % measured on a quiet VM.
CPU_GUARD_PERCENT_QUICK = 4.0
IDLE_SECONDS = 2.0  # the server's own idle CPU, measured just before, to tell ingest from background


media = load("media")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def reaped_children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def admin_video_kbps(server: BenchProcess) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        token = base64.b64encode(b"admin:abc123").decode()
        conn.request("GET", "/api/admin/status", headers={"Authorization": f"Basic {token}"})
        body = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    broadcaster = body.get("broadcaster") or {}
    return int(broadcaster.get("streamDetails", {}).get("measuredVideoBitrate", 0))


def test_ingest_cpu_1080p30_6mbps(
    benchmark: BenchmarkFixture, launcher: ProcessLauncher, clip_1080p: Callable[[int], Path]
) -> None:
    clip = clip_1080p(CLIP_SECONDS)
    server = launcher.owncast(launcher.fresh_data_dir())
    server.start()
    assert server.proc is not None
    pid = server.proc.pid
    time.sleep(1.0)  # start-up work (first-run bcrypt, lazy imports) is not ingest

    idle_before = tree_cpu_seconds(pid)
    time.sleep(IDLE_SECONDS)
    idle_percent = (tree_cpu_seconds(pid) - idle_before) / IDLE_SECONDS * 100
    result: dict[str, float] = {}

    def publish() -> None:
        ffmpeg = media.require_tool("ffmpeg")
        command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-i", str(clip)]
        command += ["-c", "copy", "-f", "flv", server.rtmp_url()]
        server_before = tree_cpu_seconds(pid)
        sender_before = reaped_children_cpu_seconds()
        began = time.perf_counter()
        sender = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(CLIP_SECONDS / 2)
        result["measured_video_kbps_midway"] = admin_video_kbps(server)
        _, stderr = sender.communicate(timeout=CLIP_SECONDS + 30)
        wall = time.perf_counter() - began
        assert sender.returncode == 0, stderr
        result["wall_s"] = wall
        result["server_cpu_s"] = tree_cpu_seconds(pid) - server_before
        # The sender is the only child reaped inside the window: its CPU is the rusage delta.
        result["sender_cpu_s"] = reaped_children_cpu_seconds() - sender_before

    benchmark.pedantic(publish, rounds=1, iterations=1)

    wall = result["wall_s"]
    server_percent = result["server_cpu_s"] / wall * 100
    sender_percent = result["sender_cpu_s"] / wall * 100
    ratio = result["server_cpu_s"] / result["sender_cpu_s"] if result["sender_cpu_s"] else float("inf")
    benchmark.extra_info.update(
        {
            "clip_s": CLIP_SECONDS,
            "server_cpu_percent_of_core": round(server_percent, 3),
            "sender_cpu_percent_of_core": round(sender_percent, 3),
            "server_to_sender_cpu_ratio": round(ratio, 3),
            "server_idle_cpu_percent_of_core": round(idle_percent, 3),
            "measured_video_kbps_midway": result["measured_video_kbps_midway"],
            "cpu_bar_percent": CPU_BAR_PERCENT,
        }
    )
    print(
        f"\ningest CPU, {CLIP_SECONDS} s of 1080p30 at 6 Mbit/s: server {server_percent:.2f} % of one core"
        f" (idle {idle_percent:.2f} %), ffmpeg sender {sender_percent:.2f} %, server/sender {ratio:.2f}"
    )

    log = server.log()
    assert "stream started" in log and "stream stopped (publisher sent FCUnpublish)" in log, log
    # The media reached the demuxer at its real rate: otherwise a low CPU figure would mean nothing.
    assert result["measured_video_kbps_midway"] > 4000, result
    bar = CPU_GUARD_PERCENT_QUICK if is_quick() else CPU_BAR_PERCENT
    assert server_percent < bar, f"ingest costs {server_percent:.2f} % of one core (bar {bar} %); profile with py-spy"
