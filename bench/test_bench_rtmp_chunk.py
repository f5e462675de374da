"""RTMP chunk decoding throughput on a realistic publish: 10 s of 1080p30 H.264 at 6 Mb/s plus AAC.

The media is made with ffmpeg at session scope, its FLV tags are re-chunked with our ChunkWriter the
way a publisher sends them (video on chunk stream 6, audio on 4, after a Set Chunk Size), and the
byte stream is decoded by the Cython module and by its pure-Python twin, two ways:

* as the server feeds it (the measured figure and the bar): one `feed()` per network read of at most
  `READ_BUFFER_SIZE` bytes (imported from the server, so the two cannot drift), each read written
  into one reused bytearray and fed as a slice of its memoryview, as `get_buffer`/`buffer_updated`
  do; each read's messages are dropped before the next, as the session hands them on. Writing a
  read into the buffer stands in for the kernel's `recv_into`: it is timed apart (`fill_ms`) and
  left out of the decoder's time, which is the sum of the `feed()` calls.
* in one `feed()` of the whole 7.9 MB stream with every message kept (for information only: no
  server reads that way, and it measures copying into 7.9 MB of freshly faulted memory).

Beside the bar, also for information: a copy floor (each read copied once, nothing parsed: the
most any decoder that must copy each byte could reach against the twin), and a real
`ffmpeg -re -c copy` publish to our server recorded read by read through a relay, decoded as it
arrived.
"""

from __future__ import annotations

import asyncio
import functools
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from _server import DEFAULT_STREAM_KEY, ProcessLauncher, is_quick
from owncast_fast._native import rtmp_chunk as native_rtmp_chunk
from owncast_fast._pure import rtmp_chunk as pure_rtmp_chunk
from owncast_fast.ingest.rtmp.server import READ_BUFFER_SIZE

IMPLS = {"cython": native_rtmp_chunk, "pure": pure_rtmp_chunk}
CHUNK_SIZES = (128, 4096)
FLV_AUDIO, FLV_VIDEO = 8, 9
# The bar at both chunk sizes. The CI subset (`bench/run.py --quick`) keeps 4096 at a lower
# guard: there the decoder runs at memory speed and a shared CI machine's memory bandwidth is noisy.
RATIO_BAR = 20.0
RATIO_GUARD_4096_QUICK = 10.0
HANDSHAKE_FROM_CLIENT = 1 + 1536 + 1536  # C0, C1, C2


def flv_media_tags(flv: bytes) -> list[tuple[int, int, bytes]]:
    """(type, timestamp, body) of each audio and video tag of an FLV file."""
    if flv[:3] != b"FLV":
        raise ValueError("not an FLV file")
    pos = int.from_bytes(flv[5:9], "big") + 4  # header, then PreviousTagSize0
    tags = []
    while pos + 11 <= len(flv):
        tag_type = flv[pos] & 0x1F
        size = int.from_bytes(flv[pos + 1 : pos + 4], "big")
        timestamp = int.from_bytes(flv[pos + 4 : pos + 7], "big") | flv[pos + 7] << 24
        body = flv[pos + 11 : pos + 11 + size]
        if tag_type in (FLV_AUDIO, FLV_VIDEO):
            tags.append((tag_type, timestamp, body))
        pos += 11 + size + 4  # tag header, body, PreviousTagSize
    return tags


def rtmp_publish_bytes(tags: list[tuple[int, int, bytes]], chunk_size: int) -> bytes:
    writer = native_rtmp_chunk.ChunkWriter()
    out = [writer.write(2, 1, 0, 0, chunk_size.to_bytes(4, "big"))]
    writer.chunk_size = chunk_size
    for tag_type, timestamp, body in tags:
        csid = 6 if tag_type == FLV_VIDEO else 4
        out.append(writer.write(csid, tag_type, 1, timestamp, body))
    return b"".join(out)


@pytest.fixture(scope="session")
def media_tags(clip_1080p: Callable[[int], Path]) -> list[tuple[int, int, bytes]]:
    out = clip_1080p(10)
    return flv_media_tags(Path(out).read_bytes())


