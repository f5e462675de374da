"""RTMP ingest through a real `owncast-fast serve` process, watched through its HTTP API and its log."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from media import require_tool

if TYPE_CHECKING:
    from tests.conftest import ServerFactory, ServerProcess

pytestmark = pytest.mark.integration

ADMIN = "abc123"
REALM = 'Basic realm="Owncast Authenticated Request"'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ffmpeg(*args: str) -> list[str]:
    return [require_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", *args]


def copy_to(source: Path, url: str, *, readrate: float | None = None) -> list[str]:
    rate = ("-readrate", str(readrate)) if readrate else ()
    return ffmpeg(*rate, "-i", str(source), "-c", "copy", "-f", "flv", url)


def live_source(url: str, seconds: float) -> list[str]:
    """A live encode of ffmpeg's test sources, paced in real time like a camera."""
    return ffmpeg(
        *("-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"),
        *("-re", "-f", "lavfi", "-i", "sine=sample_rate=44100"),
        *("-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "30"),
        *("-c:a", "aac", "-f", "flv", url),
    )


@contextlib.contextmanager
def running(command: list[str]) -> Iterator[subprocess.Popen[str]]:
    """A publisher in the background; killed and reaped if it is still running at the end."""
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def run_to_end(command: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def status(server: ServerProcess) -> dict[str, Any]:
    body = server.get("/api/status")
    assert isinstance(body, dict)
    return body


def admin_status(server: ServerProcess) -> dict[str, Any]:
    body = server.get("/api/admin/status", admin=ADMIN)
    assert isinstance(body, dict)
    return body


def online(server: ServerProcess) -> bool:
    return bool(status(server)["online"])


def ingest_lines(server: ServerProcess, text: str) -> list[str]:
    return [line for line in server.log().splitlines() if "owncast_fast.ingest.rtmp.server" in line and text in line]


# -- a live publisher, through the API ------------------------------------------------------------


def test_live_publisher_shows_in_status_and_admin_status(server: ServerProcess) -> None:
    assert status(server)["online"] is False
    with running(live_source(server.rtmp_url(), seconds=4)) as publisher:
        wait_until(lambda: online(server), "the server to report the stream online")
        # The measured rates need a few frames on the media timeline.
        wait_until(
            lambda: (
                (admin_status(server)["broadcaster"] or {}).get("streamDetails", {}).get("measuredFramerate", 0) > 20
            ),
            "measured rates",
        )
        during = status(server)
        admin = admin_status(server)
        _, stderr = publisher.communicate(timeout=30)
        assert publisher.returncode == 0, stderr

    assert during["online"] is True
    assert during["lastConnectTime"] is not None
    assert admin["online"] is True
    broadcaster = admin["broadcaster"]
    assert broadcaster["remoteAddr"] == "127.0.0.1"
    assert broadcaster["time"] == during["lastConnectTime"]
    details = broadcaster["streamDetails"]
    assert (details["videoCodec"], details["audioCodec"]) == ("H.264", "AAC")
    assert (details["width"], details["height"]) == (320, 240)
    assert details["framerate"] == 30
    assert details["encoder"].startswith("Lavf"), details["encoder"]
    assert details["measuredVideoBitrate"] > 0
    assert details["measuredAudioBitrate"] > 0
    assert details["measuredFramerate"] == pytest.approx(30, abs=2)
    assert details["videoBitrate"] > 0
    assert admin["currentBroadcast"] is not None

    wait_until(lambda: not online(server), "the server to report the stream offline")
    after = status(server)
    assert after["lastConnectTime"] == during["lastConnectTime"]
    assert after["lastDisconnectTime"] is not None
    assert after["lastDisconnectTime"] >= after["lastConnectTime"]  # RFC 3339 UTC strings sort by time
    assert admin_status(server)["broadcaster"] is None
    wait_until(lambda: bool(ingest_lines(server, "stream stopped")), "the stream stopped log line")
    assert len(ingest_lines(server, "stream started")) == 1
    stopped = ingest_lines(server, "stream stopped")
    assert len(stopped) == 1 and stopped[0].endswith("stream stopped (publisher sent FCUnpublish)"), stopped


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "app", "reason"),
    [
        ("wrong-key", "live", "invalid stream key"),
        ("abc123", "other", "unknown application 'other' (publish to /live/<stream key>)"),
    ],
    ids=["wrong-key", "wrong-application"],
)
def test_publisher_is_refused(server: ServerProcess, clip_4s: Path, key: str, app: str, reason: str) -> None:
    result = run_to_end(copy_to(clip_4s, server.rtmp_url(key, app)))
    assert result.returncode != 0
    # ffmpeg shows the description the server put in its answer.
    assert f"Server error: {reason}" in result.stderr
    wait_until(lambda: bool(ingest_lines(server, "closing connection")), "the refusal log line")
    lines = ingest_lines(server, "RTMP ")
    assert len(lines) == 1 and lines[0].endswith(f": closing connection: {reason}"), lines
    body = status(server)
    assert body["online"] is False
    assert body["lastConnectTime"] is None


