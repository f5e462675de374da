"""S3 mirror against a real S3-compatible server: moto in server mode on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

from owncast_fast.hls.s3 import S3Config, S3Mirror, multivariant_base, plain_playlist
from owncast_fast.hls.storage import FileKind

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
TEST_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def make_config(endpoint: str, bucket: str, **extra: Any) -> S3Config:
    setting = {"enabled": True, "endpoint": endpoint, "accessKey": "key", "secret": "secret", "bucket": bucket}
    config = S3Config.from_setting(setting | extra)
    assert config is not None
    return config


@asynccontextmanager
async def inspector(endpoint: str, bucket: str | None = None) -> AsyncIterator[Any]:
    """A plain client to look at the bucket, creating it first when named."""
    config = AioConfig(request_checksum_calculation="when_required", response_checksum_validation="when_required")
    async with get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="key",
        aws_secret_access_key="secret",
        config=config,
    ) as client:
        if bucket is not None:
            await client.create_bucket(Bucket=bucket)
        yield client


async def keys(client: Any, bucket: str) -> set[str]:
    listed = await client.list_objects_v2(Bucket=bucket)
    return {item["Key"] for item in listed.get("Contents", [])}


async def body(client: Any, bucket: str, key: str) -> bytes:
    response = await client.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as stream:
        data: bytes = await stream.read()
    return data


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll the mirror's counters, which have no event to wait on (bounded by TEST_TIMEOUT)."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.01)


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(TEST_TIMEOUT):
            await main()

    asyncio.run(bounded())


def new_bucket() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def media_playlist(names: list[str], *, init: str | None = None, parts: Sequence[str] = (), hint: str = "") -> bytes:
    """A small media playlist, low-latency tags included when `parts` or `hint` are given."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:1"]
    if parts or hint:
        lines += ["#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5", "#EXT-X-PART-INF:PART-TARGET=0.5"]
    lines.append("#EXT-X-MEDIA-SEQUENCE:0")
    if init:
        lines.append(f'#EXT-X-MAP:URI="{init}"')
    for name in names:
        lines += ["#EXTINF:1.000,", name]
    lines += [f'#EXT-X-PART:DURATION=0.50000,URI="{part}"' for part in parts]
    if hint:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{hint}"')
    return ("\n".join(lines) + "\n").encode()


def listed_uris(playlist: bytes) -> list[str]:
    text = playlist.decode()
    uris = [line for line in text.splitlines() if line and not line.startswith("#")]
    return uris + re.findall(r'URI="([^"]+)"', text)


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("setting", [{}, {"enabled": False}, {"enabled": None, "endpoint": "ftp://x"}])
def test_disabled_setting_is_none(setting: dict[str, Any]) -> None:
    assert S3Config.from_setting(setting) is None


def test_setting_parsed() -> None:
    config = S3Config.from_setting(
        {
            "enabled": True,
            "endpoint": "https://s3.example.com/",
            "accessKey": "AK",
            "secret": "hunter2",
            "bucket": "live",
            "region": "",
            "pathPrefix": "/streams/main/",
            "forcePathStyle": True,
        }
    )
    assert config == S3Config(
        endpoint="https://s3.example.com",
        access_key="AK",
        secret="hunter2",
        bucket="live",
        region="us-east-1",
        acl="public-read",
        path_prefix="streams/main",
        force_path_style=True,
    )
    assert config.addressing_style == "path"
    assert "hunter2" not in repr(config)
    assert config.key("0/stream.m3u8") == "streams/main/hls/0/stream.m3u8"


def test_setting_acl_and_addressing() -> None:
    endpoint = "http://127.0.0.1:9000"
    assert make_config(endpoint, "b").acl == "public-read"
    assert make_config(endpoint, "b", acl=None).acl == "public-read"
    assert make_config(endpoint, "b", acl="").acl == ""
    assert make_config(endpoint, "b", acl="private", region="eu-west-3").acl == "private"
    assert make_config(endpoint, "b", region="eu-west-3").region == "eu-west-3"
    assert make_config(endpoint, "b").addressing_style == "auto"
    assert make_config(endpoint, "b").key("0/a-1.ts") == "hls/0/a-1.ts"


