"""End-to-end benches of a real `owncast-fast serve` process on loopback.

Bars from the issues and how each is held on a noisy 2-core machine:

- cold start (process start -> first 200 from /api/status, fresh data dir: migrations and the
  first-run bcrypt hash included) < 1.5 s: recorded, and asserted as a ratio against a bare Robyn
  app started side by side (interleaved rounds), which pays the same interpreter, Robyn import and
  bind costs. A bare Robyn start takes about 0.2 s on the quiet 2-core dev VM, so the issue's 1.5 s
  there is 7.5x; slower machines and busy neighbours stretch both sides alike.
- idle RSS < 120 MB: memory is not timing noise, so asserted directly.
- /api/status >= 15,000 req/s with p99 < 10 ms: wrk shares the cores with the server, so both are
  recorded and the bar is the ratio against a bare Robyn app answering a constant body under the
  same wrk settings, run after run.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from _server import (
    BenchProcess,
    ProcessLauncher,
    WrkResult,
    is_quick,
    median,
    percentile,
    run_wrk,
)

MB = 1024 * 1024
QUICK = is_quick()

START_ROUNDS = 5 if QUICK else 15
COLD_START_BAR_S = 1.5  # issue bar, recorded
COLD_START_RATIO_BAR = 7.5  # asserted: our cold start / bare Robyn start, medians of the same run

IDLE_RSS_BAR_MB = 120.0
IDLE_SETTLE_S = 1.0  # let start-up garbage and lazy imports settle before sampling
RSS_SAMPLES = 10

WRK_THREADS = 2
WRK_CONNECTIONS = 64
# Ours and the reference run back to back, alternating which goes first, and the bar takes the
# median of the per-pair ratios. Neighbours' bursts last seconds: the quick run spends its 15 s per
# side on more, shorter pairs, which cancels them better than a few long ones.
WRK_SECONDS = 3 if QUICK else 10
WRK_PAIRS = 5 if QUICK else 3
WRK_WARMUP_SECONDS = 1
THROUGHPUT_BAR_RPS = 15_000.0  # issue bar, recorded
P99_BAR_MS = 10.0  # issue bar, recorded
THROUGHPUT_RATIO_BAR = 0.5  # asserted: our handler builds its body per request, the reference does not

SEQUENTIAL_ROUNDS = 200 if QUICK else 1000


def _start_stats(prefix: str, seconds: list[float]) -> dict[str, float]:
    return {
        f"{prefix}_median_s": round(median(seconds), 4),
        f"{prefix}_p90_s": round(percentile(seconds, 0.9), 4),
        f"{prefix}_runs": len(seconds),
    }


@pytest.mark.quick
def test_cold_start(benchmark: BenchmarkFixture, launcher: ProcessLauncher) -> None:
    ours: list[float] = []
    reference: list[float] = []

    def setup() -> tuple[tuple[BenchProcess], dict[str, object]]:
        # Interleaved, so a burst of noise from the neighbours hits both sides alike.
        bare = launcher.reference()
        reference.append(bare.start())
        bare.stop()
        return (launcher.owncast(launcher.fresh_data_dir()),), {}

    def start(server: BenchProcess) -> None:
        ours.append(server.start())

    def stop(server: BenchProcess) -> None:
        server.stop()

    benchmark.pedantic(start, setup=setup, teardown=stop, rounds=START_ROUNDS, warmup_rounds=1)
    ours, reference = ours[-START_ROUNDS:], reference[-START_ROUNDS:]
    ratio = median(ours) / median(reference)
    benchmark.extra_info.update(_start_stats("cold", ours))
    benchmark.extra_info.update(_start_stats("reference", reference))
    benchmark.extra_info["cold_start_ratio"] = round(ratio, 3)
    benchmark.extra_info["cold_start_ratio_bar"] = COLD_START_RATIO_BAR
    benchmark.extra_info["cold_start_bar_1_5_s_met"] = median(ours) < COLD_START_BAR_S
    assert ratio <= COLD_START_RATIO_BAR, (
        f"cold start median {median(ours):.3f} s is {ratio:.2f}x a bare Robyn start "
        f"({median(reference):.3f} s); bar {COLD_START_RATIO_BAR}x"
    )


@pytest.mark.quick
def test_warm_start(benchmark: BenchmarkFixture, launcher: ProcessLauncher) -> None:
    data_dir = launcher.fresh_data_dir()
    first = launcher.owncast(data_dir)
    first.start()  # migrations and the admin password hash happen here, untimed
    first.stop()
    ours: list[float] = []

    def setup() -> tuple[tuple[BenchProcess], dict[str, object]]:
        return (launcher.owncast(data_dir),), {}

    def start(server: BenchProcess) -> None:
        ours.append(server.start())

    def stop(server: BenchProcess) -> None:
        server.stop()

    benchmark.pedantic(start, setup=setup, teardown=stop, rounds=START_ROUNDS, warmup_rounds=1)
    benchmark.extra_info.update(_start_stats("warm", ours[-START_ROUNDS:]))


@pytest.mark.quick
def test_idle_rss(benchmark: BenchmarkFixture, launcher: ProcessLauncher) -> None:
    """The timing is the cost of one RSS sample; the result is idle_rss_mb in extra_info."""
    server = launcher.owncast(launcher.fresh_data_dir())
    bare = launcher.reference()
    server.start()
    bare.start()
    time.sleep(IDLE_SETTLE_S)
    samples: list[int] = []

    def pause() -> None:
        time.sleep(IDLE_SETTLE_S / RSS_SAMPLES)  # samples spread over a second of idleness

    def sample() -> None:
        samples.append(server.rss_bytes())

    benchmark.pedantic(sample, setup=pause, rounds=RSS_SAMPLES)
    idle_mb = max(samples) / MB
    benchmark.extra_info["idle_rss_mb"] = round(idle_mb, 1)
    benchmark.extra_info["reference_idle_rss_mb"] = round(bare.rss_bytes() / MB, 1)
    benchmark.extra_info["idle_rss_bar_mb"] = IDLE_RSS_BAR_MB
    assert idle_mb < IDLE_RSS_BAR_MB, f"idle RSS {idle_mb:.1f} MB; bar {IDLE_RSS_BAR_MB} MB"


def _keep_alive_get(port: int) -> tuple[Callable[[], None], Callable[[], None]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    def get() -> None:
        conn.request("GET", "/api/status")
        response = conn.getresponse()
        response.read()
        assert response.status == 200

    return get, conn.close


@dataclass(frozen=True)
class LoadRun:
    wrk: WrkResult
    server_cpu_us_per_request: float  # steadier than req/s when neighbours steal the cores


def _load(server: BenchProcess, seconds: int = WRK_SECONDS) -> LoadRun:
    cpu_before = server.cpu_seconds()
    result = run_wrk(server.port, threads=WRK_THREADS, connections=WRK_CONNECTIONS, seconds=seconds)
    cpu_used = server.cpu_seconds() - cpu_before
    return LoadRun(result, cpu_used / max(result.requests, 1) * 1e6)


@pytest.mark.quick
def test_status_throughput(benchmark: BenchmarkFixture, launcher: ProcessLauncher) -> None:
    """The timing is one sequential keep-alive GET /api/status; wrk's numbers are in extra_info."""
    server = launcher.owncast(launcher.fresh_data_dir())
    bare = launcher.reference()
    server.start()
    bare.start()

    get, close = _keep_alive_get(server.port)
    try:
        benchmark.pedantic(get, rounds=SEQUENTIAL_ROUNDS, warmup_rounds=20)
    finally:
        close()

    _load(server, WRK_WARMUP_SECONDS)
    _load(bare, WRK_WARMUP_SECONDS)
    ours: list[LoadRun] = []
    reference: list[LoadRun] = []
    for pair in range(WRK_PAIRS):
        if pair % 2:
            ours.append(_load(server))
            reference.append(_load(bare))
        else:
            reference.append(_load(bare))
            ours.append(_load(server))

    pairs = zip(ours, reference, strict=True)
    ratio = median([o.wrk.requests_per_second / r.wrk.requests_per_second for o, r in pairs])
    ours_rps = median([run.wrk.requests_per_second for run in ours])
    ours_p99 = median([run.wrk.p99_ms for run in ours])
    reference_rps = median([run.wrk.requests_per_second for run in reference])
    info = benchmark.extra_info
    info["wrk"] = f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s x{WRK_PAIRS}"
    info["req_per_s"] = round(ours_rps)
    info["p50_ms"] = median([run.wrk.p50_ms for run in ours])
    info["p99_ms"] = ours_p99
    info["server_cpu_us_per_req"] = round(median([run.server_cpu_us_per_request for run in ours]), 1)
    info["reference_req_per_s"] = round(reference_rps)
    info["reference_p50_ms"] = median([run.wrk.p50_ms for run in reference])
    info["reference_p99_ms"] = median([run.wrk.p99_ms for run in reference])
    info["reference_server_cpu_us_per_req"] = round(median([run.server_cpu_us_per_request for run in reference]), 1)
    info["throughput_ratio"] = round(ratio, 3)
    info["throughput_ratio_bar"] = THROUGHPUT_RATIO_BAR
    info["throughput_bar_15000_met"] = ours_rps >= THROUGHPUT_BAR_RPS
    info["p99_bar_10_ms_met"] = ours_p99 < P99_BAR_MS

    failed = [run.wrk for run in ours if run.wrk.non_2xx or run.wrk.socket_errors]
    assert not failed, f"failed requests under load: {failed}"
    assert ratio >= THROUGHPUT_RATIO_BAR, (
        f"/api/status {ours_rps:.0f} req/s is {ratio:.2f}x the bare Robyn reference "
        f"({reference_rps:.0f} req/s); bar {THROUGHPUT_RATIO_BAR}x"
    )