def test_second_publisher_is_refused_while_one_is_live(server: ServerProcess, clip_4s: Path) -> None:
    with running(copy_to(clip_4s, server.rtmp_url(), readrate=1)) as first:
        wait_until(lambda: online(server), "the first publisher to go live")
        live_since = status(server)["lastConnectTime"]
        second = run_to_end(copy_to(clip_4s, server.rtmp_url()))
        assert second.returncode != 0
        assert "Server error: stream already running" in second.stderr
        assert online(server)
        assert status(server)["lastConnectTime"] == live_since
        assert admin_status(server)["broadcaster"]["time"] == live_since
        _, stderr = first.communicate(timeout=30)
    # The first publisher streamed its whole clip and ended it itself.
    assert first.returncode == 0, stderr
    wait_until(lambda: not online(server), "the stream to end")
    assert len(ingest_lines(server, "closing connection: stream already running")) == 1
    assert len(ingest_lines(server, "stream started")) == 1
    assert len(ingest_lines(server, "stream stopped (publisher sent FCUnpublish)")) == 1
    assert len(ingest_lines(server, "closing connection")) == 1


def test_temporary_stream_key_replaces_the_stored_keys(server_factory: ServerFactory, clip_4s: Path) -> None:
    server = server_factory("--stream-key", "temporary-key-42")
    refused = run_to_end(copy_to(clip_4s, server.rtmp_url("abc123")))
    assert refused.returncode != 0
    assert "Server error: invalid stream key" in refused.stderr
    assert status(server)["lastConnectTime"] is None

    accepted = run_to_end(copy_to(clip_4s, server.rtmp_url("temporary-key-42")))
    assert accepted.returncode == 0, accepted.stderr
    wait_until(lambda: status(server)["lastDisconnectTime"] is not None, "the stream to end")
    assert status(server)["lastConnectTime"] is not None
    assert len(ingest_lines(server, "closing connection: invalid stream key")) == 1
    assert len(ingest_lines(server, "stream stopped (publisher sent FCUnpublish)")) == 1


def test_admin_disconnect(server: ServerProcess, clip_15s: Path) -> None:
    for method in ("GET", "POST"):
        code, headers, _ = server.request("/api/admin/disconnect", method=method)
        assert code == 401, method
        assert {k.lower(): v for k, v in headers.items()}["www-authenticate"] == REALM
        code, _, _ = server.request("/api/admin/disconnect", method=method, admin="not-the-password")
        assert code == 401, method

        code, headers, body = server.request("/api/admin/disconnect", method=method, admin=ADMIN)
        assert code == 400, method
        assert {k.lower(): v for k, v in headers.items()}["content-type"] == "application/json"
        answer = json.loads(body)
        assert answer.keys() == {"message", "success"} and answer["success"] is False
        assert isinstance(answer["message"], str) and answer["message"]

    for round_number, method in enumerate(("GET", "POST"), start=1):
        with running(copy_to(clip_15s, server.rtmp_url(), readrate=1)) as publisher:
            wait_until(lambda: online(server), f"the publisher to go live ({method})")
            code, _, body = server.request("/api/admin/disconnect", method=method, admin=ADMIN)
            assert code == 200, body
            answer = json.loads(body)
            assert answer["success"] is True and isinstance(answer["message"], str)
            assert not online(server), "the stream is offline as soon as the disconnect answers"
            # The publisher finds its connection gone and gives up well before its 15 s clip ends.
            publisher.wait(timeout=10)
        body = status(server)
        assert body["lastDisconnectTime"] is not None
        assert body["lastDisconnectTime"] >= body["lastConnectTime"]
        assert admin_status(server)["broadcaster"] is None
        assert len(ingest_lines(server, "closing connection: disconnected by the admin")) == round_number
        assert len(ingest_lines(server, "stream stopped (disconnected by the admin)")) == round_number


# -- RTMPS ----------------------------------------------------------------------------------------


def test_rtmps_publish(server_factory: ServerFactory, clip_4s: Path, tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    rtmps_port = free_port()
    server = server_factory("--rtmps-port", str(rtmps_port), "--tls-cert", str(cert), "--tls-key", str(key))
    url = f"rtmps://127.0.0.1:{rtmps_port}/live/abc123"

    # Plain RTMP on the RTMPS port is a TLS error, not a stream.
    plain = run_to_end(copy_to(clip_4s, f"rtmp://127.0.0.1:{rtmps_port}/live/abc123"), timeout=20)
    assert plain.returncode != 0
    assert status(server)["lastConnectTime"] is None

    with running(copy_to(clip_4s, url, readrate=2)) as publisher:
        wait_until(lambda: online(server), "the RTMPS publisher to go live")
        # Online comes with the publish command; the stream's metadata follows it.
        wait_until(
            lambda: admin_status(server)["broadcaster"]["streamDetails"]["videoCodec"] != "Unknown",
            "the RTMPS stream's metadata",
        )
        broadcaster = admin_status(server)["broadcaster"]
        _, stderr = publisher.communicate(timeout=30)
    assert publisher.returncode == 0, stderr
    assert broadcaster["remoteAddr"] == "127.0.0.1"
    assert broadcaster["streamDetails"]["videoCodec"] == "H.264"
    wait_until(lambda: not online(server), "the RTMPS stream to end")
    assert len(ingest_lines(server, "stream stopped (publisher sent FCUnpublish)")) == 1

    # The plain listener still works beside the TLS one.
    assert run_to_end(copy_to(clip_4s, server.rtmp_url())).returncode == 0
    assert len(ingest_lines(server, "stream started")) == 2


def test_sigterm_while_publishing_ends_the_publisher(server: ServerProcess, clip_15s: Path) -> None:
    with running(copy_to(clip_15s, server.rtmp_url(), readrate=1)) as publisher:
        wait_until(lambda: online(server), "the publisher to go live")
        assert server.stop(signal.SIGTERM) == 0
        publisher.wait(timeout=10)
    assert "server shutting down" in server.log()