VALID = {"enabled": True, "endpoint": "https://s3.example.com", "accessKey": "a", "secret": "s", "bucket": "b"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"endpoint": "ftp://x"}, "s3.endpoint: 'ftp://x' is not an http(s) URL"),
        ({"endpoint": "s3.example.com"}, "s3.endpoint: 's3.example.com' is not an http(s) URL"),
        ({"endpoint": "https://"}, "s3.endpoint: 'https://' is not an http(s) URL"),
        ({"endpoint": "http://host:port"}, "s3.endpoint: 'http://host:port' is not an http(s) URL"),
        ({"endpoint": "http://host:70000"}, "s3.endpoint: 'http://host:70000' is not an http(s) URL"),
        ({"endpoint": ""}, "s3.endpoint: required when S3 is enabled"),
        ({"endpoint": None}, "s3.endpoint: required when S3 is enabled"),
        ({"endpoint": 5}, "s3.endpoint: expected a string, got 5"),
        ({"bucket": ""}, "s3.bucket: required when S3 is enabled"),
        ({"bucket": "a/b"}, "s3.bucket: 'a/b' is not a bucket name"),
        ({"accessKey": " "}, "s3.accessKey: required when S3 is enabled"),
        ({"secret": None}, "s3.secret: required when S3 is enabled"),
        (
            {"acl": "public"},
            "s3.acl: 'public' is not a canned ACL (private, public-read, public-read-write, "
            "authenticated-read, aws-exec-read, bucket-owner-read, bucket-owner-full-control)",
        ),
        ({"enabled": "yes"}, "s3.enabled: expected true or false, got 'yes'"),
        ({"forcePathStyle": 1}, "s3.forcePathStyle: expected true or false, got 1"),
        ({"pathPrefix": ["a"]}, "s3.pathPrefix: expected a string, got ['a']"),
    ],
)
def test_setting_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        S3Config.from_setting(VALID | change)
    assert str(caught.value) == message


def test_setting_not_an_object() -> None:
    with pytest.raises(ValueError) as caught:
        S3Config.from_setting([])  # type: ignore[arg-type]
    assert str(caught.value) == "s3: expected an object, got []"


@pytest.mark.parametrize(
    ("extra", "serving", "base"),
    [
        ({}, "", "https://s3.example.com/live/hls"),
        ({"pathPrefix": "/owncast/"}, "", "https://s3.example.com/live/owncast/hls"),
        ({"forcePathStyle": True}, "", "https://s3.example.com/live/hls"),
        ({}, "https://cdn.example.com/", "https://cdn.example.com/hls"),
        ({"pathPrefix": "a/b"}, "https://cdn.example.com/video", "https://cdn.example.com/video/a/b/hls"),
    ],
)
def test_multivariant_base(extra: dict[str, Any], serving: str, base: str) -> None:
    config = make_config("https://s3.example.com/", "live", **extra)
    assert multivariant_base(config, serving) == base


def test_plain_playlist_drops_low_latency_tags() -> None:
    low_latency = (
        b"#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n"
        b"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5\n#EXT-X-PART-INF:PART-TARGET=0.5\n"
        b'#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-MAP:URI="s-init1.mp4"\n'
        b'#EXT-X-PART:DURATION=0.50000,URI="s-4.0.m4s",INDEPENDENT=YES\n#EXTINF:2.000,\ns-4.m4s\n'
        b'#EXT-X-PART:DURATION=0.50000,URI="s-5.0.m4s",INDEPENDENT=YES\n'
        b'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s-5.1.m4s"\n'
        b'#EXT-X-RENDITION-REPORT:URI="../1/stream.m3u8",LAST-MSN=5,LAST-PART=0\n'
    )
    assert plain_playlist(low_latency) == (
        b"#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n"
        b'#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-MAP:URI="s-init1.mp4"\n#EXTINF:2.000,\ns-4.m4s\n'
    )
    plain = media_playlist(["a-1.ts"])
    assert plain_playlist(plain) == plain


