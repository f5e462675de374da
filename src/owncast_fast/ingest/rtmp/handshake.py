"""Server side of the RTMP handshake (Adobe RTMP specification 1.0, section 5.2), sans-I/O.

Theory of operation
-------------------
The client sends C0 (one version byte) and C1 (1536 bytes), the server answers S0+S1+S2 in one write as soon
as C0+C1 are in, then the client sends C2 (1536 bytes) and the handshake is over; anything that arrived after
C2 in the same read belongs to the chunk layer and is handed over as ``leftover``.

    state       needs            on complete input
    C0          1 byte           check the version (must be 3)      -> C1
    C1          1536 bytes       answer S0+S1+S2                    -> C2
    C2          1536 bytes       nothing (C2 is read, not checked)  -> DONE

Two flavours of C1 exist in the wild. The plain one of the specification (time, four zero bytes, random
bytes), answered with a random S1 and an S2 that echoes C1. And the digest ("complex") handshake that Flash
Player introduced and librtmp, ffmpeg and many encoders send: C1 bytes 4..7 carry a non-zero client version
and a 32-byte HMAC-SHA256 digest hidden at an offset derived from C1 itself. A client that sent one may
expect the server to answer in kind (S1 with a server digest, S2 signed with a key derived from the client
digest); when the digest does not validate we answer plainly, which is what servers do in practice.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Callable

from owncast_fast.errors import ProtocolError

RTMP_VERSION = 3
HANDSHAKE_SIZE = 1536
DIGEST_SIZE = 32

# Public protocol constants of the digest handshake, documented in many open RTMP implementations: the keys
# are an ASCII text followed by the same 32 published bytes. Client digests (in C1) are keyed with the
# 30-byte text alone, server digests (in S1) with the 36-byte text alone; the full 62/68-byte keys only
# derive the keys that sign C2/S2.
_KEY_SUFFIX = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
CLIENT_KEY_TEXT = b"Genuine Adobe Flash Player 001"
SERVER_KEY_TEXT = b"Genuine Adobe Flash Media Server 001"
CLIENT_KEY = CLIENT_KEY_TEXT + _KEY_SUFFIX
SERVER_KEY = SERVER_KEY_TEXT + _KEY_SUFFIX

# Sent in S1 bytes 4..7 of a digest answer; clients only check that it is non-zero (FMS 3.5.1.1 style).
SERVER_VERSION = bytes((3, 5, 1, 1))

# The two places a digest may sit in a 1536-byte C1/S1, as (offset bytes, base of the digest offset).
# Schema 1 ("digest first"): the four bytes at 8..11 are summed, modulo 728, plus 12.
# Schema 0 ("key first"): the four bytes at 772..775 are summed, modulo 728, plus 776.
# Either way the digest lies within its 764-byte half of the 1528 random bytes.
_DIGEST_SCHEMAS: dict[int, tuple[int, int]] = {1: (8, 12), 0: (772, 776)}
_DIGEST_OFFSET_MODULUS = 728


class _State(enum.Enum):
    C0 = enum.auto()
    C1 = enum.auto()
    C2 = enum.auto()
    DONE = enum.auto()


def digest_offset(packet: bytes | bytearray, schema: int) -> int:
    """Where the 32-byte digest sits in a 1536-byte C1/S1 laid out with ``schema`` (0 or 1)."""
    offset_at, base = _DIGEST_SCHEMAS[schema]
    return sum(packet[offset_at : offset_at + 4]) % _DIGEST_OFFSET_MODULUS + base


def packet_digest(packet: bytes | bytearray, offset: int, key: bytes) -> bytes:
    """HMAC-SHA256 of a C1/S1 with the 32 digest bytes at ``offset`` left out of the message."""
    message = bytes(packet[:offset]) + bytes(packet[offset + DIGEST_SIZE :])
    return hmac.digest(key, message, hashlib.sha256)


def find_client_digest(c1: bytes | bytearray) -> tuple[int, bytes] | None:
    """Return ``(schema, digest)`` when C1 carries a client digest that validates, else None.

    The scheme defines two layouts and clients pick one (ffmpeg 5.1 sends schema 1, see the recorded
    tests/data/rtmp/handshake/ffmpeg_c0c1c2.bin), so both are checked.
    """
    for schema in _DIGEST_SCHEMAS:
        offset = digest_offset(c1, schema)
        digest = bytes(c1[offset : offset + DIGEST_SIZE])
        if hmac.compare_digest(digest, packet_digest(c1, offset, CLIENT_KEY_TEXT)):
            return schema, digest
    return None


class ServerHandshake:
    """Server half of the RTMP handshake: ``feed`` bytes from the client, send back what it returns.

    ``random_bytes`` supplies the random fields of S1/S2 (inject a fixed one in tests); ``epoch`` is the
    timestamp written into S1, the base of every chunk timestamp this server will send.
    """

    def __init__(self, *, random_bytes: Callable[[int], bytes] = os.urandom, epoch: int = 0) -> None:
        if not 0 <= epoch <= 0xFFFFFFFF:
            raise ValueError(f"epoch must fit in 32 bits, got {epoch}")
        self._random_bytes = random_bytes
        self._epoch = epoch
        self._state = _State.C0
        # Bound: at most C1 (1536 bytes) is ever held; C2 is counted, not stored, because it is not checked.
        self._c1 = bytearray()
        self._c2_remaining = HANDSHAKE_SIZE
        self.done = False
        self.leftover = b""
        # 0 or 1 when the client sent a valid digest handshake (and got one back), None for the plain one.
        self.digest_schema: int | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Consume bytes from the client; return the bytes to send (S0+S1+S2 once, else empty)."""
        if self._state is _State.DONE:
            raise RuntimeError("RTMP handshake already done: feed later bytes to the chunk layer")
        view = memoryview(data).cast("B")
        position = 0
        if self._state is _State.C0 and len(view) > 0:
            version = view[0]
            # "The version defined by this specification is 3. Values 0-2 are deprecated values used by
            # earlier proprietary products; 4-31 are reserved for future implementations; and 32-255 are
            # not allowed". RTMPE (6, 8) encrypts everything after C0 and is not supported either.
            if version != RTMP_VERSION:
                raise ProtocolError(f"RTMP handshake: unsupported version {version} (expected {RTMP_VERSION})")
            position = 1
            self._state = _State.C1
        reply = b""
        if self._state is _State.C1:
            wanted = HANDSHAKE_SIZE - len(self._c1)
            self._c1 += view[position : position + wanted]
            position = min(len(view), position + wanted)
            if len(self._c1) == HANDSHAKE_SIZE:
                reply = self._answer(bytes(self._c1))
                self._c1 = bytearray()
                self._state = _State.C2
        if self._state is _State.C2:
            taken = min(self._c2_remaining, len(view) - position)
            self._c2_remaining -= taken
            position += taken
            if self._c2_remaining == 0:
                self._state = _State.DONE
                self.done = True
                self.leftover = bytes(view[position:])
        return reply

    def _answer(self, c1: bytes) -> bytes:
        # C1 "Zero (4 bytes): This field MUST be all 0s." Clients of the digest handshake put their
        # version there instead; only then is a digest worth looking for.
        found = find_client_digest(c1) if c1[4:8] != bytes(4) else None
        if found is None:
            return bytes((RTMP_VERSION,)) + self._plain_s1() + self._plain_s2(c1)
        schema, client_digest = found
        self.digest_schema = schema
        return bytes((RTMP_VERSION,)) + self._digest_s1(schema) + self._digest_s2(client_digest)

    def _plain_s1(self) -> bytes:
        # "Time (4 bytes): This field contains a timestamp, which SHOULD be used as the epoch for all future
        # chunks sent from this endpoint. [...] Zero (4 bytes): This field MUST be all 0s. Random data
        # (1528 bytes): This field can contain any arbitrary values."
        return self._epoch.to_bytes(4, "big") + bytes(4) + self._random(HANDSHAKE_SIZE - 8)

    def _plain_s2(self, c1: bytes) -> bytes:
        # "Time (4 bytes): This field MUST contain the timestamp sent by the peer in S1 (for C2) or C1 (for
        # S2). Time2 (4 bytes): This field MUST contain the timestamp at which the previous packet (s1 or
        # c1) sent by the peer was read. Random echo (1528 bytes): This field MUST contain the random data
        # field sent by the peer in S1 (for C2) or S2 (for C1)." This core reads no clock: C1 is read at
        # the start of the connection, which is our epoch.
        return c1[0:4] + self._epoch.to_bytes(4, "big") + c1[8:]

    def _digest_s1(self, schema: int) -> bytes:
        s1 = bytearray(self._epoch.to_bytes(4, "big") + SERVER_VERSION + self._random(HANDSHAKE_SIZE - 8))
        offset = digest_offset(s1, schema)
        s1[offset : offset + DIGEST_SIZE] = packet_digest(s1, offset, SERVER_KEY_TEXT)
        return bytes(s1)

    def _digest_s2(self, client_digest: bytes) -> bytes:
        # S2 is random bytes whose last 32 bytes sign the rest, keyed by a digest of the client's digest:
        # the client proves it reads our key, we prove we read theirs.
        key = hmac.digest(SERVER_KEY, client_digest, hashlib.sha256)
        body = self._random(HANDSHAKE_SIZE - DIGEST_SIZE)
        return body + hmac.digest(key, body, hashlib.sha256)

    def _random(self, size: int) -> bytes:
        data = self._random_bytes(size)
        if len(data) != size:
            raise ValueError(f"random_bytes({size}) returned {len(data)} bytes")
        return data
