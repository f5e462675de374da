"""ServerHandshake: plain and digest handshakes, any split of the input, a real ffmpeg publisher."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from owncast_fast.errors import ProtocolError
from owncast_fast.ingest.rtmp.handshake import HANDSHAKE_SIZE, ServerHandshake

DATA = Path(__file__).resolve().parents[2] / "data" / "rtmp"
FFMPEG_CLIENT_HANDSHAKE = DATA / "handshake" / "ffmpeg_c0c1c2.bin"
FFMPEG_CONNECT = DATA / "ffmpeg_connect.bin"

# The test client's own copy of the published digest-handshake keys, so that the server is checked against
# an independent implementation rather than against its own constants.
KEY_BYTES = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
FLASH_PLAYER_KEY = b"Genuine Adobe Flash Player 001" + KEY_BYTES
FLASH_MEDIA_SERVER_KEY = b"Genuine Adobe Flash Media Server 001" + KEY_BYTES


def counting_bytes(size: int) -> bytes:
    """Deterministic stand-in for os.urandom."""
    return bytes(index % 251 for index in range(size))


def plain_c1(time: int = 0x01020304) -> bytes:
    return time.to_bytes(4, "big") + bytes(4) + bytes((index * 7) % 256 for index in range(HANDSHAKE_SIZE - 8))


def client_digest_offset(packet: bytes, schema: int) -> int:
    if schema == 1:
        return sum(packet[8:12]) % 728 + 12
    return sum(packet[772:776]) % 728 + 776


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def digest_c1(schema: int, seed: int = 5) -> tuple[bytes, bytes]:
    """A C1 as librtmp builds it (client version 9.0.124.2); returns (c1, client digest)."""
    body = bytearray(bytes((seed * index + 3) % 256 for index in range(HANDSHAKE_SIZE)))
    body[0:4] = (1234).to_bytes(4, "big")
    body[4:8] = bytes((9, 0, 124, 2))
    offset = client_digest_offset(bytes(body), schema)
    digest = hmac_sha256(FLASH_PLAYER_KEY[:30], bytes(body[:offset] + body[offset + 32 :]))
    body[offset : offset + 32] = digest
    return bytes(body), digest


def verify_as_client(reply: bytes, client_digest: bytes, schema: int) -> None:
    """What a digest-handshake client checks in S1 and S2."""
    assert reply[0] == 3
    s1, s2 = reply[1 : 1 + HANDSHAKE_SIZE], reply[1 + HANDSHAKE_SIZE :]
    assert len(s1) == len(s2) == HANDSHAKE_SIZE
    assert s1[4:8] != bytes(4)
    offset = client_digest_offset(s1, schema)
    expected = hmac_sha256(FLASH_MEDIA_SERVER_KEY[:36], s1[:offset] + s1[offset + 32 :])
    assert s1[offset : offset + 32] == expected
    signing_key = hmac_sha256(FLASH_MEDIA_SERVER_KEY, client_digest)
    assert s2[-32:] == hmac_sha256(signing_key, s2[:-32])


def test_plain_handshake_with_fixed_randomness() -> None:
    server = ServerHandshake(random_bytes=counting_bytes, epoch=0x0A0B0C0D)
    c1 = plain_c1()
    reply = server.feed(b"\x03" + c1)
    s1 = (0x0A0B0C0D).to_bytes(4, "big") + bytes(4) + counting_bytes(1528)
    s2 = c1[0:4] + (0x0A0B0C0D).to_bytes(4, "big") + c1[8:]
    assert reply == b"\x03" + s1 + s2
    assert not server.done
    assert server.digest_schema is None
    assert server.feed(b"\xaa" * HANDSHAKE_SIZE) == b""
    assert server.done
    assert server.leftover == b""


@pytest.mark.parametrize("schema", [0, 1])
def test_digest_handshake_answers_with_server_digest_and_signed_s2(schema: int) -> None:
    c1, client_digest = digest_c1(schema)
    server = ServerHandshake(random_bytes=counting_bytes, epoch=77)
    reply = server.feed(b"\x03" + c1)
    assert server.digest_schema == schema
    verify_as_client(reply, client_digest, schema)
    assert reply[1:5] == (77).to_bytes(4, "big")
    assert server.feed(os.urandom(HANDSHAKE_SIZE)) == b""
    assert server.done


def test_digest_handshake_with_real_randomness_verifies() -> None:
    c1, client_digest = digest_c1(1, seed=11)
    server = ServerHandshake()
    verify_as_client(server.feed(b"\x03" + c1), client_digest, 1)


def test_invalid_digest_falls_back_to_plain_echo() -> None:
    c1, _digest = digest_c1(1)
    broken = bytearray(c1)
    broken[700] ^= 0xFF  # outside both candidate digests for this seed, so neither validates
    server = ServerHandshake(random_bytes=counting_bytes)
    reply = server.feed(b"\x03" + bytes(broken))
    assert server.digest_schema is None
    assert reply[1 + HANDSHAKE_SIZE + 8 :] == bytes(broken[8:])
    assert reply[1 + 4 : 1 + 8] == bytes(4)


def test_byte_by_byte() -> None:
    c1, client_digest = digest_c1(0)
    client = b"\x03" + c1 + bytes(HANDSHAKE_SIZE) + b"\x03\x00"
    server = ServerHandshake(random_bytes=counting_bytes)
    replies = []
    for index in range(len(client) - 2):
        replies.append(server.feed(client[index : index + 1]))
        assert server.done == (index == len(client) - 3)
    assert [index for index, reply in enumerate(replies) if reply] == [HANDSHAKE_SIZE]
    verify_as_client(replies[HANDSHAKE_SIZE], client_digest, 0)
    assert server.leftover == b""


def test_leftover_after_c2_in_the_same_read() -> None:
    chunk = bytes.fromhex("030000000000191400000000") + b"\x02\x00\x07connect"
    server = ServerHandshake()
    server.feed(b"\x03" + plain_c1())
    assert server.feed(memoryview(bytes(HANDSHAKE_SIZE) + chunk)) == b""
    assert server.done
    assert server.leftover == chunk


def test_everything_in_one_read() -> None:
    server = ServerHandshake()
    reply = server.feed(bytearray(b"\x03" + plain_c1() + bytes(HANDSHAKE_SIZE) + b"\xc3"))
    assert len(reply) == 1 + 2 * HANDSHAKE_SIZE
    assert server.done
    assert server.leftover == b"\xc3"


@pytest.mark.parametrize("version", [0, 6, 8, 31, 255])
def test_bad_version(version: int) -> None:
    server = ServerHandshake()
    with pytest.raises(ProtocolError) as raised:
        server.feed(bytes((version,)))
    assert str(raised.value) == f"RTMP handshake: unsupported version {version} (expected 3)"


def test_bad_version_message_for_rtmpe() -> None:
    with pytest.raises(ProtocolError, match=r"^RTMP handshake: unsupported version 6 \(expected 3\)$"):
        ServerHandshake().feed(b"\x06" + plain_c1())


@pytest.mark.parametrize("size", [1, 2, 1000, 1536])
def test_truncated_c0_c1_sends_nothing(size: int) -> None:
    server = ServerHandshake()
    assert server.feed((b"\x03" + plain_c1())[:size]) == b""
    assert not server.done


@pytest.mark.parametrize("size", [0, 1, 1535])
def test_truncated_c2_is_not_done(size: int) -> None:
    server = ServerHandshake()
    assert len(server.feed(b"\x03" + plain_c1())) == 1 + 2 * HANDSHAKE_SIZE
    assert server.feed(bytes(size)) == b""
    assert not server.done
    assert server.leftover == b""


def test_empty_feeds_are_harmless() -> None:
    server = ServerHandshake()
    assert server.feed(b"") == b""
    server.feed(b"\x03")
    assert server.feed(b"") == b""
    assert not server.done


def test_feeding_after_done_is_a_caller_bug() -> None:
    server = ServerHandshake()
    server.feed(b"\x03" + plain_c1() + bytes(HANDSHAKE_SIZE))
    with pytest.raises(RuntimeError, match=r"^RTMP handshake already done: feed later bytes to the chunk layer$"):
        server.feed(b"\x00")


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match=r"^epoch must fit in 32 bits, got 4294967296$"):
        ServerHandshake(epoch=1 << 32)
    server = ServerHandshake(random_bytes=lambda size: bytes(size - 1))
    with pytest.raises(ValueError, match=r"^random_bytes\(1528\) returned 1527 bytes$"):
        server.feed(b"\x03" + plain_c1())


@given(
    st.sampled_from(["plain", "digest0", "digest1"]),
    st.lists(st.integers(min_value=0, max_value=3073 + 40), max_size=12),
)
def test_any_split_gives_the_same_replies_and_leftover(kind: str, cuts: list[int]) -> None:
    c1 = plain_c1() if kind == "plain" else digest_c1(int(kind[-1]))[0]
    client = b"\x03" + c1 + bytes(range(256)) * 6 + bytes(range(40))
    whole = ServerHandshake(random_bytes=counting_bytes)
    expected_reply = whole.feed(client)
    server = ServerHandshake(random_bytes=counting_bytes)
    reply = b""
    bounds = [0, *sorted(cuts), len(client)]
    for start, end in itertools.pairwise(bounds):
        reply += server.feed(client[start:end])
        if server.done:
            # The rest of this read is leftover; later reads would go to the chunk layer.
            assert server.leftover + client[end:] == whole.leftover
            break
    assert reply == expected_reply
    assert server.done


def test_recorded_ffmpeg_client_handshake() -> None:
    """ffmpeg 5.1 publishing sends the digest handshake (schema 1, client version 9.0.124.2)."""
    client = FFMPEG_CLIENT_HANDSHAKE.read_bytes()
    assert len(client) == 1 + 2 * HANDSHAKE_SIZE
    assert client[5:9] == bytes((9, 0, 124, 2))
    server = ServerHandshake()
    reply = server.feed(client)
    assert server.digest_schema == 1
    assert len(reply) == 1 + 2 * HANDSHAKE_SIZE
    assert server.done
    assert server.leftover == b""


@pytest.mark.integration
def test_real_ffmpeg_publisher_completes_the_handshake() -> None:
    """ffmpeg publishes to a server that only shakes hands; the bytes after C2 must be its connect chunk.

    With OWNCAST_FAST_RECAPTURE=1 the run rewrites the two ffmpeg fixtures used by the other tests.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed")
    client_bytes, after_handshake, schema = asyncio.run(_publish_with_ffmpeg(ffmpeg))
    assert len(client_bytes) == 1 + 2 * HANDSHAKE_SIZE
    assert schema in (None, 0, 1)
    assert len(after_handshake) > 12
    first = after_handshake[0]
    assert first >> 6 == 0, "chunk format 0 (full message header)"
    assert first & 0x3F == 3, "chunk stream id 3"
    assert after_handshake[7] == 20, "message type 20: AMF0 command"
    assert after_handshake[12:22] == b"\x02\x00\x07connect"
    if os.environ.get("OWNCAST_FAST_RECAPTURE") == "1":
        FFMPEG_CLIENT_HANDSHAKE.write_bytes(client_bytes)
        FFMPEG_CONNECT.write_bytes(after_handshake)