# -- uploads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "/cams/one/"])
def test_keys_headers_and_acl(endpoint: str, prefix: str) -> None:
    bucket = new_bucket()
    config = make_config(endpoint, bucket, pathPrefix=prefix)
    root = "cams/one/hls" if prefix else "hls"
    playlist = media_playlist(["s-1.m4s"], init="s-init1.mp4", parts=["s-2.0.m4s"], hint="s-2.1.m4s")

    async def main() -> None:
        async with inspector(endpoint, bucket) as client:
            mirror = S3Mirror(config, segment_duration=1.0, window=5)
            await mirror.start()
            mirror.put("0/s-init1.mp4", b"init", FileKind.INIT)
            mirror.put("0/s-1.0.m4s", b"part", FileKind.PART)
            mirror.put("0/s-1.m4s", b"segment", FileKind.SEGMENT)
            mirror.put("1/t-1.ts", b"transport", FileKind.SEGMENT)
            mirror.put("0/s-2.0.m4s", b"part", FileKind.PART)
            mirror.put("0/stream.m3u8", playlist, FileKind.PLAYLIST)
            mirror.delete("0/s-1.m4s")  # the bucket keeps its own window
            await mirror.aclose()

            assert await keys(client, bucket) == {
                f"{root}/0/s-init1.mp4",
                f"{root}/0/s-1.m4s",
                f"{root}/1/t-1.ts",
                f"{root}/0/stream.m3u8",
            }
            expected = {
                "0/s-init1.mp4": ("max-age=31557600", "video/mp4"),
                "0/s-1.m4s": ("max-age=31557600", "video/iso.segment"),
                "1/t-1.ts": ("max-age=31557600", "video/mp2t"),
                "0/stream.m3u8": ("no-cache, no-store, must-revalidate", "application/x-mpegURL"),
            }
            for path, (cache_control, content_type) in expected.items():
                head = await client.head_object(Bucket=bucket, Key=f"{root}/{path}")
                assert (head["CacheControl"], head["ContentType"]) == (cache_control, content_type), path
                acl = await client.get_object_acl(Bucket=bucket, Key=f"{root}/{path}")
                assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} in acl["Grants"]
            assert await body(client, bucket, f"{root}/0/s-1.m4s") == b"segment"
            assert await body(client, bucket, f"{root}/0/stream.m3u8") == plain_playlist(playlist)
            assert b"#EXT-X-PART" not in plain_playlist(playlist)
            assert (mirror.uploads, mirror.failed_uploads, mirror.dropped_uploads) == (4, 0, 0)
            assert mirror.bytes_uploaded == len(b"initsegmenttransport" + plain_playlist(playlist))
            assert mirror.upload_seconds > 0

    run(main)


def test_empty_acl_sends_none(endpoint: str) -> None:
    bucket = new_bucket()

    async def main() -> None:
        async with inspector(endpoint, bucket) as client:
            mirror = S3Mirror(make_config(endpoint, bucket, acl=""), segment_duration=1.0, window=5)
            await mirror.start()
            mirror.put("0/a-1.ts", b"x", FileKind.SEGMENT)
            await mirror.aclose()
            acl = await client.get_object_acl(Bucket=bucket, Key="hls/0/a-1.ts")
            assert all(grant["Grantee"].get("URI") != ALL_USERS for grant in acl["Grants"])

    run(main)


def test_playlist_never_lists_a_missing_object(endpoint: str) -> None:
    """Segments upload slowly and out of step; every playlist PUT is checked against the bucket."""
    bucket = new_bucket()
    rng = random.Random(7)
    violations: list[str] = []
    playlist_puts = 0

    async def main() -> None:
        nonlocal playlist_puts
        async with inspector(endpoint, bucket) as client:

            async def before_put(params: dict[str, Any], **_: Any) -> None:
                nonlocal playlist_puts
                key: str = params["Key"]
                if key.endswith(".m3u8"):
                    playlist_puts += 1
                    present = await keys(client, bucket)
                    directory = key.rpartition("/")[0]
                    missing = [uri for uri in listed_uris(params["Body"]) if f"{directory}/{uri}" not in present]
                    if missing:
                        violations.append(f"{key} lists {missing}")
                else:
                    await asyncio.sleep(0.2 if key.endswith("-1.m4s") else rng.uniform(0, 0.03))

            session = get_session()
            session.register("before-parameter-build.s3.PutObject", before_put)
            mirror = S3Mirror(make_config(endpoint, bucket), segment_duration=1.0, window=100, session=session)
            await mirror.start()
            listed: dict[str, list[str]] = {"0": [], "1": []}
            last: dict[str, bytes] = {}
            for msn in range(1, 16):
                for variant in listed:
                    if msn == 1:
                        mirror.put(f"{variant}/s-init1.mp4", b"init", FileKind.INIT)
                    for part in range(2):
                        mirror.put(f"{variant}/s-{msn}.{part}.m4s", b"p", FileKind.PART)
                        if listed[variant]:
                            # A playlist with a new part: the same plain playlist as before.
                            mirror.put(
                                f"{variant}/stream.m3u8",
                                media_playlist(listed[variant], init="s-init1.mp4", parts=[f"s-{msn}.{part}.m4s"]),
                                FileKind.PLAYLIST,
                            )
                    mirror.put(f"{variant}/s-{msn}.m4s", b"segment %d" % msn, FileKind.SEGMENT)
                    listed[variant].append(f"s-{msn}.m4s")
                    last[variant] = media_playlist(listed[variant], init="s-init1.mp4")
                    mirror.put(f"{variant}/stream.m3u8", last[variant], FileKind.PLAYLIST)
                await asyncio.sleep(rng.uniform(0, 0.02))
            await mirror.aclose()

            assert violations == []
            stored = await keys(client, bucket)
            for variant, names in listed.items():
                assert await body(client, bucket, f"hls/{variant}/stream.m3u8") == last[variant]
                assert {f"hls/{variant}/{name}" for name in names} <= stored
            assert not any(re.search(r"\.\d+\.m4s$", key) for key in stored)
            # One playlist per segment at most (part-only changes are not sent), and some were
            # superseded while their segments were still uploading.
            assert 2 <= playlist_puts <= 2 * 15
            assert mirror.uploads == 2 + 2 * 15 + playlist_puts
            assert (mirror.failed_uploads, mirror.dropped_uploads) == (0, 0)

    run(main)