@pytest.fixture(scope="session")
def publish_streams(media_tags: list[tuple[int, int, bytes]]) -> dict[int, bytes]:
    streams = {size: rtmp_publish_bytes(media_tags, size) for size in CHUNK_SIZES}
    for data in streams.values():
        assert len(native_rtmp_chunk.ChunkDecoder().feed(data)) == len(media_tags) + 1
    return streams


class PublishRecorder:
    """A TCP relay between a publisher and our server that records what the publisher sent, one
    entry per read of up to `READ_BUFFER_SIZE` bytes: the pieces a server reading the socket as
    the data arrives gets (the relay's reads, not the server's, which are the same kind)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.reads: list[bytes] = []
        self.port = 0
        self._ready = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def __enter__(self) -> PublishRecorder:
        self._thread.start()
        assert self._ready.wait(10), "the relay did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(30)

    def wait(self, timeout: float) -> None:
        assert self._done.wait(timeout), "the publish did not end"

    async def _main(self) -> None:
        finished = asyncio.Event()

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

            async def publisher_to_server() -> None:
                while data := await reader.read(READ_BUFFER_SIZE):
                    self.reads.append(data)
                    up_writer.write(data)
                    await up_writer.drain()
                up_writer.close()

            async def server_to_publisher() -> None:
                while data := await up_reader.read(READ_BUFFER_SIZE):
                    writer.write(data)
                    await writer.drain()
                writer.close()

            await asyncio.gather(publisher_to_server(), server_to_publisher(), return_exceptions=True)
            finished.set()

        server = await asyncio.start_server(relay, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await finished.wait()
        self._done.set()


@pytest.fixture(scope="session")
def recorded_publish(
    clip_1080p: Callable[[int], Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[bytes, list[int]]:
    """A real `ffmpeg -re -c copy` publish of the 1080p clip to our server, as it arrived at the
    relay in front of it: (the chunk stream after the handshake, the size of each read). ffmpeg
    announces chunk size 4096."""
    launcher = ProcessLauncher(tmp_path_factory.mktemp("recorded-publish"))
    server = launcher.owncast(launcher.fresh_data_dir())
    try:
        server.start()
        with PublishRecorder(server.rtmp_port) as recorder:
            url = f"rtmp://127.0.0.1:{recorder.port}/live/{DEFAULT_STREAM_KEY}"
            clip = clip_1080p(5 if is_quick() else 10)
            command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-i", str(clip)]
            subprocess.run([*command, "-c", "copy", "-f", "flv", url], check=True, timeout=60)
            recorder.wait(30)
    finally:
        launcher.stop_all()
    data = b"".join(recorder.reads)[HANDSHAKE_FROM_CLIENT:]
    sizes, skip = [], HANDSHAKE_FROM_CLIENT
    for read in recorder.reads:
        if skip >= len(read):
            skip -= len(read)
            continue
        sizes.append(len(read) - skip)
        skip = 0
    return data, sizes


class ServerReads:
    """Feeds a byte stream to a decoder the way `ingest/rtmp/server.py` does, timing only `feed()`:
    reads of `sizes` bytes (by default as many full `READ_BUFFER_SIZE` reads as the data fills)."""

    def __init__(self, data: bytes, sizes: list[int] | None = None) -> None:
        self.source = memoryview(data)
        self.buffer = bytearray(READ_BUFFER_SIZE)
        self.view = memoryview(self.buffer)
        if sizes is None:
            sizes = [min(READ_BUFFER_SIZE, len(data) - start) for start in range(0, len(data), READ_BUFFER_SIZE)]
        assert sum(sizes) == len(data) and max(sizes) <= READ_BUFFER_SIZE
        self.sizes = sizes

    def run(self, decoder: Any) -> tuple[float, float, int, Any]:
        """(seconds in feed(), seconds filling the buffer, messages, the last message)."""
        source, view, clock = self.source, self.view, time.perf_counter
        decoding = filling = 0.0
        count = 0
        last = None
        start = 0
        for nbytes in self.sizes:
            began = clock()
            view[:nbytes] = source[start : start + nbytes]  # what the kernel's recv_into does
            start += nbytes
            filled = clock()
            messages = decoder.feed(view[:nbytes])  # buffer_updated(nbytes)
            if messages:
                count += len(messages)
                last = messages[-1]
            del messages
            decoding += clock() - filled
            filling += filled - began
        return decoding, filling, count, last


def copy_reads(reads: ServerReads) -> float:
    """The copy floor: each read copied once into fresh memory and dropped, timed as `feed()` is.

    A decoder that must copy every payload byte out of the reused read buffer cannot beat this, so
    twin / floor bounds the ratio any such decoder could reach against the twin on this machine.
    """
    source, view, clock = reads.source, reads.view, time.perf_counter
    copying = 0.0
    start = 0
    for nbytes in reads.sizes:
        view[:nbytes] = source[start : start + nbytes]
        start += nbytes
        began = clock()
        copied = bytes(view[:nbytes])
        del copied
        copying += clock() - began
    return copying


def decode_reads(impl: ModuleType, reads: ServerReads) -> float:
    decoding, _, _, _ = reads.run(impl.ChunkDecoder())
    return decoding


def decode_one_call(impl: ModuleType, data: bytes) -> float:
    decoder = impl.ChunkDecoder()
    start = time.perf_counter()
    decoder.feed(data)
    return time.perf_counter() - start


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
@pytest.mark.parametrize("name", list(IMPLS))
def test_decode_reads(benchmark: Any, publish_streams: dict[int, bytes], name: str, chunk_size: int) -> None:
    """The server's way (see the module docstring); the timing column includes the buffer fills,
    `MB_per_s` counts the `feed()` calls alone."""
    data = publish_streams[chunk_size]
    reads = ServerReads(data)
    impl = IMPLS[name]
    rounds: list[tuple[float, float, int, Any]] = []

    def one_round() -> None:
        rounds.append(reads.run(impl.ChunkDecoder()))

    benchmark.pedantic(one_round, rounds=30 if name == "cython" else 5, iterations=1, warmup_rounds=1)
    decoding, filling, count, last = min(rounds, key=lambda r: r[0])
    assert count == len(native_rtmp_chunk.ChunkDecoder().feed(data))
    assert last is not None and last.payload
    if benchmark.stats is not None:
        benchmark.extra_info["MB_per_s"] = round(len(data) / 1e6 / decoding, 1)
        benchmark.extra_info["fill_ms"] = round(filling * 1e3, 3)
        benchmark.extra_info["reads"] = -(-len(data) // READ_BUFFER_SIZE)
        benchmark.extra_info["input_MB"] = round(len(data) / 1e6, 2)


def decode(decoder: Any, data: bytes) -> list[Any]:
    messages: list[Any] = decoder.feed(data)
    return messages


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
@pytest.mark.parametrize("name", list(IMPLS))
def test_decode_one_call(benchmark: Any, publish_streams: dict[int, bytes], name: str, chunk_size: int) -> None:
    """For information: the whole stream in one `feed()`, every message kept."""
    data = publish_streams[chunk_size]
    impl = IMPLS[name]

    def fresh_decoder() -> tuple[tuple[Any, bytes], dict[str, Any]]:
        return (impl.ChunkDecoder(), data), {}

    rounds = 30 if name == "cython" else 5
    messages = benchmark.pedantic(decode, setup=fresh_decoder, rounds=rounds, iterations=1, warmup_rounds=1)
    assert messages[-1].payload
    if benchmark.stats is not None:
        mb_per_s = len(data) / 1e6 / benchmark.stats.stats.min
        benchmark.extra_info["MB_per_s"] = round(mb_per_s, 1)
        benchmark.extra_info["input_MB"] = round(len(data) / 1e6, 2)


def best_of(run: Callable[[], float], seconds: float) -> float:
    """The best of at least two runs, and of as many as fit in `seconds`: a 0.4 ms decode gets as
    much of the machine's quiet moments to show in as a 10 ms one."""
    best = min(run(), run())
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        best = min(best, run())
    return best