async def _publish_with_ffmpeg(ffmpeg: str) -> tuple[bytes, bytes, int | None]:
    captured: dict[str, bytes] = {}
    handshake = ServerHandshake()
    finished = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client_bytes = bytearray()
        try:
            while not handshake.done:
                data = await reader.read(4096)
                if not data:
                    return
                reply = handshake.feed(data)
                client_bytes += data[: len(data) - len(handshake.leftover)]
                writer.write(reply)
                await writer.drain()
            after = bytearray(handshake.leftover)
            # ffmpeg sends connect and waits for an answer that never comes; stop once the line is quiet.
            while len(after) < 4096:
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout=0.5)
                except TimeoutError:
                    break
                if not data:
                    break
                after += data
            captured["client"] = bytes(client_bytes)
            captured["after"] = bytes(after[:4096])
        finally:
            writer.close()
            finished.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "quiet",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x64:rate=5",
        "-t",
        "1",
        "-f",
        "flv",
        f"rtmp://127.0.0.1:{port}/live/x",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.wait_for(finished.wait(), timeout=20)
        await asyncio.wait_for(process.wait(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        server.close()
        await server.wait_closed()
    assert handshake.done, "ffmpeg did not complete the handshake"
    return captured["client"], captured["after"], handshake.digest_schema