def test_failed_attempts_are_retried(endpoint: str) -> None:
    bucket = new_bucket()
    failures = 2

    async def fail_twice(**_: Any) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionResetError("injected")

    async def main() -> None:
        async with inspector(endpoint, bucket) as client:
            session = get_session()
            session.register("before-parameter-build.s3.PutObject", fail_twice)
            mirror = S3Mirror(
                make_config(endpoint, bucket),
                segment_duration=1.0,
                window=5,
                retry_delays=(0, 0, 0, 0),
                session=session,
            )
            await mirror.start()
            mirror.put("0/a-1.ts", b"x", FileKind.SEGMENT)
            await mirror.aclose()
            assert (mirror.uploads, mirror.retries, mirror.failed_uploads) == (1, 2, 0)
            assert await keys(client, bucket) == {"hls/0/a-1.ts"}

    run(main)


def test_endpoint_that_comes_back(endpoint: str) -> None:
    """Nothing listens on the port for the first attempts; then a server starts there."""
    bucket = new_bucket()
    port = free_port()
    late_endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)

    async def main() -> None:
        mirror = S3Mirror(
            make_config(late_endpoint, bucket), segment_duration=1.0, window=5, retry_delays=(0.2, 0.5, 1.0, 2.0)
        )
        await mirror.start()
        mirror.put("0/a-1.ts", b"x", FileKind.SEGMENT)
        await wait_for(lambda: mirror.retries >= 1)
        server.start()
        try:
            async with inspector(late_endpoint, bucket) as client:
                await wait_for(lambda: mirror.uploads == 1)
                assert await keys(client, bucket) == {"hls/0/a-1.ts"}
            assert mirror.failed_uploads == 0
        finally:
            await mirror.aclose()
            server.stop()

    run(main)


def test_unreachable_endpoint_counts_failures_without_blocking() -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"

    async def main() -> None:
        mirror = S3Mirror(
            make_config(unreachable, "live"), segment_duration=1.0, window=5, max_queued=16, retry_delays=(0, 0, 0, 0)
        )
        await mirror.start()
        loop = asyncio.get_running_loop()
        seen: list[tuple[int, int]] = []

        def burst() -> None:
            # A loop callback cannot await: every put returns before the upload tasks run again.
            for msn in range(1000):
                mirror.put(f"0/a-{msn}.ts", b"x" * 100, FileKind.SEGMENT)
                mirror.put("0/stream.m3u8", media_playlist([f"a-{msn}.ts"]), FileKind.PLAYLIST)
            seen.append((mirror.queued, mirror.dropped_uploads))

        loop.call_soon(burst)
        await wait_for(lambda: bool(seen))
        assert seen == [(16, 1000 - 16)]
        assert mirror.queued_bytes <= 16 * 100
        await wait_for(lambda: mirror.failed_uploads >= 16)
        await mirror.aclose()
        # The 16 segments, and between 1 and 17 playlists (the newest ready one whenever a
        # segment gives up), each tried 5 times.
        assert 16 + 1 <= mirror.failed_uploads <= 16 + 17
        assert mirror.retries == mirror.failed_uploads * 4
        assert mirror.uploads == 0
        mirror.put("0/a-2000.ts", b"x", FileKind.SEGMENT)  # after close: counted, not queued
        assert (mirror.queued, mirror.dropped_uploads) == (0, 1000 - 16 + 1)

    run(main)