def side_by_side(run: Callable[[ModuleType], float]) -> dict[str, float]:
    """Best time per implementation, alternating between them so both see the same machine state."""
    best: dict[str, float] = dict.fromkeys(IMPLS, float("inf"))
    for _ in range(5):
        for name, impl in IMPLS.items():
            best[name] = min(best[name], best_of(functools.partial(run, impl), 0.03))
    return best


def test_ratio_bar(publish_streams: dict[int, bytes], recorded_publish: tuple[bytes, list[int]]) -> None:
    """Cython against the twin, fed read by read as the server does, side by side, best of several.

    At chunk size 128 the per-chunk work dominates. At 4096 the Cython decoder runs at about the
    speed of the one copy of each payload byte it must make (the read buffer is reused), so the
    ratio is the twin's per-chunk and per-message Python work against a memory copy. The copy floor
    (`copy_reads`) is printed beside it: pure / floor is the most any decoder that copies each byte
    once could reach here. The one-call figures are printed beside, for information, and so is a
    real `ffmpeg -re` publish recorded read by read (`recorded_publish`): there about half the reads
    are a lone chunk header that ffmpeg wrote apart from its payload, which costs each side a call.
    """
    quick = is_quick()
    bars = {
        128: float(os.environ.get("OWNCAST_FAST_BENCH_RATIO_RTMP", RATIO_BAR)),
        4096: float(
            os.environ.get("OWNCAST_FAST_BENCH_RATIO_RTMP_4096", RATIO_GUARD_4096_QUICK if quick else RATIO_BAR)
        ),
    }
    ratios = {}
    for chunk_size in CHUNK_SIZES:
        data = publish_streams[chunk_size]
        megabytes = len(data) / 1e6
        reads = ServerReads(data)
        best = side_by_side(functools.partial(decode_reads, reads=reads))
        floor = best_of(functools.partial(copy_reads, reads), 0.1)
        ratios[chunk_size] = best["pure"] / best["cython"]
        whole = side_by_side(functools.partial(decode_one_call, data=data))
        print(
            f"\nRTMP chunk decode, chunk size {chunk_size}, {megabytes:.1f} MB in "
            f"{-(-len(data) // READ_BUFFER_SIZE)} reads of {READ_BUFFER_SIZE} bytes: "
            f"cython {megabytes / best['cython']:.0f} MB/s, pure {megabytes / best['pure']:.0f} MB/s, "
            f"ratio {ratios[chunk_size]:.1f}x (bar {bars[chunk_size]:g}x); "
            f"copy floor {megabytes / floor:.0f} MB/s (pure / floor {best['pure'] / floor:.1f}x); "
            f"one feed() call: cython {megabytes / whole['cython']:.0f} MB/s, "
            f"pure {megabytes / whole['pure']:.0f} MB/s, ratio {whole['pure'] / whole['cython']:.1f}x"
        )
    data, sizes = recorded_publish
    reads = ServerReads(data, sizes)
    best = side_by_side(functools.partial(decode_reads, reads=reads))
    floor = best_of(functools.partial(copy_reads, reads), 0.1)
    megabytes = len(data) / 1e6
    print(
        f"\nRTMP chunk decode, recorded ffmpeg publish (chunk size 4096), {megabytes:.1f} MB in {len(sizes)} reads "
        f"as they arrived (median {statistics.median(sizes):.0f} bytes): cython {megabytes / best['cython']:.0f} MB/s, "
        f"pure {megabytes / best['pure']:.0f} MB/s, ratio {best['pure'] / best['cython']:.1f}x; "
        f"copy floor {megabytes / floor:.0f} MB/s (pure / floor {best['pure'] / floor:.1f}x)"
    )
    for chunk_size, ratio in ratios.items():
        assert ratio >= bars[chunk_size], (
            f"Cython/pure at chunk size {chunk_size} is {ratio:.1f}x, below the bar of {bars[chunk_size]:g}x"
        )
