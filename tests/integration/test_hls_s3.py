"""Owncast's S3 mode end to end: a real server uploads HLS to a local S3-compatible server (moto),
serves only the multivariant playlist itself, and a player plays the stream from the bucket."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import m3u8
import pytest
from moto.server import ThreadedMotoServer
from tests.conftest import ServerFactory, free_port

pytestmark = pytest.mark.integration

BUCKET = "live"


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT"), timeout=10).close()
    yield endpoint
    server.stop()


def store_setting(database: Path, key: str, value: object) -> None:
    with sqlite3.connect(database) as db:
        db.execute("UPDATE datastore SET value = ? WHERE key = ?", (json.dumps(value), key))


def bucket_keys(endpoint: str) -> list[str]:
    with urllib.request.urlopen(f"{endpoint}/{BUCKET}?list-type=2", timeout=10) as response:
        body = response.read().decode()
    return [part.split("</Key>")[0] for part in body.split("<Key>")[1:]]


def test_s3_mode_uploads_and_plays_from_the_bucket(server_factory: ServerFactory, s3_endpoint: str) -> None:
    first = server_factory()
    first.stop()
    store_setting(
        first.data_dir / "owncast-fast.db",
        "s3_storage_config",
        {
            "enabled": True,
            "endpoint": s3_endpoint,
            "accessKey": "test-key",
            "secret": "test-secret",
            "bucket": BUCKET,
            "region": "us-east-1",
            "acl": "public-read",
            "pathPrefix": "stream",
            "forcePathStyle": True,
        },
    )
    server = server_factory(data_dir=first.data_dir)
    publisher = subprocess.Popen(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i", "sine",
            "-t", "12", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac",
            "-f", "flv", server.rtmp_url(),
        ]
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        keys: list[str] = []
        while time.monotonic() < deadline:
            keys = bucket_keys(s3_endpoint)
            if sum(k.endswith(".m4s") for k in keys) >= 2 and "stream/hls/0/stream.m3u8" in keys:
                break
            time.sleep(0.3)
        assert "stream/hls/0/stream.m3u8" in keys, keys
        assert any(k.endswith(".mp4") for k in keys)  # the init segment
        assert not any(k.count(".") == 2 for k in keys)  # LL-HLS parts are not uploaded

        status, _, body = server.request("/hls/stream.m3u8")
        assert status == 200
        variant_uri = m3u8.loads(body.decode()).playlists[0].uri
        assert variant_uri == f"{s3_endpoint}/{BUCKET}/stream/hls/0/stream.m3u8"
        assert server.request("/hls/0/stream.m3u8")[0] == 404  # served from the bucket only

        with urllib.request.urlopen(variant_uri, timeout=10) as response:
            media = m3u8.loads(response.read().decode())
        assert media.segments and "PART" not in media.dumps()
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", variant_uri],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert probe.returncode == 0 and probe.stderr == ""
        assert set(probe.stdout.split()) == {"h264", "aac"}
    finally:
        publisher.wait(timeout=30)
    assert server.stop() == 0