def test_byte_bound() -> None:
    mirror = S3Mirror(make_config("http://127.0.0.1:9", "b"), segment_duration=1.0, window=5, max_queued_bytes=10_000)
    for msn in range(50):
        mirror.put(f"0/a-{msn}.ts", bytes(1000), FileKind.SEGMENT)
        assert mirror.queued_bytes <= 10_000
    assert (mirror.queued, mirror.dropped_uploads) == (10, 40)
    mirror.close()


def test_oldest_segments_dropped_first(endpoint: str) -> None:
    """Queued before the client starts: the init survives, the oldest segments go."""
    bucket = new_bucket()

    async def main() -> None:
        async with inspector(endpoint, bucket) as client:
            mirror = S3Mirror(make_config(endpoint, bucket), segment_duration=1.0, window=1000, max_queued=20)
            mirror.put("0/s-init1.mp4", b"init", FileKind.INIT)
            names: list[str] = []
            for msn in range(30):
                names.append(f"s-{msn}.m4s")
                mirror.put(f"0/s-{msn}.m4s", b"s", FileKind.SEGMENT)
                mirror.put("0/stream.m3u8", media_playlist(names, init="s-init1.mp4"), FileKind.PLAYLIST)
            assert (mirror.queued, mirror.dropped_uploads) == (20, 11)
            await mirror.start()
            await mirror.aclose()
            assert await keys(client, bucket) == {"hls/0/s-init1.mp4", "hls/0/stream.m3u8"} | {
                f"hls/0/s-{msn}.m4s" for msn in range(11, 30)
            }
            assert await body(client, bucket, "hls/0/stream.m3u8") == media_playlist(names, init="s-init1.mp4")

    run(main)


def test_segments_beyond_window_plus_20_deleted(endpoint: str) -> None:
    bucket = new_bucket()

    async def main() -> None:
        async with inspector(endpoint, bucket) as client:
            mirror = S3Mirror(make_config(endpoint, bucket), segment_duration=1.0, window=2, tasks=1)
            await mirror.start()
            for variant in ("0", "1"):
                for msn in range(25):
                    mirror.put(f"{variant}/s-{msn}.ts", b"s", FileKind.SEGMENT)
                    mirror.put(f"{variant}/stream.m3u8", media_playlist([f"s-{msn}.ts"]), FileKind.PLAYLIST)
            await mirror.aclose()
            assert await keys(client, bucket) == {
                f"hls/{variant}/{name}"
                for variant in ("0", "1")
                for name in ["stream.m3u8", *(f"s-{msn}.ts" for msn in range(3, 25))]
            }
            assert (mirror.deletes, mirror.failed_deletes) == (6, 0)

    run(main)


@pytest.mark.parametrize(("segment_duration", "warned"), [(1e-6, True), (1e6, False)])
def test_slow_upload_warning(
    endpoint: str, caplog: pytest.LogCaptureFixture, segment_duration: float, warned: bool
) -> None:
    bucket = new_bucket()

    async def main() -> None:
        async with inspector(endpoint, bucket):
            mirror = S3Mirror(make_config(endpoint, bucket), segment_duration=segment_duration, window=5)
            await mirror.start()
            for msn in range(3):
                mirror.put(f"0/a-{msn}.ts", b"x", FileKind.SEGMENT)
            await mirror.aclose()
            assert mirror.uploads == 3

    with caplog.at_level(logging.WARNING, logger="owncast_fast.hls.s3"):
        run(main)
    slow = [r for r in caplog.records if "S3 uploads are slow" in r.getMessage()]
    assert len(slow) == (1 if warned else 0)  # repeated at most once a minute


def test_protocol_close_schedules_aclose(endpoint: str) -> None:
    bucket = new_bucket()

    async def main() -> None:
        async with inspector(endpoint, bucket) as client:
            mirror = S3Mirror(make_config(endpoint, bucket), segment_duration=1.0, window=5)
            await mirror.start()
            mirror.put("0/a-1.ts", b"x", FileKind.SEGMENT)
            mirror.close()
            assert mirror.closing is not None and not mirror.closing.done()
            await mirror.aclose()  # the same shutdown, awaited
            assert mirror.closing.done()
            assert await keys(client, bucket) == {"hls/0/a-1.ts"}

    run(main)
